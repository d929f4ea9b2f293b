"""The HTTP listener: health, live calls and call detail records (aiohttp).

Routes:

* ``GET /healthz``: the switch's health, open to everyone (load balancers, monitoring).
* ``GET /api/calls``: the calls in progress, ``{"calls": [...]}``.
* ``GET /api/calls/{call_id}``: one call, live (``"live": true``) or from its detail record
  (``"live": false``); 404 if neither knows it. A Call-ID may hold ``/`` (RFC 3261 §25.1
  ``word``); ``?``, ``#`` and ``%`` must be percent-encoded by the client.
* ``GET /api/cdrs`` and ``GET /api/queue-events``: mounted by
  :func:`softswitch.admin.records_api.add_records_routes` through ``routes``.
* ``/api/agent/...`` and ``/api/supervisor/...``: the agent and supervisor API
  (:mod:`softswitch.admin.agent_api`), which checks its own tokens.

Every error answer of these routes is a JSON object ``{"error": "<reason>"}``.

Access to ``/api/``: with a token configured (``http.api_token``), every request needs
``Authorization: Bearer <token>`` (RFC 6750 §2.1), else 401 with ``WWW-Authenticate: Bearer``
(RFC 6750 §3). Without a token, only clients in the trusted networks (the loopback by default)
are answered, others get 403. The client address is the TCP peer; forwarding headers such as
``X-Forwarded-For`` are not believed.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, Protocol

from aiohttp import web

log = logging.getLogger("softswitch.http")

__all__ = ["LOOPBACK", "CdrReader", "CdrRecord", "HttpApi", "SwitchView"]

#: The networks trusted when no API token is configured.
LOOPBACK: tuple[IPv4Network | IPv6Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)

#: routes that authenticate on their own (softswitch.admin.agent_api)
_SELF_AUTHENTICATED = ("/api/agent/", "/api/supervisor/")

#: Bounds of the ``limit`` parameter of ``/api/cdrs``.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

_REALM = "softswitch"
_NO_TOKEN = "missing Authorization: Bearer token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SwitchView(Protocol):
    """What the HTTP API may ask of the running switch."""

    def health(self) -> dict[str, object]: ...

    def live_calls(self) -> list[dict[str, object]]:
        """The calls in progress, each a JSON-able dict."""
        ...

    def live_call(self, call_id: str) -> dict[str, object] | None:
        """The call in progress with this Call-ID as a JSON-able dict, or None."""
        ...

    def control_recording(self, call_id: str, action: str, reason: str) -> bool | None:
        """Pause or resume a live call's recording: True if it changed, False if it was
        already so, None if the call is not live or not recorded."""
        ...


class CdrRecord(Protocol):
    """A call detail record as the API shows it."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-able dict."""
        ...


class CdrReader(Protocol):
    """The reading half of the switch's call detail record store."""

    async def get(self, call_id: str) -> CdrRecord | None: ...

    async def recent(
        self, limit: int = 100, since: float | None = None, user: str | None = None
    ) -> Sequence[CdrRecord]: ...


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


class _BadParameter(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _one(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise _BadParameter(f"{name} is given {len(values)} times; give it once")
    return values[0] if values else None


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    text = raw.strip()
    if not text.isdecimal() or not text.isascii():
        raise _BadParameter(f"limit must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    value = int(text)
    if not 1 <= value <= MAX_LIMIT:
        raise _BadParameter(f"limit must be from 1 to {MAX_LIMIT}, got {value}")
    return value


def _user(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw or len(raw) > 256:
        raise _BadParameter("user must be 1 to 256 characters long")
    return raw


class HttpApi:
    """The switch's HTTP API (see the module docstring for the routes and access rule).

    ``cdrs`` (optional) serves the detail records of ended calls; ``token`` is the Bearer
    token every ``/api/`` request must carry (``http.api_token``); without one, only clients
    in ``trusted_networks`` (default: the loopback) may use ``/api/``.
    """

    def __init__(
        self,
        switch: SwitchView,
        cdrs: CdrReader | None = None,
        token: str | None = None,
        trusted_networks: Iterable[IPv4Network | IPv6Network] = LOOPBACK,
        routes: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        if token is not None and not token:
            raise ValueError("the API token must not be empty (use None for no token)")
        self.switch = switch
        self.cdrs = cdrs
        self._token = None if token is None else token.encode()
        self._trusted = tuple(trusted_networks)
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        api = web.Application(middlewares=[self._guard])
        api.router.add_get("/calls", self.calls)
        api.router.add_post("/calls/{call_id}/recording", self.recording)
        api.router.add_get("/calls/{call_id:.+}", self.call)
        for add in routes:  # more routes under /api/ (the dialplan's), same access rule
            add(api)
        self.app.add_subapp("/api/", api)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- access ----------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None and resource.canonical.startswith(_SELF_AUTHENTICATED):
            return await handler(request)  # the agent API checks its own bearer tokens
        if self._token is not None:
            reason = self._bearer_problem(request.headers.get("Authorization"))
            if reason is not None:
                log.debug(
                    "HTTP %s %s from %s: %s", request.method, request.path, request.remote, reason
                )
                challenge = f'Bearer realm="{_REALM}"'
                if reason != _NO_TOKEN:  # a request without credentials gets no error code
                    challenge += ', error="invalid_token"'
                return _error(401, reason, {"WWW-Authenticate": challenge})
        elif not self._trusted_peer(request.remote):
            log.debug(
                "HTTP %s %s from %s: not trusted", request.method, request.path, request.remote
            )
            return _error(
                403,
                f"the API answers only local clients; client {request.remote} is not one "
                "(set http.api_token to allow clients with that token)",
            )
        return await handler(request)

    def _bearer_problem(self, header: str | None) -> str | None:
        """Why the Authorization header does not carry the API token, or None if it does."""
        assert self._token is not None
        if header is None:
            return _NO_TOKEN
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":  # auth schemes are case-insensitive (RFC 9110 §11.1)
            return "the Authorization header must use the Bearer scheme"
        given = credentials.strip().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._token):
            return "wrong API token"
        return None

    def _trusted_peer(self, remote: str | None) -> bool:
        if remote is None:
            return False
        try:
            address: IPv4Address | IPv6Address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._trusted)

    # -- routes ----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        health = self.switch.health()
        status = 200 if health.get("status") == "ok" else 503
        return web.json_response(health, status=status)

    async def calls(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.switch.live_calls()})

    async def call(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        live = self.switch.live_call(call_id)
        if live is not None:
            return web.json_response({**live, "live": True})
        if self.cdrs is not None:
            try:
                record = await self.cdrs.get(call_id)
            except Exception:
                log.exception("reading the detail record of call %r failed", call_id)
                return _error(500, "reading the call detail records failed (see the log)")
            if record is not None:
                return web.json_response({**record.to_dict(), "live": False})
        return _error(404, f"no call {call_id}")

    async def recording(self, request: web.Request) -> web.Response:
        """``POST /api/calls/{id}/recording`` with ``{"action": "pause" | "resume" | "start" |
        "stop", "reason": "card number"}``: the recording holds silence while paused, and the
        pause is kept beside it (the sensitive parts of a call); "start" records a call that
        was not recorded, "stop" closes the recording."""
        call_id = request.match_info["call_id"]
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        action = body.get("action")
        reason = body.get("reason", "")
        if action not in ("pause", "resume", "start", "stop"):
            return _error(400, 'action must be "pause", "resume", "start" or "stop"')
        if not isinstance(reason, str) or len(reason) > 200:
            return _error(400, "reason must be a text of at most 200 characters")
        changed = self.switch.control_recording(call_id, action, reason)
        if changed is None:
            return _error(404, f"no recorded live call {call_id}")
        return web.json_response(
            {"call_id": call_id, "action": action, "paused": action == "pause", "changed": changed}
        )

    # -- listener --------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("HTTP listening on %s:%d", host, self.port or port)
        if self._token is None and not self._trusted_peer(host):
            log.warning(
                "HTTP API on %s without http.api_token: /api/ answers only clients in %s",
                host,
                ", ".join(str(n) for n in self._trusted) or "no network",
            )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
