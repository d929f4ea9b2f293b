"""Agent control (CTI) and the supervisors' API: HTTP and WebSocket routes under ``/api/``.

Added to the API's sub-application by :func:`add_agent_routes`. These routes authenticate on
their own (the ``/api/`` guard lets ``/api/agent/`` and ``/api/supervisor/`` through): every
request carries a bearer token (RFC 6750 §2.1) obtained by signing in, or, for the supervisor
routes only, the admin API token (``http.api_token``).

Agent routes. An agent token reaches only its own agent's data: the agent is the one the token
was issued to, so no agent route takes an agent id (there is none in the URL, and a body that
names one is refused as an unknown field):

* ``POST /api/agent/login`` ``{"agent": id, "password": p}``: the password of the agent's SIP
  user (``check_password(user, password)``). 200 with ``token``, ``token_type``, ``expires``
  (Unix seconds), ``agent`` (the agent's view), ``roles``, ``reasons`` (the not-ready reasons
  to choose from) and ``codes`` (wrap-up codes; empty: any). A logged-out agent is logged in to
  the ACD (attendance starts; the agent is not ready, reason ``login``). An unknown agent and a
  wrong password get the same 401. After :data:`MAX_FAILURES` failures within
  :data:`FAILURE_WINDOW` seconds for one agent id or from one client address, sign-ins are
  refused with 429 and ``Retry-After`` (RFC 6585 §4) until the oldest failure is that old.
  Every failure is logged (agent id and client address, never the password).
* ``POST /api/agent/logout``: logs the agent out of the ACD (after the call in progress, if
  any: then ``"pending": true``) and revokes the token (its WebSockets close).
* ``GET /api/agent/me``: the agent's view, roles, reasons and codes.
* ``POST /api/agent/state`` ``{"state": "ready" | "not_ready", "reason": r}`` (a reason from
  the list is required with ``not_ready``): 200 with the view (a not-ready asked for during a
  call shows as ``pending``); 400 for a bad body or an unknown reason; 409 when the change does
  not apply now (e.g. ready while on a call or logged out).
* ``POST /api/agent/wrap-up`` ``{"code": c}`` (code optional): ends the wrap-up with the
  disposition code; 400 for a code not in the list, 409 when not in wrap-up.
* ``GET /api/agent/ws``: a WebSocket (the token in ``Authorization`` or, as browsers cannot set
  headers on a WebSocket, in ``?token=``). It pushes JSON text messages:
  ``{"type": "state", "agent": view}`` on connect and whenever the agent's state changes;
  ``{"type": "offer", "call_id", "queue", "caller", "caller_name", "path", "screen_pop",
  "data_class"}`` when a call is offered to the agent (the screen pop); ``{"type": "event",
  "event": queue event}`` for ``connected``, ``missed``, ``completed_*``, ``transferred`` and
  ``wrap_up``. The socket only pushes: requests go to the HTTP routes.

Supervisor routes (a token of an agent with the ``supervisor`` role, or the admin token; an
agent token without the role gets 403):

* ``GET /api/supervisor/agents``: every agent's live view and the counts per state.
* ``GET /api/supervisor/queues``: every queue with its callers and the last hour's figures.
* ``POST /api/supervisor/agents/{id}/state`` ``{"state": "not_ready" | "logout" | "ready"}``:
  forces the agent's state (not ready with reason ``supervisor``; during a call, after it).
  404 for an unknown agent, 409 when the change does not apply.
* ``GET /api/supervisor/ws``: a WebSocket pushing ``{"type": "snapshot", "queues", "agents",
  "agent_states", "events"}`` on connect and after queue events, at most
  1 / :data:`SNAPSHOT_INTERVAL` per second; ``events`` are the queue events since the previous
  push (at most :data:`MAX_PUSH_EVENTS`, ``events_dropped`` counts the rest).

Errors are ``{"error": reason}``. A request without a token gets 401 with ``WWW-Authenticate:
Bearer`` (RFC 6750 §3); an unknown, revoked or expired token 401 with
``error="invalid_token"``; a token without the right 403 with ``error="insufficient_scope"``
(§3.1). A bad body (not JSON, not an object, wrong types, unknown fields) is 400, a body over
:data:`MAX_BODY` bytes 413.

WebSockets: a ping every :data:`HEARTBEAT` seconds (a client that does not answer is closed);
each socket has a send queue of :data:`SEND_QUEUE` messages, and a client that falls that far
behind is dropped (close code 1013) instead of holding the switch. Sockets close when their
token is revoked or expires, and when the switch stops (1001).

Tokens live in memory (:mod:`softswitch.admin.tokens`): a restart signs everyone out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from softswitch.acd.agent import AgentState
from softswitch.acd.engine import Acd, AcdError, Command
from softswitch.acd.events import QueueEvent, QueueEventKind
from softswitch.admin.http import _error
from softswitch.admin.tokens import Session, TokenRejected, TokensFull, TokenStore
from softswitch.apps.queueing import QueueService

__all__ = ["AgentApi", "FailureLimit", "add_agent_routes"]

log = logging.getLogger("softswitch.admin.agent_api")

#: failed sign-ins per agent id, and per client address, within FAILURE_WINDOW seconds
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
#: agent ids and addresses whose failures are remembered at once
MAX_FAILURE_KEYS = 10_000
#: the largest request body accepted
MAX_BODY = 16 * 1024
MAX_ID = 128
MAX_PASSWORD = 1024
MAX_TEXT = 128
#: seconds between WebSocket pings; no pong within half of it closes the socket
HEARTBEAT = 30.0
#: messages waiting to be sent on one WebSocket before its client is dropped
SEND_QUEUE = 256
#: the largest message a client may send on a WebSocket
MAX_WS_MESSAGE = 4096
#: seconds between two snapshots pushed to the supervisors (at most 4 a second)
SNAPSHOT_INTERVAL = 0.25
MAX_PUSH_EVENTS = 1000
#: seconds between looks for expired tokens (their WebSockets close)
SWEEP_INTERVAL = 30.0
#: seconds a WebSocket close may take before the connection is cut
CLOSE_TIMEOUT = 5.0

_REALM = "softswitch"
_NO_TOKEN = "missing Authorization: Bearer token"
_BAD_LOGIN = "unknown agent or wrong password"

K = QueueEventKind
#: queue events an agent's WebSocket gets as they are
_AGENT_EVENTS = frozenset(
    {
        K.CONNECTED,
        K.MISSED,
        K.COMPLETED_CALLER,
        K.COMPLETED_AGENT,
        K.TRANSFERRED,
        K.WRAP_UP,
    }
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Refused(Exception):
    """An answer other than success, raised from deep in a handler."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.response = _error(status, reason, headers)


def _challenge(error: str | None = None) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of RFC 6750 §3 (no error code without credentials)."""
    value = f'Bearer realm="{_REALM}"'
    if error is not None:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


class FailureLimit:
    """Failed attempts per key (an agent id, a client address): at most ``limit`` within
    ``window`` seconds, then :meth:`retry_after` is positive until the oldest of them is
    ``window`` old. At most ``max_keys`` keys are remembered (keys whose failures are all
    older than the window go first, then the longest-known)."""

    def __init__(self, limit: int, window: float, max_keys: int = MAX_FAILURE_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window - now

    def record(self, key: str, now: float) -> None:
        times = self._failures.get(key)
        if times is None:
            if len(self._failures) >= self.max_keys:
                self._prune(now)
            while len(self._failures) >= self.max_keys:
                del self._failures[next(iter(self._failures))]
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(now)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window]
        for key in stale:
            del self._failures[key]


#: ``(supervisor's SIP user, agent's SIP user, mode, display name) -> (status, call id)``: the
#: switch calls the supervisor and joins the agent's call (see ``Switch.monitor``)
Monitoring = Callable[[str, str, str, str], Awaitable[tuple[int, str | None]]]


@dataclass(frozen=True, slots=True)
class _Principal:
    """Who a request acts for: an agent's session, or the admin token (``session`` None)."""

    session: Session | None

    @property
    def agent(self) -> str:
        assert self.session is not None
        return self.session.agent

    @property
    def name(self) -> str:
        return "admin" if self.session is None else f"agent {self.session.agent}"


class _Client:
    """One WebSocket: its send queue and writer task; ``agent`` set for an agent's socket."""

    __slots__ = ("agent", "call", "closing", "dead", "key", "last", "queue", "writer", "ws")

    def __init__(self, ws: web.WebSocketResponse, key: bytes | None, agent: str | None) -> None:
        self.ws = ws
        self.key = key
        self.agent = agent
        #: text to send; None: close after what is queued (with ``closing``'s code)
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=SEND_QUEUE)
        self.writer: asyncio.Task[None] | None = None
        self.last: tuple[object, ...] | None = None  # the agent state last sent
        self.call: object = None  # the call of the agent state last sent
        self.closing: tuple[int, str] | None = None
        self.dead = False


def _signature(view: dict[str, object]) -> tuple[object, ...]:
    """What makes an agent's state different for the agent (not the time spent in it)."""
    return tuple(
        view.get(k)
        for k in ("state", "reason", "call", "pending", "wrap_up_until", "last_code", "misses")
    )


async def _body(request: web.Request, *, required: bool) -> dict[str, Any]:
    """The JSON object of the request (``{}`` for an empty body when not ``required``)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Refused(413, f"the body must be at most {MAX_BODY} bytes")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise _Refused(413, f"the body must be at most {MAX_BODY} bytes")
    if not raw.strip() and not required:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _Refused(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _Refused(400, "the body must be a JSON object")
    return body


def _fields(body: dict[str, Any], allowed: Iterable[str]) -> None:
    known = sorted(allowed)
    for name in body:
        if name not in known:
            raise _Refused(400, f"unknown field {name[:64]!r}; the fields are {', '.join(known)}")


def _text(body: dict[str, Any], name: str, longest: int, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > longest:
        raise _Refused(400, f"{name} must be a text of 1 to {longest} characters")
    return value


class AgentApi:
    """The agent and supervisor routes (see the module docstring) and their WebSockets."""

    def __init__(
        self,
        queues: QueueService,
        *,
        check_password: Callable[[str, str], bool],
        admin_token: str | None,
        clock: Callable[[], float] = time.time,
        token_ttl: float = 12 * 3600,
        monitor: Monitoring | None = None,
    ) -> None:
        if admin_token is not None and not admin_token:
            raise ValueError("the admin token must not be empty (use None for no token)")
        self.queues = queues
        self.clock = clock
        self.tokens = TokenStore(token_ttl)
        self.failures = FailureLimit(MAX_FAILURES, FAILURE_WINDOW)
        self._check_password = check_password
        self._monitor = monitor
        self._admin = None if admin_token is None else admin_token.encode()
        self._agents: dict[str, set[_Client]] = {}  # agent -> its sockets
        self._supervisors: set[_Client] = set()
        self._pending: deque[QueueEvent] = deque(maxlen=MAX_PUSH_EVENTS)
        self._pending_dropped = 0
        self._push: asyncio.TimerHandle | None = None
        self._last_push = -math.inf
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        queues.sinks.append(self._on_events)

    def add_routes(self, api: web.Application) -> None:
        add = api.router
        add.add_post("/agent/login", self._wrap(self.login))
        add.add_post("/agent/logout", self._wrap(self.logout))
        add.add_get("/agent/me", self._wrap(self.me))
        add.add_post("/agent/state", self._wrap(self.state))
        add.add_post("/agent/wrap-up", self._wrap(self.wrap_up))
        add.add_get("/agent/ws", self._wrap(self.agent_socket))
        add.add_get("/supervisor/agents", self._wrap(self.agents))
        add.add_get("/supervisor/queues", self._wrap(self.queue_views))
        add.add_post("/supervisor/agents/{agent}/state", self._wrap(self.force_state))
        add.add_get("/supervisor/ws", self._wrap(self.supervisor_socket))
        add.add_post("/supervisor/monitor", self._wrap(self.monitor))
        api.on_shutdown.append(self._on_shutdown)

    @staticmethod
    def _wrap(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _Refused as refused:
                return refused.response

        return run

    # -- access ----------------------------------------------------------------------------

    def _principal(
        self, request: web.Request, *, supervisor: bool, query: bool = False
    ) -> _Principal:
        """Who the request acts for; raises :class:`_Refused` (401/403) otherwise."""
        token = self._credentials(request, query=query)
        if self._admin is not None and hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), self._admin
        ):
            if not supervisor:
                raise _Refused(
                    403,
                    "the admin token acts for no agent: sign in as the agent",
                    _challenge("insufficient_scope"),
                )
            return _Principal(None)
        try:
            session = self.tokens.lookup(token, self.clock())
        except TokenRejected as exc:
            raise _Refused(401, exc.reason, _challenge("invalid_token")) from None
        config = self.queues.acd.config.agents.get(session.agent)
        if config is None:  # removed from the configuration since signing in
            self._revoke(session, "the agent was removed")
            raise _Refused(
                401, f"agent {session.agent} is no longer configured", _challenge("invalid_token")
            )
        if supervisor and "supervisor" not in config.roles:
            raise _Refused(
                403,
                f"agent {session.agent} is not a supervisor",
                _challenge("insufficient_scope"),
            )
        return _Principal(session)

    def _credentials(self, request: web.Request, *, query: bool) -> str:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, credentials = header.strip().partition(" ")
            if scheme.lower() != "bearer":  # schemes are case-insensitive (RFC 9110 §11.1)
                raise _Refused(
                    401,
                    "the Authorization header must use the Bearer scheme",
                    _challenge("invalid_request"),
                )
            token = credentials.strip()
            if token:
                return token
        elif query:
            values = request.query.getall("token", [])
            if len(values) > 1:
                raise _Refused(400, "token is given more than once")
            if values and values[0]:
                return values[0]
        raise _Refused(401, _NO_TOKEN, _challenge())

    # -- agent routes ----------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        body = await _body(request, required=True)
        _fields(body, ("agent", "password"))
        agent = _text(body, "agent", MAX_ID)
        password = _text(body, "password", MAX_PASSWORD)
        assert agent is not None and password is not None
        now = self.clock()
        remote = request.remote or "unknown"
        agent_key, remote_key = f"agent:{agent}", f"ip:{remote}"
        wait = max(
            self.failures.retry_after(agent_key, now), self.failures.retry_after(remote_key, now)
        )
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            log.warning("sign-in of agent %r from %s refused: too many failures", agent, remote)
            raise _Refused(
                429,
                f"too many failed sign-ins for this agent or from this address; "
                f"try again in {seconds} s",
                {"Retry-After": str(seconds)},
            )
        config = self.queues.acd.config.agents.get(agent)
        ok = False
        if config is not None:
            try:
                ok = bool(self._check_password(config.user, password))
            except Exception:
                log.exception("checking the password of agent %r failed", agent)
                raise _Refused(500, "checking the password failed (see the log)") from None
        if not ok:
            self.failures.record(agent_key, now)
            self.failures.record(remote_key, now)
            log.warning(
                "sign-in of agent %r from %s failed: %s",
                agent,
                remote,
                "unknown agent" if config is None else "wrong password",
            )
            raise _Refused(401, _BAD_LOGIN)
        assert config is not None
        self.failures.clear(agent_key)
        try:
            token, session, dropped = self.tokens.issue(agent, now)
        except TokensFull as exc:
            log.error("sign-in of agent %r refused: %s", agent, exc)
            raise _Refused(503, str(exc)) from None
        for old in dropped:
            self._close_sockets(old.key, WSCloseCode.POLICY_VIOLATION, "signed in too often")
        acd = self.queues.acd
        if acd.agent(agent).state is AgentState.LOGGED_OUT:
            with contextlib.suppress(AcdError):
                self.queues.control(lambda a, t: a.login(agent, t))
            self._changed(agent)
        log.info("agent %s signed in from %s", agent, remote)
        return web.json_response(
            {
                "token": token,
                "token_type": "Bearer",
                "expires": session.expires,
                "agent": self._view(agent),
                "roles": sorted(config.roles),
                "reasons": list(acd.config.reasons),
                "codes": list(acd.config.codes),
            },
            headers={"Cache-Control": "no-store"},  # a token is never cached (RFC 6749 §5.1)
        )

    async def logout(self, request: web.Request) -> web.Response:
        principal = self._principal(request, supervisor=False)
        agent = principal.agent
        with contextlib.suppress(AcdError):  # already logged out: only the token goes
            self.queues.control(lambda a, t: a.logout(agent, t))
        view = self._view(agent)
        self._changed(agent)
        assert principal.session is not None
        self._revoke(principal.session, "signed out")
        log.info("agent %s signed out%s", agent, " after the call" if view["pending"] else "")
        return web.json_response(
            {
                "logged_out": view["state"] == AgentState.LOGGED_OUT.value,
                "pending": view["pending"] == "logout",
                "agent": view,
            }
        )

    async def me(self, request: web.Request) -> web.Response:
        principal = self._principal(request, supervisor=False)
        agent = principal.agent
        acd = self.queues.acd
        assert principal.session is not None
        return web.json_response(
            {
                "agent": self._view(agent),
                "roles": sorted(acd.config.agents[agent].roles),
                "reasons": list(acd.config.reasons),
                "codes": list(acd.config.codes),
                "expires": principal.session.expires,
            }
        )

    async def state(self, request: web.Request) -> web.Response:
        principal = self._principal(request, supervisor=False)
        agent = principal.agent
        body = await _body(request, required=True)
        _fields(body, ("state", "reason"))
        wanted = body.get("state")
        reasons = self.queues.acd.config.reasons
        action: Callable[[Acd, float], list[Command]]
        if wanted == "ready":
            if body.get("reason") is not None:
                raise _Refused(400, "a reason goes with not_ready only")

            def action(a: Acd, t: float) -> list[Command]:
                return a.ready(agent, t)

        elif wanted == "not_ready":
            reason = body.get("reason")
            if not isinstance(reason, str) or reason not in reasons:
                shown = repr(reason) if isinstance(reason, str) else "missing"
                raise _Refused(400, f"reason {shown}: not_ready needs one of {', '.join(reasons)}")

            def action(a: Acd, t: float) -> list[Command]:
                return a.not_ready(agent, reason, t)

        else:
            raise _Refused(400, 'state must be "ready" or "not_ready"')
        self._control(action, agent)
        return web.json_response({"agent": self._view(agent)})

    async def wrap_up(self, request: web.Request) -> web.Response:
        principal = self._principal(request, supervisor=False)
        agent = principal.agent
        body = await _body(request, required=False)
        _fields(body, ("code",))
        code = _text(body, "code", MAX_TEXT, required=False)
        codes = self.queues.acd.config.codes
        if code is not None and codes and code not in codes:
            raise _Refused(400, f"unknown wrap-up code {code!r}: one of {', '.join(codes)}")
        self._control(lambda a, t: a.end_wrap_up(agent, t, code), agent)
        return web.json_response({"agent": self._view(agent)})

    async def agent_socket(self, request: web.Request) -> web.StreamResponse:
        principal = self._principal(request, supervisor=False, query=True)
        self._open_for_sockets()
        assert principal.session is not None
        agent = principal.agent
        view = self._view(agent)
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT, max_msg_size=MAX_WS_MESSAGE, timeout=CLOSE_TIMEOUT
        )
        await ws.prepare(request)
        client = _Client(ws, principal.session.key, agent)
        client.last, client.call = _signature(view), view["call"]
        self._agents.setdefault(agent, set()).add(client)
        self._send(client, json.dumps({"type": "state", "agent": view}))
        log.debug("agent %s: WebSocket from %s", agent, request.remote)
        return await self._serve(client)

    # -- supervisor routes -----------------------------------------------------------------

    async def agents(self, request: web.Request) -> web.Response:
        self._principal(request, supervisor=True)
        snap = self.queues.snapshot()
        return web.json_response({"agents": snap["agents"], "agent_states": snap["agent_states"]})

    async def queue_views(self, request: web.Request) -> web.Response:
        self._principal(request, supervisor=True)
        return web.json_response({"queues": self.queues.snapshot()["queues"]})

    async def force_state(self, request: web.Request) -> web.Response:
        principal = self._principal(request, supervisor=True)
        agent = request.match_info["agent"]
        acd = self.queues.acd
        if agent not in acd.config.agents:
            raise _Refused(404, f"no agent {agent!r}")
        body = await _body(request, required=True)
        _fields(body, ("state",))
        wanted = body.get("state")
        action: Callable[[Acd, float], list[Command]]
        if wanted == "not_ready":

            def action(a: Acd, t: float) -> list[Command]:
                return a.not_ready(agent, "supervisor", t, switch=True)

        elif wanted == "logout":

            def action(a: Acd, t: float) -> list[Command]:
                return a.logout(agent, t)

        elif wanted == "ready":

            def action(a: Acd, t: float) -> list[Command]:
                return a.ready(agent, t)

        else:
            raise _Refused(400, 'state must be "not_ready", "logout" or "ready"')
        self._control(action, agent)
        log.info("%s set agent %s %s", principal.name, agent, wanted)
        return web.json_response({"agent": self._view(agent)})

    async def monitor(self, request: web.Request) -> web.Response:
        """Listen to, whisper into or barge in on an agent's live call: the switch calls the
        supervisor's phone (the signed-in supervisor's SIP user, or ``phone`` with the admin
        token) and joins it to the agent's call once answered. Answers when the phone
        answered (200 with the supervisor's call id) or did not (the SIP status)."""
        principal = self._principal(request, supervisor=True)
        if self._monitor is None:
            raise _Refused(503, "this switch cannot place monitoring calls")
        body = await _body(request, required=True)
        _fields(body, ("agent", "mode", "phone"))
        agent, mode, phone = body.get("agent"), body.get("mode", "listen"), body.get("phone")
        acd = self.queues.acd
        if not isinstance(agent, str) or agent not in acd.config.agents:
            raise _Refused(404, f"no agent {agent!r}")
        if mode not in ("listen", "whisper", "barge"):
            raise _Refused(400, 'mode must be "listen", "whisper" or "barge"')
        if principal.session is not None:
            if phone is not None:
                raise _Refused(400, "phone is only for the admin token: the call goes to yours")
            phone = acd.config.agents[principal.agent].user
        elif not isinstance(phone, str) or not phone:
            raise _Refused(400, "phone (the SIP user to call) is required with the admin token")
        target = acd.config.agents[agent].user
        status, call_id = await self._monitor(phone, target, mode, f"{mode} {agent}")
        log.info("%s: %s on agent %s from %s: %d", principal.name, mode, agent, phone, status)
        if status != 200:
            reasons = {404: f"agent {agent} is on no call", 480: f"{phone} is not registered"}
            reason = reasons.get(status, f"the supervisor's phone answered {status}")
            raise _Refused(404 if status in (404, 480) else 409, reason)
        return web.json_response({"call_id": call_id, "agent": agent, "mode": mode})

    async def supervisor_socket(self, request: web.Request) -> web.StreamResponse:
        principal = self._principal(request, supervisor=True, query=True)
        self._open_for_sockets()
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT, max_msg_size=MAX_WS_MESSAGE, timeout=CLOSE_TIMEOUT
        )
        await ws.prepare(request)
        key = None if principal.session is None else principal.session.key
        client = _Client(ws, key, None)
        self._supervisors.add(client)
        snapshot = {"type": "snapshot", **self.queues.snapshot(), "events": []}
        self._send(client, json.dumps(snapshot))
        log.debug("%s: supervisor WebSocket from %s", principal.name, request.remote)
        return await self._serve(client)

    # -- acting on the ACD -----------------------------------------------------------------

    def _control(self, action: Callable[[Acd, float], list[Command]], agent: str) -> None:
        """Run an agent request; 409 when the ACD refuses it (nothing changed then)."""
        try:
            self.queues.control(action)
        except AcdError as exc:
            raise _Refused(409, str(exc)) from None
        self._changed(agent)

    def _view(self, agent: str) -> dict[str, object]:
        try:
            return self.queues.acd.agent_view(agent, self.queues.clock())
        except AcdError as exc:
            raise _Refused(404, str(exc)) from None

    def _changed(self, agent: str) -> None:
        """After a request: a change without a queue event (a pending not ready or logout)
        still reaches the agent's sockets and the supervisors."""
        clients = self._agents.get(agent)
        if clients:
            self._push_agent(agent, clients, [])
        if self._supervisors:
            self._schedule_snapshot()

    # -- pushing ---------------------------------------------------------------------------

    def _on_events(self, events: list[QueueEvent]) -> None:
        """A batch of queue events (a sink of the queue service, on the event loop)."""
        if self._closed:
            return
        if self._agents:
            self._push_agents(events)
        if self._supervisors:
            room = MAX_PUSH_EVENTS - len(self._pending)
            self._pending_dropped += max(0, len(events) - room)
            self._pending.extend(events)
            self._schedule_snapshot()

    def _push_agents(self, events: list[QueueEvent]) -> None:
        mentioned: dict[str, list[QueueEvent]] = {}
        calls: set[str] = set()
        for event in events:
            if event.call_id is not None:
                calls.add(event.call_id)
            if event.agent is not None and event.agent in self._agents:
                mentioned.setdefault(event.agent, []).append(event)
        for agent, clients in list(self._agents.items()):
            about = mentioned.get(agent)
            # an offer withdrawn (the caller hung up) frees the agent without naming them
            if about is None and not any(c.call in calls for c in clients):
                continue
            messages = [m for m in (self._agent_message(e) for e in about or ()) if m]
            self._push_agent(agent, clients, messages)

    def _agent_message(self, event: QueueEvent) -> str | None:
        if event.kind is K.OFFERED and event.call_id is not None:
            return json.dumps(self._offer(event.call_id, event.queue))
        if event.kind in _AGENT_EVENTS:
            return json.dumps({"type": "event", "event": event.to_dict()})
        return None

    def _offer(self, call_id: str, queue: str | None) -> dict[str, object]:
        """The screen pop of an offered call: what the dialplan said about the caller."""
        request = self.queues.request_of(call_id)
        if request is not None:
            return {
                "type": "offer",
                "call_id": call_id,
                "queue": queue or request.queue,
                "caller": request.caller,
                "caller_name": request.caller_name,
                "path": list(request.path),
                "screen_pop": dict(request.screen_pop),
                "data_class": request.data_class,
            }
        entry = self.queues.acd.entry(call_id)  # a callback: the caller is not on the line
        return {
            "type": "offer",
            "call_id": call_id,
            "queue": queue,
            "caller": None if entry is None else (entry.callback or entry.caller),
            "caller_name": None,
            "path": [],
            "screen_pop": {},
            "data_class": None if entry is None else entry.data_class,
        }

    def _push_agent(self, agent: str, clients: set[_Client], messages: list[str]) -> None:
        try:
            view = self.queues.acd.agent_view(agent, self.queues.clock())
        except AcdError:  # removed from the configuration and logged out
            for client in list(clients):
                self._finish(client, WSCloseCode.POLICY_VIOLATION, "the agent was removed")
            return
        signature = _signature(view)
        state: str | None = None
        for client in list(clients):
            for message in messages:
                self._send(client, message)
            if client.last != signature:
                if state is None:
                    state = json.dumps({"type": "state", "agent": view})
                self._send(client, state)
                client.last, client.call = signature, view["call"]

    def _schedule_snapshot(self) -> None:
        if self._push is not None or self._closed:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_push + SNAPSHOT_INTERVAL - loop.time())
        self._push = loop.call_later(delay, self._push_snapshot)

    def _push_snapshot(self) -> None:
        self._push = None
        if not self._supervisors:
            self._pending.clear()
            self._pending_dropped = 0
            return
        self._last_push = asyncio.get_running_loop().time()
        events = [event.to_dict() for event in self._pending]
        dropped, self._pending_dropped = self._pending_dropped, 0
        self._pending.clear()
        message = {"type": "snapshot", **self.queues.snapshot(), "events": events}
        if dropped:
            message["events_dropped"] = dropped
        text = json.dumps(message)
        for client in list(self._supervisors):
            self._send(client, text)

    # -- sockets ---------------------------------------------------------------------------

    def _open_for_sockets(self) -> None:
        if self._closed:
            raise _Refused(503, "the switch is stopping")
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _serve(self, client: _Client) -> web.WebSocketResponse:
        """Run the socket until either side closes it; incoming messages get an error."""
        client.writer = asyncio.get_running_loop().create_task(self._write(client))
        try:
            async for message in client.ws:
                if message.type is WSMsgType.TEXT:
                    self._send(
                        client,
                        json.dumps(
                            {"type": "error", "error": "this socket only pushes; use the HTTP API"}
                        ),
                    )
        finally:
            self._forget(client)
            writer = client.writer
            if client.closing is not None and not writer.done():
                await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return client.ws

    async def _write(self, client: _Client) -> None:
        try:
            while True:
                text = await client.queue.get()
                if text is None:
                    code, reason = client.closing or (WSCloseCode.OK, "")
                    await client.ws.close(code=code, message=reason.encode())
                    return
                await client.ws.send_str(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connection broke: the reading side ends too
            log.debug("WebSocket send failed: %s", exc)
            self._forget(client)

    def _send(self, client: _Client, text: str) -> None:
        """Queue a message; a client whose queue is full is dropped (never waited for)."""
        if client.dead or client.closing is not None:
            return
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            who = f"agent {client.agent}" if client.agent else "supervisor"
            log.warning("%s WebSocket dropped: %d messages not read", who, SEND_QUEUE)
            self._drop(client, WSCloseCode.TRY_AGAIN_LATER, "too slow: messages were not read")

    def _finish(self, client: _Client, code: int, reason: str) -> None:
        """Close after the messages already queued."""
        if client.dead or client.closing is not None:
            return
        self._forget(client)
        client.closing = (code, reason)
        try:
            client.queue.put_nowait(None)
        except asyncio.QueueFull:
            self._drop(client, code, reason)

    def _drop(self, client: _Client, code: int, reason: str) -> None:
        """Close now: what is queued is not sent (the writer may be stuck on a full socket)."""
        self._forget(client)
        client.dead = True
        if client.writer is not None:
            client.writer.cancel()
        task = asyncio.get_running_loop().create_task(self._close(client.ws, code, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT)

    def _forget(self, client: _Client) -> None:
        self._supervisors.discard(client)
        if client.agent is not None:
            clients = self._agents.get(client.agent)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self._agents[client.agent]

    def _sockets(self) -> list[_Client]:
        out = list(self._supervisors)
        for clients in self._agents.values():
            out.extend(clients)
        return out

    def _close_sockets(self, key: bytes, code: int, reason: str) -> None:
        for client in self._sockets():
            if client.key == key:
                self._finish(client, code, reason)

    def _revoke(self, session: Session, why: str) -> None:
        self.tokens.revoke(session.key)
        self._close_sockets(session.key, WSCloseCode.OK, why)

    async def _sweep(self) -> None:
        """Close the sockets of tokens that expired, and forget those tokens."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self.clock()
            self.tokens.purge(now)
            for client in self._sockets():
                if client.key is not None and not self.tokens.valid(client.key, now):
                    self._finish(client, WSCloseCode.POLICY_VIOLATION, "the token expired")

    # -- shutdown --------------------------------------------------------------------------

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every WebSocket (1001, going away) and stop pushing; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError):
            self.queues.sinks.remove(self._on_events)
        if self._push is not None:
            self._push.cancel()
            self._push = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        clients = self._sockets()
        for client in clients:
            self._finish(client, WSCloseCode.GOING_AWAY, "the switch is stopping")
        writers = [c.writer for c in clients if c.writer is not None]
        pending = writers + list(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT + 1)


def add_agent_routes(
    api: web.Application,
    *,
    queues: QueueService,
    check_password: Callable[[str, str], bool],
    admin_token: str | None,
    clock: Callable[[], float] = time.time,
    token_ttl: float = 12 * 3600,
    monitor: Monitoring | None = None,
) -> AgentApi:
    """Add the agent and supervisor routes to the ``/api/`` sub-application ``api``.

    ``check_password(sip_user, password)`` checks an agent's sign-in against the password of
    the agent's SIP user; ``admin_token`` (the API token) opens the supervisor routes too;
    ``clock`` gives Unix seconds for the tokens' lifetime (``token_ttl`` seconds) and the
    sign-in failure window. Call :meth:`AgentApi.close` when stopping (it also runs on the
    application's shutdown)."""
    agent_api = AgentApi(
        queues,
        check_password=check_password,
        admin_token=admin_token,
        clock=clock,
        token_ttl=token_ttl,
        monitor=monitor,
    )
    agent_api.add_routes(api)
    return agent_api
