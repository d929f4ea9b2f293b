"""The pure routing step: a call's facts and a compiled plan in, a decision and a trace out.

:class:`CompiledPlan` turns a validated :class:`~softswitch.routing.schema.Plan` into what a
call needs fast: per context a :class:`~softswitch.routing.matcher.RuleIndex` of its rules,
compiled caller patterns, time windows and calendars in the plan's time zone.
:meth:`CompiledPlan.decide` then finds the rule a call takes.

Match order (documented for admins, ARCHITECTURE.md "The dialplan"): in the call's context,
exact numbers first, then Asterisk patterns from the most specific, then regexes, each group
in the order written; the first of those whose further conditions (caller, caller name, hours,
holidays, variables) all hold wins. Only if none does are the included contexts searched, in
the order listed, each the same way (depth first; a context is searched once). No match: the
decision has no rule, and the caller gets 404.

Nothing here reads a clock or the network: the time of the call is one of its facts, so
``softswitch route --at ...`` traces exactly what a call at that time would do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo

from softswitch.routing.matcher import NumberMatch, RuleIndex, compile_match
from softswitch.routing.schema import Action, Plan, Rule, When, Window
from softswitch.routing.timewindow import Calendar, TimeWindow, in_windows

__all__ = ["CallFacts", "CompiledPlan", "Decision"]


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What routing knows of a call."""

    number: str
    """The number dialled (the Request-URI user part)."""
    caller: str
    """The caller's number (From user part)."""
    context: str
    """The context of the caller's account or trunk."""
    at: datetime
    """When the call arrived (timezone-aware)."""
    caller_name: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """The rule a call takes (None: no rule matched) and how it was found."""

    context: str
    rule: Rule | None
    trace: tuple[str, ...]

    @property
    def actions(self) -> tuple[Action, ...]:
        return self.rule.actions if self.rule is not None else ()


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    match: NumberMatch
    caller: NumberMatch | None
    caller_name: NumberMatch | None


def _window(window: Window) -> TimeWindow:
    start = window.start if window.start is not None else time(0)
    end = window.end if window.end is not None else time(0)  # equal: the whole day
    dates = frozenset(window.dates) if window.dates is not None else None
    return TimeWindow(window.weekdays, start, end, dates)


class CompiledPlan:
    """A plan ready to route calls; build it once per (re)load."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.tz = ZoneInfo(plan.timezone)
        self.hours: dict[str, tuple[TimeWindow, ...]] = {
            name: tuple(_window(w) for w in windows) for name, windows in plan.hours.items()
        }
        self.calendars: dict[str, Calendar] = {
            name: Calendar(frozenset(dates), name) for name, dates in plan.calendars.items()
        }
        self._indexes: dict[str, RuleIndex[_CompiledRule]] = {}
        for name, context in plan.contexts.items():
            compiled = [
                _CompiledRule(
                    rule,
                    compile_match(rule.match),
                    compile_match(rule.caller) if rule.caller is not None else None,
                    compile_match(rule.caller_name) if rule.caller_name is not None else None,
                )
                for rule in context.rules
            ]
            self._indexes[name] = RuleIndex((c.match, c) for c in compiled)
        self._inline: dict[int, tuple[TimeWindow, ...]] = {}

    @property
    def contexts(self) -> tuple[str, ...]:
        return tuple(self.plan.contexts)

    def decide(self, facts: CallFacts) -> Decision:
        """The rule ``facts`` take, searching the context then its includes (see module)."""
        trace: list[str] = []
        if facts.context not in self._indexes:
            trace.append(f"no context {facts.context!r} in the plan")
            return Decision(facts.context, None, tuple(trace))
        seen: set[str] = set()
        found = self._search(facts.context, facts, trace, seen, depth=0)
        if found is None:
            trace.append(f"no rule for {facts.number!r}: the call is refused (404)")
            return Decision(facts.context, None, tuple(trace))
        context, rule = found
        return Decision(context, rule, tuple(trace))

    def _search(
        self, name: str, facts: CallFacts, trace: list[str], seen: set[str], depth: int
    ) -> tuple[str, Rule] | None:
        if name in seen:
            return None
        seen.add(name)
        indent = "  " * depth
        trace.append(f"{indent}context {name}")
        for candidate in self._indexes[name].lookup(facts.number):
            rule = candidate.rule
            problem = self._unmet(candidate, facts)
            where = f" ({rule.where})" if rule.where else ""
            if problem is None:
                trace.append(f"{indent}  rule {rule.match!r}{where}: taken")
                return name, rule
            trace.append(f"{indent}  rule {rule.match!r}{where}: skipped, {problem}")
        for included in self.plan.contexts[name].include:
            found = self._search(included, facts, trace, seen, depth + 1)
            if found is not None:
                return found
        return None

    def _unmet(self, candidate: _CompiledRule, facts: CallFacts) -> str | None:
        """Why a rule whose number matched does not apply to this call (None: it does)."""
        if candidate.caller is not None and not candidate.caller.matches(facts.caller):
            return f"caller {facts.caller!r} does not match {candidate.caller.text!r}"
        if candidate.caller_name is not None and not candidate.caller_name.matches(
            facts.caller_name or ""
        ):
            return (
                f"caller name {facts.caller_name!r} does not match {candidate.caller_name.text!r}"
            )
        when = candidate.rule.when
        return None if when is None else self._when_unmet(when, facts)

    def _windows(self, ref: str | tuple[Window, ...]) -> tuple[TimeWindow, ...]:
        if isinstance(ref, str):
            return self.hours[ref]
        cached = self._inline.get(id(ref))
        if cached is None:
            cached = self._inline[id(ref)] = tuple(_window(w) for w in ref)
        return cached

    def _when_unmet(self, when: When, facts: CallFacts) -> str | None:
        local = facts.at.astimezone(self.tz)
        shown = local.strftime("%a %Y-%m-%d %H:%M %Z")
        if when.hours is not None and not in_windows(self._windows(when.hours), facts.at, self.tz):
            return f"{shown} is outside {_name_of(when.hours)}"
        if when.outside_hours is not None and in_windows(
            self._windows(when.outside_hours), facts.at, self.tz
        ):
            return f"{shown} is within {_name_of(when.outside_hours)}"
        if when.holiday is not None and not self.calendars[when.holiday].contains(
            facts.at, self.tz
        ):
            return f"{local.date()} is not in calendar {when.holiday}"
        if when.not_holiday is not None and self.calendars[when.not_holiday].contains(
            facts.at, self.tz
        ):
            return f"{local.date()} is in calendar {when.not_holiday}"
        for name, wanted in when.vars.items():
            value = facts.variables.get(name)
            if value != wanted:
                return f"variable {name} is {value!r}, not {wanted!r}"
        return None


def _name_of(ref: str | tuple[Window, ...]) -> str:
    return f"hours {ref}" if isinstance(ref, str) else "the hours given"
