"""DTMF from real phones, every way a phone sends it: RFC 4733 events, SIP INFO
(application/dtmf-relay) and tones in the audio. The switch reports each digit once, with the
way it came (its log line is the report these tests read)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.pjua import UserAgent, call_between
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

#: every leg is listened to for tones, also those that offered telephone-event (pjsua2 always
#: offers it, so "auto" would never listen to it)
SWITCH_OVERRIDES = {"media.inband_dtmf": "always"}

_REPORT = re.compile(r"call (\S+): DTMF (\S) from the (caller|callee) \((\d+) ms, ([a-z0-9-]+)\)")


def reported(switch: ServerProcess, since: int) -> list[tuple[str, str, str, int, str]]:
    """(call, digit, who, ms, source) of every digit the switch logged after offset ``since``."""
    return [
        (m[1], m[2], m[3], int(m[4]), m[5]) for m in _REPORT.finditer(switch.stderr_text()[since:])
    ]


def wait_reports(switch: ServerProcess, since: int, count: int, timeout: float = 8.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = reported(switch, since)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return reported(switch, since)


def test_sip_info_digits_reach_the_prompt_test(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice = user_agents("1001")
    assert alice.register("1001", switch.users["1001"], switch.address, switch.domain) == 200
    since = len(switch.stderr_text())
    call = alice.call("1001", f"sip:9197@{switch.domain}")
    alice.wait_state(call, "CONFIRMED", timeout=10)
    alice.dtmf(call, "3#", method="info")
    found = wait_reports(switch, since, 2)
    alice.hangup(call)
    alice.wait_state(call, "DISCONNECTED", timeout=10)
    assert [(d, who, src) for _, d, who, _, src in found] == [
        ("3", "caller", "sip-info"),
        ("#", "caller", "sip-info"),
    ], found
    assert all(ms == 160 for *_, ms, _ in found), found  # the Duration of the INFO body


def test_digits_in_a_relayed_call_by_events_info_and_tones(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent]
) -> None:
    start = len(switch.stderr_text())
    alice, outgoing, bob, incoming = call_between(switch, user_agents)
    since = len(switch.stderr_text())
    alice.dtmf(outgoing, "12", method="rfc4733")
    found = wait_reports(switch, since, 2)
    assert [(d, who, src) for _, d, who, _, src in found] == [
        ("1", "caller", "rfc4733"),
        ("2", "caller", "rfc4733"),
    ], found
    since = len(switch.stderr_text())
    bob.dtmf(incoming, "9", method="info")
    found = wait_reports(switch, since, 1)
    assert [(d, who, src) for _, d, who, _, src in found] == [("9", "callee", "sip-info")]
    since = len(switch.stderr_text())
    alice.dtmf(outgoing, "58*", method="inband")
    found = wait_reports(switch, since, 3)
    assert [(d, who, src) for _, d, who, _, src in found] == [
        ("5", "caller", "inband"),
        ("8", "caller", "inband"),
        ("*", "caller", "inband"),
    ], found
    assert all(100 <= ms <= 220 for *_, ms, _ in found), found  # 150 ms tones, measured
    calls = {c for c, *_ in reported(switch, start)}
    alice.hangup(outgoing)
    alice.wait_state(outgoing, "DISCONNECTED", timeout=10)
    assert len(calls) == 1, calls
