"""The queue engine: callers waiting in queues, agents, and which agent is offered which call.

Sans-I/O (ARCHITECTURE.md, principle 1): every input is a method taking ``now`` (wall-clock
Unix seconds, the queue log's clock) and returning the commands the switch must carry out
(:class:`Offer` an agent a call, :class:`Withdraw` an offer, :class:`Exit` a caller to an exit
action, :class:`Moved` to another queue); :meth:`Acd.next_deadline` and
:meth:`Acd.handle_timer` drive wrap-up ends, maximum waits, skill relaxation, retries and the
offers' safety timeouts. Queue events (:mod:`softswitch.acd.events`) are collected for the
log and taken with :meth:`Acd.drain_events`.

Why nothing gets stuck:

- Each agent's state is its :class:`~softswitch.acd.agent.Agent` machine alone; the engine
  only sends it events, and keeps its per-queue *ready* sets in step after every one.
- A caller is in at most one place: waiting in one queue (``_entries``) or connected to one
  agent (``_connected``); every way out (answered, hung up, exit, timeout) removes it from
  there in the same step, and every agent it was offered to is released in that step (with a
  :class:`Withdraw` for the ring, before that agent can be offered anything else).
- Reports from the switch about an offer that is no longer current (a late 408 after the
  engine's own ring timeout, an answer after the caller hung up) change nothing.
- Every offer has a deadline in the engine itself, so a lost report cannot hold an agent.

The rule that personal data reach only the allowed locations is applied in one place,
:meth:`Acd.may_take`, both when candidates are chosen and again when an offer is made, for
every strategy and every path into a queue (joins, overflow moves, retries, reloads).

Costs: an event touches the queues of the agents and the call it concerns; the choice of an
agent walks only the *ready* members of one queue, never queues times members.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from softswitch.acd.agent import Agent, AgentError, AgentEvent, AgentState, Change
from softswitch.acd.events import Detail, QueueEvent, QueueEventKind
from softswitch.acd.model import AcdConfig, AgentConfig, ExitAction, QueueConfig
from softswitch.acd.strategies import Candidate, pick

__all__ = [
    "SWITCH_REASONS",
    "Acd",
    "AcdError",
    "Command",
    "Exit",
    "Moved",
    "Offer",
    "Withdraw",
]

K = QueueEventKind

#: not-ready reasons the switch sets itself (agents pick from the configured list)
SWITCH_REASONS = frozenset({"missed", "unreachable", "supervisor", "login"})
RING_GRACE = 5.0  # seconds past the ring timeout before the engine gives up on a report
CALLBACK_TTL = 4 * 3600.0  # a callback not served within this is dropped (abandoned)
MAX_HOPS = 8  # overflow moves per call (a loop A -> B -> A ends)
WINDOW = 3600.0  # live figures: the last hour
RATE_WINDOW = 600.0  # the leave rate behind the wait estimate: the last ten minutes


class AcdError(ValueError):
    """A request the ACD refuses (unknown agent, a state change that does not apply, an
    unknown reason or code); nothing changed."""


@dataclass(frozen=True, slots=True)
class Offer:
    """Ring ``agents`` (several for ring-all) for ``call_id``; ``callback`` is the number to
    call back when the call is a queued callback (the caller is not on the line)."""

    call_id: str
    queue: str
    agents: tuple[str, ...]
    ring_timeout: float
    callback: str | None = None


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Stop ringing ``agent`` for ``call_id`` (the engine's own timeout, the caller left the
    queue, or another agent rung for the call answered it)."""

    call_id: str
    agent: str


@dataclass(frozen=True, slots=True)
class Exit:
    """The caller leaves the queue to ``action`` (``why``: timeout, empty, full, key)."""

    call_id: str
    queue: str
    why: str
    action: ExitAction


@dataclass(frozen=True, slots=True)
class Moved:
    """The caller now waits in ``queue`` (an overflow to another queue)."""

    call_id: str
    queue: str


Command = Offer | Withdraw | Exit | Moved


@dataclass(eq=False, slots=True)
class Entry:
    """A caller waiting in a queue."""

    call_id: str
    queue: str
    priority: int
    skills: Mapping[str, int]
    """Required skills: the call's and the queue's, the higher level of each."""
    call_skills: Mapping[str, int]
    data_class: str
    caller: str
    joined: float
    arrived: float
    seq: int
    position: int
    """Position on joining this queue (queue_log's "original position")."""
    offered: dict[str, float] = field(default_factory=dict)
    """agent -> when the offer started"""
    missed_by: dict[str, float] = field(default_factory=dict)
    """agent -> until when the call is not offered to them again"""
    relax: int = 0
    attempts: int = 0
    callback: str | None = None
    hops: int = 0
    rank: int = -1
    """Place among equal priorities: the call's first arrival in any queue (an overflow
    keeps it), set from ``seq`` when the call first arrives."""

    @property
    def key(self) -> tuple[int, int]:
        return (-self.priority, self.rank if self.rank >= 0 else self.seq)


@dataclass(slots=True)
class _Connected:
    agent: str
    queue: str
    wait: float
    answered: float
    position: int


@dataclass(slots=True)
class _Queue:
    config: QueueConfig
    waiting: list[Entry] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)  # agent -> penalty
    order: dict[str, int] = field(default_factory=dict)  # agent -> member order
    ready: set[str] = field(default_factory=set)
    #: the ready members by penalty: a choice looks at the lowest tier that has a fit first
    tiers: dict[int, set[str]] = field(default_factory=dict)
    last: int | None = None  # member order of the last agent offered (round-robin)
    leaves: deque[float] = field(default_factory=deque)  # answered times, last 10 min
    outcomes: deque[tuple[float, float, bool]] = field(default_factory=deque)  # last hour
    entered: int = 0
    answered: int = 0
    abandoned: int = 0
    exited: int = 0

    def set_ready(self, agent_id: str, ready: bool) -> None:
        """Keep ``ready`` and ``tiers`` in step with a member's state."""
        penalty = self.members.get(agent_id)
        if ready and penalty is not None:
            self.ready.add(agent_id)
            self.tiers.setdefault(penalty, set()).add(agent_id)
        elif agent_id in self.ready:
            self.ready.discard(agent_id)
            for tier in self.tiers.values():
                tier.discard(agent_id)

    def place(self, entry: Entry) -> int:
        """Insert by (priority, arrival); returns the 1-based position."""
        lo, hi = 0, len(self.waiting)
        key = entry.key
        while lo < hi:
            mid = (lo + hi) // 2
            if self.waiting[mid].key < key:
                lo = mid + 1
            else:
                hi = mid
        self.waiting.insert(lo, entry)
        return lo + 1


@dataclass(slots=True)
class _Run:
    """An agent: configuration, state machine and the figures strategies use."""

    config: AgentConfig
    machine: Agent
    idle_since: float = 0.0
    login_at: float | None = None
    calls: dict[str, int] = field(default_factory=dict)  # per queue, since login
    answered: int = 0
    last_call: str | None = None  # the call of the current or last wrap-up
    last_queue: str | None = None  # and its queue
    retired: bool = False  # removed from the configuration; gone once logged out


class Acd:
    """Queues, agents and the offers between them (see the module docstring)."""

    def __init__(
        self, config: AcdConfig, *, now: float, draw: Callable[[int], int] | None = None
    ) -> None:
        self.config = config
        self._draw = draw if draw is not None else (lambda n: 0)
        self._queues: dict[str, _Queue] = {}
        self._agents: dict[str, _Run] = {}
        self._by_user: dict[str, list[str]] = {}
        self._entries: dict[str, Entry] = {}
        self._connected: dict[str, _Connected] = {}
        self._events: list[QueueEvent] = []
        self._timers: list[tuple[float, int, str, str, str]] = []
        self._tseq = itertools.count()
        self._seq = itertools.count()
        self.reload(config, now)

    # -- queries ---------------------------------------------------------------------------

    def agent(self, agent_id: str) -> Agent:
        run = self._agents.get(agent_id)
        if run is None:
            raise AcdError(f"no agent {agent_id!r}")
        return run.machine

    def agent_config(self, agent_id: str) -> AgentConfig:
        run = self._agents.get(agent_id)
        if run is None:
            raise AcdError(f"no agent {agent_id!r}")
        return run.config

    def agents_of_user(self, user: str) -> list[str]:
        """The agents who answer on SIP user ``user``."""
        return list(self._by_user.get(user, ()))

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def entry(self, call_id: str) -> Entry | None:
        return self._entries.get(call_id)

    def connected_agent(self, call_id: str) -> str | None:
        conn = self._connected.get(call_id)
        return None if conn is None else conn.agent

    def connection(self, call_id: str) -> tuple[str, str, float] | None:
        """A connected call's queue, agent and seconds waited (for its detail record)."""
        conn = self._connected.get(call_id)
        return None if conn is None else (conn.queue, conn.agent, round(conn.wait, 3))

    def call_of_agent(self, agent_id: str) -> str | None:
        run = self._agents.get(agent_id)
        return None if run is None else run.machine.call

    def position(self, call_id: str) -> int | None:
        """1 for the caller served next; None if not waiting."""
        entry = self._entries.get(call_id)
        if entry is None:
            return None
        return self._queues[entry.queue].waiting.index(entry) + 1

    def waiting(self, queue: str) -> list[Entry]:
        q = self._queues.get(queue)
        return [] if q is None else list(q.waiting)

    def queue_config(self, queue: str) -> QueueConfig:
        q = self._queues.get(queue)
        return q.config if q is not None else self.config.queue(queue)

    def queue_names(self) -> list[str]:
        return sorted(self._queues)

    def estimated_wait(self, call_id: str, now: float) -> float | None:
        """Seconds until the caller is likely answered, from the rate at which the queue's
        calls were answered in the last ten minutes (position / rate); None when too few left
        recently to tell."""
        entry = self._entries.get(call_id)
        if entry is None:
            return None
        q = self._queues[entry.queue]
        self._prune(q, now)
        if len(q.leaves) < 2:
            return None
        span = max(60.0, now - q.leaves[0])
        rate = len(q.leaves) / span
        return (q.waiting.index(entry) + 1) / rate

    def may_take(self, agent: AgentConfig, data_class: str, queue: QueueConfig) -> bool:
        """The data-sensitivity rule: outbound-only agents take no inbound calls, and a
        ``personal`` call goes only to an agent whose location the queue allows."""
        if agent.outbound_only:
            return False
        return data_class != "personal" or agent.location in queue.personal_locations

    def drain_events(self) -> list[QueueEvent]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    # -- callers ---------------------------------------------------------------------------

    def join(
        self,
        call_id: str,
        queue: str,
        now: float,
        *,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
        data_class: str = "general",
        caller: str = "",
    ) -> list[Command]:
        """A caller enters ``queue`` (a queue the configuration lacks gets the defaults)."""
        out: list[Command] = []
        if call_id in self._connected:
            raise AcdError(f"call {call_id} is already connected to an agent")
        old = self._entries.get(call_id)
        if old is not None:
            self._remove(old, now, out)
        self._enter(
            call_id, queue, now, priority, dict(skills or {}), data_class, caller, now, 0, out
        )
        return out

    def call_gone(self, call_id: str, now: float, *, by: str = "caller") -> list[Command]:
        """The call ended (``by`` "caller" or "agent") or failed: a waiting caller is
        abandoned (unless a callback keeps the place), a connected call completes."""
        out: list[Command] = []
        entry = self._entries.get(call_id)
        if entry is not None:
            if entry.callback is not None and by == "caller":
                return out  # the caller hung up after asking to be called back
            self._abandon(entry, now, out)
            return out
        conn = self._connected.pop(call_id, None)
        if conn is not None:
            kind = K.COMPLETED_AGENT if by == "agent" else K.COMPLETED_CALLER
            self._log(
                kind,
                now,
                call_id,
                conn.queue,
                conn.agent,
                wait=_s(conn.wait),
                talk=_s(now - conn.answered),
                position=conn.position,
            )
            self._end_call(conn, call_id, now, out)
        return out

    def transferred(self, call_id: str, target: str, now: float) -> list[Command]:
        """The agent transferred the call away: the agent's part of it is over."""
        out: list[Command] = []
        conn = self._connected.pop(call_id, None)
        if conn is not None:
            self._log(
                K.TRANSFERRED,
                now,
                call_id,
                conn.queue,
                conn.agent,
                target=target,
                wait=_s(conn.wait),
                talk=_s(now - conn.answered),
            )
            self._end_call(conn, call_id, now, out)
        return out

    def key_pressed(self, call_id: str, key: str, now: float) -> list[Command]:
        """A waiting caller pressed ``key``: the queue's exit key (to an IVR branch) or
        callback key (for a caller with a number, not while an agent is being rung); other
        keys do nothing."""
        out: list[Command] = []
        entry = self._entries.get(call_id)
        if entry is None:
            return out
        cfg = self._queues[entry.queue].config
        if cfg.exit_key is not None and key == cfg.exit_key:
            q = self._queues[entry.queue]
            position = q.waiting.index(entry) + 1
            self._remove(entry, now, out)
            q.exited += 1
            self._log(
                K.EXIT_KEY,
                now,
                call_id,
                entry.queue,
                None,
                key=key,
                position=position,
                wait=_s(now - entry.joined),
            )
            out.append(Exit(call_id, entry.queue, "key", ExitAction("goto", cfg.exit_to)))
        elif (
            cfg.callback_key is not None
            and key == cfg.callback_key
            and not entry.offered
            and entry.caller  # no number to call back: the key does nothing
        ):
            self.request_callback(call_id, entry.caller, now)
            out.append(Exit(call_id, entry.queue, "callback", ExitAction("callback")))
        return out

    def request_callback(self, call_id: str, number: str, now: float) -> None:
        """The waiting caller asked to be called back on ``number``: the entry keeps its
        place; when it reaches an agent the offer carries the number. Refused while an agent
        is being rung for the call (that offer has no number to call back, and the caller is
        about to be answered)."""
        entry = self._entries.get(call_id)
        if entry is None:
            raise AcdError(f"call {call_id} is not waiting in a queue")
        if not number:
            raise AcdError("a callback needs a number")
        if entry.offered:
            raise AcdError(f"call {call_id} is being offered to {', '.join(sorted(entry.offered))}")
        entry.callback = number
        self._timer(now + CALLBACK_TTL, "expire", call_id, str(entry.seq))
        q = self._queues[entry.queue]
        self._log(
            K.CALLBACK_REQUESTED,
            now,
            call_id,
            entry.queue,
            None,
            position=q.waiting.index(entry) + 1,
            wait=_s(now - entry.joined),
            number=number,
        )

    # -- offers ----------------------------------------------------------------------------

    def ringing(self, call_id: str, agent_id: str, now: float) -> list[Command]:
        run = self._agents.get(agent_id)
        if (
            run is not None
            and run.machine.call == call_id
            and run.machine.state is AgentState.RESERVED
        ):
            self._apply(run, AgentEvent.RING, now, [], call=call_id)
        return []

    def answered(self, call_id: str, agent_id: str, now: float) -> list[Command]:
        """``agent_id`` answered the offer: the call leaves its queue, connected."""
        out: list[Command] = []
        entry = self._entries.get(call_id)
        run = self._agents.get(agent_id)
        if entry is None or run is None or agent_id not in entry.offered:
            return out  # stale: the offer is over (the switch hangs the agent's leg up)
        q = self._queues[entry.queue]
        started = entry.offered.pop(agent_id)
        self._apply(run, AgentEvent.ANSWER, now, out, call=call_id)
        self._remove(entry, now, out)  # releases the other agents rung (ring-all)
        wait = now - entry.joined
        self._connected[call_id] = _Connected(agent_id, entry.queue, wait, now, entry.position)
        run.calls[entry.queue] = run.calls.get(entry.queue, 0) + 1
        run.answered += 1
        q.answered += 1
        q.leaves.append(now)
        q.outcomes.append((now, wait, True))
        self._prune(q, now)
        self._log(
            K.CONNECTED,
            now,
            call_id,
            entry.queue,
            agent_id,
            wait=_s(wait),
            ring=_s(now - started),
            position=entry.position,
        )
        return out

    def missed(
        self, call_id: str, agent_id: str, now: float, *, why: str = "timeout"
    ) -> list[Command]:
        """The offer to ``agent_id`` failed (no answer, busy, rejected, unreachable phone):
        the caller keeps the place; the agent is not offered this call again for the
        queue's ``retry`` seconds."""
        out: list[Command] = []
        run = self._agents.get(agent_id)
        if run is None or run.machine.call != call_id:
            return out
        if run.machine.state not in (AgentState.RESERVED, AgentState.RINGING):
            return out
        entry = self._entries.get(call_id)
        started = now
        if entry is not None:
            started = entry.offered.pop(agent_id, now)
            cfg = self._queues[entry.queue].config
            entry.missed_by[agent_id] = now + cfg.retry
            self._timer(now + cfg.retry, "retry", call_id)
        event = AgentEvent.UNREACHABLE if why == "unreachable" else AgentEvent.MISSED
        self._log(
            K.MISSED,
            now,
            call_id,
            entry.queue if entry else None,
            agent_id,
            ring=_s(now - started),
            why=why,
        )
        self._apply(run, event, now, out, call=call_id)
        if entry is not None and entry.call_id in self._entries:
            self._dispatch(self._queues[entry.queue], now, out)
        return out

    # -- agents ----------------------------------------------------------------------------

    def login(self, agent_id: str, now: float) -> list[Command]:
        return self._control(agent_id, AgentEvent.LOGIN, now)

    def logout(self, agent_id: str, now: float) -> list[Command]:
        return self._control(agent_id, AgentEvent.LOGOUT, now)

    def ready(self, agent_id: str, now: float) -> list[Command]:
        return self._control(agent_id, AgentEvent.READY, now)

    def not_ready(
        self, agent_id: str, reason: str, now: float, *, switch: bool = False
    ) -> list[Command]:
        """Not ready with ``reason`` from the configured list (``switch``: one of the
        switch's own reasons, e.g. ``supervisor``, is allowed too)."""
        allowed = set(self.config.reasons) | (SWITCH_REASONS if switch else set())
        if reason not in allowed:
            raise AcdError(
                f"unknown reason {reason!r}: one of {', '.join(sorted(self.config.reasons))}"
            )
        return self._control(agent_id, AgentEvent.NOT_READY, now, reason=reason)

    def end_wrap_up(self, agent_id: str, now: float, code: str | None = None) -> list[Command]:
        if code is not None and self.config.codes and code not in self.config.codes:
            raise AcdError(f"unknown wrap-up code {code!r}: one of {', '.join(self.config.codes)}")
        run = self._run(agent_id)
        if run.machine.state is not AgentState.WRAP_UP:
            raise AcdError(f"agent {agent_id} is not in wrap-up ({run.machine.state.value})")
        return self._control(agent_id, AgentEvent.END_WRAP_UP, now, code=code)

    def unreachable(self, agent_id: str, now: float) -> list[Command]:
        """The agent's registration expired or the phone stopped answering."""
        run = self._run(agent_id)
        if run.machine.state is AgentState.LOGGED_OUT:
            return []
        out: list[Command] = []
        call = run.machine.call
        if run.machine.state in (AgentState.RESERVED, AgentState.RINGING) and call:
            out.append(Withdraw(call, agent_id))
            out += self.missed(call, agent_id, now, why="unreachable")
            return out
        return out + self._control(agent_id, AgentEvent.UNREACHABLE, now)

    def reachable(self, agent_id: str, now: float) -> list[Command]:
        """The agent's phone registered again: during a call or its wrap-up, the not ready
        its loss left pending is dropped; in any other state nothing changes (an agent made
        not ready as unreachable chooses ready again)."""
        run = self._run(agent_id)
        if run.machine.state not in (AgentState.ON_CALL, AgentState.WRAP_UP):
            return []
        return self._control(agent_id, AgentEvent.REACHABLE, now)

    def _control(
        self,
        agent_id: str,
        event: AgentEvent,
        now: float,
        *,
        reason: str | None = None,
        code: str | None = None,
    ) -> list[Command]:
        run = self._run(agent_id)
        out: list[Command] = []
        try:
            self._apply(run, event, now, out, reason=reason, code=code)
        except AgentError as exc:
            raise AcdError(str(exc)) from None
        return out

    def _run(self, agent_id: str) -> _Run:
        run = self._agents.get(agent_id)
        if run is None or (run.retired and run.machine.state is AgentState.LOGGED_OUT):
            raise AcdError(f"no agent {agent_id!r}")
        return run

    # -- time ------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> list[Command]:
        out: list[Command] = []
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, key, extra = heapq.heappop(self._timers)
            if kind == "wrap":
                run = self._agents.get(key)
                if run is not None:
                    changes = run.machine.tick(now)
                    if changes:
                        self._after(run, changes, now, out)
            elif kind == "ring":
                agent_id, seq, started = extra.split("|")
                entry = self._entries.get(key)
                if (
                    entry is not None
                    and entry.seq == int(seq)
                    and entry.offered.get(agent_id) == float(started)
                ):
                    out.append(Withdraw(key, agent_id))
                    out += self.missed(key, agent_id, now, why="no report")
            else:
                entry = self._entries.get(key)
                if entry is None:
                    continue
                q = self._queues[entry.queue]
                if kind == "wait":
                    # not a wait timer of an earlier entry; a callback, once promised, is not
                    # timed out (its own lifetime is CALLBACK_TTL)
                    if int(extra) == entry.seq and entry.callback is None:
                        self._exit(entry, q, "timeout", q.config.on_timeout, now, out)
                elif kind == "expire":
                    if int(extra) == entry.seq and entry.callback is not None:
                        self._abandon(entry, now, out, why="callback expired")
                elif kind == "relax":
                    by, _, seq = extra.partition("|")
                    if int(seq) == entry.seq:
                        entry.relax = max(entry.relax, int(by))
                    self._dispatch(q, now, out)
                elif kind == "retry":
                    for agent_id, until in list(entry.missed_by.items()):
                        if until <= now:
                            del entry.missed_by[agent_id]
                    self._dispatch(q, now, out)
        return out

    # -- configuration ---------------------------------------------------------------------

    def reload(self, config: AcdConfig, now: float) -> list[Command]:
        """Take a new configuration: queues get their new rules and members, new agents
        start logged out, removed agents are logged out (after their call, if on one)."""
        out: list[Command] = []
        self.config = config
        for name, q in self._queues.items():
            if name in config.queues:
                q.config = config.queues[name]
        for name, qc in config.queues.items():
            self._queues.setdefault(name, _Queue(qc))
        for agent_id, ac in config.agents.items():
            run = self._agents.get(agent_id)
            if run is None:
                machine = Agent(
                    agent_id, since=now, max_misses=ac.max_misses, wrap_up_seconds=ac.wrap_up
                )
                self._agents[agent_id] = _Run(ac, machine, idle_since=now)
            else:
                run.config, run.retired = ac, False
                run.machine.max_misses = ac.max_misses
                run.machine.wrap_up_seconds = ac.wrap_up
        for agent_id, run in list(self._agents.items()):
            if agent_id not in config.agents and not run.retired:
                run.retired = True
                run.config = AgentConfig(
                    run.config.id, run.config.name, run.config.user, run.config.location, queues={}
                )
                if run.machine.state is not AgentState.LOGGED_OUT:
                    self._apply(run, AgentEvent.LOGOUT, now, out)
            if run.retired and run.machine.state is AgentState.LOGGED_OUT:
                self._agents.pop(agent_id, None)
        self._by_user = {}
        for q in self._queues.values():
            q.members, q.order, q.ready, q.tiers = {}, {}, set(), {}
        order = {agent_id: i for i, agent_id in enumerate(config.agents)}
        for agent_id, run in self._agents.items():
            index = order.get(agent_id, len(order))  # (a removed agent finishing a call: last)
            self._by_user.setdefault(run.config.user, []).append(agent_id)
            for name, penalty in run.config.queues.items():
                q = self._queues.setdefault(name, _Queue(config.queue(name)))
                q.members[agent_id] = penalty
                q.order[agent_id] = index
                q.set_ready(agent_id, run.machine.state is AgentState.READY)
        for q in self._queues.values():
            self._check_stay(q, now, out)
            self._dispatch(q, now, out)
        return out

    # -- live figures ----------------------------------------------------------------------

    def snapshot(self, now: float) -> dict[str, object]:
        """Every queue's and agent's live state and the last hour's figures."""
        queues = [self.queue_view(name, now) for name in sorted(self._queues)]
        states: dict[str, int] = {s.value: 0 for s in AgentState}
        agents = []
        for agent_id, run in self._agents.items():
            states[run.machine.state.value] += 1
            agents.append(self.agent_view(agent_id, now))
        return {"queues": queues, "agents": agents, "agent_states": states}

    def queue_view(self, name: str, now: float) -> dict[str, object]:
        """One queue's live state: callers in order, and the last hour's service level (the
        share of calls answered within the queue's target among those answered, abandoned
        or sent out by a timeout or an empty queue) and speed of answer."""
        q = self._queues.get(name)
        if q is None:
            q = _Queue(self.config.queue(name))
        self._prune(q, now)
        answered = [w for _, w, ok in q.outcomes if ok]
        total = len(q.outcomes)
        within = sum(1 for w in answered if w <= q.config.service_level)
        return {
            "name": name,
            "strategy": q.config.strategy.value,
            "waiting": len(q.waiting),
            "longest_wait": round(max((now - e.joined for e in q.waiting), default=0.0), 1),
            "entered": q.entered,
            "answered": q.answered,
            "abandoned": q.abandoned,
            "exited": q.exited,
            "members": len(q.members),
            "ready": len(q.ready),
            "service_level": None if total == 0 else round(within / total, 3),
            "speed_of_answer": None if not answered else round(sum(answered) / len(answered), 1),
            "callers": [self.entry_view(e, now, i + 1) for i, e in enumerate(q.waiting)],
        }

    def wrap_up_call(self, agent_id: str) -> str | None:
        """The call whose wrap-up the agent is in, or None when not in wrap-up."""
        run = self._run(agent_id)
        return run.last_call if run.machine.state is AgentState.WRAP_UP else None

    def agent_view(self, agent_id: str, now: float) -> dict[str, object]:
        run = self._run(agent_id)
        m = run.machine
        return {
            "id": agent_id,
            "name": run.config.name,
            "user": run.config.user,
            "location": run.config.location,
            "state": m.state.value,
            "reason": m.reason,
            "since": m.since,
            "for": round(max(0.0, now - m.since), 1),
            "call": m.call,
            "pending": None if m.pending is None else m.pending[0].value,
            "wrap_up_until": m.wrap_up_until,
            "last_code": m.last_code,
            "misses": m.misses,
            "answered": run.answered,
            "queues": dict(run.config.queues),
        }

    @staticmethod
    def entry_view(entry: Entry, now: float, position: int) -> dict[str, object]:
        return {
            "call_id": entry.call_id,
            "position": position,
            "caller": entry.caller,
            "priority": entry.priority,
            "skills": dict(entry.skills),
            "data_class": entry.data_class,
            "waiting": round(max(0.0, now - entry.joined), 1),
            "joined": entry.joined,
            "offered_to": sorted(entry.offered),
            "callback": entry.callback is not None,
        }

    # -- internals -------------------------------------------------------------------------

    def _enter(
        self,
        call_id: str,
        queue: str,
        now: float,
        priority: int,
        call_skills: dict[str, int],
        data_class: str,
        caller: str,
        arrived: float,
        hops: int,
        out: list[Command],
        callback: str | None = None,
        rank: int = -1,
    ) -> None:
        q = self._queues.get(queue)
        if q is None:
            q = self._queues[queue] = _Queue(self.config.queue(queue))
        cfg = q.config
        skills = dict(cfg.skills)
        for name, level in call_skills.items():
            skills[name] = max(level, skills.get(name, 0))
        entry = Entry(
            call_id,
            queue,
            priority,
            skills,
            call_skills,
            data_class,
            caller,
            now,
            arrived,
            next(self._seq),
            0,
            hops=hops,
            callback=callback,
        )
        entry.rank = rank if rank >= 0 else entry.seq
        q.entered += 1
        if cfg.max_length and len(q.waiting) >= cfg.max_length:
            q.exited += 1
            self._log(
                K.EXIT_FULL,
                now,
                call_id,
                queue,
                None,
                max_length=cfg.max_length,
                action=cfg.on_full.kind,
            )
            self._leave_to(entry, q, "full", cfg.on_full, now, out)
            return
        if not self._servable(q, entry, cfg.join_when):
            q.exited += 1
            self._log(
                K.EXIT_EMPTY,
                now,
                call_id,
                queue,
                None,
                position=0,
                original_position=0,
                wait=0.0,
                action=cfg.on_empty.kind,
            )
            self._leave_to(entry, q, "empty", cfg.on_empty, now, out)
            return
        entry.position = q.place(entry)
        self._entries[call_id] = entry
        self._log(
            K.ENTERED,
            now,
            call_id,
            queue,
            None,
            position=entry.position,
            priority=priority,
            data_class=data_class,
            caller=caller,
        )
        if cfg.max_wait > 0:
            # keyed by the entry, not the call: a caller back in a queue at the same instant
            # (an overflow, an exit key and back) is not timed out by the earlier queue's rule
            self._timer(now + cfg.max_wait, "wait", call_id, str(entry.seq))
        for step in cfg.relax:
            self._timer(now + step.after, "relax", call_id, f"{step.by}|{entry.seq}")
        # only the newcomer: the callers before it already had every ready agent to try
        self._dispatch(q, now, out, only=entry)

    def _leave_to(
        self, entry: Entry, q: _Queue, why: str, action: ExitAction, now: float, out: list[Command]
    ) -> None:
        """The caller (already out of ``q``) follows ``action``: an overflow queue is
        entered here, keeping the call's data class; anything else is the switch's."""
        target = action.target
        if (
            action.kind == "queue"
            and target
            and target != q.config.name
            and (entry.hops < MAX_HOPS)
        ):
            out.append(Moved(entry.call_id, target))
            self._enter(
                entry.call_id,
                target,
                now,
                entry.priority,
                dict(entry.call_skills),
                entry.data_class,
                entry.caller,
                entry.arrived,
                entry.hops + 1,
                out,
                entry.callback,
                entry.rank,
            )
            return
        if action.kind in ("queue", "callback"):
            # an overflow past MAX_HOPS; a callback for a caller who never had a place in
            # line (refused on arrival: full, or nobody to serve it) has none to keep
            action = ExitAction("hangup", None, action.prompt)
        out.append(Exit(entry.call_id, q.config.name, why, action))

    def _exit(
        self, entry: Entry, q: _Queue, why: str, action: ExitAction, now: float, out: list[Command]
    ) -> None:
        position = q.waiting.index(entry) + 1
        if action.kind == "callback" and entry.callback is None and entry.caller:
            if entry.offered:
                return  # an agent is being rung for the call: no callback offer now
            # the caller is offered a callback and keeps the place in line
            self.request_callback(entry.call_id, entry.caller, now)
            out.append(Exit(entry.call_id, q.config.name, why, action))
            return
        self._remove(entry, now, out)
        q.exited += 1
        q.outcomes.append((now, now - entry.joined, False))
        kind = K.EXIT_TIMEOUT if why == "timeout" else K.EXIT_EMPTY
        self._log(
            kind,
            now,
            entry.call_id,
            q.config.name,
            None,
            position=position,
            original_position=entry.position,
            wait=_s(now - entry.joined),
            action=action.kind,
        )
        self._leave_to(entry, q, why, action, now, out)

    def _abandon(self, entry: Entry, now: float, out: list[Command], **details: Detail) -> None:
        """The caller is gone before an agent answered (hung up, or a callback expired)."""
        q = self._queues[entry.queue]
        position = q.waiting.index(entry) + 1
        self._remove(entry, now, out)
        q.abandoned += 1
        q.outcomes.append((now, now - entry.joined, False))
        self._log(
            K.ABANDONED,
            now,
            entry.call_id,
            entry.queue,
            None,
            position=position,
            original_position=entry.position,
            wait=_s(now - entry.joined),
            **details,
        )

    def _remove(self, entry: Entry, now: float, out: list[Command]) -> None:
        """Take the entry out of its queue, withdraw its offers still ringing and release those
        agents (the answering agent is no longer among them)."""
        self._entries.pop(entry.call_id, None)
        q = self._queues[entry.queue]
        q.waiting.remove(entry)
        offered, entry.offered = entry.offered, {}
        for agent_id in offered:
            # before the release: a released agent may be offered the next call in this step
            out.append(Withdraw(entry.call_id, agent_id))
            run = self._agents.get(agent_id)
            if run is not None and run.machine.call == entry.call_id:
                self._apply(run, AgentEvent.RELEASED, now, out, call=entry.call_id)

    def _end_call(self, conn: _Connected, call_id: str, now: float, out: list[Command]) -> None:
        run = self._agents.get(conn.agent)
        if run is None or run.machine.call != call_id:
            return
        wrap = self._queues[conn.queue].config.wrap_up
        run.last_call, run.last_queue = call_id, conn.queue
        self._apply(run, AgentEvent.ENDED, now, out, call=call_id, wrap_up=wrap)

    def _apply(
        self,
        run: _Run,
        event: AgentEvent,
        now: float,
        out: list[Command],
        *,
        call: str | None = None,
        reason: str | None = None,
        code: str | None = None,
        wrap_up: float | None = None,
    ) -> None:
        changes = run.machine.apply(
            event, now, call=call, reason=reason, code=code, wrap_up=wrap_up
        )
        self._after(run, changes, now, out)

    def _after(self, run: _Run, changes: list[Change], now: float, out: list[Command]) -> None:
        """Log the agent's transitions, keep the ready sets in step, and act on them."""
        agent_id = run.machine.id
        for change in changes:
            self._log_change(run, change, now)
        state = run.machine.state
        if state is AgentState.WRAP_UP and run.machine.wrap_up_until is not None:
            self._timer(run.machine.wrap_up_until, "wrap", agent_id)
        held = (AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL)
        if state not in held and any(
            c.before in (AgentState.ON_CALL, AgentState.WRAP_UP) for c in changes
        ):
            run.idle_since = now
        for name in run.config.queues:
            q = self._queues.get(name)
            if q is None:
                continue
            q.set_ready(agent_id, state is AgentState.READY)
        if run.retired and state in (AgentState.READY, AgentState.NOT_READY):
            # removed from the configuration and idle, the pending logout replaced on the way
            # (a not-ready during wrap-up, the phone unreachable while rung): leave now, as
            # nothing else would ever log the agent out
            self._apply(run, AgentEvent.LOGOUT, now, out)
            return
        if run.retired and state is AgentState.LOGGED_OUT:
            self._agents.pop(agent_id, None)
            users = self._by_user.get(run.config.user, [])
            if agent_id in users:
                users.remove(agent_id)
            return
        if state is AgentState.READY:
            self._agent_free(run, now, out)
        elif state in (AgentState.NOT_READY, AgentState.LOGGED_OUT):
            for name in run.config.queues:
                q = self._queues.get(name)
                if q is not None:
                    self._check_stay(q, now, out)

    def _log_change(self, run: _Run, change: Change, now: float) -> None:
        agent_id = run.machine.id
        before, after = change.before, change.after
        if before is AgentState.WRAP_UP and after is not AgentState.WRAP_UP:
            call = change.call or run.last_call
            queue = run.last_queue
            self._log(K.WRAP_UP, now, call, queue, agent_id, code=change.code or "")
        if change.event is AgentEvent.LOGIN:
            run.login_at = now
            run.idle_since = now
            run.calls = {}
            self._log(K.LOGIN, now, None, None, agent_id)
        elif after is AgentState.LOGGED_OUT:
            session = 0.0 if run.login_at is None else now - run.login_at
            self._log(K.LOGOUT, now, None, None, agent_id, session=_s(session))
            run.login_at = None
        elif after is AgentState.READY and before in (AgentState.NOT_READY, AgentState.WRAP_UP):
            self._log(K.READY, now, None, None, agent_id)
        elif after is AgentState.NOT_READY:
            self._log(K.NOT_READY, now, None, None, agent_id, reason=change.reason or "")

    def _agent_free(self, run: _Run, now: float, out: list[Command]) -> None:
        """The agent is ready: offer them the best waiting call among their queues (lowest
        penalty first, then the caller's priority and wait)."""
        heads = []
        for name, penalty in run.config.queues.items():
            q = self._queues.get(name)
            if q is not None and q.waiting:
                head = q.waiting[0]
                heads.append((penalty, head.key[0], head.joined, name))
        for *_, name in sorted(heads):
            if run.machine.state is not AgentState.READY:
                break
            self._dispatch(self._queues[name], now, out)

    def _dispatch(
        self, q: _Queue, now: float, out: list[Command], only: Entry | None = None
    ) -> None:
        """Offer waiting callers (or ``only`` that one), in order, to the queue's ready agents
        who may take them."""
        if not q.ready or not q.waiting:
            return
        hopeless: set[tuple[object, ...]] = set()
        for entry in list(q.waiting) if only is None else [only]:
            if not q.ready:
                break
            if entry.offered or entry.call_id not in self._entries:
                continue
            sig: tuple[object, ...] | None = None
            if not entry.missed_by:
                sig = (entry.data_class, tuple(sorted(entry.skills.items())), entry.relax)
                if sig in hopeless:
                    continue
            candidates = self._candidates(q, entry, now)
            if not candidates:
                if sig is not None:
                    hopeless.add(sig)
                continue
            chosen = pick(
                q.config.strategy, candidates, last=q.last, members=len(q.members), draw=self._draw
            )
            self._offer(q, entry, [c.agent for c in chosen], now, out)

    def _candidates(self, q: _Queue, entry: Entry, now: float) -> list[Candidate]:
        """The ready members who may take the call and fit its skills, from the lowest
        penalty tier that has any (higher tiers are not looked at then)."""
        cfg = q.config
        personal = entry.data_class == "personal"
        allowed = cfg.personal_locations
        missed = entry.missed_by
        needs = [(skill, level - entry.relax) for skill, level in entry.skills.items()]
        for penalty in sorted(q.tiers):
            found: list[Candidate] = []
            for agent_id in q.tiers[penalty]:
                run = self._agents[agent_id]
                ac = run.config
                # may_take, inline: this loop is the cost of a routing decision
                if ac.outbound_only or (personal and ac.location not in allowed):
                    continue
                if missed and missed.get(agent_id, 0.0) > now:
                    continue
                score = 0
                fits = True
                for skill, need in needs:
                    have = ac.skills.get(skill, 0)
                    if need > 0 and have < need:
                        fits = False
                        break
                    score += have
                if not fits:
                    continue
                found.append(
                    Candidate(
                        agent_id,
                        q.order[agent_id],
                        run.idle_since,
                        run.calls.get(cfg.name, 0),
                        score,
                    )
                )
            if found:
                return found
        return []

    def _offer(
        self, q: _Queue, entry: Entry, agents: list[str], now: float, out: list[Command]
    ) -> None:
        cfg = q.config
        chosen: list[str] = []
        for agent_id in agents:
            run = self._agents[agent_id]
            # the rule, once more at the point of no return: no path gets past it
            if not self.may_take(run.config, entry.data_class, cfg):
                continue
            if run.machine.state is not AgentState.READY:
                continue
            self._apply(run, AgentEvent.OFFER, now, out, call=entry.call_id)
            entry.offered[agent_id] = now
            chosen.append(agent_id)
            self._log(K.OFFERED, now, entry.call_id, cfg.name, agent_id, attempt=entry.attempts + 1)
        if not chosen:
            return
        entry.attempts += 1
        q.last = q.order.get(chosen[0], q.last)
        ring = cfg.ring_timeout * (2 if entry.callback else 1)
        for agent_id in chosen:
            self._timer(
                now + ring + RING_GRACE, "ring", entry.call_id, f"{agent_id}|{entry.seq}|{now!r}"
            )
        out.append(Offer(entry.call_id, cfg.name, tuple(chosen), cfg.ring_timeout, entry.callback))

    def _servable(self, q: _Queue, entry: Entry, rule: str) -> bool:
        """``always``; ``logged_in``: some member who may take the call is logged in;
        ``ready``: one is ready now (:attr:`QueueConfig.join_when`); ``available``: one is
        ready, offered, on a call or in wrap-up (not not-ready)."""
        if rule == "always":
            return True
        for agent_id in q.members:
            run = self._agents[agent_id]
            state = run.machine.state
            if state is AgentState.LOGGED_OUT:
                continue
            if rule == "available" and state is AgentState.NOT_READY:
                continue
            if rule == "ready" and state is not AgentState.READY:
                continue
            if self.may_take(run.config, entry.data_class, q.config):
                return True
        return False

    def _check_stay(self, q: _Queue, now: float, out: list[Command]) -> None:
        rule = q.config.stay_when
        if rule == "always" or not q.waiting:
            return
        servable: dict[str, bool] = {}  # by data class: the members are looked at once each
        for entry in list(q.waiting):
            if entry.offered or entry.call_id not in self._entries or entry.callback:
                continue
            ok = servable.get(entry.data_class)
            if ok is None:
                ok = servable[entry.data_class] = self._servable(q, entry, rule)
            if not ok:
                self._exit(entry, q, "empty", q.config.on_empty, now, out)

    def _timer(self, when: float, kind: str, key: str, extra: str = "") -> None:
        heapq.heappush(self._timers, (when, next(self._tseq), kind, key, extra))

    @staticmethod
    def _prune(q: _Queue, now: float) -> None:
        while q.leaves and q.leaves[0] < now - RATE_WINDOW:
            q.leaves.popleft()
        while q.outcomes and q.outcomes[0][0] < now - WINDOW:
            q.outcomes.popleft()

    def _log(
        self,
        kind: QueueEventKind,
        now: float,
        call_id: str | None,
        queue: str | None,
        agent: str | None,
        **details: Detail,
    ) -> None:
        self._events.append(QueueEvent(now, kind, call_id, queue, agent, details))


def _s(seconds: float) -> float:
    return round(max(0.0, seconds), 3)
