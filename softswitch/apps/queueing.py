"""Callers waiting in queues, as the dialplan's ``queue`` action leaves them.

The board holds each waiting caller with what the dialplan learnt (priority, required skills,
the ``data_class`` tag, the IVR path, the screen-pop variables) in queue order: higher
priority first, then arrival. Offering calls to agents (strategies, agent states, wrap-up) is
the ACD's job (``softswitch.acd``); the board is where it will take them from. Until an agent
takes a caller, the caller hears music on hold; a caller who hangs up leaves the board and
is counted as abandoned with the time waited.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from softswitch.apps.session import QueueRequest

__all__ = ["QueueBoard", "QueueEntry"]


@dataclass(eq=False, slots=True)
class QueueEntry:
    request: QueueRequest
    joined: float  # Unix time
    seq: int
    #: set by whoever takes the caller out of the queue (an agent answered, a timeout...)
    outcome: asyncio.Future[str]

    def view(self, now: float, position: int) -> dict[str, object]:
        r = self.request
        return {
            "call_id": r.call_id,
            "position": position,
            "caller": r.caller,
            "caller_name": r.caller_name,
            "priority": r.priority,
            "skills": dict(r.skills),
            "data_class": r.data_class,
            "waiting": round(max(0.0, now - self.joined), 1),
            "joined": self.joined,
            "path": list(r.path),
            "screen_pop": dict(r.screen_pop),
        }


@dataclass(slots=True)
class _Counters:
    entered: int = 0
    abandoned: int = 0
    left: int = 0
    longest_abandoned_wait: float = 0.0


@dataclass(slots=True)
class QueueBoard:
    """Every queue's waiting callers."""

    clock: Callable[[], float]
    queues: dict[str, list[QueueEntry]] = field(default_factory=dict)
    counters: dict[str, _Counters] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _by_call: dict[str, QueueEntry] = field(default_factory=dict)

    def join(self, request: QueueRequest) -> QueueEntry:
        """Put a caller in its queue; its position is :meth:`position`."""
        self.leave(request.call_id, "moved")
        outcome = asyncio.get_running_loop().create_future()
        entry = QueueEntry(request, self.clock(), next(self._seq), outcome)
        waiting = self.queues.setdefault(request.queue, [])
        waiting.append(entry)
        waiting.sort(key=lambda e: (-e.request.priority, e.seq))
        self._by_call[request.call_id] = entry
        self.counters.setdefault(request.queue, _Counters()).entered += 1
        return entry

    def position(self, call_id: str) -> int | None:
        """1 for the caller served next; None if not waiting."""
        entry = self._by_call.get(call_id)
        if entry is None:
            return None
        return self.queues[entry.request.queue].index(entry) + 1

    def leave(self, call_id: str, how: str) -> QueueEntry | None:
        """The caller is out of its queue: ``how`` is "abandoned" (hung up) or what took it."""
        entry = self._by_call.pop(call_id, None)
        if entry is None:
            return None
        name = entry.request.queue
        self.queues[name].remove(entry)
        counters = self.counters[name]
        if how == "abandoned":
            counters.abandoned += 1
            waited = self.clock() - entry.joined
            counters.longest_abandoned_wait = max(counters.longest_abandoned_wait, waited)
        else:
            counters.left += 1
        if not entry.outcome.done():
            entry.outcome.set_result(how)
        return entry

    def snapshot(self, name: str | None = None) -> list[dict[str, object]]:
        """Every queue (or one) with its waiting callers in order, for the API."""
        now = self.clock()
        names = sorted(self.queues) if name is None else [name]
        out: list[dict[str, object]] = []
        for queue in names:
            waiting = self.queues.get(queue, [])
            counters = self.counters.get(queue, _Counters())
            out.append(
                {
                    "name": queue,
                    "waiting": len(waiting),
                    "longest_wait": round(max((now - e.joined for e in waiting), default=0.0), 1),
                    "entered": counters.entered,
                    "abandoned": counters.abandoned,
                    "callers": [e.view(now, i + 1) for i, e in enumerate(waiting)],
                }
            )
        return out
