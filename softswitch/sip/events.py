"""Values and events the sans-I/O SIP core hands to its transport adapter and transaction user.

Events are named in the past tense (ARCHITECTURE.md, principle 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from softswitch.sip.message import Request, Response

__all__ = [
    "AckReceived",
    "AckTimedOut",
    "Address",
    "InviteCancelled",
    "Outgoing",
    "RequestReceived",
    "ResponseReceived",
    "TransactionTimedOut",
    "TxnKey",
]

#: The key of a transaction: (branch, sent-by, method) for RFC 3261 branches (§17.2.3), or
#: a tuple starting with "2543" for the RFC 2543 fallback, or (branch, method) for a client
#: transaction (§17.1.3).
TxnKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Address:
    """A transport address: ``transport`` is ``udp``, ``tcp`` or ``tls``."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``udp:192.0.2.1:5060`` or ``tcp:[2001:db8::1]:5060`` (what ``str`` writes)."""
        transport, _, rest = text.partition(":")
        host, _, port = rest.rpartition(":")
        if transport not in ("udp", "tcp", "tls") or not host or not port.isdigit():
            raise ValueError(f"not a transport address: {text!r}")
        return cls(transport, host.strip("[]"), int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Bytes for the transport to send to ``destination``."""

    data: bytes
    destination: Address


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request reached the transaction user (a server transaction was created)."""

    request: Request
    source: Address
    key: TxnKey


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction (or a 2xx retransmission for a finished INVITE)."""

    response: Response
    key: TxnKey


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx (it has no transaction of its own, §17.1.1.3, §13.3.1.4)."""

    request: Request
    source: Address


@dataclass(frozen=True, slots=True)
class InviteCancelled:
    """A CANCEL matched a pending INVITE server transaction; the CANCEL got its 200 (§9.2).

    The transaction user should answer the INVITE with 487.
    """

    invite_key: TxnKey
    cancel: Request


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """A client transaction got no final response in time (Timer B or F, §17.1.1.2, §17.1.2.2),
    or the transport failed; the transaction user treats it as a 408."""

    key: TxnKey
    request: Request


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """A 2xx to an INVITE was retransmitted for 64*T1 without an ACK (§13.3.1.4).

    The transaction user should confirm and then end the dialog with BYE.
    """

    key: TxnKey
    response: Response
