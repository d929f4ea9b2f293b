"""``/api/queue-events`` and ``/api/cdrs`` on a real socket over real SQLite stores: filters,
JSON and CSV answers (parsed back), every bad parameter, missing and failing stores."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from softswitch.acd.events import QueueEvent, QueueEventKind
from softswitch.admin.records_api import add_records_routes
from softswitch.storage.cdr import CDR_CSV_COLUMNS, CallRecord, records_csv
from softswitch.storage.queue_log import EVENT_CSV_COLUMNS, events_csv
from softswitch.storage.sqlite import SqliteCdrStore, SqliteQueueEventStore

T0 = 1_714_550_400.0  # 2024-05-01T08:00:00Z
K = QueueEventKind
TIMEOUT = aiohttp.ClientTimeout(total=10)
ALL_KINDS = sorted(kind.value for kind in QueueEventKind)


def event(
    offset: float,
    kind: QueueEventKind,
    call_id: str | None = None,
    queue: str | None = None,
    agent: str | None = None,
    **details: str | int | float,
) -> QueueEvent:
    return QueueEvent(T0 + offset, kind, call_id, queue, agent, details)


EVENTS = [
    event(-60, K.LOGIN, agent="ann"),
    event(0, K.ENTERED, "c1@h", "sales", None, position=1, caller="1001"),
    event(4, K.CONNECTED, "c1@h", "sales", "ann", wait=4.0, ring=2.0, position=1),
    event(64, K.COMPLETED_AGENT, "c1@h", "sales", "ann", wait=4.0, talk=60.0, position=1),
    event(3600, K.ENTERED, "c2@h", "support", None, position=1, caller="=1+1"),
    event(3630, K.ABANDONED, "c2@h", "support", None, position=1, original_position=1, wait=30),
    event(7200, K.NOT_READY, agent="bob", reason='Pause, "lunch"'),
]


def cdr(call_id: str, ended: float, **kw: object) -> CallRecord:
    fields: dict[str, object] = {
        "call_id": call_id,
        "caller": "1001",
        "caller_name": None,
        "callee": "500",
        "started": T0 + ended - 60,
        "answered": T0 + ended - 50,
        "ended": T0 + ended,
        "status": 200,
        "cause": "caller hung up",
    }
    fields.update(kw)
    return CallRecord(**fields)  # type: ignore[arg-type]


RECORDS = [
    cdr("r1@h", 64, queue="sales", agent="ann", wait=4.0, wrap_up_code="sold"),
    cdr("r2@h", 3630, caller="+4930555", queue="support", answered=None, status=487, wait=30.0),
    cdr("r3@h", 7000, caller="1002", callee="1001", caller_name='Bob, "B"'),
]


@dataclass
class Client:
    session: aiohttp.ClientSession
    base: str

    async def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str], str]:
        async with self.session.get(self.base + path, headers=headers) as response:
            body = await response.text()
            return response.status, response.content_type, dict(response.headers), body

    async def json(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, object]:
        status, content_type, _, body = await self.get(path, headers)
        assert content_type == "application/json", (path, body)
        return status, json.loads(body)

    async def rows(self, path: str, headers: dict[str, str] | None = None) -> list[list[str]]:
        status, content_type, response_headers, body = await self.get(path, headers)
        assert (status, content_type) == (200, "text/csv"), (path, body)
        assert response_headers["Content-Type"] == "text/csv; charset=utf-8"
        return list(csv.reader(io.StringIO(body, newline="")))


@asynccontextmanager
async def serving(
    cdrs: SqliteCdrStore | None, events: SqliteQueueEventStore | None
) -> AsyncIterator[Client]:
    app = web.Application()
    api = web.Application()
    add_records_routes(api, cdrs, events, cdrs_csv=records_csv, events_csv=events_csv)
    app.add_subapp("/api/", api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            yield Client(session, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteCdrStore, SqliteQueueEventStore]]:
    path = tmp_path / "softswitch.db"
    async with SqliteCdrStore(path) as cdrs, SqliteQueueEventStore(path) as events:
        await events.add_many(EVENTS)
        for r in RECORDS:
            await cdrs.add(r)
        yield cdrs, events


@pytest.fixture
async def client(
    stores: tuple[SqliteCdrStore, SqliteQueueEventStore],
) -> AsyncIterator[Client]:
    async with serving(*stores) as c:
        yield c


def iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat()


# -- queue events ----------------------------------------------------------------------------


async def event_times(client: Client, query: str) -> list[float]:
    status, body = await client.json(f"/api/queue-events{query}")
    assert status == 200, (query, body)
    assert isinstance(body, dict) and set(body) == {"events"}
    return [e["time"] - T0 for e in body["events"]]


async def test_queue_events_json(client: Client) -> None:
    status, body = await client.json("/api/queue-events")
    assert status == 200
    assert body == {"events": [e.to_dict() for e in EVENTS]}
    assert isinstance(body, dict)
    assert body["events"][2] == {
        "time": T0 + 4,
        "event": "connected",
        "call_id": "c1@h",
        "queue": "sales",
        "agent": "ann",
        "details": {"wait": 4.0, "ring": 2.0, "position": 1},
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [-60, 0, 4, 64, 3600, 3630, 7200]),
        (f"?since={T0 + 4}", [4, 64, 3600, 3630, 7200]),
        (f"?until={T0 + 64}", [-60, 0, 4]),
        (f"?since={T0}&until={T0 + 3600}", [0, 4, 64]),
        (f"?since={iso(3600)}", [3600, 3630, 7200]),  # +00:00 as a space: taken back
        (f"?since={iso(3600).replace('+00:00', 'Z')}", [3600, 3630, 7200]),
        ("?since=2024-05-01T10:00:00%2B02:00", [0, 4, 64, 3600, 3630, 7200]),
        ("?until=2024-05-01T05:01:05-03:00", [-60, 0, 4, 64]),
        ("?since=2024-05-01T10:00:00 02:00", [0, 4, 64, 3600, 3630, 7200]),
        ("?queue=sales", [0, 4, 64]),
        ("?queue=support&since=1714554000", [3600, 3630]),
        ("?agent=ann", [-60, 4, 64]),
        ("?agent=bob", [7200]),
        ("?call_id=c2%40h", [3600, 3630]),
        ("?call_id=c2", []),
        ("?event=entered", [0, 3600]),
        ("?event=entered,abandoned", [0, 3600, 3630]),
        ("?event=%20login%20,%20not_ready", [-60, 7200]),
        ("?event=connected&agent=bob", []),
        ("?limit=2", [3630, 7200]),  # the newest two, oldest first
        ("?limit=1&queue=sales", [64]),
        ("?limit=10000", [-60, 0, 4, 64, 3600, 3630, 7200]),
        (f"?limit=2&until={T0 + 3600}", [4, 64]),  # paging backwards
    ],
)
async def test_queue_event_filters(client: Client, query: str, expected: list[float]) -> None:
    assert await event_times(client, query) == expected


async def test_queue_events_csv(client: Client) -> None:
    status, content_type, headers, body = await client.get("/api/queue-events?format=csv")
    assert (status, content_type) == (200, "text/csv")
    assert headers["Content-Disposition"] == 'attachment; filename="queue-events.csv"'
    assert headers["Vary"] == "Accept"
    assert body == events_csv(EVENTS)
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert tuple(rows[0]) == EVENT_CSV_COLUMNS
    assert len(rows) == 1 + len(EVENTS)
    for row, e in zip(rows[1:], EVENTS, strict=True):
        assert float(row[0]) == pytest.approx(e.time, abs=5e-4)
        assert row[1] == e.kind.value
        assert row[2:5] == [e.call_id or "", e.queue or "", e.agent or ""]
        assert json.loads(row[5]) == dict(e.details)
    assert json.loads(rows[5][5])["caller"] == "=1+1"  # inside the JSON cell, not a formula
    assert json.loads(rows[7][5]) == {"reason": 'Pause, "lunch"'}

    # Filters apply to CSV as well.
    rows = await client.rows("/api/queue-events?format=csv&queue=sales&event=connected")
    assert [row[:5] for row in rows[1:]] == [[f"{T0 + 4:.3f}", "connected", "c1@h", "sales", "ann"]]


@pytest.mark.parametrize(
    ("accept", "csv_wanted"),
    [
        ("text/csv", True),
        ("text/csv, application/json;q=0.9", True),
        ("text/*", True),
        ("application/json", False),
        ("text/csv;q=0.5, application/json", False),
        ("text/csv;q=0.5, */*", False),
        ("*/*", False),
        ("text/html", False),
        ("TEXT/CSV; Q=1", True),
        ("text/csv;q=bogus, */*;q=0.1", False),
        ("text/csv, */*;q=0.1", True),  # the most specific range decides
        ("application/*;q=0.2, text/csv;q=0.5, application/json;q=0.9", False),
    ],
)
async def test_accept_header_chooses_csv(client: Client, accept: str, csv_wanted: bool) -> None:
    for path in ("/api/queue-events", "/api/cdrs"):
        status, content_type, _, _ = await client.get(path, {"Accept": accept})
        assert status == 200
        assert content_type == ("text/csv" if csv_wanted else "application/json"), (path, accept)


async def test_format_parameter_wins_over_accept(client: Client) -> None:
    csv_accept = {"Accept": "text/csv"}
    for path in ("/api/queue-events", "/api/cdrs"):
        assert (await client.get(f"{path}?format=json", csv_accept))[1] == "application/json"
        assert (await client.get(f"{path}?format=CSV"))[1] == "text/csv"


# -- call detail records ---------------------------------------------------------------------


async def record_ids(client: Client, query: str) -> list[str]:
    status, body = await client.json(f"/api/cdrs{query}")
    assert status == 200, (query, body)
    assert isinstance(body, dict) and set(body) == {"records"}
    return [r["call_id"] for r in body["records"]]


async def test_cdrs_json(client: Client) -> None:
    status, body = await client.json("/api/cdrs")
    assert status == 200
    assert body == {"records": [r.to_dict() for r in reversed(RECORDS)]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["r3@h", "r2@h", "r1@h"]),
        ("?limit=1", ["r3@h"]),
        (f"?since={T0 + 64}", ["r3@h", "r2@h", "r1@h"]),
        (f"?since={T0 + 64.5}", ["r3@h", "r2@h"]),
        (f"?until={T0 + 3630}", ["r1@h"]),
        (f"?since={iso(60)}&until={iso(3631)}", ["r2@h", "r1@h"]),
        ("?user=1001", ["r3@h", "r1@h"]),
        ("?caller=1001", ["r1@h"]),
        ("?caller=%2B4930555", ["r2@h"]),
        ("?callee=1001", ["r3@h"]),
        ("?callee=500&limit=1", ["r2@h"]),
        ("?queue=sales", ["r1@h"]),
        ("?queue=support&caller=%2B4930555", ["r2@h"]),
        ("?agent=ann", ["r1@h"]),
        ("?agent=bob", []),
        ("?user=1001&callee=500", ["r1@h"]),
    ],
)
async def test_cdr_filters(client: Client, query: str, expected: list[str]) -> None:
    assert await record_ids(client, query) == expected


async def test_cdrs_csv(client: Client) -> None:
    status, content_type, headers, body = await client.get("/api/cdrs?format=csv")
    assert (status, content_type) == (200, "text/csv")
    assert headers["Content-Disposition"] == 'attachment; filename="cdrs.csv"'
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [row["call_id"] for row in rows] == ["r3@h", "r2@h", "r1@h"]
    assert tuple(rows[0]) == CDR_CSV_COLUMNS
    by_id = {row["call_id"]: row for row in rows}
    assert by_id["r3@h"]["caller_name"] == 'Bob, "B"'
    assert (by_id["r1@h"]["queue"], by_id["r1@h"]["agent"], by_id["r1@h"]["wait"]) == (
        "sales",
        "ann",
        "4.000",
    )
    assert by_id["r1@h"]["wrap_up_code"] == "sold"
    assert (by_id["r2@h"]["answered"], by_id["r2@h"]["status"]) == ("", "487")
    for row, r in zip(rows, reversed(RECORDS), strict=True):
        assert float(row["ended"]) == pytest.approx(r.ended, abs=5e-4)
        assert float(row["duration"]) == pytest.approx(r.duration, abs=5e-4)
        assert float(row["talk_time"]) == pytest.approx(r.talk_time, abs=5e-4)

    rows = list(csv.DictReader(io.StringIO((await client.get("/api/cdrs?format=csv&queue=x"))[3])))
    assert rows == []


# -- bad parameters --------------------------------------------------------------------------

NEEDS_OFFSET = "needs a UTC offset (Z or +hh:mm; write + as %2B in a URL)"
TIME = "must be Unix seconds or an ISO 8601 date-time with a UTC offset"
LONG = "x" * 257
BOTH = ("/api/queue-events", "/api/cdrs")
EVENTS_ONLY = ("/api/queue-events",)
CDRS_ONLY = ("/api/cdrs",)


@pytest.mark.parametrize(
    ("paths", "query", "reason"),
    [
        (BOTH, "since=yesterday", f"since {TIME}, got 'yesterday'"),
        (BOTH, "since=", f"since {TIME}, got ''"),
        (BOTH, "since=nan", f"since {TIME}, got 'nan'"),
        (BOTH, "until=inf", f"until {TIME}, got 'inf'"),
        (BOTH, "until=2024-13-01T00:00:00Z", f"until {TIME}, got '2024-13-01T00:00:00Z'"),
        (BOTH, "since=2024-05-01T08:00:00", f"since {NEEDS_OFFSET}, got '2024-05-01T08:00:00'"),
        (BOTH, "until=2024-05-01", f"until {NEEDS_OFFSET}, got '2024-05-01'"),
        (BOTH, "since=20&until=10", "since (20.0) must not be after until (10.0)"),
        (BOTH, "since=1&since=2", "since is given 2 times; give it once"),
        (BOTH, "queue=", "queue must be 1 to 256 characters long"),
        (BOTH, f"agent={LONG}", "agent must be 1 to 256 characters long"),
        (BOTH, "format=xml", "format must be json or csv, got 'xml'"),
        (BOTH, "format=", "format must be json or csv, got ''"),
        (EVENTS_ONLY, "call_id=", "call_id must be 1 to 256 characters long"),
        (
            EVENTS_ONLY,
            "event=hangup",
            f"event has unknown kind 'hangup'; valid kinds: {', '.join(ALL_KINDS)}",
        ),
        (
            EVENTS_ONLY,
            "event=connected,Abandoned,x",
            f"event has unknown kind 'Abandoned', 'x'; valid kinds: {', '.join(ALL_KINDS)}",
        ),
        (
            EVENTS_ONLY,
            "event=connected,,abandoned",
            "event must be a comma-separated list of event kinds, got 'connected,,abandoned'; "
            f"valid kinds: {', '.join(ALL_KINDS)}",
        ),
        (
            EVENTS_ONLY,
            "event=",
            f"event must be a comma-separated list of event kinds, got ''; "
            f"valid kinds: {', '.join(ALL_KINDS)}",
        ),
        (EVENTS_ONLY, "limit=0", "limit must be from 1 to 10000, got 0"),
        (EVENTS_ONLY, "limit=10001", "limit must be from 1 to 10000, got 10001"),
        (EVENTS_ONLY, "limit=-1", "limit must be an integer from 1 to 10000, got '-1'"),
        (EVENTS_ONLY, "limit=1.5", "limit must be an integer from 1 to 10000, got '1.5'"),
        (EVENTS_ONLY, "limit=%D9%A3", "limit must be an integer from 1 to 10000, got '٣'"),
        (EVENTS_ONLY, "limit=1&limit=1", "limit is given 2 times; give it once"),
        (
            EVENTS_ONLY,
            "queu=sales",
            "queu is not a parameter of /api/queue-events; known: "
            "agent, call_id, event, format, limit, queue, since, until",
        ),
        (CDRS_ONLY, "limit=1001", "limit must be from 1 to 1000, got 1001"),
        (CDRS_ONLY, "limit=abc", "limit must be an integer from 1 to 1000, got 'abc'"),
        (CDRS_ONLY, "user=", "user must be 1 to 256 characters long"),
        (CDRS_ONLY, "caller=", "caller must be 1 to 256 characters long"),
        (CDRS_ONLY, f"callee={LONG}", "callee must be 1 to 256 characters long"),
        (
            CDRS_ONLY,
            "call_id=x",
            "call_id is not a parameter of /api/cdrs; known: "
            "agent, callee, caller, format, limit, queue, since, until, user",
        ),
    ],
)
async def test_bad_parameters_are_400_with_a_reason(
    client: Client, paths: tuple[str, ...], query: str, reason: str
) -> None:
    for path in paths:
        for fmt in ("", "&format=csv"):
            if "format=" in query and fmt:
                continue
            status, body = await client.json(f"{path}?{query}{fmt}")
            assert (status, body) == (400, {"error": reason}), (path, query + fmt)


# -- missing and failing stores --------------------------------------------------------------


async def test_missing_stores_are_503(stores: tuple[SqliteCdrStore, SqliteQueueEventStore]) -> None:
    cdrs, events = stores
    async with serving(None, events) as client:
        assert await client.json("/api/cdrs") == (
            503,
            {"error": "call detail records are not kept by this switch"},
        )
        assert (await client.json("/api/queue-events"))[0] == 200
    async with serving(cdrs, None) as client:
        assert await client.json("/api/queue-events?format=csv") == (
            503,
            {"error": "queue events are not kept by this switch"},
        )
        assert (await client.json("/api/cdrs"))[0] == 200


async def test_a_failing_store_is_a_logged_500(
    stores: tuple[SqliteCdrStore, SqliteQueueEventStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cdrs, events = stores
    # The tables vanish under the open stores: every read fails in SQLite.
    with sqlite3.connect(cdrs.path) as conn:
        conn.execute("DROP TABLE queue_events")
        conn.execute("DROP TABLE call_records")
    conn.close()
    async with serving(cdrs, events) as client:
        with caplog.at_level(logging.ERROR, logger="softswitch.http"):
            assert await client.json("/api/queue-events?queue=sales") == (
                500,
                {"error": "reading the queue events failed (see the log)"},
            )
            assert await client.json("/api/cdrs?format=csv") == (
                500,
                {"error": "reading the call detail records failed (see the log)"},
            )
    logged = [(r.getMessage(), r.exc_text or "") for r in caplog.records]
    assert any(m == "reading the queue events failed" and "queue_events" in t for m, t in logged)
    assert any("call detail records failed" in m and "call_records" in t for m, t in logged)
