"""The agent (CTI) and supervisor API on a real socket, over a real queue service and ACD.

An aiohttp server on 127.0.0.1 carries the routes of :mod:`softswitch.admin.agent_api`; clients
are aiohttp sessions with real WebSockets. Calls reach the agents through
:meth:`QueueService.wait` with a caller whose phone answers at once, so offers, connected calls
and wrap-ups are the engine's own. The tokens' clock is a real clock that a test can move
forward (expiry, the sign-in failure window); the ACD runs on the wall clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from softswitch.admin import agent_api
from softswitch.admin.agent_api import AgentApi, add_agent_routes
from softswitch.apps.queueing import QueueService
from softswitch.apps.session import QueueRequest, QueueResult
from tests.acd_callers import ScriptedCaller
from tests.integration.agent_desk import (
    MovableClock,
    api_on_loopback,
    check_password,
    desk_config,
    locate,
)

TIMEOUT = aiohttp.ClientTimeout(total=10)
ADMIN = "admin-T0ken-for-the-api-0123456789"
TTL = 3600.0
WRAP_UP = 120.0
CONFIG = desk_config(wrap_up=WRAP_UP, codes=("sale", "no_sale"))


@dataclass
class Env:
    http: aiohttp.ClientSession
    base: str
    queues: QueueService
    api: AgentApi
    clock: MovableClock

    async def request(
        self, method: str, path: str, token: str | None = None, body: Any = None, **kw: Any
    ) -> tuple[int, Any, Any]:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            kw["data"] = body if isinstance(body, str | bytes) else json.dumps(body)
        async with self.http.request(
            method, f"{self.base}/api{path}", headers=headers, **kw
        ) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json(), response.headers

    async def login(self, agent: str, password: str) -> str:
        status, body, _ = await self.request(
            "POST", "/agent/login", body={"agent": agent, "password": password}
        )
        assert status == 200, body
        token = body["token"]
        assert isinstance(token, str)
        return token

    def state(self, agent: str) -> tuple[object, object]:
        view = self.queues.acd.agent_view(agent, time.time())
        return view["state"], view["reason"]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    queues = QueueService(CONFIG, clock=time.time, locate=locate)
    clock = MovableClock()
    api = web.Application()
    agents = add_agent_routes(
        api,
        queues=queues,
        check_password=check_password,
        admin_token=ADMIN,
        clock=clock,
        token_ttl=TTL,
    )
    try:
        async with api_on_loopback(api) as port, aiohttp.ClientSession(timeout=TIMEOUT) as http:
            yield Env(http, f"http://127.0.0.1:{port}", queues, agents, clock)
    finally:
        await agents.close()
        queues.close()


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> dict[str, Any]:
    message = await ws.receive(timeout=timeout)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    data = json.loads(message.data)
    assert isinstance(data, dict)
    return data


async def until_state(
    ws: aiohttp.ClientWebSocketResponse, state: str, timeout: float = 3.0
) -> list[dict[str, Any]]:
    """Messages up to and including the state message showing ``state``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        data = await receive(ws, max(0.01, deadline - loop.time()))
        seen.append(data)
        if data["type"] == "state" and data["agent"]["state"] == state:
            return seen


async def closed(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0
) -> tuple[list[Any], int | None]:
    """The messages left before the server closed the socket, and the close code it sent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    left: list[Any] = []
    while True:
        message = await ws.receive(timeout=max(0.01, deadline - loop.time()))
        if message.type is aiohttp.WSMsgType.CLOSE:
            return left, message.data
        if message.type is aiohttp.WSMsgType.CLOSED:
            return left, ws.close_code
        left.append(json.loads(message.data))


def join(env: Env, call_id: str, *, answer: bool = True) -> asyncio.Task[QueueResult]:
    request = QueueRequest(
        call_id=call_id,
        queue="support",
        priority=0,
        skills={},
        data_class="general",
        caller="+4930123456",
        caller_name="Erika Mustermann",
        path=("menu:2", "identify"),
        screen_pop={"member": "778899", "tier": "gold"},
    )
    return asyncio.get_running_loop().create_task(
        env.queues.wait(request, ScriptedCaller(call_id, answer_at_once=answer, cancel_later=True))
    )


AGENT_ROUTES = [
    ("POST", "/agent/logout"),
    ("GET", "/agent/me"),
    ("POST", "/agent/state"),
    ("POST", "/agent/wrap-up"),
    ("GET", "/agent/ws"),
]
SUPERVISOR_ROUTES = [
    ("GET", "/supervisor/agents"),
    ("GET", "/supervisor/queues"),
    ("POST", "/supervisor/agents/ann/state"),
    ("GET", "/supervisor/ws"),
]


# -- signing in ----------------------------------------------------------------------------


async def test_login_signs_the_agent_in_and_logs_them_in_to_the_acd(env: Env) -> None:
    assert env.state("ann") == ("logged_out", None)
    before = env.clock()
    status, body, headers = await env.request(
        "POST", "/agent/login", body={"agent": "ann", "password": "home-secret-1"}
    )
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    assert len(body["token"]) >= 43 and body["token_type"] == "Bearer"
    assert before + TTL <= body["expires"] <= env.clock() + TTL
    assert body["roles"] == ["agent"]
    assert body["reasons"] == ["break", "lunch"]
    assert body["codes"] == ["sale", "no_sale"]
    assert body["agent"]["id"] == "ann" and body["agent"]["location"] == "home"
    assert (body["agent"]["state"], body["agent"]["reason"]) == ("not_ready", "login")
    assert env.state("ann") == ("not_ready", "login")

    # A second sign-in (another device) does not log the agent in again.
    await env.request("POST", "/agent/state", body["token"], {"state": "ready"})
    second = await env.login("ann", "home-secret-1")
    assert second != body["token"]
    assert env.state("ann") == ("ready", None)
    status, me, _ = await env.request("GET", "/agent/me", second)
    assert status == 200 and me["agent"]["state"] == "ready" and me["roles"] == ["agent"]
    assert me["reasons"] == ["break", "lunch"] and me["codes"] == ["sale", "no_sale"]


async def test_wrong_password_and_unknown_agent_get_the_same_401(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="softswitch.admin.agent_api")
    wrong = await env.request(
        "POST", "/agent/login", body={"agent": "ann", "password": "guess-one"}
    )
    unknown = await env.request(
        "POST", "/agent/login", body={"agent": "nobody", "password": "guess-two"}
    )
    assert wrong[0] == unknown[0] == 401
    assert wrong[1] == unknown[1] == {"error": "unknown agent or wrong password"}
    assert env.state("ann") == ("logged_out", None)
    failures = [r.getMessage() for r in caplog.records if r.name == "softswitch.admin.agent_api"]
    assert len(failures) == 2
    assert "'ann'" in failures[0] and "127.0.0.1" in failures[0]
    assert "'nobody'" in failures[1]
    assert "guess-one" not in caplog.text and "guess-two" not in caplog.text


async def test_failed_logins_are_rate_limited_per_agent_and_per_address(env: Env) -> None:
    for _ in range(agent_api.MAX_FAILURES):
        status, _, _ = await env.request(
            "POST", "/agent/login", body={"agent": "ann", "password": "wrong"}
        )
        assert status == 401
    # Even the right password is refused while the limit holds.
    status, body, headers = await env.request(
        "POST", "/agent/login", body={"agent": "ann", "password": "home-secret-1"}
    )
    assert status == 429
    assert "too many failed sign-ins" in body["error"]
    retry = int(headers["Retry-After"])
    assert 1 <= retry <= math.ceil(agent_api.FAILURE_WINDOW)
    assert env.state("ann") == ("logged_out", None)

    # Once the window has passed, the agent may sign in (and the agent's count starts over).
    env.clock.offset += agent_api.FAILURE_WINDOW + 1
    token = await env.login("ann", "home-secret-1")
    assert (await env.request("GET", "/agent/me", token))[0] == 200

    # From one address, failures for different agent ids add up as well.
    env.clock.offset += agent_api.FAILURE_WINDOW + 1
    for i in range(agent_api.MAX_FAILURES):
        status, _, _ = await env.request(
            "POST", "/agent/login", body={"agent": f"guess{i}", "password": "x"}
        )
        assert status == 401
    status, _, headers = await env.request(
        "POST", "/agent/login", body={"agent": "sam", "password": "site-secret-2"}
    )
    assert status == 429 and int(headers["Retry-After"]) >= 1


# -- tokens --------------------------------------------------------------------------------


async def test_every_route_needs_a_token(env: Env) -> None:
    for method, path in AGENT_ROUTES + SUPERVISOR_ROUTES:
        status, body, headers = await env.request(method, path, body={"state": "ready"})
        assert (path, status) == (path, 401)
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert "error=" not in headers["WWW-Authenticate"]  # no credentials, no error code
        assert body == {"error": "missing Authorization: Bearer token"}
        status, body, headers = await env.request(
            method, path, headers={"Authorization": "Basic YW5uOnB3"}
        )
        assert (path, status) == (path, 401)
        status, body, headers = await env.request(method, path, "not-a-token")
        assert (path, status) == (path, 401)
        assert 'error="invalid_token"' in headers["WWW-Authenticate"]
        assert "unknown or revoked" in body["error"]


async def test_expired_token_is_refused(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    env.clock.offset += TTL - 5
    assert (await env.request("GET", "/agent/me", token))[0] == 200
    env.clock.offset += 10
    status, body, headers = await env.request("GET", "/agent/me", token)
    assert status == 401 and "expired" in body["error"]
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    # Gone from the table once seen expired.
    status, body, _ = await env.request("GET", "/agent/me", token)
    assert status == 401 and len(env.api.tokens) == 0


async def test_an_expired_token_closes_its_websockets(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_api, "SWEEP_INTERVAL", 0.05)
    token = await env.login("ann", "home-secret-1")
    async with env.http.ws_connect(f"{env.base}/api/agent/ws?token={token}") as ws:
        await receive(ws)
        await asyncio.sleep(0.2)
        assert not ws.closed  # swept, still in force
        env.clock.offset += TTL + 1
        assert (await closed(ws))[1] == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert len(env.api.tokens) == 0


async def test_an_agent_holds_a_bounded_number_of_tokens(env: Env) -> None:
    tokens = [await env.login("ann", "home-secret-1") for _ in range(9)]
    assert env.api.tokens.per_agent == 8
    assert (await env.request("GET", "/agent/me", tokens[0]))[0] == 401  # the oldest went
    for token in tokens[1:]:
        assert (await env.request("GET", "/agent/me", token))[0] == 200


async def test_logout_revokes_the_token_and_logs_out(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    other = await env.login("ann", "home-secret-1")
    status, body, _ = await env.request("POST", "/agent/logout", token)
    assert status == 200
    assert body["logged_out"] is True and body["pending"] is False
    assert body["agent"]["state"] == "logged_out"
    assert env.state("ann") == ("logged_out", None)
    for method, path in AGENT_ROUTES:
        status, body, _ = await env.request(method, path, token, {})
        assert (path, status) == (path, 401)
    # Only the token signed out is revoked.
    assert (await env.request("GET", "/agent/me", other))[0] == 200


async def test_agent_token_reaches_no_supervisor_route_and_no_other_agent(env: Env) -> None:
    ann = await env.login("ann", "home-secret-1")
    sam = await env.login("sam", "site-secret-2")
    for method, path in SUPERVISOR_ROUTES:
        status, body, headers = await env.request(method, path, ann, {"state": "not_ready"})
        assert (path, status) == (path, 403)
        assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
        assert "not a supervisor" in body["error"]
    assert env.state("ann") == ("not_ready", "login")

    # Agent routes act for the token's agent; naming another agent is refused.
    status, body, _ = await env.request(
        "POST", "/agent/state", ann, {"state": "ready", "agent": "sam"}
    )
    assert status == 400 and "unknown field 'agent'" in body["error"]
    status, body, _ = await env.request("POST", "/agent/state", ann, {"state": "ready"})
    assert status == 200 and body["agent"]["id"] == "ann"
    assert env.state("ann") == ("ready", None)
    assert env.state("sam") == ("not_ready", "login")
    status, body, _ = await env.request("GET", "/agent/me", sam)
    assert body["agent"]["id"] == "sam" and body["roles"] == ["agent", "supervisor"]

    # The supervisor's token and the admin token open the supervisor routes.
    for token in (sam, ADMIN):
        status, body, _ = await env.request("GET", "/supervisor/agents", token)
        assert status == 200
        assert {a["id"]: a["state"] for a in body["agents"]} == {
            "ann": "ready",
            "sam": "not_ready",
        }
        assert body["agent_states"]["ready"] == 1
        status, body, _ = await env.request("GET", "/supervisor/queues", token)
        assert status == 200 and [q["name"] for q in body["queues"]] == ["support"]
    # The admin token acts for no agent.
    status, body, _ = await env.request("GET", "/agent/me", ADMIN)
    assert status == 403


# -- agent state ---------------------------------------------------------------------------


async def test_ready_and_not_ready_with_a_reason(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    status, body, _ = await env.request("POST", "/agent/state", token, {"state": "ready"})
    assert status == 200 and body["agent"]["state"] == "ready"
    status, body, _ = await env.request(
        "POST", "/agent/state", token, {"state": "not_ready", "reason": "lunch"}
    )
    assert status == 200
    assert (body["agent"]["state"], body["agent"]["reason"]) == ("not_ready", "lunch")
    assert env.state("ann") == ("not_ready", "lunch")

    refused = [
        ({"state": "not_ready", "reason": "nap"}, "'nap'"),
        ({"state": "not_ready"}, "missing"),
        ({"state": "not_ready", "reason": "supervisor"}, "break, lunch"),  # the switch's own
        ({"state": "not_ready", "reason": 7}, "break, lunch"),
        ({"state": "away"}, "state must be"),
        ({"state": ["ready"]}, "state must be"),
        ({"state": "ready", "reason": "lunch"}, "not_ready only"),
        ({}, "state must be"),
    ]
    for request, reason in refused:
        status, body, _ = await env.request("POST", "/agent/state", token, request)
        assert (request, status) == (request, 400)
        assert reason in body["error"]
    assert env.state("ann") == ("not_ready", "lunch")

    # A change that does not apply now: ready while logged out.
    await env.request("POST", "/agent/logout", token)
    token = await env.login("ann", "home-secret-1")
    env.queues.control(lambda acd, now: acd.logout("ann", now))
    status, body, _ = await env.request("POST", "/agent/state", token, {"state": "ready"})
    assert status == 409 and "logged_out" in body["error"]


async def test_bad_bodies_are_400_never_500(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    bodies: list[str | bytes] = [
        "",
        "not json",
        "[1, 2]",
        '"ready"',
        "null",
        "{",
        "[" * 5000 + "]" * 5000,
        b"\xff\xfe{}",
        '{"state": "ready"',
        "9" * 5000,
    ]
    for body in bodies:
        for path in ("/agent/state", "/supervisor/agents/ann/state"):
            status, answer, _ = await env.request(
                "POST", path, ADMIN if "supervisor" in path else token, body
            )
            assert (body[:20], path, status) == (body[:20], path, 400)
            assert isinstance(answer["error"], str)
        status, answer, _ = await env.request("POST", "/agent/login", None, body)
        assert status == 400 and isinstance(answer["error"], str)
    for request in (
        {"agent": 5, "password": "x"},
        {"agent": "ann"},
        {"agent": "ann", "password": ""},
        {"agent": "a" * 500, "password": "x"},
        {"agent": "ann", "password": "x", "extra": 1},
    ):
        status, answer, _ = await env.request("POST", "/agent/login", None, request)
        assert (request, status) == (request, 400)
    for wrap in ({"code": 5}, {"code": ""}, {"code": "sale", "more": 1}, [1]):
        status, answer, _ = await env.request("POST", "/agent/wrap-up", token, wrap)
        assert (wrap, status) == (wrap, 400)
    big = json.dumps({"state": "ready", "pad": "x" * (agent_api.MAX_BODY + 1)})
    status, answer, _ = await env.request("POST", "/agent/state", token, big)
    assert status == 413
    assert env.state("ann") == ("not_ready", "login")


# -- calls: offer, wrap-up, the agent's WebSocket ---------------------------------------------


async def test_agent_websocket_follows_a_call_through_wrap_up(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    async with env.http.ws_connect(f"{env.base}/api/agent/ws?token={token}") as ws:
        first = await receive(ws)
        assert first["type"] == "state" and first["agent"]["state"] == "not_ready"

        await env.request("POST", "/agent/state", token, {"state": "ready"})
        assert [m["type"] for m in await until_state(ws, "ready")] == ["state"]

        # Not in wrap-up yet.
        status, body, _ = await env.request("POST", "/agent/wrap-up", token, {"code": "sale"})
        assert status == 409 and "not in wrap-up" in body["error"]

        waiting = join(env, "call-1@switch.test")
        result = await asyncio.wait_for(waiting, 3)
        assert (result.how, result.agent) == ("connected", "ann")
        seen = await until_state(ws, "on_call")
        kinds = [m["type"] for m in seen]
        offer = seen[kinds.index("offer")]
        assert offer == {
            "type": "offer",
            "call_id": "call-1@switch.test",
            "queue": "support",
            "caller": "+4930123456",
            "caller_name": "Erika Mustermann",
            "path": ["menu:2", "identify"],
            "screen_pop": [
                {"name": "member", "value": "778899", "masked": False},
                {"name": "tier", "value": "gold", "masked": False},
            ],
            "data_class": "general",
        }
        events = [m["event"] for m in seen if m["type"] == "event"]
        assert [e["event"] for e in events] == ["connected"]
        assert events[0]["agent"] == "ann" and events[0]["call_id"] == "call-1@switch.test"
        assert kinds.index("offer") < kinds.index("event") < len(kinds) - 1
        assert seen[-1]["agent"]["call"] == "call-1@switch.test"

        # On a call, ready does not apply.
        status, body, _ = await env.request("POST", "/agent/state", token, {"state": "ready"})
        assert status == 409

        env.queues.call_ended("call-1@switch.test", "caller")
        seen = await until_state(ws, "wrap_up")
        assert [m["event"]["event"] for m in seen if m["type"] == "event"] == ["completed_caller"]
        assert seen[-1]["agent"]["wrap_up_until"] > time.time() + WRAP_UP - 10

        status, body, _ = await env.request("POST", "/agent/wrap-up", token, {"code": "bogus"})
        assert status == 400 and "unknown wrap-up code 'bogus'" in body["error"]
        assert env.state("ann") == ("wrap_up", None)
        status, body, _ = await env.request("POST", "/agent/wrap-up", token, {"code": "sale"})
        assert status == 200
        assert (body["agent"]["state"], body["agent"]["last_code"]) == ("ready", "sale")
        seen = await until_state(ws, "ready")
        wrap = [m["event"] for m in seen if m["type"] == "event"]
        assert [(e["event"], e["details"]) for e in wrap] == [("wrap_up", {"code": "sale"})]
        assert wrap[0]["call_id"] == "call-1@switch.test"

        status, body, _ = await env.request("POST", "/agent/wrap-up", token, {})
        assert status == 409


async def test_an_offer_withdrawn_when_the_caller_hangs_up_frees_the_agent(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    await env.request("POST", "/agent/state", token, {"state": "ready"})
    async with env.http.ws_connect(f"{env.base}/api/agent/ws?token={token}") as ws:
        await receive(ws)
        waiting = join(env, "call-5@switch.test", answer=False)
        seen = await until_state(ws, "reserved")
        assert [m["type"] for m in seen] == ["offer", "state"]
        assert seen[-1]["agent"]["call"] == "call-5@switch.test"
        waiting.cancel()  # the caller hangs up while the agent's phone rings
        await asyncio.gather(waiting, return_exceptions=True)
        # No queue event names the agent (the call was abandoned), yet the socket is told.
        seen = await until_state(ws, "ready")
        assert [m["type"] for m in seen] == ["state"]
        assert seen[-1]["agent"]["call"] is None
    assert env.state("ann") == ("ready", None)


async def test_logout_during_a_call_is_pending(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    await env.request("POST", "/agent/state", token, {"state": "ready"})
    async with env.http.ws_connect(
        f"{env.base}/api/agent/ws", headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        assert (await receive(ws))["agent"]["state"] == "ready"
        await asyncio.wait_for(join(env, "call-2@switch.test"), 3)
        await until_state(ws, "on_call")

        status, body, _ = await env.request("POST", "/agent/logout", token)
        assert status == 200
        assert body["logged_out"] is False and body["pending"] is True
        assert body["agent"]["state"] == "on_call" and body["agent"]["pending"] == "logout"
        # The socket gets the pending logout, then closes: the token is revoked.
        left, code = await closed(ws)
        assert left and left[-1]["agent"]["pending"] == "logout"
        assert code == aiohttp.WSCloseCode.OK
    assert (await env.request("GET", "/agent/me", token))[0] == 401

    env.queues.call_ended("call-2@switch.test", "agent")
    assert env.state("ann") == ("wrap_up", None)
    env.queues.control(lambda acd, now: acd.end_wrap_up("ann", now))
    assert env.state("ann") == ("logged_out", None)


async def test_not_ready_during_a_call_is_pending(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    await env.request("POST", "/agent/state", token, {"state": "ready"})
    async with env.http.ws_connect(f"{env.base}/api/agent/ws?token={token}") as ws:
        await receive(ws)
        await asyncio.wait_for(join(env, "call-3@switch.test"), 3)
        await until_state(ws, "on_call")
        status, body, _ = await env.request(
            "POST", "/agent/state", token, {"state": "not_ready", "reason": "break"}
        )
        assert status == 200 and body["agent"]["pending"] == "not_ready"
        # No queue event for a pending change, yet the agent's socket is told.
        message = await receive(ws)
        assert message["type"] == "state" and message["agent"]["pending"] == "not_ready"
        env.queues.call_ended("call-3@switch.test", "caller")
        await until_state(ws, "wrap_up")
        await env.request("POST", "/agent/wrap-up", token, {"code": "no_sale"})
        seen = await until_state(ws, "not_ready")
        assert seen[-1]["agent"]["reason"] == "break"


async def test_a_slow_websocket_client_is_dropped_without_holding_the_switch(env: Env) -> None:
    token = await env.login("ann", "home-secret-1")
    async with env.http.ws_connect(f"{env.base}/api/agent/ws?token={token}") as ws:
        await receive(ws)
        # Many state changes within one turn of the event loop: nothing can be sent meanwhile,
        # so the socket's queue overflows.
        for _ in range(agent_api.SEND_QUEUE):
            env.queues.control(lambda acd, now: acd.ready("ann", now))
            env.queues.control(lambda acd, now: acd.not_ready("ann", "break", now))
        assert env.state("ann") == ("not_ready", "break")
        assert (await closed(ws))[1] == aiohttp.WSCloseCode.TRY_AGAIN_LATER
    # The switch carries on, and the agent may connect again.
    assert (await env.request("POST", "/agent/state", token, {"state": "ready"}))[0] == 200
    async with env.http.ws_connect(f"{env.base}/api/agent/ws?token={token}") as ws:
        assert (await receive(ws))["agent"]["state"] == "ready"


async def test_closing_the_api_closes_the_websockets(env: Env) -> None:
    sam = await env.login("sam", "site-secret-2")
    async with (
        env.http.ws_connect(f"{env.base}/api/agent/ws?token={sam}") as agent_ws,
        env.http.ws_connect(f"{env.base}/api/supervisor/ws?token={sam}") as supervisor_ws,
    ):
        await receive(agent_ws)
        await receive(supervisor_ws)
        await env.api.close()
        for ws in (agent_ws, supervisor_ws):
            assert (await closed(ws))[1] == aiohttp.WSCloseCode.GOING_AWAY
    status, _, _ = await env.request("GET", "/agent/me", sam)
    assert status == 200  # HTTP still answers; only the sockets are gone


async def test_stopping_the_server_closes_the_websockets() -> None:
    queues = QueueService(CONFIG, clock=time.time, locate=locate)
    root, api = web.Application(), web.Application()
    add_agent_routes(api, queues=queues, check_password=check_password, admin_token=ADMIN)
    root.add_subapp("/api/", api)
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.ws_connect(f"http://127.0.0.1:{port}/api/supervisor/ws?token={ADMIN}") as ws,
    ):
        assert (await receive(ws))["type"] == "snapshot"
        start = loop.time()
        await runner.cleanup()  # the application's shutdown closes the sockets
        assert loop.time() - start < 3
        assert (await closed(ws))[1] == aiohttp.WSCloseCode.GOING_AWAY
    queues.close()


# -- supervisors ---------------------------------------------------------------------------


async def test_supervisor_websocket_gets_coalesced_snapshots_with_the_events(env: Env) -> None:
    sam = await env.login("sam", "site-secret-2")
    async with env.http.ws_connect(
        f"{env.base}/api/supervisor/ws", headers={"Authorization": f"Bearer {sam}"}
    ) as ws:
        first = await receive(ws)
        assert first["type"] == "snapshot" and first["events"] == []
        assert {a["id"] for a in first["agents"]} == {"ann", "sam"}
        assert [q["name"] for q in first["queues"]] == ["support"]

        ann = await env.login("ann", "home-secret-1")
        await env.request("POST", "/agent/state", ann, {"state": "ready"})
        events: list[dict[str, Any]] = []
        snapshot: dict[str, Any] = {}
        while not any(e["event"] == "ready" for e in events):
            snapshot = await receive(ws)
            events += snapshot["events"]
        assert [(e["event"], e["agent"]) for e in events] == [("login", "ann"), ("ready", "ann")]
        assert {a["id"]: a["state"] for a in snapshot["agents"]}["ann"] == "ready"

        # Forty state changes in 0.4 s reach the supervisor in a few snapshots, not forty.
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []
        changes: list[str] = []

        async def read() -> None:
            while len(changes) < 40:
                snapshot = await receive(ws)
                arrivals.append(loop.time())
                changes.extend(e["event"] for e in snapshot["events"])

        reader = loop.create_task(read())
        start = loop.time()
        for _ in range(20):
            env.queues.control(lambda acd, now: acd.not_ready("ann", "break", now))
            env.queues.control(lambda acd, now: acd.ready("ann", now))
            await asyncio.sleep(0.02)
        await asyncio.wait_for(reader, 3)
        assert changes == ["not_ready", "ready"] * 20
        elapsed = arrivals[-1] - start
        assert len(arrivals) <= elapsed / agent_api.SNAPSHOT_INTERVAL + 1
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert all(gap >= agent_api.SNAPSHOT_INTERVAL * 0.5 for gap in gaps), gaps

        # A caller waiting shows with the screen pop; the queue's figures follow.
        await env.request("POST", "/agent/state", ann, {"state": "not_ready", "reason": "break"})
        env.queues.control(lambda acd, now: acd.not_ready("sam", "break", now))
        waiting = join(env, "call-4@switch.test")
        for _ in range(20):
            snapshot = await receive(ws)
            if snapshot["queues"][0]["waiting"] == 1:
                break
        caller = snapshot["queues"][0]["callers"][0]
        assert caller["call_id"] == "call-4@switch.test"
        assert caller["screen_pop"] == {"member": "778899", "tier": "gold"}
        assert caller["path"] == ["menu:2", "identify"]
        assert "entered" in [e["event"] for e in snapshot["events"]]
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)


async def test_supervisor_forces_agent_states(env: Env) -> None:
    ann = await env.login("ann", "home-secret-1")
    sam = await env.login("sam", "site-secret-2")
    await env.request("POST", "/agent/state", ann, {"state": "ready"})
    async with env.http.ws_connect(f"{env.base}/api/agent/ws?token={ann}") as ws:
        assert (await receive(ws))["agent"]["state"] == "ready"

        status, body, _ = await env.request(
            "POST", "/supervisor/agents/ann/state", sam, {"state": "not_ready"}
        )
        assert status == 200
        assert (body["agent"]["state"], body["agent"]["reason"]) == ("not_ready", "supervisor")
        seen = await until_state(ws, "not_ready")
        assert seen[-1]["agent"]["reason"] == "supervisor"

        status, body, _ = await env.request(
            "POST", "/supervisor/agents/ann/state", ADMIN, {"state": "ready"}
        )
        assert status == 200 and body["agent"]["state"] == "ready"
        await until_state(ws, "ready")

        status, body, _ = await env.request(
            "POST", "/supervisor/agents/ann/state", sam, {"state": "logout"}
        )
        assert status == 200 and body["agent"]["state"] == "logged_out"
        await until_state(ws, "logged_out")
        assert env.state("ann") == ("logged_out", None)

    status, body, _ = await env.request(
        "POST", "/supervisor/agents/ann/state", sam, {"state": "ready"}
    )
    assert status == 409
    status, body, _ = await env.request(
        "POST", "/supervisor/agents/nobody/state", sam, {"state": "ready"}
    )
    assert status == 404 and "nobody" in body["error"]
    for request in ({"state": "away"}, {"state": "not_ready", "reason": "lunch"}, {}):
        status, body, _ = await env.request("POST", "/supervisor/agents/sam/state", sam, request)
        assert (request, status) == (request, 400)
    assert env.state("sam") == ("not_ready", "login")
