"""Composition root: the one module that wires concrete classes together (principle 8).

``Switch`` is the thin asyncio shell around the synchronous ``SipEngine``: it feeds received
messages in with the loop's monotonic time, sends what the engine produced, and keeps exactly
one ``loop.call_at`` armed at the engine's next deadline (principle 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import math
import secrets
import signal
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
from aiohttp import web

from media.dtmf import DtmfReceived
from media.engine import MediaEngine
from media.player import MusicOnHold, PromptCache, PromptError, load_prompt
from media.recorder import ChannelLayout, RecordingOptions, RecordingStats
from media.transport import PortPool
from softswitch.acd.engine import AcdError
from softswitch.acd.events import QueueEvent, QueueEventKind
from softswitch.admin.agent_api import AgentApi, add_agent_routes
from softswitch.admin.audit_api import add_audit_routes
from softswitch.admin.dialplan_api import DemoCrm, add_dialplan_routes
from softswitch.admin.http import HttpApi
from softswitch.admin.records_api import add_records_routes
from softswitch.apps.lookup import HttpLookups
from softswitch.apps.queueing import QueueService, acd_config
from softswitch.apps.runtime import DialplanRuntime, ReloadResult, compile_plan
from softswitch.apps.voicemail import VoicemailStore
from softswitch.b2bua.call import Call, Monitor
from softswitch.b2bua.service import B2bua, Ids, MediaControl
from softswitch.config import Settings, load_settings
from softswitch.pipeline import Account, SipEngine
from softswitch.registrar.bindings import Binding, BindingTable
from softswitch.registrar.service import BindingsChanged, KeepAlive, Registrar, same_contact
from softswitch.routing.decide import CompiledPlan
from softswitch.routing.schema import Plan
from softswitch.security.acl import NetworkAcl
from softswitch.security.bans import BanList
from softswitch.security.session_sip import SessionCredentials
from softswitch.sip.auth import DigestAuthenticator, ha1
from softswitch.sip.events import Address
from softswitch.sip.message import Limits
from softswitch.sip.transaction import Timers
from softswitch.sip.txn_layer import TransactionLayer
from softswitch.storage.cdr import CallRecord, records_csv
from softswitch.storage.queue_log import events_csv
from softswitch.storage.security_store import SqliteSecurityStore, audit_csv
from softswitch.storage.sqlite import SqliteBindingStore, SqliteCdrStore, SqliteQueueEventStore
from softswitch.transport.hub import TransportHub
from softswitch.yaml_loader import ConfigErrors

log = logging.getLogger("softswitch")

VERSION = "0.1.0"
TIMER_GRANULARITY = 0.01  # seconds


def accounts_from(settings: Settings) -> dict[str, Account]:
    realm = settings.sip.domain
    out: dict[str, Account] = {}
    for user in settings.users:
        if user.password is not None:
            hashes = {
                alg: ha1(user.username, realm, user.password, alg) for alg in ("MD5", "SHA-256")
            }
        else:
            assert user.ha1 is not None
            hashes = {"MD5" if len(user.ha1) == 32 else "SHA-256": user.ha1}
        out[user.username] = Account(
            user.username,
            hashes,
            NetworkAcl([str(n) for n in user.allowed_networks]),
            user.display_name or "",
            session_only=user.sip_credentials == "session",
        )
    return out


def build_engine(
    settings: Settings,
    *,
    token: Callable[[], str],
    secret: bytes,
    wall_clock: Callable[[], float],
    on_bindings_changed: Callable[[BindingsChanged], None] = lambda changed: None,
    media: MediaControl | None = None,
) -> SipEngine:
    """Wire the synchronous SIP engine from settings (no sockets, no event loop)."""
    s = settings
    layer = TransactionLayer(
        token,
        timers=Timers(s.sip.t1, s.sip.t2, s.sip.t4),
        limits=Limits(s.sip.max_message_size, s.sip.max_headers),
        max_per_source=s.security.max_transactions_per_source,
        user_agent=f"softswitch/{VERSION}",
    )

    def contact_uri(transport: str) -> str:
        host, port = layer.local_via.get(transport) or layer.local_via["udp"]
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"sip:switch@{host}:{port}{suffix}"

    accounts = accounts_from(s)
    max_contacts = max((u.max_contacts for u in s.users), default=5)
    bindings = BindingTable(max_contacts, 200_000, same_contact=same_contact)
    registrar = Registrar(
        s.sip.domain,
        bindings,
        min_expires=s.registrar.min_expires,
        max_expires=s.registrar.max_expires,
        default_expires=s.registrar.default_expires,
        max_contacts={u.username: u.max_contacts for u in s.users},
    )
    b2bua = B2bua(
        layer,
        Ids(token),
        domain=s.sip.domain,
        contact_for=contact_uri,
        ring_timeout=s.calls.ring_timeout,
        max_calls=s.calls.max_calls,
        media=media,
    )
    keepalive = KeepAlive(
        layer,
        registrar,
        interval=s.registrar.keepalive_interval,
        failures=s.registrar.keepalive_failures,
        local_uri=contact_uri,
        new_call_id=token,
        on_change=on_bindings_changed,
    )
    sec = s.security
    bans = BanList(
        auth_failure_threshold=sec.auth_failures.threshold,
        auth_failure_window=sec.auth_failures.window,
        flood_threshold=sec.flood.max_requests_per_second,
        flood_window=1.0,
        ban_time=sec.auth_failures.ban_time,
        flood_ban_time=sec.flood.ban_time,
        trusted=[str(n) for n in sec.trusted_networks],
    )
    authenticator = DigestAuthenticator(
        realm=s.sip.domain,
        secret=secret,
        nonce_ttl=sec.nonce_ttl,
        algorithms=tuple(sec.digest_algorithms),
    )
    # a blind transfer's target: a user of the switch, at its registered phones
    b2bua.locate = lambda user: (registrar.lookup(user, wall_clock()) if user in accounts else None)
    return SipEngine(
        layer,
        accounts=accounts,
        authenticator=authenticator,
        bans=bans,
        registrar=registrar,
        b2bua=b2bua,
        keepalive=keepalive,
        on_bindings_changed=on_bindings_changed,
        wall_clock=wall_clock,
        local_numbers={
            number: app
            for number, app in ((s.media.echo_test, "echo"), (s.media.prompt_test, "prompt"))
            if number is not None and media is not None
        },
        supervise_codes=s.supervision.codes() if media is not None else {},
        supervisors=s.supervision.supervisors,
    )


class Switch:
    """One running switch: sockets, engine, storage and the HTTP API."""

    def __init__(self, settings: Settings, plan: Plan | None = None) -> None:
        """``plan``: the dialplan the settings name, already loaded and checked (else it is
        loaded here)."""
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self._dirty: dict[tuple[str, str], object] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self.media: MediaEngine | None = None
        if settings.media.anchor:
            bind = str(settings.sip.listeners[0].address)
            advertised = settings.sip.advertised_address or bind
            if advertised in ("0.0.0.0", "::"):
                advertised = "127.0.0.1"
            m = settings.media
            self.media = MediaEngine(
                self.loop,
                bind,
                str(advertised),
                PortPool(m.rtp_port_min, m.rtp_port_max),
                recordings=Path(m.recordings),
                record_calls=m.record_calls,
                recording_options=RecordingOptions(
                    layout=ChannelLayout(m.record_layout), vad_mode=2 if m.talk_stats else None
                ),
                inband_dtmf=m.inband_dtmf,
                moh=(
                    MusicOnHold(settings.resolve(m.music_on_hold), PromptCache())
                    if m.music_on_hold is not None
                    else None
                ),
            )
        self.digits: dict[str, list[tuple[str, str]]] = {}  # call -> (side, digit), recent calls
        self._prompt: np.ndarray | None = None
        if self.media is not None and settings.media.prompt_test is not None:
            prompt_path = settings.resolve(settings.media.prompt_test_file)
            try:
                prompt = load_prompt(prompt_path)
            except PromptError as exc:
                log.warning("prompt test %s disabled: %s", settings.media.prompt_test, exc)
                settings = settings.model_copy(
                    update={"media": settings.media.model_copy(update={"prompt_test": None})}
                )
                self.settings = settings
            else:
                self._prompt = prompt
        if self.media is not None:
            self.media.on_digit = self._on_digit
        self.engine = build_engine(
            settings,
            token=lambda: secrets.token_hex(8),
            secret=secrets.token_bytes(32),
            wall_clock=time.time,
            on_bindings_changed=self._bindings_changed,
            media=self.media,
        )
        self.engine.b2bua.prompt_audio = self._prompt
        self.layer = self.engine.layer
        self.b2bua = self.engine.b2bua
        self.registrar = self.engine.registrar
        self.bindings = self.registrar.table
        self.bans = self.engine.bans
        self.authenticator = self.engine.auth
        self.hub = TransportHub(self._on_message, max_size=settings.sip.max_message_size)
        self.store = SqliteBindingStore(settings.registrar.binding_store)
        #: call detail records, in the same database as the bindings
        self.cdrs = SqliteCdrStore(settings.registrar.binding_store)
        self._cdr_writes: set[asyncio.Task[None]] = set()
        #: the queue log, in the same database
        self.queue_events = SqliteQueueEventStore(settings.registrar.binding_store)
        self._event_buffer: list[QueueEvent] = []
        self._event_writer: asyncio.Task[None] | None = None
        self.b2bua.on_call_ended = self._call_ended
        self.b2bua.on_transferred = self._transferred
        #: the ACD: callers waiting in queues (the dialplan's queue action) and agents
        self.queues = QueueService(
            acd_config(settings.acd),
            clock=time.time,
            locate=self._locate,
            draw=self._draw,
            dialer=_QueueDialer(self),
        )
        self.queues.sinks.append(self._queue_log)
        self.lookups = HttpLookups()
        self.dialplan: DialplanRuntime | None = None
        self.mailboxes: VoicemailStore | None = None
        if settings.dialplan is not None:
            self._start_dialplan(settings, plan)
        crm = None
        if settings.http.demo_crm is not None:
            crm = DemoCrm(settings.resolve(settings.http.demo_crm))
        self.agent_api: AgentApi | None = None
        #: TOTP secrets, lockouts and the audit trail (``security.signin.store``)
        self.security_store = SqliteSecurityStore(settings.security.signin.store)
        #: SIP credentials issued at an agent's sign-in, for that session only
        self.session_sip = SessionCredentials(settings.sip.domain)
        self.engine.sessions = self.session_sip
        self.http = HttpApi(
            self,
            cdrs=self.cdrs,
            token=settings.http.api_token,
            routes=[
                lambda api: add_dialplan_routes(
                    api,
                    reload=self.reload,
                    queues=self.queues,
                    mailboxes=self.mailboxes,
                    crm=crm,
                ),
                lambda api: add_records_routes(
                    api,
                    self.cdrs,
                    self.queue_events,
                    cdrs_csv=records_csv,
                    events_csv=events_csv,
                ),
                self._add_agent_routes,
                lambda api: add_audit_routes(api, self.security_store, audit_csv=audit_csv),
            ],
        )
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._watch: asyncio.Task[None] | None = None
        self._purge: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self.started = time.time()

    def _add_agent_routes(self, api: web.Application) -> None:
        signin = self.settings.security.signin
        vpn = self.settings.vpn
        self.agent_api = add_agent_routes(
            api,
            queues=self.queues,
            check_password=self._check_agent_password,
            admin_token=self.settings.http.api_token,
            monitor=self.monitor,
            totp=signin.totp,
            lockout_failures=signin.lockout_failures,
            lockout_time=signin.lockout_time,
            idle_signout=signin.idle_signout,
            store=self.security_store,
            session_sip=self.session_sip,
            sip_info=self._sip_info,
            vpn_address=None if vpn is None else str(vpn.address),
            agent_events=self._agent_events,
            save_note=self._save_note,
        )

    def _sip_info(self, user: str) -> dict[str, object]:
        """Where an agent's softphone registers: the switch's VPN address when there is a
        VPN, else the address of the first UDP listener (or the advertised one)."""
        s = self.settings
        udp = [lst for lst in s.sip.listeners if lst.transport == "udp"]
        listener = (udp or list(s.sip.listeners))[0]
        _, port = self.layer.local_via.get(listener.transport, ("", listener.port))
        server = str(s.sip.advertised_address or listener.address)
        if server in ("0.0.0.0", "::"):
            server = "127.0.0.1"
        if s.vpn is not None:
            server = str(s.vpn.address)
        return {
            "domain": s.sip.domain,
            "server": server,
            "port": port or listener.port,
            "transport": listener.transport,
            "expires": min(max(300, s.registrar.min_expires), s.registrar.max_expires),
        }

    async def _agent_events(self, agent: str, since: float) -> list[QueueEvent]:
        """An agent's queue events since ``since``, and a day before it: the day figures
        need the state the agent was in at ``since`` (the events still buffered first)."""
        if self._event_writer is not None:
            await asyncio.gather(self._event_writer, return_exceptions=True)
        if self._event_buffer:
            batch, self._event_buffer = self._event_buffer, []
            await self.queue_events.add_many(batch)
        return await self.queue_events.query(agent=agent, since=since - 86400, limit=10000)

    def originate(
        self,
        user: str,
        *,
        caller: str,
        caller_name: str | None = None,
        timeout: float | None = None,
        monitor: Monitor | None = None,
        on_result: Callable[[int, str | None], None],
    ) -> str | None:
        """The switch calls ``user``'s phones (see ``B2bua.originate``); ``on_result`` is
        called once, with 200 and the new call's id when a phone answered."""
        if user not in self.engine.accounts:
            on_result(404, None)
            return None
        call_id = self.b2bua.originate(
            user,
            self.registrar.lookup(user, time.time()),
            caller=caller,
            caller_name=caller_name,
            timeout=timeout if timeout is not None else float(self.settings.calls.ring_timeout),
            now=self.loop.time(),
            on_result=on_result,
            monitor=monitor,
        )
        self._flush()  # the INVITEs go out, the ring timer is armed
        return call_id

    async def monitor(
        self, supervisor: str, agent: str, mode: str, display: str
    ) -> tuple[int, str | None]:
        """A supervisor's monitoring started from the API: the switch calls ``supervisor``
        and joins the answered phone to ``agent``'s live call in ``mode``."""
        target = self.b2bua.monitor_target(agent, mode)
        if target is None:
            return 404, None
        done: asyncio.Future[tuple[int, str | None]] = self.loop.create_future()

        def result(status: int, call_id: str | None) -> None:
            if not done.done():
                done.set_result((status, call_id))

        self.originate(
            supervisor, caller="monitor", caller_name=display, monitor=target, on_result=result
        )
        return await done

    def _check_agent_password(self, user: str, password: str) -> bool:
        """An agent signs in with the digest password of the agent's SIP user, checked against
        the user's HA1 (RFC 7616 §3.4.2) in constant time."""
        account = self.engine.accounts.get(user)
        if account is None:
            return False
        realm = self.settings.sip.domain
        return any(
            hmac.compare_digest(ha1(user, realm, password, algorithm), expected.lower())
            for algorithm, expected in account.ha1.items()
        )

    def _start_dialplan(self, settings: Settings, plan: Plan | None) -> None:
        d = settings.dialplan
        assert d is not None
        if self.media is None:
            log.error("the dialplan needs media.anchor: true; calls go straight to users")
            return
        path = settings.resolve(d.file)
        self.mailboxes = VoicemailStore(Path(d.voicemail))
        self.dialplan = DialplanRuntime(
            plan=CompiledPlan(plan) if plan is not None else compile_plan(path),
            path=path,
            calls=self.b2bua,
            media=self.media,
            locate=self._locate,
            clock=self.loop.time,
            after=self._flush,
            lookups=self.lookups,
            queues=self.queues,
            mailboxes=self.mailboxes,
            contexts={u.username: u.context for u in settings.users if u.context},
            default_context=d.context,
            fixed_time=datetime.fromisoformat(d.at) if d.at else None,
        )
        self.engine.router = self.dialplan.route
        log.info("dialplan %s: %d context(s)", path, len(self.dialplan.plan.contexts))

    def _locate(self, target: str) -> Sequence[Binding] | None:
        """A bridge target's registered contacts (None for a number that is no user)."""
        if target not in self.engine.accounts:
            return None
        return self.registrar.lookup(target, time.time())

    async def reload(self) -> ReloadResult:
        """Reload the dialplan and the ACD's queues and agents (SIGHUP, ``POST /api/reload``):
        each takes its new version only if it is valid as a whole; the errors of either are
        in the result."""
        acd_errors = await self._reload_acd()
        if self.dialplan is None:
            return ReloadResult(not acd_errors, acd_errors)
        result = await self.dialplan.reload()
        if acd_errors:
            return replace(result, ok=False, errors=result.errors + acd_errors)
        return result

    async def _reload_acd(self) -> tuple[str, ...]:
        """Read the settings file again and give the ACD its new ``acd`` section (queues,
        agents, reasons, codes). Agents on a call keep it; removed ones log out after it."""
        source = self.settings.source
        if source is None:
            return ()
        try:
            fresh = await asyncio.to_thread(load_settings, source)
        except ConfigErrors as exc:
            errors = tuple(str(e) for e in exc.errors)
        except OSError as exc:
            errors = (f"{source}: {exc.strerror}",)
        else:
            self._reload_user_rules(fresh)
            if fresh.acd == self.settings.acd:
                return ()
            self.queues.reload(acd_config(fresh.acd))
            self.settings = self.settings.model_copy(update={"acd": fresh.acd})
            log.info(
                "acd reloaded: %d queue(s), %d agent(s)",
                len(fresh.acd.queues),
                len(fresh.acd.agents),
            )
            return ()
        for error in errors:
            log.error("%s", error)
        log.error("acd settings not reloaded: %d error(s); the previous ones stay", len(errors))
        return errors

    def _transferred(self, call_id: str, side: str, target: str) -> None:
        """A call was transferred by REFER: for a queue call, the agent's part of it is over
        (the agent goes to wrap-up, the queue log says to whom)."""
        who = "caller" if side == "a" else "callee"
        log.info("call %s: transferred by the %s to %s", call_id, who, target)
        self.queues.transferred(call_id, target)

    def _reload_user_rules(self, fresh: Settings) -> None:
        """Where each user may come from (``allowed_networks``, which a VPN peer narrows to
        the agent's VPN address) and which credentials it takes (``sip_credentials``) follow
        a reload; users added or removed, and passwords, take a restart."""
        old = {u.username: u for u in self.settings.users}
        new = {u.username: u for u in fresh.users}
        rules = accounts_from(fresh)
        accounts = dict(self.engine.accounts)
        changed = [
            name
            for name, user in new.items()
            if name in old
            and name in accounts
            and (user.allowed_networks, user.sip_credentials)
            != (old[name].allowed_networks, old[name].sip_credentials)
        ]
        for name in changed:
            accounts[name] = replace(
                accounts[name], acl=rules[name].acl, session_only=rules[name].session_only
            )
            log.info(
                "user %s: may register from %s%s",
                name,
                ", ".join(str(n) for n in new[name].allowed_networks) or "anywhere",
                " with session credentials only" if rules[name].session_only else "",
            )
        if changed:
            self.engine.accounts = accounts
            users = tuple(
                new[u.username] if u.username in changed else u for u in self.settings.users
            )
            self.settings = self.settings.model_copy(update={"users": users})
        if set(old) != set(new):
            log.warning("users added or removed in the settings take effect after a restart")

    def _on_digit(self, call_id: str, side: str, digit: DtmfReceived) -> None:
        who = "caller" if side == "a" else "callee"
        masked = self.dialplan is not None and self.dialplan.masking(call_id)
        shown = "*" if masked else digit.digit  # personal data (a sensitive gather)
        log.info(
            "call %s: DTMF %s from the %s (%d ms, %s)%s",
            call_id,
            shown,
            who,
            digit.duration_ms,
            digit.source,
            " (sensitive input, not shown)" if masked else "",
        )
        if call_id not in self.digits and len(self.digits) >= 1000:
            del self.digits[next(iter(self.digits))]  # bounded: the most recent calls
        self.digits.setdefault(call_id, []).append((side, shown))

    # -- calls: live view and detail records --------------------------------------------------

    def _wall(self, monotonic: float) -> float:
        """A loop-clock time as Unix seconds."""
        return round(time.time() - (self.loop.time() - monotonic), 3)

    def _call_view(self, call: Call) -> dict[str, object]:
        media = self.media.stats(call.id) if self.media is not None else None
        return {
            "call_id": call.id,
            "live": True,
            "caller": call.caller,
            "caller_name": call.caller_name,
            "callee": call.callee,
            "state": call.state.value,
            "started": self._wall(call.created),
            "answered": None if call.answered_at is None else self._wall(call.answered_at),
            "answered_by": call.answered_by,
            "media": media,
            "digits": [{"side": side, "digit": d} for side, d in self.digits.get(call.id, ())],
            "dialplan": self.dialplan.session_view(call.id) if self.dialplan is not None else None,
        }

    def live_calls(self) -> list[dict[str, object]]:
        return [self._call_view(call) for call in list(self.b2bua.calls.values())]

    def live_call(self, call_id: str) -> dict[str, object] | None:
        call = self.b2bua.calls.get(call_id)
        return None if call is None else self._call_view(call)

    def control_recording(self, call_id: str, action: str, reason: str) -> bool | None:
        if self.media is None:
            return None
        changed = self.media.control_recording(call_id, action, reason)
        if changed:
            log.info("call %s: recording %sd%s", call_id, action, f" ({reason})" if reason else "")
        return changed

    def _call_ended(self, call: Call, media_report: object) -> None:
        """Write the call's detail record, off the event loop's critical path."""
        dialplan = None
        if self.dialplan is not None:
            dialplan = self.dialplan.session_view(call.id)
            self.dialplan.call_ended(call.id)
        queued = self.queues.connection(call.id)
        self.queues.call_ended(call.id, self._who_hung_up(call, queued))
        digits = self.digits.pop(call.id, [])
        media: dict[str, object] = dict(media_report) if isinstance(media_report, dict) else {}
        if dialplan is not None:  # the IVR path the caller took, for reports
            media["dialplan"] = dialplan
        if digits:
            media["digits"] = [{"side": side, "digit": digit} for side, digit in digits]
        recording = media.pop("recording", None)
        record = CallRecord(
            call_id=call.id,
            caller=call.caller,
            caller_name=call.caller_name,
            callee=call.callee,
            started=self._wall(call.created),
            answered=None if call.answered_at is None else self._wall(call.answered_at),
            ended=round(time.time(), 3),
            status=call.final_status or 500,
            cause=call.end_cause or "normal",
            recording=str(recording) if recording is not None else None,
            media=media,
            queue=None if queued is None else queued[0],
            agent=None if queued is None else queued[1],
            wait=None if queued is None else queued[2],
        )
        task = asyncio.ensure_future(self._write_cdr(record))
        self._cdr_writes.add(task)
        task.add_done_callback(self._cdr_writes.discard)

    def _who_hung_up(self, call: Call, queued: tuple[str, str, float] | None) -> str:
        """ "agent" or "caller", for the queue log. On a call the switch placed (a queued
        callback) the party called first is leg A: the agent or the caller, as configured."""
        if not call.originated:
            return "agent" if call.end_cause == "callee hung up" else "caller"
        agent_user = None
        if queued is not None:
            with contextlib.suppress(AcdError):
                agent_user = self.queues.acd.agent_config(queued[1]).user
        leg_a_hung_up = call.end_cause == "callee hung up"
        agent_first = agent_user is not None and agent_user == call.callee
        return "agent" if leg_a_hung_up == agent_first else "caller"

    def _queue_log(self, events: list[QueueEvent]) -> None:
        """Log the ACD's events, keep them in the queue log (batched), and put wrap-up codes
        into the calls' detail records."""
        for e in events:
            details = " ".join(f"{k}={v}" for k, v in e.details.items())
            log.info(
                "acd: %s%s%s%s %s",
                e.kind.value,
                f" queue={e.queue}" if e.queue else "",
                f" call={e.call_id}" if e.call_id else "",
                f" agent={e.agent}" if e.agent else "",
                details,
            )
            if e.kind is QueueEventKind.WRAP_UP and e.call_id and e.details.get("code"):
                code, earlier = str(e.details["code"]), list(self._cdr_writes)
                task = asyncio.ensure_future(self._store_code(e.call_id, code, earlier))
                self._cdr_writes.add(task)
                task.add_done_callback(self._cdr_writes.discard)
        self._event_buffer.extend(events)
        if self._event_writer is None:
            self._event_writer = asyncio.ensure_future(self._write_events())

    async def _write_events(self) -> None:
        await asyncio.sleep(0.05)  # a burst of events is one transaction
        try:
            while self._event_buffer:
                batch, self._event_buffer = self._event_buffer, []
                await self.queue_events.add_many(batch)
        except Exception:
            log.exception("writing %d queue event(s) failed", len(self._event_buffer))
        finally:
            self._event_writer = None

    async def _store_code(self, call_id: str, code: str, earlier: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*earlier, return_exceptions=True)  # the record is written first
        try:
            if not await self.cdrs.set_wrap_up_code(call_id, code):
                log.warning("call %s: no detail record for wrap-up code %s", call_id, code)
        except Exception:
            log.exception("call %s: storing the wrap-up code failed", call_id)

    def _save_note(self, call_id: str, note: str) -> None:
        """An agent's wrap-up note, kept with the call's detail record (after the record and
        the code are written)."""
        task = asyncio.ensure_future(self._store_note(call_id, note, list(self._cdr_writes)))
        self._cdr_writes.add(task)
        task.add_done_callback(self._cdr_writes.discard)

    async def _store_note(self, call_id: str, note: str, earlier: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*earlier, return_exceptions=True)  # the record and the code first
        try:
            if not await self.cdrs.set_wrap_up_note(call_id, note):
                log.warning("call %s: no detail record for the wrap-up note", call_id)
        except Exception:
            log.exception("call %s: storing the wrap-up note failed", call_id)

    async def _purge_once(self, keep: float) -> None:
        """Drop call detail records older than ``keep`` seconds."""
        try:
            dropped = await self.cdrs.purge(time.time() - keep)
            if dropped:
                log.info("purged %d call detail record(s) past retention", dropped)
            dropped = await self.queue_events.purge(time.time() - keep)
            if dropped:
                log.info("purged %d queue event(s) past retention", dropped)
        except Exception:
            log.exception("purging old call detail records failed")

    async def _purge_daily(self, keep: float, every: float = 86400.0) -> None:
        while True:
            await asyncio.sleep(every)
            await self._purge_once(keep)

    async def _write_cdr(self, record: CallRecord) -> None:
        try:
            if record.recording is not None and self.media is not None:
                stats = await self.media.recording_result(record.call_id)
                if stats is not None:
                    record = replace(record, media={**record.media, **_recording_doc(stats)})
            await self.cdrs.add(record)
        except Exception:
            log.exception("call %s: writing its detail record failed", record.call_id)

    # -- the engine's shell --------------------------------------------------------------------

    def _on_message(self, data: bytes, source: Address) -> None:
        self.engine.receive_datagram(data, source, self.loop.time())
        self._flush()

    def _flush(self) -> None:
        send = self.hub.send
        for out in self.engine.take_outgoing():
            send(out)
        hint = self.engine.take_deadline_hint()
        if hint is not None and hint < self._timer_at:
            self._arm(hint)

    def _arm(self, deadline: float) -> None:
        # Coalesce wake-ups: SIP timers are hundreds of milliseconds, so firing up to
        # TIMER_GRANULARITY late is harmless and saves a loop callback per transaction.
        deadline = math.ceil(deadline / TIMER_GRANULARITY) * TIMER_GRANULARITY
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _reschedule(self) -> None:
        """Arm the timer at the engine's next deadline, whatever armed it (after a timer)."""
        self.engine.take_deadline_hint()
        deadline = self.engine.next_deadline()
        wall = self.engine.next_wall_deadline()
        if wall is not None:
            mono = self.loop.time() + max(0.0, wall - time.time())
            deadline = mono if deadline is None else min(deadline, mono)
        if deadline is not None:
            self._arm(deadline)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self.engine.handle_timer(self.loop.time())
        for out in self.engine.take_outgoing():
            self.hub.send(out)
        self._reschedule()

    # -- storage (write-behind) -----------------------------------------------------------------

    @staticmethod
    def _draw(n: int) -> int:
        """A uniform integer in [0, n) for the random queue strategy."""
        return secrets.randbelow(n)

    def _bindings_changed(self, changed: BindingsChanged) -> None:
        gone = {aor.partition("@")[0] for aor, _ in changed.removed}
        now = time.time()
        for user in gone:
            if not self.registrar.lookup(user, now):
                self.queues.agent_unreachable(user)
        for user in {b.aor.partition("@")[0] for b in changed.saved}:
            self.queues.agent_reachable(user)
        for b in changed.saved:
            self._dirty[(b.aor, b.contact)] = b
        for key in changed.removed:
            self._dirty[key] = None
        if self._flush_task is None:
            self._flush_task = asyncio.ensure_future(self._write_bindings())

    async def _write_bindings(self) -> None:
        await asyncio.sleep(0.05)  # batch a burst of REGISTERs into one transaction
        try:
            while self._dirty:
                dirty, self._dirty = self._dirty, {}
                saved = [b for b in dirty.values() if b is not None]
                removed = [k for k, b in dirty.items() if b is None]
                if saved:
                    await self.store.save(saved)  # type: ignore[arg-type]
                if removed:
                    await self.store.delete(removed)
        except Exception:
            log.exception("writing bindings to %s failed", self.store.path)
        finally:
            self._flush_task = None

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        await self.store.open()
        await self.cdrs.open()
        await self.queue_events.open()
        await self.security_store.open()
        if s.security.signin.audit_retention_days > 0:
            with contextlib.suppress(Exception):
                dropped = await self.security_store.purge_audit(
                    time.time() - s.security.signin.audit_retention_days * 86400.0
                )
                if dropped:
                    log.info("purged %d audit trail entries past retention", dropped)
        if s.calls.record_retention_days > 0:
            keep = s.calls.record_retention_days * 86400.0
            await self._purge_once(keep)  # before serving: never cut off by a quick stop
            self._purge = asyncio.ensure_future(self._purge_daily(keep))
        restored = self.bindings.load(await self.store.load_all(), time.time())
        if restored:
            log.info("restored %d registration(s) from %s", len(restored), self.store.path)
        for listener in s.sip.listeners:
            host = str(listener.address)
            if listener.transport == "udp":
                bound = await self.hub.listen_udp(host, listener.port)
            else:
                context = None
                if listener.transport == "tls":
                    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    context.load_cert_chain(str(listener.certificate), str(listener.key))
                bound = await self.hub.listen_stream(host, listener.port, context)
            advertised = s.sip.advertised_address or host
            if advertised in ("0.0.0.0", "::"):
                advertised = "127.0.0.1"
            self.layer.local_via.setdefault(bound.transport, (str(advertised), bound.port))
            log.info("SIP listening on %s", bound)
        await self.http.start(str(s.http.address), s.http.port)
        self._reschedule()
        if self.media is not None and s.media.dead_peer_timeout > 0:
            self._watch = asyncio.ensure_future(self._watch_media(float(s.media.dead_peer_timeout)))

    def health(self) -> dict[str, object]:
        counts = self.layer.counts
        return {
            "status": "draining" if self.b2bua.draining else "ok",
            "version": VERSION,
            "uptime": round(time.time() - self.started, 1),
            "calls": len(self.b2bua.calls),
            "dialogs": self.b2bua.table_sizes["dialogs"],
            "transactions": len(self.layer),
            "transaction_tables": counts,
            "registrations": len(self.bindings),
            "media_calls": len(self.media) if self.media is not None else 0,
            "bans": self.bans.ban_count,
            "messages": dict(self.engine.stats),
            "nonces": self.authenticator.tracked_nonces,
            "listeners": [str(a) for a in self.hub.bound],
        }

    async def drain(self, grace: float) -> None:
        """Refuse new calls (503), let established ones finish for ``grace`` s, then end them."""
        self.b2bua.draining = True
        log.info(
            "shutting down: new calls refused, %d call(s) may finish within %.0f s",
            len(self.b2bua.calls),
            grace,
        )
        deadline = self.loop.time() + grace
        while self.b2bua.calls and self.loop.time() < deadline:
            await asyncio.sleep(0.2)
        if self.b2bua.calls:
            log.info("grace time over: ending %d call(s)", len(self.b2bua.calls))
            self.b2bua.hangup_all(self.loop.time())
            self._flush()
            end = self.loop.time() + 2.0
            while self.b2bua.calls and self.loop.time() < end:
                await asyncio.sleep(0.1)

    async def _watch_media(self, timeout: float) -> None:
        """Dead-peer detection: end calls with a leg that stopped sending RTP."""
        assert self.media is not None
        interval = min(5.0, max(0.2, timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = self.loop.time()
            for call_id, side in self.media.silent(now, timeout):
                who = "caller" if side == "a" else "callee"
                log.warning(
                    "call %s: no RTP from the %s for %.0f s, ending the call", call_id, who, timeout
                )
                self.b2bua.hangup(call_id, f"no media from the {who}", now)
            self._flush()

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._purge is not None:
            self._purge.cancel()
            await asyncio.gather(self._purge, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
        if self._flush_task is not None:
            await self._flush_task
        if self.agent_api is not None:
            await self.agent_api.close()
        await self.http.stop()
        if self.dialplan is not None:
            await self.dialplan.close()
        await self.lookups.close()
        if self.media is not None:
            self.media.close()
            await self.media.drain()
        await self.hub.close()
        while self._cdr_writes:
            await asyncio.gather(*self._cdr_writes, return_exceptions=True)
        self.queues.close()
        if self._event_writer is not None:
            await asyncio.gather(self._event_writer, return_exceptions=True)
        if self._event_buffer:
            with contextlib.suppress(Exception):
                await self.queue_events.add_many(self._event_buffer)
        await self.queue_events.close()
        await self.security_store.close()
        await self.cdrs.close()
        await self.store.close()


class _QueueDialer:
    """The queue service's :class:`~softswitch.apps.queueing.Dialer`: the calls of queued
    callbacks, placed by the switch and bridged with a late bridge."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch

    def call(
        self,
        user: str,
        caller_name: str,
        timeout: float,
        on_result: Callable[[int, str | None], None],
    ) -> None:
        switch = self.switch

        def answered(status: int, call_id: str | None) -> None:
            if status == 200 and call_id is not None and switch.media is not None:
                pt = switch.b2bua.answer(call_id, switch.loop.time(), by="callback")
                if pt is not None:  # the answered party hears ringback until the bridge
                    switch.media.attach_local(call_id, pt)
                    switch.media.play_stream(call_id, "ringback")
            on_result(status, call_id)

        switch.originate(
            user, caller="callback", caller_name=caller_name, timeout=timeout, on_result=answered
        )

    def connect(
        self,
        call_id: str,
        bindings: Sequence[Binding],
        timeout: float,
        on_result: Callable[[int, str | None], None],
    ) -> None:
        b2bua = self.switch.b2bua

        def done(status: int) -> None:
            on_result(status, b2bua.answered_contact(call_id) if status == 200 else None)

        b2bua.bridge(call_id, bindings, timeout, self.switch.loop.time(), done)
        self.switch._flush()

    def hangup(self, call_id: str) -> None:
        if self.switch.b2bua.hangup(call_id, "callback not connected", self.switch.loop.time()):
            self.switch._flush()


def _recording_doc(stats: RecordingStats) -> dict[str, object]:
    """What a closed recording adds to the call's record: its pauses and, with VAD on, the
    talk and silence time of each party (caller left, called party right)."""
    doc: dict[str, object] = {
        "recorded_seconds": round(stats.duration_seconds, 2),
        "pauses": [p.to_json() for p in stats.pauses],
    }
    if stats.talk is not None:
        talk = stats.talk
        doc["talk"] = {
            "caller_seconds": round(talk.left_talk_seconds, 2),
            "callee_seconds": round(talk.right_talk_seconds, 2),
            "overlap_seconds": round(talk.overlap_seconds, 2),
            "silence_seconds": round(talk.silence_seconds, 2),
        }
    return doc


async def serve(settings: Settings, plan: Plan | None = None) -> None:
    switch = Switch(settings, plan)
    await switch.start()
    # Long-lived objects made at start-up (settings, tables, modules) are never garbage: keep
    # them out of every collection, and collect the young generation less often, since a busy
    # switch allocates many short-lived messages.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[ReloadResult]] = set()

    def reload() -> None:
        log.info("SIGHUP: reloading the dialplan and the ACD")
        task = asyncio.ensure_future(switch.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info(
        "softswitch %s ready (domain %s, %d users)",
        VERSION,
        settings.sip.domain,
        len(settings.users),
    )
    await stop.wait()
    await switch.drain(float(settings.calls.shutdown_grace))
    await switch.stop()
    log.info("stopped")


def run(settings: Settings, plan: Plan | None = None) -> None:
    """Serve until SIGTERM; ``plan`` is the dialplan the settings name, already loaded."""
    Path(settings.registrar.binding_store).parent.mkdir(parents=True, exist_ok=True) if (
        settings.registrar.binding_store != ":memory:"
    ) else None
    try:
        import uvloop

        uvloop.run(serve(settings, plan))
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        asyncio.run(serve(settings, plan))


def configure_logging(level: str, fmt: str, argv: Sequence[str] = ()) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        if fmt == "text"
        else '{"time": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", '
        '"message": "%(message)s"}',
    )
