"""Speak the demo dialplan's prompts with espeak-ng into configs/prompts/demo/ (8 kHz mono WAV).

The WAVs are committed, so a fresh checkout has them without espeak-ng; run this again after
changing a text (``apt install espeak-ng``, then from the repository root:
``python tools/prompts/speak_prompts.py [NAME...]``; with names, only those prompts).
espeak-ng writes 22.05 kHz; the switch's own loader resamples to 8 kHz
(``media.player.load_prompt``), and the result is normalised to -3 dBFS peak so that every
prompt plays at the same level.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from media.player import load_prompt  # noqa: E402 - after the path is set

OUT = ROOT / "configs" / "prompts" / "demo"

TEXTS: dict[str, str] = {
    "main-menu": "Welcome to the demo contact center. For orders and general questions, "
    "press 1. For changes to your account, press 2. For the operator, press 0.",
    "operator-busy": "The operator cannot take your call. Please leave a message after the "
    "tone.",
    "invalid": "Sorry, that is not one of the choices.",
    "no-input": "We did not hear your choice.",
    "goodbye": "Thank you for calling. Goodbye.",
    "member-number": "Please enter your member number, then press the hash key.",
    "member-unknown": "Sorry, we could not find that member number.",
    "crm-down": "We cannot check your membership right now. An agent will help you.",
    "hold-general": "Thank you. Please hold for the next available agent.",
    "hold-account": "Thank you, we have found your account. Please hold for an account "
    "specialist.",
    "queue-position": "You are caller number",
    "queue-wait": "Your estimated wait is about",
    "minutes": "minutes.",
    "queue-wait-short": "Your wait should be less than a minute.",
    "queue-wait-long": "Your wait may be more than twenty minutes.",
    "number-many": "more than twenty.",
    "queue-timeout": "All our agents are still busy. Please leave a message after the tone.",
    "queue-full": "All our agents are busy and we cannot hold your call. Please call again "
    "later. Goodbye.",
    "queue-periodic": "Thank you for waiting. Your call is important to us. To be called back "
    "instead, keeping your place, press 5. To return to the main menu, press star.",
    "queue-callback": "Thank you. We will call you back when it is your turn. Goodbye.",
    **{
        f"number-{n}": word
        for n, word in enumerate(
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
            "fifteen sixteen seventeen eighteen nineteen twenty".split(),
            start=1,
        )
    },
    "closed": "Thank you for calling. We are closed now. Our opening hours are Monday to "
    "Friday, nine to six. Please leave a message after the tone.",
}


def speak(text: str, voice: str = "en-us", speed: int = 170) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True
        )
        samples = np.asarray(load_prompt(raw), dtype=np.float64)
    loud = np.flatnonzero(np.abs(samples) > 300)
    if len(loud):  # espeak-ng pads with silence: keep 100 ms around the voice
        samples = samples[max(0, loud[0] - 800) : loud[-1] + 800]
    peak = float(np.max(np.abs(samples))) or 1.0
    lead = np.zeros(1600)  # 200 ms of silence before the voice
    return np.round(np.concatenate([lead, samples * (23197 / peak)])).astype("<i2")


def main() -> int:
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt install espeak-ng)", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    for name, text in TEXTS.items():
        if only and name not in only:
            continue
        samples = speak(text)
        with wave.open(str(OUT / f"{name}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(samples.tobytes())
        print(f"wrote {OUT / name}.wav ({len(samples) / 8000:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
