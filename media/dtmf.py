"""DTMF: RFC 4733 telephone-events, an in-band Goertzel detector and SIP INFO relay bodies.

Three ways a digit reaches the switch, each ending in one typed event, `DtmfReceived`:

* RFC 4733 named telephone-events on the payload type the SDP negotiated
  (`TelephoneEvent`, `Rfc4733Receiver`, `Rfc4733Sender`);
* DTMF tones in the audio itself, for peers that do not send events (`GoertzelDetector`, checks
  in the style of ITU-T Q.24);
* SIP INFO bodies of type application/dtmf-relay or application/dtmf (`parse_dtmf_relay`).

Everything here is sans-I/O: times are passed in as `now` (monotonic seconds) and nothing reads a
clock or a socket.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "DIGITS",
    "DtmfReceived",
    "EventPacket",
    "GoertzelDetector",
    "InbandConfig",
    "MalformedEventError",
    "Rfc4733Receiver",
    "Rfc4733Sender",
    "TelephoneEvent",
    "digit_for_event",
    "event_for_digit",
    "goertzel_power",
    "parse_dtmf_relay",
]

#: The sixteen DTMF digits in RFC 4733 §3.2 event-code order: 0-9 are codes 0-9, then
#: ``*`` = 10, ``#`` = 11 and A-D = 12-15.
DIGITS: Final = "0123456789*#ABCD"

_EVENT_BY_DIGIT: Final = {d: i for i, d in enumerate(DIGITS)}


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A digit the far end pressed, reported once, whichever way it arrived.

    `duration_ms` is how long the key was held as far as the source tells (RFC 4733 duration
    field, measured tone length, or the Duration of a SIP INFO body). `source` is ``"rfc4733"``,
    ``"inband"`` or ``"sip-info"``.
    """

    digit: str
    duration_ms: int
    source: str = "rfc4733"


def digit_for_event(event: int) -> str | None:
    """The DTMF digit of an RFC 4733 §3.2 event code, or None for codes other than 0-15."""
    if 0 <= event < len(DIGITS):
        return DIGITS[event]
    return None


def event_for_digit(digit: str) -> int:
    """The RFC 4733 §3.2 event code of a DTMF digit (``a``-``d`` accepted as A-D).

    Raises ValueError when `digit` is not one of the sixteen DTMF digits (a caller's mistake).
    """
    code = _EVENT_BY_DIGIT.get(digit.upper())
    if code is None:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return code


# --------------------------------------------------------------------------------------------
# RFC 4733 telephone-events
# --------------------------------------------------------------------------------------------


class MalformedEventError(ValueError):
    """A peer sent a telephone-event payload that does not follow RFC 4733 §2.3."""


_EVENT_STRUCT: Final = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The RFC 4733 §2.3 payload of a named telephone-event::

         0                   1                   2                   3
         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |     event     |E|R| volume    |          duration             |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

    `volume` is the power level in -dBm0 (0-63, §2.3.4); `duration` is in RTP timestamp units
    since the event's start (§2.3.5). The reserved bit is sent as zero and ignored on receipt.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 0xFF:
            raise ValueError(f"event code out of range: {self.event}")
        if not 0 <= self.volume <= 0x3F:
            raise ValueError(f"volume out of range (0-63): {self.volume}")
        if not 0 <= self.duration <= 0xFFFF:
            raise ValueError(f"duration out of range (0-65535): {self.duration}")

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Parse the first event block of a payload (§2.3); trailing bytes are ignored.

        Raises MalformedEventError when fewer than four bytes are given.
        """
        if len(data) < _EVENT_STRUCT.size:
            raise MalformedEventError(f"telephone-event payload of {len(data)} bytes, need 4")
        event, flags, duration = _EVENT_STRUCT.unpack_from(data)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def __bytes__(self) -> bytes:
        flags = (0x80 if self.end else 0) | self.volume
        return _EVENT_STRUCT.pack(self.event, flags, self.duration)


_TS_MOD: Final = 1 << 32


@dataclass(slots=True)
class _OpenEvent:
    timestamp: int
    event: int
    duration: int  # samples, including completed 0xFFFF segments of a long event
    segment_base: int  # samples of the completed segments before the current timestamp
    last_seen: float


class Rfc4733Receiver:
    """Turns a stream of telephone-event packets into one `DtmfReceived` per event.

    Implements the receiver rules of RFC 4733 §2.5.2: every packet of one event carries the
    event's start time as its RTP timestamp (§2.5.1.3), so the timestamp is the key. The end
    packet is sent three times (§2.5.1.4) and counted once; a new timestamp starts a new event
    even when the digit is the same; an event whose end packets were all lost is reported when
    the next event starts or when no packet has arrived for `timeout` seconds (see
    `next_deadline` / `handle_timer`); late or reordered packets of an event already reported
    are ignored. Updates can arrive out of order, so the largest duration seen wins. A long
    event split into 0xFFFF-sample segments (§2.5.1.5) is joined into one.

    The caller feeds only packets of the telephone-event payload type named in the SDP. Event
    codes other than the sixteen DTMF digits (§3.2) are ignored. Memory is bounded: one open
    event plus the last `memory` reported timestamps.
    """

    #: How far back (in RTP timestamp units) a timestamp counts as a late packet of an old
    #: event rather than a new event; beyond it the stream is taken to have restarted.
    STALE_WINDOW: Final = 10 * 8000

    def __init__(self, clock_rate: int = 8000, timeout: float = 0.3, memory: int = 16) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be positive: {clock_rate}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive: {timeout}")
        if memory < 1:
            raise ValueError(f"memory must be at least 1: {memory}")
        self._clock_rate = clock_rate
        self._timeout = timeout
        self._open: _OpenEvent | None = None
        self._reported: deque[int] = deque(maxlen=memory)
        self._last_timestamp: int | None = None
        self.malformed = 0  #: count of payloads too short to parse

    def receive(
        self, timestamp: int, marker: bool, payload: bytes, now: float
    ) -> list[DtmfReceived]:
        """Feed one telephone-event packet: its RTP timestamp, marker bit and payload.

        Returns the digits completed by this packet (zero, one, or two when a new event closes
        an older one whose end packets were lost). Never raises on a peer's bad payload.
        """
        del marker  # the timestamp, not the marker, identifies an event (§2.5.1.3)
        try:
            ev = TelephoneEvent.parse(payload)
        except MalformedEventError:
            self.malformed += 1
            return []
        if digit_for_event(ev.event) is None:
            return []
        timestamp %= _TS_MOD
        if timestamp in self._reported:
            return []  # a retransmitted end packet or a late update
        out: list[DtmfReceived] = []
        cur = self._open
        if cur is not None and timestamp != cur.timestamp:
            if self._continues(cur, timestamp, ev):
                cur.segment_base += 0xFFFF
                cur.timestamp = timestamp
            elif self._is_stale(timestamp):
                return []
            else:
                out.append(self._close(cur))
                cur = None
        elif cur is None and self._is_stale(timestamp):
            return []
        if cur is None:
            cur = _OpenEvent(timestamp, ev.event, 0, 0, now)
            self._open = cur
        cur.last_seen = now
        cur.duration = max(cur.duration, cur.segment_base + ev.duration)
        self._last_timestamp = timestamp
        if ev.end:
            out.append(self._close(cur))
        return out

    def next_deadline(self) -> float | None:
        """When an event without an end packet will be given up on, or None."""
        if self._open is None:
            return None
        return self._open.last_seen + self._timeout

    def handle_timer(self, now: float) -> list[DtmfReceived]:
        """Report an open event whose end packets never came, once its timeout has passed."""
        cur = self._open
        if cur is None or now < cur.last_seen + self._timeout:
            return []
        return [self._close(cur)]

    def reset(self) -> None:
        """Forget all state, for a new RTP stream (new SSRC or re-negotiated payload type)."""
        self._open = None
        self._reported.clear()
        self._last_timestamp = None

    def _continues(self, cur: _OpenEvent, timestamp: int, ev: TelephoneEvent) -> bool:
        # §2.5.1.5: a long event goes on with a new timestamp once the duration field is full.
        return (
            ev.event == cur.event
            and cur.duration - cur.segment_base >= 0xFFFF
            and timestamp == (cur.timestamp + 0xFFFF) % _TS_MOD
        )

    def _is_stale(self, timestamp: int) -> bool:
        last = self._last_timestamp
        if last is None:
            return False
        behind = (last - timestamp) % _TS_MOD
        return 0 < behind <= self.STALE_WINDOW

    def _close(self, cur: _OpenEvent) -> DtmfReceived:
        self._open = None
        self._reported.append(cur.timestamp)
        digit = DIGITS[cur.event]
        return DtmfReceived(digit, round(cur.duration * 1000 / self._clock_rate), "rfc4733")


class EventPacket(NamedTuple):
    """One telephone-event packet for the RTP layer to wrap.

    All packets of an event carry the event's start timestamp (RFC 4733 §2.5.1.3);
    `send_offset` says when to send this one, in RTP timestamp units after that start.
    """

    send_offset: int
    payload: bytes
    marker: bool


class Rfc4733Sender:
    """Builds the packets of one DTMF event (RFC 4733 §2.5.1).

    The first packet carries the marker bit (§2.5.1.1 with RFC 3550 §5.1); one update per
    packet interval (20 ms = 50 packets/s by default) carries the duration so far; the final
    packet has the E bit and is sent three times in all (§2.5.1.4).
    """

    END_PACKETS: Final = 3

    def __init__(self, clock_rate: int = 8000, packet_ms: int = 20, volume: int = 10) -> None:
        if clock_rate <= 0 or packet_ms <= 0:
            raise ValueError("clock_rate and packet_ms must be positive")
        if not 0 <= volume <= 0x3F:
            raise ValueError(f"volume out of range (0-63): {volume}")
        self._clock_rate = clock_rate
        self._interval = clock_rate * packet_ms // 1000
        self._volume = volume
        if self._interval <= 0:
            raise ValueError("packet interval shorter than one sample")

    def packets(self, digit: str, duration_ms: int) -> list[EventPacket]:
        """The packets for `digit` held for `duration_ms` milliseconds, in sending order.

        Raises ValueError for an unknown digit or a duration that does not fit one event
        (more than 0xFFFF timestamp units, about 8 s at 8 kHz) or is not positive.
        """
        code = event_for_digit(digit)
        total = round(duration_ms * self._clock_rate / 1000)
        if not 0 < total <= 0xFFFF:
            raise ValueError(f"duration out of range for one event: {duration_ms} ms")
        step = self._interval
        out: list[EventPacket] = []
        elapsed = step
        while elapsed < total:
            ev = TelephoneEvent(code, False, self._volume, elapsed)
            out.append(EventPacket(elapsed, bytes(ev), not out))
            elapsed += step
        end = bytes(TelephoneEvent(code, True, self._volume, total))
        for i in range(self.END_PACKETS):
            out.append(EventPacket(elapsed + i * step, end, not out))
        return out


# --------------------------------------------------------------------------------------------
# In-band detection
# --------------------------------------------------------------------------------------------

SAMPLE_RATE: Final = 8000
ROW_FREQS: Final = (697.0, 770.0, 852.0, 941.0)
COL_FREQS: Final = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD: Final = ("123A", "456B", "789C", "*0#D")

#: Peak amplitude, in int16 units, of a 0 dBm0 sine: a full-scale sine is +3.17 dBm0 (the
#: G.711 mu-law convention of ITU-T G.711 Table 5 / G.168).
DBM0_PEAK: Final = 32767.0 * 10.0 ** (-3.17 / 20.0)
_DBM0_POWER: Final = DBM0_PEAK * DBM0_PEAK / 2.0

_WINDOW: Final = 160  # analysis window: 20 ms at 8 kHz
_HOP: Final = 80  # windows overlap by half, so every 10 ms gives a decision


def goertzel_power(
    samples: npt.ArrayLike, freqs: npt.ArrayLike, rate: int = SAMPLE_RATE
) -> npt.NDArray[np.float64]:
    """Squared magnitude of the DFT at arbitrary frequencies by the Goertzel recursion.

    `samples` is (..., L), `freqs` is (K,); the result is (..., K), equal to
    ``abs(sum(x[n] * exp(-2j*pi*f*n/rate)))**2``. The recursion runs over the L samples and is
    vectorized over the leading axes and the frequencies. This is the reference definition of
    the tone energies; the detector computes the same numbers by a block matrix product.
    """
    x = np.asarray(samples, dtype=np.float64)
    w = 2.0 * np.pi * np.asarray(freqs, dtype=np.float64) / rate
    coeff = 2.0 * np.cos(w)
    shape = (*x.shape[:-1], w.shape[0])
    s1 = np.zeros(shape)
    s2 = np.zeros(shape)
    for n in range(x.shape[-1]):
        s0 = x[..., n, None] + coeff * s1 - s2
        s2 = s1
        s1 = s0
    result: npt.NDArray[np.float64] = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return result


@dataclass(frozen=True, slots=True)
class InbandConfig:
    """Thresholds of the in-band detector, in the style of ITU-T Q.24 / Bellcore GR-506.

    * `min_level_dbm0`: the two tones together must reach this power (sensitivity).
    * `normal_twist_db`: how much louder the low (row) tone may be than the high (column) one.
    * `reverse_twist_db`: how much louder the high tone may be than the low one.
    * `min_tone_ratio`: each of the strongest row and column tones must carry at least this
      fraction of the window's total power; `min_pair_ratio`: the two together at least this.
    * `peak_margin_db`: the second-strongest tone of each group must be this far below the
      strongest.
    * `min_tone_ms`: tones at least this long are always accepted (tones below about 25 ms
      never are). `min_pause_ms`: a gap this long between two tones makes two digits (a
      dropout of 10 ms or less never does).
    """

    min_level_dbm0: float = -30.0
    normal_twist_db: float = 8.0
    reverse_twist_db: float = 4.0
    min_tone_ratio: float = 0.08
    min_pair_ratio: float = 0.75
    peak_margin_db: float = 8.0
    min_tone_ms: int = 40
    min_pause_ms: int = 40

    def __post_init__(self) -> None:
        if self.min_tone_ms < 20 or self.min_pause_ms < 20:
            raise ValueError("min_tone_ms and min_pause_ms must be at least 20")
        if not 0.0 < self.min_pair_ratio <= 1.0 or not 0.0 <= self.min_tone_ratio <= 1.0:
            raise ValueError("power ratios must lie in (0, 1]")


def _block_basis() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.complex64]]:
    freqs = np.array(ROW_FREQS + COL_FREQS)
    w = 2.0 * np.pi * freqs / SAMPLE_RATE
    n = np.arange(_HOP)[:, None]
    basis = np.concatenate([np.cos(w * n), -np.sin(w * n)], axis=1).astype(np.float32)
    # The second half of a window is a block whose DFT phase is shifted by HOP samples.
    shift = np.exp(-1j * w * _HOP).astype(np.complex64)
    return basis, shift


_BASIS, _SHIFT = _block_basis()
_DIGIT_TABLE: Final = np.array([[DIGITS.index(c) for c in row] for row in _KEYPAD], np.int8)


class GoertzelDetector:
    """In-band DTMF detector for a fixed number of legs at once (8 kHz int16 audio).

    Each frame (any multiple of 10 ms; 20 ms = 160 samples usually) is cut into 10 ms blocks;
    every 10 ms a 20 ms window (the previous block and the current one) is analysed: the
    Goertzel energies at the eight DTMF frequencies, computed for all legs and frequencies by
    one matrix product per frame, then the Q.24-style checks of `InbandConfig` (level, twist,
    share of total power, no competing tone in either group). A digit starts after enough
    consecutive windows agree, and is reported once, with its measured length, when the
    tone has stopped for the minimum pause.

    State per leg is a row in a few NumPy arrays sized at construction (`legs` slots), so one
    call to `process_frames` handles every leg of a media tick. Slots are reused through
    `reset`.
    """

    def __init__(self, legs: int = 1, config: InbandConfig | None = None) -> None:
        if legs < 1:
            raise ValueError(f"legs must be at least 1: {legs}")
        self.config = cfg = config if config is not None else InbandConfig()
        self.legs = legs
        scale = 2.0 / (_WINDOW * _WINDOW)  # |X|^2 -> mean square of the tone
        self._tone_scale = scale
        self._min_pair_power = _DBM0_POWER * 10.0 ** (cfg.min_level_dbm0 / 10.0)
        self._normal_twist = 10.0 ** (cfg.normal_twist_db / 10.0)
        self._reverse_twist = 10.0 ** (cfg.reverse_twist_db / 10.0)
        self._margin = 10.0 ** (cfg.peak_margin_db / 10.0)
        rate_per_ms = SAMPLE_RATE // 1000
        # A tone of min_tone_ms fully contains at least this many windows at any alignment.
        self._on_windows = max(1, (cfg.min_tone_ms * rate_per_ms - _WINDOW) // _HOP)
        # A gap of min_pause_ms spoils at least this many windows; 10 ms spoils at most 3.
        self._off_windows = max(1, cfg.min_pause_ms * rate_per_ms // _HOP)
        self._prev_f = np.zeros((legs, 8), np.complex64)
        self._prev_e = np.zeros(legs, np.float32)
        self._cand = np.full(legs, -1, np.int8)
        self._cand_run = np.zeros(legs, np.int32)
        self._active = np.full(legs, -1, np.int8)
        self._span = np.zeros(legs, np.int32)  # windows from the first to the last detection
        self._off = np.zeros(legs, np.int32)  # windows since the last detection
        self._all = np.arange(legs)
        self._busy = False  # some leg has a digit sounding or a candidate

    def reset(self, leg: int) -> None:
        """Clear one slot, e.g. when a new call takes it over. A digit in progress is dropped."""
        self._prev_f[leg] = 0
        self._prev_e[leg] = 0
        self._cand[leg] = -1
        self._cand_run[leg] = 0
        self._active[leg] = -1
        self._span[leg] = 0
        self._off[leg] = 0

    def process(self, frame: npt.NDArray[np.int16], leg: int = 0) -> list[DtmfReceived]:
        """Feed one frame of one leg; returns the digits that ended in it."""
        rows = np.array([leg], np.intp)
        return [ev for _, ev in self.process_frames(frame[None, :], rows)]

    def process_frames(
        self,
        frames: npt.NDArray[np.int16],
        legs: npt.NDArray[np.intp] | None = None,
    ) -> list[tuple[int, DtmfReceived]]:
        """Feed one frame for each of N legs: `frames` is (N, L) int16 with L a multiple of 80.

        `legs` gives the slot of each row (distinct slots); None means rows 0..N-1 are slots
        0..N-1. Returns (slot, digit event) pairs for digits that ended during these frames.
        """
        if frames.ndim != 2 or frames.shape[1] % _HOP or frames.shape[1] == 0:
            raise ValueError(f"frames must be (N, k*{_HOP}), got {frames.shape}")
        n, length = frames.shape
        if legs is None:
            if n > self.legs:
                raise ValueError(f"{n} frames for {self.legs} legs")
            slots = self._all[:n]
        else:
            slots = np.asarray(legs, np.intp)
            if slots.shape != (n,):
                raise ValueError("legs must give one slot per frame")
        blocks_n = length // _HOP
        blocks = frames.astype(np.float32).reshape(n, blocks_n, _HOP)
        y = blocks.reshape(n * blocks_n, _HOP) @ _BASIS
        f = (y[:, :8] + 1j * y[:, 8:]).astype(np.complex64).reshape(n, blocks_n, 8)
        e = np.einsum("nbk,nbk->nb", blocks, blocks)
        f_all = np.concatenate([self._prev_f[slots][:, None, :], f], axis=1)
        e_all = np.concatenate([self._prev_e[slots][:, None], e], axis=1)
        self._prev_f[slots] = f[:, -1]
        self._prev_e[slots] = e[:, -1]
        x = f_all[:, :-1] + _SHIFT * f_all[:, 1:]
        tone = (x.real * x.real + x.imag * x.imag) * self._tone_scale  # (n, blocks_n, 8)
        total = (e_all[:, :-1] + e_all[:, 1:]) / _WINDOW
        det = self._classify(tone, total)
        out: list[tuple[int, DtmfReceived]] = []
        if not self._busy and det.max() < 0:
            return out  # no leg has a digit or a candidate: nothing to advance
        for j in range(blocks_n):
            self._step(slots, det[:, j], out)
        self._busy = bool((self._active >= 0).any() or (self._cand >= 0).any())
        return out

    def _classify(
        self, tone: npt.NDArray[np.float32], total: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.int8]:
        """Per window: the digit index 0-15 whose tone pair passes every check, else -1."""
        rows = tone[..., :4]
        cols = tone[..., 4:]
        cfg = self.config
        r_best = rows.max(axis=-1)
        c_best = cols.max(axis=-1)
        pair = r_best + c_best
        ok = (pair >= self._min_pair_power) & (pair >= cfg.min_pair_ratio * total)
        if not ok.any():  # silence and speech end here, before the finer checks
            return np.full(ok.shape, -1, np.int8)
        r_second = np.sort(rows, axis=-1)[..., 2]
        c_second = np.sort(cols, axis=-1)[..., 2]
        ok &= (
            (r_best <= c_best * self._normal_twist)
            & (c_best <= r_best * self._reverse_twist)
            & (r_best >= cfg.min_tone_ratio * total)
            & (c_best >= cfg.min_tone_ratio * total)
            & (r_second * self._margin <= r_best)
            & (c_second * self._margin <= c_best)
        )
        digit = _DIGIT_TABLE[np.argmax(rows, axis=-1), np.argmax(cols, axis=-1)]
        return np.where(ok, digit, np.int8(-1)).astype(np.int8)

    def _step(
        self,
        slots: npt.NDArray[np.intp],
        det: npt.NDArray[np.int8],
        out: list[tuple[int, DtmfReceived]],
    ) -> None:
        """Advance the per-leg digit state machines by one 10 ms window."""
        active = self._active[slots]
        cand = self._cand[slots]
        cand_run = self._cand_run[slots]
        span = self._span[slots]
        off = self._off[slots]
        hit = (active >= 0) & (det == active)
        # The active digit is still sounding: bridge any short dropout into its span.
        span = np.where(hit, span + off + 1, span)
        off = np.where(hit, 0, np.where(active >= 0, off + 1, off))
        # Candidate run for a digit that is not the active one.
        other = (det >= 0) & ~hit
        cand_run = np.where(other & (det == cand), cand_run + 1, np.where(other, 1, 0))
        cand = np.where(other, det, np.int8(-1)).astype(np.int8)
        # A digit ends after the minimum pause (or when another digit has taken over).
        ended = (active >= 0) & (off >= self._off_windows)
        for i in np.flatnonzero(ended):
            samples = _WINDOW + (int(span[i]) - 1) * _HOP
            ms = samples * 1000 // SAMPLE_RATE
            out.append((int(slots[i]), DtmfReceived(DIGITS[int(active[i])], ms, "inband")))
        active = np.where(ended, np.int8(-1), active).astype(np.int8)
        started = (active < 0) & (cand >= 0) & (cand_run >= self._on_windows)
        active = np.where(started, cand, active).astype(np.int8)
        span = np.where(started, cand_run, np.where(ended, 0, span))
        off = np.where(started | ended, 0, off)
        cand = np.where(started, np.int8(-1), cand).astype(np.int8)
        cand_run = np.where(started, 0, cand_run)
        self._active[slots] = active
        self._cand[slots] = cand
        self._cand_run[slots] = cand_run
        self._span[slots] = span
        self._off[slots] = off


# --------------------------------------------------------------------------------------------
# SIP INFO
# --------------------------------------------------------------------------------------------

_INFO_DEFAULT_MS: Final = 250


def _info_digit(value: str) -> str | None:
    value = value.strip()
    if len(value) == 1:
        upper = value.upper()
        return upper if upper in _EVENT_BY_DIGIT else None
    if value.isdigit():  # some devices send the event code: 10 for *, 11 for #, 12-15 for A-D
        return digit_for_event(int(value))
    return None


def parse_dtmf_relay(
    body: str, content_type: str, default_duration_ms: int = _INFO_DEFAULT_MS
) -> DtmfReceived | None:
    """The digit in a SIP INFO body (RFC 6086 INFO carrying a DTMF relay body), or None.

    ``application/dtmf-relay`` bodies are ``Signal=5`` and ``Duration=160`` (milliseconds) lines,
    names case-insensitive, CRLF or LF; ``application/dtmf`` bodies hold a bare digit. A
    numeric event code (10 = ``*``, 11 = ``#``, 12-15 = A-D) is accepted too. A missing or
    unreadable Duration gives `default_duration_ms`. Anything else, including other content
    types and malformed bodies, gives None: a peer's bad body is never an exception.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/dtmf":
        digit = _info_digit(body)
        return None if digit is None else DtmfReceived(digit, default_duration_ms, "sip-info")
    if media_type != "application/dtmf-relay":
        return None
    fields: dict[str, str] = {}
    for line in body.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields.setdefault(name.strip().lower(), value.strip())
    signal = fields.get("signal")
    digit = None if signal is None else _info_digit(signal)
    if digit is None:
        return None
    duration = fields.get("duration", "")
    ms = int(duration) if duration.isdigit() and len(duration) <= 6 else default_duration_ms
    return DtmfReceived(digit, ms, "sip-info")
