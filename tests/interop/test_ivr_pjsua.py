"""The demo IVR (number 100 of configs/dialplan/demo.yaml) with a real phone.

A pjsua2 caller hears the menu prompt (found in what it received by correlation with the
prompt file), presses 2 by RFC 4733, types a member number, is checked against the demo CRM
over HTTP and lands in the ``account`` queue tagged ``personal`` (seen in the queue's state
over the API). A caller who presses nothing hears the menu twice and is then hung up on.
The switch routes as if it were a Tuesday morning in Tokyo (``dialplan.at``), so the opening
hours rule applies whatever the time of the test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media.player import load_prompt
from tests.interop.audio import correlation, heard_samples
from tests.interop.pjua import UserAgent
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

SWITCH_OVERRIDES = {"dialplan.at": "2026-11-24T10:00+09:00"}

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "configs" / "prompts" / "demo"


def wait_for(check: Callable[[], object], timeout: float, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def account_queue(switch: ServerProcess) -> dict:
    return switch.api("/api/queues/account")


def test_menu_identity_check_and_the_account_queue(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice = user_agents("1001")
    assert alice.register("1001", switch.users["1001"], switch.address, switch.domain) == 200
    since = len(switch.stderr_text())
    call = alice.call("1001", f"sip:100@{switch.domain}")
    alice.wait_state(call, "CONFIRMED", timeout=10)
    recording = tmp_path / "menu.wav"
    alice.media_start(call, 300, str(recording))
    time.sleep(4.0)
    alice.media_stop(call)
    # the menu prompt is in what the caller heard
    menu = load_prompt(PROMPTS / "main-menu.wav").astype(float)
    # seconds 1 to 3 of the prompt: the recording may start a moment after the answer
    score = correlation(heard_samples(recording), menu[8000:24000])
    assert score.size and float(score.max()) > 0.6, float(score.max(initial=0))

    alice.dtmf(call, "2")  # barges into the menu: account changes
    time.sleep(1.5)  # the member number prompt starts
    alice.dtmf(call, "12345678#")

    def waiting() -> list:
        return account_queue(switch)["callers"]

    callers = wait_for(waiting, timeout=15)
    assert callers, switch.stderr_text()[since:][-3000:]
    (entry,) = callers
    assert entry["caller"] == "1001" and entry["position"] == 1
    assert entry["data_class"] == "personal" and entry["priority"] == 5
    assert entry["screen_pop"] == {
        "crm_name": "Hanako Yamada",
        "crm_tier": "gold",
        "crm_member": "****",  # personal data: never shown in a supervisor's view
    }
    assert entry["path"] == [
        "menu demo/main-menu: 2",
        "goto identity",
        "gather member",
        "lookup crm: ok",
    ]
    live = switch.api("/api/calls")["calls"]
    (mine,) = [c for c in live if c["caller"] == "1001"]
    assert mine["dialplan"]["path"][-1] == "queue account"
    # the member number is personal data: never in the log, the live view or the trace
    log = switch.stderr_text()[since:]
    assert "12345678" not in log
    assert "12345678" not in str(mine)
    digits = [d["digit"] for d in mine["digits"]]
    assert digits[0] == "2" and digits[1:] == ["*"] * 9, digits  # 8 digits and "#", masked
    assert len(re.findall(r"DTMF \* from the caller .*sensitive input", log)) == 9

    # the phone holds and resumes (re-INVITEs to the switch itself): the call stays queued
    alice.hold(call)
    time.sleep(0.5)
    alice.unhold(call)
    time.sleep(0.5)
    assert alice.call_info(call)["state"] == "CONFIRMED"
    assert [c["caller"] for c in waiting()] == ["1001"]
    assert " 481 " not in switch.stderr_text()[since:]
    music = tmp_path / "music.wav"
    alice.media_start(call, 300, str(music))
    time.sleep(1.5)
    alice.media_stop(call)
    waited = heard_samples(music)
    assert np.sqrt(np.mean(waited[4000:] ** 2)) > 300  # music on hold after the prompt

    alice.hangup(call)
    alice.wait_state(call, "DISCONNECTED", timeout=10)
    assert wait_for(lambda: not waiting(), timeout=5) is True
    after = account_queue(switch)
    assert after["abandoned"] >= 1 and after["waiting"] == 0
    assert (
        "the call ended in the dialplan; path: menu demo/main-menu: 2 > goto identity > "
        "gather member > lookup crm: ok > queue account"
    ) in switch.stderr_text()[since:]
    record = wait_for(lambda: switch.api(f"/api/calls/{mine['call_id']}").get("live") is False, 5)
    assert record is True
    detail = switch.api(f"/api/calls/{mine['call_id']}")
    assert detail["media"]["dialplan"]["path"][-1] == "queue account"
    assert "12345678" not in str(detail)


def test_no_key_replays_the_menu_then_hangs_up(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice = user_agents("1001")
    assert alice.register("1001", switch.users["1001"], switch.address, switch.domain) == 200
    since = len(switch.stderr_text())
    call = alice.call("1001", f"sip:100@{switch.domain}")
    alice.wait_state(call, "CONFIRMED", timeout=10)
    started = time.monotonic()
    recording = tmp_path / "silent.wav"
    alice.media_start(call, 300, str(recording))
    menu = load_prompt(PROMPTS / "main-menu.wav")
    no_input = load_prompt(PROMPTS / "no-input.wav")
    # menu, 4 s for a key, "we did not hear", the menu again: listen until the replay began
    time.sleep((len(menu) + len(no_input)) / 8000 + 4 + 4)
    alice.media_stop(call)
    # the switch ends the call itself after the second try and the goodbye
    alice.wait_state(call, "DISCONNECTED", timeout=30)
    took = time.monotonic() - started
    received = heard_samples(recording)
    # seconds 1 to 3 of the prompt: the recording may start a moment after the answer
    score = correlation(received, menu[8000:24000].astype(float))
    peaks = np.flatnonzero(score > 0.6)
    assert peaks.size, float(score.max(initial=0))
    first, last = peaks[0] / 8000, peaks[-1] / 8000
    gap = (len(menu) + len(no_input)) / 8000 + 4
    assert gap - 1.0 < last - first < gap + 2.0, (first, last, gap)  # heard twice
    assert float(correlation(received, no_input.astype(float)).max()) > 0.6
    # 2 x (menu + 4 s) + no-input + goodbye, give or take
    goodbye = len(load_prompt(PROMPTS / "goodbye.wav")) / 8000
    expected = 2 * (len(menu) / 8000 + 4) + len(no_input) / 8000 + goodbye
    assert expected - 2 < took < expected + 6, (took, expected)
    log = switch.stderr_text()[since:]
    assert "path: menu demo/main-menu: no choice > hangup normal" in log
