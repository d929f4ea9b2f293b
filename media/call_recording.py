"""Recording an anchored call: both legs' RTP to one WAV, caller left and callee right.

Each leg's packets (tapped from the relay, before rewriting) go into a jitter buffer; on every
tick of the shared media clock one frame per leg is pulled, decoded (PCMU or PCMA) and handed
to the crash-safe ``AsyncRecorder``, which writes off the event loop. Packets of other payload
types (telephone-events, comfort noise) are not recorded.

All recordings of one media clock share one subscription to it. A tick's work is done in
slices of 64 recordings (``_TICK_SLICE``), one slice per event loop iteration, so that packets
keep being relayed while hundreds of calls are recorded (serving all of them at once would hold
every packet that arrives meanwhile by several milliseconds). Per slice, one frame is pulled
from each leg's jitter buffer for the tick's deadline, the frames of each G.711 law are decoded
in one table lookup (as ``media.codecs.g711`` allows for batches), and each recording gets its
pair. Every recording still gets exactly one frame per leg per tick, in tick order: a tick
whose slices have not all run when the next one falls due is finished first.

The files are written by a small pool of threads of their own unless the caller names an
executor. On Linux these threads run under ``SCHED_IDLE``: they get the CPU only when nothing
else wants it, so they do not delay the event loop that relays the media. (With ordinary
threads on the loop's core, the loop was measured stalling for 20 to 100 ms every second, when
hundreds of recordings hand over their blocks together.) The writes happen in whatever idle
time the loop leaves; if it leaves none for ``MAX_PENDING_SECONDS`` of audio, ``AsyncRecorder``
drops and counts blocks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import struct
import threading
from collections import deque
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from media.clock import MediaClock
from media.codecs.g711 import alaw_decode, ulaw_decode
from media.jitter import JitterBuffer
from media.recorder import FRAME_SAMPLES, AsyncRecorder, RecordingOptions, RecordingStats
from media.rtp.packet import payload_bounds

__all__ = ["CallRecording"]

log = logging.getLogger("media.recording")

_HEADER = struct.Struct("!BBHI")
#: RTP payload types recorded (RFC 3551 §6, Table 4) and their decoders.
_DECODERS = {0: ulaw_decode, 8: alaw_decode}
_PLAIN_V2 = 0x80  # version 2, no padding, no extension, no CSRC: the payload starts at 12
_TICK_SLICE: Final = 64
"""Recordings served per event loop iteration within one media clock tick."""
_WRITERS: Final = 4
"""Threads of the shared writer pool (disk syncs of several files overlap)."""


def _background() -> None:
    """Make the calling (writer) thread run only when its CPU is otherwise idle."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: as is
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


_writers: concurrent.futures.ThreadPoolExecutor | None = None
_writers_lock = threading.Lock()


def _writer_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool of recording writer threads, started on first use."""
    global _writers
    with _writers_lock:
        if _writers is None:
            _writers = concurrent.futures.ThreadPoolExecutor(
                _WRITERS, thread_name_prefix="recording-writer", initializer=_background
            )
        return _writers


class _Leg:
    __slots__ = ("buffer", "payload_type")

    def __init__(self) -> None:
        self.buffer = JitterBuffer()
        self.payload_type = 0

    def tap(self, packet: bytes | bytearray, now: float) -> None:
        if len(packet) < 12:
            return
        first, second, seq, ts = _HEADER.unpack_from(packet, 0)
        pt = second & 0x7F
        if pt not in _DECODERS:
            return
        if first == _PLAIN_V2:
            payload = bytes(packet[12:])
        else:
            start, end = payload_bounds(packet)
            payload = bytes(packet[start:end])
        self.payload_type = pt
        self.buffer.put(seq, ts, payload, now, bool(second & 0x80))


class _Ticker:
    """The one media clock subscription of all recordings on a clock."""

    __slots__ = ("clock", "handle", "members", "queue", "token")

    def __init__(self, clock: MediaClock) -> None:
        self.clock = clock
        self.members: dict[int, CallRecording] = {}  # id() -> recording, in joining order
        self.token: int | None = None
        #: ticks not fully served: (deadline, the recordings of that tick, how many are done)
        self.queue: deque[tuple[float, list[CallRecording], int]] = deque()
        self.handle: asyncio.Handle | None = None

    def join(self, recording: CallRecording) -> None:
        self.members[id(recording)] = recording
        if self.token is None:
            self.token = self.clock.subscribe(self.tick)

    def leave(self, recording: CallRecording) -> None:
        self.members.pop(id(recording), None)
        if not self.members:
            if self.token is not None:
                self.clock.unsubscribe(self.token)
                self.token = None
            if self.handle is not None:
                self.handle.cancel()
                self.handle = None
            self.queue.clear()

    def tick(self, tick: int, deadline: float) -> None:
        while self.queue:  # the previous tick is not finished (the loop is behind): finish it
            self.serve(len(self.queue[0][1]))
        self.queue.append((deadline, list(self.members.values()), 0))
        self.serve(_TICK_SLICE)
        if self.queue and self.handle is None:
            self.handle = self.clock.loop.call_soon(self.resume)

    def resume(self) -> None:
        self.handle = None
        if self.queue:
            self.serve(_TICK_SLICE)
        if self.queue:
            self.handle = self.clock.loop.call_soon(self.resume)

    def serve(self, count: int) -> None:
        """The next ``count`` recordings of the oldest unfinished tick."""
        deadline, recordings, done = self.queue[0]
        end = min(done + count, len(recordings))
        if end == len(recordings):
            self.queue.popleft()
        else:
            self.queue[0] = (deadline, recordings, end)
        members = self.members
        todo = [r for r in recordings[done:end] if members.get(id(r)) is r]  # still recording
        # Pull one frame per leg (a frame that is not one whole 20 ms payload is recorded as
        # silence), decode all frames of each law in one lookup, then write.
        payloads: dict[int, list[bytes]] = {pt: [] for pt in _DECODERS}
        picks: list[tuple[int, int]] = []  # per leg: (payload type, row), row -1 for silence
        for recording in todo:
            for leg in (recording.a, recording.b):
                payload = leg.buffer.pull(deadline).payload
                if payload is None or len(payload) != FRAME_SAMPLES:
                    picks.append((0, -1))
                else:
                    rows = payloads[leg.payload_type]
                    picks.append((leg.payload_type, len(rows)))
                    rows.append(payload)
        decoded = {
            pt: _DECODERS[pt](b"".join(rows)).reshape(-1, FRAME_SAMPLES)
            for pt, rows in payloads.items()
            if rows
        }
        for i, recording in enumerate(todo):
            pt_a, row_a = picks[2 * i]
            pt_b, row_b = picks[2 * i + 1]
            left = decoded[pt_a][row_a] if row_a >= 0 else None
            right = decoded[pt_b][row_b] if row_b >= 0 else None
            try:
                recording._write(left, right)
            except Exception:  # one broken recording must not stop the others
                log.exception("recording %s failed", recording.path)


#: The ticker of each clock that has recordings running (removed with its last recording).
_tickers: dict[MediaClock, _Ticker] = {}


def _join(clock: MediaClock, recording: CallRecording) -> None:
    ticker = _tickers.get(clock)
    if ticker is None:
        ticker = _tickers[clock] = _Ticker(clock)
    ticker.join(recording)


def _leave(clock: MediaClock, recording: CallRecording) -> None:
    ticker = _tickers.get(clock)
    if ticker is not None:
        ticker.leave(recording)
        if not ticker.members:
            del _tickers[clock]


class CallRecording:
    """One call's recording; ``tap_a``/``tap_b`` take each leg's RTP as it arrives.

    ``executor`` runs the file writes; by default the module's low-priority writer threads.
    """

    def __init__(
        self,
        clock: MediaClock,
        path: Path,
        options: RecordingOptions,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.clock = clock
        self.path = path
        self.options = options
        self.executor = executor
        self.a = _Leg()
        self.b = _Leg()
        self._time = clock.loop.time
        self._recorder: AsyncRecorder | None = None
        self._ticking = False
        self._opening: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._opening = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        executor = self.executor if self.executor is not None else _writer_pool()
        self._recorder = await AsyncRecorder.open(self.path, self.options, executor=executor)
        _join(self.clock, self)
        self._ticking = True
        log.info("recording to %s", self.path)

    def tap_a(self, packet: bytes | bytearray) -> None:
        self.a.tap(packet, self._time())

    def tap_b(self, packet: bytes | bytearray) -> None:
        self.b.tap(packet, self._time())

    def _write(
        self, left: npt.NDArray[np.int16] | None, right: npt.NDArray[np.int16] | None
    ) -> None:
        if self._recorder is not None:
            self._recorder.write(left, right)

    def pause(self, reason: str = "") -> bool:
        """Record silence from now on (the sensitive part of a call); the interval is kept
        beside the recording. False if already paused or not recording yet."""
        return self._recorder.pause(reason) if self._recorder is not None else False

    def resume(self) -> bool:
        """Record the call again; False if it was not paused."""
        return self._recorder.resume() if self._recorder is not None else False

    async def stop(self) -> RecordingStats | None:
        """Close the file; what it holds (length, pauses, talk time), None if never opened."""
        if self._opening is not None:
            await self._opening
        if self._ticking:
            _leave(self.clock, self)
            self._ticking = False
        if self._recorder is None:
            return None
        stats = await self._recorder.close()
        self._recorder = None
        log.info("recording %s closed: %.1f s", self.path, stats.duration_seconds)
        return stats
