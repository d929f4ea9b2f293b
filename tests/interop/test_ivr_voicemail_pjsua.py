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
import urllib.error
import urllib.request
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from media.player import load_prompt, resample
from tests.interop.pjua import UserAgent
from tests.interop.servers import ServerProcess
from tests.interop.test_audio_pjsua import dominant_hz, spectrum_share

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "configs" / "prompts"
RATE = 8000

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

#: 22:00 on Tuesday 2026-11-24 in Asia/Tokyo: outside the demo plan's opening hours
SWITCH_OVERRIDES = {"dialplan.at": "2026-11-24T22:00+09:00"}

#: what the switch plays between the greeting and the recording (softswitch/apps/channel.py)
GAP_SECONDS = 0.2
BEEP_SECONDS = 0.4


# --- what the phone heard -----------------------------------------------------------------------


def heard_samples(path: Path) -> npt.NDArray[np.float64]:
    """A pjsua2 recording (mono, at the conference bridge's rate) as 8 kHz samples."""
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        channels = wav.getnchannels()
        raw = wav.readframes(wav.getnframes())
    samples = np.frombuffer(raw, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate != RATE:
        samples = resample(samples, rate, RATE)
    return samples.astype(np.float64)


def find_prompt(
    heard: npt.NDArray[np.float64], prompt: npt.NDArray[np.float64]
) -> tuple[float, int]:
    """Where ``prompt`` sits in ``heard``: the best normalised cross-correlation (1.0 = the
    same waveform up to a gain) and the sample offset it was found at. The correlation is
    computed through the FFT (a direct one over a 10 s prompt would take minutes)."""
    span = len(heard) - len(prompt) + 1
    assert span > 0, f"heard {len(heard) / RATE:.1f} s, shorter than the prompt"
    size = 1 << (len(heard) + len(prompt) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(prompt, size)), size)[:span]
    power = np.concatenate(([0.0], np.cumsum(heard * heard)))
    window = np.sqrt(np.maximum(power[len(prompt) :] - power[:span], 0.0))
    # near-silent stretches (RMS under 10) are no match: their ratio is rounding noise
    audible = window > 10.0 * np.sqrt(len(prompt))
    scores = np.where(audible, corr / np.where(audible, window, 1.0), 0.0) / np.linalg.norm(prompt)
    best = int(np.argmax(scores))
    return float(scores[best]), best


def follow_prompt(heard: npt.NDArray[np.float64], name: str) -> tuple[float, int]:
    """How much of prompt ``name`` was heard, and where it ended (a sample of ``heard``).

    The prompt is cut into half-second pieces, each looked for on its own: a piece counts
    when it is found (normalised correlation above 0.9) within 0.25 s of where the bulk of
    the pieces place the prompt. Pieces, not the whole prompt, because the phone's jitter
    buffer may drop or repeat a 10 ms frame now and then, which shifts the rest of a long
    prompt and spoils one correlation over all of it. Answers the share of pieces heard (0.0
    to 1.0) and the end of the prompt as placed by the last piece heard (-1 if none was).
    """
    prompt = load_prompt(PROMPTS / f"{name}.wav").astype(np.float64)
    step = RATE // 2
    starts = [i for i in range(0, len(prompt), step) if len(prompt) - i >= step // 2]
    found = [find_prompt(heard, prompt[i : i + step]) for i in starts]
    shifts = [offset - i for (score, offset), i in zip(found, starts, strict=True) if score > 0.9]
    if not shifts:
        return 0.0, -1
    base = float(np.median(shifts))
    heard_at = [
        offset - i
        for (score, offset), i in zip(found, starts, strict=True)
        if score > 0.9 and abs(offset - i - base) <= RATE // 4
    ]
    return len(heard_at) / len(starts), len(prompt) + heard_at[-1]


def beep_share(heard: npt.NDArray[np.float64], end_of_greeting: int) -> float:
    """The share of 1 kHz in the middle 240 ms of where the beep belongs (after the gap)."""
    start = end_of_greeting + int((GAP_SECONDS + 0.08) * RATE)
    window = heard[start : start + int((BEEP_SECONDS - 0.16) * RATE)]
    assert len(window) > RATE // 5, f"the recording ends {len(heard) - start} samples after the gap"
    return spectrum_share(window, RATE, 1000.0)


def prompt_seconds(name: str) -> float:
    return len(load_prompt(PROMPTS / f"{name}.wav")) / RATE


# --- the switch's side ----------------------------------------------------------------------------


def messages(switch: ServerProcess, mailbox: str) -> list[dict[str, Any]]:
    """``GET /api/voicemail/{mailbox}``: its messages, oldest first."""
    return list(switch.api(f"/api/voicemail/{mailbox}")["messages"])


def mailbox_counts(switch: ServerProcess) -> dict[str, int]:
    """``GET /api/voicemail``: the mailboxes holding messages, and how many each holds."""
    return {box["mailbox"]: box["messages"] for box in switch.api("/api/voicemail")["mailboxes"]}


def wait_new_message(
    switch: ServerProcess, mailbox: str, known: set[str], timeout: float = 5.0
) -> dict[str, Any] | None:
    """The first message of ``mailbox`` whose id is not in ``known``, polled for at most
    ``timeout`` seconds (the message is written when the call ends)."""
    deadline = time.monotonic() + timeout
    while True:
        fresh = [m for m in messages(switch, mailbox) if m["id"] not in known]
        if fresh or time.monotonic() >= deadline:
            return fresh[0] if fresh else None
        time.sleep(0.1)


def message_wav(switch: ServerProcess, mailbox: str, message_id: str) -> bytes:
    """``GET /api/voicemail/{mailbox}/{id}``: the message's WAV file."""
    url = f"http://{switch.host}:{switch.http_port}/api/voicemail/{mailbox}/{message_id}"
    with urllib.request.urlopen(url, timeout=5.0) as response:
        assert response.status == 200
        assert response.headers.get("Content-Type") == "audio/wav"
        return bytes(response.read())


def live_call_id(switch: ServerProcess, caller: str, timeout: float = 3.0) -> str:
    """The switch's id of ``caller``'s live call, from ``GET /api/calls``."""
    deadline = time.monotonic() + timeout
    while True:
        calls = [c for c in switch.api("/api/calls")["calls"] if c["caller"] == caller]
        if calls:
            return str(calls[0]["call_id"])
        assert time.monotonic() < deadline, f"no live call from {caller} in /api/calls"
        time.sleep(0.1)


def call_record(switch: ServerProcess, call_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The detail record of an ended call (``GET /api/calls/{id}`` once it is no longer
    live), polled for at most ``timeout`` seconds: it is written just after the call ends."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            doc = switch.api(f"/api/calls/{call_id}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            doc = {"live": None}
        if doc["live"] is False:
            return doc
        assert time.monotonic() < deadline, f"no detail record of call {call_id}: {doc}"
        time.sleep(0.1)


def wait_log(switch: ServerProcess, pattern: str, timeout: float = 5.0) -> re.Match[str] | None:
    """The first match of ``pattern`` in the switch's log, polled for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, switch.stderr_text())
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


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
