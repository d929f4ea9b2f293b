"""The HTTP API on a real socket: live calls, call detail records, validation and access.

A small fake stands in for the switch (the HTTP layer is under test); the detail records come
from a real SqliteCdrStore in a temporary file.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yarl
from pydantic import ValidationError

from softswitch.admin.http import CdrRecord, HttpApi
from softswitch.admin.records_api import add_records_routes
from softswitch.config import Http, load_settings
from softswitch.storage.cdr import CallRecord, records_csv
from softswitch.storage.queue_log import events_csv
from softswitch.storage.sqlite import SqliteCdrStore
from softswitch.yaml_loader import ConfigErrors

T0 = 1_700_000_000.0
TOKEN = "s3cr3t-t0ken_0123456789"
TIMEOUT = aiohttp.ClientTimeout(total=10)


class FakeSwitch:
    """Stands in for the running switch: a fixed set of live calls."""

    def __init__(self, calls: Sequence[dict[str, object]] = ()) -> None:
        self.calls = {str(c["call_id"]): c for c in calls}
        self.recording_actions: list[tuple[str, str, str]] = []

    def health(self) -> dict[str, object]:
        return {"status": "ok", "calls": len(self.calls)}

    def live_calls(self) -> list[dict[str, object]]:
        return list(self.calls.values())

    def live_call(self, call_id: str) -> dict[str, object] | None:
        return self.calls.get(call_id)

    def control_recording(self, call_id: str, action: str, reason: str) -> bool | None:
        if call_id not in self.calls:
            return None
        self.recording_actions.append((call_id, action, reason))
        return True


LIVE: list[dict[str, object]] = [
    {"call_id": "live-1@10.0.0.5", "caller": "1001", "callee": "2000", "state": "ringing"},
    {"call_id": "live/2@h", "caller": "1002", "callee": "1001", "state": "answered"},
]


def cdr(call_id: str, ended: float, caller: str = "1001", callee: str = "2000") -> CallRecord:
    return CallRecord(
        call_id=call_id,
        caller=caller,
        caller_name="Agent Smith",
        callee=callee,
        started=ended - 30,
        answered=ended - 25,
        ended=ended,
        status=200,
        cause="caller hung up",
        recording=None,
        media={"a": {"packets": 1500, "lost": 1}},
    )


RECORDS = [
    cdr("old@h", T0 + 10),
    cdr("mid@h", T0 + 20, caller="+4930555", callee="1001"),
    cdr("new@h", T0 + 30, caller="1002", callee="2000"),
]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteCdrStore]:
    async with SqliteCdrStore(tmp_path / "cdr.db") as store:
        for rec in RECORDS:
            await store.add(rec)
        yield store


@asynccontextmanager
async def serving(api: HttpApi) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    await api.start("127.0.0.1", 0)
    try:
        assert api.port != 0
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            yield session, f"http://127.0.0.1:{api.port}"
    finally:
        await api.stop()


async def get_json(
    session: aiohttp.ClientSession, url: str | yarl.URL, **kw: object
) -> tuple[int, object]:
    async with session.get(url, **kw) as response:  # type: ignore[arg-type]
        assert response.content_type == "application/json"
        return response.status, await response.json()


def call_url(base: str, call_id: str) -> yarl.URL:
    return yarl.URL(f"{base}/api/calls/{quote(call_id, safe='')}", encoded=True)


# -- routes ----------------------------------------------------------------------------------


async def test_healthz() -> None:
    async with serving(HttpApi(FakeSwitch(LIVE))) as (session, base):
        assert await get_json(session, f"{base}/healthz") == (200, {"status": "ok", "calls": 2})


async def test_live_calls() -> None:
    async with serving(HttpApi(FakeSwitch(LIVE))) as (session, base):
        assert await get_json(session, f"{base}/api/calls") == (200, {"calls": LIVE})
    async with serving(HttpApi(FakeSwitch())) as (session, base):
        assert await get_json(session, f"{base}/api/calls") == (200, {"calls": []})


async def test_one_live_call(store: SqliteCdrStore) -> None:
    async with serving(with_records(FakeSwitch(LIVE), store)) as (session, base):
        for call in LIVE:
            status, body = await get_json(session, call_url(base, str(call["call_id"])))
            assert status == 200
            assert body == {**call, "live": True}


async def test_a_call_that_ended_comes_from_its_record(store: SqliteCdrStore) -> None:
    async with serving(with_records(FakeSwitch(LIVE), store)) as (session, base):
        status, body = await get_json(session, call_url(base, "mid@h"))
    assert status == 200
    assert isinstance(body, dict)
    assert body["live"] is False
    assert body["call_id"] == "mid@h"
    assert (body["caller"], body["callee"], body["caller_name"]) == (
        "+4930555",
        "1001",
        "Agent Smith",
    )
    assert (body["started"], body["answered"], body["ended"]) == (T0 - 10, T0 - 5, T0 + 20)
    assert (body["duration"], body["talk_time"], body["answered_ok"]) == (30.0, 25.0, True)
    assert body["media"] == {"a": {"packets": 1500, "lost": 1}}
    assert (body["status"], body["cause"], body["recording"]) == (200, "caller hung up", None)


async def test_unknown_call_is_404(store: SqliteCdrStore) -> None:
    async with serving(with_records(FakeSwitch(LIVE), store)) as (session, base):
        assert await get_json(session, call_url(base, "nobody@h")) == (
            404,
            {"error": "no call nobody@h"},
        )
    # Without a record store, only live calls are found.
    async with serving(HttpApi(FakeSwitch(LIVE))) as (session, base):
        assert await get_json(session, call_url(base, "mid@h")) == (404, {"error": "no call mid@h"})
        assert (await get_json(session, call_url(base, "live-1@10.0.0.5")))[0] == 200


async def test_recent_records(store: SqliteCdrStore) -> None:
    def names(body: object) -> list[str]:
        assert isinstance(body, dict) and set(body) == {"records"}
        return [r["call_id"] for r in body["records"]]

    async with serving(with_records(FakeSwitch(), store)) as (session, base):
        status, body = await get_json(session, f"{base}/api/cdrs")
        assert status == 200
        assert names(body) == ["new@h", "mid@h", "old@h"]
        assert isinstance(body, dict)
        assert body["records"][0] == RECORDS[2].to_dict()

        queries = {
            "limit=2": ["new@h", "mid@h"],
            "limit=1000": ["new@h", "mid@h", "old@h"],
            f"since={T0 + 20}": ["new@h", "mid@h"],
            f"since={T0 + 20.5:.1f}": ["new@h"],
            "since=1e12": [],
            "user=1001": ["mid@h", "old@h"],
            "user=2000&limit=1": ["new@h"],
            f"user=1001&since={T0 + 15:.0f}": ["mid@h"],
            "user=%2B4930555": ["mid@h"],
            "user=nobody": [],
        }
        for query, expected in queries.items():
            status, body = await get_json(session, f"{base}/api/cdrs?{query}")
            assert (query, status, names(body)) == (query, 200, expected)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-5", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("limit=%D9%A3", "limit"),  # an Arabic-Indic digit three
        ("limit=1&limit=2", "limit"),
        ("since=yesterday", "since"),
        ("since=", "since"),
        ("since=nan", "since"),
        ("since=inf", "since"),
        ("user=", "user"),
        (f"user={'u' * 257}", "user"),
    ],
)
async def test_bad_parameters_are_400(store: SqliteCdrStore, query: str, parameter: str) -> None:
    async with serving(with_records(FakeSwitch(), store)) as (session, base):
        status, body = await get_json(session, f"{base}/api/cdrs?{query}")
    assert status == 400
    assert isinstance(body, dict) and set(body) == {"error"}
    assert body["error"].startswith(f"{parameter} ")


async def test_records_without_a_store_are_503() -> None:
    async with serving(with_records(FakeSwitch())) as (session, base):
        status, body = await get_json(session, f"{base}/api/cdrs")
    assert status == 503
    assert body == {"error": "call detail records are not kept by this switch"}


def with_records(switch: FakeSwitch, cdrs: object = None, **kw: object) -> HttpApi:
    """The API with the records routes mounted as the switch mounts them."""

    def mount(app: object) -> None:
        add_records_routes(app, cdrs, None, cdrs_csv=records_csv, events_csv=events_csv)  # type: ignore[arg-type]

    return HttpApi(switch, cdrs=cdrs, routes=[mount], **kw)  # type: ignore[arg-type]


class BrokenStore:
    async def get(self, call_id: str) -> CdrRecord | None:
        raise OSError("disk on fire")

    async def recent(
        self,
        limit: int = 100,
        since: float | None = None,
        user: str | None = None,
        **filters: object,
    ) -> list[CdrRecord]:
        raise OSError("disk on fire")


async def test_a_failing_store_is_a_json_500(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(with_records(FakeSwitch(), BrokenStore())) as (session, base):
        for url in (call_url(base, "x@h"), f"{base}/api/cdrs"):
            status, body = await get_json(session, url)
            assert status == 500
            assert isinstance(body, dict) and "failed" in body["error"]
    assert any("disk on fire" in (r.exc_text or "") for r in caplog.records)


# -- access ----------------------------------------------------------------------------------

API_ROUTES = ["/api/calls", "/api/calls/live-1%4010.0.0.5", "/api/cdrs"]


async def test_token_required_when_configured(store: SqliteCdrStore) -> None:
    api = with_records(FakeSwitch(LIVE), store, token=TOKEN)
    async with serving(api) as (session, base):
        for route in API_ROUTES:
            url = yarl.URL(base + route, encoded=True)
            # Missing: a bare challenge (RFC 6750 §3.1), even from the loopback.
            async with session.get(url) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="softswitch"'
                assert (await response.json())["error"] == "missing Authorization: Bearer token"
            for header, reason in [
                (f"Bearer {TOKEN}x", "wrong API token"),
                (f"Bearer {TOKEN[:-1]}", "wrong API token"),
                ("Bearer", "wrong API token"),
                ("Bearer ünïcödé-token-0123456", "wrong API token"),
                (f"Basic {TOKEN}", "the Authorization header must use the Bearer scheme"),
            ]:
                headers = {"Authorization": header}
                async with session.get(url, headers=headers) as response:
                    assert response.status == 401, header
                    challenge = response.headers["WWW-Authenticate"]
                    assert challenge.startswith("Bearer ")
                    assert 'error="invalid_token"' in challenge
                    assert (await response.json()) == {"error": reason}
            for header in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER   {TOKEN} "):
                async with session.get(url, headers={"Authorization": header}) as response:
                    assert response.status == 200, (route, header)
        # Health stays open.
        assert (await get_json(session, f"{base}/healthz"))[0] == 200


async def test_without_token_only_trusted_networks(store: SqliteCdrStore) -> None:
    api = with_records(FakeSwitch(LIVE), store, trusted_networks=[])
    async with serving(api) as (session, base):
        for route in API_ROUTES:
            url = yarl.URL(base + route, encoded=True)
            # A forwarding header is no proof of a local client.
            headers = {"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1"}
            status, body = await get_json(session, url, headers=headers)
            assert status == 403
            assert isinstance(body, dict)
            assert "127.0.0.1" in body["error"] and "http.api_token" in body["error"]
        assert (await get_json(session, f"{base}/healthz"))[0] == 200

    # The same client with the token is let in: the token does not depend on the address.
    api = with_records(FakeSwitch(LIVE), store, token=TOKEN, trusted_networks=[])
    async with serving(api) as (session, base):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert await get_json(session, f"{base}/api/calls", headers=headers) == (
            200,
            {"calls": LIVE},
        )


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_loopback_is_trusted_by_default() -> None:
    api = HttpApi(FakeSwitch(LIVE))
    await api.start("::1", 0)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            status, body = await get_json(session, f"http://[::1]:{api.port}/api/calls")
    finally:
        await api.stop()
    assert (status, body) == (200, {"calls": LIVE})


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        HttpApi(FakeSwitch(), token="")


# -- the http.api_token setting --------------------------------------------------------------


def test_api_token_setting() -> None:
    assert Http().api_token is None
    assert Http(api_token=TOKEN).api_token == TOKEN
    assert TOKEN not in repr(Http(api_token=TOKEN))
    with pytest.raises(ValidationError, match="at least 16 characters long, got 15"):
        Http(api_token="a" * 15)
    with pytest.raises(ValidationError, match="Bearer token"):
        Http(api_token="spaces are not allowed here")
    assert Http(api_token="abcdefghijklmnop==").api_token == "abcdefghijklmnop=="


def test_api_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("http: {api_token: !env SOFTSWITCH_TEST_API_TOKEN}\n")
    monkeypatch.setenv("SOFTSWITCH_TEST_API_TOKEN", TOKEN)
    assert load_settings(path).http.api_token == TOKEN

    monkeypatch.setenv("SOFTSWITCH_TEST_API_TOKEN", "too-short")
    with pytest.raises(ConfigErrors) as caught:
        load_settings(path)
    [error] = caught.value.errors
    assert error.path == "http.api_token"
    assert "at least 16 characters" in error.message
    assert "too-short" not in str(error)  # a secret is not repeated in the message


async def test_recording_pause_and_resume_and_their_refusals() -> None:
    switch = FakeSwitch([{"call_id": "abc", "caller": "1001", "callee": "1002"}])
    async with serving(HttpApi(switch)) as (session, base):
        url = f"{base}/api/calls/abc/recording"
        async with session.post(url, json={"action": "pause", "reason": "card"}) as response:
            assert response.status == 200
            assert await response.json() == {
                "call_id": "abc",
                "action": "pause",
                "paused": True,
                "changed": True,
            }
        assert switch.recording_actions == [("abc", "pause", "card")]
        cases = [
            ({"action": "halt"}, 400, 'action must be "pause", "resume", "start" or "stop"'),
            ({"action": "pause", "reason": 5}, 400, "reason must be a text"),
            (["pause"], 400, "the body must be a JSON object"),
        ]
        for body, status, reason in cases:
            async with session.post(url, json=body) as response:
                assert response.status == status
                assert reason in (await response.json())["error"]
        async with session.post(url, data=b"{not json") as response:
            assert response.status == 400
        async with session.post(f"{base}/api/calls/nope/recording", json={"action": "resume"}) as r:
            assert r.status == 404 and (await r.json())["error"] == "no recorded live call nope"
        assert switch.recording_actions == [("abc", "pause", "card")]
