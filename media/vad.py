"""Voice activity detection over 20 ms frames (the WebRTC VAD), with hangover and talk time.

``VoiceActivity`` wraps ``webrtcvad.Vad`` (the GMM voice activity detector of the WebRTC
project): it takes one frame of int16 linear samples (160 at 8 kHz, i.e. one G.711 packet of
RFC 3551 §4.5's default 20 ms packet time) and says speech or not.  The raw per-frame decision
flickers inside words; a hangover keeps "speech" for ``hangover_frames`` frames after the last
speech frame (the usual VAD hangover, as in ITU-T G.729 Annex B and the silence suppression of
RFC 3389), and ``onset_frames`` consecutive speech frames may be required before speech starts.

``TalkStats`` accumulates talk and silence time and the number of talk spurts of one party,
the figures kept with a call's record; ``silence_run_seconds`` serves silence detection while
recording.

What the detector says about synthetic signals (checked in the tests, mode 2, 8 kHz): digital
silence is never speech; a loud voiced signal (a pulse train through formant resonators) is
speech, and the detector itself keeps calling speech for about 100 ms after a voiced burst
ends (its own hangover, before the one added here).  Steady tones and loud white noise are
also reported as speech, so this is an energy- and spectrum-based detector, not a speech
recogniser: do not use it to tell a tone from a voice.

Pure computation: no clock, no I/O; durations come from frame counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import webrtcvad

__all__ = [
    "FRAME_MS",
    "SUPPORTED_RATES",
    "TalkStats",
    "TalkSummary",
    "VoiceActivity",
]

FRAME_MS: Final = 20
"""Frame duration taken by ``VoiceActivity``: 160 samples at 8 kHz."""
SUPPORTED_RATES: Final = (8000, 16000, 32000, 48000)
"""Sample rates the WebRTC VAD accepts."""


class VoiceActivity:
    """Speech / non-speech per 20 ms frame, smoothed with onset and hangover.

    ``mode`` is the WebRTC aggressiveness, 0 (least: more frames called speech) to 3 (most).
    ``update(frame)`` returns the smoothed decision; ``last_raw`` is the detector's own.
    """

    def __init__(
        self,
        mode: int = 2,
        sample_rate: int = 8000,
        *,
        hangover_frames: int = 10,
        onset_frames: int = 1,
    ) -> None:
        if mode not in (0, 1, 2, 3):
            raise ValueError(f"VAD mode must be 0..3, not {mode}")
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"VAD sample rate must be one of {SUPPORTED_RATES}, not {sample_rate}")
        if hangover_frames < 0 or onset_frames < 1:
            raise ValueError("hangover_frames must be >= 0 and onset_frames >= 1")
        self.mode = mode
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * FRAME_MS // 1000
        self.hangover_frames = hangover_frames
        self.onset_frames = onset_frames
        self._vad = webrtcvad.Vad(mode)
        self._run = 0  # consecutive raw speech frames
        self._hang = 0  # frames of hangover left
        self._speaking = False
        self.last_raw = False

    @property
    def speaking(self) -> bool:
        """The smoothed decision for the last frame."""
        return self._speaking

    def update(self, frame: npt.NDArray[np.int16]) -> bool:
        """Classify one frame (``frame_samples`` int16 samples); return the smoothed decision."""
        if frame.shape != (self.frame_samples,):
            raise ValueError(f"a VAD frame is {self.frame_samples} samples, not {frame.shape}")
        pcm = frame.astype("<i2", copy=False).tobytes()
        raw = bool(self._vad.is_speech(pcm, self.sample_rate))
        self.last_raw = raw
        if raw:
            self._run += 1
            if self._speaking or self._run >= self.onset_frames:
                self._speaking = True
                self._hang = self.hangover_frames
        else:
            self._run = 0
            if self._speaking:
                if self._hang > 0:
                    self._hang -= 1
                else:
                    self._speaking = False
        return self._speaking

    def reset(self) -> None:
        """Forget the smoothing state (the detector's own adaptation is kept)."""
        self._run = 0
        self._hang = 0
        self._speaking = False
        self.last_raw = False


@dataclass(frozen=True, slots=True)
class TalkSummary:
    """Talk figures of one party: seconds of talk and silence and the number of talk spurts."""

    talk_seconds: float
    silence_seconds: float
    spurts: int


class TalkStats:
    """Accumulates per-frame speech decisions of one party into talk and silence time."""

    def __init__(self, frame_ms: int = FRAME_MS) -> None:
        if frame_ms <= 0:
            raise ValueError("frame_ms must be positive")
        self.frame_ms = frame_ms
        self.talk_frames = 0
        self.silence_frames = 0
        self.spurts = 0
        """Talk spurts: transitions into speech (a first frame of speech counts as one)."""
        self.silence_run_frames = 0
        """Consecutive non-speech frames up to now (0 while talking)."""
        self._talking = False

    def add(self, speech: bool) -> None:
        """Count one frame."""
        if speech:
            self.talk_frames += 1
            self.silence_run_frames = 0
            if not self._talking:
                self.spurts += 1
        else:
            self.silence_frames += 1
            self.silence_run_frames += 1
        self._talking = speech

    @property
    def talk_seconds(self) -> float:
        return self.talk_frames * self.frame_ms / 1000

    @property
    def silence_seconds(self) -> float:
        return self.silence_frames * self.frame_ms / 1000

    @property
    def silence_run_seconds(self) -> float:
        return self.silence_run_frames * self.frame_ms / 1000

    def summary(self) -> TalkSummary:
        return TalkSummary(self.talk_seconds, self.silence_seconds, self.spurts)
