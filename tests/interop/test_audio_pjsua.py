"""Two-way audio through the anchored switch, checked by frequency.

1001 plays 440 Hz and 1002 plays 1000 Hz into their call; each records what it hears. The
switch anchors the call (SDP rewritten to its RTP ports, packets relayed): each recording must
hold the other side's tone and not its own.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media.dtmf import GoertzelDetector
from media.player import load_prompt
from tests.interop.audio import dominant_hz, find_prompt, heard_samples, spectrum_share
from tests.interop.pjua import UserAgent, call_between
from tests.interop.servers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]


def test_each_side_hears_the_other(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice, outgoing, bob, incoming = call_between(switch, user_agents)
    heard_by_alice = tmp_path / "alice.wav"
    heard_by_bob = tmp_path / "bob.wav"
    alice.media_start(outgoing, 440, str(heard_by_alice))
    bob.media_start(incoming, 1000, str(heard_by_bob))
    alice.wait_state(outgoing, "CONFIRMED", timeout=3)  # pumps alice's events
    time.sleep(3.0)
    alice.media_stop(outgoing)
    bob.media_stop(incoming)
    health = switch.health()
    alice.hangup(outgoing)
    alice.wait_state(outgoing, "DISCONNECTED", timeout=10)

    # each hears the other's tone, and its own not at all (no loop back): at least 20 dB apart
    hz, above_own = dominant_hz(heard_by_bob, own_hz=1000)
    assert abs(hz - 440) < 15 and above_own > 20, (hz, above_own, health)
    hz, above_own = dominant_hz(heard_by_alice, own_hz=440)
    assert abs(hz - 1000) < 15 and above_own > 20, (hz, above_own, health)
    assert health.get("media_calls") == 1, health


def test_echo_test_plays_the_caller_back(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice = user_agents("1001")
    assert alice.register("1001", switch.users["1001"], switch.address, switch.domain) == 200
    call = alice.call("1001", f"sip:9196@{switch.domain}")
    alice.wait_state(call, "CONFIRMED", timeout=10)
    heard = tmp_path / "echo.wav"
    alice.media_start(call, 440, str(heard))
    alice.wait_state(call, "CONFIRMED", timeout=3)
    time.sleep(2.5)
    alice.media_stop(call)
    health = switch.health()
    alice.hangup(call)
    alice.wait_state(call, "DISCONNECTED", timeout=10)
    hz, above_other = dominant_hz(heard, own_hz=1000)  # 1000 Hz: a frequency nobody plays
    assert abs(hz - 440) < 15 and above_other > 20, (hz, above_other, health)
    assert health.get("media_calls") == 1, health
    held, doc = switch.wait_idle()
    assert held, doc


def test_prompt_test_plays_the_prompt_then_a_tone_per_digit(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice = user_agents("1001")
    assert alice.register("1001", switch.users["1001"], switch.address, switch.domain) == 200
    call = alice.call("1001", f"sip:9197@{switch.domain}")
    alice.wait_state(call, "CONFIRMED", timeout=10)
    heard = tmp_path / "prompt.wav"

    alice.media_start(call, 300, str(heard))  # alice's own tone must not come back
    time.sleep(2.2)  # the 1.5 s prompt plays (media runs in pjsua's own threads)
    alice.dtmf(call, "5")
    time.sleep(1.5)
    alice.media_stop(call)
    alice.hangup(call)
    alice.wait_state(call, "DISCONNECTED", timeout=10)

    received = heard_samples(heard)
    prompt = load_prompt(ROOT / "configs" / "prompts" / "prompt-test.wav").astype(float)
    # the prompt, by normalised cross-correlation at its best offset
    score, _ = find_prompt(received, prompt)
    assert score > 0.6, score
    # then the switch's answer to the digit: the DTMF pair of 5, found in band
    detector = GoertzelDetector()
    frames = received[: len(received) // 160 * 160].reshape(-1, 160)
    digits = [d.digit for frame in frames for d in detector.process(frame)]
    assert digits == ["5"], digits


def test_pcmu_phone_talks_to_pcma_phone_through_the_switch(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    """The caller has only mu-law, the callee only A-law: the switch offers the callee both
    laws, answers the caller in its own law and translates between them in the relay."""
    alice, outgoing, bob, incoming = call_between(
        switch, user_agents, codecs=(("PCMU/8000",), ("PCMA/8000",))
    )
    heard_by_alice = tmp_path / "alice.wav"
    heard_by_bob = tmp_path / "bob.wav"
    alice.media_start(outgoing, 440, str(heard_by_alice))
    bob.media_start(incoming, 1000, str(heard_by_bob))
    alice.wait_state(outgoing, "CONFIRMED", timeout=3)
    time.sleep(2.5)
    alice.media_stop(outgoing)
    bob.media_stop(incoming)
    alice.hangup(outgoing)
    alice.wait_state(outgoing, "DISCONNECTED", timeout=10)
    # a law mix-up would be loud noise, not the other side's tone 20 dB above the own one
    hz, above_own = dominant_hz(heard_by_bob, own_hz=1000)
    assert abs(hz - 440) < 15 and above_own > 20, (hz, above_own)
    hz, above_own = dominant_hz(heard_by_alice, own_hz=440)
    assert abs(hz - 1000) < 15 and above_own > 20, (hz, above_own)
    assert "translating PCMU <-> PCMA" in switch.stderr_text()


def test_a_held_party_hears_music_on_hold_then_the_other_party_again(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    """The caller holds the callee: the callee hears the shipped music on hold, not the
    caller's tone; after the caller resumes, the callee hears the caller again."""
    alice, outgoing, bob, incoming = call_between(switch, user_agents)
    heard_by_bob = tmp_path / "bob.wav"
    alice.media_start(outgoing, 440, str(tmp_path / "alice.wav"))
    bob.media_start(incoming, 1000, str(heard_by_bob))
    marks = [time.monotonic()]
    time.sleep(1.5)
    alice.hold(outgoing)
    marks.append(time.monotonic())
    time.sleep(3.0)
    alice.unhold(outgoing)
    marks.append(time.monotonic())
    time.sleep(1.5)
    alice.media_stop(outgoing)
    bob.media_stop(incoming)
    alice.hangup(outgoing)
    alice.wait_state(outgoing, "DISCONNECTED", timeout=10)
    assert "the callee is on hold" in switch.stderr_text()

    with wave.open(str(heard_by_bob)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float)

    def window(start: float, end: float) -> np.ndarray:
        return samples[int((start - marks[0]) * rate) : int((end - marks[0]) * rate)]

    assert len(samples) > (marks[2] + 1.4 - marks[0]) * rate, (len(samples) / rate, marks)
    before = window(marks[0] + 0.5, marks[1] - 0.2)
    during = window(marks[1] + 0.5, marks[2] - 0.3)
    after = window(marks[2] + 0.6, marks[2] + 1.4)
    assert spectrum_share(before, rate, 440) > 0.5
    assert spectrum_share(during, rate, 440) < 0.05
    notes = load_prompt(ROOT / "configs" / "moh" / "default.wav")
    note_hz = (523.25, 659.25, 783.99, 880.0, 1046.5)
    share = sum(spectrum_share(during, rate, hz) for hz in note_hz)
    assert share > 0.5, share
    assert np.abs(during).max() > 1000 and len(notes) == 8 * 8000
    assert spectrum_share(after, rate, 440) > 0.5
