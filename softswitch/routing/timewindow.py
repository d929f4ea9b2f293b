"""Time windows and holiday calendars of a dialplan, judged by the plan's local wall clock.

A pure core (ARCHITECTURE.md, principle 1): no clock, no I/O. The instant to judge is passed in
as a timezone-aware :class:`~datetime.datetime` and the plan's time zone as a
:class:`~datetime.tzinfo` (a :class:`zoneinfo.ZoneInfo` in practice, built by the loader).

Semantics:

- A :class:`TimeWindow` holds when the local wall-clock time is in ``[start, end)`` on one of its
  ``days`` (0 = Monday ... 6 = Sunday). When ``end <= start`` the window crosses midnight and the
  part after midnight belongs to the day it started on: Friday 22:00-06:00 includes Saturday
  03:00 but not Monday 03:00 (which would be Sunday night's window). ``start == end`` is a whole
  day from ``start``; ``00:00-00:00`` is the whole calendar day. ``dates``, when given, keeps only
  windows that *start* on one of those dates.
- Only the wall clock counts, so daylight saving time needs no special case: a window
  01:00-03:00 on a spring-forward night (02:00 -> 03:00) is one hour long in real time, and an
  instant in the repeated hour of an autumn night is judged by the local time it shows (both
  01:30 EDT and 01:30 EST are 01:30).
- A :class:`Calendar` holds on its dates (local date of the instant), whatever the time.

:func:`next_change` finds when the answer of :func:`in_windows` next changes, for the traces of
``softswitch route``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

__all__ = [
    "DAY_NAMES",
    "Calendar",
    "TimeWindow",
    "in_windows",
    "next_change",
    "parse_days",
    "parse_hhmm",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day abbreviations accepted by :func:`parse_days`, index = :meth:`datetime.weekday`."""

_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {name: i for names in (DAY_NAMES, _FULL_DAY_NAMES) for i, name in enumerate(names)}
_HHMM = re.compile(r"(\d{1,2}):(\d{2})")
_LOOKAHEAD = timedelta(days=8)
_MAX_HORIZON = timedelta(days=366)
_SECOND = timedelta(seconds=1)


def _local(when: datetime, tz: tzinfo) -> datetime:
    """``when`` as the naive local wall-clock time in ``tz``."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"when must be timezone-aware, got naive {when.isoformat()}")
    return when.astimezone(tz).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Weekly opening hours, e.g. Monday to Friday 09:00-18:00 (see the module docstring)."""

    days: frozenset[int]
    """Days the window starts on: 0 = Monday ... 6 = Sunday."""
    start: time
    """Local wall-clock time the window opens (naive)."""
    end: time
    """Local wall-clock time the window closes, excluded; ``<= start`` means the next day."""
    dates: frozenset[date] | None = None
    """If set, only windows starting on these local dates count."""

    def __post_init__(self) -> None:
        bad = sorted(d for d in self.days if not (isinstance(d, int) and 0 <= d <= 6))
        if bad:
            raise ValueError(f"days must be 0 (Monday) to 6 (Sunday), got {bad}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("start and end are local wall-clock times: give them no tzinfo")

    @property
    def crosses_midnight(self) -> bool:
        """Whether the window ends on the day after it starts."""
        return self.end <= self.start

    def starts_on(self, day: date) -> bool:
        """Whether a window opens on the local date ``day``."""
        return day.weekday() in self.days and (self.dates is None or day in self.dates)

    def contains_local(self, local: datetime) -> bool:
        """Whether the naive local wall-clock time ``local`` is inside the window."""
        clock = local.time()
        today = local.date()
        if not self.crosses_midnight:
            return self.start <= clock < self.end and self.starts_on(today)
        if clock >= self.start and self.starts_on(today):
            return True
        return clock < self.end and self.starts_on(today - timedelta(days=1))

    def contains(self, when: datetime, tz: tzinfo) -> bool:
        """Whether the aware instant ``when`` is inside the window in the time zone ``tz``."""
        return self.contains_local(_local(when, tz))

    def boundaries(self, first: date, last: date) -> Iterable[datetime]:
        """Naive local times the window opens or closes, for windows starting in first..last."""
        day = first
        while day <= last:
            if self.starts_on(day):
                yield datetime.combine(day, self.start)
                closing_day = day + timedelta(days=1) if self.crosses_midnight else day
                yield datetime.combine(closing_day, self.end)
            day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Calendar:
    """A named list of dates, e.g. public holidays; holds all day long on each of them."""

    dates: frozenset[date]
    name: str = ""

    def contains(self, when: datetime, tz: tzinfo) -> bool:
        """Whether the local date of the aware instant ``when`` in ``tz`` is one of the dates."""
        return _local(when, tz).date() in self.dates


def in_windows(windows: Iterable[TimeWindow], when: datetime, tz: tzinfo) -> bool:
    """Whether the aware instant ``when`` is inside any of ``windows`` in the time zone ``tz``."""
    local = _local(when, tz)
    return any(w.contains_local(local) for w in windows)


def next_change(
    windows: Sequence[TimeWindow], when: datetime, tz: tzinfo, horizon: timedelta = _LOOKAHEAD
) -> datetime | None:
    """The first instant after ``when`` at which :func:`in_windows` gives the other answer.

    Looks at most ``horizon`` ahead (8 days by default, 366 at most) and returns ``None`` when
    nothing changes in that time; the result is an aware datetime in ``tz``. The answer only
    changes where the wall clock reaches a window's start or end, or where a daylight-saving
    transition makes the wall clock jump over (spring) or back across (autumn) one of them; in
    the latter cases the change is at the transition itself.
    """
    if not timedelta(0) < horizon <= _MAX_HORIZON:
        raise ValueError(f"horizon must be more than 0 and at most {_MAX_HORIZON.days} days")
    current = in_windows(windows, when, tz)
    limit = when + horizon
    local = _local(when, tz)
    first, last = local.date() - timedelta(days=1), (local + horizon).date() + timedelta(days=1)
    candidates: set[datetime] = set()
    for window in windows:
        for wall in window.boundaries(first, last):
            candidates.update(_instants(wall, tz))
    for instant in sorted(candidates):
        if instant <= when:
            continue
        if instant > limit:
            break
        if in_windows(windows, instant, tz) != current:
            return instant.astimezone(tz)
    return None


def _instants(wall: datetime, tz: tzinfo) -> list[datetime]:
    """The UTC instants at which the wall clock of ``tz`` reaches or jumps across ``wall``.

    One instant normally; two in a repeated hour (plus the transition, where the clock goes back
    across ``wall``); for a time skipped by a forward jump, the transition instant.
    """
    early = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if early == late:
        return [early]
    found = [early, late] if _local(early, tz) == wall else []
    found.append(_transition(min(early, late), max(early, late), tz))
    return found


def _transition(low: datetime, high: datetime, tz: tzinfo) -> datetime:
    """The UTC instant between ``low`` and ``high`` where ``tz`` switches to ``high``'s offset.

    ``low`` and ``high`` lie less than a day apart on either side of one transition; transitions
    fall on whole seconds, so a bisection over whole seconds finds it in at most 17 steps.
    """
    target = high.astimezone(tz).utcoffset()
    lo = low.replace(microsecond=0)
    hi = high if high.microsecond == 0 else high.replace(microsecond=0) + _SECOND
    for _ in range(64):
        span = int((hi - lo).total_seconds())
        if span <= 1:
            break
        mid = lo + timedelta(seconds=span // 2)
        if mid.astimezone(tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi


def parse_hhmm(text: str, *, end: bool = False) -> time:
    """Parse a wall-clock time ``"HH:MM"`` (``"9:30"`` is accepted too).

    With ``end=True`` (a window's closing time) ``"24:00"`` is accepted and means midnight at the
    end of the day, returned as ``time(0, 0)``, which :class:`TimeWindow` reads as "the next
    day". Raises :class:`ValueError` with a message for the person who wrote the plan.
    """
    if not isinstance(text, str):
        hint = " (quote it in YAML: '09:30')" if isinstance(text, int) else ""
        raise ValueError(f"expected a time of day as HH:MM, got {text!r}{hint}")
    m = _HHMM.fullmatch(text.strip())
    if m is None:
        raise ValueError(f'expected a time of day as HH:MM, got "{text}"')
    hour, minute = int(m.group(1)), int(m.group(2))
    if end and hour == 24 and minute == 0:
        return time(0, 0)
    if hour > 23:
        allowed = "00-23, or 24:00 for the end of the day" if end else "00-23"
        raise ValueError(f'hour {hour} in "{text}" is out of range ({allowed})')
    if minute > 59:
        raise ValueError(f'minute {minute} in "{text}" is out of range (00-59)')
    return time(hour, minute)


def parse_days(spec: str | Sequence[str]) -> frozenset[int]:
    """Parse days of the week: ``"mon-fri"``, ``"sat,sun"``, ``["mon", "wed-thu"]``.

    Names are the three-letter abbreviations or the full English names, in any case. A range
    runs forward through the week and may wrap (``"fri-mon"`` is Friday to Monday). Returns
    weekday numbers, 0 = Monday. Raises :class:`ValueError` naming the offending item.
    """
    if isinstance(spec, str):
        items = spec.split(",")
    elif isinstance(spec, Sequence):
        items = list(spec)
    else:
        raise ValueError(f'expected days such as "mon-fri" or ["mon", "wed"], got {spec!r}')
    if not items or (isinstance(spec, str) and not spec.strip()):
        raise ValueError("no days given")
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f'expected a day name such as "mon", got {item!r}')
        first, dash, last = item.strip().partition("-")
        low = _day(first, item)
        high = _day(last, item) if dash else low
        days.update((low + k) % 7 for k in range((high - low) % 7 + 1))
    return frozenset(days)


def _day(name: str, item: str) -> int:
    key = name.strip().lower()
    index = _DAY_INDEX.get(key)
    if index is not None:
        return index
    if not key:
        raise ValueError(f'"{item}" is missing a day name')
    close = difflib.get_close_matches(key, list(_DAY_INDEX), n=1)
    hint = f' (did you mean "{DAY_NAMES[_DAY_INDEX[close[0]]]}"?)' if close else ""
    raise ValueError(f'unknown day "{name.strip()}"{hint}; expected one of {", ".join(DAY_NAMES)}')
