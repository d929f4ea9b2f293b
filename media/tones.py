"""Call-progress tones and DTMF as int16 sample arrays at 8 kHz.

Levels are given in dBm0.  ITU-T G.711 §5 puts a 0 dBm0 sine 3.17 dB (mu-law) / 3.14 dB (A-law)
below the theoretical load capacity T_max, the largest magnitude the coder represents (8159 in
the 14-bit units of Table 2/G.711, 32636 in 16-bit linear).  This module uses the mu-law figure
for both laws (the two differ by 0.03 dB): a 0 dBm0 sine has a peak of about 22 683.

Tones:

* single- and multi-frequency tones (``tone``), continuous or cadenced (``ToneSpec``);
* North American call progress (the "precise tone plan": ringback 440+480 Hz at -19 dBm0 per
  frequency, 2 s on / 4 s off; busy 480+620 Hz at -24 dBm0, 0.5 s / 0.5 s), a European ringing
  tone (ITU-T E.180 / ETSI: 425 Hz, 1 s on / 4 s off by default, configurable) and a 1000 Hz beep;
* DTMF pairs for the 16 keys of ITU-T Q.23 (rows 697/770/852/941 Hz, columns
  1209/1336/1477/1633 Hz) with per-group level and twist;
* ``ToneGenerator``: consecutive 20 ms frames (160 samples) of a tone with continuous phase,
  because every sample is computed from its absolute position in the signal.

Pure computation: no I/O, no clock.  Periodic tones are rendered once per spec (a bounded cache
of 32 specs of at most 20 s each) so that a thousand legs hearing ringback cost a slice each.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BEEP",
    "BUSY_NA",
    "DBM0_PEAK",
    "DTMF_COLUMN_HZ",
    "DTMF_DIGITS",
    "DTMF_FREQUENCIES",
    "DTMF_ROW_HZ",
    "FRAME_SAMPLES",
    "RINGBACK_EUROPE",
    "RINGBACK_NA",
    "SAMPLE_RATE",
    "ToneGenerator",
    "ToneSpec",
    "dbm0_to_peak",
    "dtmf",
    "dtmf_sequence",
    "dtmf_spec",
    "render",
    "ringback_europe",
    "tone",
]

Samples = npt.NDArray[np.int16]

SAMPLE_RATE: Final = 8000
FRAME_SAMPLES: Final = 160
"""20 ms at 8 kHz, the default RTP packet time (RFC 3551 §4.5)."""

ULAW_TMAX_DBM0: Final = 3.17
"""Theoretical load capacity of the mu-law coder in dBm0 (G.711 §5)."""
TMAX_LINEAR: Final = 8159 * 4
"""T_max in 16-bit linear units: the top decision value of Table 2/G.711, scaled by 4."""
DBM0_PEAK: Final = TMAX_LINEAR * 10 ** (-ULAW_TMAX_DBM0 / 20)
"""Peak amplitude of a 0 dBm0 sine in 16-bit linear units (about 22 683)."""

_INT16_MAX: Final = 32767


def dbm0_to_peak(level_dbm0: float) -> float:
    """Peak amplitude (16-bit linear) of a sine at ``level_dbm0`` (G.711 §5 reference)."""
    return DBM0_PEAK * 10 ** (level_dbm0 / 20)


@dataclass(frozen=True, slots=True)
class ToneSpec:
    """A tone: frequencies with one level each, optionally cadenced.

    ``levels_dbm0`` holds one level per frequency, or a single level for all of them.
    ``cadence_ms`` alternates on and off durations (``(2000, 4000)`` for ringback); empty means
    a continuous tone.  Each burst starts at phase zero; the cadence repeats forever.
    """

    frequencies: tuple[float, ...]
    levels_dbm0: tuple[float, ...] = (-13.0,)
    cadence_ms: tuple[int, ...] = ()
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if not self.frequencies:
            raise ValueError("a tone needs at least one frequency")
        nyquist = self.sample_rate / 2
        for frequency in self.frequencies:
            if not 0 < frequency < nyquist:
                raise ValueError(f"{frequency} Hz is outside (0, {nyquist}) Hz")
        if len(self.levels_dbm0) not in (1, len(self.frequencies)):
            raise ValueError("give one level, or one level per frequency")
        if self.peak() > _INT16_MAX:
            raise ValueError(f"levels {self.levels_dbm0} dBm0 would clip 16-bit samples")
        if len(self.cadence_ms) % 2:
            raise ValueError("a cadence alternates on and off: it needs an even count")
        for duration in self.cadence_ms:
            if duration <= 0 or (duration * self.sample_rate) % 1000:
                raise ValueError(f"cadence step {duration} ms is not a whole number of samples")
        if self.cadence_ms and sum(self.cadence_ms[0::2]) == 0:
            raise ValueError("a cadence needs some time on")

    def peaks(self) -> tuple[float, ...]:
        """Peak amplitude of each frequency component (16-bit linear)."""
        levels = self.levels_dbm0 * len(self.frequencies)
        return tuple(dbm0_to_peak(level) for level in levels[: len(self.frequencies)])

    def peak(self) -> float:
        """Largest possible magnitude of the sum of the components."""
        return sum(self.peaks())

    def cadence_samples(self) -> tuple[int, ...]:
        """The cadence in samples (on, off, on, off, ...); empty for a continuous tone."""
        return tuple(duration * self.sample_rate // 1000 for duration in self.cadence_ms)

    def period_samples(self) -> int | None:
        """Samples after which the signal repeats exactly, or None if it never does.

        A cadenced tone restarts its bursts at phase zero, so it repeats every cycle.  A
        continuous tone of whole-hertz frequencies repeats after ``rate / gcd(rate, f...)``.
        """
        if self.cadence_ms:
            return self.cycle_samples()
        if not all(float(frequency).is_integer() for frequency in self.frequencies):
            return None
        common = math.gcd(self.sample_rate, *(int(f) for f in self.frequencies))
        return self.sample_rate // common

    def cycle_samples(self) -> int:
        """Length of one cadence cycle in samples; one second for a continuous tone."""
        return sum(self.cadence_samples()) or self.sample_rate


def _sines(spec: ToneSpec, elapsed: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Sum of the spec's sines at sample offsets ``elapsed`` from phase zero."""
    out = np.zeros(elapsed.shape, dtype=np.float64)
    rate = spec.sample_rate
    for frequency, peak in zip(spec.frequencies, spec.peaks(), strict=True):
        # Reduce f*n modulo the sample rate before scaling so the phase stays exact for long
        # signals (for integer frequencies the product is an exact integer in float64).
        cycles = np.fmod(elapsed * float(frequency), float(rate)) / rate
        out += peak * np.sin(2 * math.pi * cycles)
    return out


def render(spec: ToneSpec, start: int, count: int) -> Samples:
    """Samples ``start`` .. ``start + count - 1`` of the signal ``spec`` describes.

    The value of a sample depends only on its index, so consecutive calls join without a phase
    jump.  Off periods of a cadence are digital silence.  A periodic signal (every cadenced
    tone, and continuous tones of whole-hertz frequencies) is rendered once per spec into a
    small bounded cache and sliced from there.
    """
    if start < 0 or count < 0:
        raise ValueError("start and count must not be negative")
    period = spec.period_samples()
    if period is None or period > _MAX_CACHED_PERIOD:
        return _render_direct(spec, start, count)
    cycle = _cycle(spec)
    offset = start % period
    if offset + count <= period:
        return cycle[offset : offset + count].copy()
    return np.take(cycle, np.arange(offset, offset + count) % period)


_MAX_CACHED_PERIOD: Final = 20 * SAMPLE_RATE
"""Periods longer than 20 s are not cached (one cached cycle costs 2 bytes per sample)."""


@functools.lru_cache(maxsize=32)
def _cycle(spec: ToneSpec) -> Samples:
    """One period of a periodic spec, read-only; at most 32 specs are kept."""
    cycle = _render_direct(spec, 0, spec.period_samples() or spec.cycle_samples())
    cycle.flags.writeable = False
    return cycle


def _render_direct(spec: ToneSpec, start: int, count: int) -> Samples:
    index = np.arange(start, start + count, dtype=np.int64)
    cadence = spec.cadence_samples()
    if not cadence:
        signal = _sines(spec, index)
    else:
        bounds = np.cumsum((0, *cadence), dtype=np.int64)  # start of each step in a cycle
        position = index % bounds[-1]
        step = np.searchsorted(bounds, position, side="right") - 1
        on = step % 2 == 0
        elapsed = position - bounds[step]
        signal = np.where(on, _sines(spec, elapsed), 0.0)
    return np.rint(signal).astype(np.int16)


def tone(
    frequencies: tuple[float, ...] | float,
    duration_ms: int,
    level_dbm0: float = -13.0,
    sample_rate: int = SAMPLE_RATE,
) -> Samples:
    """A continuous tone of one or more frequencies, each at ``level_dbm0``."""
    if isinstance(frequencies, int | float):
        frequencies = (frequencies,)
    spec = ToneSpec(tuple(frequencies), (level_dbm0,), sample_rate=sample_rate)
    return render(spec, 0, _duration_samples(duration_ms, sample_rate))


def _duration_samples(duration_ms: int, sample_rate: int) -> int:
    samples, remainder = divmod(duration_ms * sample_rate, 1000)
    if duration_ms < 0 or remainder:
        raise ValueError(f"{duration_ms} ms is not a whole number of samples")
    return samples


RINGBACK_NA: Final = ToneSpec((440.0, 480.0), (-19.0,), (2000, 4000))
"""North American audible ringing: 440+480 Hz, -19 dBm0 per frequency, 2 s on / 4 s off."""
BUSY_NA: Final = ToneSpec((480.0, 620.0), (-24.0,), (500, 500))
"""North American busy: 480+620 Hz, -24 dBm0 per frequency, 0.5 s on / 0.5 s off."""
BEEP: Final = ToneSpec((1000.0,), (-13.0,))
"""A 1000 Hz beep (continuous; the caller chooses its length, typically 200-500 ms)."""


def ringback_europe(
    frequency: float = 425.0,
    on_ms: int = 1000,
    off_ms: int = 4000,
    level_dbm0: float = -13.0,
) -> ToneSpec:
    """European ringing tone (ITU-T E.180 425 Hz); the cadence differs per country."""
    return ToneSpec((frequency,), (level_dbm0,), (on_ms, off_ms))


RINGBACK_EUROPE: Final = ringback_europe()

DTMF_ROW_HZ: Final = (697.0, 770.0, 852.0, 941.0)
"""Low group frequencies of ITU-T Q.23."""
DTMF_COLUMN_HZ: Final = (1209.0, 1336.0, 1477.0, 1633.0)
"""High group frequencies of ITU-T Q.23."""
DTMF_DIGITS: Final = "0123456789*#ABCD"
_KEYPAD: Final = ("123A", "456B", "789C", "*0#D")
DTMF_FREQUENCIES: Final = MappingProxyType(
    {
        key: (DTMF_ROW_HZ[row], DTMF_COLUMN_HZ[column])
        for row, keys in enumerate(_KEYPAD)
        for column, key in enumerate(keys)
    }
)
"""Digit -> (low group Hz, high group Hz), ITU-T Q.23 keypad layout."""


def dtmf_spec(digit: str, level_dbm0: float = -7.0, twist_db: float = 0.0) -> ToneSpec:
    """The continuous tone pair of ``digit``: low group at ``level_dbm0``, high group at
    ``level_dbm0 + twist_db`` (a positive twist makes the high group louder, ITU-T Q.24)."""
    pair = DTMF_FREQUENCIES.get(digit.upper()) if len(digit) == 1 else None
    if pair is None:
        raise ValueError(f"{digit!r} is not a DTMF digit (one of {DTMF_DIGITS})")
    return ToneSpec(pair, (level_dbm0, level_dbm0 + twist_db))


def dtmf(
    digit: str, duration_ms: int = 100, level_dbm0: float = -7.0, twist_db: float = 0.0
) -> Samples:
    """The tone pair of one DTMF digit (0-9, *, #, A-D) for ``duration_ms``."""
    spec = dtmf_spec(digit, level_dbm0, twist_db)
    return render(spec, 0, _duration_samples(duration_ms, spec.sample_rate))


def dtmf_sequence(
    digits: str,
    on_ms: int = 100,
    off_ms: int = 100,
    level_dbm0: float = -7.0,
    twist_db: float = 0.0,
) -> Samples:
    """Digits one after another, each ``on_ms`` of tone followed by ``off_ms`` of silence."""
    gap = np.zeros(_duration_samples(off_ms, SAMPLE_RATE), dtype=np.int16)
    parts: list[Samples] = []
    for digit in digits:
        parts += [dtmf(digit, on_ms, level_dbm0, twist_db), gap]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


class ToneGenerator:
    """Consecutive frames of a tone, ``frame_samples`` (160 = 20 ms) at a time.

    Iterating never ends; ``next_frame()`` is the same without the iterator protocol.  The phase
    runs on across frames (each sample is computed from its absolute index), so the frames
    joined are exactly the signal rendered in one piece.
    """

    __slots__ = ("_frame_samples", "_position", "_spec")

    def __init__(self, spec: ToneSpec, frame_samples: int = FRAME_SAMPLES, start: int = 0) -> None:
        if frame_samples <= 0:
            raise ValueError("frame_samples must be positive")
        if start < 0:
            raise ValueError("start must not be negative")
        self._spec = spec
        self._frame_samples = frame_samples
        self._position = start

    @property
    def spec(self) -> ToneSpec:
        return self._spec

    @property
    def position(self) -> int:
        """Index of the first sample of the next frame."""
        return self._position

    def next_frame(self) -> Samples:
        frame = render(self._spec, self._position, self._frame_samples)
        self._position += self._frame_samples
        return frame

    def reset(self, start: int = 0) -> None:
        """Start over at sample ``start`` (0: the beginning of the first burst)."""
        if start < 0:
            raise ValueError("start must not be negative")
        self._position = start

    def __iter__(self) -> Iterator[Samples]:
        return self

    def __next__(self) -> Samples:
        return self.next_frame()
