"""The dialplan's typed models: contexts, rules, conditions, time windows and actions.

A plan file (YAML, loaded by :mod:`softswitch.routing.loader`) has this shape::

    timezone: Asia/Tokyo            # IANA time zone of the time windows and holidays
    prompts: prompts                # folder of the WAV prompts, relative to the plan file
    secrets: secrets.yaml           # values for !secret NAME (optional)
    calendars: {holidays: ["2026-12-25"]}
    hours: {office: [{days: mon-fri, from: "09:00", to: "18:00"}]}
    services: {crm: {url: "http://127.0.0.1:8080/api/demo/crm", timeout: 2}}
    contexts:
      public:
        include: [features]
        rules:
          - match: "100"
            when: {hours: office}
            actions: [answer, {play: {prompt: welcome}}, {queue: {name: general}}]

Every argument is checked when the plan loads, not when a call reaches it: names of contexts,
hours, calendars and services must exist, prompt files must exist, patterns and regexes must
be well formed, and the plan as a whole must have no include cycle, no loop of gotos that never
waits for the caller and no rule hidden by an identical one before it. Mistakes are reported
with ``file:line:col`` through :mod:`softswitch.yaml_loader`, all of them at once.

Actions are a discriminated union (:data:`Action`) of frozen models, one per action key
(:class:`Answer`, :class:`Play`, :class:`Menu`, :class:`Gather`, :class:`SetVars`,
:class:`Lookup`, :class:`Bridge`, :class:`Queue`, :class:`Voicemail`, :class:`Record`,
:class:`Goto`, :class:`Transfer`, :class:`Hangup`), so that code can ``match`` on them. Rules
and actions keep where they were written (:attr:`Rule.where`, ``"main.yaml:42:7"``) for traces.
The docstrings of the fields are the descriptions of the published JSON Schema.
"""

from __future__ import annotations

import difflib
import os
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import (
    CoreSchema,
    InitErrorDetails,
    PydanticCustomError,
    PydanticKnownError,
    core_schema,
)

from softswitch.config import Integer, Text, _Section
from softswitch.yaml_loader import Loc, _show, rule_violation, validate_with_rules

__all__ = [
    "ACTION_KEYS",
    "DTMF_KEYS",
    "WEEKDAYS",
    "Action",
    "Answer",
    "Bridge",
    "Context",
    "Gather",
    "Goto",
    "Hangup",
    "Lookup",
    "Menu",
    "Plan",
    "Play",
    "Queue",
    "Record",
    "Rule",
    "Service",
    "SetVars",
    "Transfer",
    "Voicemail",
    "When",
    "Window",
    "pattern_kind",
    "pattern_problem",
    "template_problem",
]

Problems = list[tuple[Loc, str]]

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names, in the order of :meth:`datetime.date.weekday` (0 is Monday)."""
DTMF_KEYS = "0123456789*#ABCD"
"""The sixteen DTMF keys (RFC 4733 §3.2 events 0-15)."""

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
_VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DAY = "(mon|tue|wed|thu|fri|sat|sun)"
_DAY_SPEC_PATTERN = f"^{_DAY}(-{_DAY})?( *, *{_DAY}(-{_DAY})?)*$"
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DIGITS = re.compile(r"[0-9]+")

# What the loader hands to the validators (``info.context``): the YamlDocument, for positions,
# and the plan's folder, for prompt files.
_DOC = "doc"
_FOLDER = "folder"


@dataclass(frozen=True, slots=True)
class _Defined:
    """What the plan being validated defines, for the checks of references to it."""

    names: Mapping[str, frozenset[str]]
    prompts: _PromptFolder | None


#: Set by Plan while its parts are validated (also when a plan is built in code).
_DEFINED: ContextVar[_Defined | None] = ContextVar("routing_plan_defined", default=None)


# --------------------------------------------------------------------------------------------
# Helpers


def _quoted(text: str) -> str:
    """A name, number or pattern quoted in a message, as written (backslashes and all)."""
    return f'"{text}"'


def _suggest(word: str, candidates: Sequence[str] | frozenset[str]) -> str | None:
    matches = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _custom(message: str) -> PydanticCustomError:
    """An error whose message is exactly ``message`` (the loader prints it as it is)."""
    return PydanticCustomError("routing", "{message}", {"message": message})


def _relocated(
    exc: ValidationError, fix: Callable[[tuple[Any, ...]], tuple[Any, ...]]
) -> ValidationError:
    """``exc`` with every error location passed through ``fix``."""
    details = [
        InitErrorDetails(
            type=PydanticCustomError(err["type"], err["msg"], err.get("ctx")),
            loc=fix(tuple(err["loc"])),
            input=err["input"],
        )
        for err in exc.errors(include_url=False)
    ]
    return ValidationError.from_exception_data(exc.title, details)


def _context(info: ValidationInfo) -> Mapping[str, Any]:
    ctx = info.context
    return ctx if isinstance(ctx, Mapping) else {}


def _as_text(value: Any) -> Any:
    """A plain decimal integer where text is expected (``match: 100``) is that text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------
# Syntax of numbers, patterns, regexes and ${...} templates

_PATTERN_CHARS = frozenset("0123456789XZNxzn*#+")
_PATTERN_HELP = "digits, X, Z, N, [...], *, # and +, then . or ! at the end"


def pattern_kind(text: str) -> Literal["exact", "pattern", "regex"]:
    """How ``text`` matches: ``_...`` is an Asterisk-style pattern, ``/.../`` a regex."""
    if text.startswith("_"):
        return "pattern"
    if text.startswith("/"):
        return "regex"
    return "exact"


def _range_problem(inner: str) -> str | None:
    if not inner:
        return '"[]" is empty'
    i = 0
    while i < len(inner):
        if not inner[i].isdigit() or not inner[i].isascii():
            return f'"[{inner}]" may hold only digits and ranges such as 1-5'
        if i + 1 < len(inner) and inner[i + 1] == "-":
            if i + 2 >= len(inner) or not inner[i + 2].isdigit() or not inner[i + 2].isascii():
                return f'"[{inner}]" has an unfinished range'
            if inner[i] > inner[i + 2]:
                return f'range "{inner[i : i + 3]}" runs backwards'
            i += 3
        else:
            i += 1
    return None


def pattern_problem(text: str) -> str | None:
    """What is wrong with a match (exact number, ``_`` pattern or ``/regex/``), or None.

    A pattern is ``_`` followed by digits, ``X`` (0-9), ``Z`` (1-9), ``N`` (2-9) (also in
    lower case), ``*``, ``#``, ``+`` and ranges in brackets (``[1-5]``, ``[135]``), and may end
    with ``.`` (one or more further characters) or ``!`` (zero or more), as in Asterisk. A
    regex is written between slashes and follows Python's :mod:`re` syntax.
    """
    shown = _quoted(text)
    if not text:
        return "must not be empty"
    kind = pattern_kind(text)
    if kind == "regex":
        if len(text) < 3 or not text.endswith("/"):
            return f'bad regex {shown}: write it between slashes, such as "/^1[0-9]{{3}}$/"'
        try:
            re.compile(text[1:-1])
        except re.error as exc:
            return f"bad regex {shown}: {exc}"
        return None
    if kind == "exact":
        if any(c.isspace() for c in text):
            return f"bad number {shown}: it must not contain spaces"
        return None
    body = text[1:]
    if not body:
        return f'bad pattern {shown}: nothing follows "_"'
    i = 0
    while i < len(body):
        c = body[i]
        if c in ".!":
            if i != len(body) - 1:
                return f'bad pattern {shown}: "{c}" may only come last'
        elif c == "[":
            end = body.find("]", i)
            if end < 0:
                return f'bad pattern {shown}: "[" is not closed'
            problem = _range_problem(body[i + 1 : end])
            if problem is not None:
                return f"bad pattern {shown}: {problem}"
            i = end
        elif c not in _PATTERN_CHARS:
            return f'bad pattern {shown}: unknown character "{c}" (use {_PATTERN_HELP})'
        i += 1
    return None


def template_problem(text: str) -> str | None:
    """What is wrong with the ``${NAME}`` references in ``text``, or None.

    A ``$`` not followed by ``{`` is kept as it is; ``${`` must start a reference to a
    variable name (a letter or ``_``, then letters, digits or ``_``) closed by ``}``.
    """
    i = text.find("${")
    while i >= 0:
        end = text.find("}", i + 2)
        if end < 0:
            return f'"${{" at character {i + 1} of {_quoted(text)} is not closed by "}}"'
        name = text[i + 2 : end]
        if not _VARIABLE.fullmatch(name):
            return (
                f'"${{{name}}}" does not name a variable '
                '(a letter or "_", then letters, digits or "_")'
            )
        i = text.find("${", end + 1)
    return None


# --------------------------------------------------------------------------------------------
# Value types


def _pattern(value: str) -> str:
    problem = pattern_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _template(value: str) -> str:
    problem = template_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f'expected a name of letters, digits, "_" and "-", got {_quoted(value)}')
    return value


def _variable(value: str) -> str:
    if not _VARIABLE.fullmatch(value):
        raise ValueError(
            'expected a variable name (a letter or "_", then letters, digits or "_"), '
            f"got {_quoted(value)}"
        )
    return value


def _target(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"expected a user or number without spaces, got {_quoted(value)}")
    return value


def _seconds(value: Any) -> int:
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(f"expected seconds (integer > 0), got {_show(value)}")


def _duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e9:
        return float(value)
    raise ValueError(f"expected seconds (a number > 0), got {_show(value)}")


def _clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    found = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"expected a time (HH:MM, 00:00 to 23:59), got {_show(value)}")
    return time(int(found[1]), int(found[2]))


def _iso_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"expected a date (YYYY-MM-DD), got {_show(value)}")


def _dtmf_key(value: Any) -> str:
    value = _as_text(value)
    if isinstance(value, str) and len(value) == 1 and value in DTMF_KEYS:
        return value
    raise ValueError(f"expected one DTMF key (0-9, *, #, A-D), got {_show(value)}")


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        text = f"unknown time zone {_quoted(value)}"
        guess = _suggest(value, frozenset(zoneinfo.available_timezones()))
        raise ValueError(f'{text} (did you mean "{guess}"?)' if guess else text) from None
    return value


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expected an http:// or https:// URL, got {_quoted(value)}")
    return value


_LABELS = {
    "contexts": ("context", "contexts"),
    "hours": ("hours", "hours"),
    "calendars": ("calendar", "calendars"),
    "services": ("service", "services"),
}


def _unknown(kind: str, value: str, known: frozenset[str]) -> str:
    """The message for a name that the plan does not define under ``kind``."""
    one, many = _LABELS[kind]
    text = f"unknown {one} {_quoted(value)}"
    guess = _suggest(value, known)
    if guess is not None:
        return f'{text} (did you mean "{guess}"?)'
    if not known:
        return f"{text} (the plan defines no {many})"
    if len(known) <= 10:
        return f"{text} (defined: {', '.join(sorted(known))})"
    return text


def _reference(kind: str) -> Callable[[str, ValidationInfo], str]:
    """A check that a name refers to something the plan defines under ``kind``."""

    def check(value: str, info: ValidationInfo) -> str:
        defined = _DEFINED.get()
        if defined is not None and value not in defined.names[kind]:
            raise ValueError(_unknown(kind, value, defined.names[kind]))
        return value

    return check


def _prompt_name(value: str, info: ValidationInfo) -> str:
    parts = value.replace("\\", "/").split("/")
    if not value or value.startswith(("/", "\\")) or ".." in parts or "" in parts:
        raise ValueError(f"expected the name of a file in the prompts folder, got {_quoted(value)}")
    defined = _DEFINED.get()
    folder = None if defined is None else defined.prompts
    if folder is not None:
        problem = folder.problem(value)
        if problem is not None:
            raise ValueError(problem)
    return value


def _one_or_many(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Accept one item where a list is expected; its errors are reported at the item itself."""
    if isinstance(value, list | tuple):
        return handler(value)
    try:
        return handler([value])
    except ValidationError as exc:
        raise _relocated(exc, lambda loc: loc[1:] if loc[:1] == (0,) else loc) from None


def _non_empty(what: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    def check(value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise ValueError(f"needs at least one {what}")
        return value

    return check


Name = Annotated[
    Text, AfterValidator(_name), WithJsonSchema({"type": "string", "pattern": _NAME_PATTERN})
]
Variable = Annotated[
    str,
    AfterValidator(_variable),
    WithJsonSchema({"type": "string", "pattern": _VARIABLE_PATTERN}),
]
Template = Annotated[Text, AfterValidator(_template)]
Pattern = Annotated[Text, AfterValidator(_pattern)]
Target = Annotated[Text, AfterValidator(_target)]
ContextRef = Annotated[Name, AfterValidator(_reference("contexts"))]
CalendarRef = Annotated[Name, AfterValidator(_reference("calendars"))]
ServiceRef = Annotated[Name, AfterValidator(_reference("services"))]
PromptName = Annotated[Text, AfterValidator(_prompt_name)]
Prompts = Annotated[
    tuple[PromptName, ...],
    WrapValidator(_one_or_many, json_schema_input_type=str | list[str]),
    AfterValidator(_non_empty("prompt")),
]
Seconds = Annotated[
    int, PlainValidator(_seconds), WithJsonSchema({"type": "integer", "minimum": 1})
]
Duration = Annotated[
    float, PlainValidator(_duration), WithJsonSchema({"type": "number", "exclusiveMinimum": 0})
]
ClockTime = Annotated[
    time,
    PlainValidator(_clock),
    WithJsonSchema({"type": "string", "pattern": "^([01]?[0-9]|2[0-3]):[0-5][0-9]$"}),
]
IsoDate = Annotated[
    date, PlainValidator(_iso_date), WithJsonSchema({"type": "string", "format": "date"})
]
DtmfKey = Annotated[
    str, PlainValidator(_dtmf_key), WithJsonSchema({"type": "string", "enum": list(DTMF_KEYS)})
]
NameKey = Annotated[str, Field(pattern=_NAME_PATTERN)]
VariableKey = Annotated[str, Field(pattern=_VARIABLE_PATTERN)]


# --------------------------------------------------------------------------------------------
# Mappings keyed by names (keys written as numbers count as their text)


def _keys_checked(
    what: str, check: Callable[[str], bool], hint: str
) -> Callable[[Any, ValidatorFunctionWrapHandler], Any]:
    """A wrap validator for a mapping whose keys must pass ``check``.

    Bad keys are reported at their entry and left out of the inner validation.
    """

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(value, dict):
            return handler(value)
        problems: Problems = []
        kept: dict[str, Any] = {}
        for key, item in value.items():
            name = _as_text(key)
            at: Loc = (name,) if isinstance(name, str) else (key,)
            if not isinstance(name, str) or not check(name):
                problems.append((at, f"bad {what} {_show(name)}: {hint}"))
            elif name in kept:
                problems.append((at, f'duplicate {what} "{name}"'))
            else:
                kept[name] = item
        return validate_with_rules(handler, kept, problems)

    return validate


def _named(what: str) -> WrapValidator:
    return WrapValidator(
        _keys_checked(
            f"{what} name",
            lambda name: bool(_NAME.fullmatch(name)),
            'use letters, digits, "_" and "-"',
        )
    )


_VARIABLE_KEYS = WrapValidator(
    _keys_checked(
        "variable name",
        lambda name: bool(_VARIABLE.fullmatch(name)),
        'use a letter or "_", then letters, digits or "_"',
    )
)
_DTMF_OPTIONS = WrapValidator(
    _keys_checked(
        "option",
        lambda name: len(name) == 1 and name in DTMF_KEYS,
        "a menu option is one DTMF key: 0-9, *, #, A-D",
    )
)


# --------------------------------------------------------------------------------------------
# Prompts folder (checked while validating, when the plan's folder is known)


@dataclass(slots=True)
class _PromptFolder:
    """The prompts folder of a plan being loaded: which prompt names name existing files."""

    path: Path
    shown: str
    checked: dict[str, str | None] = field(default_factory=dict)
    stems: frozenset[str] | None = None

    def problem(self, name: str) -> str | None:
        if name in self.checked:
            return self.checked[name]
        file = name if name.lower().endswith(".wav") else f"{name}.wav"
        problem = None
        if not (self.path / file).is_file():
            shown = os.path.normpath(os.path.join(self.shown, file)).replace(os.sep, "/")
            problem = f'prompt file "{shown}" does not exist'
            guess = _suggest(name.removesuffix(".wav"), self._stems())
            if guess is not None:
                problem += f' (did you mean "{guess}"?)'
        self.checked[name] = problem
        return problem

    def _stems(self) -> frozenset[str]:
        if self.stems is None:
            try:
                found = [p.stem for p in self.path.iterdir() if p.suffix.lower() == ".wav"]
            except OSError:
                found = []
            self.stems = frozenset(found[:10_000])
        return self.stems


# --------------------------------------------------------------------------------------------
# Where rules and actions were written


class _Located(_Section):
    """A part of the plan that remembers where it was written (for traces)."""

    where: SkipJsonSchema[str] = Field(default="", exclude=True, repr=False)
    """``file:line:col`` where this was written in the plan ("" when built in code). Set by
    the loader; a plan cannot set it."""

    @field_validator("where")
    @classmethod
    def _not_written(cls, value: str) -> str:
        raise PydanticKnownError("extra_forbidden")

    def __eq__(self, other: object) -> bool:
        # Equal parts are equal wherever they were written.
        if type(other) is not type(self):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash((type(self), self._compared()))

    def _compared(self) -> tuple[Any, ...]:
        values = self.__dict__
        return tuple(values[n] for n in type(self).model_fields if n != "where")


def _positioned(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    """Validate a list of rules or actions and note where each item was written."""
    result = handler(value)
    doc = _context(info).get(_DOC)
    positions = doc.item_positions(value) if doc is not None and type(value) is list else None
    if positions:
        for item, (file, line, col) in zip(result, positions, strict=False):
            if isinstance(item, _Located):
                # Frozen, but not yet seen by anyone: the loader completes what it validated.
                item.__dict__["where"] = f"{file}:{line}:{col}"
    return result


# --------------------------------------------------------------------------------------------
# Time windows and conditions


def _day_range(spec: str) -> tuple[str, ...] | str:
    """The days of ``mon`` or ``fri-mon`` (wrapping past Sunday), or a message."""
    ends = spec.split("-")
    if len(ends) > 2:
        return f"bad day range {_quoted(spec)}: expected one day or a range such as mon-fri"
    for end in ends:
        if end not in WEEKDAYS:
            text = f"unknown day {_quoted(end)}"
            guess = _suggest(end.lower(), WEEKDAYS)
            return f'{text} (did you mean "{guess}"?)' if guess else f"{text} (use mon ... sun)"
    first = WEEKDAYS.index(ends[0])
    last = WEEKDAYS.index(ends[-1])
    return tuple(WEEKDAYS[(first + i) % 7] for i in range((last - first) % 7 + 1))


def _days(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    days: set[str] = set()
    problems: Problems = []
    for i, item in enumerate(items):
        at: Loc = (i,) if isinstance(value, list | tuple) else ()
        if not isinstance(item, str):
            problems.append((at, f"expected a day (mon ... sun) or a range, got {_show(item)}"))
            continue
        for part in item.split(","):
            found = _day_range(part.strip())
            if isinstance(found, str):
                problems.append((at, found))
                break
            days.update(found)
    if problems:
        raise rule_violation(*problems)
    if not days:
        raise ValueError("needs at least one day")
    return tuple(d for d in WEEKDAYS if d in days)


_DaySpec = Annotated[str, Field(pattern=_DAY_SPEC_PATTERN)]
Days = Annotated[
    tuple[str, ...], PlainValidator(_days, json_schema_input_type=_DaySpec | list[_DaySpec])
]


class Window(_Section):
    """A time window in the plan's time zone: days of the week or dates, and a time of day."""

    days: Days = WEEKDAYS
    """Days of the week: a list such as [mon, tue], a range such as "mon-fri" (ranges may wrap:
    "fri-mon"), or both: "mon-wed, fri" or [mon-wed, fri]. Default every day. For a window that
    runs across midnight these name the day on which it starts."""
    dates: tuple[IsoDate, ...] | None = None
    """Only on these dates (YYYY-MM-DD); with days as well, both must hold."""
    start: ClockTime | None = Field(default=None, alias="from")
    """Start time HH:MM (included). Leave out from and to for the whole day."""
    end: ClockTime | None = Field(default=None, alias="to")
    """End time HH:MM (not included). Earlier than from: the window runs across midnight."""

    @model_validator(mode="after")
    def _times(self) -> Window:
        if (self.start is None) != (self.end is None):
            missing = "to" if self.end is None else "from"
            other = "from" if missing == "to" else "to"
            raise rule_violation(
                (
                    (missing,),
                    f'missing required key "{missing}" (with "{other}"; leave both out for '
                    "the whole day)",
                )
            )
        if self.start is not None and self.start == self.end:
            shown = self.start.strftime("%H:%M")
            text = f'"to" must differ from "from" (both {shown}); leave both out for the whole day'
            raise rule_violation((("to",), text))
        return self

    @cached_property
    def weekdays(self) -> frozenset[int]:
        """The days as numbers of :meth:`datetime.date.weekday` (0 is Monday)."""
        return frozenset(WEEKDAYS.index(d) for d in self.days)


_WINDOWS: TypeAdapter[tuple[Window, ...]] = TypeAdapter(tuple[Window, ...])
_HOURS_NAME = _reference("hours")


def _hours_ref(value: Any, info: ValidationInfo) -> str | tuple[Window, ...]:
    value = _as_text(value)
    if isinstance(value, str):
        return _HOURS_NAME(_name(value), info)
    if isinstance(value, list | tuple):
        windows: tuple[Window, ...] = _WINDOWS.validate_python(value, context=info.context)
        if not windows:
            raise ValueError("needs at least one time window")
        return windows
    raise ValueError(f"expected the name of hours or a list of time windows, got {_show(value)}")


HoursRef = Annotated[
    str | tuple[Window, ...],
    PlainValidator(_hours_ref, json_schema_input_type=NameKey | list[Window]),
]


class When(_Section):
    """Conditions of a rule; all that are given must hold."""

    hours: HoursRef | None = None
    """Only within these hours: the name of an entry of ``hours`` or a list of windows."""
    outside_hours: HoursRef | None = None
    """Only outside these hours: the name of an entry of ``hours`` or a list of windows."""
    holiday: CalendarRef | None = None
    """Only when today (in the plan's time zone) is in this calendar."""
    not_holiday: CalendarRef | None = None
    """Only when today (in the plan's time zone) is not in this calendar."""
    vars: Annotated[Mapping[VariableKey, Text], _VARIABLE_KEYS] = Field(default_factory=dict)
    """Only when these call variables equal these texts."""


# --------------------------------------------------------------------------------------------
# Actions


class _Action(_Located):
    """An action of a rule."""


class Answer(_Action):
    """Answer the call (200 OK), so that prompts are heard and digits collected."""


class Play(_Action):
    """Play prompts to the caller, one after the other."""

    prompt: Prompts
    """A prompt or a list of prompts: WAV files in the prompts folder (".wav" may be left
    out)."""
    barge_in: bool = False
    """Stop playing when the caller presses a key; the key counts for a following menu or
    gather."""


class Menu(_Action):
    """Play a prompt and run the actions of the key the caller presses."""

    prompt: Prompts
    """The menu's prompt or prompts (played in full again on every try)."""
    options: Annotated[
        Mapping[Annotated[str, Field(pattern=r"^[0-9*#A-D]$")], Actions],
        _DTMF_OPTIONS,
    ]
    """The actions for each key: one DTMF key (0-9, "*", "#", A-D; quote * and #) per option."""
    timeout: Seconds = 5
    """Seconds to wait for a key after the prompt."""
    retries: Integer = Field(default=3, ge=0, le=10)
    """Times the menu is offered again after an invalid key or no key."""
    invalid_prompt: PromptName | None = None
    """Played after a key that is not an option (none: the menu is just repeated)."""
    timeout_prompt: PromptName | None = None
    """Played when no key was pressed in time (none: the menu is just repeated)."""
    on_failure: Actions = ()
    """Run when the retries are used up (none: continue after the menu)."""

    @field_validator("options")
    @classmethod
    def _some_option(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        if not value:
            raise ValueError("a menu needs at least one option")
        return value


class Gather(_Action):
    """Collect digits from the caller into a call variable."""

    prompt: Prompts | None = None
    """Prompt or prompts played first (none: silence)."""
    into: Variable
    """The call variable that receives the digits (without the terminator)."""
    min_digits: Integer = Field(default=1, ge=1, le=64)
    """Fewest digits accepted."""
    max_digits: Integer = Field(default=20, ge=1, le=64)
    """Most digits accepted; collecting stops when this many have been pressed."""
    terminator: DtmfKey | None = "#"
    """The key that ends the input early (quote it: "#"), or null for none."""
    timeout: Seconds = 5
    """Seconds to wait for the first digit."""
    inter_digit_timeout: Seconds = 3
    """Seconds to wait for each further digit."""
    sensitive: bool = False
    """The digits are personal data (a card or member number): they never appear in logs,
    traces or call records."""
    on_failure: Actions = ()
    """Run when too few digits arrive in time (none: continue with the variable empty)."""

    @model_validator(mode="after")
    def _digit_range(self) -> Gather:
        if self.min_digits > self.max_digits:
            blame = "max_digits" if "max_digits" in self.model_fields_set else "min_digits"
            text = f"min_digits ({self.min_digits}) is greater than max_digits ({self.max_digits})"
            raise rule_violation(((blame,), text))
        return self


class SetVars(_Action):
    """Set call variables; ``${name}`` in a value is replaced by that variable's value."""

    variables: Annotated[Mapping[VariableKey, Template], _VARIABLE_KEYS]
    """Variable name -> text, e.g. ``set: {greeting: "Hello ${caller_name}"}``."""


class Lookup(_Action):
    """Ask an HTTP JSON service (a CRM) and put its answer into call variables."""

    service: ServiceRef
    """The name of an entry of ``services``."""
    method: Literal["GET", "POST"] = "GET"
    """HTTP method."""
    path: Template = ""
    """Path added to the service's URL, with ``${...}`` references (e.g. "/members/${member}")."""
    query: Mapping[str, Template] = Field(default_factory=dict)
    """Query parameters, with ``${...}`` references."""
    body: Mapping[str, Template] = Field(default_factory=dict)
    """POST only: fields of the JSON object sent, with ``${...}`` references."""
    timeout: Duration | None = None
    """Seconds to wait for the answer (none: the service's timeout)."""
    into: Variable = "lookup"
    """Prefix of the call variables set from the answer: a top-level field ``name`` of the
    JSON object answered becomes the variable ``PREFIX_name``."""
    screen_pop: tuple[Variable, ...] = ()
    """Call variables shown to the agent who takes the call, in this order (after those of
    earlier lookups). Sensitive ones (a sensitive gather's digits, ``sensitive`` fields, or
    values made from them) are masked for agents whose location may not see personal data."""
    sensitive: tuple[Variable, ...] = ()
    """Variables set by this lookup (``PREFIX_field``) that are personal data (a date of
    birth, an e-mail address): masked in logs and traces like a sensitive gather's digits, and
    in the screen pop shown only to agents at locations allowed to see personal data."""
    on_failure: Actions = ()
    """Run when the service fails, times out or answers with an error (none: continue)."""

    @model_validator(mode="after")
    def _rules(self) -> Lookup:
        problems: Problems = []
        if self.path and not self.path.startswith("/"):
            problems.append((("path",), f'must start with "/", got {_quoted(self.path)}'))
        if self.body and self.method != "POST":
            problems.append((("body",), 'only used with method "POST"'))
        prefix = f"{self.into}_"
        for i, name in enumerate(self.sensitive):
            if not name.startswith(prefix) or name == f"{prefix}ok":
                text = (
                    f"{_quoted(name)} is not a field of this lookup's answer: its variables are "
                    f'named "{prefix}FIELD" (into: {self.into})'
                )
                problems.append((("sensitive", i), text))
        if problems:
            raise rule_violation(*problems)
        return self


class Bridge(_Action):
    """Ring a user, or several at once, and connect the caller to the first who answers."""

    to: Annotated[
        tuple[Target, ...],
        WrapValidator(_one_or_many, json_schema_input_type=str | list[str]),
        AfterValidator(_non_empty("user")),
    ]
    """A user or number, or a list of them rung at the same time."""
    timeout: Seconds | None = None
    """Seconds to ring before giving up (the rule continues with its next action); none:
    the switch's ``calls.ring_timeout``."""


class Queue(_Action):
    """Put the caller in a queue of agents (ACD)."""

    name: Name
    """The queue."""
    priority: Integer = Field(default=0, ge=0, le=100)
    """Higher is served first."""
    skills: Annotated[
        Mapping[NameKey, Annotated[Integer, Field(ge=0, le=100)]], _named("skill")
    ] = Field(default_factory=dict)
    """Required skills and their least level (0-100), e.g. {english: 50}."""
    data_class: Literal["general", "personal"] = "general"
    """general, or personal: the call carries personal data and is never offered to home
    agents."""


class Voicemail(_Action):
    """Record a message into a mailbox (after a greeting and a beep)."""

    mailbox: Name
    """The mailbox (e.g. an extension number)."""
    max_length: Seconds = 120
    """Longest message in seconds."""
    beep: bool = True
    """Play a beep before recording."""
    prompt: PromptName | None = None
    """Greeting played first (none: just the beep)."""


class Record(_Action):
    """Control the call recording: ``record: start`` or ``{action: pause, reason: ...}``."""

    action: Literal["start", "pause", "resume", "stop"]
    """start, pause, resume or stop."""
    reason: Text | None = None
    """Why (written to the recording's events), e.g. "card number"."""


class Goto(_Action):
    """Continue in another context: ``goto: CONTEXT`` or ``{context: ..., number: ...}``."""

    context: ContextRef
    """The context."""
    number: Annotated[Text, AfterValidator(_target)] | None = None
    """The number to match there (none: the number dialled)."""


class Transfer(_Action):
    """Transfer the caller to another user or number and leave the call."""

    to: Target
    """A user or number."""


class Hangup(_Action):
    """End the call: ``hangup`` or ``{hangup: {cause: busy}}``."""

    cause: Literal["normal", "busy", "rejected", "unavailable", "no_answer"] = "normal"
    """What the caller is told: normal (BYE or 480), busy (486), rejected (603),
    unavailable (480), no_answer (408)."""


@dataclass(frozen=True, slots=True)
class _Form:
    """How an action is written: ``KEY: ARGUMENTS``, maybe bare (``- answer``), maybe with a
    single value for one field (``goto: CONTEXT``), maybe a mapping that is one field (set)."""

    key: str
    bare: bool = False
    scalar: str | None = None
    scalar_what: str = ""
    scalar_list: bool = False  # the single field also takes a list (play: [a, b])
    whole: str | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_wrap_validator_function(self._validate, handler(source))

    def _validate(self, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, _Action):
            return handler(value)
        argument = value.get(self.key) if isinstance(value, Mapping) else None
        if self.bare and argument is None:
            return handler({})
        if self.whole is not None:
            whole = self.whole
            try:
                return handler({whole: argument})
            except ValidationError as exc:
                raise _relocated(exc, lambda loc: loc[1:] if loc[:1] == (whole,) else loc) from None
        if self.scalar is not None and not isinstance(argument, Mapping):
            if isinstance(_as_text(argument), str) or (
                self.scalar_list and isinstance(argument, list)
            ):
                return handler({self.scalar: argument})
            raise _custom(f"expected {self.scalar_what} or a mapping, got {_show(argument)}")
        return handler(argument)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        inner = handler(schema)
        value: JsonSchemaValue = inner
        if self.whole is not None:
            value = self._field_schema(self.whole)
        elif self.scalar is not None:
            value = {"anyOf": [self._field_schema(self.scalar), inner]}
        elif self.bare:
            value = {"anyOf": [inner, {"type": "null"}]}
        keyed = {
            "type": "object",
            "properties": {self.key: value},
            "required": [self.key],
            "additionalProperties": False,
        }
        if self.bare:
            return {"anyOf": [{"const": self.key}, keyed]}
        return keyed

    def _field_schema(self, name: str) -> JsonSchemaValue:
        """The schema of one field of this form's (non-recursive) model."""
        model = next(cls for cls, form in _FORMS.items() if form is self)
        found = model.model_json_schema()["properties"][name]
        return {k: v for k, v in found.items() if k not in ("title", "default")}


_FORMS: dict[type[_Action], _Form] = {
    Answer: _Form("answer", bare=True),
    Play: _Form("play", scalar="prompt", scalar_what="a prompt", scalar_list=True),
    Menu: _Form("menu"),
    Gather: _Form("gather"),
    SetVars: _Form("set", whole="variables"),
    Lookup: _Form("lookup"),
    Bridge: _Form("bridge", scalar="to", scalar_what="a user", scalar_list=True),
    Queue: _Form("queue", scalar="name", scalar_what="the name of a queue"),
    Voicemail: _Form("voicemail", scalar="mailbox", scalar_what="a mailbox"),
    Record: _Form("record", scalar="action", scalar_what="start, pause, resume or stop"),
    Goto: _Form("goto", scalar="context", scalar_what="the name of a context"),
    Transfer: _Form("transfer", scalar="to", scalar_what="a user or number"),
    Hangup: _Form("hangup", bare=True),
}
ACTION_KEYS: tuple[str, ...] = tuple(form.key for form in _FORMS.values())
"""The action names, as written in a plan."""
_BY_KEY = {form.key: form for form in _FORMS.values()}


def _action_tag(value: Any) -> str | None:
    if isinstance(value, _Action):
        return _FORMS[type(value)].key
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        key = next(iter(value))
        return key if isinstance(key, str) else None
    return None


def _unknown_action(name: Any) -> PydanticCustomError:
    text = f"unknown action {_show(name)}"
    guess = _suggest(name, ACTION_KEYS) if isinstance(name, str) else None
    if guess is not None:
        return _custom(f'{text} (did you mean "{guess}"?)')
    return _custom(f"{text} (actions: {', '.join(ACTION_KEYS)})")


def _action_shape(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Report an unknown action or a badly written one before the union picks a model."""
    if isinstance(value, _Action):
        return handler(value)
    if isinstance(value, str):
        form = _BY_KEY.get(value)
        if form is None:
            raise _unknown_action(value)
        if not form.bare:
            raise _custom(f'"{value}" needs arguments: write "{value}: ..."')
        return handler(value)
    if isinstance(value, Mapping):
        keys = list(value)
        if len(keys) == 1:
            if keys[0] not in _BY_KEY:
                raise _unknown_action(keys[0])
            return handler(value)
        if not keys:
            raise _custom("expected an action, got an empty mapping")
        named = [k for k in keys if k in _BY_KEY]
        shown = ", ".join(_show(_as_text(k)) for k in keys)
        text = f"an action is a mapping with one key, the action's name; got {shown}"
        if len(named) == 1 and value[named[0]] is None:
            text += f' (are the arguments indented under "{named[0]}"?)'
        raise _custom(text)
    raise _custom(
        f'expected an action, such as "answer" or "bridge: {{to: 1002}}", got {_show(value)}'
    )


Action = Annotated[
    Annotated[Answer, _FORMS[Answer], Tag("answer")]
    | Annotated[Play, _FORMS[Play], Tag("play")]
    | Annotated[Menu, _FORMS[Menu], Tag("menu")]
    | Annotated[Gather, _FORMS[Gather], Tag("gather")]
    | Annotated[SetVars, _FORMS[SetVars], Tag("set")]
    | Annotated[Lookup, _FORMS[Lookup], Tag("lookup")]
    | Annotated[Bridge, _FORMS[Bridge], Tag("bridge")]
    | Annotated[Queue, _FORMS[Queue], Tag("queue")]
    | Annotated[Voicemail, _FORMS[Voicemail], Tag("voicemail")]
    | Annotated[Record, _FORMS[Record], Tag("record")]
    | Annotated[Goto, _FORMS[Goto], Tag("goto")]
    | Annotated[Transfer, _FORMS[Transfer], Tag("transfer")]
    | Annotated[Hangup, _FORMS[Hangup], Tag("hangup")],
    Discriminator(_action_tag),
    WrapValidator(_action_shape),
]
"""One action: a bare name (``answer``, ``hangup``) or a mapping with one key, its name."""
Actions = Annotated[tuple[Action, ...], WrapValidator(_positioned)]

for _model in (Menu, Gather, Lookup):
    _model.model_rebuild()


# --------------------------------------------------------------------------------------------
# Rules, contexts, services and the plan


class Rule(_Located):
    """A rule: what a call that matches it does."""

    match: Pattern
    """The number dialled: exact ("100"), an Asterisk-style pattern ("_1XXX": X any digit,
    Z 1-9, N 2-9, [1-5] a range, "." one or more further characters, "!" zero or more) or a
    regex between slashes ("/^1\\d{3}$/")."""
    caller: Pattern | None = None
    """The caller's number must match this too (same syntax)."""
    caller_name: Pattern | None = None
    """The caller's display name must match this too (same syntax)."""
    when: When | None = None
    """Further conditions: hours, holidays, call variables."""
    actions: Actions
    """What to do, in order: each a bare name (answer, hangup) or a one-key mapping."""

    @field_validator("actions")
    @classmethod
    def _some_action(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise ValueError("needs at least one action")
        return value


Rules = Annotated[tuple[Rule, ...], WrapValidator(_positioned)]


class Context(_Section):
    """A set of rules; users and trunks are each assigned one. Own rules are searched before
    the rules of included contexts (and exact numbers before patterns before regexes)."""

    include: Annotated[
        tuple[ContextRef, ...],
        WrapValidator(_one_or_many, json_schema_input_type=str | list[str]),
    ] = ()
    """Contexts whose rules are searched after this one's own, in this order."""
    rules: Rules = ()
    """The rules."""


class Service(_Section):
    """An HTTP service that answers JSON (a CRM), used by lookup."""

    url: Annotated[Text, AfterValidator(_url)]
    """Base URL (http or https); a lookup's path is added to it."""
    timeout: Duration = 2.0
    """Seconds to wait for an answer."""
    headers: Mapping[str, Text] = Field(default_factory=dict)
    """HTTP header fields sent with each request, e.g. Authorization: !secret crm_token."""


def _names_of(value: Any) -> frozenset[str]:
    if not isinstance(value, dict):
        return frozenset()
    return frozenset(k for k in (_as_text(key) for key in value) if isinstance(k, str))


def _defined(data: Mapping[str, Any], ctx: Any) -> _Defined:
    """What the validators of a plan need: the names it defines and its prompts folder."""
    names = {kind: _names_of(data.get(kind)) for kind in _LABELS}
    prompts: _PromptFolder | None = None
    folder = ctx.get(_FOLDER) if isinstance(ctx, Mapping) else None
    setting = data.get("prompts", "prompts")
    if folder is not None and isinstance(setting, str) and setting:
        path = Path(folder) / setting
        if "prompts" not in data or path.is_dir():  # a missing folder given is reported once
            prompts = _PromptFolder(path, setting)
    return _Defined(names, prompts)


class Plan(_Section):
    """A dialplan: contexts of rules, with the hours, calendars and services they use."""

    _source: Path = PrivateAttr(default=Path("dialplan.yaml"))
    _folder: Path = PrivateAttr(default=Path("."))

    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    """IANA time zone (e.g. Asia/Tokyo) of the time windows and holiday calendars."""
    prompts: str = Field(default="prompts", min_length=1)
    """Folder of the WAV prompts, relative to the plan file."""
    secrets: str | None = Field(default=None, min_length=1)
    """YAML file of NAME: value pairs for !secret NAME, relative to the plan file."""
    calendars: Annotated[Mapping[NameKey, tuple[IsoDate, ...]], _named("calendar")] = Field(
        default_factory=dict
    )
    """Named holiday calendars: lists of dates (YYYY-MM-DD)."""
    hours: Annotated[
        Mapping[NameKey, Annotated[tuple[Window, ...], AfterValidator(_non_empty("window"))]],
        _named("hours"),
    ] = Field(default_factory=dict)
    """Named opening hours: lists of time windows (a time is within the hours when it is
    within any of them)."""
    services: Annotated[Mapping[NameKey, Service], _named("service")] = Field(default_factory=dict)
    """Named HTTP services for lookup."""
    contexts: Annotated[Mapping[NameKey, Context], _named("context")]
    """The contexts, by name (letters, digits, "_" and "-")."""

    @model_validator(mode="wrap")
    @classmethod
    def _setup(cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        token = _DEFINED.set(_defined(data, info.context))
        try:
            return handler(data)
        finally:
            _DEFINED.reset(token)

    @field_validator("prompts")
    @classmethod
    def _prompt_folder(cls, value: str, info: ValidationInfo) -> str:
        folder = _context(info).get(_FOLDER)
        if folder is not None and not (Path(folder) / value).is_dir():
            raise ValueError(f'folder "{value}" does not exist')
        return value

    @field_validator("contexts", mode="wrap")
    @classmethod
    def _whole_plan(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        try:
            contexts: Mapping[str, Context] = handler(value)
        except ValidationError as exc:
            failure = exc
            # Check what validates on its own, so that those mistakes are reported as well.
            contexts = _valid_contexts(value, info.context)
        else:
            if not contexts:
                raise ValueError("needs at least one context")
            problems = _plan_problems(contexts)
            if problems:
                raise rule_violation(*problems)
            return contexts

        def again(_: Any) -> Any:
            raise failure

        return validate_with_rules(again, value, _plan_problems(contexts))

    @model_validator(mode="after")
    def _references(self) -> Plan:
        # Parts validated from data have checked their references already; parts built in code
        # (instances are not validated again) are checked here.
        names = {
            "contexts": frozenset(self.contexts),
            "hours": frozenset(self.hours),
            "calendars": frozenset(self.calendars),
            "services": frozenset(self.services),
        }
        problems = [
            (loc, _unknown(kind, name, names[kind]))
            for loc, kind, name in _references_in(self.contexts)
            if name not in names[kind]
        ]
        if problems:
            raise rule_violation(*problems)
        return self

    @property
    def source(self) -> Path:
        """The plan file (absolute)."""
        return self._source

    @property
    def folder(self) -> Path:
        """The folder of the plan file (absolute): prompts and secrets are relative to it."""
        return self._folder

    @cached_property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The time zone of :attr:`timezone`."""
        return zoneinfo.ZoneInfo(self.timezone)

    def prompt_path(self, name: str) -> Path:
        """The WAV file of a prompt name (".wav" added when missing)."""
        file = name if name.lower().endswith(".wav") else f"{name}.wav"
        return self._folder / self.prompts / file


def _valid_contexts(value: Any, ctx: Any) -> dict[str, Context]:
    """The contexts that validate on their own; of the others, their includes alone if valid."""
    found: dict[str, Context] = {}
    if not isinstance(value, dict):
        return found
    for key, raw in value.items():
        name = _as_text(key)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            continue
        try:
            found[name] = Context.model_validate(raw, context=ctx)
            continue
        except ValidationError:
            pass
        include = raw.get("include") if isinstance(raw, dict) else None
        try:
            found[name] = Context.model_validate({"include": include or []}, context=ctx)
        except ValidationError:
            continue
    return found


# --------------------------------------------------------------------------------------------
# Checks of the whole plan


def _references_in(contexts: Mapping[str, Context]) -> Iterator[tuple[Loc, str, str]]:
    """(location, kind, name) of every name of a context, hours, calendar or service used."""
    for name, context in contexts.items():
        for k, target in enumerate(context.include):
            yield ("contexts", name, "include", k), "contexts", target
        for i, rule in enumerate(context.rules):
            at: Loc = ("contexts", name, "rules", i)
            when = rule.when
            if when is not None:
                for key in ("hours", "outside_hours"):
                    hours = getattr(when, key)
                    if isinstance(hours, str):
                        yield (*at, "when", key), "hours", hours
                for key in ("holiday", "not_holiday"):
                    calendar = getattr(when, key)
                    if calendar is not None:
                        yield (*at, "when", key), "calendars", calendar
            yield from _references_of_actions(rule.actions, (*at, "actions"))


def _references_of_actions(actions: Sequence[Any], at: Loc) -> Iterator[tuple[Loc, str, str]]:
    for j, action in enumerate(actions):
        here = (*at, j, _FORMS[type(action)].key)
        match action:
            case Goto(context=context):
                yield (*here, "context"), "contexts", context
            case Lookup(service=service, on_failure=on_failure):
                yield (*here, "service"), "services", service
                yield from _references_of_actions(on_failure, (*here, "on_failure"))
            case Menu(options=options, on_failure=on_failure):
                for key, option in options.items():
                    yield from _references_of_actions(option, (*here, "options", key))
                yield from _references_of_actions(on_failure, (*here, "on_failure"))
            case Gather(on_failure=on_failure):
                yield from _references_of_actions(on_failure, (*here, "on_failure"))


# Actions after which the plan goes on at once; all others wait for the caller or end the call.
_PASSES = (SetVars, Record, Lookup)


def _plan_problems(contexts: Mapping[str, Context]) -> Problems:
    """Include cycles, loops of gotos and hidden rules (locations relative to contexts)."""
    return [
        *_include_cycles(contexts),
        *_goto_loops(contexts),
        *_hidden_rules(contexts),
    ]


def _include_cycles(contexts: Mapping[str, Context]) -> Problems:
    edges = {
        name: [(target, (name, "include", k)) for k, target in enumerate(context.include)]
        for name, context in contexts.items()
    }
    problems: Problems = []
    for nodes, loc in _cycles(list(contexts), edges):
        if len(nodes) == 2:
            problems.append((loc, f"include cycle: {_quoted(nodes[0])} includes itself"))
        else:
            problems.append((loc, f"include cycle: {' -> '.join(map(_quoted, nodes))}"))
    return problems


def _searched_rules(name: str, contexts: Mapping[str, Context]) -> Iterator[tuple[str, int, Rule]]:
    """The rules searched for a call in context ``name``: (owner context, index, rule)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        context = contexts.get(current)
        if context is None or current in seen:
            continue
        seen.add(current)
        for i, rule in enumerate(context.rules):
            yield current, i, rule
        todo.extend(reversed(context.include))


def _first_goto(rule: Rule) -> tuple[int, Goto] | None:
    """The goto a rule reaches without waiting for the caller (or ending the call), if any."""
    for j, action in enumerate(rule.actions):
        if isinstance(action, Goto):
            return j, action
        if not isinstance(action, _PASSES):
            return None
    return None


def _goto_loops(contexts: Mapping[str, Context]) -> Problems:
    """Contexts whose every rule goes straight to a goto into such a context, in a cycle."""
    edges: dict[str, list[tuple[str, Loc]]] = {}
    for name in contexts:
        jumps: list[tuple[str, Loc]] = []
        for owner, i, rule in _searched_rules(name, contexts):
            found = _first_goto(rule)
            if found is None:
                break
            j, goto = found
            jumps.append((goto.context, (owner, "rules", i, "actions", j, "goto")))
        else:
            if jumps:
                edges[name] = jumps
    changed = True
    while changed:  # keep only contexts that cannot leave the set
        changed = False
        for name in list(edges):
            if any(target not in edges for target, _ in edges[name]):
                del edges[name]
                changed = True
    return [
        (
            loc,
            f"goto loop: {' -> '.join(map(_quoted, nodes))} (every rule there goes straight to "
            "a goto, never waiting for the caller)",
        )
        for nodes, loc in _cycles([n for n in contexts if n in edges], edges)
    ]


def _hidden_rules(contexts: Mapping[str, Context]) -> Problems:
    """Rules that never match: an earlier rule has the same match and the same conditions."""
    problems: Problems = []
    for name, context in contexts.items():
        earlier: dict[tuple[str, str | None, str | None], list[int]] = {}
        for i, rule in enumerate(context.rules):
            key = (rule.match, rule.caller, rule.caller_name)
            same = earlier.setdefault(key, [])
            for j in same:
                if context.rules[j].when == rule.when:
                    problems.append(
                        (
                            (name, "rules", i, "match"),
                            f"duplicate rule: rules[{j}] already matches {_quoted(rule.match)} "
                            "with the same conditions",
                        )
                    )
                    break
            same.append(i)
    return problems


Edges = Mapping[str, Sequence[tuple[str, Loc]]]


def _cycles(order: Sequence[str], edges: Edges) -> list[tuple[list[str], Loc]]:
    """One cycle per strongly connected group of ``edges`` that has one.

    Each is the shortest path from the group's first node in ``order`` back to itself (the
    node at both ends) and the location of that path's first edge.
    """
    component = _components(order, edges)
    done: set[int] = set()
    found: list[tuple[list[str], Loc]] = []
    for start in order:
        group = component.get(start)
        if group is None or group in done:
            continue
        cycle = _path_back(start, edges, component, group)
        if cycle is not None:
            done.add(group)
            found.append(cycle)
    return found


def _components(order: Sequence[str], edges: Edges) -> dict[str, int]:
    """Strongly connected components (Tarjan's algorithm, without recursion)."""
    targets = {node: [t for t, _ in out if t in edges] for node, out in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    component: dict[str, int] = {}
    for root in order:
        if root in index or root not in targets:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(targets[node]):
                work.append((node, i + 1))
                target = targets[node][i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = index[node]
                    if member == node:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return component


def _path_back(
    start: str, edges: Edges, component: Mapping[str, int], group: int
) -> tuple[list[str], Loc] | None:
    """The shortest path from ``start`` back to it within its ``group`` (breadth first)."""
    previous: dict[str, str] = {}
    first_edge: dict[str, Loc] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target, loc in edges.get(node, ()):
                head = loc if node == start else first_edge[node]
                if target == start:
                    chain: list[str] = []
                    while node != start:
                        chain.append(node)
                        node = previous[node]
                    return [start, *reversed(chain), start], head
                if component.get(target) == group and target not in previous:
                    previous[target] = node
                    first_edge[target] = head
                    following.append(target)
        frontier = following
    return None
