"""Call transfer by REFER with real pjsua2 phones through the anchored switch.

alice (1001) calls bob (1002); bob transfers alice to carol (1003), blind or attended. Each
party plays its own tone (alice 440 Hz, carol 1000 Hz) and records what it hears: after the
transfer alice must hear carol's tone and carol alice's, and bob's calls must be over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.audio import dominant_hz
from tests.interop.pjua import UserAgent, call_between
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]


def carol_of(switch: ServerProcess, user_agents: Callable[[str], UserAgent]) -> UserAgent:
    carol = user_agents("1003")
    assert carol.register("1003", switch.users["1003"], switch.address, switch.domain) == 200
    return carol


def check_two_way_audio(
    alice: UserAgent, a_call: int, carol: UserAgent, c_call: int, tmp_path: Path
) -> None:
    heard_by_alice = tmp_path / "alice.wav"
    heard_by_carol = tmp_path / "carol.wav"
    alice.media_start(a_call, 440, str(heard_by_alice))
    carol.media_start(c_call, 1000, str(heard_by_carol))
    alice.wait_state(a_call, "CONFIRMED", timeout=3)
    time.sleep(2.5)
    alice.media_stop(a_call)
    carol.media_stop(c_call)
    hz, above_own = dominant_hz(heard_by_carol, own_hz=1000)
    assert abs(hz - 440) < 15 and above_own > 20, (hz, above_own)
    hz, above_own = dominant_hz(heard_by_alice, own_hz=440)
    assert abs(hz - 1000) < 15 and above_own > 20, (hz, above_own)


def test_blind_transfer(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice, a_call, bob, b_call = call_between(switch, user_agents)
    carol = carol_of(switch, user_agents)
    bob.xfer(b_call, f"sip:1003@{switch.domain}")
    c_call = int(carol.wait_incoming("1003", timeout=5)["call"])
    carol.answer(c_call, 200)
    carol.wait_state(c_call, "CONFIRMED", timeout=5)
    bob.wait_state(b_call, "DISCONNECTED", timeout=8)
    check_two_way_audio(alice, a_call, carol, c_call, tmp_path)
    assert "DISCONNECTED" not in alice.call_info(a_call)["states"]
    alice.hangup(a_call)
    carol.wait_state(c_call, "DISCONNECTED", timeout=5)
    assert "transferred to 1003" in switch.stderr_text()


def test_attended_transfer(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice, a_call, bob, b_call = call_between(switch, user_agents)
    carol = carol_of(switch, user_agents)
    bob.hold(b_call)
    consult = bob.call("1002", f"sip:1003@{switch.domain}")
    c_call = int(carol.wait_incoming("1003", timeout=5)["call"])
    carol.answer(c_call, 200)
    bob.wait_state(consult, "CONFIRMED", timeout=5)
    bob.xfer_replaces(b_call, consult)
    bob.wait_state(consult, "DISCONNECTED", timeout=5)
    bob.wait_state(b_call, "DISCONNECTED", timeout=8)
    check_two_way_audio(alice, a_call, carol, c_call, tmp_path)
    states = carol.call_info(c_call)["states"]
    assert "DISCONNECTED" not in states and states.count("INCOMING") <= 1
    alice.hangup(a_call)
    carol.wait_state(c_call, "DISCONNECTED", timeout=5)
