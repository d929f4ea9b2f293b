"""A live two-party call that supervisors listen to, whisper into or barge in on.

While a call is monitored its audio no longer goes straight from one leg to the other: every
leg (caller, agent, each supervisor) is decoded through its own jitter buffer, the
:class:`media.mixer.Mixer` makes each leg's minus-one mix once per media clock tick, and the
mix is encoded in that leg's law and sent on the stream the switch already sends it (RFC 3550
§7.1: the switch acts as a mixer for the time being). Who hears whom follows the supervisor's
mode (:class:`media.mixer.SupervisorMode`): listen (hears both, heard by none), whisper (heard
by the agent only) or barge (heard by both).

Telephone-events are not mixed: while monitored, digits are still detected by the engine's
taps, but not relayed between the two parties.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from media.codecs.registry import PCMU, by_payload_type
from media.jitter import FrameKind, JitterBuffer
from media.mixer import Mixer, SupervisorMode
from media.rtp.packet import payload_bounds
from media.sender import FRAME, LegSender

__all__ = ["MonitoredCall"]

Samples = npt.NDArray[np.int16]


class _Party:
    """One leg in the mix: what it sent (a jitter buffer), where its mix goes (a sender)."""

    __slots__ = ("buffer", "payload_type", "sender")

    def __init__(self, sender: LegSender) -> None:
        self.sender = sender
        self.buffer = JitterBuffer()
        self.payload_type = sender.payload_type

    def put(self, packet: bytes | bytearray, now: float) -> None:
        pt = packet[1] & 0x7F
        if by_payload_type(pt) is None or len(packet) < 12:
            return  # telephone-event, comfort noise: not audio to mix
        start, end = payload_bounds(packet)
        if end - start != FRAME:
            return  # the mix runs on 20 ms G.711 frames
        if pt != self.payload_type:  # symmetric G.711: answer in the law the phone sends
            self.payload_type = pt
            self.sender.set_payload_type(pt)
        seq = (packet[2] << 8) | packet[3]
        ts = int.from_bytes(packet[4:8], "big")
        self.buffer.put(seq, ts, bytes(packet[start:end]), now, marker=bool(packet[1] & 0x80))

    def pull(self, now: float) -> Samples | None:
        frame = self.buffer.pull(now)
        if frame.payload is None or frame.kind is FrameKind.SILENCE:
            return None
        codec = by_payload_type(self.payload_type) or PCMU
        return codec.decode(frame.payload)


class MonitoredCall:
    """The mix of one call while at least one supervisor is on it.

    ``caller`` and ``agent`` are the two parties' senders (the switch's streams toward them);
    supervisors join with :meth:`add` and leave with :meth:`remove`. The engine feeds every
    leg's packets to :meth:`feed` and calls :meth:`tick` every 20 ms.
    """

    def __init__(self, caller: LegSender, agent: LegSender, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.parties: dict[str, _Party] = {"caller": _Party(caller), "agent": _Party(agent)}
        self.mixer: Mixer[str] = Mixer(max_participants=8)
        self.mixer.add("caller")
        self.mixer.add("agent")
        self.modes: dict[str, SupervisorMode] = {}

    def add(self, supervisor: str, sender: LegSender, mode: SupervisorMode) -> None:
        self.parties[supervisor] = _Party(sender)
        self.mixer.add(supervisor)
        self.set_mode(supervisor, mode)

    def set_mode(self, supervisor: str, mode: SupervisorMode) -> None:
        self.modes[supervisor] = mode
        self.mixer.set_mode(supervisor, mode, "agent")
        # supervisors do not hear each other's whispers unless barging
        for other in self.modes:
            if other != supervisor:
                self.mixer.set_hears(other, supervisor, mode is SupervisorMode.BARGE)
                self.mixer.set_hears(supervisor, other, self.modes[other] is SupervisorMode.BARGE)

    def remove(self, supervisor: str) -> bool:
        """Take a supervisor out; True when none is left (the call goes back to a relay)."""
        if supervisor in self.modes:
            del self.modes[supervisor]
            del self.parties[supervisor]
            self.mixer.remove(supervisor)
        return not self.modes

    def feed(self, party: str) -> Callable[[bytearray], None]:
        """A packet tap for one leg."""
        target = self.parties[party]
        clock = self._clock

        def tap(packet: bytearray) -> None:
            target.put(packet, clock())

        return tap

    def tick(self, tick: int, deadline: float) -> None:
        now = self._clock()
        frames = {name: party.pull(now) for name, party in self.parties.items()}
        for name, mixed in self.mixer.mix(frames).items():
            self.parties[name].sender.send(mixed)
