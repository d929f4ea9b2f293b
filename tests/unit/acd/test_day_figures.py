"""An agent's figures for the day from the queue log: hand-built event sequences for each
rule (open states, events before the span, logouts, calls with and without wrap-up, a call
in progress), then the log the engine itself writes on a fake clock."""

from __future__ import annotations

import pytest

from softswitch.acd.agent import AgentState
from softswitch.acd.day_figures import AUTOMATIC_REASONS, DayFigures, day_figures
from softswitch.acd.engine import SWITCH_REASONS, Acd, Offer
from softswitch.acd.events import Detail, QueueEvent, QueueEventKind
from softswitch.acd.model import AcdConfig, AgentConfig, QueueConfig

K = QueueEventKind
T0 = 1_700_000_000.0


def ev(
    t: float, kind: QueueEventKind, agent: str = "a1", call: str | None = None, **details: Detail
) -> QueueEvent:
    return QueueEvent(T0 + t, kind, call, "sales" if call else None, agent, details)


def figures(events: list[QueueEvent], since: float, now: float, **kw: bool) -> DayFigures:
    return day_figures(events, "a1", since=T0 + since, now=T0 + now, **kw)


def test_ready_and_break_time_with_states_open_at_now() -> None:
    log = [
        ev(0, K.LOGIN),  # not ready "login" until 10: not a break
        ev(10, K.READY),
        ev(40, K.NOT_READY, reason="break"),
        ev(100, K.READY),  # still ready at now (130)
    ]
    assert figures(log, 0, 130) == DayFigures(0, 0.0, 30.0 + 30.0, 60.0)
    # a break still open at now counts up to now
    assert figures(log[:3], 0, 70) == DayFigures(0, 0.0, 30.0, 30.0)


def test_a_state_entered_before_since_counts_from_since_and_events_after_now_are_ignored() -> None:
    log = [
        ev(-500, K.LOGIN),
        ev(-400, K.READY),
        ev(-100, K.NOT_READY, reason="lunch"),
        ev(50, K.READY),
        ev(300, K.NOT_READY, reason="break"),  # after now
    ]
    assert figures(log, 0, 200) == DayFigures(0, 0.0, 150.0, 50.0)
    # without the events before since the state at since is unknown: nothing until the first
    assert figures(log[3:], 0, 200) == DayFigures(0, 0.0, 150.0, 0.0)


def test_automatic_reasons_are_not_breaks_and_a_supervisor_is() -> None:
    assert AUTOMATIC_REASONS < SWITCH_REASONS  # the switch sets them, never the agent
    log = [
        ev(0, K.LOGIN),
        ev(5, K.READY),
        ev(10, K.NOT_READY, reason="missed"),
        ev(20, K.NOT_READY, reason="unreachable"),
        ev(40, K.NOT_READY, reason="supervisor"),
        ev(45, K.NOT_READY, reason="not ready"),
        ev(50, K.READY),
    ]
    assert figures(log, 0, 60) == DayFigures(0, 0.0, 5.0 + 10.0, 5.0 + 5.0)


def test_logout_in_the_middle_counts_nothing_until_the_next_login() -> None:
    log = [
        ev(0, K.LOGIN),
        ev(0, K.READY),
        ev(100, K.LOGOUT, session=100.0),
        ev(500, K.LOGIN),
        ev(520, K.NOT_READY, reason="break"),
        ev(530, K.READY),
    ]
    assert figures(log, 0, 600) == DayFigures(0, 0.0, 100.0 + 70.0, 10.0)


def test_two_calls_with_wrap_up_and_without() -> None:
    log = [
        ev(0, K.LOGIN),
        ev(0, K.READY),
        ev(10, K.OFFERED, call="c1", attempt=1),  # rung: still ready
        ev(15, K.CONNECTED, call="c1", wait=5.0, ring=5.0, position=1),
        ev(75, K.COMPLETED_CALLER, call="c1", wait=5.0, talk=60.0, position=1),
        ev(95, K.WRAP_UP, call="c1", code="sale"),
        ev(95, K.READY),
        ev(100, K.OFFERED, call="c2", attempt=1),
        ev(100, K.CONNECTED, call="c2", wait=0.0, ring=0.0, position=1),
        ev(140, K.COMPLETED_AGENT, call="c2", wait=0.0, talk=40.0, position=1),
        # no wrap-up for c2: ready from 140 (no event of its own), a break from 160
        ev(160, K.NOT_READY, reason="break"),
    ]
    handle = ((60 + 20) + (40 + 0)) / 2
    assert figures(log, 0, 200) == DayFigures(2, handle, 15 + 5 + 20, 40.0)


def test_a_call_in_progress_counts_as_a_call_but_not_in_the_average_yet() -> None:
    log = [
        ev(0, K.LOGIN),
        ev(0, K.READY),
        ev(10, K.CONNECTED, call="c1"),
        ev(70, K.COMPLETED_CALLER, call="c1", talk=60.0),
        ev(80, K.WRAP_UP, call="c1", code=""),
        ev(80, K.READY),
        ev(90, K.CONNECTED, call="c2"),  # talking at now
    ]
    assert figures(log, 0, 100) == DayFigures(2, 70.0, 10 + 10, 0.0)
    # the second call ended, its wrap-up still open at now: counted as wrap-up by default
    ended = [*log, ev(120, K.TRANSFERRED, call="c2", target="2001", talk=30.0)]
    assert figures(ended, 0, 150) == DayFigures(2, 70.0, 20.0, 0.0)
    # the engine says the agent is not in wrap-up: the call had none, ready since 120
    assert figures(ended, 0, 150, wrapping_up=False) == DayFigures(2, (70 + 30) / 2, 50.0, 0.0)


def test_talk_falls_back_to_the_time_since_connected_and_calls_before_since_are_left_out() -> None:
    log = [
        ev(-100, K.LOGIN),
        ev(-100, K.READY),
        ev(-50, K.CONNECTED, call="c0"),  # before since: not today's call
        ev(20, K.COMPLETED_CALLER, call="c0"),
        ev(30, K.WRAP_UP, call="c0", code=""),
        ev(30, K.READY),
        ev(40, K.CONNECTED, call="c1"),
        ev(65, K.COMPLETED_CALLER, call="c1"),  # no talk detail: 25 s from connected
        ev(65, K.NOT_READY, reason="lunch"),  # a pending break, applied at the call's end
    ]
    assert figures(log, 0, 100) == DayFigures(1, 25.0, 10.0, 35.0)


def test_other_agents_events_are_skipped_and_order_of_equal_times_is_kept() -> None:
    log = [
        ev(0, K.LOGIN),
        ev(0, K.LOGIN, agent="a2"),
        ev(0, K.READY, agent="a2"),
        ev(5, K.CONNECTED, agent="a2", call="x"),
        ev(0, K.READY),  # given out of order: sorted by time, ties in log order
    ]
    assert figures(log, 0, 10) == DayFigures(0, 0.0, 10.0, 0.0)
    assert DayFigures(1, 12.3456, 1.0, 2.0).to_dict() == {
        "calls": 1,
        "average_handle": 12.346,
        "ready_time": 1.0,
        "break_time": 2.0,
    }


# -- the engine's own log -------------------------------------------------------------------


class Clock:
    """The ACD on a fake clock, with its timers fired on time, and its queue log kept."""

    def __init__(self, *queues: QueueConfig, agent_wrap_up: float = 0.0) -> None:
        config = AcdConfig(
            queues={q.name: q for q in queues},
            agents={
                "a1": AgentConfig("a1", "A1", "user-a1", queues={"sales": 0}, wrap_up=agent_wrap_up)
            },
        )
        self.now = T0
        self.acd = Acd(config, now=T0)
        self.log: list[QueueEvent] = []

    def at(self, t: float) -> float:
        while (deadline := self.acd.next_deadline()) is not None and deadline <= T0 + t:
            self.now = max(self.now, deadline)
            self.acd.handle_timer(self.now)
        self.now = T0 + t
        return self.now

    def events(self) -> list[QueueEvent]:
        self.log += self.acd.drain_events()
        return self.log


def test_the_engine_log_of_a_day_gives_the_figures() -> None:
    c = Clock(QueueConfig("sales", wrap_up=30.0))
    acd = c.acd
    acd.login("a1", c.at(0))
    acd.ready("a1", c.at(20))
    assert acd.join("c1", "sales", c.at(100)) == [Offer("c1", "sales", ("a1",), 15.0, None)]
    acd.ringing("c1", "a1", c.at(101))
    acd.answered("c1", "a1", c.at(104))
    acd.call_gone("c1", c.at(224), by="caller")  # 120 s of talk
    assert acd.agent("a1").state is AgentState.WRAP_UP
    c.at(254)  # the wrap-up timer ends it after 30 s: ready again
    assert acd.agent("a1").state is AgentState.READY
    acd.not_ready("a1", "break", c.at(300))
    acd.ready("a1", c.at(900))
    since, now = T0, c.at(1000)
    got = day_figures(c.events(), "a1", since=since, now=now)
    # ready 20-104 (rung from 100: still ready), 254-300, 900-1000; break 300-900
    assert got == DayFigures(1, 120.0 + 30.0, 84.0 + 46.0 + 100.0, 600.0)
    # the same log, the day starting in the middle of the break
    assert day_figures(c.events(), "a1", since=T0 + 600, now=now) == DayFigures(
        0, 0.0, 100.0, 300.0
    )


@pytest.mark.parametrize("wrap", [0.0, 20.0])
def test_the_engine_log_with_and_without_wrap_up_ended_early(wrap: float) -> None:
    c = Clock(QueueConfig("sales"), agent_wrap_up=wrap)
    acd = c.acd
    acd.login("a1", c.at(0))
    acd.ready("a1", c.at(0))
    acd.join("c1", "sales", c.at(10))
    acd.answered("c1", "a1", c.at(12))
    acd.not_ready("a1", "lunch", c.at(30))  # during the call: applied when it is over
    acd.call_gone("c1", c.at(72), by="agent")  # 60 s of talk
    if wrap:
        acd.end_wrap_up("a1", c.at(80), "sale")  # 8 s of wrap-up, then the lunch
    now = c.at(100)
    state = acd.agent("a1").state  # as the switch asks the engine
    got = day_figures(c.events(), "a1", since=T0, now=now, wrapping_up=state is AgentState.WRAP_UP)
    assert state is AgentState.NOT_READY  # the lunch, after the call
    after = 8.0 if wrap else 0.0
    assert got == DayFigures(1, 60.0 + after, 12.0, 100.0 - 72.0 - after)


def test_the_engine_state_tells_a_call_without_wrap_up_from_one_in_wrap_up() -> None:
    c = Clock(QueueConfig("sales"))  # no wrap-up: ready again when the call ends
    acd = c.acd
    acd.login("a1", c.at(0))
    acd.ready("a1", c.at(0))
    acd.join("c1", "sales", c.at(10))
    acd.answered("c1", "a1", c.at(12))
    acd.call_gone("c1", c.at(72))
    now = c.at(100)
    state = acd.agent("a1").state
    assert state is AgentState.READY  # and no event says so
    got = day_figures(c.events(), "a1", since=T0, now=now, wrapping_up=state is AgentState.WRAP_UP)
    assert got == DayFigures(1, 60.0, 12.0 + 28.0, 0.0)
    # from the log alone the end of the call is taken for a wrap-up still going on
    assert day_figures(c.events(), "a1", since=T0, now=now) == DayFigures(1, 0.0, 12.0, 0.0)
