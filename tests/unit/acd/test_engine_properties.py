"""Property tests of the queue engine: random interleavings of callers, agents, phones, timers
and reloads, carried out by a simulated switch, never leave an agent with two calls, a call
with two agents, an offer where the configuration forbids it, a zombie queue entry or a
stuck agent (ARCHITECTURE.md, principle 7).

The simulated switch does what a faithful switch does with the engine's commands: an
:class:`Offer` rings the agents named, only a ringing agent can answer or miss, a
:class:`Withdraw` stops a ring, an :class:`Exit` takes the caller out of the queue (an exit
to a callback takes the caller off the line, the entry staying), :class:`Moved` changes the
queue the caller waits in. Every check of an offer is made against the switch's own record
of the calls and the configuration, not against the engine's answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from softswitch.acd.agent import WITH_CALL, AgentEvent, AgentState, Change
from softswitch.acd.engine import CALLBACK_TTL, Acd, AcdError, Command, Exit, Moved, Offer, Withdraw
from softswitch.acd.events import QueueEventKind
from softswitch.acd.model import (
    AcdConfig,
    AgentConfig,
    ExitAction,
    QueueConfig,
    Relaxation,
    Strategy,
)

S, K = AgentState, QueueEventKind
AGENTS = ("a1", "a2", "a3", "a4", "a5")
QUEUES = ("sales", "support", "overflow")
SKILLS = ("english", "french")
CODES = ("sale", "no_sale")
RULES = ("always",) * 5 + ("logged_in", "ready", "available")
START = 1_700_000_000.0

# -- configurations --------------------------------------------------------------------------

exit_actions = st.one_of(
    st.just(ExitAction()),
    st.just(ExitAction("voicemail", "mbox-1")),
    st.just(ExitAction("goto", "menu")),
    st.just(ExitAction("callback")),
    st.sampled_from(QUEUES).map(lambda q: ExitAction("queue", q)),
)


def queue_configs(name: str) -> st.SearchStrategy[QueueConfig]:
    return st.builds(
        QueueConfig,
        name=st.just(name),
        strategy=st.sampled_from(Strategy),
        ring_timeout=st.sampled_from([10.0, 20.0, 4.0]),
        retry=st.sampled_from([2.0, 6.0]),
        wrap_up=st.sampled_from([None, None, 0.0, 20.0]),
        skills=st.sampled_from([{}, {}, {}, {"english": 40}]),
        relax=st.sampled_from(
            [(), (Relaxation(8.0, 30),), (Relaxation(8.0, 20), Relaxation(25.0, 60))]
        ),
        max_length=st.sampled_from([0, 0, 2, 3]),
        max_wait=st.sampled_from([0.0, 0.0, 12.0, 40.0]),
        on_timeout=exit_actions,
        on_full=exit_actions,
        on_empty=exit_actions,
        join_when=st.sampled_from(RULES),
        stay_when=st.sampled_from(RULES),
        personal_locations=st.sampled_from(
            [frozenset({"onsite"}), frozenset({"onsite", "home"}), frozenset()]
        ),
        exit_key=st.sampled_from([None, "0"]),
        exit_to=st.just("menu"),
        callback_key=st.sampled_from([None, "1"]),
    )


def agent_configs(agent_id: str) -> st.SearchStrategy[AgentConfig]:
    return st.builds(
        AgentConfig,
        id=st.just(agent_id),
        name=st.just(agent_id.upper()),
        user=st.sampled_from([f"user-{agent_id}", "shared-phone"]),
        location=st.sampled_from(["onsite", "onsite", "home"]),
        skills=st.dictionaries(st.sampled_from(SKILLS), st.sampled_from([100, 80, 60, 20])),
        queues=st.dictionaries(st.sampled_from(QUEUES), st.integers(0, 2), min_size=1),
        wrap_up=st.sampled_from([0.0, 10.0, 30.0]),
        outbound_only=st.sampled_from([False] * 7 + [True]),
        max_misses=st.integers(1, 3),
    )


@st.composite
def acd_configs(draw: st.DrawFn) -> AcdConfig:
    ids = draw(st.lists(st.sampled_from(AGENTS), min_size=1, max_size=len(AGENTS), unique=True))
    return AcdConfig(
        queues={name: draw(queue_configs(name)) for name in QUEUES},
        agents={agent_id: draw(agent_configs(agent_id)) for agent_id in ids},
        codes=draw(st.sampled_from([(), CODES])),
    )


# -- the switch's own record of a call ---------------------------------------------------------


@dataclass
class SimCall:
    id: str
    data_class: str
    priority: int
    skills: dict[str, int]
    caller: str
    #: waiting (caller on the line), callback (caller off the line, the place kept),
    #: connected, ivr (left the queue, still on the line), gone
    where: str = "waiting"
    queue: str = ""
    joined: float = 0.0
    required: dict[str, int] = field(default_factory=dict)
    relax: tuple[Relaxation, ...] = ()
    max_wait: float = 0.0
    agent: str | None = None
    callback: str | None = None


def _pick(items: Iterable[str], i: int) -> str:
    ordered = sorted(items)
    return ordered[i % len(ordered)]


class AcdMachine(RuleBasedStateMachine):
    """The engine and a faithful simulated switch around it."""

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.acd: Acd | None = None
        self.config = AcdConfig()
        self.calls: dict[str, SimCall] = {}
        self.rings: dict[str, str] = {}  # agent -> call ringing
        self.numbers: dict[str, str | None] = {}  # agent -> the callback number of the ring
        self.talking: dict[str, str] = {}  # agent -> call connected
        self.past_rings: set[tuple[str, str]] = set()
        self.ids = itertools.count(1)
        self.draws = itertools.count()
        self.reloads = 6  # at most this many per run: the other rules are the point

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def engine(self) -> Acd:
        assert self.acd is not None
        return self.acd

    def _marks(self) -> dict[str, Change | None]:
        return {
            agent_id: (run.machine.changes[-1] if run.machine.changes else None)
            for agent_id, run in self.engine._agents.items()
        }

    def _new_changes(self, agent_id: str, marks: dict[str, Change | None]) -> list[Change]:
        changes = list(self.engine._agents[agent_id].machine.changes)
        mark = marks.get(agent_id)
        for index in range(len(changes) - 1, -1, -1):
            if changes[index] is mark:
                return changes[index + 1 :]
        return changes

    def _step(self, action: Callable[[], list[Command]]) -> list[Command]:
        marks = self._marks()
        commands = action()
        self._carry_out(commands, marks)
        self._check_events(commands)
        return commands

    def _check_events(self, commands: list[Command]) -> None:
        events = self.engine.drain_events()
        offered = [e for e in events if e.kind is K.OFFERED]
        rung = [(c.call_id, a) for c in commands if isinstance(c, Offer) for a in c.agents]
        assert sorted((e.call_id or "", e.agent or "") for e in offered) == sorted(rung)
        for event in events:
            if event.kind in (K.ABANDONED, K.EXIT_TIMEOUT, K.EXIT_EMPTY, K.EXIT_KEY):
                assert event.call_id is not None and event.queue is not None
            if event.kind is K.EXIT_TIMEOUT:
                assert float(event.details["wait"]) > 0
            if event.kind is K.ABANDONED and event.details.get("why") == "callback expired":
                call = self.calls[event.call_id or ""]
                assert call.where == "callback", (event, call.where)
                assert self.now - call.joined >= CALLBACK_TTL - 1e-6
                call.where, call.callback = "gone", None

    def _required(self, queue: str, call: SimCall) -> dict[str, int]:
        merged = dict(self.config.queue(queue).skills)
        for skill, level in call.skills.items():
            merged[skill] = max(level, merged.get(skill, 0))
        return merged

    def _enter(self, call: SimCall, queue: str) -> None:
        qc = self.config.queue(queue)
        call.where = "waiting" if call.where != "callback" else "callback"
        call.queue, call.joined = queue, self.now
        call.required = self._required(queue, call)
        call.relax, call.max_wait = qc.relax, qc.max_wait

    # -- carrying out the engine's commands ----------------------------------------------------

    def _carry_out(self, commands: list[Command], marks: dict[str, Change | None]) -> None:
        for command in commands:
            if isinstance(command, Offer):
                self._on_offer(command, marks)
            elif isinstance(command, Withdraw):
                assert self.rings.get(command.agent) == command.call_id, command
                del self.rings[command.agent]
                self.past_rings.add((command.agent, command.call_id))
            elif isinstance(command, Moved):
                call = self.calls[command.call_id]
                assert call.where in ("waiting", "callback"), (command, call.where)
                self._enter(call, command.queue)
            else:
                self._on_exit(command)

    def _on_offer(self, offer: Offer, marks: dict[str, Change | None]) -> None:
        call = self.calls[offer.call_id]
        assert call.where in ("waiting", "callback"), (offer, call.where)
        assert offer.queue == call.queue, (offer, call.queue)
        assert offer.callback == call.callback
        assert offer.agents and len(set(offer.agents)) == len(offer.agents)
        qc = self.config.queue(offer.queue)
        if qc.strategy is not Strategy.RING_ALL:
            assert len(offer.agents) == 1
        waited = self.now - call.joined
        relax = max((r.by for r in call.relax if r.after <= waited + 1e-9), default=0)
        for agent_id in offer.agents:
            ac = self.config.agents.get(agent_id)
            assert ac is not None, f"{agent_id} is offered a call but is not configured"
            assert offer.queue in ac.queues, f"{agent_id} is not a member of {offer.queue}"
            assert not ac.outbound_only, f"outbound-only {agent_id} offered {offer.call_id}"
            if call.data_class == "personal":
                assert (
                    ac.location in qc.personal_locations
                ), f"personal call {offer.call_id} offered to {agent_id} at {ac.location}"
            for skill, level in call.required.items():
                need = level - relax
                assert need <= 0 or ac.skills.get(skill, 0) >= need, (agent_id, skill, need)
            assert agent_id not in self.rings, f"{agent_id} rung for two calls"
            assert agent_id not in self.talking, f"{agent_id} offered a call while on one"
            assert any(
                c.event is AgentEvent.OFFER and c.before is S.READY and c.call == offer.call_id
                for c in self._new_changes(agent_id, marks)
            ), f"{agent_id} offered {offer.call_id} without being ready"
            self.rings[agent_id] = offer.call_id
            self.numbers[agent_id] = offer.callback

    def _on_exit(self, command: Exit) -> None:
        call = self.calls[command.call_id]
        assert call.where in ("waiting", "callback"), (command, call.where)
        assert command.queue == call.queue
        assert command.action.kind != "queue"  # an overflow is a Moved, or ends as a hangup
        if command.why == "callback" or (
            command.action.kind == "callback" and call.where == "waiting" and call.caller
        ):
            # the callback key, or a timeout/empty exit that offers a callback: the caller
            # keeps the place in line
            assert call.where == "waiting" and call.caller
            call.callback = call.caller
            # the switch plays its prompt and takes the caller off the line
            call.where = "callback"
            commands = self.engine.call_gone(call.id, self.now, by="caller")
            assert commands == []
            return
        assert command.why in ("timeout", "empty", "full", "key"), command
        if command.why == "timeout":
            assert call.max_wait > 0 and self.now - call.joined >= call.max_wait - 1e-6, (
                f"{call.id} timed out of {call.queue} after {self.now - call.joined}s "
                f"(max_wait {call.max_wait})"
            )
        if command.why == "key":
            assert command.action.kind == "goto"
        on_line = call.where == "waiting" and command.action.kind == "goto"
        call.where = "ivr" if on_line else "gone"
        call.callback = None

    # -- the rules -----------------------------------------------------------------------------

    @initialize(config=acd_configs(), ready=st.sampled_from([True, True, True, False]))
    def start(self, config: AcdConfig, ready: bool) -> None:
        self.config = config
        self.acd = Acd(config, now=self.now, draw=lambda n: next(self.draws) % n)
        if ready:  # everyone starts the day logged in and ready
            for agent_id in config.agents:
                self._step(lambda: self.engine.login(agent_id, self.now))  # noqa: B023
                self._step(lambda: self.engine.ready(agent_id, self.now))  # noqa: B023
        self.engine.drain_events()

    @rule(
        queue=st.sampled_from(QUEUES),
        data_class=st.sampled_from(["general", "personal"]),
        priority=st.integers(0, 2),
        skills=st.sampled_from([{}, {}, {}, {"english": 60}, {"english": 80}, {"french": 50}]),
        caller=st.sampled_from(["+15550100", "+15550101", ""]),
    )
    def call_arrives(
        self, queue: str, data_class: str, priority: int, skills: dict[str, int], caller: str
    ) -> None:
        call = SimCall(f"c{next(self.ids)}", data_class, priority, skills, caller)
        self.calls[call.id] = call
        self._join(call, queue)

    def _join(self, call: SimCall, queue: str) -> None:
        self._enter(call, queue)
        self._step(
            lambda: self.engine.join(
                call.id,
                queue,
                self.now,
                priority=call.priority,
                skills=call.skills,
                data_class=call.data_class,
                caller=call.caller,
            )
        )

    @precondition(
        lambda self: any(c.where in ("waiting", "connected", "ivr") for c in self.calls.values())
    )
    @rule(
        i=st.integers(0, 99),
        what=st.sampled_from(
            ["hang_up", "hang_up", "agent_hangs_up", "transfer", "key", "callback", "back"]
        ),
        key=st.sampled_from(["0", "1", "5"]),
        queue=st.sampled_from(QUEUES),
    )
    def caller_acts(self, i: int, what: str, key: str, queue: str) -> None:
        """A caller hangs up (waiting, rung or connected; or the agent does), is transferred
        away, presses a key, asks for a callback, or comes back from the IVR to a queue."""
        wanted = {
            "hang_up": ("waiting", "connected", "ivr"),
            "agent_hangs_up": ("connected",),
            "transfer": ("connected",),
            "key": ("waiting",),
            "callback": ("waiting",),
            "back": ("ivr",),
        }[what]
        ids = [c.id for c in self.calls.values() if c.where in wanted]
        if not ids:
            return
        call = self.calls[_pick(ids, i)]
        if what == "hang_up":
            self._hang_up(call, "caller")
        elif what == "agent_hangs_up":
            self._hang_up(call, "agent")
        elif what == "transfer":
            assert call.agent is not None
            del self.talking[call.agent]
            call.where, call.agent = "gone", None
            self._step(lambda: self.engine.transferred(call.id, "sip:2000@switch", self.now))
        elif what == "key":
            self._step(lambda: self.engine.key_pressed(call.id, key, self.now))
        elif what == "callback":
            before = self._fingerprint()
            try:
                self.engine.request_callback(call.id, "+15550199", self.now)
            except AcdError:
                assert self._fingerprint() == before
            else:
                call.callback = "+15550199"
            self._check_events([])
        else:
            self._join(call, queue)

    def _hang_up(self, call: SimCall, by: str) -> None:
        if call.where == "waiting":
            call.where = "callback" if call.callback else "gone"
            by = "caller"
        elif call.where == "connected":
            assert call.agent is not None
            del self.talking[call.agent]
            call.where, call.agent = "gone", None
        else:
            call.where = "gone"  # in the IVR: the ACD knows nothing of it
        commands = self._step(lambda: self.engine.call_gone(call.id, self.now, by=by))
        if call.where == "gone":
            assert not any(isinstance(c, Offer) and c.call_id == call.id for c in commands)

    @precondition(lambda self: bool(self.rings) or bool(self.past_rings))
    @rule(
        i=st.integers(0, 99),
        what=st.sampled_from(["answer", "answer", "answer", "miss", "ringing", "late"]),
        why=st.sampled_from(["timeout", "busy", "rejected"]),
        late_answer=st.booleans(),
    )
    def phone_reports(self, i: int, what: str, why: str, late_answer: bool) -> None:
        """A rung agent's phone reports: ringing, answered, or missed (no answer in time,
        busy, rejected); or a late report about an offer that is already over."""
        if what == "late" or not self.rings:
            self._late_report(i, late_answer)
            return
        agent_id = _pick(self.rings, i)
        if what == "answer":
            self._answer(agent_id)
        elif what == "ringing":
            commands = self._step(
                lambda: self.engine.ringing(self.rings[agent_id], agent_id, self.now)
            )
            assert commands == []
        else:
            call_id = self.rings.pop(agent_id)
            self.past_rings.add((agent_id, call_id))
            self._step(lambda: self.engine.missed(call_id, agent_id, self.now, why=why))

    def _answer(self, agent_id: str) -> None:
        call = self.calls[self.rings.pop(agent_id)]
        assert call.where in ("waiting", "callback")
        assert call.id not in self.talking.values(), f"{call.id} answered by a second agent"
        if call.where == "callback":  # the caller is off the line: the switch calls back
            assert (
                self.numbers[agent_id] == call.callback
            ), f"{agent_id} answered {call.id} for a caller who hung up, without the number"
        self.talking[agent_id] = call.id
        call.where, call.agent, call.callback = "connected", agent_id, None
        self._step(lambda: self.engine.answered(call.id, agent_id, self.now))
        assert self.engine.connected_agent(call.id) == agent_id

    def _late_report(self, i: int, answer: bool) -> None:
        """A report about an offer that is over (a late 200 or 408) changes nothing."""
        stale = sorted(self.past_rings - set(self.rings.items()))
        if not stale:
            return
        agent_id, call_id = stale[i % len(stale)]
        before = self._fingerprint()
        if answer:
            commands = self._step(lambda: self.engine.answered(call_id, agent_id, self.now))
        else:
            commands = self._step(lambda: self.engine.missed(call_id, agent_id, self.now))
        assert commands == [] and self._fingerprint() == before

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0]))
    def time_passes(self, dt: float) -> None:
        """The switch's clock moves on, firing every deadline of the engine on time."""
        target = self.now + dt
        while (deadline := self.engine.next_deadline()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            self._step(lambda: self.engine.handle_timer(self.now))
        self.now = target
        self._step(lambda: self.engine.handle_timer(self.now))

    @rule(
        i=st.integers(0, 99),
        action=st.sampled_from(
            [
                "login",
                "ready",
                "ready",
                "not_ready",
                "supervisor",
                "bad_reason",
                "logout",
                "unreachable",
                "reachable",
                "end_wrap_up",
                "bad_code",
            ]
        ),
        reason=st.sampled_from(["break", "lunch"]),
        unknown=st.sampled_from([False] * 9 + [True]),
    )
    def agent_acts(self, i: int, action: str, reason: str, unknown: bool) -> None:
        """An agent (one configured, one removed but still on a call or in wrap-up, now and
        then one the engine does not know) asks for a state change, or the agent's phone
        is unreachable."""
        acd = self.engine
        known = sorted(set(self.config.agents) | set(acd.agent_ids()))
        absent = sorted(set(AGENTS) - set(known))
        # a third of the requests come from agents in a call or its wrap-up: the requests
        # kept pending are where agents get stuck
        busy = [a for a in acd.agent_ids() if acd.agent(a).state in WITH_CALL | {S.WRAP_UP}]
        pool = busy if busy and i % 3 == 0 else known
        agent_id = _pick(absent if (unknown and absent) or not pool else pool, i // 3)
        calls: dict[str, Callable[[], list[Command]]] = {
            "login": lambda: acd.login(agent_id, self.now),
            "ready": lambda: acd.ready(agent_id, self.now),
            "not_ready": lambda: acd.not_ready(agent_id, reason, self.now),
            "supervisor": lambda: acd.not_ready(agent_id, "supervisor", self.now, switch=True),
            "bad_reason": lambda: acd.not_ready(agent_id, "nap", self.now),
            "logout": lambda: acd.logout(agent_id, self.now),
            "unreachable": lambda: acd.unreachable(agent_id, self.now),
            "reachable": lambda: acd.reachable(agent_id, self.now),
            "end_wrap_up": lambda: acd.end_wrap_up(agent_id, self.now, CODES[0]),
            "bad_code": lambda: acd.end_wrap_up(agent_id, self.now, "bogus"),
        }
        before = self._fingerprint()
        try:
            self._step(calls[action])
        except AcdError:
            assert self._fingerprint() == before  # refused: nothing changed
            assert acd.drain_events() == []
        else:
            assert action != "bad_reason"
            assert action != "bad_code" or not self.config.codes
            assert agent_id in known

    @precondition(lambda self: self.reloads > 0)
    @rule(
        change=st.sampled_from(
            ["remove", "remove", "add", "location", "queues", "queue_rules", "swap"]
        ),
        i=st.integers(0, 99),
        data=st.data(),
    )
    def switch_reloads(self, change: str, i: int, data: st.DataObject) -> None:
        """The administrator changes the configuration and the switch reloads it: an agent
        added or removed, moved home or onsite, given other queues; a queue's rules; or a
        wholly new configuration."""
        agents = dict(self.config.agents)
        queues = dict(self.config.queues)
        agent_id = _pick(AGENTS, i)
        if change == "remove":  # mostly one in the middle of a call or its wrap-up
            machines = [self.engine.agent(a) for a in agents]
            busy = [m.id for m in machines if m.state in WITH_CALL | {S.WRAP_UP}]
            agent_id = _pick(busy if busy and i % 4 else AGENTS, i)
        if change == "add" or (change != "remove" and agent_id not in agents):
            agents[agent_id] = data.draw(agent_configs(agent_id))
        elif change == "remove":
            agents.pop(agent_id, None)
        elif change == "location":
            ac = agents[agent_id]
            other = "home" if ac.location == "onsite" else "onsite"
            agents[agent_id] = replace(ac, location=other)
        elif change == "queues":
            queues_of = data.draw(st.dictionaries(st.sampled_from(QUEUES), st.integers(0, 2)))
            agents[agent_id] = replace(agents[agent_id], queues=queues_of)
        elif change == "queue_rules":
            name = _pick(QUEUES, i)
            queues[name] = data.draw(queue_configs(name))
        else:
            config = data.draw(acd_configs())
            agents, queues = dict(config.agents), dict(config.queues)
        self.reloads -= 1
        self.config = AcdConfig(queues=queues, agents=agents, codes=self.config.codes)
        self._step(lambda: self.engine.reload(self.config, self.now))

    # -- the invariants ------------------------------------------------------------------------

    def _fingerprint(self) -> object:
        acd = self.engine
        agents = {
            a: (r.machine.state, r.machine.call, r.machine.pending, r.machine.reason)
            for a, r in acd._agents.items()
        }
        entries = {c: (e.queue, dict(e.offered), e.callback) for c, e in acd._entries.items()}
        connected = {c: conn.agent for c, conn in acd._connected.items()}
        return agents, entries, connected

    @invariant()
    def tables_agree(self) -> None:
        if self.acd is None:
            return
        acd = self.engine
        # the switch and the engine agree on who rings for what and who talks to whom
        offered = {(a, c) for c, e in acd._entries.items() for a in e.offered}
        assert offered == set(self.rings.items())
        connected = {conn.agent: c for c, conn in acd._connected.items()}
        assert connected == self.talking
        assert len(set(connected.values())) == len(connected)  # no call with two agents
        assert not set(acd._entries) & set(acd._connected)
        # every agent's state names exactly the call the tables give it
        for agent_id, run in acd._agents.items():
            m = run.machine
            if m.state in (S.RESERVED, S.RINGING):
                entry = acd._entries.get(m.call or "")
                assert entry is not None and agent_id in entry.offered, (agent_id, m.call)
            elif m.state is S.ON_CALL:
                assert connected.get(agent_id) == m.call, (agent_id, m.call)
            else:
                assert m.call is None
                assert m.pending is None or m.state is S.WRAP_UP, (agent_id, m.pending)
            if agent_id not in self.config.agents:  # removed: out once the call is over
                assert m.state in WITH_CALL | {S.WRAP_UP}, (agent_id, m.state)
                assert m.pending == (AgentEvent.LOGOUT, None), (agent_id, m.pending)
        assert set(self.config.agents) <= set(acd._agents)
        by_user = {u: sorted(agents) for u, agents in acd._by_user.items() if agents}
        users: dict[str, list[str]] = {}
        for agent_id, run in sorted(acd._agents.items()):
            users.setdefault(run.config.user, []).append(agent_id)
        assert by_user == users
        # queues: their waiting lists are the entries, in priority then arrival order
        waiting = [e for q in acd._queues.values() for e in q.waiting]
        assert len(waiting) == len(acd._entries)
        for q in acd._queues.values():
            assert [e.key for e in q.waiting] == sorted(e.key for e in q.waiting)
            for entry in q.waiting:
                assert acd._entries.get(entry.call_id) is entry and entry.queue == q.config.name
            members = {
                a: ac.queues[q.config.name]
                for a, ac in self.config.agents.items()
                if q.config.name in ac.queues
            }
            assert q.members == members
            assert q.ready == {a for a in q.members if acd._agents[a].machine.state is S.READY}
            # the penalty tiers hold exactly the ready members, each in its own penalty's
            assert {(a, p) for p, tier in q.tiers.items() for a in tier} == {
                (a, q.members[a]) for a in q.ready
            }
        # the switch's record of every call agrees with the engine
        for call in self.calls.values():
            entry = acd.entry(call.id)
            if call.where in ("waiting", "callback"):
                assert entry is not None, (call.id, call.where)
                assert (entry.queue, entry.data_class, entry.priority, entry.joined) == (
                    call.queue,
                    call.data_class,
                    call.priority,
                    call.joined,
                )
                assert entry.callback == call.callback
            else:
                assert entry is None, (call.id, call.where)
            if call.where == "connected":
                assert acd.connected_agent(call.id) == call.agent
            else:
                assert acd.connected_agent(call.id) is None
            if call.where in ("gone", "ivr"):  # hung up or left: holds no agent
                assert all(r.machine.call != call.id for r in acd._agents.values())
        deadline = acd.next_deadline()
        assert deadline is None or deadline > self.now

    def teardown(self) -> None:
        if self.acd is None:
            return
        acd = self.engine
        # every caller on the line hangs up
        for call in list(self.calls.values()):
            if call.where in ("waiting", "connected"):
                self._hang_up(call, "caller")
        for call in self.calls.values():
            assert call.where in ("callback", "gone", "ivr")
        # time passes until nothing is left to happen; the phones' reports are lost from now
        # on, so only the engine's own ring timeout frees the agents rung for callbacks
        for _ in range(2000):
            if self.talking:
                self._hang_up(self.calls[self.talking[sorted(self.talking)[0]]], "agent")
            elif (deadline := acd.next_deadline()) is not None:
                self.now = max(self.now, deadline)
                self._step(lambda: acd.handle_timer(self.now))
            else:
                break
            self.tables_agree()
        assert acd.next_deadline() is None, "the timers never drain"
        self.now += 1e6
        self._step(lambda: acd.handle_timer(self.now))
        assert acd.next_deadline() is None
        for agent_id, run in acd._agents.items():
            m = run.machine
            assert m.state in (S.READY, S.NOT_READY, S.LOGGED_OUT), (agent_id, m.state)
            assert m.call is None and m.pending is None, (agent_id, m.call, m.pending)
        assert set(acd._agents) == set(self.config.agents)  # removed agents are gone
        assert not acd._connected and not self.rings and not self.talking
        for entry in acd._entries.values():
            assert entry.callback is not None, f"{entry.call_id} left waiting in {entry.queue}"
            assert not entry.offered
        self.tables_agree()


AcdMachine.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=50,
    deadline=None,
    # no explain phase: its line tracing is slow on Python 3.11, the steps are printed anyway
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
TestAcdInterleavings = AcdMachine.TestCase
# a green run takes seconds; a red one is given the time to shrink to a readable sequence
TestAcdInterleavings = pytest.mark.timeout(900)(TestAcdInterleavings)
