"""The agent state machine of the ACD: one owner, every transition in one table.

States: ``logged_out`` → ``ready`` → ``reserved`` (a call is being offered) → ``ringing`` →
``on_call`` → ``wrap_up`` → ``ready``; ``not_ready`` (with a reason) from any idle state.

Why agents cannot get stuck (the classic failure of ACDs, where an agent stays "on call" or
"reserved" after the call is gone):

- An agent holds at most one call, named in its state (``reserved``, ``ringing``, ``on_call``
  carry the call id); an event about another call is refused, never applied.
- Every state that holds a call leaves it on one of a closed set of events, each of which the
  switch is certain to produce once per offered call: the call answered elsewhere or the
  caller gone (``released``), the agent's phone failing or the ring timeout (``missed``), the
  call's end (``ended``). ``wrap_up`` ends by its deadline (:meth:`Agent.tick`) or early by the
  agent.
- Requests that cannot be honoured now (not ready or log out during a call) are kept as
  *pending* and applied when the agent is next idle, instead of being lost or breaking the
  call.
- ``unreachable`` (registration expired, the phone stopped answering) makes an idle agent not
  ready; a call in progress survives it (the agent re-registers during a call).

The machine is pure (no clock, no I/O): times are passed in, and each transition returns the
events it produced for the queue log.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "TRANSITIONS",
    "Agent",
    "AgentError",
    "AgentEvent",
    "AgentState",
    "Change",
]


class AgentState(enum.Enum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"  # chosen for a call, the offer not yet ringing
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


IDLE = frozenset({AgentState.READY, AgentState.NOT_READY})
WITH_CALL = frozenset({AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL})


class AgentEvent(enum.Enum):
    LOGIN = "login"
    LOGOUT = "logout"
    READY = "ready"
    NOT_READY = "not_ready"
    OFFER = "offer"  # the ACD picks the agent for a call
    RING = "ring"  # the agent's phone rings
    ANSWER = "answer"
    MISSED = "missed"  # rejected, not answered in time, or the phone failed
    RELEASED = "released"  # the offer was withdrawn (caller hung up, answered elsewhere)
    ENDED = "ended"  # the call ended after the agent answered
    END_WRAP_UP = "end_wrap_up"
    UNREACHABLE = "unreachable"
    REACHABLE = "reachable"  # the phone registered again


class AgentError(ValueError):
    """An event that does not apply to the agent's state (refused, nothing changed)."""


@dataclass(frozen=True, slots=True)
class Change:
    """What a transition did, for the queue log: the event, from and to, and details."""

    event: AgentEvent
    before: AgentState
    after: AgentState
    call: str | None = None
    reason: str | None = None
    code: str | None = None


@dataclass(slots=True)
class Agent:
    """One agent's state; change it only through :meth:`apply` and :meth:`tick`."""

    id: str
    state: AgentState = AgentState.LOGGED_OUT
    call: str | None = None
    reason: str | None = None  # of not_ready
    since: float = 0.0
    wrap_up_until: float | None = None
    #: a request made during a call, applied when the agent is next idle: ("not_ready",
    #: reason) or ("logout", None)
    pending: tuple[AgentEvent, str | None] | None = None
    misses: int = 0  # offers missed in a row
    max_misses: int = 3  # that many in a row: not ready, reason "missed"
    wrap_up_seconds: float = 0.0
    last_code: str | None = None  # the wrap-up (disposition) code of the last call
    #: the latest transitions (a bounded history, for tests and the supervisor's view)
    changes: deque[Change] = field(default_factory=lambda: deque(maxlen=64), repr=False)

    @property
    def available(self) -> bool:
        """Can be offered a call now."""
        return self.state is AgentState.READY

    def apply(
        self,
        event: AgentEvent,
        now: float,
        *,
        call: str | None = None,
        reason: str | None = None,
        code: str | None = None,
        wrap_up: float | None = None,
    ) -> list[Change]:
        """Apply ``event``; raises :class:`AgentError` (nothing changed) if it does not apply.

        ``call`` names the call of call events; ``reason`` the not-ready reason; ``code`` the
        wrap-up code; ``wrap_up`` the wrap-up time of the call that ``ended`` (else the
        agent's own)."""
        handler = TRANSITIONS.get((self.state, event))
        if handler is None:
            raise AgentError(
                f"agent {self.id}: {event.value} is not possible when {self.state.value}"
            )
        if event in _CALL_EVENTS and call != self.call and self.state in WITH_CALL:
            held = self.call
            raise AgentError(f"agent {self.id}: {event.value} for call {call}, holding {held}")
        if event is AgentEvent.OFFER and call is None:
            raise AgentError(f"agent {self.id}: an offer needs a call")
        out: list[Change] = []
        handler(self, _Args(event, now, call, reason, code, wrap_up), out)
        self.changes.extend(out)
        return out

    def tick(self, now: float) -> list[Change]:
        """Let time pass: a wrap-up whose time is over ends."""
        until = self.wrap_up_until
        if self.state is AgentState.WRAP_UP and until is not None and now >= until:
            out: list[Change] = []
            _leave_wrap_up(self, _Args(AgentEvent.END_WRAP_UP, now), out)
            self.changes.extend(out)
            return out
        return []

    def next_deadline(self) -> float | None:
        return self.wrap_up_until if self.state is AgentState.WRAP_UP else None

    # -- internal ------------------------------------------------------------------------------

    def _move(
        self,
        new: AgentState,
        args: _Args,
        out: list[Change],
        *,
        reason: str | None = None,
        code: str | None = None,
    ) -> None:
        before = self.state
        call = self.call
        self.state = new
        self.since = args.now
        self.reason = reason if new is AgentState.NOT_READY else None
        if new not in WITH_CALL:
            self.call = None
        if new is not AgentState.WRAP_UP:
            self.wrap_up_until = None
        out.append(Change(args.event, before, new, call or args.call, reason, code))

    def _idle(self, args: _Args, out: list[Change], default: AgentState) -> None:
        """Back to idle: a pending request wins over ``default``."""
        pending, self.pending = self.pending, None
        if pending is not None and pending[0] is AgentEvent.LOGOUT:
            self._move(AgentState.LOGGED_OUT, args, out)
        elif pending is not None:
            self._move(AgentState.NOT_READY, args, out, reason=pending[1])
        else:
            self._move(
                default, args, out, reason=self.reason if default is AgentState.NOT_READY else None
            )


@dataclass(frozen=True, slots=True)
class _Args:
    event: AgentEvent
    now: float
    call: str | None = None
    reason: str | None = None
    code: str | None = None
    wrap_up: float | None = None


_CALL_EVENTS = frozenset(
    {
        AgentEvent.RING,
        AgentEvent.ANSWER,
        AgentEvent.MISSED,
        AgentEvent.RELEASED,
        AgentEvent.ENDED,
    }
)

Handler = Callable[[Agent, _Args, list[Change]], None]


def _login(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent.misses = 0
    agent._move(AgentState.NOT_READY, args, out, reason=args.reason or "login")


def _logout(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent.pending = None
    agent._move(AgentState.LOGGED_OUT, args, out)


def _logout_later(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent.pending = (AgentEvent.LOGOUT, None)


def _ready(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent.misses = 0
    agent.pending = None
    agent._move(AgentState.READY, args, out)


def _not_ready(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent.pending = None
    agent._move(AgentState.NOT_READY, args, out, reason=args.reason or "not ready")


def _not_ready_later(agent: Agent, args: _Args, out: list[Change]) -> None:
    if agent.pending is None or agent.pending[0] is not AgentEvent.LOGOUT:
        agent.pending = (AgentEvent.NOT_READY, args.reason or "not ready")


def _offer(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent.call = args.call
    agent._move(AgentState.RESERVED, args, out)


def _ring(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent._move(AgentState.RINGING, args, out)


def _answer(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent.misses = 0
    agent._move(AgentState.ON_CALL, args, out)


def _missed(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent.misses += 1
    if agent.misses >= agent.max_misses and agent.pending is None:
        agent.pending = (AgentEvent.NOT_READY, "missed")
    agent._idle(args, out, AgentState.READY)


def _released(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent._idle(args, out, AgentState.READY)


def _ended(agent: Agent, args: _Args, out: list[Change]) -> None:
    seconds = args.wrap_up if args.wrap_up is not None else agent.wrap_up_seconds
    if seconds > 0:
        agent._move(AgentState.WRAP_UP, args, out)
        agent.wrap_up_until = args.now + seconds
    else:
        agent._idle(args, out, AgentState.READY)


def _leave_wrap_up(agent: Agent, args: _Args, out: list[Change], *, expired: bool = False) -> None:
    if args.code is not None:
        agent.last_code = args.code
    agent._idle(args, out, AgentState.READY)
    if out:
        last = out[-1]
        out[-1] = Change(last.event, last.before, last.after, last.call, last.reason, args.code)


def _end_wrap_up(agent: Agent, args: _Args, out: list[Change]) -> None:
    _leave_wrap_up(agent, args, out)


def _unreachable_idle(agent: Agent, args: _Args, out: list[Change]) -> None:
    agent._move(AgentState.NOT_READY, args, out, reason="unreachable")


def _unreachable_offered(agent: Agent, args: _Args, out: list[Change]) -> None:
    if agent.pending is None or agent.pending[0] is not AgentEvent.LOGOUT:
        agent.pending = (AgentEvent.NOT_READY, "unreachable")  # a pending logout wins
    agent.misses += 1
    agent._idle(args, out, AgentState.READY)


def _unreachable_later(agent: Agent, args: _Args, out: list[Change]) -> None:
    """On a call or in wrap-up: the call survives a lost registration; not ready after it."""
    if agent.pending is None:
        agent.pending = (AgentEvent.NOT_READY, "unreachable")


def _reachable_again(agent: Agent, args: _Args, out: list[Change]) -> None:
    """The phone registered again during the call or the wrap-up: the not ready that its
    loss left pending is dropped (a request of the agent's own stays)."""
    if agent.pending == (AgentEvent.NOT_READY, "unreachable"):
        agent.pending = None


S, E = AgentState, AgentEvent

#: (state, event) -> what happens; a pair not listed is refused (AgentError)
TRANSITIONS: dict[tuple[AgentState, AgentEvent], Handler] = {
    (S.LOGGED_OUT, E.LOGIN): _login,
    (S.READY, E.LOGOUT): _logout,
    (S.NOT_READY, E.LOGOUT): _logout,
    (S.WRAP_UP, E.LOGOUT): _logout,
    (S.RESERVED, E.LOGOUT): _logout_later,
    (S.RINGING, E.LOGOUT): _logout_later,
    (S.ON_CALL, E.LOGOUT): _logout_later,
    (S.READY, E.READY): _ready,
    (S.NOT_READY, E.READY): _ready,
    (S.WRAP_UP, E.READY): _end_wrap_up,
    (S.READY, E.NOT_READY): _not_ready,
    (S.NOT_READY, E.NOT_READY): _not_ready,
    (S.WRAP_UP, E.NOT_READY): _not_ready,
    (S.RESERVED, E.NOT_READY): _not_ready_later,
    (S.RINGING, E.NOT_READY): _not_ready_later,
    (S.ON_CALL, E.NOT_READY): _not_ready_later,
    (S.READY, E.OFFER): _offer,
    (S.RESERVED, E.RING): _ring,
    (S.RESERVED, E.ANSWER): _answer,
    (S.RINGING, E.ANSWER): _answer,
    (S.RESERVED, E.MISSED): _missed,
    (S.RINGING, E.MISSED): _missed,
    (S.RESERVED, E.RELEASED): _released,
    (S.RINGING, E.RELEASED): _released,
    (S.ON_CALL, E.ENDED): _ended,
    (S.WRAP_UP, E.END_WRAP_UP): _end_wrap_up,
    (S.READY, E.UNREACHABLE): _unreachable_idle,
    (S.NOT_READY, E.UNREACHABLE): _unreachable_idle,
    (S.RESERVED, E.UNREACHABLE): _unreachable_offered,
    (S.RINGING, E.UNREACHABLE): _unreachable_offered,
    (S.ON_CALL, E.UNREACHABLE): _unreachable_later,
    (S.WRAP_UP, E.UNREACHABLE): _unreachable_later,
    (S.ON_CALL, E.REACHABLE): _reachable_again,
    (S.WRAP_UP, E.REACHABLE): _reachable_again,
}
