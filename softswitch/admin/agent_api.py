"""Agent control (CTI) and the supervisors' API: HTTP and WebSocket routes under ``/api/``.

Added to the API's sub-application by :func:`add_agent_routes`. These routes authenticate on
their own (the ``/api/`` guard lets ``/api/agent/`` and ``/api/supervisor/`` through): every
request carries a bearer token (RFC 6750 §2.1) obtained by signing in, or, for the supervisor
routes only, the admin API token (``http.api_token``).

Agent routes. An agent token reaches only its own agent's data: the agent is the one the token
was issued to, so no agent route takes an agent id (there is none in the URL, and a body that
names one is refused as an unknown field):

* ``POST /api/agent/login`` ``{"agent": id, "password": p, "totp": code}``: the password of
  the agent's SIP user (``check_password(user, password)``) and, when a second factor applies,
  the 6-digit one-time code of the agent's authenticator app (RFC 6238, 30 s steps, one step
  of drift either way; a code of a step already used is refused, §5.2). 200 with ``token``,
  ``token_type``, ``expires`` (Unix seconds), ``agent`` (the agent's view), ``roles``,
  ``reasons`` (the not-ready reasons to choose from), ``codes`` (wrap-up codes; empty: any),
  ``sip`` (below), ``vpn_address`` (the switch's address in the agents' VPN, or null) and
  ``idle_signout`` (seconds without calls or input after which the client signs out; 0:
  never). A logged-out agent is logged in to the ACD (attendance starts; the agent is not
  ready, reason ``login``).

  ``sip`` (null when the switch issues none): ``{"username", "password", "extension",
  "domain", "server", "port", "transport", "expires", "valid_until"}``, SIP digest credentials
  for this session only (:mod:`softswitch.security.session_sip`): the softphone registers as
  ``extension`` with digest user ``username`` (``1001.k3vq7m2a``, distinct per session), at
  ``server`` (the switch's VPN address when configured); ``expires`` is the REGISTER interval
  to ask for (seconds), ``valid_until`` the end of the credentials, the token's expiry. They
  are revoked at sign-out, when the token expires, or when a later sign-in pushes the token
  out; a restart of the switch forgets them.

  Second factor (``totp``): "off" asks no code; "optional" asks one of agents who enrolled a
  secret (``softswitch agent totp ID``); "required" also refuses agents who did not, with 403
  ``no second factor enrolled for this agent; an administrator enrols one with softswitch
  agent totp ID``. The secret is read from the security store at each sign-in, so an
  enrolment takes effect without a reload.

  Failures: an unknown agent, a wrong password and a wrong, reused or missing code all get the
  same 401 ``unknown agent or wrong password`` (the log and the audit trail say which factor
  failed; never the password or the code). After :data:`MAX_FAILURES` failures within
  :data:`FAILURE_WINDOW` seconds for one agent id or from one client address, sign-ins are
  refused with 429 and ``Retry-After`` (RFC 6585 §4) until the oldest failure is that old.
  Lockout (:mod:`softswitch.security.lockout`): after ``lockout_failures`` failed sign-ins in a
  row (a wrong password or code) a configured agent's account is locked for ``lockout_time``
  seconds (0: until ``softswitch agent unlock ID``); the failing sign-in and every sign-in
  while locked, even with the right password, get 403 ``{"error": "account locked until <ISO
  time> after N failed sign-ins; an administrator can unlock it (softswitch agent unlock ID)",
  "locked_until": unix seconds or null}``. A success resets the count. The lock is kept in the
  security store, so it survives a restart. Order of the checks: the client address's 429,
  the lock's 403, the agent's 429, the password, the code.
* ``POST /api/agent/logout``: logs the agent out of the ACD (after the call in progress, if
  any: then ``"pending": true``), revokes the token (its WebSockets close) and the session's
  SIP credentials, and lowers the agent's hand.
* ``GET /api/agent/me``: the agent's view, roles, reasons and codes.
* ``POST /api/agent/state`` ``{"state": "ready" | "not_ready", "reason": r}`` (a reason from
  the list is required with ``not_ready``): 200 with the view (a not-ready asked for during a
  call shows as ``pending``); 400 for a bad body or an unknown reason; 409 when the change does
  not apply now (e.g. ready while on a call or logged out).
* ``POST /api/agent/wrap-up`` ``{"code": c, "note": n}`` (both optional): ends the wrap-up
  with the disposition code, and keeps the note (at most :data:`MAX_NOTE` characters) with
  the call's detail record (the automatic call log; ``save_note(call_id, note)``); 400 for a
  code not in the list, a note too long, or a note when the switch keeps none; 409 when not
  in wrap-up.
* ``GET /api/agent/stats``: the agent's figures since the switch's local midnight, from the
  queue log (:func:`softswitch.acd.day_figures.day_figures`): ``{"calls", "average_handle",
  "ready_time", "break_time", "since", "until"}`` (seconds); 503 without a queue log.
* ``POST /api/agent/audit`` ``{"action": "screen_pop_viewed", "call_id": id}``: the agent
  viewed the screen pop of a call; written to the audit trail with the agent, the call, the
  time and the client address. Only a call offered to this agent since local midnight may be
  reported (the offers seen since the switch started, else the queue log): 404 for any other,
  so an agent cannot write rows about calls they never had. 400 for another action or no call
  id, 503 without an audit trail, 500 when the write fails.
* ``POST /api/agent/help`` ``{"conference": false | true}`` raises the agent's hand: the
  supervisors' WebSockets get ``{"type": "help", "agent", "call_id", "time"}`` and their
  snapshots list the raised hands (``hands``) until the agent's call ends, the agent signs
  out, or ``{"lower": true}`` lowers it. With ``"conference": true`` during a call, the first
  supervisor (configuration order) who is logged in and not with a call (ready, not ready or in
  wrap-up) is called and joins the call in barge mode (as ``/api/supervisor/monitor``): 200
  with ``supervisor`` and ``conference_call_id``; 409 when there is no call or no free
  supervisor (the hand is not raised), or when the supervisor's phone did not answer (the hand
  stays raised); 503 when the switch cannot place such calls.
* ``GET /api/agent/ws``: a WebSocket (the token in ``Authorization`` or, as browsers cannot set
  headers on a WebSocket, in ``?token=``). It pushes JSON text messages:
  ``{"type": "state", "agent": view}`` on connect and whenever the agent's state changes;
  ``{"type": "offer", "call_id", "queue", "caller", "caller_name", "path", "screen_pop",
  "data_class"}`` when a call is offered to the agent (the screen pop). ``screen_pop`` is a
  list of ``{"name", "value", "masked"}`` in display order
  (:func:`softswitch.apps.screen_pop.screen_pop_fields`): a sensitive field's value is
  ``****`` (``masked`` true) unless the agent's location is among the queue's
  ``personal_locations``, so a masked value never leaves the switch; ``{"type": "event",
  "event": queue event}`` for ``connected``, ``missed``, ``completed_*``, ``transferred`` and
  ``wrap_up``. The socket only pushes: requests go to the HTTP routes.

Supervisor routes (a token of an agent with the ``supervisor`` role, or the admin token; an
agent token without the role gets 403):

* ``GET /api/supervisor/agents``: every agent's live view, the counts per state and the
  raised hands (``hands``: ``{"agent", "call_id", "time", "conference"}``).
* ``GET /api/supervisor/queues``: every queue with its callers and the last hour's figures.
* ``POST /api/supervisor/agents/{id}/state`` ``{"state": "not_ready" | "logout" | "ready"}``:
  forces the agent's state (not ready with reason ``supervisor``; during a call, after it).
  404 for an unknown agent, 409 when the change does not apply. Audited (``state_forced``).
* ``POST /api/supervisor/monitor`` ``{"agent", "mode": "listen" | "whisper" | "barge",
  "phone"}``: calls the supervisor's phone into the agent's call. Audited (``monitor``).
* ``GET /api/supervisor/ws``: a WebSocket pushing ``{"type": "snapshot", "queues", "agents",
  "agent_states", "hands", "events"}`` on connect and after queue events, at most
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

Audit trail (the security store, ``SignInStore``; none without a store): ``signin``,
``signin_failed`` (``{"factor": "password" | "totp wrong" | "totp reused" | "totp missing" |
"unknown agent"}``), ``signin_refused`` (``{"reason": "locked" | "no_totp"}``),
``account_locked``, ``signout``, ``screen_pop_viewed``, ``help_raised``, ``help_lowered``,
``state_forced`` and ``monitor``, each with the actor (agent id or ``admin``), the subject (an
agent id or a call id), the client address and the time. The command line adds
``totp_enrolled`` and ``account_unlocked`` (:mod:`softswitch.admin.agent_cli`); the admin
reads it at ``GET /api/audit`` (:mod:`softswitch.admin.audit_api`).

Tokens and session SIP credentials live in memory (:mod:`softswitch.admin.tokens`): a restart
signs everyone out. Second-factor secrets and locks live in the security store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from softswitch.acd.agent import AgentState
from softswitch.acd.day_figures import day_figures
from softswitch.acd.engine import Acd, AcdError, Command
from softswitch.acd.events import QueueEvent, QueueEventKind
from softswitch.admin.http import _error
from softswitch.admin.tokens import Session, TokenRejected, TokensFull, TokenStore
from softswitch.apps.queueing import QueueService
from softswitch.apps.screen_pop import screen_pop_fields
from softswitch.security import totp as totp_codes
from softswitch.security.lockout import Lockout, LockState
from softswitch.security.session_sip import CredentialsFull, SessionCredentials
from softswitch.security.totp import Enrolment

__all__ = ["AgentApi", "FailureLimit", "SignInStore", "add_agent_routes"]

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
#: the longest one-time code field accepted (a code is 6 digits; more is a bad body)
MAX_CODE = 16
#: the longest call id accepted in an audit report
MAX_CALL_ID = 256
#: calls remembered per agent as offered (for the screen-pop audit)
MAX_OFFERS_KEPT = 1000
#: seconds asked for in REGISTER with session credentials, unless ``sip_info`` says
REGISTER_EXPIRES = 300
#: what an agent may report to the audit trail
AGENT_AUDIT_ACTIONS = ("screen_pop_viewed",)
TOTP_MODES = ("required", "optional", "off")

_REALM = "softswitch"
_NO_TOKEN = "missing Authorization: Bearer token"
_BAD_LOGIN = "unknown agent or wrong password"
_NO_SECOND_FACTOR = (
    "no second factor enrolled for this agent; an administrator enrols one with "
    "softswitch agent totp {agent}"
)

K = QueueEventKind
#: queue events that end an agent's call (a raised hand about it comes down)
_CALL_ENDS = frozenset({K.COMPLETED_CALLER, K.COMPLETED_AGENT, K.TRANSFERRED, K.ABANDONED})
#: states in which a supervisor is signed in and free to join a call
_FREE = frozenset({AgentState.READY, AgentState.NOT_READY, AgentState.WRAP_UP})
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

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(reason)
        if extra:
            self.response = web.json_response(
                {"error": reason, **extra}, status=status, headers=headers
            )
        else:
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

#: ``(agent, since) -> the agent's queue events since then`` (the queue log)
AgentEvents = Callable[[str, float], Awaitable[Sequence[QueueEvent]]]
#: keeps an agent's wrap-up note with the call's record (call id, note)
SaveNote = Callable[[str, str], None]
#: the longest wrap-up note accepted, in characters
MAX_NOTE = 4000


class SignInStore(Protocol):
    """What the sign-in and the audit trail need of the security store (the switch's
    ``softswitch.storage.security_store.SqliteSecurityStore``; the Protocols
    ``SecretStore`` and ``AuditStore`` of ``softswitch.storage.protocols``). Every read is
    fresh: a secret enrolled or an account unlocked from the command line counts at once."""

    async def secret(self, agent: str) -> Enrolment | None: ...

    async def accept_step(self, agent: str, step: int) -> bool: ...

    async def lock_state(self, agent: str) -> LockState: ...

    async def change_lock(
        self, agent: str, change: Callable[[LockState], LockState]
    ) -> LockState: ...

    async def add_audit(
        self,
        *,
        time: float,
        actor: str,
        action: str,
        subject: str | None = None,
        address: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None: ...


def local_midnight(now: float) -> float:
    """The Unix time of the switch's local midnight that began the day of ``now``."""
    local = datetime.fromtimestamp(now).astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


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

    @property
    def actor(self) -> str:
        """Who acted, for the audit trail: the agent id, or ``admin``."""
        return "admin" if self.session is None else self.session.agent


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
        totp: Literal["required", "optional", "off"] = "off",
        lockout_failures: int = 0,
        lockout_time: float = 0.0,
        idle_signout: float = 0.0,
        store: SignInStore | None = None,
        session_sip: SessionCredentials | None = None,
        sip_info: Callable[[str], Mapping[str, object]] | None = None,
        vpn_address: str | None = None,
        agent_events: AgentEvents | None = None,
        save_note: SaveNote | None = None,
    ) -> None:
        if admin_token is not None and not admin_token:
            raise ValueError("the admin token must not be empty (use None for no token)")
        if totp not in TOTP_MODES:
            raise ValueError(f"totp must be one of {', '.join(TOTP_MODES)}, not {totp!r}")
        if store is None and (totp != "off" or lockout_failures > 0):
            raise ValueError("a second factor or a lockout needs the security store")
        if idle_signout < 0:
            raise ValueError("idle_signout must not be negative")
        self.queues = queues
        self.clock = clock
        self.tokens = TokenStore(token_ttl)
        self.failures = FailureLimit(MAX_FAILURES, FAILURE_WINDOW)
        self.lockout = Lockout(lockout_failures, lockout_time)
        self.totp = totp
        self.idle_signout = idle_signout
        self.vpn_address = vpn_address
        self.session_sip = session_sip
        self._store = store
        self._sip_info = sip_info
        self._agent_events = agent_events
        self._save_note = save_note
        self._sip_names: dict[bytes, str] = {}  # token digest -> its session SIP username
        #: calls offered to each agent (call id -> time, queue), oldest first, bounded
        self._offers: dict[str, OrderedDict[str, tuple[float, str | None]]] = {}
        #: raised hands: agent -> {"agent", "call_id", "time", "conference"}
        self._hands: dict[str, dict[str, object]] = {}
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
        add.add_get("/agent/stats", self._wrap(self.stats))
        add.add_post("/agent/audit", self._wrap(self.audit))
        add.add_post("/agent/help", self._wrap(self.help))
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
        _fields(body, ("agent", "password", "totp"))
        agent = _text(body, "agent", MAX_ID)
        password = _text(body, "password", MAX_PASSWORD)
        assert agent is not None and password is not None
        code = body.get("totp")
        if code is not None and (not isinstance(code, str) or len(code) > MAX_CODE):
            raise _Refused(400, f"totp must be a text of at most {MAX_CODE} characters")
        code = code.strip() if code else None
        now = self.clock()
        remote = request.remote or "unknown"
        agent_key, remote_key = f"agent:{agent}", f"ip:{remote}"
        self._rate_limited(agent, remote, self.failures.retry_after(remote_key, now))
        config = self.queues.acd.config.agents.get(agent)
        lock = LockState()
        if config is not None and self.lockout.enabled:
            lock = await self._lock_state(agent)
            if self.lockout.locked(lock, now):
                log.warning("sign-in of agent %s from %s refused: account locked", agent, remote)
                await self._audit(agent, "signin_refused", agent, remote, {"reason": "locked"})
                raise self._locked(lock, agent)
        self._rate_limited(agent, remote, self.failures.retry_after(agent_key, now))
        ok = False
        if config is not None:
            try:
                ok = bool(self._check_password(config.user, password))
            except Exception:
                log.exception("checking the password of agent %r failed", agent)
                raise _Refused(500, "checking the password failed (see the log)") from None
        if not ok:
            await self._failed(agent, remote, now, known=config is not None, factor="password")
        assert config is not None
        if self.totp != "off":
            await self._second_factor(agent, remote, now, code)
        self.failures.clear(agent_key)
        if not lock.clear:
            await self._change_lock(agent, self.lockout.succeeded)
        try:
            token, session, dropped = self.tokens.issue(agent, now)
        except TokensFull as exc:
            log.error("sign-in of agent %r refused: %s", agent, exc)
            raise _Refused(503, str(exc)) from None
        for old in dropped:
            self._end_session(old, WSCloseCode.POLICY_VIOLATION, "signed in too often")
        sip = self._session_account(session, config.user, now)
        acd = self.queues.acd
        if acd.agent(agent).state is AgentState.LOGGED_OUT:
            with contextlib.suppress(AcdError):
                self.queues.control(lambda a, t: a.login(agent, t))
            self._changed(agent)
        log.info("agent %s signed in from %s", agent, remote)
        details: dict[str, object] = {"second_factor": self.totp != "off" and code is not None}
        if sip is not None:
            details["sip_username"] = sip["username"]
        await self._audit(agent, "signin", agent, remote, details)
        return web.json_response(
            {
                "token": token,
                "token_type": "Bearer",
                "expires": session.expires,
                "agent": self._view(agent),
                "roles": sorted(config.roles),
                "reasons": list(acd.config.reasons),
                "codes": list(acd.config.codes),
                "sip": sip,
                "vpn_address": self.vpn_address,
                "idle_signout": self.idle_signout,
            },
            headers={"Cache-Control": "no-store"},  # a token is never cached (RFC 6749 §5.1)
        )

    @staticmethod
    def _rate_limited(agent: str, remote: str, wait: float) -> None:
        if wait <= 0:
            return
        seconds = max(1, math.ceil(wait))
        log.warning("sign-in of agent %r from %s refused: too many failures", agent, remote)
        raise _Refused(
            429,
            f"too many failed sign-ins for this agent or from this address; "
            f"try again in {seconds} s",
            {"Retry-After": str(seconds)},
        )

    def _locked(self, lock: LockState, agent: str) -> _Refused:
        """The 403 of a locked account, with ``locked_until`` (None: until unlocked)."""
        message = self.lockout.message(lock, agent)
        return _Refused(403, message, extra={"locked_until": lock.locked_until})

    async def _second_factor(self, agent: str, remote: str, now: float, code: str | None) -> None:
        """Check the one-time code of an agent whose password was right (RFC 6238): a code
        of a step already used is refused (§5.2); a wrong, reused or missing code is a failed
        sign-in like a wrong password, with the same answer."""
        assert self._store is not None
        try:
            enrolment = await self._store.secret(agent)
        except Exception:
            log.exception("reading the second factor of agent %r failed", agent)
            raise _Refused(500, "reading the security store failed (see the log)") from None
        if enrolment is None:
            if self.totp == "optional":
                return
            log.warning("sign-in of agent %s from %s refused: no second factor", agent, remote)
            await self._audit(agent, "signin_refused", agent, remote, {"reason": "no_totp"})
            raise _Refused(403, _NO_SECOND_FACTOR.format(agent=agent))
        if code is None:
            await self._failed(agent, remote, now, known=True, factor="totp missing")
        assert code is not None
        step = totp_codes.verify(enrolment.secret, code, now, last_step=enrolment.last_step)
        if step is None:
            used = totp_codes.verify(enrolment.secret, code, now, last_step=None) is not None
            factor = "totp reused" if used else "totp wrong"
            await self._failed(agent, remote, now, known=True, factor=factor)
        assert step is not None
        try:
            accepted = await self._store.accept_step(agent, step)
        except Exception:
            log.exception("recording the code's step of agent %r failed", agent)
            raise _Refused(500, "writing the security store failed (see the log)") from None
        if not accepted:  # another sign-in used the same code a moment ago
            await self._failed(agent, remote, now, known=True, factor="totp reused")

    async def _failed(
        self, agent: str, remote: str, now: float, *, known: bool, factor: str
    ) -> None:
        """A failed sign-in: counted by the rate limit and, for a known agent, by the
        lockout; logged and audited with the factor that failed, answered 401 without it (or
        403 when this failure locks the account). Always raises."""
        self.failures.record(f"agent:{agent}", now)
        self.failures.record(f"ip:{remote}", now)
        why = factor if known else "unknown agent"
        log.warning("sign-in of agent %r from %s failed: %s", agent, remote, why)
        await self._audit(agent, "signin_failed", agent, remote, {"factor": why})
        if known and self.lockout.enabled:
            lock = await self._change_lock(agent, lambda state: self.lockout.failed(state, now))
            if self.lockout.locked(lock, now):
                log.warning(
                    "agent %s locked after %d failed sign-ins (last from %s)",
                    agent,
                    lock.failures,
                    remote,
                )
                details = {"failures": lock.failures, "locked_until": lock.locked_until}
                await self._audit(agent, "account_locked", agent, remote, details)
                raise self._locked(lock, agent)
        raise _Refused(401, _BAD_LOGIN)

    async def _lock_state(self, agent: str) -> LockState:
        assert self._store is not None
        try:
            return await self._store.lock_state(agent)
        except Exception:
            log.exception("reading the lock of agent %r failed", agent)
            raise _Refused(500, "reading the security store failed (see the log)") from None

    async def _change_lock(self, agent: str, change: Callable[[LockState], LockState]) -> LockState:
        assert self._store is not None
        try:
            return await self._store.change_lock(agent, change)
        except Exception:
            log.exception("writing the lock of agent %r failed", agent)
            raise _Refused(500, "writing the security store failed (see the log)") from None

    def _session_account(self, session: Session, user: str, now: float) -> dict[str, object] | None:
        """SIP digest credentials for this session only (``None`` without session
        credentials): valid until the token expires, revoked with it."""
        if self.session_sip is None:
            return None
        try:
            username, password = self.session_sip.issue(user, now, session.expires - now)
        except CredentialsFull as exc:
            self.tokens.revoke(session.key)
            log.error("sign-in of SIP user %s refused: %s", user, exc)
            raise _Refused(503, str(exc)) from None
        self._sip_names[session.key] = username
        info: Mapping[str, object] = self._sip_info(user) if self._sip_info is not None else {}
        return {
            "username": username,
            "password": password,
            "extension": user,
            "domain": info.get("domain"),
            "server": info.get("server"),
            "port": info.get("port"),
            "transport": info.get("transport"),
            "expires": info.get("expires", REGISTER_EXPIRES),
            "valid_until": session.expires,
        }

    async def _audit(
        self,
        actor: str,
        action: str,
        subject: str | None = None,
        address: str | None = None,
        details: Mapping[str, object] | None = None,
        *,
        required: bool = False,
    ) -> float:
        """Append to the audit trail; its time. A failed write is logged (and, when
        ``required``, answered 500: the request was only about the record)."""
        now = self.clock()
        if self._store is None:
            if required:
                raise _Refused(503, "this switch keeps no audit trail")
            return now
        try:
            await self._store.add_audit(
                time=now,
                actor=actor,
                action=action,
                subject=subject,
                address=address,
                details=details,
            )
        except Exception:
            log.exception("writing the audit trail (%s by %s) failed", action, actor)
            if required:
                raise _Refused(500, "writing the audit trail failed (see the log)") from None
        return now

    async def logout(self, request: web.Request) -> web.Response:
        principal = self._principal(request, supervisor=False)
        agent = principal.agent
        with contextlib.suppress(AcdError):  # already logged out: only the token goes
            self.queues.control(lambda a, t: a.logout(agent, t))
        view = self._view(agent)
        self._changed(agent)
        assert principal.session is not None
        self._revoke(principal.session, "signed out")
        self._lower_hand(agent)
        log.info("agent %s signed out%s", agent, " after the call" if view["pending"] else "")
        await self._audit(
            agent, "signout", agent, request.remote, {"pending": view["pending"] == "logout"}
        )
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
        _fields(body, ("code", "note"))
        code = _text(body, "code", MAX_TEXT, required=False)
        note = _text(body, "note", MAX_NOTE, required=False)
        codes = self.queues.acd.config.codes
        if code is not None and codes and code not in codes:
            raise _Refused(400, f"unknown wrap-up code {code!r}: one of {', '.join(codes)}")
        if note is not None and note.strip() and self._save_note is None:
            raise _Refused(400, "this switch keeps no wrap-up notes")
        try:
            call = self.queues.acd.wrap_up_call(agent)
        except AcdError:
            call = None
        self._control(lambda a, t: a.end_wrap_up(agent, t, code), agent)
        if note is not None and note.strip() and call is not None and self._save_note:
            self._save_note(call, note.strip())
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

    async def stats(self, request: web.Request) -> web.Response:
        """The agent's own figures since the switch's local midnight (the queue log)."""
        principal = self._principal(request, supervisor=False)
        if self._agent_events is None:
            raise _Refused(503, "this switch keeps no queue log to count from")
        agent = principal.agent
        now = self.clock()
        since = local_midnight(now)
        try:
            events = await self._agent_events(agent, since)
        except Exception:
            log.exception("reading the queue log of agent %s failed", agent)
            raise _Refused(500, "reading the queue log failed (see the log)") from None
        try:  # what the log cannot tell: whether the open after-call time is wrap-up
            wrapping_up = self.queues.acd.agent(agent).state is AgentState.WRAP_UP
        except AcdError:
            wrapping_up = False
        figures = day_figures(events, agent, since=since, now=now, wrapping_up=wrapping_up)
        return web.json_response({**figures.to_dict(), "since": since, "until": now})

    async def audit(self, request: web.Request) -> web.Response:
        """An agent's report for the audit trail: ``screen_pop_viewed`` of a call offered to
        the agent today (404 otherwise: an agent cannot write rows about other calls)."""
        principal = self._principal(request, supervisor=False)
        agent = principal.agent
        body = await _body(request, required=True)
        _fields(body, ("action", "call_id"))
        action = body.get("action")
        if action not in AGENT_AUDIT_ACTIONS:
            shown = repr(action) if isinstance(action, str) else "missing"
            raise _Refused(400, f"action {shown}: one of {', '.join(AGENT_AUDIT_ACTIONS)}")
        call_id = _text(body, "call_id", MAX_CALL_ID)
        assert call_id is not None
        if self._store is None:
            raise _Refused(503, "this switch keeps no audit trail")
        now = self.clock()
        offer = await self._offered_today(agent, call_id, now)
        if offer is None:
            raise _Refused(404, f"call {call_id} was not offered to agent {agent} today")
        when = await self._audit(
            agent, str(action), call_id, request.remote, {"queue": offer[1]}, required=True
        )
        return web.json_response(
            {"recorded": True, "action": action, "call_id": call_id, "time": when}
        )

    async def _offered_today(
        self, agent: str, call_id: str, now: float
    ) -> tuple[float, str | None] | None:
        """When and from which queue ``call_id`` was offered to ``agent`` since midnight:
        the offers seen since the switch started, else the queue log."""
        midnight = local_midnight(now)
        offers = self._offers.get(agent)
        seen = None if offers is None else offers.get(call_id)
        if seen is not None:
            return seen if seen[0] >= midnight else None
        if self._agent_events is None:
            return None
        try:
            events = await self._agent_events(agent, midnight)
        except Exception:
            log.exception("reading the queue log of agent %s failed", agent)
            raise _Refused(500, "reading the queue log failed (see the log)") from None
        for event in events:
            if (
                event.kind is K.OFFERED
                and event.call_id == call_id
                and event.agent == agent
                and event.time >= midnight
            ):
                return event.time, event.queue
        return None

    async def help(self, request: web.Request) -> web.Response:
        """Raise the agent's hand (``{"conference": bool}``) or lower it (``{"lower":
        true}``); with ``conference`` during a call, a free supervisor is called and barges in.
        """
        principal = self._principal(request, supervisor=False)
        agent = principal.agent
        body = await _body(request, required=False)
        _fields(body, ("conference", "lower"))
        lower, conference = body.get("lower", False), body.get("conference", False)
        if not isinstance(lower, bool) or not isinstance(conference, bool):
            raise _Refused(400, "conference and lower must be true or false")
        if lower:
            if conference:
                raise _Refused(400, "lower goes alone")
            was = self._lower_hand(agent)
            if was:
                await self._audit(agent, "help_lowered", agent, request.remote)
            return web.json_response({"raised": False, "was_raised": was})
        view = self._view(agent)
        call = view["call"] if isinstance(view["call"], str) else None
        supervisor: str | None = None
        if conference:
            if self._monitor is None:
                raise _Refused(503, "this switch cannot place monitoring calls")
            if call is None or view["state"] != AgentState.ON_CALL.value:
                raise _Refused(409, "no call in progress to bring a supervisor into")
            supervisor = self._free_supervisor(agent)
            if supervisor is None:
                raise _Refused(409, "no supervisor is signed in and free to join the call")
        now = self.clock()
        hand: dict[str, object] = {
            "agent": agent,
            "call_id": call,
            "time": now,
            "conference": conference,
        }
        self._hands[agent] = hand
        message = json.dumps({"type": "help", "agent": agent, "call_id": call, "time": now})
        for client in list(self._supervisors):
            self._send(client, message)
        self._schedule_snapshot()
        log.info("agent %s raised a hand%s", agent, f" for call {call}" if call else "")
        answer: dict[str, object] = {"raised": True, "call_id": call, "time": now}
        details: dict[str, object] = {"conference": conference, "call_id": call}
        refused: _Refused | None = None
        if supervisor is not None:
            assert self._monitor is not None and call is not None
            agents = self.queues.acd.config.agents
            status, joined = await self._monitor(
                agents[supervisor].user, agents[agent].user, "barge", f"help {agent}"
            )
            details.update(supervisor=supervisor, status=status)
            log.info("help for agent %s: supervisor %s called: %d", agent, supervisor, status)
            if status == 200:
                answer.update(supervisor=supervisor, conference_call_id=joined)
            else:
                reasons = {
                    404: "the call ended",
                    480: f"supervisor {supervisor}'s phone is not registered",
                }
                reason = reasons.get(status, f"supervisor {supervisor}'s phone answered {status}")
                refused = _Refused(409, f"{reason}; the hand stays raised")
        await self._audit(agent, "help_raised", call or agent, request.remote, details)
        if refused is not None:
            raise refused
        return web.json_response(answer)

    def _free_supervisor(self, agent: str) -> str | None:
        """The first supervisor (in configuration order) other than ``agent`` who is logged
        in and not with a call (ready, not ready or in wrap-up)."""
        acd = self.queues.acd
        for other, config in acd.config.agents.items():
            if other == agent or "supervisor" not in config.roles:
                continue
            with contextlib.suppress(AcdError):
                if acd.agent(other).state in _FREE:
                    return other
        return None

    def _lower_hand(self, agent: str) -> bool:
        if self._hands.pop(agent, None) is None:
            return False
        if self._supervisors:
            self._schedule_snapshot()
        return True

    def _snapshot(self) -> dict[str, object]:
        """The supervisors' view: the queue service's snapshot and the raised hands."""
        return {**self.queues.snapshot(), "hands": list(self._hands.values())}

    # -- supervisor routes -----------------------------------------------------------------

    async def agents(self, request: web.Request) -> web.Response:
        self._principal(request, supervisor=True)
        snap = self._snapshot()
        return web.json_response(
            {"agents": snap["agents"], "agent_states": snap["agent_states"], "hands": snap["hands"]}
        )

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
        await self._audit(principal.actor, "state_forced", agent, request.remote, {"state": wanted})
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
        await self._audit(
            principal.actor,
            "monitor",
            agent,
            request.remote,
            {"mode": mode, "phone": phone, "status": status, "call_id": call_id},
        )
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
        snapshot = {"type": "snapshot", **self._snapshot(), "events": []}
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
        self._follow(events)
        if self._agents:
            self._push_agents(events)
        if self._supervisors:
            room = MAX_PUSH_EVENTS - len(self._pending)
            self._pending_dropped += max(0, len(events) - room)
            self._pending.extend(events)
            self._schedule_snapshot()

    def _follow(self, events: list[QueueEvent]) -> None:
        """Remember the calls offered to each agent (for the screen-pop audit) and lower the
        hands whose call ended or whose agent logged out."""
        for event in events:
            agent = event.agent
            if event.kind is K.OFFERED and agent is not None and event.call_id is not None:
                offers = self._offers.setdefault(agent, OrderedDict())
                offers[event.call_id] = (event.time, event.queue)
                offers.move_to_end(event.call_id)
                while len(offers) > MAX_OFFERS_KEPT:
                    offers.popitem(last=False)
            if not self._hands:
                continue
            if event.kind is K.LOGOUT and agent is not None:
                self._lower_hand(agent)
            elif event.kind in _CALL_ENDS and event.call_id is not None:
                for raised, hand in list(self._hands.items()):
                    if hand["call_id"] == event.call_id:
                        self._lower_hand(raised)

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
        if event.kind is K.OFFERED and event.call_id is not None and event.agent is not None:
            return json.dumps(self._offer(event.call_id, event.queue, event.agent))
        if event.kind in _AGENT_EVENTS:
            return json.dumps({"type": "event", "event": event.to_dict()})
        return None

    def _offer(self, call_id: str, queue: str | None, agent: str) -> dict[str, object]:
        """The screen pop of a call offered to ``agent``: what the dialplan said about the
        caller, sensitive fields masked unless the agent's location is among the queue's
        ``personal_locations`` (:func:`~softswitch.apps.screen_pop.screen_pop_fields`)."""
        request = self.queues.request_of(call_id)
        if request is not None:
            acd = self.queues.acd
            config = acd.config.agents.get(agent)
            location = config.location if config is not None else ""
            allowed = acd.queue_config(queue or request.queue).personal_locations
            return {
                "type": "offer",
                "call_id": call_id,
                "queue": queue or request.queue,
                "caller": request.caller,
                "caller_name": request.caller_name,
                "path": list(request.path),
                "screen_pop": screen_pop_fields(request, location=location, allowed=allowed),
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
            "screen_pop": [],
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
        message = {"type": "snapshot", **self._snapshot(), "events": events}
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
        self._end_session(session, WSCloseCode.OK, why)

    def _end_session(self, session: Session, code: int, why: str) -> None:
        """Revoke the token and its SIP credentials, and close its sockets."""
        self.tokens.revoke(session.key)
        self._forget_sip(session.key)
        self._close_sockets(session.key, code, why)

    def _forget_sip(self, key: bytes) -> None:
        username = self._sip_names.pop(key, None)
        if username is not None and self.session_sip is not None:
            self.session_sip.revoke(username)

    async def _sweep(self) -> None:
        """Close the sockets of tokens that expired, and forget those tokens."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self.clock()
            for session in self.tokens.purge(now):
                self._forget_sip(session.key)
            for key in [k for k in self._sip_names if not self.tokens.valid(k, now)]:
                self._forget_sip(key)  # tokens that expired at a lookup
            if self.session_sip is not None:
                self.session_sip.purge(now)
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
    totp: Literal["required", "optional", "off"] = "off",
    lockout_failures: int = 0,
    lockout_time: float = 0.0,
    idle_signout: float = 0.0,
    store: SignInStore | None = None,
    session_sip: SessionCredentials | None = None,
    sip_info: Callable[[str], Mapping[str, object]] | None = None,
    vpn_address: str | None = None,
    agent_events: AgentEvents | None = None,
    save_note: SaveNote | None = None,
) -> AgentApi:
    """Add the agent and supervisor routes to the ``/api/`` sub-application ``api``.

    ``check_password(sip_user, password)`` checks an agent's sign-in against the password of
    the agent's SIP user; ``admin_token`` (the API token) opens the supervisor routes too;
    ``clock`` gives Unix seconds for the tokens' lifetime (``token_ttl`` seconds) and the
    sign-in failure window; ``monitor`` calls a supervisor's phone into an agent's call.

    Sign-in security (``security.signin``): ``totp`` ("required", "optional", "off") asks for
    the one-time code, ``lockout_failures`` failed sign-ins in a row (0: no lockout) lock the
    account for ``lockout_time`` seconds (0: until unlocked); ``store`` keeps the secrets,
    locks and the audit trail (needed with a second factor or a lockout; without one nothing
    is audited). ``idle_signout`` and ``vpn_address`` are told to the client.
    ``session_sip`` issues the session's SIP credentials; ``sip_info(sip_user)`` gives
    ``{"domain", "server", "port", "transport"}`` (and optionally ``"expires"``, the REGISTER
    interval) for them. ``agent_events(agent, since)`` reads the agent's queue events (day
    figures, and the screen-pop audit of calls offered before a restart).

    Call :meth:`AgentApi.close` when stopping (it also runs on the application's shutdown)."""
    agent_api = AgentApi(
        queues,
        check_password=check_password,
        admin_token=admin_token,
        clock=clock,
        token_ttl=token_ttl,
        monitor=monitor,
        totp=totp,
        lockout_failures=lockout_failures,
        lockout_time=lockout_time,
        idle_signout=idle_signout,
        store=store,
        session_sip=session_sip,
        sip_info=sip_info,
        vpn_address=vpn_address,
        agent_events=agent_events,
        save_note=save_note,
    )
    agent_api.add_routes(api)
    return agent_api
