"""The demo dialplan's closed-hours line, called from a real phone: greeting, beep, message.

The switch routes every call as if it arrived on a Tuesday night in Tokyo (``dialplan.at``),
so 100 takes the demo plan's closed rule: answer, play demo/closed, then ``voicemail`` into
mailbox "main" (a 200 ms gap, a 400 ms 1 kHz beep, then the caller's audio until '#', the
maximum length or the caller hanging up). 1001 is a pjsua2 phone that plays a 440 Hz tone as
its "voice" and records what it hears; the messages are read back over the switch's HTTP API
(``/api/voicemail``).
"""

from __future__ import annotations

import re
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.api import (
    call_record,
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

#: 22:00 on Tuesday 2026-11-24 in Asia/Tokyo: outside the demo plan's opening hours
SWITCH_OVERRIDES = {"dialplan.at": "2026-11-24T22:00+09:00"}


def dial_closed_line(switch: ServerProcess, phone: UserAgent, heard: Path) -> int:
    """1001 calls 100, waits for the switch's answer and starts its 440 Hz "voice" and the
    recording of what it hears; answers the call handle."""
    call = phone.call("1001", f"sip:100@{switch.domain}")
    phone.wait_state(call, "CONFIRMED", timeout=10)
    phone.media_start(call, 440, str(heard))
    return call


@pytest.fixture
def phone(switch: ServerProcess, user_agents: Callable[[str], UserAgent]) -> UserAgent:
    """1001, registered."""
    agent = user_agents("1001")
    assert agent.register("1001", switch.users["1001"], switch.address, switch.domain) == 200
    return agent


# --- the tests ------------------------------------------------------------------------------------


def test_greeting_beep_and_a_message_ended_by_hanging_up(
    switch: ServerProcess, phone: UserAgent, tmp_path: Path
) -> None:
    """The caller hears demo/closed and then the beep, talks 3 s and hangs up: the message is
    kept in mailbox "main", from 1001, about 3 s of the caller's 440 Hz, 8 kHz mono."""
    known = {m["id"] for m in messages(switch, "main")}
    before = mailbox_counts(switch).get("main", 0)
    heard = tmp_path / "heard.wav"
    call = dial_closed_line(switch, phone, heard)
    time.sleep(prompt_seconds("demo/closed") + GAP_SECONDS + BEEP_SECONDS + 3.0)
    phone.media_stop(call)
    phone.hangup(call)
    phone.wait_state(call, "DISCONNECTED", timeout=10)

    samples = heard_samples(heard)
    share, end = follow_prompt(samples, "demo/closed")
    assert share > 0.6, f"demo/closed not heard ({share:.0%} of it)"
    beep = beep_share(samples, end)
    assert beep > 0.5, f"no 1 kHz beep after the greeting ({beep:.2f} of the power)"

    message = wait_new_message(switch, "main", known)
    assert message is not None, switch.stderr_text()[-3000:]
    assert mailbox_counts(switch).get("main") == before + 1
    assert message["caller"] == "1001" and message["mailbox"] == "main", message
    assert 2.0 <= message["seconds"] <= 5.0, message

    wav_path = tmp_path / "message.wav"
    wav_path.write_bytes(message_wav(switch, "main", message["id"]))
    with wave.open(str(wav_path)) as wav:
        layout = (wav.getnchannels(), wav.getframerate(), wav.getsampwidth())
        length = wav.getnframes() / wav.getframerate()
    assert layout == (1, 8000, 2), layout
    assert abs(length - message["seconds"]) < 0.05, (length, message)
    # the caller's voice, and not the beep (recording starts after it): 20 dB above 1 kHz
    hz, above_beep = dominant_hz(wav_path, own_hz=1000)
    assert abs(hz - 440) < 15 and above_beep > 20, (hz, above_beep)


def test_hash_ends_the_message_and_the_switch_hangs_up(
    switch: ServerProcess, phone: UserAgent, tmp_path: Path
) -> None:
    """'#' (RFC 4733) 1.5 s after the beep ends the message: it is kept, and the switch ends
    the call itself; its log gives the call's dialplan path."""
    known = {m["id"] for m in messages(switch, "main")}
    call = dial_closed_line(switch, phone, tmp_path / "heard.wav")
    call_id = live_call_id(switch, "1001")
    time.sleep(prompt_seconds("demo/closed") + GAP_SECONDS + BEEP_SECONDS + 1.5)
    phone.dtmf(call, "#")
    phone.wait_state(call, "DISCONNECTED", timeout=8)  # 1001 never hangs up
    phone.media_stop(call)
    record = call_record(switch, call_id)
    assert record["cause"] == "dialplan hung up" and record["status"] == 200, record

    message = wait_new_message(switch, "main", known)
    assert message is not None, switch.stderr_text()[-3000:]
    assert message["caller"] == "1001", message
    assert 1.0 <= message["seconds"] <= 3.0, message
    done = wait_log(switch, rf"call {re.escape(call_id)}: dialplan done \(([^)]*)\); path: (.*)")
    assert done is not None, switch.stderr_text()[-3000:]
    assert done[1] == "voicemail" and done[2] == "voicemail main", done[0]
    held, doc = switch.wait_idle(timeout=10)
    assert held, doc


def test_hanging_up_during_the_greeting_leaves_no_message(
    switch: ServerProcess, phone: UserAgent, tmp_path: Path
) -> None:
    """A caller who hangs up 2 s into demo/closed never reaches the beep: no message."""
    before = {m["id"] for m in messages(switch, "main")}
    call = dial_closed_line(switch, phone, tmp_path / "heard.wav")
    call_id = live_call_id(switch, "1001")
    time.sleep(2.0)
    phone.media_stop(call)
    phone.hangup(call)
    phone.wait_state(call, "DISCONNECTED", timeout=10)
    share, _ = follow_prompt(heard_samples(tmp_path / "heard.wav"), "demo/closed")
    assert 0.1 < share < 0.5, f"{share:.0%} of demo/closed heard in 2 s"  # its start, only
    held, doc = switch.wait_idle(timeout=10)
    assert held, doc
    assert {m["id"] for m in messages(switch, "main")} == before
    assert f"call {call_id}: message " not in switch.stderr_text()


def test_the_log_gives_the_path_of_a_message_ended_by_hanging_up(
    switch: ServerProcess, phone: UserAgent, tmp_path: Path
) -> None:
    """The usual end of a message (the caller hangs up) still logs the dialplan path."""
    known = {m["id"] for m in messages(switch, "main")}
    call = dial_closed_line(switch, phone, tmp_path / "heard.wav")
    call_id = live_call_id(switch, "1001")
    time.sleep(prompt_seconds("demo/closed") + GAP_SECONDS + BEEP_SECONDS + 1.5)
    phone.media_stop(call)
    phone.hangup(call)
    phone.wait_state(call, "DISCONNECTED", timeout=10)
    assert wait_new_message(switch, "main", known) is not None  # the message itself is kept
    # whichever line the switch writes when the session ends, it names the path taken
    ending = (
        rf"call {re.escape(call_id)}: (?:dialplan done \([^)]*\)|the call ended in the dialplan)"
    )
    done = wait_log(switch, ending + r"; path: (.*)")
    assert done is not None, switch.stderr_text()[-3000:]
    assert done[1] == "voicemail main", done[0]
