"""SqliteCdrStore against a real SQLite file: round trip, queries, retention, a shared file."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sqlite3
from pathlib import Path

import pytest

from softswitch.registrar.bindings import Binding
from softswitch.storage.cdr import CallRecord
from softswitch.storage.protocols import CdrStore
from softswitch.storage.sqlite import SqliteBindingStore, SqliteCdrStore
from tests.integration.call_records import T0, ids, record

# -- the value type --------------------------------------------------------------------------


def test_derived_times_and_answered_flag() -> None:
    answered = record("a", T0 + 100, started=T0, answered=T0 + 12.5)
    assert answered.duration == 100.0
    assert answered.talk_time == 87.5
    assert answered.answered_ok is True

    busy = record("b", T0 + 4, started=T0, answered=None, status=486, cause="486 Busy Here")
    assert busy.duration == 4.0
    assert busy.talk_time == 0.0
    assert busy.answered_ok is False

    # A wall clock stepped back during the call does not give negative times.
    stepped = record("c", T0 - 5, started=T0, answered=T0 + 1)
    assert stepped.duration == 0.0
    assert stepped.talk_time == 0.0


def test_record_is_immutable_and_copies_its_media() -> None:
    media = {"a": {"packets": 10}}
    rec = record("a", T0, media=media)
    media["b"] = {"packets": 1}  # the caller's dict changes afterwards
    assert dict(rec.media) == {"a": {"packets": 10}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.status = 500  # type: ignore[misc]
    with pytest.raises(TypeError):
        rec.media["c"] = 1  # type: ignore[index]


def test_to_dict_is_json_with_derived_fields() -> None:
    rec = record(
        "x@h", T0 + 60, started=T0, answered=T0 + 10, caller_name="Ann", media={"digits": "12"}
    )
    doc = json.loads(json.dumps(rec.to_dict()))
    assert doc["call_id"] == "x@h"
    assert doc["caller_name"] == "Ann"
    assert doc["media"] == {"digits": "12"}
    assert (doc["duration"], doc["talk_time"], doc["answered_ok"]) == (60.0, 50.0, True)
    field_names = {f.name for f in dataclasses.fields(CallRecord)}
    assert field_names <= set(doc)


# -- the store -------------------------------------------------------------------------------


async def test_round_trip_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cdr.db"
    full = record(
        "a84b4c76e66710@pc33.example.com",
        T0 + 61.25,
        caller="+4930123456",
        caller_name="Zoë Ünïcode",
        callee="2000",
        started=T0,
        answered=T0 + 3.5,
        status=200,
        cause="callee hung up",
        recording="var/recordings/a84b4c76e66710.wav",
        media={
            "a": {"packets": 3050, "lost": 2, "jitter_ms": 4.25, "codec": "PCMU"},
            "b": {"packets": 3049, "lost": 0, "jitter_ms": 1.0, "codec": "PCMA"},
            "talk": {"a": 20.5, "b": 30.0},
            "digits": [["a", "1"], ["a", "#"]],
            "flags": [True, False, None],
        },
    )
    failed = record("b@h", T0 + 2, answered=None, status=486, cause="486 Busy Here")
    store = SqliteCdrStore(path)
    await store.open()
    await store.add(full)
    await store.add(failed)
    await store.close()

    reopened = SqliteCdrStore(str(path))
    await reopened.open()
    try:
        assert await reopened.get(full.call_id) == full
        assert await reopened.get("b@h") == failed
        assert await reopened.get("unknown@h") is None
        assert await reopened.recent() == [full, failed]
    finally:
        await reopened.close()


async def test_recent_is_newest_first_by_end_time(tmp_path: Path) -> None:
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        for name, ended in [("c", 30), ("a", 10), ("e", 50), ("b", 20), ("d", 40)]:
            await store.add(record(name, T0 + ended))
        # Same end time: the one added last comes first.
        await store.add(record("tie-1", T0 + 40))
        await store.add(record("tie-2", T0 + 40))
        assert ids(await store.recent()) == ["e", "tie-2", "tie-1", "d", "c", "b", "a"]


async def test_limit(tmp_path: Path) -> None:
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        for i in range(150):
            await store.add(record(f"call-{i}", T0 + i))
        assert ids(await store.recent(limit=3)) == ["call-149", "call-148", "call-147"]
        assert len(await store.recent()) == 100  # the default
        assert len(await store.recent(limit=1000)) == 150
        with pytest.raises(ValueError, match="limit"):
            await store.recent(limit=0)


async def test_since_keeps_records_ended_at_or_after(tmp_path: Path) -> None:
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        for i in range(10):
            await store.add(record(f"call-{i}", T0 + i * 10))
        assert ids(await store.recent(since=T0 + 70)) == ["call-9", "call-8", "call-7"]
        assert ids(await store.recent(since=T0 + 69.9, limit=2)) == ["call-9", "call-8"]
        assert await store.recent(since=T0 + 91) == []


async def test_user_matches_caller_or_callee_exactly(tmp_path: Path) -> None:
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        await store.add(record("out", T0 + 1, caller="1001", callee="2000"))
        await store.add(record("in", T0 + 2, caller="+4930555", callee="1001"))
        await store.add(record("other", T0 + 3, caller="1002", callee="2000"))
        await store.add(record("prefix", T0 + 4, caller="10011", callee="1001x"))
        assert ids(await store.recent(user="1001")) == ["in", "out"]
        assert ids(await store.recent(user="2000")) == ["other", "out"]
        assert ids(await store.recent(user="1001", since=T0 + 2)) == ["in"]
        assert ids(await store.recent(user="1001", limit=1)) == ["in"]
        assert await store.recent(user="9999") == []


async def test_get_returns_the_newest_record_of_a_call_id(tmp_path: Path) -> None:
    """A retried INVITE (after a digest challenge) keeps its Call-ID."""
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        challenged = record("same@h", T0 + 1, answered=None, status=407, cause="407")
        answered = record("same@h", T0 + 90, started=T0 + 2)
        await store.add(answered)
        await store.add(challenged)
        assert await store.get("same@h") == answered
        assert await store.recent() == [answered, challenged]


async def test_purge_removes_records_ended_before(tmp_path: Path) -> None:
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        for i in range(10):
            await store.add(record(f"call-{i}", T0 + i))
        assert await store.purge(T0 + 4) == 4  # call-0 .. call-3
        assert await store.purge(T0 + 4) == 0
        remaining = ids(await store.recent())
        assert remaining == [f"call-{i}" for i in range(9, 3, -1)]
        assert await store.get("call-3") is None
        assert await store.get("call-4") is not None


async def test_corrupt_media_is_read_as_empty_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cdr.db"
    async with SqliteCdrStore(path) as store:
        await store.add(record("good", T0 + 1, media={"a": {"packets": 5}}))
        await store.add(record("broken", T0 + 2, media={"a": 1}))
        await store.add(record("array", T0 + 3, media={"a": 2}))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE call_records SET media = '{\"a\": ' WHERE call_id = 'broken'")
        conn.execute("UPDATE call_records SET media = '[1, 2]' WHERE call_id = 'array'")
    conn.close()

    async with SqliteCdrStore(path) as store:
        with caplog.at_level(logging.WARNING, logger="softswitch.storage"):
            found = {r.call_id: r for r in await store.recent()}
            single = await store.get("broken")
    assert set(found) == {"good", "broken", "array"}
    assert dict(found["good"].media) == {"a": {"packets": 5}}
    assert dict(found["broken"].media) == {}
    assert dict(found["array"].media) == {}
    assert single is not None and dict(single.media) == {}
    assert found["broken"].status == 200  # the rest of the record is intact
    messages = [r.getMessage() for r in caplog.records]
    assert any("'broken'" in m and "not valid JSON" in m for m in messages)
    assert any("'array'" in m and "not an object" in m for m in messages)


async def test_media_that_is_not_json_is_refused(tmp_path: Path) -> None:
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        with pytest.raises(ValueError, match="'nan@h': media is not a JSON document"):
            await store.add(record("nan@h", T0, media={"jitter": math.nan}))
        with pytest.raises(ValueError, match="'obj@h': media is not a JSON document"):
            await store.add(record("obj@h", T0, media={"x": object()}))
        assert await store.recent() == []


async def test_index_on_end_time(tmp_path: Path) -> None:
    path = tmp_path / "cdr.db"
    async with SqliteCdrStore(path) as store:
        await store.add(record("a", T0))
    with sqlite3.connect(path) as conn:
        indexes = [row[1] for row in conn.execute("PRAGMA index_list(call_records)")]
        leading = {
            name: conn.execute(f"PRAGMA index_info({name})").fetchone()[2] for name in indexes
        }
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM call_records WHERE ended < ? ", (T0,)
            )
        )
    conn.close()
    assert "ended" in leading.values()
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan


async def test_use_before_open_and_after_close_is_an_error(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "cdr.db")
    with pytest.raises(RuntimeError, match="not open"):
        await store.recent()
    await store.open()
    await store.open()  # idempotent
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError, match="not open"):
        await store.add(record("a", T0))


async def test_memory_database() -> None:
    store: CdrStore = SqliteCdrStore(":memory:")
    assert isinstance(store, SqliteCdrStore)
    await store.open()
    try:
        await store.add(record("a", T0))
        assert ids(await store.recent()) == ["a"]
    finally:
        await store.close()


async def test_both_stores_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "softswitch.db"
    binding = Binding(
        aor="1001@softswitch.local",
        contact="sip:1001@127.0.0.1:5062",
        expires_at=T0 + 3600,
        q=1.0,
        call_id="reg-1",
        cseq=1,
        source="udp:127.0.0.1:5062",
    )
    rec = record("call@h", T0 + 10)

    # The CDR store creates the file; the binding store opens it next, both stay open.
    async with SqliteCdrStore(path) as cdrs, SqliteBindingStore(path) as bindings:
        await cdrs.add(rec)
        await bindings.save([binding])
        assert await bindings.journal_mode() == "wal"
        assert await cdrs.get("call@h") == rec
        assert await bindings.load_all() == [binding]

    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert {"call_records", "registrar_bindings"} <= tables

    # Reopened in the other order, each store finds its own data.
    async with SqliteBindingStore(path) as bindings, SqliteCdrStore(path) as cdrs:
        assert await bindings.load_all() == [binding]
        assert await cdrs.recent() == [rec]
        assert await cdrs.purge(T0 + 11) == 1
        assert await bindings.load_all() == [binding]
