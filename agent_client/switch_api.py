"""The switch's agent API seen from the client (``softswitch.admin.agent_api``).

An asyncio client over aiohttp. Every request has a timeout; an answer other than success
raises :class:`SwitchError` with the HTTP status and the switch's reason text (its
``{"error": ...}``), a switch that does not answer :class:`SwitchUnreachable`. The bearer token
(RFC 6750 §2.1) from :meth:`SwitchApi.login` is kept in memory only and forgotten by
:meth:`SwitchApi.forget`. :meth:`SwitchApi.events` follows the agent's WebSocket and reconnects
with a growing delay while the session lasts; a 401 (the token was revoked or expired) ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from agent_client.phone import SipAccount
from agent_client.view import DayFigures

__all__ = ["SignIn", "SwitchApi", "SwitchError", "SwitchUnreachable"]

log = logging.getLogger("agent_client.switch_api")

#: seconds for one request, connection included
REQUEST_TIMEOUT = 10.0
#: seconds for the health check (a VPN that is down should not hold the sign-in long)
HEALTH_TIMEOUT = 3.0
#: delays between WebSocket reconnections (the last one repeats)
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
#: a socket that stayed up this long starts the backoff again
STABLE = 30.0


class SwitchError(Exception):
    """The switch answered with an error: ``status`` and the switch's ``reason``."""

    def __init__(self, status: int, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class SwitchUnreachable(Exception):
    """No HTTP answer from the switch (refused, timed out, no route)."""


@dataclass(frozen=True, slots=True)
class SignIn:
    """The answer to a sign-in: the session's token and what the agent may choose."""

    token: str
    expires: float
    agent: dict[str, Any]
    roles: tuple[str, ...]
    reasons: tuple[str, ...]
    codes: tuple[str, ...]
    sip: SipAccount | None
    #: the switch's VPN-side address as the switch knows it (None: not told)
    vpn_address: str | None
    #: seconds without calls or input before the client signs out (0: never)
    idle_signout: float

    def __repr__(self) -> str:  # neither the token nor the SIP password in a log line
        return f"SignIn(agent={self.agent.get('id')!r}, roles={self.roles!r})"


def _sip_account(value: object) -> SipAccount | None:
    if not isinstance(value, dict):
        return None
    try:
        return SipAccount(
            username=str(value["username"]),
            password=str(value["password"]),
            extension=str(value.get("extension") or value["username"]),
            domain=str(value["domain"]),
            server=str(value["server"]),
            port=int(value.get("port", 5060)),
            transport=str(value.get("transport", "udp")),
            expires=int(value.get("expires", 300)),
        )
    except (KeyError, TypeError, ValueError):
        log.warning("the switch's SIP account at sign-in is incomplete: ignored")
        return None


def _texts(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _number(value: object, default: float = 0.0) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


class SwitchApi:
    """One agent's session with the switch's agent API at ``base_url``."""

    def __init__(self, base_url: str, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token: str | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def signed_in(self) -> bool:
        return self._token is not None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "softswitch-agent-client"},
            )
        return self._http

    async def close(self) -> None:
        self._token = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    def forget(self) -> None:
        """Drop the token (after signing out, or when the switch ended the session)."""
        self._token = None

    # -- requests ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        auth: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        if auth:
            if self._token is None:
                raise SwitchError(401, "not signed in")
            headers["Authorization"] = f"Bearer {self._token}"
        url = f"{self.base_url}{path}"
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout)
        try:
            async with self._session().request(
                method, url, json=body, headers=headers, timeout=limit
            ) as response:
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                if response.status >= 400:
                    reason = data.get("error") if isinstance(data, dict) else None
                    retry = response.headers.get("Retry-After")
                    raise SwitchError(
                        response.status,
                        str(reason) if reason else (response.reason or "error"),
                        float(retry) if retry and retry.isdigit() else None,
                    )
                return data if isinstance(data, dict) else {}
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise SwitchUnreachable(
                f"the switch does not answer at {self.base_url}: {exc or type(exc).__name__}"
            ) from None

    async def health(self) -> int:
        """``GET /healthz``: the HTTP status (200 healthy, 503 degraded); raises
        :class:`SwitchUnreachable` when nothing answers."""
        url = f"{self.base_url}/healthz"
        try:
            async with self._session().get(
                url, timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise SwitchUnreachable(str(exc) or type(exc).__name__) from None

    async def login(self, agent: str, password: str, totp: str = "") -> SignIn:
        """``POST /api/agent/login``; ``totp`` (the one-time code) is sent when given."""
        body: dict[str, Any] = {"agent": agent, "password": password}
        if totp:
            body["totp"] = totp
        data = await self._request("POST", "/api/agent/login", body, auth=False)
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise SwitchError(502, "the switch's sign-in answer has no token")
        self._token = token
        agent_view = data.get("agent")
        vpn = data.get("vpn_address")
        return SignIn(
            token=token,
            expires=_number(data.get("expires")),
            agent=agent_view if isinstance(agent_view, dict) else {"id": agent},
            roles=_texts(data.get("roles")),
            reasons=_texts(data.get("reasons")),
            codes=_texts(data.get("codes")),
            sip=_sip_account(data.get("sip")),
            vpn_address=vpn if isinstance(vpn, str) and vpn else None,
            idle_signout=max(0.0, _number(data.get("idle_signout"))),
        )

    async def logout(self) -> dict[str, Any]:
        try:
            return await self._request("POST", "/api/agent/logout", {})
        finally:
            self._token = None

    async def me(self) -> dict[str, Any]:
        return await self._request("GET", "/api/agent/me")

    async def set_state(self, state: str, reason: str | None = None) -> dict[str, Any]:
        """``POST /api/agent/state``: the agent's view after the change."""
        body: dict[str, Any] = {"state": state}
        if reason is not None:
            body["reason"] = reason
        data = await self._request("POST", "/api/agent/state", body)
        view = data.get("agent")
        return view if isinstance(view, dict) else {}

    async def wrap_up(self, code: str | None, note: str = "") -> dict[str, Any]:
        """``POST /api/agent/wrap-up``: the disposition code, and the agent's note on the
        call when there is one (kept by the switch with the call's record, never here)."""
        body: dict[str, Any] = {}
        if code:
            body["code"] = code
        if note:
            body["note"] = note
        data = await self._request("POST", "/api/agent/wrap-up", body)
        view = data.get("agent")
        return view if isinstance(view, dict) else {}

    async def stats(self) -> DayFigures:
        """``GET /api/agent/stats``: the agent's figures since midnight."""
        data = await self._request("GET", "/api/agent/stats")
        calls = data.get("calls")
        return DayFigures(
            calls=calls if isinstance(calls, int) and not isinstance(calls, bool) else 0,
            average_handle=_number(data.get("average_handle")),
            ready_time=_number(data.get("ready_time")),
            break_time=_number(data.get("break_time")),
        )

    async def audit_screen_pop(self, call_id: str) -> None:
        """``POST /api/agent/audit``: the agent has seen the screen pop of ``call_id``."""
        await self._request(
            "POST", "/api/agent/audit", {"action": "screen_pop_viewed", "call_id": call_id}
        )

    async def raise_help(self, conference: bool) -> None:
        """``POST /api/agent/help``: ask a supervisor for help (to join the call when
        ``conference``)."""
        await self._request("POST", "/api/agent/help", {"conference": conference})

    async def lower_help(self) -> None:
        await self._request("POST", "/api/agent/help", {"lower": True})

    # -- the event stream --------------------------------------------------------------------

    async def events(
        self,
        handle: Callable[[dict[str, Any]], None],
        on_link: Callable[[bool], None] | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Follow ``GET /api/agent/ws`` and pass each JSON object to ``handle``; reconnect
        (with :data:`BACKOFF`) after a drop while signed in. ``on_link(up)`` tells when the
        socket opens or drops. Returns when signed out; raises :class:`SwitchError` (401) when
        the switch refuses the token."""
        attempt = 0
        loop = asyncio.get_running_loop()
        while self._token is not None:
            opened = loop.time()
            try:
                async with self._session().ws_connect(
                    f"{self.base_url}/api/agent/ws",
                    headers={"Authorization": f"Bearer {self._token}"},
                    heartbeat=20.0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                ) as ws:
                    if on_link is not None:
                        on_link(True)
                    async for message in ws:
                        if message.type is not aiohttp.WSMsgType.TEXT:
                            continue
                        try:
                            data = json.loads(message.data)
                        except ValueError:
                            log.warning("the switch sent a WebSocket message that is not JSON")
                            continue
                        if isinstance(data, dict):
                            handle(data)
                    log.info("the switch closed the event socket (%s)", ws.close_code)
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    self._token = None
                    raise SwitchError(exc.status, "the switch ended this session") from None
                log.warning("the event socket was refused: %s", exc.status)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("the event socket dropped: %s", exc or type(exc).__name__)
            if on_link is not None:
                on_link(False)
            if self._token is None:
                return
            if loop.time() - opened > STABLE:
                attempt = 0
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            attempt += 1
            await sleep(delay)

    async def __aenter__(self) -> SwitchApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.close()
