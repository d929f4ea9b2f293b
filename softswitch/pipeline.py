"""The request pipeline, fixed in code (ARCHITECTURE.md, "The request pipeline").

sanity and size limits -> flood and ban check -> NAT fix-up (rport, received; in the transaction
layer) -> in-dialog requests to their dialog -> authentication and source ACL -> routing ->
the action executor (registrar or B2BUA). Admins configure thresholds, never the order.

``SipEngine`` is synchronous: the asyncio shell feeds it bytes with the time, drains what it has
to send, and re-arms one timer from ``next_deadline``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from softswitch.b2bua.service import ALLOW, B2bua
from softswitch.registrar.service import BindingsChanged, KeepAlive, Registrar
from softswitch.security.acl import NetworkAcl
from softswitch.security.bans import BanList
from softswitch.sip.auth import DigestAuthenticator, parse_auth_params
from softswitch.sip.errors import RemoteProtocolError
from softswitch.sip.events import (
    AckReceived,
    AckTimedOut,
    Address,
    InviteCancelled,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
)
from softswitch.sip.message import Request, is_unsupported_scheme, make_response
from softswitch.sip.txn_layer import TransactionLayer
from softswitch.sip.uri import SipUri, TelUri

log = logging.getLogger("softswitch.pipeline")

#: Option tags a request may Require (RFC 3261 §8.2.2.3). None yet: Path (RFC 3327) and
#: outbound (RFC 5626) are not implemented, so the switch does not claim them.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "REGISTER",
        "INFO",
        "UPDATE",
        "MESSAGE",
        "NOTIFY",
        "SUBSCRIBE",
        "REFER",
        "PRACK",
        "PUBLISH",
    }
)


@dataclass(frozen=True, slots=True)
class Account:
    """A user as the pipeline needs it: HA1 per algorithm and where it may come from."""

    username: str
    ha1: Mapping[str, str]  # algorithm ("MD5", "SHA-256") -> HA1 hex
    acl: NetworkAcl = field(default_factory=lambda: NetworkAcl(()))
    display_name: str = ""
    #: only credentials issued at an agent's sign-in may authenticate (``sip_credentials:
    #: session``): the configured password is refused for SIP
    session_only: bool = False


class SessionCredentialLookup(Protocol):
    """SIP digest credentials issued for one signed-in session (an agent's softphone)."""

    def lookup(self, auth_username: str, now: float) -> tuple[str, Mapping[str, str]] | None:
        """The user these credentials act for and their HA1 per algorithm, or None."""
        ...

    def ended(self, auth_username: str) -> bool:
        """Whether these were the credentials of a session that has ended."""
        ...


class SipEngine:
    """The switch's SIP behaviour as one synchronous object."""

    def __init__(
        self,
        layer: TransactionLayer,
        *,
        accounts: Mapping[str, Account],
        authenticator: DigestAuthenticator,
        bans: BanList,
        registrar: Registrar,
        b2bua: B2bua,
        keepalive: KeepAlive | None = None,
        on_bindings_changed: Callable[[BindingsChanged], None] = lambda c: None,
        wall_clock: Callable[[], float],
        local_numbers: Mapping[str, str] | None = None,
        supervise_codes: Mapping[str, str] | None = None,
        supervisors: Iterable[str] = (),
    ) -> None:
        self.layer = layer
        self.accounts = accounts
        self.auth = authenticator
        self.bans = bans
        self.registrar = registrar
        self.b2bua = b2bua
        self.keepalive = keepalive
        self.on_bindings_changed = on_bindings_changed
        self.wall_clock = wall_clock
        #: numbers the switch answers itself: number -> "echo" or "prompt"
        self.local_numbers = dict(local_numbers or {})
        #: feature code -> "listen" / "whisper" / "barge", followed by an extension
        self.supervise_codes = dict(supervise_codes or {})
        self.supervisors = frozenset(supervisors)
        #: the dialplan: takes every call that is not to a feature code (caller's INVITE,
        #: authenticated user, number dialled); None: calls go straight to the user dialled
        self.router: Callable[[RequestReceived, str, str, float], None] | None = None
        #: per-session credentials (an agent's sign-in); digest user names of the accounts
        #: are looked up first, so a session's name never shadows a configured user
        self.sessions: SessionCredentialLookup | None = None
        #: counters for operators (served on /healthz)
        self.stats = {"received": 0, "dropped_banned": 0, "auth_failures": 0}

    # -- input ---------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        """One message from the network (a datagram, or a framed message from a stream)."""
        self.stats["received"] += 1
        ip = source.host
        bans = self.bans
        if bans.is_banned(ip, now):
            self.stats["dropped_banned"] += 1
            return
        banned = bans.record_request(ip, now)
        if banned is not None:
            log.warning("banned %s for %.0f s: %s", ip, banned.until - now, banned.reason)
            return
        self.layer.receive_data(data, source, now)
        self._dispatch(now)

    def handle_timer(self, now: float) -> None:
        self.layer.handle_timer(now)
        self.b2bua.handle_timer(now)
        self.auth.handle_timer(now)
        for unbanned in self.bans.handle_timer(now):
            log.info("unbanned %s", unbanned.ip)
        wall = self.wall_clock()
        changed = self.registrar.expire(wall)
        if changed is not None:
            self.on_bindings_changed(changed)
        if self.keepalive is not None:
            deadline = self.keepalive.next_deadline()
            if deadline is not None and deadline <= now:
                self.keepalive.handle_timer(now, wall, list(self.registrar.table.all()))
        self._dispatch(now)

    def next_deadline(self) -> float | None:
        deadlines = [
            self.layer.next_deadline(),
            self.b2bua.next_deadline(),
            self.auth.next_deadline(),
            self.bans.next_deadline(),
            self.keepalive.next_deadline() if self.keepalive is not None else None,
        ]
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def take_deadline_hint(self) -> float | None:
        """The earliest deadline any part armed since the last call (None if none).

        After an input, the adapter only needs to fire sooner if this is earlier than the
        timer it has armed; the full ``next_deadline`` is recomputed when the timer fires.
        Deadlines armed by other parts (bans, nonces, binding expiry, keep-alive) are always
        later than the transaction timers the same input armed.
        """
        a = self.layer.take_deadline_hint()
        b = self.b2bua.take_deadline_hint()
        if a is None:
            return b
        return a if b is None or a < b else b

    def next_wall_deadline(self) -> float | None:
        """Wall-clock instant of the next binding expiry (the shell converts it)."""
        return self.registrar.table.next_deadline()

    def take_outgoing(self) -> list[Outgoing]:
        return self.layer.take_outgoing()

    # -- events --------------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        b2bua = self.b2bua
        # Handling an event can produce more (a response handled may send a request whose
        # transport fails at once), so drain until quiet.
        for _ in range(8):
            events = self.layer.take_events()
            if not events:
                return
            for event in events:
                if isinstance(event, RequestReceived):
                    self._on_request(event, now)
                elif isinstance(event, ResponseReceived):
                    if not b2bua.on_response(event, now) and self.keepalive is not None:
                        self.keepalive.on_response(event)
                elif isinstance(event, TransactionTimedOut):
                    if not b2bua.on_timeout(event, now) and self.keepalive is not None:
                        self.keepalive.on_timeout(event)
                elif isinstance(event, AckReceived):
                    b2bua.on_ack(event, now)
                elif isinstance(event, InviteCancelled):
                    b2bua.on_cancelled(event, now)
                elif isinstance(event, AckTimedOut):
                    b2bua.on_ack_timeout(event, now)

    def _reply(
        self,
        event: RequestReceived,
        status: int,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        now: float = 0.0,
        stateless: bool = False,
    ) -> None:
        resp = make_response(event.request, status, reason, to_tag=self._tag(event.request))
        for name, value in headers:
            resp.headers.add(name, value)
        if stateless and event.request.method != "INVITE":
            self.layer.respond_stateless(event.key, resp)
        else:
            self.layer.respond(event.key, resp, now)

    @staticmethod
    def _tag(req: Request) -> str:
        # A stable local tag for stateless-style answers, so retransmissions match (§8.2.6.2).
        return format(abs(hash((req.call_id, req.cseq.seq))) & 0xFFFFFFFF, "x")

    def _on_request(self, event: RequestReceived, now: float) -> None:
        req = event.request
        method = req.method
        # §8.2.2.1: Request-URI scheme
        if is_unsupported_scheme(req.uri):
            self._reply(event, 416, now=now)
            return
        # §8.2.2.3: Require with extensions we do not support
        if method not in ("CANCEL", "ACK"):
            unsupported = [
                opt
                for opt in (o.strip() for o in req.headers.get_all("Require"))
                if opt and opt.lower() not in SUPPORTED_EXTENSIONS
            ]
            if unsupported:
                self._reply(event, 420, now=now, headers=(("Unsupported", ", ".join(unsupported)),))
                return
        if req.to.tag is not None:
            if not self.b2bua.on_in_dialog(event, now):
                self._reply(event, 481, now=now)
            return
        # §16.3 step 3 / §8.1.1.6: nothing is forwarded with Max-Forwards 0. An OPTIONS to the
        # switch itself (no user part, §11) is still answered.
        if req.max_forwards == 0 and not (
            method in ("OPTIONS", "REGISTER") and isinstance(req.uri, SipUri) and not req.uri.user
        ):
            self._reply(event, 483, now=now)
            return
        if method == "OPTIONS":
            self._reply(
                event,
                200,
                now=now,
                headers=(
                    ("Allow", ALLOW + ", REGISTER"),
                    ("Accept", "application/sdp"),
                ),
                stateless=True,
            )
            return
        if method == "REGISTER":
            self._register(event, now)
            return
        if method == "INVITE":
            self._invite(event, now)
            return
        if method in ("BYE", "PRACK", "UPDATE", "INFO"):
            self._reply(event, 481, now=now)
            return
        if method in KNOWN_METHODS:
            self._reply(event, 405, now=now, headers=(("Allow", ALLOW + ", REGISTER"),))
            return
        self._reply(event, 501, now=now, headers=(("Allow", ALLOW + ", REGISTER"),))

    # -- authentication ------------------------------------------------------------------------

    def _authenticate(self, event: RequestReceived, proxy: bool, now: float) -> str | None:
        """The authenticated username, or None after answering 401/407 (RFC 3261 §22)."""
        req = event.request
        header = "Proxy-Authorization" if proxy else "Authorization"
        credentials = None
        rows = req.headers.rows(header)
        if len(rows) == 1:
            credentials = rows[0]  # verify() checks the scheme and the realm itself
        else:
            for value in rows:  # several: take the one for our realm (§22.3)
                if _realm_of(value) == self.auth.realm:
                    credentials = value
                    break
        stale = False
        ip = event.source.host
        if credentials is not None:
            result = self.auth.verify(req.method, credentials, self._lookup_ha1, now, req.body)
            account = None
            if result.ok and result.username is not None:
                account = self._account_of(result.username)
            if account is not None:
                if not account.acl.allows(ip):
                    log.warning(
                        "%s %s from %s refused: source network not allowed for %s",
                        req.method,
                        req.uri,
                        event.source,
                        account.username,
                    )
                    self._reply(event, 403, "Source Network Not Allowed", now=now)
                    return None
                return account.username
            stale = result.stale
            if (
                not stale
                and self.sessions is not None
                and result.username is not None
                and self.sessions.ended(result.username)
            ):
                # a phone left running after its agent's session ended: refused, but not
                # counted toward a ban of the agent's address (no password opens them now)
                log.info(
                    "%s from %s refused: the credentials of an ended session (%s)",
                    req.method,
                    event.source,
                    result.username,
                )
            elif not stale:
                self.stats["auth_failures"] += 1
                log.warning(
                    "authentication failed for %r from %s: %s",
                    result.username,
                    event.source,
                    result.reason,
                )
                banned = self.bans.record_auth_failure(ip, now)
                if banned is not None:
                    log.warning("banned %s for %.0f s: %s", ip, banned.until - now, banned.reason)
        status = 407 if proxy else 401
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenges = tuple((name, c) for c in self.auth.challenge(now, stale=stale))
        # A challenge is cheap to repeat: answered statelessly (INVITEs keep their
        # transaction, whose ACK must be absorbed).
        self._reply(event, status, now=now, headers=challenges, stateless=True)
        return None

    def _lookup_ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        account = self.accounts.get(username)
        if account is not None:
            return None if account.session_only else account.ha1.get(algorithm)
        if self.sessions is not None:
            found = self.sessions.lookup(username, self.wall_clock())
            if found is not None:
                return found[1].get(algorithm)
        return None

    def _account_of(self, auth_username: str) -> Account | None:
        """The account a verified digest user name acts for: the user itself, or the user a
        session's credentials were issued to (None if the session ended meanwhile)."""
        account = self.accounts.get(auth_username)
        if account is not None or self.sessions is None:
            return account
        found = self.sessions.lookup(auth_username, self.wall_clock())
        return None if found is None else self.accounts.get(found[0])

    # -- methods -------------------------------------------------------------------------------

    def _register(self, event: RequestReceived, now: float) -> None:
        req = event.request
        # Sanity before authentication (the order of the pipeline): a REGISTER whose To or
        # Contact cannot be a binding is refused whoever sends it (§10.3, RFC 4475 §3.1.2.13).
        problem = None
        if not isinstance(req.to.uri, SipUri):
            problem = "To of a REGISTER must be a SIP URI"
        else:
            try:
                req.contacts()
            except RemoteProtocolError as exc:
                problem = f"Bad Contact: {exc.message}"
        if problem is not None:
            self._reply(event, 400, problem, now=now)
            return
        user = self._authenticate(event, proxy=False, now=now)
        if user is None:
            return
        resp, changed = self.registrar.register(
            event.request, user, event.source, self.wall_clock()
        )
        self.layer.respond(event.key, resp, now)
        if changed is not None:
            self.on_bindings_changed(changed)

    def _invite(self, event: RequestReceived, now: float) -> None:
        req = event.request
        ctype = req.content_type
        if req.body and ctype not in (None, "application/sdp", "multipart/mixed"):
            self._reply(event, 415, now=now, headers=(("Accept", "application/sdp"),))
            return
        accept = [a.split(";")[0].strip().lower() for a in req.headers.get_all("Accept")]
        if accept and not any(a in ("application/sdp", "application/*", "*/*") for a in accept):
            self._reply(event, 406, now=now, headers=(("Accept", "application/sdp"),))
            return
        if self.b2bua.draining:
            self._reply(event, 503, "Shutting Down", now=now, headers=(("Retry-After", "30"),))
            return
        user = self._authenticate(event, proxy=True, now=now)
        if user is None:
            return
        from_uri = req.from_.uri
        if not isinstance(from_uri, SipUri) or from_uri.user != user:
            log.warning("INVITE from %s: %s may not call as %s", event.source, user, from_uri)
            self._reply(event, 403, "From Does Not Match Credentials", now=now)
            return
        callee = _dialled(req)
        app = self.local_numbers.get(callee or "")
        if app is not None and callee is not None:
            self.b2bua.answer_local(event, user, callee, app, now)
            return
        for code, mode in self.supervise_codes.items():
            if callee is not None and callee.startswith(code) and len(callee) > len(code):
                if user not in self.supervisors:
                    self._reply(event, 403, "Supervisors Only", now=now)
                    return
                self.b2bua.supervise(event, user, callee, callee[len(code) :], mode, now)
                return
        if callee is None:
            self._reply(event, 404, now=now)
            return
        if self.router is not None:  # the dialplan decides
            self.router(event, user, callee, now)
            return
        if callee not in self.accounts:
            self._reply(event, 404, now=now)
            return
        bindings = self.registrar.lookup(callee, self.wall_clock())
        self.b2bua.start_call(event, user, callee, bindings, now)


def _realm_of(value: str) -> str | None:
    try:
        return parse_auth_params(value)[1].get("realm")
    except RemoteProtocolError:
        return None


def _dialled(req: Request) -> str | None:
    uri = req.uri
    if isinstance(uri, SipUri):
        return uri.user
    if isinstance(uri, TelUri):
        return uri.digits.lstrip("+")
    return None
