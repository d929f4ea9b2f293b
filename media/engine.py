"""The facade the switch uses for media: per call, two anchored endpoints and their relay.

The B2BUA is synchronous, so every operation here is too: ports are taken from the pool and
their sockets bound at once (the event loop starts reading them right after). ``side`` is
``"a"`` for the caller's leg and ``"b"`` for the callee's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from media.call_recording import CallRecording
from media.clock import MediaClock
from media.codecs.g711 import alaw_encode, ulaw_encode
from media.dtmf import DtmfReceived, Rfc4733Receiver
from media.recorder import RecordingOptions
from media.rtp.packet import RtpPacket, payload_bounds
from media.rtp.rewrite import StreamRewriter
from media.tones import dtmf
from media.transport import PortPool, PortsExhausted, Relay, RtpEndpoint

__all__ = ["DigitSink", "MediaEngine", "PortsExhausted"]


def _chain(taps: list[Callable[[bytearray], None]]) -> Callable[[bytearray], None] | None:
    if not taps:
        return None
    if len(taps) == 1:
        return taps[0]

    def both(packet: bytearray) -> None:
        for tap in taps:
            tap(packet)

    return both


log = logging.getLogger("media.engine")


@dataclass(eq=False, slots=True)
class _CallMedia:
    a: RtpEndpoint
    b: RtpEndpoint
    relay: Relay | None = None
    relay_started: float | None = None
    recording: CallRecording | None = None
    local: bool = False  # the switch itself is the far end (echo, prompt test): only leg A
    announcer: _Announcer | None = None
    events: dict[str, _EventTap] = field(default_factory=dict)  # side -> RFC 4733 receiver
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


DigitSink = Callable[[str, str, DtmfReceived], None]  # (call id, side, digit)

_ENCODERS = {0: ulaw_encode, 8: alaw_encode}


class _Announcer:
    """Audio the switch sends to leg A itself, one 20 ms frame per media clock tick."""

    __slots__ = (
        "call",
        "encode",
        "engine",
        "payload_type",
        "pending",
        "rewriter",
        "ssrc",
        "token",
    )

    def __init__(self, engine: MediaEngine, call: _CallMedia, payload_type: int) -> None:
        self.engine = engine
        self.call = call
        self.payload_type = payload_type
        self.encode = _ENCODERS.get(payload_type, ulaw_encode)
        self.pending: deque[np.ndarray] = deque()
        self.rewriter = StreamRewriter(
            secrets.randbits(32), secrets.randbits(15), secrets.randbits(32)
        )
        self.ssrc = self.rewriter.ssrc
        self.token: int | None = None

    def queue(self, samples: np.ndarray) -> None:
        for start in range(0, len(samples), 160):
            frame = samples[start : start + 160]
            if len(frame) < 160:
                frame = np.concatenate([frame, np.zeros(160 - len(frame), dtype=np.int16)])
            self.pending.append(frame.astype(np.int16, copy=False))

    def tick(self, tick: int, deadline: float) -> None:
        if not self.pending:
            return  # nothing to say: send nothing (the phone plays comfort silence)
        seq, ts, marker = self.rewriter.next_generated()
        payload = self.encode(self.pending.popleft()).tobytes()
        packet = RtpPacket(
            self.payload_type, seq, ts, self.rewriter.ssrc, marker=marker, payload=payload
        )
        self.call.a.send_rtp(bytes(packet))


_EVENT_HEADER = struct.Struct("!BBHI")


class _EventTap:
    """RFC 4733 telephone-events of one leg, picked out of its RTP by payload type."""

    __slots__ = ("payload_type", "receiver")

    def __init__(self, payload_type: int) -> None:
        self.payload_type = payload_type
        self.receiver = Rfc4733Receiver()

    def feed(self, packet: bytes | bytearray, now: float) -> list[DtmfReceived]:
        if len(packet) < 16 or packet[1] & 0x7F != self.payload_type:
            return []
        _, second, _, ts = _EVENT_HEADER.unpack_from(packet, 0)
        start, end = payload_bounds(packet)
        return self.receiver.receive(ts, bool(second & 0x80), bytes(packet[start:end]), now)


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
        #: told of every digit a leg sends as RFC 4733 events
        self.on_digit: DigitSink = lambda call_id, side, digit: None
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

    def set_remote(
        self, call_id: str, side: str, host: str, port: int, events_pt: int | None = None
    ) -> None:
        """Where a leg's SDP says to send (until its first packet latches the real source),
        and the payload type of its telephone-events, if it offered them."""
        call = self._calls.get(call_id)
        if call is None:
            return
        endpoint = call.a if side == "a" else call.b
        endpoint.remote = (host, port)
        if events_pt is not None and (
            side not in call.events or call.events[side].payload_type != events_pt
        ):
            call.events[side] = _EventTap(events_pt)

    def connect(self, call_id: str) -> None:
        """Start relaying between the two legs (idempotent)."""
        call = self._calls.get(call_id)
        if call is None or call.relay is not None:
            return
        call.relay = Relay(call.a, call.b, secrets.randbits(32), secrets.randbits(32))
        call.relay_started = self.loop.time()
        taps: dict[str, list[Callable[[bytearray], None]]] = {"a": [], "b": []}
        for side, events in call.events.items():
            taps[side].append(self._digit_tap(call_id, side, events))
        if self.recordings is not None:
            recording = CallRecording(
                self.clock, self.recordings / f"{call_id}.wav", self.recording_options
            )
            taps["a"].append(recording.tap_a)
            taps["b"].append(recording.tap_b)
            call.recording = recording
            recording.start()
        call.relay.tap_a = _chain(taps["a"])
        call.relay.tap_b = _chain(taps["b"])

    def echo(self, call_id: str) -> None:
        """Send every packet of leg A straight back to it (the echo test extension), as the
        switch's own stream (RFC 3550 §8.2 translation, like the relay)."""
        call = self._calls.get(call_id)
        if call is None or call.relay_started is not None:
            return
        rewriter = StreamRewriter(secrets.randbits(32), secrets.randbits(15), secrets.randbits(32))
        endpoint = call.a

        def back(packet: bytearray) -> None:
            if rewriter.relay(packet):
                endpoint.send_rtp(packet)

        endpoint.on_rtp = back
        call.local = True
        call.relay_started = self.loop.time()

    def prompt_test(self, call_id: str, payload_type: int, prompt: np.ndarray) -> None:
        """The prompt test: play ``prompt`` to leg A, then a DTMF tone for each digit it sends
        (RFC 4733, the payload type its SDP named), so a caller hears both directions work."""
        call = self._calls.get(call_id)
        if call is None or call.relay_started is not None:
            return
        announcer = _Announcer(self, call, payload_type)
        announcer.queue(prompt)
        call.announcer = announcer
        events = call.events.get("a")

        def heard(packet: bytearray) -> None:
            if events is None:
                return
            for digit in events.feed(packet, self.loop.time()):
                self.on_digit(call_id, "a", digit)
                announcer.queue(dtmf(digit.digit, 200, level_dbm0=-10.0))
                announcer.queue(np.zeros(800, dtype=np.int16))

        call.a.on_rtp = heard
        call.local = True
        call.relay_started = self.loop.time()
        announcer.token = self.clock.subscribe(announcer.tick)

    def _digit_tap(self, call_id: str, side: str, events: _EventTap) -> Callable[[bytearray], None]:
        def tap(packet: bytearray) -> None:
            for digit in events.feed(packet, self.loop.time()):
                self.on_digit(call_id, side, digit)

        return tap

    def release(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        for endpoint in (call.a, call.b):
            endpoint.reset()
            self._idle.append(endpoint)
        if call.announcer is not None and call.announcer.token is not None:
            self.clock.unsubscribe(call.announcer.token)
            call.announcer = None
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
            sides = (("a", call.a),) if call.local else (("a", call.a), ("b", call.b))
            for side, endpoint in sides:
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
