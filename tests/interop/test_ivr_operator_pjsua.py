"""The demo dialplan's main menu in opening hours, from real phones: key 0, the operator.

The switch routes every call as if it arrived on a Tuesday morning in Tokyo (``dialplan.at``),
so 100 answers with the demo/main-menu prompt. Key 0 bridges the caller to the operator, 1003
(the switch has answered the caller already, so it offers 1003 its own SDP and relays the
media once 1003 answers). When that bridge fails, the caller hears demo/operator-busy, a beep,
and may leave a message in mailbox "1003". The phones are pjsua2 user agents that play a tone
each and record what they hear.
"""

from __future__ import annotations

import re
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.interop.api import (
    live_call_id,
    mailbox_counts,
    message_wav,
    messages,
    wait_log,
    wait_new_message,
)
from tests.interop.audio import (
    BEEP_SECONDS,
    GAP_SECONDS,
    beep_share,
    dominant_hz,
    follow_prompt,
    heard_samples,
    prompt_seconds,
)
from tests.interop.pjua import UserAgent
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

#: 10:00 on Tuesday 2026-11-24 in Asia/Tokyo: within the demo plan's opening hours
SWITCH_OVERRIDES = {"dialplan.at": "2026-11-24T10:00+09:00"}

#: how long the caller listens to demo/main-menu (10.3 s long) before pressing 0
INTO_THE_MENU = 1.5
#: the log line that ends a call's session, and the dialplan path it took
SESSION_END = r"(?:dialplan done \(([^)]*)\)|the call ended in the dialplan); path: (.*)"


def registered(switch: ServerProcess, agents: Callable[[str], UserAgent], user: str) -> UserAgent:
    """A user agent with ``user`` registered on the switch."""
    agent = agents(user)
    code = agent.register(user, switch.users[user], switch.address, switch.domain)
    assert code == 200, f"{user} registration: {code}"
    return agent


def press_zero(switch: ServerProcess, caller: UserAgent) -> tuple[int, str]:
    """1001 calls 100, listens to the menu prompt for a moment and presses 0 (RFC 4733);
    answers its call handle and the switch's id of the call."""
    call = caller.call("1001", f"sip:100@{switch.domain}")
    caller.wait_state(call, "CONFIRMED", timeout=10)
    call_id = live_call_id(switch, "1001")
    time.sleep(INTO_THE_MENU)
    caller.dtmf(call, "0")
    return call, call_id


def live_call(switch: ServerProcess, call_id: str) -> dict[str, Any]:
    """The call as ``GET /api/calls`` shows it."""
    calls = [c for c in switch.api("/api/calls")["calls"] if c["call_id"] == call_id]
    assert len(calls) == 1, calls
    return dict(calls[0])


def test_key_zero_connects_the_caller_to_the_operator(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    """0 rings 1003; once it answers, each side hears the other's tone; the live call names
    1003's contact as the one that answered; the log gives the menu key and the bridge."""
    operator = registered(switch, user_agents, "1003")
    alice = registered(switch, user_agents, "1001")
    call, call_id = press_zero(switch, alice)
    ringing = operator.wait_incoming("1003", timeout=10)
    incoming = int(ringing["call"])
    operator.answer(incoming, 200)
    operator.wait_state(incoming, "CONFIRMED", timeout=10)

    heard_by_alice = tmp_path / "alice.wav"
    heard_by_operator = tmp_path / "operator.wav"
    alice.media_start(call, 440, str(heard_by_alice))
    operator.media_start(incoming, 1000, str(heard_by_operator))
    alice.wait_state(call, "CONFIRMED", timeout=3)  # pumps alice's events
    time.sleep(3.0)
    view = live_call(switch, call_id)
    alice.media_stop(call)
    operator.media_stop(incoming)
    alice.hangup(call)
    alice.wait_state(call, "DISCONNECTED", timeout=10)
    operator.wait_state(incoming, "DISCONNECTED", timeout=10)

    hz, above_own = dominant_hz(heard_by_operator, own_hz=1000)
    assert abs(hz - 440) < 15 and above_own > 20, (hz, above_own, view)
    hz, above_own = dominant_hz(heard_by_alice, own_hz=440)
    assert abs(hz - 1000) < 15 and above_own > 20, (hz, above_own, view)
    assert view["caller"] == "1001" and view["callee"] == "100", view
    assert view["answered_by"] == f"sip:1003@127.0.0.1:{operator.port}", view
    done = wait_log(switch, rf"call {re.escape(call_id)}: {SESSION_END}")
    assert done is not None, switch.stderr_text()[-3000:]
    assert done[1] == "bridged", done[0]
    assert done[2] == "menu demo/main-menu: 0 > bridge 1003", done[0]
    held, doc = switch.wait_idle(timeout=10)
    assert held, doc


def test_the_live_call_shows_the_ivr_path_while_bridged(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent]
) -> None:
    """GET /api/calls, during the call with the operator, gives the path that led there."""
    operator = registered(switch, user_agents, "1003")
    alice = registered(switch, user_agents, "1001")
    call, call_id = press_zero(switch, alice)
    incoming = int(operator.wait_incoming("1003", timeout=10)["call"])
    operator.answer(incoming, 200)
    operator.wait_state(incoming, "CONFIRMED", timeout=10)
    alice.wait_state(call, "CONFIRMED", timeout=3)
    time.sleep(0.5)
    view = live_call(switch, call_id)
    alice.hangup(call)
    alice.wait_state(call, "DISCONNECTED", timeout=10)
    assert view["answered_by"] == f"sip:1003@127.0.0.1:{operator.port}", view
    dialplan = view.get("dialplan") or {}
    assert "menu demo/main-menu: 0" in dialplan.get("path", []), view


@pytest.mark.parametrize("operator_state", ["not registered", "busy"])
def test_an_unreachable_operator_leads_to_mailbox_1003(
    switch: ServerProcess,
    user_agents: Callable[[str], UserAgent],
    tmp_path: Path,
    operator_state: str,
) -> None:
    """0, but 1003 cannot take the call (no phone registered, or it answers 486 Busy Here):
    the caller hears demo/operator-busy and the beep, talks 2 s and hangs up; the message is
    in mailbox "1003"."""
    operator: UserAgent | None = None
    if operator_state == "busy":
        operator = registered(switch, user_agents, "1003")
    else:  # the phones of earlier tests unregistered when they closed
        gone, doc = switch.wait_health(lambda d: d.get("registrations") == 0, timeout=10)
        assert gone, doc
    known = {m["id"] for m in messages(switch, "1003")}
    before = mailbox_counts(switch).get("1003", 0)
    alice = registered(switch, user_agents, "1001")
    heard = tmp_path / "heard.wav"
    call = alice.call("1001", f"sip:100@{switch.domain}")
    alice.wait_state(call, "CONFIRMED", timeout=10)
    call_id = live_call_id(switch, "1001")
    alice.media_start(call, 440, str(heard))
    time.sleep(INTO_THE_MENU)
    alice.dtmf(call, "0")
    if operator is not None:
        incoming = int(operator.wait_incoming("1003", timeout=10)["call"])
        operator.answer(incoming, 486)
    time.sleep(prompt_seconds("demo/operator-busy") + GAP_SECONDS + BEEP_SECONDS + 2.0)
    alice.media_stop(call)
    alice.hangup(call)
    alice.wait_state(call, "DISCONNECTED", timeout=10)

    samples = heard_samples(heard)
    share, end = follow_prompt(samples, "demo/operator-busy")
    assert share > 0.6, f"demo/operator-busy not heard ({share:.0%} of it)"
    beep = beep_share(samples, end)
    assert beep > 0.5, f"no 1 kHz beep after demo/operator-busy ({beep:.2f} of the power)"

    message = wait_new_message(switch, "1003", known)
    assert message is not None, switch.stderr_text()[-3000:]
    assert mailbox_counts(switch).get("1003") == before + 1
    assert message["caller"] == "1001" and message["mailbox"] == "1003", message
    assert 1.0 <= message["seconds"] <= 4.0, message
    wav_path = tmp_path / "message.wav"
    wav_path.write_bytes(message_wav(switch, "1003", message["id"]))
    with wave.open(str(wav_path)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (1, 8000)
    hz, above_beep = dominant_hz(wav_path, own_hz=1000)
    assert abs(hz - 440) < 15 and above_beep > 20, (hz, above_beep)

    done = wait_log(switch, rf"call {re.escape(call_id)}: {SESSION_END}")
    assert done is not None, switch.stderr_text()[-3000:]
    assert done[2].startswith("menu demo/main-menu: 0"), done[0]
    held, doc = switch.wait_idle(timeout=10)
    assert held, doc
