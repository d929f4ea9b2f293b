"""Write the demo's prompt WAVs (8 kHz, 16-bit mono) into configs/prompts/.

``prompt-test.wav``: a distinctive 1.5 s sweep and chime, easy to recognise in a recording
by correlation. Run from the repository root: ``python tools/prompts/make_prompts.py``.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 8000
OUT = Path(__file__).resolve().parents[2] / "configs" / "prompts"


def prompt_test() -> np.ndarray:
    t = np.arange(int(RATE * 1.0)) / RATE
    sweep = np.sin(2 * np.pi * (300 * t + 700 * t * t))  # 300 -> 1700 Hz over 1 s
    t2 = np.arange(int(RATE * 0.5)) / RATE
    chime = (np.sin(2 * np.pi * 660 * t2) + np.sin(2 * np.pi * 990 * t2)) * np.exp(-4 * t2) / 2
    signal = np.concatenate([sweep * 0.5, chime * 0.6])
    fade = np.minimum(1.0, np.minimum(np.arange(len(signal)), np.arange(len(signal))[::-1]) / 80)
    return np.round(signal * fade * 16000).astype("<i2")


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
