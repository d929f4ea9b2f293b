"""The facade the switch uses for media: per call, two anchored endpoints and their relay.

The B2BUA is synchronous, so every operation here is too: ports are taken from the pool and
their sockets bound at once (the event loop starts reading them right after). ``side`` is
``"a"`` for the caller's leg and ``"b"`` for the callee's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from media.call_recording import CallRecording
from media.capture import LegCapture
from media.clock import MediaClock
from media.codecs.registry import by_payload_type
from media.dtmf import DtmfReceived, GoertzelDetector, Rfc4733Receiver, Rfc4733Sender
from media.mixer import SupervisorMode
from media.monitor import MonitoredCall
from media.player import MusicOnHold, Playback
from media.recorder import RecordingOptions, RecordingStats
from media.rtp.packet import RtpPacket, payload_bounds
from media.rtp.quality import estimate_mos
from media.rtp.rewrite import StreamRewriter
from media.rtp.session import RtpSession, RtpSessionStats
from media.sender import FrameQueue, LegSender
from media.tones import RINGBACK_EUROPE, ToneGenerator, dtmf
from media.transport import PayloadMap, PortPool, PortsExhausted, Relay, RtpEndpoint, g711_map

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
    #: the switch's own RTP source toward each leg (relayed and generated audio alike)
    ssrc_a: int = 0
    ssrc_b: int = 0
    #: the rewriters numbering what is sent toward each leg (for the RTCP sender info)
    out_a: StreamRewriter | None = None
    out_b: StreamRewriter | None = None
    relay: Relay | None = None
    #: the G.711 payload types of legs A and B while the relay translates between them
    laws: tuple[int, int] | None = None
    relay_started: float | None = None
    recording: CallRecording | None = None
    record_wanted: bool = False  # recorded on demand ("record: start"), not by default
    local: bool = False  # the switch itself is the far end (echo, prompt test): only leg A
    #: what the switch itself sends to a leg on the media clock (prompt, music on hold):
    #: side -> (sender, clock subscription)
    senders: dict[str, tuple[LegSender, int]] = field(default_factory=dict)
    #: supervisors on this call: the mix, its clock subscription and the relay taps it wrapped
    monitor: MonitoredCall | None = None
    monitor_token: int | None = None
    relay_taps: (
        tuple[Callable[[bytearray], None] | None, Callable[[bytearray], None] | None] | None
    ) = None
    events: dict[str, _EventTap] = field(default_factory=dict)  # side -> RFC 4733 receiver
    inband: dict[str, _InbandTap] = field(default_factory=dict)  # side -> tone detector
    #: the call's application, told of each digit (the prompt test, an IVR session)
    listener: Callable[[str, DtmfReceived], None] | None = None
    #: what an IVR session is playing to leg A, if anything
    playback: Playback | None = None
    #: ends the current playback at once (its on_done called), for a playback replaced
    finish_playback: Callable[[], None] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


DigitSink = Callable[[str, str, DtmfReceived], None]  # (call id, side, digit)

#: seconds a leg's previous peer may not latch it back after the leg was pointed elsewhere
#: (longer than the B2BUA's wait for a transferring phone's BYE)
FORSAKEN_HOLD_OFF = 6.0


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


class _ToneBank:
    """In-band DTMF detection for every leg that needs it, in one batched Goertzel pass per
    media clock tick (``GoertzelDetector.process_frames``: one matrix product for all legs,
    instead of one small product and its Python overhead per packet). A digit is reported
    up to one tick (20 ms) after the packet that ended it."""

    def __init__(self, engine: MediaEngine, legs: int) -> None:
        self.engine = engine
        self.detector = GoertzelDetector(legs)
        self._free = list(range(legs - 1, -1, -1))
        self._owners: dict[int, tuple[str, str]] = {}
        self._rows: list[int] = []
        self._frames: list[np.ndarray] = []
        self._queued: set[int] = set()
        self._later: list[tuple[int, np.ndarray]] = []  # a second frame of a leg in one tick
        self._token: int | None = None

    def take(self, call_id: str, side: str) -> int | None:
        """A slot for one leg, or None when all are taken."""
        if not self._free:
            return None
        slot = self._free.pop()
        self.detector.reset(slot)
        self._owners[slot] = (call_id, side)
        if self._token is None:
            self._token = self.engine.clock.subscribe(self.tick)
        return slot

    def give_back(self, slot: int) -> None:
        if self._owners.pop(slot, None) is not None:
            self._free.append(slot)

    def put(self, slot: int, samples: np.ndarray) -> None:
        if len(samples) != 160:  # not a 20 ms packet: on its own, now
            self._report(self.detector.process_frames(samples[None, :], np.array([slot])))
        elif slot in self._queued:
            self._later.append((slot, samples))
        else:
            self._queued.add(slot)
            self._rows.append(slot)
            self._frames.append(samples)

    def tick(self, tick: int, deadline: float) -> None:
        while self._rows:
            frames = np.stack(self._frames)
            rows = np.array(self._rows, np.intp)
            self._rows, self._frames, self._queued = [], [], set()
            self._report(self.detector.process_frames(frames, rows))
            later, self._later = self._later, []
            for slot, samples in later:
                self.put(slot, samples)

    def stop(self) -> None:
        if self._token is not None:
            self.engine.clock.unsubscribe(self._token)
            self._token = None

    def _report(self, found: list[tuple[int, DtmfReceived]]) -> None:
        for slot, digit in found:
            owner = self._owners.get(slot)
            if owner is not None:
                self.engine.digit(owner[0], owner[1], digit)


class _InbandTap:
    """DTMF tones in a leg's G.711 audio (for phones that send no RFC 4733 events): payloads
    decoded through the law's table and handed to the engine's batched detector (ITU-T Q.24
    checks). Digits are reported by the bank, so :meth:`feed` returns none itself."""

    __slots__ = ("bank", "slot")

    def __init__(self, bank: _ToneBank, slot: int) -> None:
        self.bank = bank
        self.slot = slot

    def feed(self, packet: bytes | bytearray, now: float) -> list[DtmfReceived]:
        codec = by_payload_type(packet[1] & 0x7F) if len(packet) > 12 else None
        if codec is None:
            return []
        start, end = payload_bounds(packet)
        usable = (end - start) // 80 * 80  # whole 10 ms blocks
        if usable:
            self.bank.put(self.slot, codec.decode(np.frombuffer(packet, np.uint8, usable, start)))
        return []


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
        record_calls: bool = True,
        recording_options: RecordingOptions | None = None,
        rtcp_interval: float = 5.0,
        inband_dtmf: str = "auto",
        moh: MusicOnHold | None = None,
    ) -> None:
        self.loop = loop
        #: RTCP report interval per leg before randomisation (RFC 3550 §6.2: 5 s minimum)
        self.rtcp_interval = rtcp_interval
        #: listen for DTMF tones in the audio: "auto" (legs that offered no telephone-event),
        #: "always" or "never"
        self.inband_dtmf = inband_dtmf
        #: what a leg on hold hears (None: the switch sends it nothing)
        self.moh = moh
        self._supervising: dict[str, str] = {}  # supervisor's call -> the call it monitors
        self._local_pt: dict[str, int] = {}  # local (IVR) calls -> the payload type of leg A
        self._tones = _ToneBank(self, max(2, pool.capacity))
        #: where recordings go (None: calls are never recorded)
        self.recordings = recordings
        #: record every relayed call (else only calls asked to, see control_recording)
        self.record_calls = record_calls
        self.recording_options = recording_options or RecordingOptions()
        self.clock = MediaClock(loop)
        #: told of every digit a leg sends as RFC 4733 events
        self.on_digit: DigitSink = lambda call_id, side, digit: None
        self._stopping: set[asyncio.Task[RecordingStats | None]] = set()
        self._recording_stops: dict[str, asyncio.Task[RecordingStats | None]] = {}
        self.bind = bind
        self.address = advertised  # what the SDP we send names
        self.pool = pool
        self._calls: dict[str, _CallMedia] = {}
        #: RTCP CNAME of the switch's streams (RFC 3550 §6.5.1: user@host form)
        self.cname = f"softswitch@{advertised}"
        #: how often the RTCP timers of all legs are looked at (each leg reports every 5 s
        #: x [0.5, 1.5), RFC 3550 §6.2)
        self.rtcp_poll = 0.5
        self._rtcp_timer: asyncio.TimerHandle | None = None
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
        call = _CallMedia(a, b, secrets.randbits(32), secrets.randbits(32), tasks=tasks)
        now = self.loop.time()
        for endpoint, ssrc in ((a, call.ssrc_a), (b, call.ssrc_b)):
            endpoint.session = RtpSession(
                ssrc=ssrc,
                cname=self.cname,
                now=now,
                wallclock=time.time,
                random=random.random,
                interval=self.rtcp_interval,
            )
        self._calls[call_id] = call
        if self._rtcp_timer is None:
            self._rtcp_timer = self.loop.call_later(self.rtcp_poll, self._rtcp_tick)
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
        and the payload type of its telephone-events, if it offered them. A leg pointed at a
        new address (a transfer) does not let its previous peer latch it back for
        :data:`FORSAKEN_HOLD_OFF` seconds."""
        call = self._calls.get(call_id)
        if call is None:
            return
        endpoint = call.a if side == "a" else call.b
        endpoint.move((host, port), FORSAKEN_HOLD_OFF)
        if events_pt is not None and (
            side not in call.events or call.events[side].payload_type != events_pt
        ):
            call.events[side] = _EventTap(events_pt)
        wants_tones = self.inband_dtmf == "always" or (
            self.inband_dtmf == "auto" and events_pt is None
        )
        if not wants_tones:
            tap = call.inband.pop(side, None)
            if tap is not None:
                self._tones.give_back(tap.slot)
        elif side not in call.inband:
            slot = self._tones.take(call_id, side)
            if slot is None:
                log.warning("call %s: no tone detector left for the %s leg", call_id, side)
            else:
                call.inband[side] = _InbandTap(self._tones, slot)

    def transcode(self, call_id: str, a_pt: int | None, b_pt: int | None) -> None:
        """Legs A and B speak different G.711 laws (payload types 0 and 8): the relay translates
        each payload byte through a table; None, None: the same codec again."""
        call = self._calls.get(call_id)
        if call is None:
            return
        call.laws = (a_pt, b_pt) if a_pt is not None and b_pt is not None else None
        if call.relay is not None:
            call.relay.a_to_b, call.relay.b_to_a = _payload_maps(call)

    def connect(self, call_id: str) -> None:
        """Start relaying between the two legs (idempotent)."""
        call = self._calls.get(call_id)
        if call is None:
            return
        if call.relay is not None:
            call.relay.a_to_b, call.relay.b_to_a = _payload_maps(call)  # a re-INVITE's news
            return
        a_to_b, b_to_a = _payload_maps(call)
        call.relay = Relay(call.a, call.b, call.ssrc_a, call.ssrc_b, a_to_b=a_to_b, b_to_a=b_to_a)
        if call.out_a is not None:  # leg A heard the switch before (an IVR): same stream on
            call.relay.to_a = call.out_a
        call.out_a, call.out_b = call.relay.to_a, call.relay.to_b
        call.relay_started = self.loop.time()
        if self.recordings is not None and (self.record_calls or call.record_wanted):
            self._start_recording(call_id, call)
        else:
            self._retap(call_id, call)

    def _retap(self, call_id: str, call: _CallMedia) -> None:
        """The relay's taps: digit detectors, and the recording if there is one."""
        assert call.relay is not None
        taps: dict[str, list[Callable[[bytearray], None]]] = {"a": [], "b": []}
        for side in ("a", "b"):
            if side in call.events or side in call.inband:
                taps[side].append(self._detectors(call_id, call, side))
        if call.recording is not None:
            taps["a"].append(call.recording.tap_a)
            taps["b"].append(call.recording.tap_b)
        call.relay.tap_a = _chain(taps["a"])
        call.relay.tap_b = _chain(taps["b"])

    def _start_recording(self, call_id: str, call: _CallMedia) -> None:
        assert self.recordings is not None
        name = f"{call_id}.wav" if call_id not in self._recording_stops else f"{call_id}-2.wav"
        recording = CallRecording(self.clock, self.recordings / name, self.recording_options)
        call.recording = recording
        recording.start()
        self._retap(call_id, call)

    def _stop_recording(self, call_id: str, call: _CallMedia) -> None:
        """Close the call's recording now (its result is kept for :meth:`recording_result`)."""
        recording, call.recording = call.recording, None
        if recording is None:
            return
        if call.relay is not None:
            self._retap(call_id, call)
        task = asyncio.ensure_future(recording.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        if len(self._recording_stops) >= 10000:  # nobody asked: forget the oldest
            self._recording_stops.pop(next(iter(self._recording_stops)))
        self._recording_stops[call_id] = task

    def echo(self, call_id: str) -> None:
        """Send every packet of leg A straight back to it (the echo test extension), as the
        switch's own stream (RFC 3550 §8.2 translation, like the relay)."""
        call = self._calls.get(call_id)
        if call is None or call.relay_started is not None:
            return
        rewriter = StreamRewriter(call.ssrc_a, secrets.randbits(15), secrets.randbits(32))
        call.out_a = rewriter
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
        queue = FrameQueue()
        queue.put(prompt)
        rewriter = StreamRewriter(call.ssrc_a, secrets.randbits(15), secrets.randbits(32))
        call.out_a = rewriter

        def answer(side: str, digit: DtmfReceived) -> None:
            queue.put(dtmf(digit.digit, 200, level_dbm0=-10.0))
            queue.put(np.zeros(800, dtype=np.int16))

        call.listener = answer
        call.a.on_rtp = self._detectors(call_id, call, "a")
        call.local = True
        call.relay_started = self.loop.time()
        self._start_sender(call, "a", LegSender(call.a, rewriter, payload_type, queue.next))

    def _start_sender(self, call: _CallMedia, side: str, sender: LegSender) -> None:
        self._stop_sender(call, side)
        call.senders[side] = (sender, self.clock.subscribe(sender.tick))

    def _stop_sender(self, call: _CallMedia, side: str) -> None:
        entry = call.senders.pop(side, None)
        if entry is not None:
            self.clock.unsubscribe(entry[1])

    def hold(self, call_id: str, side: str, payload_type: int) -> None:
        """Leg ``side`` is on hold (the other leg offered sendonly or inactive, RFC 3264
        §8.4): it hears music on hold instead of the other leg until :meth:`unhold`."""
        call = self._calls.get(call_id)
        if call is None or call.relay is None or self.moh is None or call.monitor is not None:
            return
        endpoint, out = (call.a, call.out_a) if side == "a" else (call.b, call.out_b)
        if out is None or side in call.senders:
            return
        stream = self.moh.stream(self.loop.time())
        if side == "a":
            call.relay.to_a_on = False
        else:
            call.relay.to_b_on = False
        self._start_sender(call, side, LegSender(endpoint, out, payload_type, stream.read_frame))

    def unhold(self, call_id: str, side: str) -> None:
        """Leg ``side`` hears the other leg again (the hold was lifted)."""
        call = self._calls.get(call_id)
        if call is None or side not in call.senders or call.relay is None:
            return
        self._stop_sender(call, side)
        if side == "a":
            call.relay.to_a_on = True
        else:
            call.relay.to_b_on = True

    # -- supervisors ----------------------------------------------------------------------------

    def monitor(
        self, call_id: str, supervisor_call: str, mode: SupervisorMode, agent_side: str
    ) -> bool:
        """Join ``supervisor_call`` (a call the switch answered, leg A only) to the live call
        ``call_id`` in ``mode``; the agent is the leg ``agent_side``. The supervisor changes
        mode with a digit: 1 listen, 2 whisper, 3 barge. False if either call cannot be used.
        """
        call = self._calls.get(call_id)
        sup = self._calls.get(supervisor_call)
        if (
            call is None
            or sup is None
            or call.relay is None
            or call.local
            or supervisor_call in self._supervising
            or sup.relay_started is not None
        ):
            return False
        relay = call.relay
        if call.monitor is None:
            for side in list(call.senders):  # music on hold gives way to the mix
                self._stop_sender(call, side)

            def party(side: str) -> LegSender:
                endpoint, out = (call.a, relay.to_a) if side == "a" else (call.b, relay.to_b)
                pt = call.laws[0 if side == "a" else 1] if call.laws is not None else 0
                return LegSender(endpoint, out, pt, _no_frame)

            caller_side = "a" if agent_side == "b" else "b"
            roles = {caller_side: "caller", agent_side: "agent"}
            monitored = MonitoredCall(party(caller_side), party(agent_side), self.loop.time)
            call.relay_taps = (relay.tap_a, relay.tap_b)
            relay.tap_a = _chain([t for t in (relay.tap_a, monitored.feed(roles["a"])) if t])
            relay.tap_b = _chain([t for t in (relay.tap_b, monitored.feed(roles["b"])) if t])
            relay.to_a_on = relay.to_b_on = False
            call.monitor = monitored
            call.monitor_token = self.clock.subscribe(monitored.tick)
        monitored = call.monitor
        rewriter = StreamRewriter(sup.ssrc_a, secrets.randbits(15), secrets.randbits(32))
        sup.out_a = rewriter
        monitored.add(supervisor_call, LegSender(sup.a, rewriter, 0, _no_frame), mode)
        self._supervising[supervisor_call] = call_id
        feed = monitored.feed(supervisor_call)
        detect = self._detectors(supervisor_call, sup, "a")

        def heard(packet: bytearray) -> None:
            feed(packet)
            detect(packet)

        def switch_mode(side: str, digit: DtmfReceived) -> None:
            new = _MODE_KEYS.get(digit.digit)
            if new is not None and supervisor_call in monitored.modes:
                monitored.set_mode(supervisor_call, new)
                log.info("call %s: supervisor call %s now %s", call_id, supervisor_call, new.name)

        sup.a.on_rtp = heard
        sup.listener = switch_mode
        sup.local = True
        sup.relay_started = self.loop.time()
        return True

    def set_monitor_mode(self, supervisor_call: str, mode: SupervisorMode) -> bool:
        call = self._calls.get(self._supervising.get(supervisor_call, ""))
        if call is None or call.monitor is None or supervisor_call not in call.monitor.modes:
            return False
        call.monitor.set_mode(supervisor_call, mode)
        return True

    def _unmonitor(self, supervisor_call: str) -> None:
        """The supervisor left: out of the mix, and the call back to a plain relay if it was
        the last one."""
        call = self._calls.get(self._supervising.pop(supervisor_call, ""))
        if call is None or call.monitor is None:
            return
        if call.monitor.remove(supervisor_call):
            self._end_monitor(call)

    def _end_monitor(self, call: _CallMedia) -> None:
        if call.monitor_token is not None:
            self.clock.unsubscribe(call.monitor_token)
        if call.relay is not None and call.relay_taps is not None:
            call.relay.tap_a, call.relay.tap_b = call.relay_taps
            call.relay.to_a_on = call.relay.to_b_on = True
        if call.monitor is not None:
            for supervisor in call.monitor.modes:
                self._supervising.pop(supervisor, None)
        call.monitor = None
        call.monitor_token = None
        call.relay_taps = None

    def on_hold(self, call_id: str, side: str) -> bool:
        call = self._calls.get(call_id)
        return call is not None and call.relay is not None and side in call.senders

    # -- the switch as the far end: IVR sessions ---------------------------------------------------

    def attach_local(
        self,
        call_id: str,
        payload_type: int,
        listener: Callable[[str, DtmfReceived], None] | None = None,
    ) -> None:
        """The switch itself answers leg A (an IVR session): digits from the leg, however sent,
        go to ``listener``; :meth:`play` sends it prompts in ``payload_type`` (0 or 8)."""
        call = self._calls.get(call_id)
        if call is None or call.relay_started is not None:
            return
        call.out_a = StreamRewriter(call.ssrc_a, secrets.randbits(15), secrets.randbits(32))
        call.listener = listener
        call.local = True
        call.relay_started = self.loop.time()
        call.a.on_rtp = self._detectors(call_id, call, "a")
        self._local_pt[call_id] = payload_type

    def end_local(self, call_id: str) -> None:
        """Leg A of a local call is about to be relayed to a leg B (an IVR caller bridged to
        an agent): whatever the switch plays to it stops, its digits go back to the switch's
        digit hook only, and :meth:`connect` may start the relay. The stream toward A keeps its
        SSRC and numbering (RFC 3550 §5.1), so its phone sees one continuous source."""
        call = self._calls.get(call_id)
        if call is None or not call.local:
            return
        if call.finish_playback is not None:
            call.finish_playback()
        for side in list(call.senders):
            self._stop_sender(call, side)
        self._local_pt.pop(call_id, None)
        call.listener = None
        call.local = False
        call.relay_started = None

    def play(
        self,
        call_id: str,
        prompts: Sequence[np.ndarray],
        *,
        barge_in: bool = False,
        on_done: Callable[[str | None], None] | None = None,
    ) -> bool:
        """Play ``prompts`` (8 kHz int16) to leg A of a local call, replacing what was playing.

        ``on_done`` is called once: with the digit that stopped the playback (barge-in), or
        None when it ran out or was stopped. False if the call is not a local one.
        """
        call = self._calls.get(call_id)
        out = call.out_a if call is not None else None
        if call is None or out is None or call_id not in self._local_pt:
            return False
        if call.finish_playback is not None:
            call.finish_playback()  # the one playing is replaced
        playback = Playback(list(prompts), barge_in=barge_in)
        finished = False

        def finish() -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            if call.playback is playback:
                call.playback = call.finish_playback = None
                self._stop_sender(call, "a")
            if on_done is not None:
                on_done(playback.stopped_by_digit)

        def frames() -> np.ndarray | None:
            frame = playback.read_frame()
            if frame is None:
                finish()
            return frame

        call.playback = playback
        call.finish_playback = finish

        self._start_sender(call, "a", LegSender(call.a, out, self._local_pt[call_id], frames))
        return True

    def stop_playback(self, call_id: str) -> None:
        """Stop what leg A hears; the playback's ``on_done`` gets None at the next tick."""
        call = self._calls.get(call_id)
        if call is None:
            return
        if call.playback is not None:
            call.playback.stop()
        elif call.finish_playback is not None:  # a stream (music, ringback) ends at once
            call.finish_playback()

    def play_stream(self, call_id: str, what: str) -> bool:
        """Loop music on hold (``"music"``) or a ringback tone (``"ringback"``, ITU-T E.180
        425 Hz, 1 s on, 4 s off) to leg A of a local call, until :meth:`play`,
        :meth:`stop_playback` or the end of the call. False if there is nothing to play or the
        call is not a local one."""
        call = self._calls.get(call_id)
        out = call.out_a if call is not None else None
        if call is None or out is None or call_id not in self._local_pt:
            return False
        frames: Callable[[], np.ndarray | None]
        if what == "music":
            if self.moh is None:
                return False
            frames = self.moh.stream(self.loop.time()).read_frame
        elif what == "ringback":
            frames = ToneGenerator(RINGBACK_EUROPE).next_frame
        else:
            raise ValueError(f"unknown stream {what!r}")
        if call.finish_playback is not None:
            call.finish_playback()

        def finish() -> None:
            if call.finish_playback is finish:
                call.finish_playback = None
                self._stop_sender(call, "a")

        call.finish_playback = finish
        self._start_sender(call, "a", LegSender(call.a, out, self._local_pt[call_id], frames))
        return True

    def capture(self, call_id: str, max_seconds: float) -> LegCapture | None:
        """Start keeping what leg A of a local call says (a voicemail message), decoded to
        8 kHz linear PCM, at most ``max_seconds`` of it; None if the call is not a local one.
        The digit detectors go on listening. :meth:`LegCapture.samples` gives the audio."""
        call = self._calls.get(call_id)
        if call is None or call_id not in self._local_pt:
            return None
        capture = LegCapture(int(max_seconds * 8000))
        detectors = self._detectors(call_id, call, "a")

        def heard(packet: bytearray) -> None:
            detectors(packet)
            capture.feed(packet)

        call.a.on_rtp = heard
        return capture

    def _detectors(self, call_id: str, call: _CallMedia, side: str) -> Callable[[bytearray], None]:
        """A packet tap running the leg's digit detectors (RFC 4733 events, in-band tones);
        each digit goes to :meth:`digit`. The time is the packet's arrival, which the endpoint
        has just read (no second clock read per packet)."""
        endpoint = call.a if side == "a" else call.b
        detectors = [d for d in (call.events.get(side), call.inband.get(side)) if d is not None]

        def heard(packet: bytearray) -> None:
            now = endpoint.last_received or 0.0
            for detector in detectors:
                for digit in detector.feed(packet, now):
                    self.digit(call_id, side, digit)

        return heard

    # -- sending digits -------------------------------------------------------------------------

    def send_digit(self, call_id: str, side: str, digit: str, duration_ms: int = 100) -> bool:
        """Send ``digit`` to a leg as RFC 4733 telephone-events (§2.5.1: a marked first packet,
        duration updates every 20 ms, three end packets), on the switch's stream toward that
        leg and in the payload type its SDP gave. False if the leg named no telephone-event."""
        call = self._calls.get(call_id)
        if call is None:
            return False
        endpoint, out = (call.a, call.out_a) if side == "a" else (call.b, call.out_b)
        events = call.events.get(side)
        if out is None or events is None:
            return False
        packets = Rfc4733Sender().packets(digit, duration_ms)
        pt = events.payload_type
        token: int | None = None
        state = {"next": 0, "ts": 0}

        def tick(tick: int, deadline: float) -> None:
            i = state["next"]
            if i >= len(packets) or self._calls.get(call_id) is not call:
                if token is not None:
                    self.clock.unsubscribe(token)
                return
            if i == 0:
                seq, ts, _ = out.next_generated()
                state["ts"] = ts
            else:
                seq, _ = out.next_sequence()
            packet = packets[i]
            rtp = RtpPacket(
                pt, seq, state["ts"], out.ssrc, marker=packet.marker, payload=packet.payload
            )
            endpoint.send_rtp(bytes(rtp))
            state["next"] = i + 1

        token = self.clock.subscribe(tick)
        return True

    # -- recording ------------------------------------------------------------------------------

    def control_recording(self, call_id: str, action: str, reason: str = "") -> bool | None:
        """Start ("start"), stop ("stop"), pause ("pause") or resume ("resume") a call's
        recording; whether that changed anything, None if the call is not recorded (or, for
        "start", cannot be: no recordings folder). A call still answered by the switch itself
        (an IVR) is recorded from the moment it is bridged."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        if action == "start":
            if self.recordings is None:
                return None
            if call.recording is not None or call.record_wanted:
                return False
            call.record_wanted = True
            if call.relay is not None:
                self._start_recording(call_id, call)
            return True
        if action == "stop":
            call.record_wanted = False
            if call.recording is None:
                return None
            self._stop_recording(call_id, call)
            return True
        if call.recording is None:
            return None
        if action == "pause":
            return call.recording.pause(reason)
        return call.recording.resume()

    async def recording_result(self, call_id: str) -> RecordingStats | None:
        """What a released call's recording holds once closed (talk time, pauses), or None."""
        task = self._recording_stops.pop(call_id, None)
        if task is None:
            return None
        try:
            return await task
        except Exception:
            log.exception("closing the recording of call %s failed", call_id)
            return None

    def digit(self, call_id: str, side: str, digit: DtmfReceived) -> None:
        """A digit from one leg, however it came (RFC 4733, in-band, SIP INFO): reported to
        the switch and to the call's application."""
        self.on_digit(call_id, side, digit)
        call = self._calls.get(call_id)
        if call is None:
            return
        if call.playback is not None and side == "a":
            call.playback.on_digit(digit.digit)  # barge-in, if the playback allows it
        if call.listener is not None:
            call.listener(side, digit)

    def _rtcp_tick(self) -> None:
        """Send the RTCP report of every leg whose interval has come (RFC 3550 §6.2, §6.4)."""
        self._rtcp_timer = None
        if not self._calls:
            return
        now = self.loop.time()
        for call in self._calls.values():
            legs = ((call.a, call.out_a), (call.b, call.out_b))
            for endpoint, out in legs[:1] if call.local else legs:
                session = endpoint.session
                if session is None:
                    continue
                deadline = session.next_deadline()
                if deadline is None or deadline > now:
                    continue
                _sync_sent(session, endpoint, out, now)
                report = session.handle_timer(now)
                if report is not None and endpoint.destination is not None:
                    endpoint.send_rtcp(report)
        self._rtcp_timer = self.loop.call_later(self.rtcp_poll, self._rtcp_tick)

    def release(self, call_id: str) -> dict[str, object] | None:
        """End a call's media: RTCP BYE to each leg (RFC 3550 §6.6), ports back to the pool.

        Returns the call's final media report (see :meth:`stats`), or None if unknown.
        """
        call = self._calls.pop(call_id, None)
        if call is None:
            return None
        now = self.loop.time()
        report = self._report(call)
        for endpoint, out in ((call.a, call.out_a), (call.b, call.out_b)):
            session = endpoint.session
            if (
                session is not None
                and endpoint.destination is not None
                and (session.packets_sent or endpoint.packets_in)
            ):
                _sync_sent(session, endpoint, out, now)
                endpoint.send_rtcp(session.bye(now, "call ended"))
            endpoint.reset()
            self._idle.append(endpoint)
        for side in list(call.senders):
            self._stop_sender(call, side)
        if call.monitor is not None:
            self._end_monitor(call)
        if call_id in self._supervising:
            self._unmonitor(call_id)
        self._local_pt.pop(call_id, None)
        for tap in call.inband.values():
            self._tones.give_back(tap.slot)
        call.inband.clear()
        if call.finish_playback is not None:
            call.finish_playback()  # the caller hung up during a prompt
        self._stop_recording(call_id, call)
        return report

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
        self._tones.stop()
        if self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
            self._rtcp_timer = None
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

    def stats(self, call_id: str) -> dict[str, object] | None:
        """A call's media report: per leg (``a`` the caller's, ``b`` the callee's) the RTP
        statistics of RFC 3550 (loss, jitter, RTT from RTCP) and the address it latched to."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        now = self.loop.time()
        for endpoint, out in ((call.a, call.out_a), (call.b, call.out_b)):
            if endpoint.session is not None:
                _sync_sent(endpoint.session, endpoint, out, now)
        return self._report(call)

    def session_stats(self, call_id: str, side: str) -> RtpSessionStats | None:
        call = self._calls.get(call_id)
        if call is None:
            return None
        endpoint = call.a if side == "a" else call.b
        return endpoint.session.stats() if endpoint.session is not None else None

    def _report(self, call: _CallMedia) -> dict[str, object]:
        legs = ("a",) if call.local else ("a", "b")
        report: dict[str, object] = {}
        for side in legs:
            endpoint = call.a if side == "a" else call.b
            report[side] = _leg_report(endpoint)
        if call.recording is not None:
            report["recording"] = str(call.recording.path)
        return report


_MODE_KEYS = {
    "1": SupervisorMode.LISTEN,
    "2": SupervisorMode.WHISPER,
    "3": SupervisorMode.BARGE,
}


def _no_frame() -> None:
    return None


def _payload_maps(call: _CallMedia) -> tuple[PayloadMap, PayloadMap]:
    """What the relay renumbers or translates in each direction: the G.711 law when the legs
    differ, and telephone-event when the legs named it with different payload types."""
    a_to_b: PayloadMap = {}
    b_to_a: PayloadMap = {}
    if call.laws is not None:
        a_to_b.update(g711_map(call.laws[0], call.laws[1]))
        b_to_a.update(g711_map(call.laws[1], call.laws[0]))
    events_a, events_b = call.events.get("a"), call.events.get("b")
    if (
        events_a is not None
        and events_b is not None
        and events_a.payload_type != events_b.payload_type
    ):
        a_to_b[events_a.payload_type] = (events_b.payload_type, None)
        b_to_a[events_b.payload_type] = (events_a.payload_type, None)
    return a_to_b, b_to_a


def _sync_sent(
    session: RtpSession, endpoint: RtpEndpoint, out: StreamRewriter | None, now: float
) -> None:
    """Copy the endpoint's send counters into its RTCP session (sender info, §6.4.1)."""
    timestamp = out.last_sent[1] if out is not None else 0
    session.set_sent(endpoint.packets_out, endpoint.octets_out, timestamp, now)


def _leg_report(endpoint: RtpEndpoint) -> dict[str, object]:
    out: dict[str, object] = {
        "port": endpoint.port,
        "remote": _addr(endpoint.destination),
        "packets_in": endpoint.packets_in,
        "packets_out": endpoint.packets_out,
    }
    if endpoint.session is not None:
        stats = endpoint.session.stats()
        out.update(
            packets_lost=stats.packets_lost,
            fraction_lost=round(stats.fraction_lost, 4),
            jitter_ms=round(stats.jitter_ms, 2),
            rtt_ms=None if stats.rtt_ms is None else round(stats.rtt_ms, 2),
            remote_packets_lost=stats.remote_packets_lost,
            remote_fraction_lost=stats.remote_fraction_lost,
            remote_jitter_ms=(
                None if stats.remote_jitter_ms is None else round(stats.remote_jitter_ms, 2)
            ),
            duplicates=stats.duplicates,
            rtcp_sent=stats.rtcp_sent,
            rtcp_received=stats.rtcp_received,
            remote_cname=stats.remote_cname,
            # the worse direction: what the leg sends us, or what it reports of our stream
            mos=round(
                estimate_mos(
                    stats.rtt_ms,
                    max(stats.jitter_ms, stats.remote_jitter_ms or 0.0),
                    max(stats.fraction_lost, stats.remote_fraction_lost or 0.0),
                ),
                2,
            ),
        )
    return out


def _addr(addr: tuple[str, int] | None) -> str | None:
    if addr is None:
        return None
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
