"""Adaptive playout (jitter) buffer, pulled once every ptime by the media clock.

The buffer serves the legs the switch listens to (recording, DTMF detection, mixing). Packets go
in with :meth:`JitterBuffer.put` as they arrive; the shared media clock takes one frame out with
:meth:`JitterBuffer.pull` every ptime. The object is sans-I/O: every call takes ``now``
(monotonic seconds) and nothing here reads a clock or touches a socket.

Timing model (RFC 3550 §6.4.1 and appendix A.8 for the transit and jitter definitions):

* Each packet's *transit* is ``arrival - timestamp / clock_rate``. Only differences of transits
  matter, so the unknown offset between the two clocks cancels out.
* The *floor* is the smallest transit seen recently: the transit of a packet that met no queueing
  on its way. It follows the minimum at once and creeps upward very slowly otherwise, so that a
  drift between the sender's and our clock is followed.
* A packet's *excess* is ``transit - floor``: how much later than the fastest packet it came.
  The jitter estimate follows the excess with an instant attack and a slow release (a spike is
  believed at once, calm is believed only after a while).
* The target delay is ``clamp(jitter_factor * estimate + ptime, min_delay, max_delay)``.
* The *current delay* is how far behind the floor the playout point runs: at a pull that plays
  RTP timestamp ``ts`` at ``now`` it is ``now - ts / clock_rate - floor``.

Adaptation keeps the current delay in ``[target - ptime/4, target + ptime + ptime/4]``. Below it
the buffer grows at once by inserting one frame per pull (:attr:`FrameKind.STRETCHED`): playout
holds, so a packet that is still on its way can arrive in time. Above it the buffer shrinks by
removing one frame (a buffered packet or an empty slot) at most once every
``shrink_interval_frames`` pulls. At a talkspurt boundary the buffer re-anchors at the target in
one step, inside the silence, where the change is inaudible.

A new talkspurt (RFC 3551 §4.1: marker bit on its first packet; also a timestamp discontinuity
larger than ``resync_jump_ms`` against what the sequence number predicts, a sequence number jump
larger than RFC 3550 appendix A.1's MAX_DROPOUT, or an arrival after ``silence_resync_ms`` of
silence) re-anchors playout: the frames between the old talkspurt and the new one are silence,
not loss, and the new one starts at the current target delay.

What the caller plays for each :class:`Frame`:

* ``AUDIO``: the payload.
* ``CONCEALED`` (a packet is missing) and ``STRETCHED`` (a frame inserted to grow the delay): the
  buffer suggests repeating the last frame once, then silence. The first such frame after audio
  carries the last payload in ``payload``; later ones carry ``None`` (play silence).
* ``SILENCE``: nothing to play (before the first packet, between talkspurts); play silence.

Per pull the work is a few comparisons and at most one heap operation; the decoded samples of
all legs are then batched by the caller (codecs work on NumPy arrays across calls).
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass

__all__ = ["Frame", "FrameKind", "JitterBuffer", "JitterConfig", "JitterStats"]

_SEQ_MOD = 1 << 16
_SEQ_HALF = 1 << 15
_TS_MOD = 1 << 32
_TS_HALF = 1 << 31
_TS_MASK = _TS_MOD - 1
# RFC 3550 appendix A.1: how far a sequence number may jump before the source counts as restarted.
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
# Sequence numbers remembered for duplicate detection (2.56 s at 20 ms).
_SEEN_WINDOW = 128
_SEEN_MASK = (1 << _SEEN_WINDOW) - 1
_EPS = 1e-9

# Heap entry fields: (internal timestamp, extended seq, RTP timestamp, RTP seq, payload, resync).
_Entry = tuple[int, int, int, int, bytes, bool]


class FrameKind(enum.Enum):
    """What one pulled frame holds."""

    AUDIO = "audio"
    CONCEALED = "concealed"
    STRETCHED = "stretched"
    SILENCE = "silence"


@dataclass(frozen=True, slots=True)
class Frame:
    """One ptime of playout.

    ``timestamp`` is the 32-bit RTP timestamp of the slot (for a stretched frame: of the slot
    that follows it). ``seq`` is the 16-bit sequence number of the played packet (audio only).
    ``payload`` is the packet's payload for audio; for the first concealed or stretched frame
    after audio it is the last audio payload (the suggested repetition), otherwise ``None``.
    """

    kind: FrameKind
    timestamp: int
    payload: bytes | None = None
    seq: int | None = None

    @property
    def concealed(self) -> bool:
        """True when the caller must make this frame up (repeat once, then silence)."""
        return self.kind is FrameKind.CONCEALED or self.kind is FrameKind.STRETCHED


@dataclass(frozen=True, slots=True)
class JitterConfig:
    """Settings of one jitter buffer; the defaults suit G.711 at 20 ms."""

    clock_rate: int = 8000
    ptime_ms: int = 20
    min_delay_ms: float = 20.0
    max_delay_ms: float = 200.0
    start_delay_ms: float = 60.0
    jitter_factor: float = 1.0
    # Packets over which the jitter estimate decays after a spike (time constant).
    release_packets: int = 128
    # At most one frame is removed to shrink the delay per this many pulls.
    shrink_interval_frames: int = 25
    max_packets: int = 64
    # Frames concealed with an empty buffer before the buffer assumes the talkspurt ended.
    max_conceal_frames: int = 3
    resync_jump_ms: float = 200.0
    silence_resync_ms: float = 500.0
    # Fraction of the excess by which the transit floor creeps upward per packet (clock drift).
    floor_follow: float = 1.0 / 2048.0

    def __post_init__(self) -> None:
        if self.clock_rate <= 0 or self.ptime_ms <= 0:
            raise ValueError("clock_rate and ptime_ms must be positive")
        if (self.clock_rate * self.ptime_ms) % 1000:
            raise ValueError("ptime_ms must be a whole number of clock ticks")
        if not 0 < self.min_delay_ms <= self.start_delay_ms <= self.max_delay_ms:
            raise ValueError("need 0 < min_delay_ms <= start_delay_ms <= max_delay_ms")
        if self.jitter_factor <= 0 or self.release_packets < 1:
            raise ValueError("jitter_factor and release_packets must be positive")
        if self.shrink_interval_frames < 1 or self.max_packets < 1:
            raise ValueError("shrink_interval_frames and max_packets must be positive")
        if self.max_conceal_frames < 0:
            raise ValueError("max_conceal_frames must not be negative")
        if self.resync_jump_ms <= 0 or self.silence_resync_ms <= 0:
            raise ValueError("resync_jump_ms and silence_resync_ms must be positive")
        if not 0 <= self.floor_follow < 1:
            raise ValueError("floor_follow must be in [0, 1)")

    @property
    def samples_per_frame(self) -> int:
        """RTP timestamp units in one ptime."""
        return self.clock_rate * self.ptime_ms // 1000


@dataclass(frozen=True, slots=True)
class JitterStats:
    """A snapshot of one buffer's counters.

    ``jitter_ms`` and ``max_jitter_ms`` are the RFC 3550 §6.4.1 interarrival jitter (current and
    the largest seen). ``received`` counts every packet put, including the dropped ones.
    """

    target_delay_ms: float
    current_delay_ms: float
    depth: int
    received: int
    played: int
    late: int
    duplicate: int
    overflow: int
    concealed: int
    stretched: int
    compressed: int
    resyncs: int
    jitter_ms: float
    max_jitter_ms: float


class JitterBuffer:
    """Adaptive playout buffer for one received RTP stream (one SSRC).

    Call :meth:`reset` when the SSRC changes. Packets must each carry one ptime of audio.
    """

    __slots__ = (
        "_cfg",
        "_compressed",
        "_concealed",
        "_current_delay",
        "_duplicate",
        "_empty_run",
        "_estimate",
        "_floor",
        "_heap",
        "_hi_raw_ts",
        "_hi_seq",
        "_hi_ts",
        "_inv_rate",
        "_jitter",
        "_last_arrival",
        "_last_transit",
        "_late",
        "_max_jitter",
        "_next_ts",
        "_out_offset",
        "_overflow",
        "_played",
        "_playing",
        "_ptime",
        "_received",
        "_repeat",
        "_resyncs",
        "_seen",
        "_since_shrink",
        "_spf",
        "_started",
        "_stretched",
        "_target",
        "_tol",
    )

    def __init__(self, config: JitterConfig | None = None) -> None:
        cfg = config if config is not None else JitterConfig()
        self._cfg = cfg
        self._spf = cfg.samples_per_frame
        self._inv_rate = 1.0 / cfg.clock_rate
        self._ptime = cfg.ptime_ms / 1000.0
        self._tol = self._ptime / 4.0
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new SSRC): drop what is buffered and restart the counters."""
        cfg = self._cfg
        self._heap: list[_Entry] = []
        self._hi_seq: int | None = None
        self._hi_ts = 0
        self._hi_raw_ts = 0
        self._seen = 0
        self._floor = 0.0
        self._last_arrival = 0.0
        self._last_transit = 0.0
        self._estimate = (cfg.start_delay_ms / 1000.0 - self._ptime) / cfg.jitter_factor
        self._target = cfg.start_delay_ms / 1000.0
        self._jitter = 0.0
        self._max_jitter = 0.0
        self._next_ts = 0
        self._out_offset = 0
        self._started = False
        self._playing = False
        self._empty_run = 0
        self._since_shrink = 0
        self._repeat: bytes | None = None
        self._current_delay = 0.0
        self._received = 0
        self._played = 0
        self._late = 0
        self._duplicate = 0
        self._overflow = 0
        self._concealed = 0
        self._stretched = 0
        self._compressed = 0
        self._resyncs = 0

    # ------------------------------------------------------------------ input

    def put(
        self, seq: int, timestamp: int, payload: bytes, now: float, marker: bool = False
    ) -> None:
        """Take one received RTP packet (16-bit ``seq``, 32-bit ``timestamp``) at ``now``.

        Duplicates and packets whose playout slot has passed are dropped and counted. Sequence
        numbers are extended across wrap-around as in RFC 3550 appendix A.1.
        """
        if not 0 <= seq < _SEQ_MOD or not 0 <= timestamp < _TS_MOD:
            raise ValueError("seq must fit 16 bits and timestamp 32 bits")
        self._received += 1
        cfg = self._cfg
        if self._hi_seq is None:
            self._first_packet(seq, timestamp, payload, now)
            return

        delta = (seq - self._hi_seq) & (_SEQ_MOD - 1)
        if delta >= _SEQ_HALF:
            delta -= _SEQ_MOD
        discontinuity = False
        if delta > _MAX_DROPOUT or delta < -_MAX_MISORDER:
            # The source restarted its sequence space: continue our extended numbering.
            delta = 1
            self._seen = 0
            discontinuity = True
        elif delta <= 0:
            back = -delta
            if back >= _SEEN_WINDOW:
                self._late += 1
                return
            if (self._seen >> back) & 1:
                self._duplicate += 1
                return
        ext_seq = self._hi_seq + delta

        dts = (timestamp - self._hi_raw_ts) & _TS_MASK
        if dts >= _TS_HALF:
            dts -= _TS_MOD
        internal = self._hi_ts + dts
        if not discontinuity:
            drift = internal - (self._hi_ts + delta * self._spf)
            if abs(drift) * self._inv_rate * 1000.0 > cfg.resync_jump_ms:
                if delta <= 0:
                    # An old packet from before a discontinuity: it can no longer be placed.
                    self._late += 1
                    return
                discontinuity = True

        silence = now - self._last_arrival >= cfg.silence_resync_ms / 1000.0
        if discontinuity:
            # Map the new timestamp space so that this packet has exactly the floor transit.
            mapped = round((now - self._floor) * cfg.clock_rate)
            internal = max(mapped, self._hi_ts + self._spf, self._next_ts)
        resync = marker or discontinuity or silence
        if resync:
            self._resyncs += 1

        transit = now - internal * self._inv_rate
        if silence and not discontinuity:
            self._floor = transit
        if not discontinuity:
            # RFC 3550 §6.4.1 interarrival jitter, J += (|D| - J) / 16.
            d = abs(transit - self._last_transit)
            self._jitter += (d - self._jitter) / 16.0
            if self._jitter > self._max_jitter:
                self._max_jitter = self._jitter
        self._last_transit = transit
        self._last_arrival = now
        self._adapt(transit)

        if delta > 0:
            self._seen = ((self._seen << delta) | 1) & _SEEN_MASK
            self._hi_seq = ext_seq
            self._hi_ts = internal
            self._hi_raw_ts = timestamp
        else:
            self._seen |= 1 << -delta

        if self._started and internal < self._next_ts:
            self._late += 1
            return
        self._push((internal, ext_seq, timestamp, seq, payload, resync))

    def _first_packet(self, seq: int, timestamp: int, payload: bytes, now: float) -> None:
        self._hi_seq = seq
        self._hi_ts = timestamp
        self._hi_raw_ts = timestamp
        self._seen = 1
        transit = now - timestamp * self._inv_rate
        self._floor = transit
        self._last_transit = transit
        self._last_arrival = now
        self._adapt(transit)
        self._push((timestamp, seq, timestamp, seq, payload, False))

    def _adapt(self, transit: float) -> None:
        """Follow the transit floor and the jitter estimate; recompute the target delay."""
        cfg = self._cfg
        excess = transit - self._floor
        if excess <= 0.0:
            self._floor = transit
            excess = 0.0
        else:
            self._floor += excess * cfg.floor_follow
        est = self._estimate
        if excess > est:
            est = excess
        else:
            est += (excess - est) / cfg.release_packets
        self._estimate = est
        target = cfg.jitter_factor * est + self._ptime
        lo = cfg.min_delay_ms / 1000.0
        hi = cfg.max_delay_ms / 1000.0
        self._target = lo if target < lo else hi if target > hi else target

    def _push(self, entry: _Entry) -> None:
        heap = self._heap
        heapq.heappush(heap, entry)
        if len(heap) > self._cfg.max_packets:
            heapq.heappop(heap)
            self._overflow += 1

    # ----------------------------------------------------------------- output

    def pull(self, now: float) -> Frame:
        """Return what to play for the ptime that starts at ``now``."""
        if not self._playing:
            return self._pull_idle(now)
        heap = self._heap
        next_ts = self._next_ts
        spf = self._spf
        if heap:
            head = heap[0]
            if head[5] and head[0] > next_ts:
                # The next talkspurt: the slots up to it are silence; re-anchor.
                self._playing = False
                return self._pull_idle(now)

        delay = now - next_ts * self._inv_rate - self._floor
        self._current_delay = delay
        self._since_shrink += 1
        if delay < self._target - self._tol:
            self._stretched += 1
            return self._made_up(FrameKind.STRETCHED, next_ts)
        if (
            delay > self._target + self._ptime + self._tol
            and self._since_shrink >= self._cfg.shrink_interval_frames
        ):
            self._since_shrink = 0
            self._compressed += 1
            if heap and heap[0][0] < next_ts + spf:
                heapq.heappop(heap)
            next_ts += spf
            self._next_ts = next_ts

        if heap and heap[0][0] < next_ts + spf:
            return self._play(heapq.heappop(heap))
        if not heap:
            self._empty_run += 1
            if self._empty_run > self._cfg.max_conceal_frames:
                self._playing = False
                return Frame(FrameKind.SILENCE, (next_ts + self._out_offset) & _TS_MASK)
        self._concealed += 1
        self._next_ts = next_ts + spf
        return self._made_up(FrameKind.CONCEALED, next_ts)

    def _pull_idle(self, now: float) -> Frame:
        heap = self._heap
        if heap:
            head = heap[0]
            start_at = self._floor + head[0] * self._inv_rate + self._target
            if now + _EPS >= start_at:
                self._playing = True
                self._started = True
                self._empty_run = 0
                self._since_shrink = 0
                self._current_delay = now - head[0] * self._inv_rate - self._floor
                return self._play(heapq.heappop(heap))
        return Frame(FrameKind.SILENCE, (self._next_ts + self._out_offset) & _TS_MASK)

    def _play(self, entry: _Entry) -> Frame:
        internal, _, raw_ts, raw_seq, payload, _ = entry
        self._next_ts = internal + self._spf
        self._out_offset = raw_ts - internal
        self._empty_run = 0
        self._repeat = payload
        self._played += 1
        return Frame(FrameKind.AUDIO, raw_ts, payload, raw_seq)

    def _made_up(self, kind: FrameKind, ts: int) -> Frame:
        repeat = self._repeat
        self._repeat = None
        return Frame(kind, (ts + self._out_offset) & _TS_MASK, repeat)

    # ------------------------------------------------------------ inspection

    @property
    def target_delay_ms(self) -> float:
        """The playout delay the buffer currently aims at."""
        return self._target * 1000.0

    @property
    def depth(self) -> int:
        """Packets held."""
        return len(self._heap)

    def stats(self) -> JitterStats:
        """A frozen snapshot of the counters."""
        return JitterStats(
            target_delay_ms=self._target * 1000.0,
            current_delay_ms=self._current_delay * 1000.0 if self._playing else 0.0,
            depth=len(self._heap),
            received=self._received,
            played=self._played,
            late=self._late,
            duplicate=self._duplicate,
            overflow=self._overflow,
            concealed=self._concealed,
            stretched=self._stretched,
            compressed=self._compressed,
            resyncs=self._resyncs,
            jitter_ms=self._jitter * 1000.0,
            max_jitter_ms=self._max_jitter * 1000.0,
        )
