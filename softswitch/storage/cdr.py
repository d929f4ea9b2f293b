"""Call detail records: one immutable summary per call the switch handled.

A call detail record (CDR) says who called whom, when the call arrived, whether and when it
was answered, when and why it ended, the final status the caller got, where its recording is
and what the media looked like. It is written once, when the call is over, and is the raw
material of billing, troubleshooting ("why did this customer hang up?") and call-center KPIs
(answer rate, handle time, abandoned calls), which are computed from stored records later.

Times are wall-clock Unix seconds (not the monotonic clock of the sans-I/O cores), so records
from different runs and nodes can be compared and shown to people.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["CallRecord"]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The detail record of one call, from the INVITE to the end of the call.

    ``media`` is a JSON document (objects, arrays, strings, finite numbers, booleans, null)
    with per-leg RTP statistics, talk and silence times and the digits pressed; its top level
    is kept as a read-only mapping.

    Calls that the switch refused before routing them (a digest challenge, an unknown number)
    have no record: the record starts where the B2BUA takes the call.
    """

    call_id: str
    """The switch's id of the call, the one its logs and API name (not a leg's Call-ID)."""
    caller: str
    """User part (or number) of the caller's From URI."""
    caller_name: str | None
    """Display name of the caller's From, if any."""
    callee: str
    """The dialled number (user part of the Request-URI)."""
    started: float
    """Unix seconds when the INVITE arrived."""
    answered: float | None
    """Unix seconds when the call was answered (200 OK sent to the caller); None if never."""
    ended: float
    """Unix seconds when the call ended (BYE, CANCEL or final failure response)."""
    status: int
    """Final SIP status answered to the caller: 200 for an answered call, else 4xx-6xx."""
    cause: str
    """Why the call ended, in words: "caller hung up", "callee hung up", "cancelled",
    "no media from the callee", "486 Busy Here" ..."""
    recording: str | None = None
    """Path of the call's recording, if it was recorded."""
    media: Mapping[str, Any] = field(default_factory=dict)
    """Media statistics of the call, a JSON document (see the class docstring)."""

    def __post_init__(self) -> None:
        if not isinstance(self.media, MappingProxyType):
            object.__setattr__(self, "media", MappingProxyType(dict(self.media)))

    @property
    def duration(self) -> float:
        """Seconds from the INVITE to the end of the call (ringing included).

        Never negative, even if the wall clock was stepped back during the call.
        """
        return max(0.0, self.ended - self.started)

    @property
    def talk_time(self) -> float:
        """Seconds from the answer to the end of the call; 0 for a call never answered."""
        if self.answered is None:
            return 0.0
        return max(0.0, self.ended - self.answered)

    @property
    def answered_ok(self) -> bool:
        """Whether the call was answered: it has an answer time and a 2xx final status."""
        return self.answered is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-able dict: every field plus the derived times and flag."""
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "caller_name": self.caller_name,
            "callee": self.callee,
            "started": self.started,
            "answered": self.answered,
            "ended": self.ended,
            "status": self.status,
            "cause": self.cause,
            "recording": self.recording,
            "media": dict(self.media),
            "duration": self.duration,
            "talk_time": self.talk_time,
            "answered_ok": self.answered_ok,
        }
