"""The headset's real audio path: pjsua2's conference bridge -> the headset port -> PortAudio
-> ALSA's pulse plugin -> a private PulseAudio daemon, and back.

The far end is a pjsua2 caller that plays 1000 Hz and records what it hears. The agent's
speaker is the ``headset`` null sink (recorded from its monitor), its microphone the monitor
of the ``mic`` null sink (a test plays 600 Hz into it). Checked by frequency: the caller's
tone comes out of the headset; the tone said into the microphone reaches the caller, not
while muted (the microphone's meter moves all the same); the level meters move with the
tones; the delay the client adds stays small.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from agent_client.headset import FrameRing, Headset
from tests.agent_client.conftest import account_for
from tests.agent_client.phone_driver import PhoneProcess
from tests.agent_client.pulse import PrivatePulse, missing, write_tone
from tests.interop.audio import spectrum_share
from tests.interop.pjua import UserAgent
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

CALLER_HZ = 1000.0
AGENT_HZ = 600.0


@pytest.fixture
def pulse() -> Iterator[PrivatePulse]:
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    daemon = PrivatePulse()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def test_the_headset_hears_the_caller_and_the_caller_hears_the_headset(
    switch: ServerProcess,
    phones: Callable[..., PhoneProcess],
    user_agents: Callable[[str], UserAgent],
    pulse: PrivatePulse,
    tmp_path: Path,
) -> None:
    phone = phones("1002", env=pulse.client_env(PULSE_SINK="headset", PULSE_SOURCE="mic.monitor"))
    phone.start(
        account_for(switch, "1002"), audio=True, input_device="pulse", output_device="pulse"
    )
    phone.wait_event("registration", lambda e: e["registered"])
    devices = phone.request("devices")
    assert "pulse" in devices["inputs"] and "pulse" in devices["outputs"], devices
    # the headset opens with the phone; PulseAudio's streams take a moment to get going
    deadline = time.monotonic() + 5.0
    while True:
        counts = phone.request("headset_stats")["stats"]
        if counts["captured"] >= 10 and counts["played"] >= 10:
            break
        assert time.monotonic() < deadline, counts
        time.sleep(0.1)

    caller = user_agents("1001")
    assert caller.register("1001", switch.users["1001"], switch.address, switch.domain) == 200
    outgoing = caller.call("1001", f"sip:1002@{switch.domain}")
    handle = phone.wait_call("ringing")["id"]
    phone.request("answer", call=handle)
    caller.wait_state(outgoing, "CONFIRMED", timeout=5)
    heard_by_caller = tmp_path / "caller.wav"
    caller.media_start(outgoing, CALLER_HZ, str(heard_by_caller))
    start = time.monotonic()
    before = phone.request("headset_stats")["stats"]

    # the caller's tone comes out of the agent's headset
    time.sleep(0.5)
    mark = phone.mark()
    at_the_ear = pulse.record("headset.monitor", 2.0)
    ear_levels = phone.of_kind("levels", since=mark)
    share = spectrum_share(at_the_ear[len(at_the_ear) // 4 :], 8000, CALLER_HZ)
    assert share > 0.5 and np.abs(at_the_ear).max() > 2000, (share, np.abs(at_the_ear).max())
    assert max(e["speaker"] for e in ear_levels) > 0.05, ear_levels
    assert max(e["mic"] for e in ear_levels) < 0.01, ear_levels  # nothing said yet

    # the agent speaks: the tone played into the microphone reaches the caller
    player = pulse.play("mic", write_tone(tmp_path / "agent.wav", AGENT_HZ, 12.0))
    try:
        time.sleep(0.7)
        talking = (time.monotonic() - start, 0.0)
        mark = phone.mark()
        time.sleep(2.0)
        talking = (talking[0], time.monotonic() - start)
        talk_levels = phone.of_kind("levels", since=mark)
        stats = phone.request("headset_stats")["stats"]

        phone.request("mute", on=True)
        time.sleep(0.5)
        muted = (time.monotonic() - start, 0.0)
        mark = phone.mark()
        time.sleep(2.0)
        muted = (muted[0], time.monotonic() - start)
        mute_levels = phone.of_kind("levels", since=mark)

        phone.request("mute", on=False)
        time.sleep(0.5)
        again = (time.monotonic() - start, 0.0)
        time.sleep(1.5)
        again = (again[0], time.monotonic() - start)
        caller.media_stop(outgoing)
    finally:
        player.terminate()
        player.wait(timeout=5)
    phone.request("hang_up", call=handle)
    caller.wait_state(outgoing, "DISCONNECTED", timeout=5)

    with wave.open(str(heard_by_caller)) as wav:
        rate = wav.getframerate()
        heard = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float)

    def window(span: tuple[float, float]) -> np.ndarray:
        return heard[int(span[0] * rate) : int(span[1] * rate)]

    assert len(heard) >= again[1] * rate * 0.9, (len(heard) / rate, again)
    spoken, silent, resumed = window(talking), window(muted), window(again)
    assert spectrum_share(spoken, rate, AGENT_HZ) > 0.5, spectrum_share(spoken, rate, AGENT_HZ)
    assert np.abs(spoken).max() > 2000
    assert spectrum_share(resumed, rate, AGENT_HZ) > 0.5
    # muted: the caller hears silence, while the microphone's meter still shows the voice
    assert np.abs(silent).max() < 100, np.abs(silent).max()
    assert min(e["mic"] for e in talk_levels) > 0.1, talk_levels
    assert max(e["mic"] for e in mute_levels) > 0.1, mute_levels

    # the client's own delay, each way: device latency + the ring + the bridge's tick
    assert stats["mic_delay"] < 0.12 and stats["speaker_delay"] < 0.12, stats
    # the two clocks keep step: hardly a frame dropped or missing while the call ran
    slips = {
        k: stats[k] - before[k]
        for k in ("mic_overruns", "mic_underruns", "speaker_overruns", "speaker_underruns")
    }
    assert sum(slips.values()) < 5, (slips, stats)


# --- the rings between the two clocks (no sound device needed) ----------------------------


def frame(n: int) -> bytes:
    return bytes([n]) * 320


def test_a_ring_gathers_two_frames_then_gives_them_in_order() -> None:
    ring = FrameRing(capacity=3, prefill=2)
    assert ring.pop() is None
    ring.push(frame(1))
    assert ring.pop() is None and ring.underruns == 0  # still gathering
    ring.push(frame(2))
    assert ring.pop() == frame(1)
    assert ring.pop() == frame(2)
    assert ring.pop() is None and ring.underruns == 1  # ran dry: gathers again
    ring.push(frame(3))
    assert ring.pop() is None
    ring.push(frame(4))
    assert ring.pop() == frame(3)


def test_a_full_ring_drops_its_oldest_frame() -> None:
    ring = FrameRing(capacity=3, prefill=1)
    for n in range(5):
        ring.push(frame(n))
    assert ring.overruns == 2 and len(ring) == 3
    assert [ring.pop() for _ in range(3)] == [frame(2), frame(3), frame(4)]


def test_a_standing_backlog_is_trimmed_to_keep_the_delay_down() -> None:
    ring = FrameRing(capacity=3, trim_after=5, prefill=1)
    for n in range(3):
        ring.push(frame(n))
    for n in range(3, 13):  # one in, one out: two frames stay waiting after each read
        assert ring.pop() is not None
        ring.push(frame(n))
    assert ring.trimmed >= 1 and len(ring) <= 2, (ring.trimmed, len(ring))
    assert ring.overruns == 0


def test_muted_the_call_gets_silence_while_the_meter_reads_the_microphone() -> None:
    headset = Headset(8000)
    loud = (np.full(160, 16384, dtype="<i2")).tobytes()
    for _ in range(2):
        headset._on_input(loud, 160, None, None)
    headset.muted = True
    assert headset.frame_for_call() == bytes(320)
    mic, speaker = headset.levels()
    assert mic == pytest.approx(0.5) and speaker == 0.0
    headset.muted = False
    assert headset.frame_for_call() == loud
