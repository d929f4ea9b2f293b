"""Queue events: what the ACD did, one line each, in the spirit of Asterisk's queue_log.

Every event carries the wall-clock time (Unix seconds), the call and queue it is about (if
any), the agent (if any), its kind and a small flat mapping of details. The kinds and their
details are enough to compute a call center's figures from the log alone:

========================  ===========================================================
kind                      details
========================  ===========================================================
``entered``               ``position``, ``priority``, ``data_class``, ``caller``
``offered``               ``attempt`` (the agent is rung for the call)
``missed``                ``ring`` (seconds rung), ``why`` (timeout, busy, rejected...)
``connected``             ``wait`` (seconds in queue), ``ring``, ``position`` (original)
``abandoned``             ``position``, ``original_position``, ``wait``
``completed_caller``      ``wait``, ``talk``, ``position`` (original): the caller hung up
``completed_agent``       ``wait``, ``talk``, ``position``: the agent hung up
``transferred``           ``target``, ``wait``, ``talk``
``exit_timeout``          ``position``, ``original_position``, ``wait``, ``action``
``exit_empty``            ``position``, ``original_position``, ``wait``, ``action``
``exit_full``             ``max_length``, ``action`` (the queue was full on arrival)
``exit_key``              ``key``, ``position``, ``wait``
``callback_requested``    ``position``, ``wait``, ``number``
``login`` / ``logout``    (``logout``: ``session`` seconds since login)
``ready``                 —
``not_ready``             ``reason``
``wrap_up``               ``code`` (set when the wrap-up ends; empty if none was given)
========================  ===========================================================

Service level is the share of ``connected`` with ``wait`` at most the target among
``connected`` + ``abandoned`` (+ exits); speed of answer is the mean ``wait`` of
``connected``; handle time is ``talk`` + wrap-up; abandonment is ``abandoned`` over
``entered``; occupancy and attendance come from the agent events' times.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["Detail", "QueueEvent", "QueueEventKind"]

Detail = str | int | float


class QueueEventKind(enum.Enum):
    ENTERED = "entered"
    OFFERED = "offered"
    MISSED = "missed"
    CONNECTED = "connected"
    ABANDONED = "abandoned"
    COMPLETED_CALLER = "completed_caller"
    COMPLETED_AGENT = "completed_agent"
    TRANSFERRED = "transferred"
    EXIT_TIMEOUT = "exit_timeout"
    EXIT_EMPTY = "exit_empty"
    EXIT_FULL = "exit_full"
    EXIT_KEY = "exit_key"
    CALLBACK_REQUESTED = "callback_requested"
    LOGIN = "login"
    LOGOUT = "logout"
    READY = "ready"
    NOT_READY = "not_ready"
    WRAP_UP = "wrap_up"


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One line of the queue log."""

    time: float
    kind: QueueEventKind
    call_id: str | None = None
    queue: str | None = None
    agent: str | None = None
    details: Mapping[str, Detail] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.details, MappingProxyType):
            object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def to_dict(self) -> dict[str, object]:
        return {
            "time": self.time,
            "event": self.kind.value,
            "call_id": self.call_id,
            "queue": self.queue,
            "agent": self.agent,
            "details": dict(self.details),
        }
