"""The dialplan models: syntax, action forms, typed values, whole-plan checks, JSON Schema."""

from __future__ import annotations

import json
from datetime import date, time
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softswitch.routing.schema import (
    ACTION_KEYS,
    Action,
    Answer,
    Bridge,
    Context,
    Gather,
    Goto,
    Hangup,
    Lookup,
    Menu,
    Plan,
    Play,
    Queue,
    Record,
    Rule,
    SetVars,
    Transfer,
    Voicemail,
    When,
    Window,
    pattern_kind,
    pattern_problem,
    template_problem,
)
from softswitch.yaml_loader import ConfigErrors, validate


def plan_of(contexts: dict[str, Any], **top: Any) -> Plan:
    return validate(Plan, {**top, "contexts": contexts}, file="plan.yaml")


def one_rule(*actions: Any, **rule: Any) -> dict[str, Any]:
    return {"public": {"rules": [{"match": "100", **rule, "actions": list(actions)}]}}


def actions_of(*actions: Any) -> tuple[Any, ...]:
    return plan_of(one_rule(*actions)).contexts["public"].rules[0].actions


def errors(data: dict[str, Any]) -> list[str]:
    """``path: message`` of every mistake (positions are 1:1 for data not read from a file)."""
    with pytest.raises(ConfigErrors) as caught:
        validate(Plan, data, file="plan.yaml")
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


# --------------------------------------------------------------------------------------------
# Syntax of matches and templates


@pytest.mark.parametrize(
    "text",
    [
        "100",
        "+81312345678",
        "*97",
        "alice",
        "_1XXX",
        "_NXXNXXXXXX",
        "_0[1-9]X.",
        "_[135]",
        "_[1-35-7]XX",
        "_9!",
        "_x.",
        "_*8[1-5]",
        "/^1\\d{3}$/",
        "/(?i)smith/",
    ],
)
def test_valid_matches(text: str) -> None:
    assert pattern_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "must not be empty"),
        ("1 00", 'bad number "1 00": it must not contain spaces'),
        ("_", 'bad pattern "_": nothing follows "_"'),
        ("_1.X", 'bad pattern "_1.X": "." may only come last'),
        ("_1!!", 'bad pattern "_1!!": "!" may only come last'),
        ("_1Y", 'bad pattern "_1Y": unknown character "Y" (use digits, X, Z, N, [...], *, #'),
        ("_1[", 'bad pattern "_1[": "[" is not closed'),
        ("_1[]", 'bad pattern "_1[]": "[]" is empty'),
        ("_[5-3]", 'bad pattern "_[5-3]": range "5-3" runs backwards'),
        ("_[1a]", 'bad pattern "_[1a]": "[1a]" may hold only digits and ranges such as 1-5'),
        ("_[1-]", 'bad pattern "_[1-]": "[1-]" has an unfinished range'),
        ("_1]", 'bad pattern "_1]": unknown character "]"'),
        ("/", 'bad regex "/": write it between slashes'),
        ("/abc", 'bad regex "/abc": write it between slashes'),
        ("/a(b/", 'bad regex "/a(b/": missing ), unterminated subpattern at position 1'),
    ],
)
def test_bad_matches(text: str, problem: str) -> None:
    found = pattern_problem(text)
    assert found is not None
    assert found.startswith(problem)


def test_pattern_kind() -> None:
    assert pattern_kind("100") == "exact"
    assert pattern_kind("_1XX") == "pattern"
    assert pattern_kind("/1.*/") == "regex"


@pytest.mark.parametrize("text", ["plain", "$5 off", "${a}", "x ${a_b1} and ${_c}", "}{"])
def test_valid_templates(text: str) -> None:
    assert template_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("hello ${name", '"${" at character 7 of "hello ${name" is not closed by "}"'),
        ("${1a}", '"${1a}" does not name a variable'),
        ("${a b}", '"${a b}" does not name a variable'),
        ("${}", '"${}" does not name a variable'),
        ("${ok} ${bad-name}", '"${bad-name}" does not name a variable'),
    ],
)
def test_bad_templates(text: str, problem: str) -> None:
    found = template_problem(text)
    assert found is not None
    assert found.startswith(problem)


# --------------------------------------------------------------------------------------------
# Actions: every way of writing them, and what they become


def test_bare_and_empty_actions() -> None:
    assert actions_of("answer", {"answer": None}, "hangup", {"hangup": None}) == (
        Answer(),
        Answer(),
        Hangup(cause="normal"),
        Hangup(cause="normal"),
    )
    assert actions_of({"hangup": {"cause": "busy"}}) == (Hangup(cause="busy"),)


def test_single_value_forms() -> None:
    plan = plan_of(
        {
            **one_rule(
                {"record": "start"},
                {"record": {"action": "pause", "reason": "card number"}},
                {"goto": "other"},
                {"goto": {"context": "other", "number": 200}},
            ),
            "other": {"rules": [{"match": "200", "actions": ["answer"]}]},
        }
    )
    assert plan.contexts["public"].rules[0].actions == (
        Record(action="start"),
        Record(action="pause", reason="card number"),
        Goto(context="other"),
        Goto(context="other", number="200"),
    )


def test_arguments_and_defaults() -> None:
    got = actions_of(
        {"play": {"prompt": "welcome"}},
        {"bridge": {"to": 1002}},
        {"bridge": {"to": ["1002", "1003"], "timeout": "20"}},
        {"set": {"lang": "en", "greeting": "Hello ${caller_name}", "code": 7}},
        {"gather": {"into": "member"}},
        {"queue": {"name": "general"}},
        {"voicemail": {"mailbox": 1001}},
        {"transfer": {"to": "1004"}},
    )
    assert got == (
        Play(prompt=("welcome",), barge_in=False),
        Bridge(to=("1002",), timeout=None),
        Bridge(to=("1002", "1003"), timeout=20),
        SetVars(variables={"lang": "en", "greeting": "Hello ${caller_name}", "code": "7"}),
        Gather(into="member"),
        Queue(name="general"),
        Voicemail(mailbox="1001"),
        Transfer(to="1004"),
    )
    gather = got[4]
    assert (gather.min_digits, gather.max_digits, gather.terminator) == (1, 20, "#")
    assert (gather.timeout, gather.inter_digit_timeout, gather.sensitive) == (5, 3, False)
    assert got[5].data_class == "general" and got[5].skills == {}
    assert (got[6].max_length, got[6].beep) == (120, True)


def test_menu_options_are_dtmf_keys_as_text() -> None:
    (menu,) = actions_of(
        {
            "menu": {
                "prompt": ["a", "b"],
                "options": {1: ["answer"], "#": [{"goto": "public"}], "A": ["hangup"]},
                "on_failure": ["hangup"],
            }
        }
    )
    assert isinstance(menu, Menu)
    assert list(menu.options) == ["1", "#", "A"]
    assert menu.options["1"] == (Answer(),)
    assert menu.prompt == ("a", "b")
    assert (menu.timeout, menu.retries, menu.on_failure) == (5, 3, (Hangup(),))


def test_lookup_with_a_service() -> None:
    plan = plan_of(
        one_rule(
            {
                "lookup": {
                    "service": "crm",
                    "method": "POST",
                    "path": "/members/${member}",
                    "body": {"pin": "${pin}"},
                    "into": "crm",
                    "screen_pop": ["crm_name"],
                    "on_failure": [{"hangup": {"cause": "rejected"}}],
                }
            }
        ),
        services={"crm": {"url": "https://crm.example/api", "timeout": 0.5}},
    )
    (lookup,) = plan.contexts["public"].rules[0].actions
    assert isinstance(lookup, Lookup)
    assert (lookup.method, lookup.path, lookup.body, lookup.timeout) == (
        "POST",
        "/members/${member}",
        {"pin": "${pin}"},
        None,
    )
    assert plan.services["crm"].timeout == 0.5


def describe(action: Action) -> str:
    """Code that uses the plan matches on the action types."""
    match action:
        case Answer():
            return "answer"
        case Bridge(to=to, timeout=timeout):
            return f"bridge {','.join(to)} for {timeout}s"
        case Goto(context=context, number=None):
            return f"goto {context}"
        case Hangup(cause=cause):
            return f"hangup {cause}"
        case _:
            return type(action).__name__


def test_actions_can_be_matched_on() -> None:
    got = actions_of("answer", {"bridge": {"to": "1002"}}, {"goto": "public"}, "hangup")
    assert [describe(a) for a in got] == [
        "answer",
        "bridge 1002 for Nones",
        "goto public",
        "hangup normal",
    ]


def test_plans_can_be_built_in_code() -> None:
    rule = Rule(match="100", actions=(Answer(), Bridge(to=("1002",), timeout=10)))
    plan = Plan(contexts={"public": Context(rules=(rule,))})
    assert plan.contexts["public"].rules[0].actions[1] == Bridge(to=("1002",), timeout=10)
    assert plan.timezone == "UTC" and plan.zone.key == "UTC"
    with pytest.raises(pydantic.ValidationError):
        Plan(contexts={"public": Context(rules=(Rule(match="1", actions=(Goto(context="x"),)),))})


def test_models_are_frozen() -> None:
    rule = Rule(match="100", actions=(Answer(),))
    with pytest.raises(pydantic.ValidationError):
        rule.match = "200"  # type: ignore[misc]


def test_where_is_not_part_of_the_file_format_nor_of_equality() -> None:
    assert errors({"contexts": one_rule({"bridge": {"to": "1", "where": "x.yaml:1:1"}})}) == [
        'contexts.public.rules[0].actions[0].bridge.where: unknown key "where" (allowed: timeout)'
    ]
    placed = Answer().model_copy(update={"where": "plan.yaml:3:9"})
    assert placed.where == "plan.yaml:3:9"
    assert placed == Answer()
    assert hash(placed) == hash(Answer())
    assert Bridge(to=("1",)) != Bridge(to=("2",))
    assert "where" not in placed.model_dump()
    assert "where" not in repr(placed)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("play", 'actions[0]: "play" needs arguments: write "play: ..."'),
        ("dial", 'actions[0]: unknown action "dial" (actions: answer, play, menu, gather, set,'),
        ({"anwser": None}, 'actions[0]: unknown action "anwser" (did you mean "answer"?)'),
        (5, 'actions[0]: expected an action, such as "answer" or "bridge: {to: 1002}", got 5'),
        ({}, "actions[0]: expected an action, got an empty mapping"),
        ({"play": {"prompt": "x"}, "bridge": {"to": "1"}}, "actions[0]: an action is a mapping"),
        ({"goto": ["a"]}, "actions[0].goto: expected the name of a context or a mapping, got"),
        ({"record": "pasue"}, 'actions[0].record.action: expected one of "start", "pause",'),
        ({"bridge": {"to": []}}, "actions[0].bridge.to: needs at least one user"),
        ({"bridge": {"to": "1", "timeout": True}}, "actions[0].bridge.timeout: expected seconds"),
        ({"gather": {"into": "x", "max_digits": 0}}, "actions[0].gather.max_digits: must be at"),
        ({"gather": {"into": "a.b"}}, "actions[0].gather.into: expected a variable name"),
        ({"gather": {"into": "x", "terminator": "##"}}, "actions[0].gather.terminator: expected"),
        ({"set": {"x": ["a"]}}, "actions[0].set.x: expected a string, got a list"),
        ({"set": "x"}, "actions[0].set: expected a mapping"),
        ({"queue": {"name": "q", "skills": {"en": 101}}}, "actions[0].queue.skills.en: must be"),
        ({"queue": {"name": "a queue"}}, "actions[0].queue.name: expected a name of letters"),
        ({"transfer": {"to": "10 02"}}, "actions[0].transfer.to: expected a user or number"),
        ({"menu": {"prompt": "p", "options": {"1": []}, "retries": 11}}, "actions[0].menu.retri"),
        ({"menu": {"prompt": "p", "options": {"a": ["answer"]}}}, "actions[0].menu.options.a: bad"),
        ({"hangup": {"cause": "bussy"}}, 'actions[0].hangup.cause: expected one of "normal", "b'),
    ],
)
def test_bad_actions(action: Any, message: str) -> None:
    found = errors({"contexts": one_rule(action)})
    assert len(found) == 1
    assert found[0].startswith(f"contexts.public.rules[0].{message}")


def test_lookup_rules() -> None:
    data = {
        "services": {"crm": {"url": "http://127.0.0.1:8080/crm"}},
        "contexts": one_rule({"lookup": {"service": "crm", "path": "members", "body": {"a": "b"}}}),
    }
    assert errors(data) == [
        'contexts.public.rules[0].actions[0].lookup.path: must start with "/", got "members"',
        'contexts.public.rules[0].actions[0].lookup.body: only used with method "POST"',
    ]
    data["services"] = {"crm": {"url": "ftp://x"}}
    assert errors(data)[0] == 'services.crm.url: expected an http:// or https:// URL, got "ftp://x"'


def test_lookup_sensitive_fields_are_its_own() -> None:
    services = {"crm": {"url": "http://127.0.0.1:8080/crm"}}
    lookup = {"service": "crm", "into": "crm", "screen_pop": ["crm_name", "crm_birth"]}

    def one(**more: Any) -> dict[str, Any]:
        return {"services": services, "contexts": one_rule({"lookup": {**lookup, **more}})}

    def action(**more: Any) -> Any:
        plan = plan_of(one_rule({"lookup": {**lookup, **more}}), services=services)
        return plan.contexts["public"].rules[0].actions[0]

    found = action(sensitive=["crm_birth", "crm_mail"])
    assert isinstance(found, Lookup)
    assert found.sensitive == ("crm_birth", "crm_mail")  # shown on the screen or not
    assert action().sensitive == ()
    at = "contexts.public.rules[0].actions[0].lookup.sensitive"
    named = (
        'is not a field of this lookup\'s answer: its variables are named "crm_FIELD" (into: crm)'
    )
    assert errors(one(sensitive=["crm_ok", "crm_name", "member"])) == [
        f'{at}[0]: "crm_ok" {named}',  # set by the switch: whether the lookup answered
        f'{at}[2]: "member" {named}',
    ]
    assert errors(one(sensitive=["1x"])) == [
        f'{at}[0]: expected a variable name (a letter or "_", then letters, digits or "_"), '
        'got "1x"'
    ]


def test_seconds() -> None:
    (bridge,) = actions_of({"bridge": {"to": "1", "timeout": "45"}})
    assert isinstance(bridge, Bridge) and bridge.timeout == 45
    (default,) = actions_of({"bridge": {"to": "1", "timeout": None}})
    assert isinstance(default, Bridge) and default.timeout is None  # the switch's ring timeout
    for bad, shown in ((0, "0"), (-5, "-5"), (1.5, "1.5"), ("30s", '"30s"')):
        assert errors({"contexts": one_rule({"bridge": {"to": "1", "timeout": bad}})}) == [
            "contexts.public.rules[0].actions[0].bridge.timeout: "
            f"expected seconds (integer > 0), got {shown}"
        ]
    assert errors(
        {
            "contexts": one_rule(
                {"menu": {"prompt": "p", "options": {"1": ["answer"]}, "timeout": None}}
            )
        }
    ) == [
        "contexts.public.rules[0].actions[0].menu.timeout: "
        "expected seconds (integer > 0), got an empty value"
    ]


# --------------------------------------------------------------------------------------------
# Conditions and time windows


def test_windows() -> None:
    office = Window.model_validate({"days": "mon-fri", "from": "9:00", "to": "18:30"})
    assert office.days == ("mon", "tue", "wed", "thu", "fri")
    assert (office.start, office.end) == (time(9), time(18, 30))
    assert office.weekdays == frozenset(range(5))
    weekend = Window.model_validate({"days": ["sat", "sun"]})
    assert (weekend.start, weekend.end, weekend.dates) == (None, None, None)
    wrapping = Window.model_validate({"days": ["fri-mon", "wed"], "from": "22:00", "to": "06:00"})
    assert wrapping.days == ("mon", "wed", "fri", "sat", "sun")
    assert Window.model_validate({"days": "mon-tue, thu"}).days == ("mon", "tue", "thu")
    assert Window.model_validate({}).days == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    eve = Window.model_validate({"dates": ["2026-12-24"], "from": "09:00", "to": "12:00"})
    assert eve.dates == (date(2026, 12, 24),)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"from": "09:00"}, 'office[0].to: missing required key "to" (with "from"; leave both'),
        ({"to": "09:00"}, 'office[0].from: missing required key "from" (with "to"; leave both'),
        ({"from": "09:00", "to": "09:00"}, 'office[0].to: "to" must differ from "from" (both'),
        ({"from": "9", "to": "10:00"}, "office[0].from: expected a time (HH:MM, 00:00 to 23:59)"),
        ({"from": "08:00", "to": "24:00"}, "office[0].to: expected a time (HH:MM, 00:00 to"),
        ({"from": "08:60", "to": "10:00"}, "office[0].from: expected a time"),
        ({"days": "monday"}, 'office[0].days: unknown day "monday" (did you mean "mon"?)'),
        ({"days": ["mon", "xyz"]}, 'office[0].days[1]: unknown day "xyz" (use mon ... sun)'),
        ({"days": "mon-tue-wed"}, 'office[0].days: bad day range "mon-tue-wed": expected one'),
        ({"days": []}, "office[0].days: needs at least one day"),
        ({"days": [1]}, "office[0].days[0]: expected a day (mon ... sun) or a range, got 1"),
        ({"dates": ["24.12.2026"]}, 'office[0].dates[0]: expected a date (YYYY-MM-DD), got "24.'),
        ({"dates": ["2026-02-29"]}, "office[0].dates[0]: expected a date (YYYY-MM-DD), got"),
        ({"form": "09:00"}, 'office[0].form: unknown key "form" (did you mean "from"?)'),
    ],
)
def test_bad_windows(window: dict[str, Any], message: str) -> None:
    data = {"hours": {"office": [window]}, "contexts": one_rule("answer")}
    found = errors(data)
    assert len(found) == 1
    assert found[0].startswith(f"hours.{message}")


def test_conditions_refer_to_named_hours_and_calendars() -> None:
    plan = plan_of(
        one_rule(
            "answer",
            when={
                "hours": "office",
                "outside_hours": [{"from": "12:00", "to": "13:00"}],
                "holiday": "holidays",
                "vars": {"lang": "en", "tier": 1},
            },
        ),
        hours={"office": [{"days": "mon-fri", "from": "09:00", "to": "18:00"}]},
        calendars={"holidays": ["2026-12-25"]},
    )
    when = plan.contexts["public"].rules[0].when
    assert isinstance(when, When)
    assert when.hours == "office"
    assert when.outside_hours == (Window.model_validate({"from": "12:00", "to": "13:00"}),)
    assert (when.holiday, when.not_holiday, when.vars) == (
        "holidays",
        None,
        {"lang": "en", "tier": "1"},
    )
    assert plan.calendars["holidays"] == (date(2026, 12, 25),)
    assert errors({"hours": {"office": []}, "contexts": one_rule("answer")}) == [
        "hours.office: needs at least one window"
    ]
    assert errors({"contexts": one_rule("answer", when={"hours": []})}) == [
        "contexts.public.rules[0].when.hours: needs at least one time window"
    ]
    assert errors({"contexts": one_rule("answer", when={"hours": 1.5})}) == [
        "contexts.public.rules[0].when.hours: expected the name of hours or a list of time "
        "windows, got 1.5"
    ]


def test_names_of_contexts_and_keys_written_as_numbers() -> None:
    plan = plan_of({100: {"rules": [{"match": 100, "actions": [{"goto": "x"}]}]}, "x": {}})
    assert list(plan.contexts) == ["100", "x"]
    assert plan.contexts["100"].rules[0].match == "100"
    found = errors({"contexts": {1: {}, "1": {}, "a b": {}}})
    assert found == [
        'contexts.1: duplicate context name "1"',
        'contexts.a b: bad context name "a b": use letters, digits, "_" and "-"',
    ]


def test_timezone() -> None:
    plan = plan_of(one_rule("answer"), timezone="Asia/Tokyo")
    assert plan.zone.key == "Asia/Tokyo"
    assert errors({"timezone": "Nowhere/Atall", "contexts": one_rule("answer")}) == [
        'timezone: unknown time zone "Nowhere/Atall"'
    ]
    assert errors({"timezone": "../etc/passwd", "contexts": one_rule("answer")})[0].startswith(
        'timezone: unknown time zone "../etc/passwd"'
    )


def test_a_plan_needs_contexts() -> None:
    assert errors({}) == ['contexts: missing required key "contexts"']
    assert errors({"contexts": {}}) == ["contexts: needs at least one context"]


# --------------------------------------------------------------------------------------------
# Checks of the whole plan


def goto_loop_errors(contexts: dict[str, Any]) -> list[str]:
    try:
        plan_of(contexts)
    except ConfigErrors as exc:
        return [f"{e.path}: {e.message}" for e in exc.errors]
    return []


def rule(match: str, *actions: Any, **more: Any) -> dict[str, Any]:
    return {"match": match, "actions": list(actions), **more}


LOOP = "(every rule there goes straight to a goto, never waiting for the caller)"


def test_goto_into_itself_is_a_loop() -> None:
    assert goto_loop_errors(
        {"a": {"rules": [rule("_X.", {"set": {"x": "1"}}, {"goto": "a"})]}}
    ) == [f'contexts.a.rules[0].actions[1].goto: goto loop: "a" -> "a" {LOOP}']


def test_loop_through_an_included_context() -> None:
    contexts = {
        "a": {"include": ["b"]},
        "b": {"rules": [rule("_X.", {"record": "start"}, {"goto": {"context": "a"}})]},
    }
    assert goto_loop_errors(contexts) == [
        f'contexts.b.rules[0].actions[1].goto: goto loop: "a" -> "a" {LOOP}'
    ]


def test_three_contexts_in_a_loop_are_reported_once() -> None:
    contexts = {
        "a": {"rules": [rule("1", {"goto": "b"}), rule("2", {"goto": "c"})]},
        "b": {"rules": [rule("_X.", {"goto": "c"})]},
        "c": {"rules": [rule("_X.", {"goto": "a"})]},
    }
    assert goto_loop_errors(contexts) == [
        f'contexts.a.rules[1].actions[0].goto: goto loop: "a" -> "c" -> "a" {LOOP}'
    ]


@pytest.mark.parametrize(
    "contexts",
    [
        # one rule waits for the caller: calls to it leave the loop
        {"a": {"rules": [rule("1", {"goto": "a"}), rule("2", "answer")]}},
        # the goto comes after the call is answered
        {"a": {"rules": [rule("_X.", "answer", {"goto": "a"})]}},
        # the goto only runs when the lookup fails: not every path
        {
            "a": {
                "rules": [rule("_X.", {"lookup": {"service": "s", "on_failure": [{"goto": "a"}]}})]
            }
        },
        # a transfer or a hangup ends the call first
        {
            "a": {
                "rules": [rule("1", {"transfer": {"to": "1"}}, {"goto": "a"}), rule("2", "hangup")]
            }
        },
        # b leaves the loop, so a does too
        {
            "a": {"rules": [rule("_X.", {"goto": "b"})]},
            "b": {"rules": [rule("1", {"goto": "a"}), rule("2", {"play": {"prompt": "p"}})]},
        },
        # a goto inside a menu option waits for the caller's key
        {
            "a": {
                "rules": [rule("_X.", {"menu": {"prompt": "p", "options": {"1": [{"goto": "a"}]}}})]
            }
        },
    ],
)
def test_paths_that_wait_for_the_caller_are_no_loop(contexts: dict[str, Any]) -> None:
    plan_of(contexts, services={"s": {"url": "http://127.0.0.1:1/"}})


def test_include_cycles() -> None:
    assert goto_loop_errors({"a": {"include": ["a"]}}) == [
        'contexts.a.include[0]: include cycle: "a" includes itself'
    ]
    assert goto_loop_errors({"a": {"include": "b"}, "b": {"include": ["x", "a"]}, "x": {}}) == [
        'contexts.a.include[0]: include cycle: "a" -> "b" -> "a"'
    ]


def test_rules_hidden_by_an_identical_one() -> None:
    contexts = {
        "a": {
            "rules": [
                rule("100", "answer"),
                rule("100", "hangup", caller="_0X."),  # another caller: fine
                rule("100", "hangup", when={"vars": {"lang": "en"}}),  # another condition: fine
                rule("100", {"play": {"prompt": "p"}}, when={"vars": {"lang": "en"}}),
                rule(100, "hangup"),  # type: ignore[arg-type]
            ]
        }
    }
    assert goto_loop_errors(contexts) == [
        'contexts.a.rules[3].match: duplicate rule: rules[2] already matches "100" with the same '
        "conditions",
        'contexts.a.rules[4].match: duplicate rule: rules[0] already matches "100" with the same '
        "conditions",
    ]


# --------------------------------------------------------------------------------------------
# JSON Schema


def walk_properties(schema: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        for name, prop in (schema.get("properties") or {}).items():
            found.append((f"{where}.{name}", prop))
        for key, value in schema.items():
            found.extend(walk_properties(value, f"{where}/{key}"))
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found.extend(walk_properties(value, f"{where}[{i}]"))
    return found


def test_json_schema_describes_every_key() -> None:
    schema = Plan.model_json_schema()
    model_properties = [
        (where, prop)
        for where, prop in walk_properties(schema)
        if where.rsplit(".", 1)[-1] not in ACTION_KEYS  # the one-key action wrappers
    ]
    assert len(model_properties) > 60
    undocumented = [where for where, prop in model_properties if not prop.get("description")]
    assert undocumented == []
    assert '"where"' not in json.dumps(schema)


def test_json_schema_offers_every_action() -> None:
    rule_schema = Plan.model_json_schema()["$defs"]["Rule"]
    choices = rule_schema["properties"]["actions"]["items"]["oneOf"]
    keys: set[str] = set()
    bare: set[str] = set()
    for choice in choices:
        for form in choice.get("anyOf", [choice]):
            if "const" in form:
                bare.add(form["const"])
            else:
                assert form["additionalProperties"] is False
                keys.update(form["required"])
    assert keys == set(ACTION_KEYS)
    assert bare == {"answer", "hangup"}
    window = Plan.model_json_schema()["$defs"]["Window"]["properties"]
    assert {"from", "to", "days", "dates"} <= set(window)


# --------------------------------------------------------------------------------------------
# Any data: errors, never a traceback

_WORDS = [
    *ACTION_KEYS,
    *("contexts", "public", "rules", "match", "actions", "include", "when", "hours", "days"),
    *("from", "to", "dates", "prompt", "options", "on_failure", "into", "min_digits", "context"),
    *("max_digits", "terminator", "timeout", "number", "cause", "action", "name", "skills"),
    *("service", "body", "method", "vars", "holiday", "outside_hours", "caller", "1", "#"),
    *("_1XX", "/x(/", "09:00", "mon-fri", "2026-12-25", "${a}", "${", "", "crm", "office"),
]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 200),
    st.floats(allow_nan=True),
    st.sampled_from(_WORDS),
    st.text(max_size=4),
)
_TREES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_WORDS), st.integers(0, 12)), inner, max_size=4),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(_TREES, max_size=4), when=_TREES, include=_TREES)
def test_any_data_gives_config_errors_not_exceptions(
    actions: list[Any], when: Any, include: Any
) -> None:
    data = {
        "hours": {"office": [{"from": "09:00", "to": "10:00"}]},
        "services": {"crm": {"url": "http://127.0.0.1:1/"}},
        "contexts": {
            "public": {"rules": [{"match": "1", "when": when, "actions": actions}]},
            "other": {"include": include, "rules": [{"match": "_X.", "actions": actions}]},
        },
    }
    try:
        validate(Plan, data, file="plan.yaml")
    except ConfigErrors as exc:
        assert all(e.message and e.file == "plan.yaml" for e in exc.errors)
