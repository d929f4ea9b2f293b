"""The agent's secure sign-in on a real socket over a real SQLite security store: the second
factor (TOTP) enrolled with the command line, replayed and wrong codes, the lockout and its
survival across a restart, per-session SIP credentials, the day figures from a real queue
log, and raising a hand to the supervisors.

The API is :func:`softswitch.admin.agent_api.add_agent_routes` on an aiohttp server on
127.0.0.1 over a real queue service; the command line is
:func:`softswitch.admin.agent_cli.cmd_agent` on the same store file.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from softswitch.acd.events import QueueEvent
from softswitch.admin.agent_api import AgentApi, add_agent_routes
from softswitch.admin.agent_cli import add_agent_commands, cmd_agent
from softswitch.apps.queueing import QueueService
from softswitch.apps.session import QueueRequest, QueueResult
from softswitch.security import totp
from softswitch.security.session_sip import SessionCredentials
from softswitch.sip.auth import ha1
from softswitch.storage.security_store import SecurityDb, SqliteSecurityStore
from softswitch.storage.sqlite import SqliteQueueEventStore
from tests.acd_callers import ScriptedCaller
from tests.integration.agent_desk import (
    MovableClock,
    api_on_loopback,
    check_password,
    desk_config,
    locate,
)

TIMEOUT = aiohttp.ClientTimeout(total=10)
REALM = "example.test"
TTL = 3600.0
BAD_LOGIN = "unknown agent or wrong password"

CONFIG = desk_config()

SETTINGS = """\
sip:
  domain: example.test
users:
  - username: "1001"
    password: home-secret-1
  - username: "1002"
    password: site-secret-2
acd:
  agents:
    - id: ann
      name: Ann at home
      user: "1001"
      location: home
    - id: sam
      name: Sam on site
      user: "1002"
      roles: [agent, supervisor]
security:
  signin:
    store: {store}
"""


def sip_info(user: str) -> dict[str, object]:
    return {"domain": REALM, "server": "10.66.0.1", "port": 5060, "transport": "udp"}


@dataclass
class Env:
    http: aiohttp.ClientSession
    base: str
    queues: QueueService
    api: AgentApi
    clock: MovableClock
    store: SqliteSecurityStore
    path: Path
    credentials: SessionCredentials
    monitored: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = None if body is None else json.dumps(body)
        async with self.http.request(
            method, f"{self.base}/api{path}", headers=headers, data=data
        ) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json()

    async def sign_in(self, agent: str, password: str, code: str | None = None) -> tuple[int, Any]:
        body = {"agent": agent, "password": password}
        if code is not None:
            body["totp"] = code
        return await self.request("POST", "/agent/login", body=body)


@asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    clock: MovableClock | None = None,
    monitor_status: int = 200,
    agent_events: Callable[[str, float], Awaitable[Sequence[QueueEvent]]] | None = None,
    queues: QueueService | None = None,
    **options: Any,
) -> AsyncIterator[Env]:
    path = tmp_path / "security.db"
    clock = clock or MovableClock()
    own_queues = queues is None
    queues = queues or QueueService(CONFIG, clock=time.time, locate=locate)
    credentials = SessionCredentials(REALM)
    monitored: list[tuple[str, str, str, str]] = []

    async def monitor(sup: str, agent: str, mode: str, display: str) -> tuple[int, str | None]:
        monitored.append((sup, agent, mode, display))
        return monitor_status, "help-call" if monitor_status == 200 else None

    root, api = web.Application(), web.Application()
    async with SqliteSecurityStore(path) as store:
        agents = add_agent_routes(
            api,
            queues=queues,
            check_password=check_password,
            admin_token="admin-T0ken-0123456789",
            clock=clock,
            token_ttl=TTL,
            store=store,
            session_sip=credentials,
            sip_info=sip_info,
            vpn_address="10.66.0.1",
            idle_signout=900,
            monitor=monitor,
            agent_events=agent_events,
            **options,
        )
        try:
            async with (
                api_on_loopback(api, root) as port,
                aiohttp.ClientSession(timeout=TIMEOUT) as http,
            ):
                yield Env(
                    http,
                    f"http://127.0.0.1:{port}",
                    queues,
                    agents,
                    clock,
                    store,
                    path,
                    credentials,
                    monitored,
                )
        finally:
            await agents.close()
            if own_queues:
                queues.close()


def cli(tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    """``softswitch agent ...`` with the settings naming the test's store."""
    config = tmp_path / "settings.yaml"
    config.write_text(SETTINGS.format(store=tmp_path / "security.db"))
    parser = argparse.ArgumentParser(prog="softswitch")
    add_agent_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["agent", *argv, "-c", str(config)])
    out, err = io.StringIO(), io.StringIO()
    status = cmd_agent(args, SecurityDb, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def enrol(tmp_path: Path, agent: str) -> str:
    """Enrol ``agent`` with the command line; the secret read back from the printed URI."""
    status, out, err = cli(tmp_path, "totp", agent)
    assert status == 0, err
    uri = next(line for line in out.splitlines() if line.startswith("otpauth://"))
    assert "█" in out or "▀" in out or "▄" in out  # the QR code in the terminal
    return parse_qs(urlsplit(uri).query)["secret"][0]


async def audit_rows(env: Env, **filters: Any) -> list[tuple[str, str | None, dict[str, object]]]:
    return [(e.action, e.subject, dict(e.details)) for e in await env.store.audit(**filters)][::-1]


# -- second factor ---------------------------------------------------------------------------


async def test_required_totp_refuses_an_agent_without_a_secret_until_one_is_enrolled(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, totp="required") as env:
        status, body = await env.sign_in("ann", "home-secret-1")
        assert status == 403
        assert body["error"] == (
            "no second factor enrolled for this agent; an administrator enrols one with "
            "softswitch agent totp ann"
        )
        # enrolled from the command line while the switch runs: no reload
        secret = enrol(tmp_path, "ann")
        status, body = await env.sign_in("ann", "home-secret-1")
        assert (status, body["error"]) == (401, BAD_LOGIN)  # a code is now needed
        code = totp.code_at(secret, env.clock())
        status, body = await env.sign_in("ann", "home-secret-1", code)
        assert status == 200, body
        assert body["agent"]["state"] == "not_ready"
        rows = await audit_rows(env, actor="ann")
        assert [(a, d.get("reason") or d.get("factor")) for a, _, d in rows] == [
            ("signin_refused", "no_totp"),
            ("signin_failed", "totp missing"),
            ("signin", None),
        ]
        assert rows[-1][2]["second_factor"] is True
        assert [e.action for e in await env.store.audit(actor="admin")] == ["totp_enrolled"]


async def test_a_code_cannot_be_used_twice_and_a_wrong_code_looks_like_a_wrong_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="softswitch.admin.agent_api")
    async with running(tmp_path, totp="required") as env:
        secret = enrol(tmp_path, "ann")
        code = totp.code_at(secret, env.clock())
        status, _ = await env.sign_in("ann", "home-secret-1", code)
        assert status == 200
        replay = await env.sign_in("ann", "home-secret-1", code)
        wrong_code = "000000" if code != "000000" else "111111"
        wrong = await env.sign_in("ann", "home-secret-1", wrong_code)
        wrong_password = await env.sign_in("ann", "guess", totp.code_at(secret, env.clock() + 30))
        assert replay == wrong == wrong_password == (401, {"error": BAD_LOGIN})
        logged = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
        assert logged == [
            "sign-in of agent 'ann' from 127.0.0.1 failed: totp reused",
            "sign-in of agent 'ann' from 127.0.0.1 failed: totp wrong",
            "sign-in of agent 'ann' from 127.0.0.1 failed: password",
        ]
        assert all(
            secret not in r.getMessage() and code not in r.getMessage() for r in caplog.records
        )
        # the next step's code is still good
        status, _ = await env.sign_in(
            "ann", "home-secret-1", totp.code_at(secret, env.clock() + 30)
        )
        assert status == 200


async def test_optional_totp_asks_a_code_only_of_agents_who_enrolled(tmp_path: Path) -> None:
    async with running(tmp_path, totp="optional") as env:
        status, _ = await env.sign_in("sam", "site-secret-2")
        assert status == 200
        secret = enrol(tmp_path, "ann")
        status, _ = await env.sign_in("ann", "home-secret-1")
        assert status == 401
        status, _ = await env.sign_in("ann", "home-secret-1", totp.code_at(secret, env.clock()))
        assert status == 200


async def test_enrolling_an_unknown_agent_is_refused(tmp_path: Path) -> None:
    status, out, err = cli(tmp_path, "totp", "nobody")
    assert status == 1 and out == ""
    assert err.strip() == "softswitch: no agent 'nobody' in acd.agents (known: ann, sam)"


# -- lockout ---------------------------------------------------------------------------------


async def test_failures_in_a_row_lock_the_account_even_for_the_right_password(
    tmp_path: Path,
) -> None:
    clock = MovableClock()
    async with running(tmp_path, clock=clock, lockout_failures=3, lockout_time=600) as env:
        for _ in range(2):
            assert (await env.sign_in("ann", "wrong"))[0] == 401
        status, body = await env.sign_in("ann", "wrong")
        assert status == 403
        until = body["locked_until"]
        assert clock() + 590 < until <= clock() + 600
        assert body["error"].startswith("account locked until 20")
        assert body["error"].endswith(
            "after 3 failed sign-ins; an administrator can unlock it (softswitch agent unlock ann)"
        )
        status, again = await env.sign_in("ann", "home-secret-1")
        assert status == 403 and again["locked_until"] == until
        # another agent is not affected
        assert (await env.sign_in("sam", "site-secret-2"))[0] == 200
        actions = [a for a, _, _ in await audit_rows(env, subject="ann")]
        assert actions == [
            "signin_failed",
            "signin_failed",
            "signin_failed",
            "account_locked",
            "signin_refused",
        ]
    # the switch restarts: the lock is still there
    async with running(tmp_path, clock=clock, lockout_failures=3, lockout_time=600) as env:
        status, body = await env.sign_in("ann", "home-secret-1")
        assert status == 403 and body["locked_until"] == until
        clock.offset += 601  # the lock ends, and the count starts anew
        status, _ = await env.sign_in("ann", "home-secret-1")
        assert status == 200


async def test_a_lock_without_end_is_lifted_by_the_command_line(tmp_path: Path) -> None:
    async with running(tmp_path, lockout_failures=2, lockout_time=0) as env:
        await env.sign_in("ann", "wrong")
        status, body = await env.sign_in("ann", "wrong")
        assert status == 403 and body["locked_until"] is None
        assert body["error"] == (
            "account locked until an administrator unlocks it after 2 failed sign-ins; "
            "an administrator can unlock it (softswitch agent unlock ann)"
        )
        status, out, _ = cli(tmp_path, "unlock", "ann")
        assert status == 0
        assert out.strip() == "agent ann: unlocked (was locked after 2 failed sign-ins)"
        status, _ = await env.sign_in("ann", "home-secret-1")
        assert status == 200
        status, out, _ = cli(tmp_path, "audit", "--actor", "admin")
        assert status == 0 and "account_unlocked" in out and "ann" in out


async def test_a_success_resets_the_count(tmp_path: Path) -> None:
    async with running(tmp_path, lockout_failures=2, lockout_time=60) as env:
        await env.sign_in("ann", "wrong")
        assert (await env.sign_in("ann", "home-secret-1"))[0] == 200
        assert (await env.sign_in("ann", "wrong"))[0] == 401
        assert (await env.store.lock_state("ann")).failures == 1


async def test_a_wrong_code_counts_toward_the_lock(tmp_path: Path) -> None:
    async with running(tmp_path, totp="required", lockout_failures=2, lockout_time=60) as env:
        enrol(tmp_path, "ann")
        assert (await env.sign_in("ann", "home-secret-1", "abcdef"))[0] == 401
        status, body = await env.sign_in("ann", "home-secret-1", "12345")
        assert status == 403 and "after 2 failed sign-ins" in body["error"]


async def test_unknown_agents_leave_no_lock_rows(tmp_path: Path) -> None:
    async with running(tmp_path, lockout_failures=1, lockout_time=60) as env:
        for i in range(3):
            assert (await env.sign_in(f"ghost{i}", "x"))[0] == 401
    with SecurityDb(tmp_path / "security.db") as db, db._conn() as conn:
        assert conn.execute("SELECT count(*) FROM signin_locks").fetchone()[0] == 0


# -- session SIP credentials -----------------------------------------------------------------


async def test_sign_in_issues_sip_credentials_for_the_session_only(tmp_path: Path) -> None:
    clock = MovableClock()
    async with running(tmp_path, clock=clock) as env:
        status, body = await env.sign_in("ann", "home-secret-1")
        assert status == 200
        sip = body["sip"]
        assert sip["extension"] == "1001" and sip["username"].startswith("1001.")
        assert (sip["domain"], sip["server"], sip["port"], sip["transport"]) == (
            REALM,
            "10.66.0.1",
            5060,
            "udp",
        )
        assert sip["valid_until"] == body["expires"] and sip["expires"] == 300
        assert (body["vpn_address"], body["idle_signout"]) == ("10.66.0.1", 900)
        found = env.credentials.lookup(sip["username"], clock())
        assert found is not None
        user, hashes = found
        assert user == "1001"
        assert hashes["MD5"] == ha1(sip["username"], REALM, sip["password"], "MD5")
        assert hashes["SHA-256"] == ha1(sip["username"], REALM, sip["password"], "SHA-256")

        # a second session gets other credentials; signing out revokes only its own
        _, other = await env.sign_in("ann", "home-secret-1")
        assert other["sip"]["username"] != sip["username"]
        status, _ = await env.request("POST", "/agent/logout", body["token"])
        assert status == 200
        assert env.credentials.lookup(sip["username"], clock()) is None
        assert env.credentials.lookup(other["sip"]["username"], clock()) is not None
        # and they end with the token
        clock.offset += TTL
        assert env.credentials.lookup(other["sip"]["username"], clock()) is None
        rows = await audit_rows(env, actor="ann")
        assert [a for a, _, _ in rows] == ["signin", "signin", "signout"]
        assert rows[0][2]["sip_username"] == sip["username"]


# -- day figures and help --------------------------------------------------------------------


def join(queues: QueueService, call_id: str) -> asyncio.Task[QueueResult]:
    request = QueueRequest(
        call_id=call_id,
        queue="support",
        priority=0,
        skills={},
        data_class="general",
        caller="+4930123456",
        caller_name=None,
        path=(),
        screen_pop={},
    )
    caller = ScriptedCaller(call_id, answer_at_once=True, cancel_later=True)
    return asyncio.get_running_loop().create_task(queues.wait(request, caller))


async def settle(check: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_stats_count_the_day_from_the_queue_log(tmp_path: Path) -> None:
    queues = QueueService(CONFIG, clock=time.time, locate=locate)
    buffered: list[QueueEvent] = []
    queues.sinks.append(buffered.extend)
    async with SqliteQueueEventStore(tmp_path / "queue.db") as log_store:

        async def agent_events(agent: str, since: float) -> list[QueueEvent]:
            pending, buffered[:] = list(buffered), []
            await log_store.add_many(pending)
            return await log_store.query(agent=agent, since=since)

        try:
            async with running(tmp_path, queues=queues, agent_events=agent_events) as env:
                _, body = await env.sign_in("ann", "home-secret-1")
                token = body["token"]
                await env.request("POST", "/agent/state", token, {"state": "ready"})
                task = join(queues, "call-1")
                await settle(lambda: queues.acd.agent("ann").state.value == "on_call")
                await asyncio.sleep(0.2)
                queues.call_ended("call-1", "caller")
                await asyncio.wait_for(task, 3)
                # no wrap-up in this queue: the agent is ready again, and the call's handling
                # is over although the log has no event after it (the engine says so)
                status, stats = await env.request("GET", "/agent/stats", token)
                assert status == 200 and stats["calls"] == 1, stats
                assert 0.15 < stats["average_handle"] < 3, stats
                body = {"state": "not_ready", "reason": "break"}
                await env.request("POST", "/agent/state", token, body)
                await asyncio.sleep(0.1)
                status, stats = await env.request("GET", "/agent/stats", token)
                assert status == 200, stats
                assert stats["calls"] == 1
                assert 0.15 < stats["average_handle"] < 3
                assert stats["ready_time"] > 0 and stats["break_time"] >= 0.05
                assert stats["since"] <= env.clock() and stats["until"] >= stats["since"]
        finally:
            queues.close()


async def test_stats_without_a_queue_log_is_503(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        _, body = await env.sign_in("ann", "home-secret-1")
        status, answer = await env.request("GET", "/agent/stats", body["token"])
        assert status == 503 and "queue log" in answer["error"]


async def receive(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    for _ in range(50):
        message = json.loads((await ws.receive(timeout=3)).data)
        if message["type"] == kind:
            assert isinstance(message, dict)
            return message
    raise AssertionError(f"no {kind} message")


async def test_a_raised_hand_reaches_the_supervisors_until_lowered(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        _, ann = await env.sign_in("ann", "home-secret-1")
        _, sam = await env.sign_in("sam", "site-secret-2")
        async with env.http.ws_connect(f"{env.base}/api/supervisor/ws?token={sam['token']}") as ws:
            first = await receive(ws, "snapshot")
            assert first["hands"] == []
            status, raised = await env.request("POST", "/agent/help", ann["token"], {})
            assert status == 200 and raised["raised"] is True and raised["call_id"] is None
            help_message = await receive(ws, "help")
            assert (help_message["agent"], help_message["call_id"]) == ("ann", None)
            snapshot = await receive(ws, "snapshot")
            assert [h["agent"] for h in snapshot["hands"]] == ["ann"]
            status, agents = await env.request("GET", "/supervisor/agents", sam["token"])
            assert [h["agent"] for h in agents["hands"]] == ["ann"]
            status, lowered = await env.request(
                "POST", "/agent/help", ann["token"], {"lower": True}
            )
            assert status == 200 and lowered == {"raised": False, "was_raised": True}
            assert (await receive(ws, "snapshot"))["hands"] == []
        status, bad = await env.request("POST", "/agent/help", ann["token"], {"conference": "yes"})
        assert status == 400
        actions = [a for a, _, _ in await audit_rows(env, actor="ann")]
        assert actions == ["signin", "help_raised", "help_lowered"]


async def test_help_with_conference_calls_a_free_supervisor_into_the_call(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        _, ann = await env.sign_in("ann", "home-secret-1")
        token = ann["token"]
        # no call yet
        status, body = await env.request("POST", "/agent/help", token, {"conference": True})
        assert status == 409 and body["error"] == "no call in progress to bring a supervisor into"
        await env.request("POST", "/agent/state", token, {"state": "ready"})
        task = join(env.queues, "call-9")
        await settle(lambda: env.queues.acd.agent("ann").state.value == "on_call")
        # sam is not signed in: nobody to call
        status, body = await env.request("POST", "/agent/help", token, {"conference": True})
        assert status == 409 and "no supervisor" in body["error"]
        assert env.monitored == []
        await env.sign_in("sam", "site-secret-2")
        status, body = await env.request("POST", "/agent/help", token, {"conference": True})
        assert status == 200, body
        assert body["supervisor"] == "sam" and body["conference_call_id"] == "help-call"
        assert body["call_id"] == "call-9"
        assert env.monitored == [("1002", "1001", "barge", "help ann")]
        assert "ann" in env.api._hands
        # the hand comes down when the call ends
        env.queues.call_ended("call-9", "caller")
        await asyncio.wait_for(task, 3)
        await settle(lambda: "ann" not in env.api._hands)
        rows = await audit_rows(env, action="help_raised")
        assert rows == [
            (
                "help_raised",
                "call-9",
                {"conference": True, "call_id": "call-9", "supervisor": "sam", "status": 200},
            )
        ]
