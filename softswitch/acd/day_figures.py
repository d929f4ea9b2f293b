"""An agent's own figures for the day, worked out from the queue log alone.

The agent's desktop shows how the day went: calls taken, average handle time, time ready and
time on a break. :func:`day_figures` replays the agent's queue events
(:mod:`softswitch.acd.events`) over ``[since, now]`` and follows the agent's state as the
engine logged it:

- ``login`` leaves the agent not ready (reason ``login``, which the engine does not log as a
  ``not_ready`` event); ``ready`` and ``not_ready`` (with its ``reason``) change state;
  ``logout`` ends the session (nothing counts until the next ``login``).
- ``offered`` and ``missed`` change nothing: an agent being rung is still available, and
  the time counts as ready (an offer that ends unanswered leaves no event of the agent's).
- ``connected`` starts a call (talk); ``completed_caller``, ``completed_agent`` and
  ``transferred`` end the talk. Then either ``wrap_up`` ends the after-call work (the time
  since the end of the talk was wrap-up), or another event of the agent comes first: the
  call had no wrap-up and the agent was ready from the end of the talk (a call without
  wrap-up returns the agent to ready with no event of its own).

The figures:

- ``calls``: the calls connected to the agent within ``[since, now]``.
- ``average_handle``: the mean of talk + wrap-up, in seconds, over those calls whose handling
  is over by ``now`` (a call still in talk or wrap-up is not in it yet; a call connected
  before ``since`` is not in it at all). Talk is the ``talk`` detail of the event that ended
  it (the time since ``connected`` when the detail is missing).
- ``ready_time``: seconds ready.
- ``break_time``: seconds not ready for any reason except the switch's automatic ones
  (:data:`AUTOMATIC_REASONS`: ``login`` before the first ready, ``missed`` after missed
  offers, ``unreachable`` after the phone was lost): those are not breaks the agent took. A
  supervisor's ``supervisor`` reason does count: someone chose to take the agent off calls.

Times are clipped to ``[since, now]``: a state entered before ``since`` counts from
``since`` (give the events since the last login before ``since``, or the state is unknown
and counts nothing until the next event), and a state still open at ``now`` counts up to
``now``. Events after ``now`` are ignored.

Pure: no clock and no I/O; times are Unix seconds as in the queue log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from softswitch.acd.events import QueueEvent, QueueEventKind

__all__ = ["AUTOMATIC_REASONS", "DayFigures", "day_figures"]

K = QueueEventKind

#: not-ready reasons the switch sets by itself: time in them is not a break
AUTOMATIC_REASONS = frozenset({"login", "missed", "unreachable"})

_CALL_ENDS = frozenset({K.COMPLETED_CALLER, K.COMPLETED_AGENT, K.TRANSFERRED})

# the agent's state as followed through the log
_OUT = "out"  # logged out, or unknown (before the first event)
_READY = "ready"
_BREAK = "break"
_NOT_READY = "not_ready"  # for an automatic reason
_TALK = "talk"
_AFTER = "after"  # the talk ended: wrap-up, or ready if no wrap_up event follows


@dataclass(frozen=True, slots=True)
class DayFigures:
    """The agent's figures over a span of time (seconds)."""

    calls: int
    average_handle: float
    ready_time: float
    break_time: float

    def to_dict(self) -> dict[str, object]:
        """The figures as JSON values (seconds rounded to milliseconds, as the queue log)."""
        return {
            "calls": self.calls,
            "average_handle": round(self.average_handle, 3),
            "ready_time": round(self.ready_time, 3),
            "break_time": round(self.break_time, 3),
        }


class _Replay:
    """The agent's state, replayed event by event, with the time it spent in each."""

    def __init__(self, since: float, now: float) -> None:
        self.since = since
        self.now = now
        self.state = _OUT
        self.entered = since
        self.spent = {_READY: 0.0, _BREAK: 0.0}
        self.calls = 0
        self.handles: list[float] = []
        self.connected_at: float | None = None
        self.counted = False  # the call in progress was connected within the span
        self.talk = 0.0

    def enter(self, state: str, t: float) -> None:
        """Close the current state at ``t`` (its time inside the span counted) and enter
        ``state``."""
        if self.state in self.spent:
            start, end = max(self.entered, self.since), min(t, self.now)
            if end > start:
                self.spent[self.state] += end - start
        self.state, self.entered = state, t

    def finish_call(self, wrap_up: float) -> None:
        if self.counted:
            self.handles.append(self.talk + wrap_up)
        self.counted = False
        self.connected_at = None

    def apply(self, event: QueueEvent) -> None:
        t, kind = event.time, event.kind
        if self.state == _AFTER and kind is not K.WRAP_UP:
            # no wrap_up came: the call had none, and the agent has been ready since its end
            ended = self.entered
            self.finish_call(0.0)
            self.state, self.entered = _READY, ended
        if kind is K.WRAP_UP:
            if self.state == _AFTER:
                self.finish_call(t - self.entered)
            self.enter(_READY, t)  # the ready, not_ready or logout logged with it follows
        elif kind is K.CONNECTED:
            self.enter(_TALK, t)
            self.connected_at = t
            self.counted = self.since <= t
            if self.counted:
                self.calls += 1
        elif kind in _CALL_ENDS:
            talk = event.details.get("talk")
            if isinstance(talk, int | float):
                self.talk = float(talk)
            else:
                self.talk = t - self.connected_at if self.connected_at is not None else 0.0
            self.enter(_AFTER, t)
        elif kind is K.LOGIN:
            self.counted, self.connected_at = False, None  # a call of a lost session
            self.enter(_NOT_READY, t)  # reason "login"
        elif kind is K.LOGOUT:
            self.enter(_OUT, t)
        elif kind is K.READY:
            self.enter(_READY, t)
        elif kind is K.NOT_READY:
            reason = str(event.details.get("reason", ""))
            self.enter(_NOT_READY if reason in AUTOMATIC_REASONS else _BREAK, t)

    def close(self, wrapping_up: bool) -> DayFigures:
        if self.state == _AFTER and not wrapping_up:
            ended = self.entered
            self.finish_call(0.0)
            self.state, self.entered = _READY, ended
        self.enter(_OUT, self.now)
        average = sum(self.handles) / len(self.handles) if self.handles else 0.0
        return DayFigures(self.calls, average, self.spent[_READY], self.spent[_BREAK])


def day_figures(
    events: Iterable[QueueEvent],
    agent: str,
    *,
    since: float,
    now: float,
    wrapping_up: bool = True,
) -> DayFigures:
    """``agent``'s figures over ``[since, now]`` from the queue ``events`` (any agents', in
    log order; those of other agents are skipped).

    ``wrapping_up`` says what the log cannot tell at ``now`` when the agent's last call ended
    with no event since: whether the agent is still in wrap-up (the engine's state, e.g.
    ``acd.agent(id).state is AgentState.WRAP_UP``) or went straight back to ready (a queue
    without wrap-up). By default the open after-call time counts as wrap-up.
    """
    replay = _Replay(since, now)
    mine = sorted((e for e in events if e.agent == agent and e.time <= now), key=_time)
    for event in mine:
        replay.apply(event)
    return replay.close(wrapping_up)


def _time(event: QueueEvent) -> float:
    return event.time
