"""Errors that say whose fault a problem is (ARCHITECTURE.md, principle 5)."""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error the SIP core raises."""


class LocalProtocolError(SipError):
    """Our own caller misused an API (a bug on this side, never a peer's doing)."""


class RemoteProtocolError(SipError):
    """A peer sent something illegal.

    ``status`` is the SIP status code a request deserves (RFC 3261 §21.4); for a bad response
    the receiver drops it silently (§18.1.2) and the status is only informative.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"RemoteProtocolError({self.message!r}, status={self.status})"
