"""Voice activity: what the WebRTC detector says on robust synthetic signals; smoothing; stats."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media.vad import TalkStats, TalkSummary, VoiceActivity

RATE = 8000
FRAME = 160


def frames(signal: npt.NDArray[np.float64]) -> list[npt.NDArray[np.int16]]:
    pcm = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def resonator(x: npt.NDArray[np.float64], freq: float, bandwidth: float) -> npt.NDArray[np.float64]:
    """Two-pole resonance (one formant), y[n] = x[n] + 2r cos(w) y[n-1] - r^2 y[n-2]."""
    r = np.exp(-np.pi * bandwidth / RATE)
    a1, a2 = 2 * r * np.cos(2 * np.pi * freq / RATE), -r * r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    for n, value in enumerate(x):
        y1, y2 = value + a1 * y1 + a2 * y2, y1
        y[n] = y1
    return y


def voiced(seconds: float) -> npt.NDArray[np.float64]:
    """A vowel-like signal: a 110-130 Hz glottal pulse train through three formants."""
    t = np.arange(round(RATE * seconds)) / RATE
    phase = np.cumsum(2 * np.pi * (120 + 10 * np.sin(2 * np.pi * 3 * t)) / RATE)
    pulses = (np.diff(np.floor(phase / (2 * np.pi)), prepend=0.0) > 0).astype(np.float64)
    out = pulses
    for freq, bandwidth in ((700, 130), (1220, 70), (2600, 160)):
        out = resonator(out, freq, bandwidth)
    scaled: npt.NDArray[np.float64] = out / np.max(np.abs(out)) * 12000
    return scaled


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_digital_silence_is_never_speech(mode: int) -> None:
    vad = VoiceActivity(mode=mode, hangover_frames=0)
    results = [vad.update(frame) for frame in frames(np.zeros(RATE * 2))]
    assert not any(results)
    assert not vad.last_raw


def test_voiced_signal_is_speech_then_hangover_then_silence() -> None:
    vad = VoiceActivity(mode=2, hangover_frames=5)
    signal = np.concatenate([np.zeros(RATE), voiced(1.0), np.zeros(RATE)])
    decisions = [vad.update(frame) for frame in frames(signal)]
    raw_speech = decisions[50:100]
    assert sum(raw_speech) >= 45  # the voiced second is (almost all) speech
    assert not any(decisions[:50])
    # The hangover keeps speech for 5 frames after the last raw speech frame, then ends.
    assert not any(decisions[120:])
    last_speech = max(i for i, value in enumerate(decisions) if value)
    assert last_speech >= 100


def test_hangover_and_onset_smoothing_with_a_scripted_detector() -> None:
    vad = VoiceActivity(hangover_frames=2, onset_frames=2)
    script = iter([True, False, True, True, False, False, False, True])
    vad._vad = type("Scripted", (), {"is_speech": lambda self, pcm, rate: next(script)})()
    zero = np.zeros(FRAME, np.int16)
    got = [vad.update(zero) for _ in range(8)]
    # onset needs two in a row; then two frames of hangover after the last speech frame.
    assert got == [False, False, False, True, True, True, False, False]


def test_frame_size_and_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        VoiceActivity().update(np.zeros(80, np.int16))
    with pytest.raises(ValueError):
        VoiceActivity(mode=4)
    with pytest.raises(ValueError):
        VoiceActivity(sample_rate=11025)
    assert VoiceActivity(sample_rate=16000).frame_samples == 320


def test_talk_stats_accumulate() -> None:
    stats = TalkStats()
    pattern = [False] * 10 + [True] * 25 + [False] * 5 + [True] * 15 + [False] * 3
    for speech in pattern:
        stats.add(speech)
    summary = stats.summary()
    assert isinstance(summary, TalkSummary)
    assert summary.talk_seconds == pytest.approx(0.8)
    assert summary.silence_seconds == pytest.approx(0.36)
    assert summary.spurts == 2
    assert stats.silence_run_seconds == pytest.approx(0.06)
    stats.add(True)
    assert stats.spurts == 3
    assert stats.silence_run_frames == 0


def test_talk_stats_from_the_detector() -> None:
    vad = VoiceActivity(mode=2, hangover_frames=3)
    stats = TalkStats()
    burst = voiced(0.6)
    gap = np.zeros(RATE // 2)
    for frame in frames(np.concatenate([gap, burst, gap, burst, gap])):
        stats.add(vad.update(frame))
    summary = stats.summary()
    assert summary.spurts == 2
    # At least the two bursts; at most the bursts plus both hangovers (the detector keeps
    # speech for a few frames itself, then this wrapper's 3 frames) with margin.
    assert 1.1 <= summary.talk_seconds <= 1.2 + 2 * (0.06 + 0.2)
    assert stats.silence_run_seconds >= 0.2
    assert summary.talk_seconds + summary.silence_seconds == pytest.approx(2.7)
