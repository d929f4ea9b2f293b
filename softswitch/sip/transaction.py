"""The four transaction state machines of RFC 3261 §17, with the RFC 6026 "Accepted" states.

Each machine owns its state and its armed timers (name -> absolute deadline). It never sends
or schedules by itself: it returns what to do through the ``TransactionSink`` the transaction
layer passes in, so the machines can be driven with a fake clock in tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from softswitch.sip.events import (
    Address,
    ResponseReceived,
    TransactionTimedOut,
    TxnKey,
)
from softswitch.sip.headers import Headers
from softswitch.sip.message import Request, Response

__all__ = [
    "ClientInvite",
    "ClientNonInvite",
    "ServerInvite",
    "ServerNonInvite",
    "State",
    "Timers",
    "TransactionSink",
]


@dataclass(frozen=True, slots=True)
class Timers:
    """Timer values of RFC 3261 §17.1.1.1 and Table 4 (seconds)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"  # RFC 6026 §7.1 / §7.2
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class TransactionSink(Protocol):
    """What a transaction may ask of its layer."""

    def send(self, data: bytes, destination: Address) -> None: ...

    def emit(self, event: object) -> None: ...

    def arm(self, txn: Transaction, name: str, deadline: float) -> None: ...


class Transaction:
    """State shared by the four machines."""

    __slots__ = ("destination", "key", "request", "source_host", "state", "timers")

    def __init__(
        self, key: TxnKey, request: Request, destination: Address, source_host: str = ""
    ) -> None:
        self.key = key
        self.request = request
        self.destination = destination
        self.source_host = source_host  # server transactions: the host the request came from
        self.state = State.TRYING
        self.timers: dict[str, float] = {}

    @property
    def reliable(self) -> bool:
        return self.destination.reliable

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _arm(self, sink: TransactionSink, name: str, deadline: float) -> None:
        self.timers[name] = deadline
        sink.arm(self, name, deadline)

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self.timers.clear()

    def fire(self, name: str, now: float, sink: TransactionSink, t: Timers) -> None:
        raise NotImplementedError


class ClientInvite(Transaction):
    """INVITE client transaction, RFC 3261 §17.1.1 (Figure 5) with RFC 6026 §7.2."""

    __slots__ = ("_ack", "_data", "_interval")

    def __init__(self, key: TxnKey, request: Request, destination: Address) -> None:
        super().__init__(key, request, destination)
        self.state = State.CALLING
        self._data = b""
        self._interval = 0.0
        self._ack: bytes | None = None

    def start(self, data: bytes, now: float, sink: TransactionSink, t: Timers) -> None:
        self._data = data
        sink.send(data, self.destination)
        if not self.reliable:
            self._interval = t.t1
            self._arm(sink, "A", now + t.t1)
        self._arm(sink, "B", now + 64 * t.t1)

    def receive(self, resp: Response, now: float, sink: TransactionSink, t: Timers) -> None:
        if self.state in (State.CALLING, State.PROCEEDING):
            self.timers.pop("A", None)
            if resp.status < 200:
                self.state = State.PROCEEDING
                sink.emit(ResponseReceived(resp, self.key))
            elif resp.status < 300:
                self.state = State.ACCEPTED
                self.timers.clear()
                self._arm(sink, "M", now + 64 * t.t1)
                sink.emit(ResponseReceived(resp, self.key))
            else:
                self.state = State.COMPLETED
                self.timers.clear()
                self._ack = bytes(_non2xx_ack(self.request, resp))
                sink.send(self._ack, self.destination)
                self._arm(sink, "D", now + (0.0 if self.reliable else 32.0))
                sink.emit(ResponseReceived(resp, self.key))
        elif self.state is State.ACCEPTED:
            if 200 <= resp.status < 300:  # retransmitted 2xx: the TU acknowledges again
                sink.emit(ResponseReceived(resp, self.key))
        elif self.state is State.COMPLETED and resp.status >= 300 and self._ack is not None:
            sink.send(self._ack, self.destination)

    def fire(self, name: str, now: float, sink: TransactionSink, t: Timers) -> None:
        if name == "A" and self.state is State.CALLING:
            sink.send(self._data, self.destination)
            self._interval *= 2
            self._arm(sink, "A", now + self._interval)
        elif name == "B" and self.state is State.CALLING:  # §17.1.1.2: Calling state only
            self._terminate()
            sink.emit(TransactionTimedOut(self.key, self.request))
        elif name in ("D", "M"):
            self._terminate()


class ClientNonInvite(Transaction):
    """Non-INVITE client transaction, RFC 3261 §17.1.2 (Figure 6)."""

    __slots__ = ("_data", "_interval")

    def __init__(self, key: TxnKey, request: Request, destination: Address) -> None:
        super().__init__(key, request, destination)
        self._data = b""
        self._interval = 0.0

    def start(self, data: bytes, now: float, sink: TransactionSink, t: Timers) -> None:
        self._data = data
        sink.send(data, self.destination)
        if not self.reliable:
            self._interval = t.t1
            self._arm(sink, "E", now + t.t1)
        self._arm(sink, "F", now + 64 * t.t1)

    def receive(self, resp: Response, now: float, sink: TransactionSink, t: Timers) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # Completed: retransmitted finals are absorbed
        if resp.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self.timers.clear()
            self._arm(sink, "K", now + (0.0 if self.reliable else t.t4))
        sink.emit(ResponseReceived(resp, self.key))

    def fire(self, name: str, now: float, sink: TransactionSink, t: Timers) -> None:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            sink.send(self._data, self.destination)
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, t.t2)
            else:
                self._interval = t.t2
            self._arm(sink, "E", now + self._interval)
        elif name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            self._terminate()
            sink.emit(TransactionTimedOut(self.key, self.request))
        elif name == "K":
            self._terminate()


class ServerInvite(Transaction):
    """INVITE server transaction, RFC 3261 §17.2.1 (Figure 7) with RFC 6026 §7.1."""

    __slots__ = ("_interval", "last_response", "to_tag")

    def __init__(self, key: TxnKey, request: Request, destination: Address) -> None:
        super().__init__(key, request, destination)
        self.state = State.PROCEEDING
        self.last_response: bytes | None = None
        self._interval = 0.0
        self.to_tag: str | None = None

    def respond(
        self, resp: Response, data: bytes, now: float, sink: TransactionSink, t: Timers
    ) -> None:
        if self.state is not State.PROCEEDING:
            return
        self.last_response = data
        sink.send(data, self.destination)
        if resp.status < 200:
            return
        self.to_tag = resp.to.tag
        if resp.status < 300:
            self.state = State.ACCEPTED
            self._arm(sink, "L", now + 64 * t.t1)
        else:
            self.state = State.COMPLETED
            if not self.reliable:
                self._interval = t.t1
                self._arm(sink, "G", now + t.t1)
            self._arm(sink, "H", now + 64 * t.t1)

    def retransmission(self, sink: TransactionSink) -> None:
        """The INVITE came again: resend the last provisional or final (§17.2.1)."""
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response:
            sink.send(self.last_response, self.destination)

    def ack(self, now: float, sink: TransactionSink, t: Timers) -> bool:
        """An ACK matched this transaction; True when it was the ACK for a non-2xx final."""
        if self.state is State.COMPLETED:
            self.state = State.CONFIRMED
            self.timers.clear()
            self._arm(sink, "I", now + (0.0 if self.reliable else t.t4))
            return True
        return self.state is State.CONFIRMED

    def fire(self, name: str, now: float, sink: TransactionSink, t: Timers) -> None:
        if name == "G" and self.state is State.COMPLETED and self.last_response:
            sink.send(self.last_response, self.destination)
            self._interval = min(2 * self._interval, t.t2)
            self._arm(sink, "G", now + self._interval)
        elif name == "H" and self.state is State.COMPLETED:
            self._terminate()  # no ACK: the peer is gone (the TU needs no event, §17.2.1)
        elif name in ("I", "L"):
            self._terminate()


class ServerNonInvite(Transaction):
    """Non-INVITE server transaction, RFC 3261 §17.2.2 (Figure 8)."""

    __slots__ = ("last_response",)

    def __init__(self, key: TxnKey, request: Request, destination: Address) -> None:
        super().__init__(key, request, destination)
        self.last_response: bytes | None = None

    def respond(
        self, resp: Response, data: bytes, now: float, sink: TransactionSink, t: Timers
    ) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return
        self.last_response = data
        sink.send(data, self.destination)
        if resp.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self._arm(sink, "J", now + (0.0 if self.reliable else 64 * t.t1))

    def retransmission(self, sink: TransactionSink) -> None:
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response:
            sink.send(self.last_response, self.destination)

    def fire(self, name: str, now: float, sink: TransactionSink, t: Timers) -> None:
        if name == "J":
            self._terminate()


def _non2xx_ack(request: Request, resp: Response) -> Request:
    """The ACK a client transaction sends for a 3xx to 6xx (RFC 3261 §17.1.1.3)."""
    h = Headers()
    h.add("Via", request.headers.get_all("Via")[0])
    for name in ("Route",):
        for row in request.headers.rows(name):
            h.add(name, row)
    h.add("Max-Forwards", "70")
    h.add("From", request.headers.get("From") or "")
    h.add("To", resp.headers.get("To") or "")
    h.add("Call-ID", request.headers.get("Call-ID") or "")
    h.add("CSeq", f"{request.cseq.seq} ACK")
    return Request("ACK", request.uri, h)
