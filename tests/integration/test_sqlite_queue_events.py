"""SqliteQueueEventStore against a real SQLite file: batches, filters, limit, retention,
corrupt rows, concurrent writers; and the queue log's CSV form."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import math
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from softswitch.acd.events import Detail, QueueEvent, QueueEventKind
from softswitch.storage.protocols import QueueEventStore
from softswitch.storage.queue_log import EVENT_CSV_COLUMNS, events_csv
from softswitch.storage.sqlite import SqliteCdrStore, SqliteQueueEventStore

T0 = 1_700_000_000.0
K = QueueEventKind


def ev(
    time: float,
    kind: QueueEventKind,
    call_id: str | None = None,
    queue: str | None = None,
    agent: str | None = None,
    **details: Detail,
) -> QueueEvent:
    return QueueEvent(time, kind, call_id, queue, agent, details)


def one_call(call_id: str, queue: str, agent: str, at: float) -> list[QueueEvent]:
    """The log of one call answered by an agent and hung up by the caller."""
    return [
        ev(at, K.ENTERED, call_id, queue, None, position=1, priority=0, caller="1001"),
        ev(at + 2, K.OFFERED, call_id, queue, agent, attempt=1),
        ev(at + 5, K.CONNECTED, call_id, queue, agent, wait=5.0, ring=3.0, position=1),
        ev(at + 65, K.COMPLETED_CALLER, call_id, queue, agent, wait=5.0, talk=60.0, position=1),
    ]


def times(events: list[QueueEvent]) -> list[float]:
    return [e.time - T0 for e in events]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteQueueEventStore]:
    async with SqliteQueueEventStore(tmp_path / "queue.db") as s:
        yield s


# -- round trip ------------------------------------------------------------------------------


async def test_round_trip_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    events = [
        *one_call("c1@h", "sales", "agent-7", T0),
        ev(T0 + 1, K.LOGIN, None, None, "agent-9"),
        ev(T0 + 3, K.NOT_READY, None, None, "agent-9", reason="Mittagspause ☕"),
        ev(T0 + 4.125, K.EXIT_FULL, "c2@h", "support", None, max_length=10, action="busy"),
    ]
    async with SqliteQueueEventStore(path) as store:
        await store.add_many(events)
    async with SqliteQueueEventStore(str(path)) as reopened:
        found = await reopened.query()
    assert found == sorted(events, key=lambda e: e.time)
    not_ready = next(e for e in found if e.kind is K.NOT_READY)
    assert dict(not_ready.details) == {"reason": "Mittagspause ☕"}
    connected = next(e for e in found if e.kind is K.CONNECTED)
    assert dict(connected.details) == {"wait": 5.0, "ring": 3.0, "position": 1}
    assert isinstance(connected.details["position"], int)
    assert isinstance(connected.details["wait"], float)


async def test_oldest_first_and_ties_keep_the_order_of_arrival(
    store: SqliteQueueEventStore,
) -> None:
    await store.add_many([ev(T0 + 30, K.READY, agent="a"), ev(T0 + 10, K.READY, agent="b")])
    await store.add_many([ev(T0 + 20, K.READY, agent="c"), ev(T0 + 20, K.READY, agent="d")])
    await store.add_many([ev(T0 + 20, K.READY, agent="e")])
    found = await store.query()
    assert [e.agent for e in found] == ["b", "c", "d", "e", "a"]
    assert times(found) == [10, 20, 20, 20, 30]


async def test_an_empty_batch_stores_nothing(store: SqliteQueueEventStore) -> None:
    await store.add_many([])
    assert await store.query() == []


# -- filters ---------------------------------------------------------------------------------


@pytest.fixture
async def day(store: SqliteQueueEventStore) -> SqliteQueueEventStore:
    """Three calls in two queues answered by two agents, and the agents' own events."""
    await store.add_many(
        [
            ev(T0 - 10, K.LOGIN, agent="ann"),
            ev(T0 - 9, K.LOGIN, agent="bob"),
            *one_call("c1@h", "sales", "ann", T0),
            *one_call("c2@h", "support", "bob", T0 + 100),
            *one_call("c3@h", "sales", "bob", T0 + 200),
            ev(T0 + 300, K.ABANDONED, "c4@h", "sales", None, position=2, wait=12.5),
            ev(T0 + 400, K.LOGOUT, agent="ann", session=410),
        ]
    )
    return store


async def test_since_is_inclusive_and_until_exclusive(day: SqliteQueueEventStore) -> None:
    found = await day.query(since=T0 + 100, until=T0 + 165)
    assert times(found) == [100, 102, 105]
    assert [e.call_id for e in found] == ["c2@h"] * 3
    assert times(await day.query(since=T0 + 300)) == [300, 400]
    assert times(await day.query(until=T0 - 9)) == [-10]
    assert await day.query(since=T0 + 401) == []
    assert await day.query(since=T0 + 50, until=T0 + 50) == []


async def test_queue_agent_and_call_filters_are_exact(day: SqliteQueueEventStore) -> None:
    sales = await day.query(queue="sales")
    assert {e.call_id for e in sales} == {"c1@h", "c3@h", "c4@h"}
    assert len(sales) == 9
    assert await day.query(queue="sale") == []
    assert await day.query(queue="SALES") == []

    bob = await day.query(agent="bob")
    assert [e.kind for e in bob] == [K.LOGIN] + [K.OFFERED, K.CONNECTED, K.COMPLETED_CALLER] * 2
    assert {e.call_id for e in bob} == {None, "c2@h", "c3@h"}

    c3 = await day.query(call_id="c3@h")
    assert [e.kind for e in c3] == [K.ENTERED, K.OFFERED, K.CONNECTED, K.COMPLETED_CALLER]
    assert await day.query(call_id="c3") == []

    # Filters combine with AND.
    assert times(await day.query(queue="sales", agent="bob", since=T0 + 205)) == [205, 265]


async def test_kinds_filter(day: SqliteQueueEventStore) -> None:
    outcomes = await day.query(kinds={"connected", "abandoned"})
    assert [(e.kind, e.call_id) for e in outcomes] == [
        (K.CONNECTED, "c1@h"),
        (K.CONNECTED, "c2@h"),
        (K.CONNECTED, "c3@h"),
        (K.ABANDONED, "c4@h"),
    ]
    assert [e.agent for e in await day.query(kinds=["login", "logout"])] == ["ann", "bob", "ann"]
    assert times(await day.query(kinds=("entered",), queue="sales")) == [0, 200]
    assert await day.query(kinds=["exit_timeout"]) == []
    assert await day.query(kinds=[]) == []  # no kind: nothing


async def test_unknown_kinds_are_an_error(day: SqliteQueueEventStore) -> None:
    with pytest.raises(ValueError, match=r"unknown queue event kinds \['hangup'\]"):
        await day.query(kinds=["connected", "hangup"])
    with pytest.raises(ValueError, match="unknown queue event kinds"):
        await day.query(kinds="connected")  # a str is a collection of letters


# -- limit -----------------------------------------------------------------------------------


async def test_limit_keeps_the_newest_in_ascending_order(store: SqliteQueueEventStore) -> None:
    await store.add_many([ev(T0 + i, K.READY, agent=f"a{i % 3}") for i in range(20)])
    assert times(await store.query(limit=3)) == [17, 18, 19]
    assert times(await store.query(limit=1)) == [19]
    assert times(await store.query(limit=20)) == list(range(20))
    assert times(await store.query(limit=500)) == list(range(20))
    # Applied after the filters: the newest matching events.
    assert times(await store.query(agent="a0", limit=2)) == [15, 18]
    assert times(await store.query(until=T0 + 10, limit=4)) == [6, 7, 8, 9]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="limit"):
            await store.query(limit=bad)


async def test_default_limit_is_1000(store: SqliteQueueEventStore) -> None:
    await store.add_many([ev(T0 + i / 10, K.OFFERED, f"c{i}", "q") for i in range(1005)])
    found = await store.query()
    assert len(found) == 1000
    assert found[0].call_id == "c5" and found[-1].call_id == "c1004"
    assert [e.time for e in found] == sorted(e.time for e in found)


# -- retention -------------------------------------------------------------------------------


async def test_purge_removes_events_before(day: SqliteQueueEventStore) -> None:
    before = await day.query()
    assert await day.purge(T0 + 100) == 6  # 2 logins, c1's 4 events
    assert await day.purge(T0 + 100) == 0
    remaining = await day.query()
    assert remaining == [e for e in before if e.time >= T0 + 100]
    assert remaining[0].time == T0 + 100  # the boundary is kept
    assert await day.purge(T0 + 1000) == len(remaining)
    assert await day.query() == []
    # New events after a purge that emptied the table still come in arrival order.
    await day.add_many([ev(T0, K.READY, agent="x"), ev(T0, K.READY, agent="y")])
    assert [e.agent for e in await day.query()] == ["x", "y"]


# -- bad data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "problem"),
    [
        ({"wait": math.nan}, "'wait'"),
        ({"wait": math.inf}, "'wait'"),
        ({"flag": True}, "'flag'"),
        ({"nested": {"a": 1}}, "'nested'"),
        ({"none": None}, "'none'"),
    ],
)
async def test_details_that_are_not_flat_json_are_refused_whole_batch(
    store: SqliteQueueEventStore, details: dict[str, object], problem: str
) -> None:
    good = ev(T0, K.ENTERED, "ok@h", "q", position=1)
    bad = QueueEvent(T0 + 1, K.CONNECTED, "bad@h", "q", "a", details)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"connected of call 'bad@h': detail {problem}"):
        await store.add_many([good, bad])
    assert await store.query() == []  # one transaction: the good event is not stored either


async def test_corrupt_rows_are_logged_and_read_leniently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "queue.db"
    async with SqliteQueueEventStore(path) as store:
        await store.add_many(
            [
                ev(T0 + 1, K.CONNECTED, "broken@h", "q", "a", wait=1.0),
                ev(T0 + 2, K.CONNECTED, "array@h", "q", "a", wait=2.0),
                ev(T0 + 3, K.CONNECTED, "mixed@h", "q", "a", wait=3.0),
                ev(T0 + 4, K.CONNECTED, "alien@h", "q", "a", wait=4.0),
                ev(T0 + 5, K.CONNECTED, "good@h", "q", "a", wait=5.0),
            ]
        )
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE queue_events SET details = '{\"wait\": ' WHERE call_id = 'broken@h'")
        conn.execute("UPDATE queue_events SET details = '[1, 2]' WHERE call_id = 'array@h'")
        conn.execute(
            'UPDATE queue_events SET details = \'{"wait": 3.0, "x": [1], "y": true}\' '
            "WHERE call_id = 'mixed@h'"
        )
        conn.execute("UPDATE queue_events SET kind = 'teleported' WHERE call_id = 'alien@h'")
    conn.close()

    async with SqliteQueueEventStore(path) as store:
        with caplog.at_level(logging.WARNING, logger="softswitch.storage"):
            found = {e.call_id: e for e in await store.query()}
    assert set(found) == {"broken@h", "array@h", "mixed@h", "good@h"}  # the alien is skipped
    assert dict(found["broken@h"].details) == {}
    assert dict(found["array@h"].details) == {}
    assert dict(found["mixed@h"].details) == {"wait": 3.0}
    assert dict(found["good@h"].details) == {"wait": 5.0}
    assert found["broken@h"].agent == "a" and found["broken@h"].time == T0 + 1  # rest intact
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "'broken@h'" in m and "not valid JSON" in m and "read as empty" in m for m in messages
    )
    assert any("'array@h'" in m and "not an object" in m for m in messages)
    assert any("'mixed@h'" in m and "['x', 'y']" in m and "read as the rest" in m for m in messages)
    assert any("unknown kind 'teleported'" in m for m in messages)


# -- concurrency and sharing -----------------------------------------------------------------


async def test_concurrent_batches_are_all_stored(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    per_batch = 300
    first = [ev(T0 + 2 * i, K.OFFERED, f"a{i}", "q", "ann") for i in range(per_batch)]
    second = [ev(T0 + 2 * i + 1, K.OFFERED, f"b{i}", "q", "bob") for i in range(per_batch)]
    third = [ev(T0 + 5000 + i, K.MISSED, f"c{i}", "q", "cid", ring=1) for i in range(per_batch)]
    async with SqliteQueueEventStore(path) as one, SqliteQueueEventStore(path) as other:
        # Two batches on one store (two pooled connections) and one from a second store on
        # the same file, all at once: SQLite serialises the writers (busy_timeout), none fails.
        await asyncio.wait_for(
            asyncio.gather(one.add_many(first), one.add_many(second), other.add_many(third)),
            timeout=30,
        )
        found = await one.query(limit=10_000)
    assert len(found) == 3 * per_batch
    assert found == sorted([*first, *second, *third], key=lambda e: e.time)
    assert [e.call_id for e in found[:4]] == ["a0", "b0", "a1", "b1"]


async def test_shares_a_file_with_the_cdr_store(tmp_path: Path) -> None:
    path = tmp_path / "softswitch.db"
    async with SqliteCdrStore(path) as cdrs, SqliteQueueEventStore(path) as events:
        await events.add_many(one_call("c1@h", "sales", "ann", T0))
        assert await cdrs.recent() == []
        assert len(await events.query()) == 4
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"call_records", "queue_events"} <= tables


async def test_indexes_serve_the_filters(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    async with SqliteQueueEventStore(path) as store:
        await store.add_many(one_call("c1@h", "sales", "ann", T0))
    with sqlite3.connect(path) as conn:
        columns = {
            name: [row[2] for row in conn.execute(f"PRAGMA index_info({name})")]
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'queue_events'"
            )
        }

        def plan(where: str) -> str:
            query = f"SELECT * FROM queue_events WHERE {where} ORDER BY time DESC, id DESC"
            return " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))

        plans = {
            "queue": plan("queue = 'sales'"),
            "agent": plan("agent = 'ann'"),
            "call": plan("call_id = 'c1@h'"),
            "time": plan("time >= 0"),
        }
    conn.close()
    assert sorted(columns.values()) == [["agent", "time"], ["call_id"], ["queue", "time"], ["time"]]
    assert "ix_queue_events_queue" in plans["queue"]
    assert "ix_queue_events_agent" in plans["agent"]
    assert "ix_queue_events_call_id" in plans["call"]
    assert "ix_queue_events_time" in plans["time"]


async def test_use_before_open_and_after_close_is_an_error(tmp_path: Path) -> None:
    store: QueueEventStore = SqliteQueueEventStore(tmp_path / "queue.db")
    assert isinstance(store, SqliteQueueEventStore)
    with pytest.raises(RuntimeError, match="not open"):
        await store.query()
    with pytest.raises(RuntimeError, match="not open"):
        await store.query(kinds=[])
    await store.open()
    await store.add_many([ev(T0, K.READY, agent="a")])
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.add_many([ev(T0, K.READY, agent="a")])


# -- CSV -------------------------------------------------------------------------------------


def test_events_csv_parses_back() -> None:
    events = [
        ev(T0 + 0.5, K.ENTERED, "a84b@pc33", "sales", None, position=1, caller='Zoë, "Z"'),
        ev(T0 + 1.25, K.NOT_READY, None, None, "ann", reason="line\nbreak"),
        ev(T0 + 2, K.CONNECTED, "=HYPERLINK(1)", "-q", "@ann", wait=1.5),
        ev(T0 + 3, K.READY, None, None, "ann"),
    ]
    text = events_csv(events)
    assert text.startswith("time,event,call_id,queue,agent,details\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == EVENT_CSV_COLUMNS
    assert rows[1] == [
        f"{T0 + 0.5:.3f}",
        "entered",
        "a84b@pc33",
        "sales",
        "",
        '{"position":1,"caller":"Zoë, \\"Z\\""}',
    ]
    assert json.loads(rows[1][5]) == {"position": 1, "caller": 'Zoë, "Z"'}
    assert rows[2][:5] == ["1700000001.250", "not_ready", "", "", "ann"]
    assert json.loads(rows[2][5]) == {"reason": "line\nbreak"}
    # Texts a spreadsheet would run as formulas are defused.
    assert rows[3][2:5] == ["'=HYPERLINK(1)", "'-q", "'@ann"]
    assert rows[4][5] == "{}"
    assert len(rows) == 5
    assert events_csv([]) == "time,event,call_id,queue,agent,details\r\n"
