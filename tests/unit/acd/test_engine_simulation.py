"""The queue engine on a fake clock: every strategy, penalties, priorities, skill relaxation,
wrap-up, misses and retries, the engine's own ring timeout, unreachable phones, queue limits
and overflows, join and stay rules, exit and callback keys, the wait estimate, the live
figures, the queue log, and configuration reloads.

Each test drives :class:`~softswitch.acd.engine.Acd` the way the switch does (deadlines fired
on time through ``handle_timer``) and checks the commands returned, the agents' states and
the queue events against values worked out by hand from the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from softswitch.acd.agent import AgentEvent, AgentState
from softswitch.acd.engine import CALLBACK_TTL, Acd, AcdError, Command, Exit, Moved, Offer, Withdraw
from softswitch.acd.events import QueueEvent, QueueEventKind
from softswitch.acd.model import (
    AcdConfig,
    AgentConfig,
    ExitAction,
    QueueConfig,
    Relaxation,
    Strategy,
)

S, K = AgentState, QueueEventKind
T0 = 1_700_000_000.0  # the queue log's clock is wall-clock Unix seconds


def agent(
    agent_id: str, queues: Mapping[str, int] | None = None, **settings: object
) -> AgentConfig:
    """An agent in ``sales`` (penalty 0) unless told otherwise."""
    return AgentConfig(
        agent_id,
        agent_id.upper(),
        f"user-{agent_id}",
        queues=queues if queues is not None else {"sales": 0},
        **settings,  # type: ignore[arg-type]
    )


class Center:
    """An :class:`Acd` on a fake clock, run the way the switch runs it; keeps the queue log."""

    def __init__(
        self,
        *agents: AgentConfig,
        queues: Iterable[QueueConfig] = (),
        codes: tuple[str, ...] = (),
        draw: Callable[[int], int] | None = None,
    ) -> None:
        self.now = T0
        self.config = AcdConfig(
            queues={q.name: q for q in queues}, agents={a.id: a for a in agents}, codes=codes
        )
        self.acd = Acd(self.config, now=T0, draw=draw)
        self.log: list[QueueEvent] = []

    def at(self, t: float) -> float:
        """Move the clock to ``t`` seconds after the start, firing the deadlines on the way,
        which must not do anything (a test expecting a timer's effect uses :meth:`run_to`)."""
        assert T0 + t >= self.now
        out = self.run_to(t)
        assert out == [], f"a deadline before {t} did {out}"
        return self.now

    def run_to(self, t: float) -> list[Command]:
        """Let the clock run to ``t``, firing every deadline on time; the commands."""
        out: list[Command] = []
        while (deadline := self.acd.next_deadline()) is not None and deadline <= T0 + t:
            self.now = max(self.now, deadline)
            out += self.acd.handle_timer(self.now)
        self.now = T0 + t
        return out

    def ready(self, t: float, *agent_ids: str) -> list[Command]:
        out: list[Command] = []
        for agent_id in agent_ids:
            out += self.acd.login(agent_id, self.at(t))
            out += self.acd.ready(agent_id, self.now)
        return out

    def join(self, t: float, call_id: str, queue: str = "sales", **kw: object) -> list[Command]:
        return self.acd.join(call_id, queue, self.at(t), **kw)  # type: ignore[arg-type]

    def answer(self, t: float, call_id: str, agent_id: str) -> list[Command]:
        out = self.acd.answered(call_id, agent_id, self.at(t))
        assert self.acd.connected_agent(call_id) == agent_id
        return out

    def hang_up(self, t: float, call_id: str, by: str = "caller") -> list[Command]:
        return self.acd.call_gone(call_id, self.at(t), by=by)

    def state(self, agent_id: str) -> AgentState:
        return self.acd.agent(agent_id).state

    def events(self, *kinds: QueueEventKind) -> list[QueueEvent]:
        self.log += self.acd.drain_events()
        return [e for e in self.log if not kinds or e.kind in kinds]


def offer(call: str, *agents: str, queue: str = "sales", ring: float = 15.0) -> Offer:
    return Offer(call, queue, agents, ring)


def sales(**rules: object) -> QueueConfig:
    return QueueConfig("sales", **rules)  # type: ignore[arg-type]


# -- strategies ------------------------------------------------------------------------------


def test_ring_all_rings_every_eligible_ready_agent_in_member_order_and_the_first_answer_wins() -> (
    None
):
    c = Center(
        agent("a1"),
        agent("a2"),
        agent("a3"),
        agent("a4", outbound_only=True),
        agent("a5", location="home"),
        queues=[sales(strategy=Strategy.RING_ALL)],
    )
    c.ready(0, "a2")
    c.ready(1, "a1", "a4", "a5")
    c.acd.login("a3", c.now)  # logged in, not ready
    assert c.join(2, "c1", data_class="personal") == [offer("c1", "a1", "a2")]
    assert c.state("a1") is S.RESERVED and c.state("a2") is S.RESERVED
    # the first answer takes the call; the other ring is withdrawn and that agent is free
    assert c.answer(3, "c1", "a2") == [Withdraw("c1", "a1")]
    assert (c.state("a1"), c.state("a2")) == (S.READY, S.ON_CALL)
    assert c.acd.answered("c1", "a1", c.at(3.5)) == []  # a late answer changes nothing
    assert c.state("a1") is S.READY and c.acd.connected_agent("c1") == "a2"
    assert c.join(4, "c2") == [offer("c2", "a1", "a5")]  # a general call: home is fine


def test_ring_all_and_a_caller_who_hangs_up_while_rung_withdraws_every_ring() -> None:
    c = Center(agent("a1"), agent("a2"), queues=[sales(strategy=Strategy.RING_ALL)])
    c.ready(0, "a1", "a2")
    assert c.join(1, "c1") == [offer("c1", "a1", "a2")]
    assert c.hang_up(4, "c1") == [Withdraw("c1", "a1"), Withdraw("c1", "a2")]
    assert c.state("a1") is S.READY and c.state("a2") is S.READY
    assert c.acd.entry("c1") is None
    (abandoned,) = c.events(K.ABANDONED)
    assert dict(abandoned.details) == {"position": 1, "original_position": 1, "wait": 3.0}


def test_longest_idle_offers_the_agent_whose_last_call_ended_first() -> None:
    c = Center(agent("a1"), agent("a2"), agent("a3"), queues=[sales()])
    c.ready(0, "a1")
    c.ready(1, "a2")
    c.ready(2, "a3")
    assert c.join(10, "c1") == [offer("c1", "a1")]  # idle since the login at 0
    c.answer(11, "c1", "a1")
    assert c.join(12, "c2") == [offer("c2", "a2")]
    c.answer(13, "c2", "a2")
    assert c.join(14, "c3") == [offer("c3", "a3")]
    c.answer(15, "c3", "a3")
    c.hang_up(20, "c3")  # a3 idle since 20
    c.hang_up(25, "c2")  # a2 since 25
    c.hang_up(30, "c1")  # a1 since 30
    assert c.join(40, "c4") == [offer("c4", "a3")]
    c.answer(41, "c4", "a3")
    assert c.join(42, "c5") == [offer("c5", "a2")]


def test_round_robin_continues_after_the_last_agent_offered_across_calls() -> None:
    c = Center(agent("a1"), agent("a2"), agent("a3"), queues=[sales(strategy=Strategy.ROUND_ROBIN)])
    c.ready(0, "a1", "a2", "a3")
    assert c.join(1, "c1") == [offer("c1", "a1")]
    c.answer(2, "c1", "a1")
    assert c.join(3, "c2") == [offer("c2", "a2")]
    c.answer(4, "c2", "a2")
    c.hang_up(5, "c1")  # a1 is ready again, but a3 is next after a2
    assert c.join(6, "c3") == [offer("c3", "a3")]
    c.answer(7, "c3", "a3")
    c.hang_up(8, "c2")  # a1 and a2 ready: after a3 the turn wraps to a1
    assert c.join(9, "c4") == [offer("c4", "a1")]


def test_fewest_calls_prefers_the_agent_with_fewer_answered_calls_over_the_longest_idle() -> None:
    c = Center(
        agent("a1"), agent("a2"), agent("a3"), queues=[sales(strategy=Strategy.FEWEST_CALLS)]
    )
    c.ready(0, "a1")
    for n, t in ((1, 1.0), (2, 4.0)):
        assert c.join(t, f"c{n}") == [offer(f"c{n}", "a1")]
        c.answer(t + 1, f"c{n}", "a1")
        c.hang_up(t + 2, f"c{n}")
    # a1 answered two calls and is idle longest (since 6); a2 and a3 none
    c.ready(40, "a2")
    c.ready(41, "a3")
    assert c.join(50, "c3") == [offer("c3", "a2")]  # no calls, then the longer idle
    c.answer(51, "c3", "a2")
    c.hang_up(52, "c3")
    assert c.join(53, "c4") == [offer("c4", "a3")]  # still none
    c.answer(54, "c4", "a3")
    c.hang_up(55, "c4")
    assert c.join(56, "c5") == [offer("c5", "a2")]  # one each for a2 and a3; a2 idle longer


def test_linear_always_offers_the_first_ready_agent_in_member_order() -> None:
    c = Center(agent("a1"), agent("a2"), queues=[sales(strategy=Strategy.LINEAR)])
    c.ready(0, "a2")
    c.ready(1, "a1")
    assert c.join(2, "c1") == [offer("c1", "a1")]
    c.answer(3, "c1", "a1")
    c.hang_up(4, "c1")
    assert c.join(5, "c2") == [offer("c2", "a1")]  # again, though a2 was idle longer
    c.answer(6, "c2", "a1")
    assert c.join(7, "c3") == [offer("c3", "a2")]


def test_random_picks_with_the_injected_draw_among_the_ready_agents_in_member_order() -> None:
    picks = iter([2, 0])
    asked: list[int] = []

    def draw(n: int) -> int:
        asked.append(n)
        return next(picks)

    c = Center(
        agent("a1"),
        agent("a2"),
        agent("a3"),
        queues=[sales(strategy=Strategy.RANDOM)],
        draw=draw,
    )
    c.ready(0, "a3", "a1", "a2")
    assert c.join(1, "c1") == [offer("c1", "a3")]
    c.answer(2, "c1", "a3")
    assert c.join(3, "c2") == [offer("c2", "a1")]
    assert asked == [3, 2]


def test_skills_offers_the_best_coverage_of_the_required_skills() -> None:
    c = Center(
        agent("a1", skills={"english": 60}),
        agent("a2", skills={"english": 90}),
        agent("a3", skills={"english": 70}),
        agent("a4", skills={"english": 40}),
        agent("a5", skills={"english": 100}),
        queues=[sales(strategy=Strategy.SKILLS)],
    )
    c.ready(0, "a1", "a2", "a3", "a4")
    c.acd.login("a5", c.now)  # the best, but not ready
    assert c.join(1, "c1", skills={"english": 50}) == [offer("c1", "a2")]
    c.answer(2, "c1", "a2")
    assert c.join(3, "c2", skills={"english": 50}) == [offer("c2", "a3")]
    assert c.join(4, "c3", skills={"french": 30}) == []  # nobody speaks french
    assert c.join(5, "c4", skills={"english": 65}) == []  # a3 rung, a1 and a4 too weak
    assert [e.call_id for e in c.acd.waiting("sales")] == ["c2", "c3", "c4"]


# -- penalties and priorities ----------------------------------------------------------------


def test_a_lower_penalty_tier_is_offered_first_and_a_higher_only_when_none_of_it_is_ready() -> None:
    c = Center(
        agent("a1", {"sales": 1}),
        agent("a2", {"sales": 0}),
        queues=[sales(strategy=Strategy.LINEAR)],
    )
    c.ready(0, "a1", "a2")
    assert c.join(1, "c1") == [offer("c1", "a2")]  # first in member order is a1: penalty wins
    c.answer(2, "c1", "a2")
    assert c.join(3, "c2") == [offer("c2", "a1")]  # a2 on a call
    c.answer(4, "c2", "a1")
    c.hang_up(5, "c2")
    c.hang_up(6, "c1")
    assert c.join(7, "c3") == [offer("c3", "a2")]
    c.answer(8, "c3", "a2")
    c.hang_up(9, "c3")
    c.acd.not_ready("a2", "break", c.at(10))
    assert c.join(11, "c4") == [offer("c4", "a1")]


def test_ring_all_rings_only_the_lowest_penalty_tier_ready() -> None:
    c = Center(
        agent("a1", {"sales": 1}),
        agent("a2", {"sales": 0}),
        agent("a3", {"sales": 0}),
        queues=[sales(strategy=Strategy.RING_ALL)],
    )
    c.ready(0, "a1", "a2", "a3")
    assert c.join(1, "c1") == [offer("c1", "a2", "a3")]


def test_higher_priority_callers_are_served_first_and_first_come_first_served_within() -> None:
    c = Center(agent("a1"), queues=[sales()])
    c.join(1, "c1", priority=0)
    c.join(2, "c2", priority=1)
    c.join(3, "c3", priority=0)
    c.join(4, "c4", priority=1)
    assert [e.call_id for e in c.acd.waiting("sales")] == ["c2", "c4", "c1", "c3"]
    entered = {e.call_id: e.details["position"] for e in c.events(K.ENTERED)}
    assert entered == {"c1": 1, "c2": 1, "c3": 3, "c4": 2}
    assert c.ready(10, "a1") == [offer("c2", "a1")]
    served = []
    for t in range(11, 30, 3):
        call = c.acd.call_of_agent("a1")
        if call is None:
            break
        served.append(call)
        c.answer(t, call, "a1")
        c.hang_up(t + 1, call)
    assert served == ["c2", "c4", "c1", "c3"]


# -- skill relaxation -----------------------------------------------------------------------


def test_a_required_skill_is_relaxed_after_the_configured_wait() -> None:
    c = Center(
        agent("a1", skills={"english": 60}),
        agent("a2", skills={}),
        agent("a3", skills={"english": 80}),
        queues=[sales(relax=(Relaxation(60.0, 80), Relaxation(30.0, 20)))],
    )
    c.ready(0, "a1", "a2")
    assert c.join(0, "c1", skills={"english": 80}) == []
    assert c.run_to(29.9) == []
    assert c.run_to(30) == [offer("c1", "a1")]  # 80 - 20: a 60 now fits; a2 still does not
    c.answer(31, "c1", "a1")
    # an agent at the level needed is offered a new call at once
    c.ready(31, "a3")
    assert c.join(32, "c2", skills={"english": 80}) == [offer("c2", "a3")]
    c.answer(33, "c2", "a3")
    # after the second step english is no longer required at all
    assert c.join(33, "c3", skills={"english": 80}) == []
    assert c.run_to(92.9) == []  # the first step (at 63) is not enough for a2
    assert c.run_to(93) == [offer("c3", "a2")]


# -- wrap-up ---------------------------------------------------------------------------------


def test_the_queue_wrap_up_wins_over_the_agent_own_and_ends_by_timer() -> None:
    c = Center(agent("a1", wrap_up=5.0), queues=[sales(wrap_up=30.0)])
    c.ready(0, "a1")
    c.join(1, "c1")
    c.answer(2, "c1", "a1")
    assert c.hang_up(10, "c1") == []
    assert c.state("a1") is S.WRAP_UP and c.acd.agent("a1").wrap_up_until == T0 + 40
    assert c.join(12, "c2") == []  # not offered during wrap-up
    assert c.run_to(39.9) == []
    assert c.run_to(40) == [offer("c2", "a1")]
    (wrap,) = c.events(K.WRAP_UP)
    assert (wrap.agent, wrap.call_id, dict(wrap.details)) == ("a1", "c1", {"code": ""})


def test_the_agent_own_wrap_up_applies_when_the_queue_has_none() -> None:
    c = Center(agent("a1", wrap_up=5.0), queues=[sales()])
    c.ready(0, "a1")
    c.join(1, "c1")
    c.answer(2, "c1", "a1")
    c.hang_up(10, "c1", by="agent")
    assert c.acd.agent("a1").wrap_up_until == T0 + 15
    c.run_to(14.9)
    assert c.state("a1") is S.WRAP_UP
    c.run_to(15)
    assert c.state("a1") is S.READY


def test_wrap_up_ended_early_with_a_code_and_an_unknown_code_refused() -> None:
    c = Center(agent("a1", wrap_up=60.0), queues=[sales()], codes=("sale", "no_sale"))
    c.ready(0, "a1")
    c.join(1, "c1")
    c.answer(2, "c1", "a1")
    c.hang_up(10, "c1")
    with pytest.raises(AcdError, match="unknown wrap-up code 'bogus'"):
        c.acd.end_wrap_up("a1", c.at(11), "bogus")
    assert c.state("a1") is S.WRAP_UP
    c.join(12, "c2")
    assert c.acd.end_wrap_up("a1", c.at(20), "sale") == [offer("c2", "a1")]
    assert c.acd.agent("a1").last_code == "sale"
    (wrap,) = c.events(K.WRAP_UP)
    assert dict(wrap.details) == {"code": "sale"} and wrap.call_id == "c1"
    with pytest.raises(AcdError, match="not in wrap-up"):
        c.acd.end_wrap_up("a1", c.at(21), "sale")
    c.answer(22, "c2", "a1")
    c.hang_up(30, "c2")  # wrap-up until 90
    assert c.run_to(89.9) == []  # the timer of c1's wrap-up (at 70) does not end this one
    assert c.state("a1") is S.WRAP_UP
    c.run_to(90)
    assert c.state("a1") is S.READY


# -- misses, retries, the engine's own ring timeout ------------------------------------------


def test_misses_in_a_row_make_the_agent_not_ready_with_reason_missed() -> None:
    c = Center(agent("a1", max_misses=2), queues=[sales(retry=5.0)])
    c.ready(0, "a1")
    assert c.join(0, "c1") == [offer("c1", "a1")]
    assert c.acd.missed("c1", "a1", c.at(3), why="rejected") == []
    assert c.state("a1") is S.READY and c.acd.agent("a1").misses == 1
    assert c.run_to(7.9) == []  # not offered the same call again within the retry delay
    assert c.run_to(8) == [offer("c1", "a1")]
    assert c.acd.missed("c1", "a1", c.at(10), why="timeout") == []
    assert c.state("a1") is S.NOT_READY and c.acd.agent("a1").reason == "missed"
    missed = [(e.agent, dict(e.details)) for e in c.events(K.MISSED)]
    assert missed == [
        ("a1", {"ring": 3.0, "why": "rejected"}),
        ("a1", {"ring": 2.0, "why": "timeout"}),
    ]
    assert [e.details["attempt"] for e in c.events(K.OFFERED)] == [1, 2]
    (not_ready,) = c.events(K.NOT_READY)[-1:]
    assert dict(not_ready.details) == {"reason": "missed"}
    assert c.acd.entry("c1") is not None  # the caller keeps waiting


def test_the_retry_delay_holds_only_the_missed_call_for_that_agent() -> None:
    c = Center(agent("a1"), agent("a2"), queues=[sales(retry=5.0, strategy=Strategy.LINEAR)])
    c.ready(0, "a1")
    c.join(1, "c1")
    assert c.acd.missed("c1", "a1", c.at(2), why="busy") == []
    assert c.join(3, "c2") == [offer("c2", "a1")]  # another call is offered at once
    c.acd.missed("c2", "a1", c.at(4))
    assert c.ready(5, "a2") == [offer("c1", "a2")]  # the first caller goes to another agent
    c.acd.missed("c1", "a2", c.at(6))
    assert c.run_to(7) == [offer("c1", "a1")]  # a1's delay for c1 is over at 2 + 5


def test_the_engine_withdraws_an_offer_nobody_reported_on() -> None:
    c = Center(agent("a1"), queues=[sales(ring_timeout=15.0, retry=5.0)])
    c.ready(0, "a1")
    c.join(0, "c1")
    c.acd.ringing("c1", "a1", c.at(1))
    assert c.state("a1") is S.RINGING
    assert c.run_to(19.9) == []
    assert c.run_to(20) == [Withdraw("c1", "a1")]  # 15 s of ring, 5 s of grace
    assert c.state("a1") is S.READY and c.acd.agent("a1").misses == 1
    (missed,) = c.events(K.MISSED)
    assert dict(missed.details) == {"ring": 20.0, "why": "no report"}
    assert c.acd.missed("c1", "a1", c.at(21)) == []  # the switch's late 408 changes nothing
    assert c.acd.agent("a1").misses == 1
    assert c.run_to(25) == [offer("c1", "a1")]


# -- unreachable phones ----------------------------------------------------------------------


def test_an_idle_agent_whose_phone_is_unreachable_goes_not_ready() -> None:
    c = Center(agent("a1"), queues=[sales()])
    c.ready(0, "a1")
    assert c.acd.unreachable("a1", c.at(5)) == []
    assert c.state("a1") is S.NOT_READY and c.acd.agent("a1").reason == "unreachable"
    assert dict(c.events(K.NOT_READY)[-1].details) == {"reason": "unreachable"}
    assert c.join(6, "c1") == []


def test_a_rung_agent_whose_phone_is_unreachable_is_withdrawn_and_the_call_goes_on() -> None:
    c = Center(agent("a1"), agent("a2"), queues=[sales(strategy=Strategy.LINEAR)])
    c.ready(0, "a1", "a2")
    assert c.join(1, "c1") == [offer("c1", "a1")]
    assert c.acd.unreachable("a1", c.at(3)) == [Withdraw("c1", "a1"), offer("c1", "a2")]
    assert c.state("a1") is S.NOT_READY and c.acd.agent("a1").reason == "unreachable"
    (missed,) = c.events(K.MISSED)
    assert (missed.agent, dict(missed.details)) == ("a1", {"ring": 2.0, "why": "unreachable"})


def test_a_call_survives_an_unreachable_phone_and_the_agent_goes_not_ready_after_it() -> None:
    c = Center(agent("a1"), queues=[sales()])
    c.ready(0, "a1")
    c.join(1, "c1")
    c.answer(2, "c1", "a1")
    assert c.acd.unreachable("a1", c.at(3)) == []
    assert c.state("a1") is S.ON_CALL and c.acd.connected_agent("c1") == "a1"
    c.join(4, "c2")
    assert c.hang_up(30, "c1") == []  # not offered c2: not ready after the call
    assert c.state("a1") is S.NOT_READY and c.acd.agent("a1").reason == "unreachable"


def test_a_phone_registered_again_during_the_call_keeps_the_agent_ready_after_it() -> None:
    """The phone was lost and came back (a new registration) during the call and its
    wrap-up: the not ready its loss left pending is dropped; an agent's own pending request
    is not."""
    c = Center(agent("a1", wrap_up=5), queues=[sales()])
    c.ready(0, "a1")
    c.join(1, "c1")
    c.answer(2, "c1", "a1")
    c.acd.unreachable("a1", c.at(3))
    assert c.acd.reachable("a1", c.at(4)) == []
    assert c.hang_up(10, "c1") == [] and c.state("a1") is S.WRAP_UP
    c.acd.unreachable("a1", c.at(11))  # lost again in wrap-up, and back
    c.acd.reachable("a1", c.at(12))
    c.run_to(16)
    assert c.state("a1") is S.READY
    assert c.join(17, "c2") == [offer("c2", "a1")]

    c.answer(18, "c2", "a1")
    c.acd.not_ready("a1", "break", c.at(19))  # the agent's own wish for after the call
    c.acd.reachable("a1", c.at(20))
    c.hang_up(25, "c2")
    c.run_to(31)
    assert c.state("a1") is S.NOT_READY and c.acd.agent("a1").reason == "break"
    assert c.acd.reachable("a1", c.at(32)) == []  # idle: nothing to drop, nothing changes
    assert c.state("a1") is S.NOT_READY


# -- queue limits and overflow ---------------------------------------------------------------


def test_a_full_queue_sends_the_next_caller_to_on_full() -> None:
    mailbox = ExitAction("voicemail", "mbox-7")
    c = Center(agent("a1"), queues=[sales(max_length=2, on_full=mailbox)])
    assert c.join(1, "c1") == [] and c.join(2, "c2") == []
    assert c.join(3, "c3") == [Exit("c3", "sales", "full", mailbox)]
    assert c.acd.entry("c3") is None and len(c.acd.waiting("sales")) == 2
    (full,) = c.events(K.EXIT_FULL)
    assert (full.call_id, dict(full.details)) == ("c3", {"max_length": 2, "action": "voicemail"})


def test_the_longest_wait_sends_the_caller_to_voicemail() -> None:
    mailbox = ExitAction("voicemail", "mbox-7")
    c = Center(agent("a1"), queues=[sales(max_wait=60.0, on_timeout=mailbox)])
    c.join(0, "c1")
    c.join(10, "c2")
    assert c.run_to(59.9) == []
    assert c.run_to(60) == [Exit("c1", "sales", "timeout", mailbox)]
    (timeout,) = c.events(K.EXIT_TIMEOUT)
    assert dict(timeout.details) == {
        "position": 1,
        "original_position": 1,
        "wait": 60.0,
        "action": "voicemail",
    }
    assert c.run_to(70) == [Exit("c2", "sales", "timeout", mailbox)]
    assert c.acd.waiting("sales") == []


def test_an_overflow_to_another_queue_keeps_the_personal_data_class() -> None:
    c = Center(
        agent("home1", {"overflow": 0}, location="home", skills={"english": 50}),
        agent("site1", {"overflow": 0}, skills={"english": 50}),
        queues=[
            sales(max_wait=30.0, on_timeout=ExitAction("queue", "overflow")),
            QueueConfig("overflow"),
        ],
    )
    c.ready(0, "home1")
    c.acd.login("site1", c.now)
    c.join(0, "c1", data_class="personal", priority=2, skills={"english": 10})
    # the overflow's only ready agent works from home: the personal call is not offered
    assert c.run_to(30) == [Moved("c1", "overflow")]
    entry = c.acd.entry("c1")
    assert entry is not None
    assert (entry.queue, entry.data_class, entry.priority, dict(entry.call_skills)) == (
        "overflow",
        "personal",
        2,
        {"english": 10},
    )
    assert (entry.arrived, entry.joined) == (T0, T0 + 30)
    assert c.join(31, "c2", "overflow") == [offer("c2", "home1", queue="overflow")]
    assert c.acd.ready("site1", c.at(32)) == [offer("c1", "site1", queue="overflow")]
    (timeout,) = c.events(K.EXIT_TIMEOUT)
    assert timeout.details["action"] == "queue"
    assert [(e.call_id, e.queue) for e in c.events(K.ENTERED)] == [
        ("c1", "sales"),
        ("c1", "overflow"),
        ("c2", "overflow"),
    ]


def test_an_overflow_loop_ends_after_a_bounded_number_of_moves() -> None:
    c = Center(
        queues=[
            sales(join_when="ready", on_empty=ExitAction("queue", "support")),
            QueueConfig("support", join_when="ready", on_empty=ExitAction("queue", "sales")),
        ]
    )
    out = c.join(0, "c1")
    assert all(isinstance(cmd, Moved) for cmd in out[:-1]) and len(out) == 9
    assert out[-1] == Exit("c1", "sales", "empty", ExitAction("hangup"))
    assert c.acd.entry("c1") is None


# -- join and stay rules ---------------------------------------------------------------------

JOIN_TABLE = {
    # agent state -> joins under always, logged_in, ready, available
    "logged_out": (True, False, False, False),
    "not_ready": (True, True, False, False),
    "ready": (True, True, True, True),
    "on_call": (True, True, False, True),
}


@pytest.mark.parametrize("state", sorted(JOIN_TABLE))
@pytest.mark.parametrize("rule", ["always", "logged_in", "ready", "available"])
def test_join_when_admits_a_caller_by_the_state_of_the_members(state: str, rule: str) -> None:
    empty = ExitAction("goto", "closed")
    c = Center(
        agent("a1", {"sales": 0, "other": 0}),
        queues=[sales(join_when=rule, on_empty=empty), QueueConfig("other")],
    )
    if state != "logged_out":
        c.acd.login("a1", c.at(0))
    if state in ("ready", "on_call"):
        c.acd.ready("a1", c.at(0))
    if state == "on_call":
        c.join(1, "c0", "other")
        c.answer(2, "c0", "a1")
    out = c.join(3, "c1")
    joins = JOIN_TABLE[state][["always", "logged_in", "ready", "available"].index(rule)]
    if joins:
        assert c.acd.entry("c1") is not None
        assert not any(isinstance(cmd, Exit) for cmd in out)
        assert [e.call_id for e in c.events(K.ENTERED)][-1] == "c1"
    else:
        assert out == [Exit("c1", "sales", "empty", empty)]
        assert c.acd.entry("c1") is None
        (exit_empty,) = c.events(K.EXIT_EMPTY)
        assert exit_empty.details["action"] == "goto"


def test_join_when_counts_only_members_who_may_take_the_call() -> None:
    c = Center(agent("a1", location="home"), queues=[sales(join_when="logged_in")])
    c.acd.login("a1", c.at(0))
    assert c.join(1, "c1", data_class="general") == []
    assert c.join(2, "c2", data_class="personal") == [
        Exit("c2", "sales", "empty", ExitAction("hangup"))
    ]


def test_stay_when_sends_the_waiting_callers_out_when_the_last_agent_leaves() -> None:
    mailbox = ExitAction("voicemail", "mbox-1")
    c = Center(
        agent("a1"),
        agent("a2"),
        queues=[sales(stay_when="logged_in", on_empty=mailbox)],
    )
    c.acd.login("a1", c.at(0))
    c.acd.login("a2", c.at(0))
    c.join(1, "c1")
    c.join(2, "c2")
    assert c.acd.logout("a1", c.at(5)) == []  # a2 is still logged in
    assert c.acd.logout("a2", c.at(10)) == [
        Exit("c1", "sales", "empty", mailbox),
        Exit("c2", "sales", "empty", mailbox),
    ]
    exits = [(e.call_id, dict(e.details)) for e in c.events(K.EXIT_EMPTY)]
    assert exits == [
        ("c1", {"position": 1, "original_position": 1, "wait": 9.0, "action": "voicemail"}),
        ("c2", {"position": 1, "original_position": 2, "wait": 8.0, "action": "voicemail"}),
    ]


# -- caller keys and callbacks ---------------------------------------------------------------


def test_the_exit_key_takes_the_caller_to_the_ivr_branch_and_withdraws_the_ring() -> None:
    c = Center(agent("a1"), queues=[sales(exit_key="0", exit_to="menu-2")])
    c.ready(0, "a1")
    c.join(1, "c1")
    assert c.acd.key_pressed("c1", "5", c.at(2)) == []  # not the exit key
    assert c.acd.key_pressed("c1", "0", c.at(4)) == [
        Withdraw("c1", "a1"),
        Exit("c1", "sales", "key", ExitAction("goto", "menu-2")),
    ]
    assert c.acd.entry("c1") is None and c.state("a1") is S.READY
    (key,) = c.events(K.EXIT_KEY)
    assert dict(key.details) == {"key": "0", "position": 1, "wait": 3.0}


def test_a_callback_keeps_the_place_and_the_offer_carries_the_number() -> None:
    c = Center(agent("a1"), queues=[sales(callback_key="1")])
    c.acd.login("a1", c.at(0))
    c.join(0, "c1", caller="+15550001")
    c.join(1, "c2", caller="+15550002")
    assert c.acd.key_pressed("c1", "1", c.at(5)) == [
        Exit("c1", "sales", "callback", ExitAction("callback"))
    ]
    (requested,) = c.events(K.CALLBACK_REQUESTED)
    assert dict(requested.details) == {"position": 1, "wait": 5.0, "number": "+15550001"}
    assert c.hang_up(6, "c1") == []  # the caller hangs up: the place is kept
    assert c.acd.position("c1") == 1 and c.events(K.ABANDONED) == []
    c.join(7, "c3", caller="+15550003")
    assert c.acd.position("c3") == 3  # later callers stay behind it
    assert c.acd.ready("a1", c.at(10)) == [
        Offer("c1", "sales", ("a1",), 15.0, callback="+15550001")
    ]
    c.answer(12, "c1", "a1")
    assert [e.call_id for e in c.acd.waiting("sales")] == ["c2", "c3"]


def test_no_callback_while_rung_nor_for_a_caller_without_a_number() -> None:
    c = Center(agent("a1"), queues=[sales(callback_key="1")])
    c.ready(0, "a1")
    c.join(1, "c1", caller="+15550001")  # offered to a1 at once
    assert c.acd.key_pressed("c1", "1", c.at(2)) == []
    with pytest.raises(AcdError, match="being offered"):
        c.acd.request_callback("c1", "+15550001", c.at(2))
    c.join(3, "c2", caller="")  # anonymous, waiting
    assert c.acd.key_pressed("c2", "1", c.at(4)) == []
    with pytest.raises(AcdError, match="needs a number"):
        c.acd.request_callback("c2", "", c.at(4))
    entry = c.acd.entry("c2")
    assert entry is not None and entry.callback is None
    # the caller hangs up: abandoned, as no callback was taken
    c.hang_up(5, "c2")
    assert [e.call_id for e in c.events(K.ABANDONED)] == ["c2"]


def test_a_caller_back_in_a_queue_at_the_same_instant_keeps_the_new_queue_rules() -> None:
    c = Center(
        queues=[
            sales(max_wait=30.0, exit_key="0", exit_to="menu", relax=(Relaxation(10.0, 50),)),
            QueueConfig("support"),
        ]
    )
    c.join(0, "c1", skills={"english": 60})
    c.acd.key_pressed("c1", "0", c.at(0))
    c.join(0, "c1", "support", skills={"english": 60})  # the IVR sends the caller on at once
    assert c.run_to(40) == []  # the sales maximum wait does not apply in support
    entry = c.acd.entry("c1")
    assert entry is not None and entry.queue == "support" and entry.relax == 0


# -- figures ---------------------------------------------------------------------------------


def test_the_estimated_wait_comes_from_the_answer_rate_of_the_last_ten_minutes() -> None:
    c = Center(agent("a1"), queues=[sales()])
    c.ready(0, "a1")
    for n, t in enumerate((100, 160, 220), start=1):
        c.join(t, f"c{n}")
        c.answer(t, f"c{n}", "a1")
        c.hang_up(t + 1, f"c{n}")
        if n == 1:
            c.acd.not_ready("a1", "break", c.now)
            c.join(t + 2, "probe")
            assert c.acd.estimated_wait("probe", c.now) is None  # one answer: too few
            c.hang_up(t + 3, "probe")
            c.acd.ready("a1", c.now)
    c.acd.not_ready("a1", "break", c.at(300))
    c.join(390, "c4")
    c.join(395, "c5")
    # three answers, the first 300 s ago: 0.01 a second; positions 1 and 2
    assert c.acd.estimated_wait("c4", c.at(400)) == pytest.approx(100.0)
    assert c.acd.estimated_wait("c5", c.now) == pytest.approx(200.0)
    assert c.acd.estimated_wait("nobody", c.now) is None  # not waiting
    # ten minutes after the second answer only one is left: no estimate
    assert c.acd.estimated_wait("c5", c.at(761)) is None


def test_answers_within_the_last_minute_count_as_a_minute_worth() -> None:
    c = Center(agent("a1"), queues=[sales()])
    c.ready(0, "a1")
    for n, t in enumerate((0, 10, 20), start=1):
        c.join(t, f"c{n}")
        c.answer(t, f"c{n}", "a1")
        c.hang_up(t + 1, f"c{n}")
    c.acd.not_ready("a1", "break", c.at(25))
    c.join(28, "c4")
    # three answers in 30 s: taken over 60 s, 0.05 a second, not 0.1
    assert c.acd.estimated_wait("c4", c.at(30)) == pytest.approx(20.0)


def _listed(value: object) -> list[dict[str, Any]]:
    assert isinstance(value, list)
    return value


def test_the_snapshot_gives_service_level_speed_of_answer_and_agent_states() -> None:
    c = Center(agent("a1"), agent("a2"), agent("a3"), queues=[sales(service_level=20.0)])
    c.acd.login("a1", c.at(0))
    c.acd.login("a3", c.now)
    c.join(0, "c1")
    c.acd.ready("a1", c.at(10))
    c.answer(10, "c1", "a1")  # waited 10 s: within the service level
    c.hang_up(15, "c1")
    c.acd.not_ready("a1", "break", c.at(16))
    c.join(20, "c2")
    c.acd.ready("a1", c.at(50))
    c.answer(50, "c2", "a1")  # waited 30 s
    c.join(60, "c3")
    c.hang_up(65, "c3")  # abandoned after 5 s
    snap = c.acd.snapshot(c.at(70))
    (q,) = _listed(snap["queues"])
    assert q["service_level"] == pytest.approx(1 / 3, abs=0.001)
    assert q["speed_of_answer"] == 20.0
    assert (q["entered"], q["answered"], q["abandoned"], q["waiting"]) == (3, 2, 1, 0)
    assert (q["members"], q["ready"]) == (3, 0)
    assert snap["agent_states"] == {
        "logged_out": 1,
        "ready": 0,
        "not_ready": 1,
        "reserved": 0,
        "ringing": 0,
        "on_call": 1,
        "wrap_up": 0,
    }
    views = {a["id"]: a for a in _listed(snap["agents"])}
    assert views["a1"]["call"] == "c2" and views["a1"]["answered"] == 2
    # an hour later the figures are of an empty hour
    (q,) = _listed(c.acd.snapshot(c.at(70 + 3600))["queues"])
    assert (q["service_level"], q["speed_of_answer"]) == (None, None)


# -- the queue log ---------------------------------------------------------------------------


def test_the_queue_log_of_a_working_day() -> None:
    c = Center(agent("a1"), agent("a2", wrap_up=60.0), queues=[sales(strategy=Strategy.LINEAR)])
    acd = c.acd
    acd.login("a1", c.at(0))
    acd.ready("a1", c.at(1))
    acd.not_ready("a1", "break", c.at(2))
    c.join(3, "c1", priority=1, caller="+15550001")
    acd.ready("a1", c.at(5))  # offered c1
    acd.missed("c1", "a1", c.at(8), why="busy")
    c.ready(9, "a2")  # offered c1
    c.answer(12, "c1", "a2")
    c.hang_up(72, "c1")  # the caller hangs up
    acd.end_wrap_up("a2", c.at(75), "sale")
    c.join(80, "c2", caller="+15550002")  # to a1 (first in member order)
    c.answer(81, "c2", "a1")
    c.hang_up(91, "c2", by="agent")
    acd.logout("a1", c.at(95))
    acd.not_ready("a2", "lunch", c.at(96))
    c.join(100, "c3", data_class="personal")
    c.hang_up(130, "c3")
    got = [(e.time - T0, e.kind.value, e.call_id, e.agent, dict(e.details)) for e in c.events()]
    assert got == [
        (0, "login", None, "a1", {}),
        (1, "ready", None, "a1", {}),
        (2, "not_ready", None, "a1", {"reason": "break"}),
        (
            3,
            "entered",
            "c1",
            None,
            {"position": 1, "priority": 1, "data_class": "general", "caller": "+15550001"},
        ),
        (5, "ready", None, "a1", {}),
        (5, "offered", "c1", "a1", {"attempt": 1}),
        (8, "missed", "c1", "a1", {"ring": 3.0, "why": "busy"}),
        (9, "login", None, "a2", {}),
        (9, "ready", None, "a2", {}),
        (9, "offered", "c1", "a2", {"attempt": 2}),
        (12, "connected", "c1", "a2", {"wait": 9.0, "ring": 3.0, "position": 1}),
        (72, "completed_caller", "c1", "a2", {"wait": 9.0, "talk": 60.0, "position": 1}),
        (75, "wrap_up", "c1", "a2", {"code": "sale"}),
        (75, "ready", None, "a2", {}),
        (
            80,
            "entered",
            "c2",
            None,
            {"position": 1, "priority": 0, "data_class": "general", "caller": "+15550002"},
        ),
        (80, "offered", "c2", "a1", {"attempt": 1}),
        (81, "connected", "c2", "a1", {"wait": 1.0, "ring": 1.0, "position": 1}),
        (91, "completed_agent", "c2", "a1", {"wait": 1.0, "talk": 10.0, "position": 1}),
        (95, "logout", None, "a1", {"session": 95.0}),
        (96, "not_ready", None, "a2", {"reason": "lunch"}),
        (
            100,
            "entered",
            "c3",
            None,
            {"position": 1, "priority": 0, "data_class": "personal", "caller": ""},
        ),
        (130, "abandoned", "c3", None, {"position": 1, "original_position": 1, "wait": 30.0}),
    ]
    assert {e.queue for e in c.events() if e.call_id} == {"sales"}


def test_not_ready_reasons_come_from_the_configured_list() -> None:
    c = Center(agent("a1"), queues=[sales()])
    c.acd.login("a1", c.at(0))
    with pytest.raises(AcdError, match="unknown reason 'nap'"):
        c.acd.not_ready("a1", "nap", c.now)
    with pytest.raises(AcdError):
        c.acd.not_ready("a1", "supervisor", c.now)  # the switch's own reason
    c.acd.not_ready("a1", "supervisor", c.now, switch=True)
    assert c.acd.agent("a1").reason == "supervisor"
    with pytest.raises(AcdError, match="no agent 'a9'"):
        c.acd.ready("a9", c.now)


# -- reloads ---------------------------------------------------------------------------------


def test_a_reload_adds_agents_logged_out_and_logs_removed_ones_out() -> None:
    c = Center(agent("a1"), agent("a2"), queues=[sales(strategy=Strategy.LINEAR)])
    c.ready(0, "a1", "a2")
    c.join(1, "c1")
    c.answer(2, "c1", "a1")
    new = AcdConfig(queues=c.config.queues, agents={"a3": agent("a3")})
    assert c.acd.reload(new, c.at(10)) == []
    assert c.state("a3") is S.LOGGED_OUT
    assert "a2" not in c.acd.agent_ids()  # idle: logged out at once
    assert c.state("a1") is S.ON_CALL  # on a call: the call goes on
    assert c.acd.agent("a1").pending == (AgentEvent.LOGOUT, None)
    assert c.join(11, "c2") == []  # neither a1 nor the new a3 is offered anything
    c.hang_up(40, "c1")
    assert c.acd.agent_ids() == ["a3"]
    with pytest.raises(AcdError, match="no agent 'a1'"):
        c.acd.agent("a1")
    logouts = [(e.time - T0, e.agent) for e in c.events(K.LOGOUT)]
    assert logouts == [(10, "a2"), (40, "a1")]
    assert c.ready(41, "a3") == [offer("c2", "a3")]


def test_a_removed_agent_is_logged_out_even_when_a_later_request_replaces_the_logout() -> None:
    c = Center(agent("a1", wrap_up=60.0), agent("a2"), queues=[sales(strategy=Strategy.LINEAR)])
    c.ready(0, "a1", "a2")
    c.join(1, "c1")
    c.answer(2, "c1", "a1")
    assert c.join(3, "c2") == [offer("c2", "a2")]
    c.acd.reload(AcdConfig(queues=c.config.queues), c.at(4))
    # a2 is rung and its phone fails; a1 goes not ready during the wrap-up
    assert c.acd.unreachable("a2", c.at(5)) == [Withdraw("c2", "a2")]
    c.hang_up(6, "c1")
    assert c.state("a1") is S.WRAP_UP
    c.acd.not_ready("a1", "break", c.at(7))
    assert c.acd.agent_ids() == []
    assert [e.agent for e in c.events(K.LOGOUT)] == ["a2", "a1"]


def test_a_reload_moving_an_agent_onsite_lets_a_waiting_personal_call_reach_them() -> None:
    c = Center(agent("a1", location="home"), queues=[sales()])
    c.ready(0, "a1")
    assert c.join(1, "c1", data_class="personal") == []
    onsite = AcdConfig(queues=c.config.queues, agents={"a1": agent("a1", location="onsite")})
    assert c.acd.reload(onsite, c.at(2)) == [offer("c1", "a1")]
    c.answer(3, "c1", "a1")
    c.hang_up(4, "c1")
    c.acd.reload(c.config, c.at(5))  # back home
    assert c.join(6, "c2", data_class="personal") == []


def test_a_reload_changes_queue_memberships() -> None:
    c = Center(agent("a1", {"sales": 0}), queues=[sales(), QueueConfig("support")])
    c.ready(0, "a1")
    assert c.join(1, "s1", "support") == []
    moved = AcdConfig(queues=c.config.queues, agents={"a1": agent("a1", {"support": 0})})
    assert c.acd.reload(moved, c.at(2)) == [offer("s1", "a1", queue="support")]
    c.answer(3, "s1", "a1")
    c.hang_up(4, "s1")
    assert c.join(5, "c1") == []  # no longer in sales


def test_an_overflowed_caller_keeps_the_first_arrival_among_equal_priorities() -> None:
    c = Center(
        agent("a1", {"overflow": 0}),
        queues=[
            sales(max_wait=30.0, on_timeout=ExitAction("queue", "overflow")),
            QueueConfig("overflow"),
        ],
    )
    c.join(0, "early", caller="+15550001")
    c.join(10, "direct", "overflow", caller="+15550002")
    assert c.run_to(30) == [Moved("early", "overflow")]
    # arrived first (in sales), so ahead of the caller who came straight to the overflow
    assert [e.call_id for e in c.acd.waiting("overflow")] == ["early", "direct"]
    assert c.ready(31, "a1") == [offer("early", "a1", queue="overflow")]


def test_a_timeout_that_offers_a_callback_keeps_the_place_until_served_or_expired() -> None:
    c = Center(
        agent("a1"),
        queues=[sales(max_wait=60.0, on_timeout=ExitAction("callback", None, "cb-prompt"))],
    )
    c.join(0, "c1", caller="+15550001")
    c.join(5, "c2", caller="+15550002")
    callback = ExitAction("callback", None, "cb-prompt")
    assert c.run_to(60) == [Exit("c1", "sales", "timeout", callback)]
    assert c.hang_up(61, "c1") == []  # the switch said goodbye: the place is kept
    assert c.acd.position("c1") == 1
    # c2 was not offered a callback yet: it times out in turn, and also keeps its place
    assert c.run_to(65) == [
        Exit("c2", "sales", "timeout", ExitAction("callback", None, "cb-prompt"))
    ]
    assert c.hang_up(66, "c2") == []
    assert c.ready(70, "a1") == [Offer("c1", "sales", ("a1",), 15.0, callback="+15550001")]
    c.answer(71, "c1", "a1")
    # a callback nobody serves is dropped after CALLBACK_TTL, logged as abandoned
    assert c.run_to(65 + CALLBACK_TTL) == []
    assert c.acd.entry("c2") is None
    (dropped,) = [e for e in c.events(K.ABANDONED) if e.call_id == "c2"]
    assert dropped.details["why"] == "callback expired"


def test_a_callback_exit_for_a_caller_refused_on_arrival_is_a_hang_up() -> None:
    c = Center(
        agent("a1"),
        queues=[sales(join_when="logged_in", on_empty=ExitAction("callback", None, "sorry"))],
    )
    assert c.join(0, "c1", caller="+15550001") == [
        Exit("c1", "sales", "empty", ExitAction("hangup", None, "sorry"))
    ]
    assert c.acd.entry("c1") is None
