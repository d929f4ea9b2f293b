"""The small call center the agent API's tests share: two agents, Ann at home (SIP user
1001) and Sam on site with the supervisor role (1002), both in queue ``support``; their
passwords, a phone for each, and a wall clock a test can move on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from softswitch.acd.model import AcdConfig, AgentConfig, QueueConfig
from softswitch.registrar.bindings import Binding
from tests.acd_callers import binding

PASSWORDS = {"1001": "home-secret-1", "1002": "site-secret-2"}


def desk_config(
    *,
    wrap_up: float = 0.0,
    reasons: Sequence[str] = ("break", "lunch"),
    codes: Sequence[str] = (),
) -> AcdConfig:
    """Ann and Sam in ``support`` (ring timeout 10 s, ``wrap_up`` seconds of wrap-up)."""
    return AcdConfig(
        queues={"support": QueueConfig("support", wrap_up=wrap_up, ring_timeout=10.0)},
        agents={
            "ann": AgentConfig(
                "ann", "Ann at home", "1001", location="home", queues={"support": 0}
            ),
            "sam": AgentConfig(
                "sam",
                "Sam on site",
                "1002",
                location="onsite",
                roles=frozenset({"agent", "supervisor"}),
                queues={"support": 0},
            ),
        },
        reasons=tuple(reasons),
        codes=tuple(codes),
    )


class MovableClock:
    """Wall-clock seconds plus an offset a test can add to."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def locate(user: str) -> list[Binding] | None:
    """Each agent's user has one registered phone."""
    return [binding(user)] if user in PASSWORDS else None


def check_password(user: str, password: str) -> bool:
    return PASSWORDS.get(user) == password


@contextlib.asynccontextmanager
async def api_on_loopback(
    api: web.Application, root: web.Application | None = None
) -> AsyncIterator[int]:
    """``api`` mounted at ``/api/`` of ``root`` (a new application by default) and served
    on a free loopback port, which is yielded; the server stops on the way out (its
    shutdown closes the agent API's WebSockets)."""
    root = root if root is not None else web.Application()
    root.add_subapp("/api/", api)
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
