"""What a pjsua2 phone heard, analysed: recordings read at 8 kHz, prompts found by
normalised cross-correlation, tones by their spectrum. Shared by the interop tests."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.player import load_prompt, resample

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "configs" / "prompts"
RATE = 8000

#: what the switch plays between a voicemail greeting and the recording
#: (softswitch/apps/channel.py)
GAP_SECONDS = 0.2
BEEP_SECONDS = 0.4

Samples = npt.NDArray[np.float64]


def heard_samples(path: Path) -> Samples:
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


def correlation(heard: Samples, prompt: Samples) -> Samples:
    """The normalised cross-correlation of ``prompt`` at every offset of ``heard`` (1.0 = the
    same waveform up to a gain), computed through the FFT (a direct one over a 10 s prompt
    would take minutes). Near-silent stretches (RMS under 10) score 0: their ratio is
    rounding noise."""
    span = len(heard) - len(prompt) + 1
    assert span > 0, f"heard {len(heard) / RATE:.1f} s, shorter than the prompt"
    size = 1 << (len(heard) + len(prompt) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(prompt, size)), size)[:span]
    power = np.concatenate(([0.0], np.cumsum(heard * heard)))
    window = np.sqrt(np.maximum(power[len(prompt) :] - power[:span], 0.0))
    audible = window > 10.0 * np.sqrt(len(prompt))
    scores = np.where(audible, corr / np.where(audible, window, 1.0), 0.0) / np.linalg.norm(prompt)
    return np.asarray(scores, dtype=np.float64)


def find_prompt(heard: Samples, prompt: Samples) -> tuple[float, int]:
    """Where ``prompt`` sits in ``heard``: the best normalised cross-correlation and the
    sample offset it was found at."""
    scores = correlation(heard, prompt)
    best = int(np.argmax(scores))
    return float(scores[best]), best


def follow_prompt(heard: Samples, name: str) -> tuple[float, int]:
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


def beep_share(heard: Samples, end_of_greeting: int) -> float:
    """The share of 1 kHz in the middle 240 ms of where the beep belongs (after the gap)."""
    start = end_of_greeting + int((GAP_SECONDS + 0.08) * RATE)
    window = heard[start : start + int((BEEP_SECONDS - 0.16) * RATE)]
    assert len(window) > RATE // 5, f"the recording ends {len(heard) - start} samples after the gap"
    return spectrum_share(window, RATE, 1000.0)


def prompt_seconds(name: str) -> float:
    return len(load_prompt(PROMPTS / f"{name}.wav")) / RATE


def dominant_hz(path: Path, own_hz: float) -> tuple[float, float]:
    """The strongest frequency of a WAV, and how many dB it stands above ``own_hz``."""
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
        channels = wav.getnchannels()
    samples = np.frombuffer(raw, dtype="<i2").astype(float)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    samples = samples[len(samples) // 4 :]  # skip the call's first moments
    assert len(samples) > rate // 2, f"{path.name}: only {len(samples)} samples"
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    peak = int(np.argmax(spectrum[1:])) + 1

    def band(hz: float) -> float:
        i = int(round(hz / (freqs[1] - freqs[0])))
        return float(spectrum[max(1, i - 5) : i + 6].sum())

    return float(freqs[peak]), 10 * float(np.log10(band(freqs[peak]) / max(band(own_hz), 1e-9)))


def spectrum_share(samples: Samples, rate: int, hz: float) -> float:
    """The share of a signal's power within 15 Hz of ``hz``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[np.abs(freqs - hz) < 15].sum() / max(spectrum.sum(), 1e-9))
