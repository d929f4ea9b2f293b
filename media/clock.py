"""One media clock for the whole process: a 20 ms tick on absolute deadlines.

Everything that produces or consumes audio at the frame rate (players, mixers, recorders, jitter
buffer pulls) subscribes to this clock instead of sleeping per call (ARCHITECTURE.md principle
2). Deadlines are absolute (``start + n * period``), so a late tick does not push the following
ones back: the clock catches up, reporting how many periods were missed, and skips ahead only
when it has fallen behind by more than ``max_catch_up`` periods.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

__all__ = ["MediaClock", "TickSchedule"]

log = logging.getLogger("media.clock")

Subscriber = Callable[[int, float], None]  # (tick number, deadline)


class TickSchedule:
    """The pure part: which tick is due at ``now`` and when the next one is."""

    __slots__ = ("max_catch_up", "missed", "next_tick", "period", "start")

    def __init__(self, start: float, period: float = 0.02, max_catch_up: int = 5) -> None:
        self.start = start
        self.period = period
        self.max_catch_up = max_catch_up
        self.next_tick = 0
        self.missed = 0  # ticks skipped because the process fell too far behind

    def deadline(self, tick: int) -> float:
        return self.start + tick * self.period

    def due(self, now: float) -> list[int]:
        """The ticks to run now, in order (usually one; more after a stall, capped)."""
        # Decide with deadline() itself, so that a timer armed at deadline(n) always finds tick n
        # due when it fires (no float disagreement that could make the caller spin).
        if self.deadline(self.next_tick) > now:
            return []
        behind = max(1, math.floor((now - self.start) / self.period) - self.next_tick + 1)
        while self.deadline(self.next_tick + behind) <= now:
            behind += 1
        while behind > 1 and self.deadline(self.next_tick + behind - 1) > now:
            behind -= 1
        if behind > self.max_catch_up:
            skipped = behind - self.max_catch_up
            self.missed += skipped
            self.next_tick += skipped
            behind = self.max_catch_up
        ticks = list(range(self.next_tick, self.next_tick + behind))
        self.next_tick += behind
        return ticks


class MediaClock:
    """The asyncio shell: one ``call_at`` at a time, re-armed from the schedule."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float = 0.02) -> None:
        self.loop = loop
        self.schedule = TickSchedule(loop.time(), period)
        self._subscribers: dict[int, Subscriber] = {}
        self._next_id = 0
        self._handle: asyncio.TimerHandle | None = None

    def subscribe(self, callback: Subscriber) -> int:
        self._next_id += 1
        self._subscribers[self._next_id] = callback
        if self._handle is None:
            self._arm()
        return self._next_id

    def unsubscribe(self, token: int) -> None:
        self._subscribers.pop(token, None)
        if not self._subscribers and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def __len__(self) -> int:
        return len(self._subscribers)

    def _arm(self) -> None:
        schedule = self.schedule
        now = self.loop.time()
        if schedule.deadline(schedule.next_tick) < now - schedule.period * schedule.max_catch_up:
            schedule.due(now)  # idle for a while: resume at the current tick
        self._handle = self.loop.call_at(schedule.deadline(schedule.next_tick), self._tick)

    def _tick(self) -> None:
        self._handle = None
        for tick in self.schedule.due(self.loop.time()):
            deadline = self.schedule.deadline(tick)
            for callback in list(self._subscribers.values()):
                try:
                    callback(tick, deadline)
                except Exception:  # one broken subscriber must not stop everyone's audio
                    log.exception("media clock subscriber failed")
        if self._subscribers:
            self._arm()
