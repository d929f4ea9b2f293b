"""Write the demo's prompt WAVs (8 kHz, 16-bit mono) into configs/prompts/.

``prompt-test.wav``: a distinctive 1.5 s sweep and chime, easy to recognise in a recording
by correlation. ``../moh/default.wav``: the demo's music on hold, a soft 8 s loop of bell-like
notes (C major pentatonic, 523-1047 Hz: none at the 440 Hz and 1 kHz test tones). Run from the
repository root: ``python tools/prompts/make_prompts.py``.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 8000
OUT = Path(__file__).resolve().parents[2] / "configs" / "prompts"
MOH = Path(__file__).resolve().parents[2] / "configs" / "moh"
#: the notes of the music on hold (Hz), one every half second
MOH_NOTES = (523.25, 659.25, 783.99, 880.0, 1046.5, 880.0, 783.99, 659.25) * 2


def prompt_test() -> np.ndarray:
    t = np.arange(int(RATE * 1.0)) / RATE
    sweep = np.sin(2 * np.pi * (300 * t + 700 * t * t))  # 300 -> 1700 Hz over 1 s
    t2 = np.arange(int(RATE * 0.5)) / RATE
    chime = (np.sin(2 * np.pi * 660 * t2) + np.sin(2 * np.pi * 990 * t2)) * np.exp(-4 * t2) / 2
    signal = np.concatenate([sweep * 0.5, chime * 0.6])
    fade = np.minimum(1.0, np.minimum(np.arange(len(signal)), np.arange(len(signal))[::-1]) / 80)
    return np.round(signal * fade * 16000).astype("<i2")


def music_on_hold() -> np.ndarray:
    note = int(RATE * 0.5)
    t = np.arange(note) / RATE
    envelope = np.exp(-5 * t) * np.minimum(1.0, np.arange(note) / 40)
    parts = [
        (np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(2 * np.pi * 2 * hz * t)) * envelope / 1.3
        for hz in MOH_NOTES
    ]
    return np.round(np.concatenate(parts) * 9000).astype("<i2")


def write(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    write(OUT / "prompt-test.wav", prompt_test())
    print(f"wrote {OUT / 'prompt-test.wav'}")
    MOH.mkdir(parents=True, exist_ok=True)
    write(MOH / "default.wav", music_on_hold())
    print(f"wrote {MOH / 'default.wav'}")
