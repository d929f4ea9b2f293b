"""The shared media clock: absolute deadlines, catch-up, skip-ahead."""

from __future__ import annotations

import asyncio

from media.clock import MediaClock, TickSchedule


def test_ticks_follow_absolute_deadlines_without_drift() -> None:
    s = TickSchedule(start=100.0, period=0.02)
    assert s.due(99.99) == []
    assert s.due(100.0) == [0]
    assert s.due(100.015) == []
    assert s.due(100.021) == [1]  # late by 1 ms: the next deadline is still 100.04
    assert s.deadline(2) == 100.04
    assert s.due(100.04) == [2]


def test_firing_exactly_at_each_deadline_always_yields_that_tick() -> None:
    s = TickSchedule(start=255.9, period=0.02)  # a start where float rounding bites
    for n in range(2000):
        assert s.due(s.deadline(n)) == [n]


def test_a_stall_is_caught_up_then_skipped_beyond_the_cap() -> None:
    s = TickSchedule(start=0.0, period=0.02, max_catch_up=5)
    assert s.due(0.0) == [0]
    assert s.due(0.0605) == [1, 2, 3]  # 40 ms stall: both missed ticks run, in order
    assert s.missed == 0
    ticks = s.due(1.0)  # a 1 s stall: only the last five run, the rest are counted as missed
    assert ticks == [46, 47, 48, 49, 50]
    assert s.missed == 46 - 4
    assert s.due(1.02) == [51]


async def test_media_clock_drives_subscribers_at_the_period() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop, period=0.01)
    seen: list[int] = []
    token = clock.subscribe(lambda tick, deadline: seen.append(tick))
    broken = clock.subscribe(lambda tick, deadline: 1 / 0)  # must not stop the others
    await asyncio.sleep(0.105)
    clock.unsubscribe(broken)
    clock.unsubscribe(token)
    assert 8 <= len(seen) <= 12
    assert seen == list(range(seen[0], seen[0] + len(seen)))  # consecutive, none twice
    assert len(clock) == 0
