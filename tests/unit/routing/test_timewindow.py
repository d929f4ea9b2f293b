"""Time windows and holiday calendars: local wall clock, midnight crossing, DST, next change."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.routing.timewindow import (
    Calendar,
    TimeWindow,
    in_windows,
    next_change,
    parse_days,
    parse_hhmm,
)

TOKYO = ZoneInfo("Asia/Tokyo")
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(
    tz: ZoneInfo,
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=tz, fold=fold)


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("09:30", time(9, 30)), ("9:30", time(9, 30)), ("00:00", time(0)), ("23:59", time(23, 59))],
)
def test_parse_hhmm(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


def test_parse_hhmm_accepts_24_00_only_as_an_end() -> None:
    assert parse_hhmm("24:00", end=True) == time(0)
    with pytest.raises(ValueError, match=r'hour 24 in "24:00" is out of range \(00-23\)'):
        parse_hhmm("24:00")
    with pytest.raises(ValueError, match="or 24:00 for the end of the day"):
        parse_hhmm("24:30", end=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9h30", 'expected a time of day as HH:MM, got "9h30"'),
        ("", 'expected a time of day as HH:MM, got ""'),
        ("09:30:00", 'expected a time of day as HH:MM, got "09:30:00"'),
        ("25:00", 'hour 25 in "25:00" is out of range (00-23)'),
        ("12:60", 'minute 60 in "12:60" is out of range (00-59)'),
        (570, "expected a time of day as HH:MM, got 570 (quote it in YAML: '09:30')"),
    ],
)
def test_parse_hhmm_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_hhmm(value)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("MON-Fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("sat, sun", {5, 6}),
        (["mon", "wed"], {0, 2}),
        (["mon-wed", "fri"], {0, 1, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),  # a range may wrap through the weekend
        ("sun", {6}),
        ("thu-thu", {3}),
        (["Monday", "tuesday"], {0, 1}),
    ],
)
def test_parse_days(spec: str | list[str], expected: set[int]) -> None:
    assert parse_days(spec) == frozenset(expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mnday", 'unknown day "mnday" (did you mean "mon"?); expected one of mon, tue, wed'),
        ("mon-fry", 'unknown day "fry" (did you mean "fri"?)'),
        ("xyz", 'unknown day "xyz"; expected one of mon, tue, wed, thu, fri, sat, sun'),
        ([], "no days given"),
        ("", "no days given"),
        ("mon,,fri", '"" is missing a day name'),
        ("mon-", '"mon-" is missing a day name'),
        ([1], 'expected a day name such as "mon", got 1'),
        (5, "expected days such as"),
    ],
)
def test_parse_days_errors(spec: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_days(spec)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_window_values_are_checked() -> None:
    with pytest.raises(ValueError, match=r"0 \(Monday\) to 6 \(Sunday\), got \[7\]"):
        TimeWindow(frozenset({1, 7}), time(9), time(17))
    with pytest.raises(ValueError, match="no tzinfo"):
        TimeWindow(WEEKDAYS, time(9, tzinfo=UTC), time(17))


# --- windows -------------------------------------------------------------------------------

OFFICE = TimeWindow(WEEKDAYS, time(9), time(18))
FRIDAY_NIGHT = TimeWindow(frozenset({4}), time(22), time(6))


def test_office_hours_in_the_plan_time_zone() -> None:
    monday = date(2026, 11, 23)  # a Monday
    assert monday.weekday() == 0
    assert OFFICE.contains(local(TOKYO, 2026, 11, 23, 9, 0), TOKYO)
    assert OFFICE.contains(local(TOKYO, 2026, 11, 23, 17, 59, 59), TOKYO)
    assert not OFFICE.contains(local(TOKYO, 2026, 11, 23, 18, 0), TOKYO)  # end excluded
    assert not OFFICE.contains(local(TOKYO, 2026, 11, 23, 8, 59, 59), TOKYO)
    assert not OFFICE.contains(local(TOKYO, 2026, 11, 28, 10, 0), TOKYO)  # Saturday
    # the instant is converted to the plan's zone: Sunday 15:30 UTC is Monday 00:30 in Tokyo
    assert not OFFICE.contains(utc(2026, 11, 23, 0, 30), PARIS)  # Monday 01:30 in Paris
    assert OFFICE.contains(utc(2026, 11, 23, 0, 30), TOKYO)  # Monday 09:30 in Tokyo
    assert not OFFICE.contains(utc(2026, 11, 22, 23, 30), TOKYO)  # Monday 08:30 in Tokyo
    assert OFFICE.contains(utc(2026, 11, 23, 9, 0), ZoneInfo("Europe/London"))


def test_a_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    # 2026-11-27 is a Friday
    assert FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 27, 22, 0), PARIS)
    assert FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 27, 23, 59), PARIS)
    assert FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 28, 0, 0), PARIS)
    assert FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 28, 3, 0), PARIS)  # Saturday 03:00
    assert not FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 28, 6, 0), PARIS)
    assert not FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 27, 21, 59), PARIS)
    assert not FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 30, 3, 0), PARIS)  # Monday 03:00
    assert not FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 27, 3, 0), PARIS)  # Thursday's night
    assert not FRIDAY_NIGHT.contains(local(PARIS, 2026, 11, 28, 23, 0), PARIS)  # Saturday night
    assert FRIDAY_NIGHT.crosses_midnight and not OFFICE.crosses_midnight


def test_equal_start_and_end_is_a_whole_day() -> None:
    whole_monday = TimeWindow(frozenset({0}), time(0), time(0))
    assert whole_monday.contains(local(TOKYO, 2026, 11, 23, 0, 0), TOKYO)
    assert whole_monday.contains(local(TOKYO, 2026, 11, 23, 23, 59, 59), TOKYO)
    assert not whole_monday.contains(local(TOKYO, 2026, 11, 24, 0, 0), TOKYO)
    assert not whole_monday.contains(local(TOKYO, 2026, 11, 22, 23, 59), TOKYO)
    shift = TimeWindow(frozenset({0}), time(8), time(8))  # Monday 08:00 to Tuesday 08:00
    assert shift.contains(local(TOKYO, 2026, 11, 24, 7, 59), TOKYO)
    assert not shift.contains(local(TOKYO, 2026, 11, 24, 8, 0), TOKYO)
    assert not shift.contains(local(TOKYO, 2026, 11, 23, 7, 59), TOKYO)


def test_dates_restrict_the_start_date() -> None:
    eve = TimeWindow(EVERY_DAY, time(20), time(2), frozenset({date(2026, 12, 24)}))
    assert eve.contains(local(PARIS, 2026, 12, 24, 21, 0), PARIS)
    assert eve.contains(local(PARIS, 2026, 12, 25, 1, 0), PARIS)  # started on the 24th
    assert not eve.contains(local(PARIS, 2026, 12, 24, 1, 0), PARIS)  # started on the 23rd
    assert not eve.contains(local(PARIS, 2026, 12, 25, 21, 0), PARIS)
    days_and_dates = TimeWindow(WEEKDAYS, time(9), time(12), frozenset({date(2026, 12, 26)}))
    assert not days_and_dates.contains(local(PARIS, 2026, 12, 26, 10, 0), PARIS)  # a Saturday


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.contains(datetime(2026, 11, 23, 10, 0), TOKYO)
    with pytest.raises(ValueError, match="timezone-aware"):
        in_windows([OFFICE], datetime(2026, 11, 23, 10, 0), TOKYO)
    with pytest.raises(ValueError, match="timezone-aware"):
        Calendar(frozenset()).contains(datetime(2026, 11, 23, 10, 0), TOKYO)


def test_in_windows_is_the_union() -> None:
    morning = TimeWindow(WEEKDAYS, time(9), time(12))
    afternoon = TimeWindow(WEEKDAYS, time(13), time(18))
    windows = [morning, afternoon]
    assert in_windows(windows, local(TOKYO, 2026, 11, 23, 11, 0), TOKYO)
    assert not in_windows(windows, local(TOKYO, 2026, 11, 23, 12, 30), TOKYO)
    assert in_windows(windows, local(TOKYO, 2026, 11, 23, 13, 0), TOKYO)
    assert not in_windows([], local(TOKYO, 2026, 11, 23, 11, 0), TOKYO)


# --- daylight saving time ------------------------------------------------------------------
# Europe/Paris: 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC); 2026-10-25 03:00 CEST -> 02:00 CET
# (01:00 UTC). America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 2026-11-01
# 02:00 EDT -> 01:00 EST (06:00 UTC).


def test_paris_spring_forward_window_is_shorter_in_real_time() -> None:
    sunday_night = TimeWindow(frozenset({6}), time(1), time(3))
    inside = [utc(2026, 3, 29, 0, m) for m in range(0, 60, 5)]  # 01:00..01:55 CET
    assert all(sunday_night.contains(t, PARIS) for t in inside)
    assert not sunday_night.contains(utc(2026, 3, 29, 1, 0), PARIS)  # 03:00 CEST: closed
    assert not sunday_night.contains(utc(2026, 3, 28, 23, 59), PARIS)  # 00:59 CET
    # a window starting inside the skipped hour opens when the clock jumps past its start
    early = TimeWindow(frozenset({6}), time(2, 30), time(4))
    assert not early.contains(utc(2026, 3, 29, 0, 59), PARIS)  # 01:59 CET
    assert early.contains(utc(2026, 3, 29, 1, 0), PARIS)  # 03:00 CEST
    assert not early.contains(utc(2026, 3, 29, 2, 0), PARIS)  # 04:00 CEST


def test_paris_fall_back_repeated_hour_is_judged_by_the_wall_clock() -> None:
    window = TimeWindow(frozenset({6}), time(2), time(2, 30))
    assert window.contains(utc(2026, 10, 25, 0, 15), PARIS)  # 02:15 CEST, first pass
    assert not window.contains(utc(2026, 10, 25, 0, 45), PARIS)  # 02:45 CEST
    assert window.contains(utc(2026, 10, 25, 1, 15), PARIS)  # 02:15 CET, second pass
    assert not window.contains(utc(2026, 10, 25, 1, 30), PARIS)  # 02:30 CET
    # the same instants written in local time with fold
    assert window.contains(local(PARIS, 2026, 10, 25, 2, 15, fold=1), PARIS)
    assert not window.contains(local(PARIS, 2026, 10, 25, 2, 45, fold=0), PARIS)


def test_new_york_spring_forward_night_shift() -> None:
    saturday_night = TimeWindow(frozenset({5}), time(22), time(6))
    assert saturday_night.contains(utc(2026, 3, 8, 3, 0), NEW_YORK)  # Sat 22:00 EST
    assert saturday_night.contains(utc(2026, 3, 8, 6, 59), NEW_YORK)  # Sun 01:59 EST
    assert saturday_night.contains(utc(2026, 3, 8, 7, 0), NEW_YORK)  # Sun 03:00 EDT
    assert saturday_night.contains(utc(2026, 3, 8, 9, 59), NEW_YORK)  # Sun 05:59 EDT
    assert not saturday_night.contains(utc(2026, 3, 8, 10, 0), NEW_YORK)  # Sun 06:00 EDT
    # 7 hours of real time instead of 8
    opening = utc(2026, 3, 8, 3, 0)
    closing = next_change([saturday_night], opening, NEW_YORK)
    assert closing is not None
    assert closing - opening == timedelta(hours=7)


def test_new_york_fall_back_repeated_hour() -> None:
    window = TimeWindow(frozenset({6}), time(1), time(1, 30))
    assert window.contains(utc(2026, 11, 1, 5, 10), NEW_YORK)  # 01:10 EDT
    assert not window.contains(utc(2026, 11, 1, 5, 40), NEW_YORK)  # 01:40 EDT
    assert window.contains(utc(2026, 11, 1, 6, 10), NEW_YORK)  # 01:10 EST
    assert not window.contains(utc(2026, 11, 1, 6, 40), NEW_YORK)  # 01:40 EST


# --- calendars -----------------------------------------------------------------------------


def test_calendar_uses_the_local_date() -> None:
    holidays = Calendar(frozenset({date(2026, 1, 1), date(2026, 5, 5)}), name="jp")
    assert holidays.contains(utc(2025, 12, 31, 16, 0), TOKYO)  # 2026-01-01 01:00 JST
    assert not holidays.contains(utc(2025, 12, 31, 14, 59), TOKYO)  # 2025-12-31 23:59 JST
    assert holidays.contains(utc(2026, 1, 1, 14, 59), TOKYO)  # 23:59 JST
    assert not holidays.contains(utc(2026, 1, 1, 15, 0), TOKYO)  # 2026-01-02 00:00 JST
    assert holidays.contains(utc(2026, 1, 1, 16, 0), NEW_YORK)  # Jan 2 in Tokyo, Jan 1 here
    assert not holidays.contains(utc(2026, 1, 1, 4, 0), NEW_YORK)  # 2025-12-31 23:00 here
    assert not Calendar(frozenset()).contains(utc(2026, 1, 1, 4, 0), TOKYO)


# --- next change ---------------------------------------------------------------------------


def test_next_change_from_inside_and_outside() -> None:
    change = next_change([OFFICE], local(TOKYO, 2026, 11, 23, 10, 0), TOKYO)
    assert change == local(TOKYO, 2026, 11, 23, 18, 0)
    assert change is not None and change.tzinfo is TOKYO
    # from Friday evening, the next opening is Monday morning
    change = next_change([OFFICE], local(TOKYO, 2026, 11, 27, 19, 0), TOKYO)
    assert change == local(TOKYO, 2026, 11, 30, 9, 0)
    # exactly at a boundary: the change is the next one, strictly after
    change = next_change([OFFICE], local(TOKYO, 2026, 11, 23, 9, 0), TOKYO)
    assert change == local(TOKYO, 2026, 11, 23, 18, 0)
    change = next_change([OFFICE], local(TOKYO, 2026, 11, 23, 18, 0), TOKYO)
    assert change == local(TOKYO, 2026, 11, 24, 9, 0)


def test_next_change_across_midnight_and_adjacent_windows() -> None:
    change = next_change([FRIDAY_NIGHT], local(PARIS, 2026, 11, 27, 23, 0), PARIS)
    assert change == local(PARIS, 2026, 11, 28, 6, 0)
    change = next_change([FRIDAY_NIGHT], local(PARIS, 2026, 11, 28, 7, 0), PARIS)
    assert change == local(PARIS, 2026, 12, 4, 22, 0)
    # windows that touch make one stretch: no change where one ends and the next begins
    touching = [TimeWindow(WEEKDAYS, time(9), time(12)), TimeWindow(WEEKDAYS, time(12), time(18))]
    change = next_change(touching, local(TOKYO, 2026, 11, 23, 10, 0), TOKYO)
    assert change == local(TOKYO, 2026, 11, 23, 18, 0)
    night = TimeWindow(EVERY_DAY, time(18), time(9))
    # office + night cover everything on weekdays; the weekend daytime is the first gap
    change = next_change([OFFICE, night], local(TOKYO, 2026, 11, 23, 10, 0), TOKYO)
    assert change == local(TOKYO, 2026, 11, 28, 9, 0)


def test_next_change_none_when_nothing_changes_within_8_days() -> None:
    always = TimeWindow(EVERY_DAY, time(0), time(0))
    assert next_change([always], local(TOKYO, 2026, 11, 23, 10, 0), TOKYO) is None
    assert next_change([], local(TOKYO, 2026, 11, 23, 10, 0), TOKYO) is None
    later = TimeWindow(EVERY_DAY, time(9), time(17), frozenset({date(2026, 12, 3)}))
    start = local(TOKYO, 2026, 11, 23, 10, 0)
    assert next_change([later], start, TOKYO) is None  # 10 days ahead
    assert next_change([later], start, TOKYO, horizon=timedelta(days=11)) == local(
        TOKYO, 2026, 12, 3, 9, 0
    )
    with pytest.raises(ValueError, match="horizon"):
        next_change([later], start, TOKYO, horizon=timedelta(days=400))
    within = TimeWindow(EVERY_DAY, time(9), time(17), frozenset({date(2026, 12, 1)}))
    assert next_change([within], start, TOKYO) == local(TOKYO, 2026, 12, 1, 9, 0)


def test_next_change_over_the_new_york_repeated_hour() -> None:
    window = TimeWindow(frozenset({6}), time(1), time(1, 30))
    t = utc(2026, 11, 1, 5, 10)  # 01:10 EDT, inside
    changes = []
    for _ in range(4):
        nxt = next_change([window], t, NEW_YORK)
        assert nxt is not None
        changes.append(nxt.astimezone(UTC))
        t = nxt
    assert changes == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT: closes
        utc(2026, 11, 1, 6, 0),  # the clock goes back to 01:00 EST: open again
        utc(2026, 11, 1, 6, 30),  # 01:30 EST: closes
        utc(2026, 11, 8, 6, 0),  # next Sunday 01:00 EST
    ]


def test_next_change_over_the_paris_skipped_hour() -> None:
    early = TimeWindow(frozenset({6}), time(2, 30), time(4))
    change = next_change([early], utc(2026, 3, 28, 23, 0), PARIS)
    assert change is not None
    assert change.astimezone(UTC) == utc(2026, 3, 29, 1, 0)  # the jump to 03:00 CEST
    assert change.utcoffset() == timedelta(hours=2)
    skipped = TimeWindow(frozenset({6}), time(2, 10), time(2, 50))  # entirely in the gap
    change = next_change([skipped], utc(2026, 3, 28, 23, 0), PARIS)
    assert change == local(PARIS, 2026, 4, 5, 2, 10)  # never open that night


QUARTERS = [time(h, m) for h in range(24) for m in (0, 15, 30, 45)]
windows_strategy = st.lists(
    st.builds(
        TimeWindow,
        st.frozensets(st.integers(0, 6), min_size=1),
        st.sampled_from(QUARTERS),
        st.sampled_from(QUARTERS),
    ),
    max_size=3,
)


@settings(max_examples=40, deadline=None)
@given(
    windows_strategy,
    st.sampled_from([PARIS, NEW_YORK, TOKYO]),
    st.sampled_from([utc(2026, 3, 4), utc(2026, 3, 25), utc(2026, 10, 22), utc(2026, 10, 29)]),
    st.integers(0, 4 * 24 * 4),
)
def test_next_change_agrees_with_a_quarter_hour_scan(
    windows: list[TimeWindow], tz: ZoneInfo, base: datetime, quarter: int
) -> None:
    """Boundaries on quarter hours and whole-hour DST shifts: a 15-minute scan is exact."""
    start = base + timedelta(minutes=15 * quarter)
    state = in_windows(windows, start, tz)
    expected = None
    step = timedelta(minutes=15)
    t = start + step
    while t <= start + timedelta(days=8):
        if in_windows(windows, t, tz) != state:
            expected = t
            break
        t += step
    assert next_change(windows, start, tz) == expected
