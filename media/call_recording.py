"""Recording an anchored call: both legs' RTP to one WAV, caller left and callee right.

Each leg's packets (tapped from the relay, before rewriting) go into a jitter buffer; on every
tick of the shared media clock one frame per leg is pulled, decoded (PCMU or PCMA) and handed
to the crash-safe ``AsyncRecorder``, which writes off the event loop. Packets of other payload
types (telephone-events, comfort noise) are not recorded.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from pathlib import Path

import numpy as np

from media.clock import MediaClock
from media.codecs.g711 import alaw_decode, ulaw_decode
from media.jitter import JitterBuffer
from media.recorder import AsyncRecorder, RecordingOptions
from media.rtp.packet import payload_bounds

__all__ = ["CallRecording"]

log = logging.getLogger("media.recording")

_HEADER = struct.Struct("!BBHII")
_DECODERS = {0: ulaw_decode, 8: alaw_decode}


class _Leg:
    __slots__ = ("buffer", "payload_type")

    def __init__(self) -> None:
        self.buffer = JitterBuffer()
        self.payload_type = 0

    def tap(self, packet: bytes | bytearray, now: float) -> None:
        if len(packet) < 12:
            return
        first, second, seq, ts, _ = _HEADER.unpack_from(packet, 0)
        pt = second & 0x7F
        if pt not in _DECODERS:
            return
        start, end = payload_bounds(packet)
        self.payload_type = pt
        self.buffer.put(seq, ts, bytes(packet[start:end]), now, bool(second & 0x80))

    def frame(self, now: float) -> np.ndarray | None:
        frame = self.buffer.pull(now)
        if frame.payload is None:
            return None
        samples = _DECODERS[self.payload_type](frame.payload)
        return samples if len(samples) == 160 else None


class CallRecording:
    """One call's recording; ``tap_a``/``tap_b`` take each leg's RTP as it arrives."""

    def __init__(self, clock: MediaClock, path: Path, options: RecordingOptions) -> None:
        self.clock = clock
        self.path = path
        self.options = options
        self.a = _Leg()
        self.b = _Leg()
        self._recorder: AsyncRecorder | None = None
        self._token: int | None = None
        self._opening: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._opening = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recorder = await AsyncRecorder.open(self.path, self.options)
        self._token = self.clock.subscribe(self._tick)
        log.info("recording to %s", self.path)

    def tap_a(self, packet: bytes | bytearray) -> None:
        self.a.tap(packet, self.clock.loop.time())

    def tap_b(self, packet: bytes | bytearray) -> None:
        self.b.tap(packet, self.clock.loop.time())

    def _tick(self, tick: int, deadline: float) -> None:
        if self._recorder is not None:
            self._recorder.write(self.a.frame(deadline), self.b.frame(deadline))

    async def stop(self) -> None:
        if self._opening is not None:
            await self._opening
        if self._token is not None:
            self.clock.unsubscribe(self._token)
            self._token = None
        if self._recorder is not None:
            stats = await self._recorder.close()
            self._recorder = None
            log.info("recording %s closed: %.1f s", self.path, stats.duration_seconds)
