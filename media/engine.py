"""The facade the switch uses for media: per call, two anchored endpoints and their relay.

The B2BUA is synchronous, so every operation here is too: ports are taken from the pool and
their sockets bound at once (the event loop starts reading them right after). ``side`` is
``"a"`` for the caller's leg and ``"b"`` for the callee's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from media.call_recording import CallRecording
from media.clock import MediaClock
from media.recorder import RecordingOptions
from media.transport import PortPool, PortsExhausted, Relay, RtpEndpoint

__all__ = ["MediaEngine", "PortsExhausted"]

log = logging.getLogger("media.engine")


@dataclass(eq=False, slots=True)
class _CallMedia:
    a: RtpEndpoint
    b: RtpEndpoint
    relay: Relay | None = None
    relay_started: float | None = None
    recording: CallRecording | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class MediaEngine:
    """All anchored calls of the process."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        bind: str,
        advertised: str,
        pool: PortPool,
        *,
        recordings: Path | None = None,
        recording_options: RecordingOptions | None = None,
    ) -> None:
        self.loop = loop
        #: record every call into this folder (None: no recording)
        self.recordings = recordings
        self.recording_options = recording_options or RecordingOptions()
        self.clock = MediaClock(loop)
        self._stopping: set[asyncio.Task[None]] = set()
        self.bind = bind
        self.address = advertised  # what the SDP we send names
        self.pool = pool
        self._calls: dict[str, _CallMedia] = {}
        # Released endpoints stay bound and are reused oldest first: binding and closing four
        # sockets per call costs more than the call's signalling.
        self._idle: deque[RtpEndpoint] = deque()

    def __len__(self) -> int:
        return len(self._calls)

    def allocate(self, call_id: str) -> tuple[int, int]:
        """RTP ports toward the caller and toward the callee; raises PortsExhausted."""
        endpoints: list[RtpEndpoint] = []
        tasks: list[asyncio.Task[None]] = []
        try:
            for _ in range(2):
                endpoint, opened = self._open_endpoint()
                endpoints.append(endpoint)
                tasks.extend(opened)
        except PortsExhausted:
            self._idle.extend(endpoints)
            raise
        a, b = endpoints
        self._calls[call_id] = _CallMedia(a, b, tasks=tasks)
        return a.port, b.port

    def _open_endpoint(self) -> tuple[RtpEndpoint, list[asyncio.Task[None]]]:
        if self._idle:
            endpoint = self._idle.popleft()
            endpoint.reset()
            return endpoint, []
        while True:
            port = self.pool.allocate()  # raises PortsExhausted when none is left
            endpoint = RtpEndpoint(self.loop, self.bind, port)
            try:
                return endpoint, endpoint.open_now()
            except OSError:
                # Taken by another program: it stays out of the pool (one log line per port).
                log.warning("RTP port %d or %d is in use by another program", port, port + 1)

    def set_remote(self, call_id: str, side: str, host: str, port: int) -> None:
        """Where a leg's SDP says to send (until its first packet latches the real source)."""
        call = self._calls.get(call_id)
        if call is None:
            return
        endpoint = call.a if side == "a" else call.b
        endpoint.remote = (host, port)

    def connect(self, call_id: str) -> None:
        """Start relaying between the two legs (idempotent)."""
        call = self._calls.get(call_id)
        if call is None or call.relay is not None:
            return
        call.relay = Relay(call.a, call.b, secrets.randbits(32), secrets.randbits(32))
        call.relay_started = self.loop.time()
        if self.recordings is not None:
            recording = CallRecording(
                self.clock, self.recordings / f"{call_id}.wav", self.recording_options
            )
            call.relay.tap_a = recording.tap_a
            call.relay.tap_b = recording.tap_b
            call.recording = recording
            recording.start()

    def release(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        for endpoint in (call.a, call.b):
            endpoint.reset()
            self._idle.append(endpoint)
        if call.recording is not None:
            task = asyncio.ensure_future(call.recording.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def drain(self) -> None:
        """Wait for recordings being closed (shutdown)."""
        while self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    @property
    def free_pairs(self) -> int:
        """Port pairs a new call could still take (never bound, or bound and idle)."""
        return len(self.pool) + len(self._idle)

    def close(self) -> None:
        """Close every socket (shutdown)."""
        for call_id in list(self._calls):
            self.release(call_id)
        while self._idle:
            endpoint = self._idle.popleft()
            endpoint.close()
            self.pool.release(endpoint.port)

    def silent(self, now: float, timeout: float) -> list[tuple[str, str]]:
        """(call, side) of every relaying call with a leg that sent nothing for ``timeout`` s.

        A leg is timed from the last packet it sent, or from when relaying started if it never
        sent one (dead-peer detection: a phone that lost its network, or a one-way NAT).
        """
        out: list[tuple[str, str]] = []
        for call_id, call in self._calls.items():
            if call.relay_started is None:
                continue
            for side, endpoint in (("a", call.a), ("b", call.b)):
                last = endpoint.last_received or call.relay_started
                if now - last >= timeout:
                    out.append((call_id, side))
                    break
        return out

    def stats(self, call_id: str) -> dict[str, int] | None:
        call = self._calls.get(call_id)
        if call is None:
            return None
        return {
            "a_in": call.a.packets_in,
            "a_out": call.a.packets_out,
            "b_in": call.b.packets_in,
            "b_out": call.b.packets_out,
        }
