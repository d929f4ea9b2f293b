"""The routing decision over the example plan: precedence, includes, conditions, trace."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from softswitch.routing.decide import CallFacts, CompiledPlan
from softswitch.routing.loader import load_plan
from softswitch.routing.schema import Bridge, Goto, Menu, Transfer

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "dialplan" / "example.yaml"
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(scope="module")
def plan() -> CompiledPlan:
    return CompiledPlan(load_plan(EXAMPLE, environ={}))


def facts(number: str, at: str, **more: object) -> CallFacts:
    when = datetime.fromisoformat(at)
    if when.tzinfo is None:
        when = when.replace(tzinfo=TOKYO)
    return CallFacts(number=number, context=str(more.pop("context", "public")), at=when, **more)  # type: ignore[arg-type]


def test_office_hours_take_the_menu(plan: CompiledPlan) -> None:
    d = plan.decide(facts("100", "2026-11-24T10:00", caller="0312345678"))  # a Tuesday
    assert d.context == "public" and isinstance(d.actions[-1], Menu)
    assert d.trace[0] == "context public"
    assert d.trace[1].startswith("  rule '100' (") and d.trace[1].endswith("): taken")
    assert "example.yaml:" in d.trace[1]


def test_outside_hours_the_second_rule_and_the_trace_says_why(plan: CompiledPlan) -> None:
    d = plan.decide(facts("100", "2026-11-24T20:00", caller="0312345678"))
    assert isinstance(d.actions[0], Goto) and d.actions[0].context == "closed"
    assert "is outside hours office" in d.trace[1] and "Tue 2026-11-24 20:00 JST" in d.trace[1]
    # the same wall-clock time given in another zone is the same instant
    again = plan.decide(facts("100", "2026-11-24T12:00+01:00", caller="0312345678"))
    assert again.rule is d.rule


def test_holiday_and_christmas_eve_morning(plan: CompiledPlan) -> None:
    d = plan.decide(facts("100", "2026-12-25T10:00", caller="1"))  # a Friday, but a holiday
    assert isinstance(d.actions[0], Goto) and "is in calendar holidays" in d.trace[1]
    eve = plan.decide(facts("100", "2026-12-24T11:00", caller="1"))  # Thursday: office anyway
    assert isinstance(eve.actions[-1], Menu)
    saturday = plan.decide(facts("100", "2026-11-28T12:30", caller="1"))
    assert isinstance(saturday.actions[-1], Menu)
    assert isinstance(plan.decide(facts("100", "2026-11-28T13:00", caller="1")).actions[0], Goto)


def test_caller_conditions_and_patterns(plan: CompiledPlan) -> None:
    partner = facts("1234", "2026-11-24T10:00", caller="0312345678", caller_name="Partner Co")
    d = plan.decide(partner)
    assert isinstance(d.actions[0], Bridge) and d.actions[0].to == ("1003",)
    other = facts("1234", "2026-11-24T10:00", caller="0612345678", caller_name="partner")
    refused = plan.decide(other)
    assert "caller '0612345678' does not match '_03XXXXXXXX'" in "\n".join(refused.trace)


def test_variables_and_regex(plan: CompiledPlan) -> None:
    english = plan.decide(facts("2001", "2026-11-24T10:00", caller="1", variables={"lang": "en"}))
    assert isinstance(english.actions[0], Bridge)
    japanese = plan.decide(facts("2001", "2026-11-24T10:00", caller="1", variables={"lang": "ja"}))
    assert "variable lang is 'ja', not 'en'" in "\n".join(japanese.trace)


def test_closed_context_night_shift_across_midnight(plan: CompiledPlan) -> None:
    # 03:00 on a Wednesday belongs to Tuesday's 22:00-06:00 night shift: the third rule
    night = plan.decide(facts("100", "2026-11-25T03:00", caller="1", context="closed"))
    assert isinstance(night.actions[0], Transfer)
    evening = plan.decide(facts("100", "2026-11-25T19:00", caller="1", context="closed"))
    assert evening.rule is not None and evening.rule.when is not None
    assert evening.rule.when.outside_hours == "night_shift"


def test_unknown_number_and_context(plan: CompiledPlan) -> None:
    d = plan.decide(facts("555", "2026-11-24T10:00", caller="1"))
    assert d.rule is None and d.trace[-1] == "no rule for '555': the call is refused (404)"
    assert plan.decide(facts("100", "2026-11-24T10:00", caller="1", context="nope")).rule is None
