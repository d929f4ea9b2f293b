"""The audit trail end to end on a real socket: agents report the screen pops they viewed
(only of calls offered to them today), supervisors' actions are recorded, and
``GET /api/audit`` answers the admin token only, with filters, JSON and CSV. The offer's
screen pop masks personal data for agents outside the queue's personal locations.

The switch's HTTP API (:class:`softswitch.admin.http.HttpApi`, with its ``/api/`` guard)
carries the agent routes and :func:`softswitch.admin.audit_api.add_audit_routes` over a real
SQLite security store and a real queue service.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from softswitch.acd.events import QueueEvent, QueueEventKind
from softswitch.admin.agent_api import AgentApi, add_agent_routes
from softswitch.admin.audit_api import add_audit_routes
from softswitch.admin.http import HttpApi
from softswitch.apps.queueing import QueueService
from softswitch.apps.screen_pop import ScreenField, ScreenPop
from softswitch.apps.session import QueueRequest, QueueResult
from softswitch.storage.security_store import AUDIT_COLUMNS, SqliteSecurityStore, audit_csv
from tests.acd_callers import ScriptedCaller
from tests.integration.agent_desk import api_on_loopback, check_password, desk_config, locate

TIMEOUT = aiohttp.ClientTimeout(total=10)
ADMIN = "admin-T0ken-for-the-audit-0123456789"
CONFIG = desk_config(reasons=("break",))


class NoCalls:
    """The switch as the HTTP API sees it, with no live call (these tests need none)."""

    def health(self) -> dict[str, object]:
        return {"status": "ok"}

    def live_calls(self) -> list[dict[str, object]]:
        return []

    def live_call(self, call_id: str) -> dict[str, object] | None:
        return None

    def control_recording(self, call_id: str, action: str, reason: str) -> bool | None:
        return None


@dataclass
class Env:
    http: aiohttp.ClientSession
    base: str
    queues: QueueService
    api: AgentApi
    store: SqliteSecurityStore

    async def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = None if body is None else json.dumps(body)
        async with self.http.request(
            method, f"{self.base}/api{path}", headers=headers, data=data
        ) as response:
            if response.content_type == "text/csv":
                return response.status, await response.text()
            return response.status, await response.json()

    async def sign_in(self, agent: str, password: str) -> str:
        status, body = await self.request(
            "POST", "/agent/login", body={"agent": agent, "password": password}
        )
        assert status == 200, body
        token = body["token"]
        assert isinstance(token, str)
        return token


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    queues = QueueService(CONFIG, clock=time.time, locate=locate)
    holder: list[AgentApi] = []

    async def monitor(sup: str, agent: str, mode: str, display: str) -> tuple[int, str | None]:
        return 200, f"monitor-{agent}"

    async with SqliteSecurityStore(tmp_path / "security.db") as store:

        def agent_routes(api: web.Application) -> None:
            holder.append(
                add_agent_routes(
                    api,
                    queues=queues,
                    check_password=check_password,
                    admin_token=ADMIN,
                    store=store,
                    monitor=monitor,
                )
            )

        http_api = HttpApi(
            NoCalls(),
            token=ADMIN,
            routes=[agent_routes, lambda api: add_audit_routes(api, store, audit_csv=audit_csv)],
        )
        await http_api.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
                yield Env(http, f"http://127.0.0.1:{http_api.port}", queues, holder[0], store)
        finally:
            await holder[0].close()
            await http_api.stop()
            queues.close()


def offer_call(env: Env, call_id: str, screen_pop: ScreenPop) -> asyncio.Task[QueueResult]:
    request = QueueRequest(
        call_id=call_id,
        queue="support",
        priority=0,
        skills={},
        data_class="general",
        caller="+4930123456",
        caller_name="Erika Mustermann",
        path=("identify",),
        screen_pop=screen_pop,
    )
    caller = ScriptedCaller(call_id, answer_at_once=True, cancel_later=True)
    return asyncio.get_running_loop().create_task(env.queues.wait(request, caller))


async def next_offer(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    for _ in range(20):
        message = json.loads((await ws.receive(timeout=3)).data)
        if message["type"] == "offer":
            assert isinstance(message, dict)
            return message
    raise AssertionError("no offer")


POP = ScreenPop(
    [
        ScreenField("member", "778899"),
        ScreenField("birth_date", "1970-01-31", sensitive=True),
    ]
)


async def take_call(env: Env, agent: str, token: str, call_id: str) -> dict[str, Any]:
    """Make ``agent`` ready, offer a call, and answer the offer message; the call ends."""
    async with env.http.ws_connect(f"{env.base}/api/agent/ws?token={token}") as ws:
        await env.request("POST", "/agent/state", token, {"state": "ready"})
        task = offer_call(env, call_id, POP)
        offer = await next_offer(ws)
    await asyncio.sleep(0.05)
    env.queues.call_ended(call_id, "caller")
    await asyncio.wait_for(task, 3)
    return offer


async def test_the_offer_masks_personal_data_for_a_home_agent_only(env: Env) -> None:
    ann = await env.sign_in("ann", "home-secret-1")
    offer = await take_call(env, "ann", ann, "call-home")
    assert offer["screen_pop"] == [
        {"name": "member", "value": "778899", "masked": False},
        {"name": "birth_date", "value": "****", "masked": True},
    ]
    assert "1970-01-31" not in json.dumps(offer)
    await env.request("POST", "/agent/state", ann, {"state": "not_ready", "reason": "break"})
    sam = await env.sign_in("sam", "site-secret-2")
    offer = await take_call(env, "sam", sam, "call-site")
    assert offer["screen_pop"][1] == {"name": "birth_date", "value": "1970-01-31", "masked": False}


async def test_screen_pop_views_are_recorded_for_offered_calls_only(env: Env) -> None:
    ann = await env.sign_in("ann", "home-secret-1")
    await take_call(env, "ann", ann, "call-1")
    body = {"action": "screen_pop_viewed", "call_id": "call-1"}
    status, answer = await env.request("POST", "/agent/audit", ann, body)
    assert status == 200, answer
    assert answer["recorded"] is True and answer["call_id"] == "call-1"
    # a call never offered to this agent
    sam = await env.sign_in("sam", "site-secret-2")
    status, refused = await env.request("POST", "/agent/audit", sam, body)
    assert status == 404 and refused["error"] == "call call-1 was not offered to agent sam today"
    for bad in (
        {"action": "screen_pop_viewed"},
        {"action": "deleted_everything", "call_id": "call-1"},
        {"call_id": "call-1"},
        {"action": "screen_pop_viewed", "call_id": "call-1", "agent": "sam"},
    ):
        status, _ = await env.request("POST", "/agent/audit", ann, bad)
        assert status == 400, bad
    status, _ = await env.request("POST", "/agent/audit", None, body)
    assert status == 401

    status, found = await env.request("GET", "/audit?action=screen_pop_viewed", ADMIN)
    assert status == 200
    [entry] = found["entries"]
    assert (entry["actor"], entry["subject"], entry["address"]) == ("ann", "call-1", "127.0.0.1")
    assert entry["details"] == {"queue": "support"}


async def test_supervisor_actions_are_audited(env: Env) -> None:
    ann = await env.sign_in("ann", "home-secret-1")
    sam = await env.sign_in("sam", "site-secret-2")
    await env.request("POST", "/agent/state", ann, {"state": "ready"})
    status, _ = await env.request(
        "POST", "/supervisor/agents/ann/state", sam, {"state": "not_ready"}
    )
    assert status == 200
    status, _ = await env.request("POST", "/supervisor/agents/ann/state", ADMIN, {"state": "ready"})
    assert status == 200
    status, _ = await env.request(
        "POST", "/supervisor/monitor", ADMIN, {"agent": "ann", "mode": "listen", "phone": "1002"}
    )
    assert status == 200
    status, found = await env.request("GET", "/audit?subject=ann", ADMIN)
    assert status == 200
    rows = [(e["actor"], e["action"], e["details"]) for e in reversed(found["entries"])]
    assert rows == [
        ("ann", "signin", {"second_factor": False}),
        ("sam", "state_forced", {"state": "not_ready"}),
        ("admin", "state_forced", {"state": "ready"}),
        (
            "admin",
            "monitor",
            {"mode": "listen", "phone": "1002", "status": 200, "call_id": "monitor-1001"},
        ),
    ]


async def test_audit_route_answers_the_admin_token_only_with_filters_and_csv(env: Env) -> None:
    t0 = time.time()
    ann = await env.sign_in("ann", "home-secret-1")
    await env.request("POST", "/agent/login", body={"agent": "ann", "password": "wrong"})
    status, refused = await env.request("GET", "/audit", ann)
    assert status == 401 and refused["error"] == "wrong API token"
    status, _ = await env.request("GET", "/audit")
    assert status == 401

    status, found = await env.request("GET", "/audit?actor=ann", ADMIN)
    assert [e["action"] for e in found["entries"]] == ["signin_failed", "signin"]
    status, found = await env.request("GET", "/audit?actor=ann&limit=1", ADMIN)
    assert [e["action"] for e in found["entries"]] == ["signin_failed"]
    status, found = await env.request("GET", f"/audit?until={t0 - 1}", ADMIN)
    assert found["entries"] == []
    status, found = await env.request("GET", f"/audit?since={t0 - 1}&action=signin", ADMIN)
    assert [e["actor"] for e in found["entries"]] == ["ann"]

    status, text = await env.request("GET", "/audit?actor=ann&format=csv", ADMIN)
    assert status == 200
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == AUDIT_COLUMNS
    assert [r[2] for r in rows[1:]] == ["signin_failed", "signin"]
    assert json.loads(rows[1][5]) == {"factor": "password"}

    for bad in ("limit=0", "limit=x", "since=yesterday", "colour=red", "actor=a&actor=b"):
        status, answer = await env.request("GET", f"/audit?{bad}", ADMIN)
        assert status == 400, (bad, answer)


async def test_the_queue_log_vouches_for_an_offer_made_before_a_restart(tmp_path: Path) -> None:
    """An agent reporting a call offered before the switch restarted: the offer is found in
    the queue log (the memory of offers starts empty)."""
    queues = QueueService(CONFIG, clock=time.time, locate=locate)
    now = time.time()
    logged = [
        QueueEvent(now - 5, QueueEventKind.OFFERED, "old-call", "support", "ann"),
        QueueEvent(now - 4, QueueEventKind.OFFERED, "sams-call", "support", "sam"),
    ]

    async def agent_events(agent: str, since: float) -> list[QueueEvent]:
        return [e for e in logged if e.agent == agent and e.time >= since]

    root, api = web.Application(), web.Application()
    async with SqliteSecurityStore(tmp_path / "security.db") as store:
        agents = add_agent_routes(
            api,
            queues=queues,
            check_password=check_password,
            admin_token=ADMIN,
            store=store,
            agent_events=agent_events,
        )
        try:
            async with (
                api_on_loopback(api, root) as port,
                aiohttp.ClientSession(timeout=TIMEOUT) as http,
            ):
                env = Env(http, f"http://127.0.0.1:{port}", queues, agents, store)
                ann = await env.sign_in("ann", "home-secret-1")
                body = {"action": "screen_pop_viewed", "call_id": "old-call"}
                status, _ = await env.request("POST", "/agent/audit", ann, body)
                assert status == 200
                body["call_id"] = "sams-call"
                status, _ = await env.request("POST", "/agent/audit", ann, body)
                assert status == 404
        finally:
            await agents.close()
            queues.close()
