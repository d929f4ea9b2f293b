"""Call detail records with their queue fields: round trip, the newer filters of ``recent``,
the upgrade of a database file written before those fields existed, and the CSV form."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from softswitch.storage.cdr import CDR_CSV_COLUMNS, CallRecord, records_csv, spreadsheet_cell
from softswitch.storage.sqlite import SqliteCdrStore
from tests.integration.call_records import T0, ids, record

QUEUED = record(
    "q1@h",
    T0 + 100,
    caller="+4930123456",
    callee="500",
    started=T0,
    answered=T0 + 42.5,
    queue="sales",
    agent="agent-7",
    wait=42.25,
    wrap_up_code="sale-closed",
    media={"a": {"packets": 10}},
)


# -- the value type --------------------------------------------------------------------------


def test_queue_fields_default_to_none_and_are_in_the_dict() -> None:
    plain = record("p@h", T0)
    assert (plain.queue, plain.agent, plain.wait, plain.wrap_up_code) == (None, None, None, None)
    names = [f.name for f in dataclasses.fields(CallRecord)]
    assert names[-5:] == ["queue", "agent", "wait", "wrap_up_code", "wrap_up_note"]
    doc = json.loads(json.dumps(QUEUED.to_dict()))
    assert (doc["queue"], doc["agent"], doc["wait"], doc["wrap_up_code"]) == (
        "sales",
        "agent-7",
        42.25,
        "sale-closed",
    )
    assert json.loads(json.dumps(plain.to_dict()))["wrap_up_code"] is None
    assert json.loads(json.dumps(plain.to_dict()))["wrap_up_note"] is None


# -- the store -------------------------------------------------------------------------------


async def test_queue_fields_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "cdr.db"
    plain = record("p@h", T0 + 50)
    unanswered = record(
        "ab@h", T0 + 60, answered=None, status=487, cause="cancelled", queue="sales", wait=59.0
    )
    async with SqliteCdrStore(path) as store:
        for r in (QUEUED, plain, unanswered):
            await store.add(r)
    async with SqliteCdrStore(path) as store:
        assert await store.get("q1@h") == QUEUED
        assert await store.get("p@h") == plain
        got = await store.get("ab@h")
        assert got == unanswered
        assert got is not None and got.agent is None and got.wait == 59.0


@pytest.fixture
async def calls(tmp_path: Path) -> AsyncIterator[SqliteCdrStore]:
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        for r in [
            record("a", T0 + 10, caller="1001", callee="500", queue="sales", agent="ann", wait=3),
            record("b", T0 + 20, caller="1002", callee="500", queue="sales", agent="bob", wait=8),
            record("c", T0 + 30, caller="1001", callee="600", queue="support", agent="bob"),
            record("d", T0 + 40, caller="1003", callee="1001"),
            record("e", T0 + 50, caller="1002", callee="500", queue="sales", answered=None),
        ]:
            await store.add(r)
        yield store


async def test_until_is_exclusive_and_combines_with_since(calls: SqliteCdrStore) -> None:
    assert ids(await calls.recent(until=T0 + 30)) == ["b", "a"]
    assert ids(await calls.recent(until=T0 + 30.001)) == ["c", "b", "a"]
    assert ids(await calls.recent(since=T0 + 20, until=T0 + 50)) == ["d", "c", "b"]
    assert ids(await calls.recent(since=T0 + 20, until=T0 + 50, limit=1)) == ["d"]
    assert await calls.recent(since=T0 + 30, until=T0 + 30) == []
    assert await calls.recent(until=T0) == []


async def test_caller_and_callee_filters_are_exact(calls: SqliteCdrStore) -> None:
    assert ids(await calls.recent(caller="1001")) == ["c", "a"]
    assert ids(await calls.recent(callee="500")) == ["e", "b", "a"]
    assert ids(await calls.recent(caller="1002", callee="500")) == ["e", "b"]
    assert await calls.recent(caller="100") == []
    # user is caller OR callee; with caller it narrows further.
    assert ids(await calls.recent(user="1001")) == ["d", "c", "a"]
    assert ids(await calls.recent(user="1001", callee="600")) == ["c"]


async def test_queue_and_agent_filters(calls: SqliteCdrStore) -> None:
    assert ids(await calls.recent(queue="sales")) == ["e", "b", "a"]
    assert ids(await calls.recent(queue="support")) == ["c"]
    assert ids(await calls.recent(agent="bob")) == ["c", "b"]
    assert ids(await calls.recent(queue="sales", agent="bob")) == ["b"]
    assert ids(await calls.recent(queue="sales", since=T0 + 15, until=T0 + 45)) == ["b"]
    assert ids(await calls.recent(queue="sales", limit=2)) == ["e", "b"]
    assert await calls.recent(queue="Sales") == []
    assert await calls.recent(agent="nobody") == []


async def test_filter_indexes_exist(calls: SqliteCdrStore) -> None:
    with sqlite3.connect(calls.path) as conn:
        columns = {
            name: [row[2] for row in conn.execute(f"PRAGMA index_info({name})")]
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'call_records'"
            )
        }
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM call_records WHERE queue = 'sales' "
                "ORDER BY ended DESC, id DESC"
            )
        )
    conn.close()
    assert columns["ix_call_records_queue"] == ["queue", "ended"]
    assert columns["ix_call_records_agent"] == ["agent", "ended"]
    assert "ix_call_records_queue" in plan


# -- a database from before the queue fields -------------------------------------------------

# The table and indexes as the first version of the store created them.
OLD_SCHEMA = """
CREATE TABLE call_records (
    id INTEGER NOT NULL,
    call_id VARCHAR NOT NULL,
    caller VARCHAR NOT NULL,
    caller_name VARCHAR,
    callee VARCHAR NOT NULL,
    started FLOAT NOT NULL,
    answered FLOAT,
    ended FLOAT NOT NULL,
    status INTEGER NOT NULL,
    cause VARCHAR NOT NULL,
    recording VARCHAR,
    media TEXT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_call_records_ended ON call_records (ended);
CREATE INDEX ix_call_records_call_id ON call_records (call_id);
CREATE INDEX ix_call_records_caller ON call_records (caller, ended);
CREATE INDEX ix_call_records_callee ON call_records (callee, ended);
"""


def old_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(OLD_SCHEMA)
        conn.executemany(
            "INSERT INTO call_records (call_id, caller, caller_name, callee, started, answered, "
            "ended, status, cause, recording, media) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("old-1@h", "1001", "Ann", "2000", T0, T0 + 2, T0 + 30, 200, "caller hung up",
                 None, '{"a":{"packets":100}}'),
                ("old-2@h", "1002", None, "2000", T0 + 40, None, T0 + 45, 486, "486 Busy Here",
                 None, "{}"),
            ],
        )  # fmt: skip
    conn.close()


def table_columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        names = [str(row[1]) for row in conn.execute("PRAGMA table_info(call_records)")]
    conn.close()
    return names


async def test_an_old_database_is_upgraded_on_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    old_database(path)
    assert "queue" not in table_columns(path)

    with caplog.at_level(logging.INFO, logger="softswitch.storage"):
        async with SqliteCdrStore(path) as store:
            old = await store.recent()
            assert ids(old) == ["old-2@h", "old-1@h"]
            assert old[1] == CallRecord(
                "old-1@h", "1001", "Ann", "2000", T0, T0 + 2, T0 + 30, 200, "caller hung up",
                None, {"a": {"packets": 100}},
            )  # fmt: skip
            assert (old[0].queue, old[0].agent, old[0].wait, old[0].wrap_up_code) == ((None,) * 4)
            await store.add(dataclasses.replace(QUEUED, ended=T0 + 50))
            assert ids(await store.recent(queue="sales")) == ["q1@h"]
            assert ids(await store.recent(agent="agent-7")) == ["q1@h"]
            assert ids(await store.recent(until=T0 + 46)) == ["old-2@h", "old-1@h"]
            assert ids(await store.recent(user="2000")) == ["old-2@h", "old-1@h"]
    added = [r.getMessage() for r in caplog.records if "column" in r.getMessage()]
    assert sorted(added) == sorted(
        f"database upgraded: column call_records.{name} added"
        for name in ("queue", "agent", "wait", "wrap_up_code", "wrap_up_note")
    )
    assert table_columns(path)[-5:] == ["queue", "agent", "wait", "wrap_up_code", "wrap_up_note"]

    # Opened again: nothing left to upgrade, everything still there.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="softswitch.storage"):
        async with SqliteCdrStore(path) as store:
            got = await store.get("q1@h")
            assert got is not None and got.wrap_up_code == "sale-closed" and got.wait == 42.25
            assert await store.set_wrap_up_note("q1@h", "wants a call back on Monday")
            assert not await store.set_wrap_up_note("nobody@h", "no such call")
            got = await store.get("q1@h")
            assert got is not None and got.wrap_up_note == "wants a call back on Monday"
            assert len(await store.recent()) == 3
    assert not [r for r in caplog.records if "upgraded" in r.getMessage()]
    with sqlite3.connect(path) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(call_records)")}
    conn.close()
    assert {"ix_call_records_queue", "ix_call_records_agent", "ix_call_records_ended"} <= indexes


async def test_two_stores_upgrading_one_old_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_database(path)
    one, other = SqliteCdrStore(path), SqliteCdrStore(path)
    try:
        await asyncio.wait_for(asyncio.gather(one.open(), other.open()), timeout=30)
        await one.add(record("new@h", T0 + 60, queue="q"))
        assert ids(await other.recent(queue="q")) == ["new@h"]
        assert len(await other.recent()) == 3
    finally:
        await one.close()
        await other.close()
    assert table_columns(path).count("queue") == 1


# -- CSV -------------------------------------------------------------------------------------


def test_records_csv_parses_back() -> None:
    tricky = record(
        "x@h",
        T0 + 7.0004,
        started=T0,
        answered=None,
        caller="+4930123456",
        caller_name='=cmd|" /C calc"!A0',
        callee="500",
        status=487,
        cause="cancelled, by caller",
        recording="var/rec/x.wav",
    )
    text = records_csv([QUEUED, tricky])
    assert text.startswith(",".join(CDR_CSV_COLUMNS) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 2
    assert tuple(rows[0]) == CDR_CSV_COLUMNS
    assert rows[0] == {
        "call_id": "q1@h",
        "caller": "+4930123456",  # a phone number is not a formula
        "caller_name": "",
        "callee": "500",
        "started": "1700000000.000",
        "answered": "1700000042.500",
        "ended": "1700000100.000",
        "duration": "100.000",
        "talk_time": "57.500",
        "status": "200",
        "cause": "caller hung up",
        "queue": "sales",
        "agent": "agent-7",
        "wait": "42.250",
        "wrap_up_code": "sale-closed",
        "recording": "",
        "wrap_up_note": "",
    }
    assert rows[1]["caller_name"] == '\'=cmd|" /C calc"!A0'
    assert (rows[1]["answered"], rows[1]["talk_time"], rows[1]["ended"]) == (
        "",
        "0.000",
        "1700000007.000",
    )
    assert rows[1]["cause"] == "cancelled, by caller"
    assert (rows[1]["queue"], rows[1]["wait"], rows[1]["status"]) == ("", "", "487")
    assert records_csv([]) == ",".join(CDR_CSV_COLUMNS) + "\r\n"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("1001", "1001"),
        ("+4930123456", "+4930123456"),
        ("-12.5", "-12.5"),
        ("Ann", "Ann"),
        ("", ""),
        ("=1+1", "'=1+1"),
        ("+1+cmd", "'+1+cmd"),
        ("-SUM(A1)", "'-SUM(A1)"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
    ],
)
def test_spreadsheet_cell(value: str, cell: str) -> None:
    assert spreadsheet_cell(value) == cell
