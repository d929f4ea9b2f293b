"""HttpLookups against a real aiohttp server on 127.0.0.1: requests sent, answers accepted or
refused with a reason, timeouts, a refused connection, close()."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from softswitch.apps.lookup import MAX_ANSWER_BYTES, HttpLookups
from softswitch.apps.session import LookupFailed
from softswitch.routing.schema import Service

SLOW_SECONDS = 2.0
BIG_BLOB = MAX_ANSWER_BYTES - 12_000


@dataclass(slots=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class CrmServer:
    """A small JSON service; every request it gets is written down."""

    base: str = ""
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.raw_path.split("?")[0],
                dict(request.query),
                dict(request.headers),
                body,
            )
        )
        name = request.match_info["name"]
        if name == "member":
            return web.json_response({"name": "Alice", "tier": "gold", "points": 12})
        if name == "echo":
            return web.json_response({"received": json.loads(body) if body else None})
        if name == "created":
            return web.json_response({"id": 7}, status=201)
        if name == "missing":
            return web.json_response({"error": "no such member"}, status=404)
        if name == "broken":
            return web.json_response({"error": "boom"}, status=500)
        if name == "moved":
            raise web.HTTPFound(f"{self.base}/member")
        if name == "html":
            return web.Response(text="<html><body>Login</body></html>", content_type="text/html")
        if name == "list":
            return web.json_response([{"name": "Alice"}])
        if name == "big":  # just under the limit
            return web.json_response({"blob": "x" * BIG_BLOB})
        if name == "huge":
            return web.json_response({"blob": "x" * (4 * MAX_ANSWER_BYTES)})
        if name == "slow":
            # Waits until the test is done with it (or SLOW_SECONDS), so that the server
            # stops promptly either way.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), SLOW_SECONDS)
            return web.json_response({"late": True})
        return web.json_response({"error": "unknown"}, status=400)


@pytest.fixture
async def crm() -> AsyncIterator[CrmServer]:
    server = CrmServer()
    app = web.Application()
    app.router.add_route("*", "/crm/{name}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base = f"http://{host}:{port}/crm"
    try:
        yield server
    finally:
        server.release.set()
        await asyncio.wait_for(runner.cleanup(), 10)


@pytest.fixture
async def lookups() -> AsyncIterator[HttpLookups]:
    client = HttpLookups()
    try:
        yield client
    finally:
        await client.close()


def service(crm: CrmServer, **headers: str) -> Service:
    return Service(url=crm.base, timeout=2, headers=headers)


async def test_get_with_query_and_service_headers(crm: CrmServer, lookups: HttpLookups) -> None:
    svc = service(crm, Authorization="Bearer t0k3n", **{"X-Tenant": "demo"})
    answer = await lookups.fetch(
        svc, "GET", f"{crm.base}/member", {"caller": "+81 3/1234", "lang": "ja"}, {}, 5
    )
    assert answer == {"name": "Alice", "tier": "gold", "points": 12}
    (seen,) = crm.seen
    assert (seen.method, seen.path) == ("GET", "/crm/member")
    assert seen.query == {"caller": "+81 3/1234", "lang": "ja"}
    assert seen.headers["Authorization"] == "Bearer t0k3n"
    assert seen.headers["X-Tenant"] == "demo"
    assert seen.headers["Accept"] == "application/json"
    assert seen.body == b""


async def test_get_without_query_sends_no_query(crm: CrmServer, lookups: HttpLookups) -> None:
    await lookups.fetch(service(crm), "GET", f"{crm.base}/member", {}, {}, 5)
    assert crm.seen[0].query == {}


async def test_post_sends_a_json_body(crm: CrmServer, lookups: HttpLookups) -> None:
    body = {"member": "12345678", "note": "ünïcode & spaces"}
    answer = await lookups.fetch(service(crm), "POST", f"{crm.base}/echo", {}, body, 5)
    assert answer == {"received": body}
    (seen,) = crm.seen
    assert seen.method == "POST"
    assert seen.headers["Content-Type"].startswith("application/json")
    assert json.loads(seen.body) == body


async def test_a_2xx_other_than_200_is_an_answer(crm: CrmServer, lookups: HttpLookups) -> None:
    answer = await lookups.fetch(service(crm), "POST", f"{crm.base}/created", {}, {}, 5)
    assert answer == {"id": 7}


@pytest.mark.parametrize(("name", "status"), [("missing", 404), ("broken", 500), ("moved", 302)])
async def test_a_non_2xx_status_fails(
    crm: CrmServer, lookups: HttpLookups, name: str, status: int
) -> None:
    with pytest.raises(LookupFailed) as failed:
        await lookups.fetch(service(crm), "GET", f"{crm.base}/{name}", {}, {}, 5)
    assert str(failed.value) == f"HTTP {status}"
    assert [s.path for s in crm.seen] == [f"/crm/{name}"]  # a redirect is not followed


async def test_an_answer_that_is_not_json_fails(crm: CrmServer, lookups: HttpLookups) -> None:
    with pytest.raises(LookupFailed, match="the answer is not JSON"):
        await lookups.fetch(service(crm), "GET", f"{crm.base}/html", {}, {}, 5)


async def test_a_json_list_fails(crm: CrmServer, lookups: HttpLookups) -> None:
    with pytest.raises(LookupFailed, match="expected a JSON object, got list"):
        await lookups.fetch(service(crm), "GET", f"{crm.base}/list", {}, {}, 5)


async def test_a_large_answer_under_the_limit_is_read_whole(
    crm: CrmServer, lookups: HttpLookups
) -> None:
    answer = await lookups.fetch(service(crm), "GET", f"{crm.base}/big", {}, {}, 5)
    assert answer == {"blob": "x" * BIG_BLOB}


async def test_an_oversized_answer_fails(crm: CrmServer, lookups: HttpLookups) -> None:
    with pytest.raises(LookupFailed) as failed:
        await lookups.fetch(service(crm), "GET", f"{crm.base}/huge", {}, {}, 5)
    assert str(failed.value) == f"answer larger than {MAX_ANSWER_BYTES} bytes"


async def test_a_slow_answer_fails_at_the_timeout(crm: CrmServer, lookups: HttpLookups) -> None:
    started = time.monotonic()
    with pytest.raises(LookupFailed) as failed:
        await asyncio.wait_for(
            lookups.fetch(service(crm), "GET", f"{crm.base}/slow", {}, {}, 0.3), 10
        )
    took = time.monotonic() - started
    assert str(failed.value) == "no answer within 0.3 s"
    # measured figure, kept generous for a busy machine: well short of the server's delay
    assert 0.25 <= took < SLOW_SECONDS, f"took {took:.2f} s"
    assert [s.path for s in crm.seen] == ["/crm/slow"]
    # the shared session still serves the next lookup
    answer = await lookups.fetch(service(crm), "GET", f"{crm.base}/member", {}, {}, 5)
    assert answer["name"] == "Alice"


async def test_a_refused_connection_fails(lookups: HttpLookups) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # the port is closed now: nothing listens there
    url = f"http://127.0.0.1:{port}/crm"
    with pytest.raises(LookupFailed) as failed:
        await asyncio.wait_for(
            lookups.fetch(Service(url=url, timeout=2), "GET", f"{url}/member", {}, {}, 2), 10
        )
    assert "Connect" in str(failed.value) and str(port) in str(failed.value)


async def test_close_and_use_again(crm: CrmServer) -> None:
    lookups = HttpLookups()
    await lookups.close()  # before any use: nothing to close
    assert (await lookups.fetch(service(crm), "GET", f"{crm.base}/member", {}, {}, 5))["tier"] == (
        "gold"
    )
    await lookups.close()
    await lookups.close()  # twice is fine
    # a lookup after close opens a new session
    again = await lookups.fetch(service(crm), "GET", f"{crm.base}/member", {}, {}, 5)
    assert again["points"] == 12
    await lookups.close()
    assert len(crm.seen) == 2
