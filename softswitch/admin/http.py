"""The HTTP listener: health now; the agent, supervisor and admin API grow here (aiohttp)."""

from __future__ import annotations

import logging
from typing import Protocol

from aiohttp import web

log = logging.getLogger("softswitch.http")


class SwitchView(Protocol):
    """What the HTTP API may ask of the running switch."""

    def health(self) -> dict[str, object]: ...


class HttpApi:
    def __init__(self, switch: SwitchView) -> None:
        self.switch = switch
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def healthz(self, request: web.Request) -> web.Response:
        health = self.switch.health()
        status = 200 if health.get("status") == "ok" else 503
        return web.json_response(health, status=status)

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("HTTP listening on %s:%d", host, self.port or port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
