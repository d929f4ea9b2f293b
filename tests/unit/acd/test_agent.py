"""The agent state machine: the transition table, pending requests, misses, wrap-up, and a
property test that no sequence of events leaves an agent holding two calls or stuck."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.acd.agent import (
    IDLE,
    TRANSITIONS,
    WITH_CALL,
    Agent,
    AgentError,
    AgentEvent,
    AgentState,
)

E, S = AgentEvent, AgentState


def ready_agent(**kwargs: object) -> Agent:
    agent = Agent("a1", **kwargs)  # type: ignore[arg-type]
    agent.apply(E.LOGIN, 0.0)
    agent.apply(E.READY, 1.0)
    return agent


def test_a_call_from_offer_to_wrap_up_and_back() -> None:
    agent = ready_agent(wrap_up_seconds=30)
    assert agent.state is S.READY and agent.available
    agent.apply(E.OFFER, 2.0, call="c1")
    agent.apply(E.RING, 2.1, call="c1")
    agent.apply(E.ANSWER, 5.0, call="c1")
    assert (agent.state, agent.call) == (S.ON_CALL, "c1")
    agent.apply(E.ENDED, 65.0, call="c1")
    assert agent.state is S.WRAP_UP and agent.wrap_up_until == 95.0 and agent.call is None
    assert agent.tick(94.9) == [] and agent.state is S.WRAP_UP
    (change,) = agent.tick(95.0)
    assert agent.state is S.READY and change.before is S.WRAP_UP
    assert [(c.event, c.before, c.after) for c in agent.changes] == [
        (E.LOGIN, S.LOGGED_OUT, S.NOT_READY),
        (E.READY, S.NOT_READY, S.READY),
        (E.OFFER, S.READY, S.RESERVED),
        (E.RING, S.RESERVED, S.RINGING),
        (E.ANSWER, S.RINGING, S.ON_CALL),
        (E.ENDED, S.ON_CALL, S.WRAP_UP),
        (E.END_WRAP_UP, S.WRAP_UP, S.READY),
    ]


def test_wrap_up_ended_early_with_a_code_and_per_call_wrap_up_time() -> None:
    agent = ready_agent(wrap_up_seconds=30)
    agent.apply(E.OFFER, 2.0, call="c1")
    agent.apply(E.ANSWER, 3.0, call="c1")
    agent.apply(E.ENDED, 10.0, call="c1", wrap_up=120)
    assert agent.wrap_up_until == 130.0  # the queue's wrap-up time wins
    (change,) = agent.apply(E.END_WRAP_UP, 20.0, code="sale")
    assert agent.state is S.READY and agent.last_code == "sale" and change.code == "sale"
    agent.apply(E.OFFER, 21.0, call="c2")
    agent.apply(E.ANSWER, 22.0, call="c2")
    agent.apply(E.ENDED, 23.0, call="c2", wrap_up=0)
    assert agent.state is S.READY  # no wrap-up for this queue


def test_no_second_call_while_holding_one() -> None:
    agent = ready_agent()
    agent.apply(E.OFFER, 2.0, call="c1")
    for state_events in ((E.RING,), (E.ANSWER,)):
        with pytest.raises(AgentError):
            agent.apply(E.OFFER, 3.0, call="c2")
        agent.apply(state_events[0], 3.0, call="c1")
    with pytest.raises(AgentError, match="for call c2, holding c1"):
        agent.apply(E.ENDED, 4.0, call="c2")  # another call's end changes nothing
    assert (agent.state, agent.call) == (S.ON_CALL, "c1")


def test_not_ready_and_logout_during_a_call_are_kept_for_after_it() -> None:
    agent = ready_agent(wrap_up_seconds=10)
    agent.apply(E.OFFER, 2.0, call="c1")
    agent.apply(E.ANSWER, 3.0, call="c1")
    assert agent.apply(E.NOT_READY, 4.0, reason="lunch") == []
    assert agent.state is S.ON_CALL
    agent.apply(E.ENDED, 5.0, call="c1")
    assert agent.state is S.WRAP_UP  # the wrap-up is still done
    agent.tick(15.0)
    assert (agent.state, agent.reason) == (S.NOT_READY, "lunch")
    agent.apply(E.READY, 16.0)
    agent.apply(E.OFFER, 17.0, call="c2")
    agent.apply(E.LOGOUT, 18.0)
    agent.apply(E.NOT_READY, 18.5, reason="break")  # a logout asked for is not undone
    agent.apply(E.RELEASED, 19.0, call="c2")  # the caller hung up while it rang
    assert agent.state is S.LOGGED_OUT and agent.pending is None


def test_misses_in_a_row_make_the_agent_not_ready() -> None:
    agent = ready_agent(max_misses=2)
    agent.apply(E.OFFER, 1.0, call="c1")
    agent.apply(E.MISSED, 2.0, call="c1")
    assert agent.state is S.READY and agent.misses == 1
    agent.apply(E.OFFER, 3.0, call="c2")
    agent.apply(E.ANSWER, 4.0, call="c2")
    agent.apply(E.ENDED, 5.0, call="c2")
    assert agent.misses == 0  # an answered call resets the count
    for n, call in enumerate(("c3", "c4")):
        agent.apply(E.OFFER, 6.0 + n, call=call)
        agent.apply(E.RING, 6.1 + n, call=call)
        agent.apply(E.MISSED, 6.5 + n, call=call)
    assert (agent.state, agent.reason) == (S.NOT_READY, "missed")


def test_unreachable_phone() -> None:
    idle = ready_agent()
    idle.apply(E.UNREACHABLE, 2.0)
    assert (idle.state, idle.reason) == (S.NOT_READY, "unreachable")
    ringing = ready_agent()
    ringing.apply(E.OFFER, 2.0, call="c1")
    ringing.apply(E.RING, 2.1, call="c1")
    ringing.apply(E.UNREACHABLE, 3.0)
    assert (ringing.state, ringing.reason, ringing.call) == (S.NOT_READY, "unreachable", None)
    talking = ready_agent()
    talking.apply(E.OFFER, 2.0, call="c1")
    talking.apply(E.ANSWER, 3.0, call="c1")
    talking.apply(E.UNREACHABLE, 4.0)  # the call survives a re-registration
    assert talking.state is S.ON_CALL
    talking.apply(E.ENDED, 9.0, call="c1")
    assert (talking.state, talking.reason) == (S.NOT_READY, "unreachable")


def test_every_pair_not_in_the_table_is_refused_and_changes_nothing() -> None:
    for state in AgentState:
        for event in AgentEvent:
            if (state, event) in TRANSITIONS:
                continue
            agent = Agent("x", state=state, call="c1" if state in WITH_CALL else None)
            before = copy.deepcopy(agent)
            with pytest.raises(AgentError):
                agent.apply(event, 1.0, call="c1", reason="r")
            assert agent == before, (state, event)


# -- property: random interleavings --------------------------------------------------------

CALLS = ("c1", "c2", "c3")
#: every event, the call events twice as often (they are most of an agent's day)
EVENTS = list(AgentEvent) + [E.OFFER, E.RING, E.ANSWER, E.ENDED, E.READY] * 2
steps = st.lists(
    st.tuples(
        st.sampled_from(EVENTS),
        st.sampled_from(CALLS),
        st.floats(min_value=0, max_value=50),  # time passing before the event
        st.sampled_from([None, 0.0, 5.0, 60.0]),  # the call's wrap-up time
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(steps, st.integers(min_value=1, max_value=4), st.sampled_from([0.0, 10.0]))
def test_no_sequence_of_events_leaves_an_agent_with_two_calls_or_stuck(
    events: list[tuple[AgentEvent, str, float, float | None]], max_misses: int, wrap: float
) -> None:
    agent = Agent("p", max_misses=max_misses, wrap_up_seconds=wrap)
    now = 0.0
    start = [(E.LOGIN, "c1", 0.0, None), (E.READY, "c1", 0.0, None)]
    for event, call, dt, wrap_up in start + events:
        now += dt
        agent.tick(now)
        before = copy.deepcopy(agent)
        try:
            agent.apply(event, now, call=call, reason="r", code="k", wrap_up=wrap_up)
        except AgentError:
            assert agent == before  # refused: nothing changed
            continue
        # one call at most, and only in the states that hold one
        assert (agent.call is not None) == (agent.state in WITH_CALL), agent
        if agent.state is S.WRAP_UP:
            assert agent.wrap_up_until is not None
        if agent.state is S.NOT_READY:
            assert agent.reason
        if event is E.OFFER:
            assert before.state is S.READY and agent.call == call
        if event in (E.RELEASED, E.MISSED, E.ENDED, E.UNREACHABLE) and before.call is not None:
            # the events that end an offer or a call always let go of it
            assert agent.call is None or (event is E.UNREACHABLE and agent.state is S.ON_CALL)
    # the world ends every call: the agent returns to an idle state and holds nothing
    if agent.state in (S.RESERVED, S.RINGING):
        agent.apply(E.RELEASED, now, call=agent.call)
    elif agent.state is S.ON_CALL:
        agent.apply(E.ENDED, now, call=agent.call)
    agent.tick(now + 10_000)
    assert agent.state in IDLE | {S.LOGGED_OUT}, agent
    assert agent.call is None and agent.pending is None
