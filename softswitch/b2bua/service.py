"""The back-to-back user agent: calls between registered users.

It reacts to the transaction layer's events and answers with requests and responses through
the layer, synchronously, so a whole call can be simulated with a fake clock.

- Forking (parallel, RFC 3261 §16.6 behaviour on the B side), provisional responses relayed,
  the first 2xx wins, the other forks are CANCELled (§9.1) and late 2xx are ACKed and BYEd.
- Final response choice when every fork failed follows §16.7 step 6.
- CANCEL from the caller: 487 to the INVITE (§9.2); BYE from either side (§15.1); re-INVITE
  and other in-dialog requests relayed to the other leg (§14), 491 on glare (§14.1).
- A 2xx that is never ACKed ends the call with BYE (§13.3.1.4).
- Calls the switch places itself (click to call, a queue's callback, a supervisor's monitoring
  started from the API): the switch's own offer forked to a user's contacts, the first 2xx ACKed
  (§13.2.2.4, again for each retransmission) and the others CANCELled; the answered call is then
  the switch's own, like one it answered (:meth:`B2bua.originate`).
- Call transfer by REFER (RFC 3515, RFC 5589): the switch carries it out itself instead of
  relaying the REFER (see :meth:`B2bua._on_refer`).
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from media.dtmf import DtmfReceived, parse_dtmf_relay
from media.engine import PortsExhausted
from media.mixer import SupervisorMode
from softswitch.b2bua.call import Call, CallState, Leg, LegState, Monitor, Transfer
from softswitch.b2bua.transfer import (
    SIPFRAG,
    ReferRefused,
    Replaces,
    notify_headers,
    parse_refer,
    reoffer,
    sipfrag,
    wants_subscription,
)
from softswitch.registrar.bindings import Binding
from softswitch.sip.dialog import Dialog
from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError
from softswitch.sip.events import (
    AckReceived,
    AckTimedOut,
    Address,
    InviteCancelled,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TxnKey,
)
from softswitch.sip.headers import Headers, NameAddr
from softswitch.sip.message import Request, Response, make_response
from softswitch.sip.sdp import (
    G711_LAWS,
    MediaDescription,
    NegotiatedMedia,
    SessionDescription,
    anchor_stream,
    anchored,
    as_law,
    chosen_codec,
    codecs,
    g711_law,
    is_hold,
    make_offer,
    media_address,
    parse_answer,
    restricted,
    with_other_law,
)
from softswitch.sip.sdp import (
    answer as sdp_answer,
)
from softswitch.sip.txn_layer import TransactionLayer
from softswitch.sip.uri import SipUri, Uri, parse_uri

log = logging.getLogger("softswitch.b2bua")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, MESSAGE, NOTIFY, REFER"


def numeric_id(text: str) -> str:
    """A digits-only id derived from ``text`` (SDP's o= session id, RFC 4566 §5.2)."""
    return str(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big"))


class MediaControl(Protocol):
    """What the B2BUA asks of the media engine (media.engine.MediaEngine in the switch)."""

    address: str

    def allocate(self, call_id: str) -> tuple[int, int]: ...

    def set_remote(
        self, call_id: str, side: str, host: str, port: int, events_pt: int | None = None
    ) -> None: ...

    def connect(self, call_id: str) -> None: ...

    def transcode(self, call_id: str, a_pt: int | None, b_pt: int | None) -> None: ...

    def release(self, call_id: str) -> object: ...

    def echo(self, call_id: str) -> None: ...

    def digit(self, call_id: str, side: str, digit: DtmfReceived) -> None: ...

    def hold(self, call_id: str, side: str, payload_type: int) -> None: ...

    def monitor(
        self, call_id: str, supervisor_call: str, mode: SupervisorMode, agent_side: str
    ) -> bool: ...

    def unhold(self, call_id: str, side: str) -> None: ...

    def prompt_test(self, call_id: str, payload_type: int, prompt: Any) -> None: ...

    def end_local(self, call_id: str) -> None: ...


class Ids:
    """Where tags and Call-IDs come from (injected: random in production, counted in tests)."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def tag(self) -> str:
        return self._token()

    def call_id(self) -> str:
        return self._token()


@dataclass(slots=True)
class _Pending:
    """A client transaction the B2BUA started, and what to do with its answer."""

    leg: Leg
    #: "invite", "bye", "relay", "reinvite"; a transfer's: "transfer" (an INVITE to its
    #: target), "join" (the re-offer moving an attended transfer's target), "reoffer" (taking
    #: a transferee off hold), "notify"
    purpose: str
    origin_key: TxnKey | None = None  # the server transaction to answer (relays)
    origin_leg: Leg | None = None
    offer: SessionDescription | None = None  # the switch's own offer ("join", "reoffer")


def _status_rank(status: int) -> tuple[int, int]:
    """Lower is better when choosing the response for a caller (§16.7 step 6)."""
    if status >= 600:
        return (0, status)
    if status == 486:
        return (1, status)
    if status in (401, 407, 415, 420, 484):
        return (2, status)
    if 400 <= status < 500 and status not in (408, 480):
        return (3, status)
    if status == 480:
        return (4, status)
    if status == 408:
        return (5, status)
    return (6, status)


class B2bua:
    """All calls of the switch."""

    def __init__(
        self,
        layer: TransactionLayer,
        ids: Ids,
        *,
        domain: str,
        contact_for: Callable[[str], str],
        ring_timeout: float = 60.0,
        max_calls: int = 10_000,
        media: MediaControl | None = None,
    ) -> None:
        self.layer = layer
        self.ids = ids
        self.domain = domain
        self.contact_for = contact_for  # transport -> our Contact URI text
        self.ring_timeout = ring_timeout
        self.max_calls = max_calls
        self.media = media
        self.prompt_audio: Any = None  # what the prompt test plays (samples at 8 kHz)
        #: told of every call that ended, with the media engine's final report of it
        self.on_call_ended: Callable[[Call, object], None] | None = None
        self.calls: dict[str, Call] = {}
        self._dialogs: dict[tuple[str, str], Leg] = {}
        self._pending: dict[TxnKey, _Pending] = {}
        self._a_invites: dict[TxnKey, Call] = {}
        self._timers: list[tuple[float, int, str]] = []
        self._seq = 0
        self._hint: float | None = None
        self.draining = False
        #: a transfer target's registered contacts: [] when the user has none, None when
        #: there is no such user (the switch sets it to its registrar's lookup)
        self.locate: Callable[[str], Sequence[Binding] | None] = lambda user: None
        #: told of every transfer that succeeded: the call's id, the side of the party that
        #: transferred it ("a" or "b") and the target user (the ACD ends the agent's part)
        self.on_transferred: Callable[[str, str, str], None] = lambda call_id, side, target: None
        #: how long a transferor's phone has to send BYE after the final NOTIFY
        self.release_grace = 4.0

    # -- bookkeeping ---------------------------------------------------------------------------

    @property
    def table_sizes(self) -> dict[str, int]:
        return {
            "calls": len(self.calls),
            "dialogs": len(self._dialogs),
            "pending": len(self._pending),
            "invites": len(self._a_invites),
        }

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, call_id = heapq.heappop(self._timers)
            call = self.calls.get(call_id)
            if call is None:
                continue
            self._transfer_timers(call, now)
            if call.ring_deadline > now:
                continue
            if call.on_bridge is not None and (call.state is CallState.RINGING or call.bridging):
                log.info("call %s: the bridge was not answered in time", call.id)
                self._bridge_done(call, 408, now)
            elif call.state is CallState.RINGING:
                log.info("call %s: no answer within %.0f s", call.id, now - call.created)
                self._fail_call(call, 408, "No Answer", now)

    def _arm(self, call: Call, deadline: float) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (deadline, self._seq, call.id))
        if self._hint is None or deadline < self._hint:
            self._hint = deadline

    def take_deadline_hint(self) -> float | None:
        """The earliest deadline armed since the last call (see TransactionLayer)."""
        hint, self._hint = self._hint, None
        return hint

    # -- new calls -----------------------------------------------------------------------------

    def start_call(
        self,
        event: RequestReceived,
        caller: str,
        callee: str,
        bindings: Sequence[Binding],
        now: float,
    ) -> None:
        """Fork the caller's INVITE to every contact of ``callee`` (§16.6)."""
        req = event.request
        if not self.draining and len(self.calls) < self.max_calls and not bindings:
            self._reply(now, event.key, req, 480, "Temporarily Unavailable")
            return
        call = self._new_call(event, caller, callee, now)
        if call is None:
            return
        call.move(CallState.RINGING)
        for binding in bindings:
            self._send_fork(call, binding, now)
        if not call.forks:  # no contact could be reached (unusable URIs or addresses)
            self._fail_call(call, 480, "Temporarily Unavailable", now, cause="no usable contact")
            return
        call.ring_deadline = now + self.ring_timeout
        self._arm(call, call.ring_deadline)
        log.info("call %s: %s -> %s, %d fork(s)", call.id, caller, callee, len(call.forks))

    def _new_call(
        self, event: RequestReceived, caller: str, callee: str, now: float
    ) -> Call | None:
        """A call for the caller's INVITE, in state ROUTING, its media allocated and the
        caller's offer prepared for forks; None (and the caller told why) if it cannot be had.
        """
        req = event.request
        if self.draining:
            self._reply(now, event.key, req, 503, "Shutting Down", extra=[("Retry-After", "30")])
            return None
        if len(self.calls) >= self.max_calls:
            self._reply(now, event.key, req, 503, "Too Many Calls")
            return None
        offer: tuple[SessionDescription, int] | None = None
        if self.media is not None and req.body and req.content_type == "application/sdp":
            try:
                sdp = SessionDescription.parse(req.body)
                offer = (sdp, anchor_stream(sdp))
            except RemoteProtocolError as exc:
                self._reply(now, event.key, req, exc.status, exc.message)
                return None
        call = Call(self.ids.call_id(), caller, callee, now, state=CallState.ROUTING)
        call.caller_name = _display_name(req)
        if offer is not None and self.media is not None:
            try:
                call.ports = self.media.allocate(call.id)
            except PortsExhausted:
                log.warning("call from %s refused: no RTP ports left", caller)
                self._reply(now, event.key, req, 503, "No Media Ports")
                return None
            call.stream = offer[1]
            call.a_offer = offer[0]
            forwarded, added = with_other_law(offer[0], call.stream)
            if added is not None:  # the switch translates if a fork speaks only the other
                law = g711_law(offer[0].media[call.stream])
                call.a_law = law.name.lower() if law is not None else None
            call.offer_for_b = self._rewrite(call, forwarded, "a")
        call.a = Leg(call, "a", req.call_id, self.ids.tag(), event.source, req, event.key)
        self.calls[call.id] = call
        self._a_invites[event.key] = call
        return call

    # -- calls run by a dialplan session -------------------------------------------------------

    def accept(self, event: RequestReceived, caller: str, number: str, now: float) -> Call | None:
        """Take a call for a dialplan session. The caller's INVITE waits (the transaction
        layer has sent 100 Trying, RFC 3261 §17.2.1) while the session works; the session then
        answers it (:meth:`answer`), bridges it (:meth:`bridge`) or refuses it
        (:meth:`reject`). None, and the caller told why, if the call cannot be taken."""
        call = self._new_call(event, caller, number, now)
        if call is not None:
            log.info("call %s: %s -> %s, in the dialplan", call.id, caller, number)
        return call

    def answer(self, call_id: str, now: float, by: str = "dialplan") -> int | None:
        """The switch answers leg A itself (200 OK with its own SDP answer, RFC 3264 §6):
        the payload type the caller will send and receive, or None if it cannot be answered
        (no offer, the call gone or answered already). A call the switch placed is answered
        by its phone already: the payload type leg A settled on, while the switch is its far
        end (not bridged, not a supervisor's), so a session runs it like any it answered."""
        call = self.calls.get(call_id)
        if call is None:
            return None
        if call.originated:
            if (
                call.local
                and call.state in (CallState.ANSWERED, CallState.CONFIRMED)
                and call.b is None
                and call.monitors is None
            ):
                return call.a_pt
            return None
        if call.state is not CallState.ROUTING:
            return None
        pt = self._answer_a(call, now)
        if pt is not None:
            call.answered_by = by
        return pt

    def reject(self, call_id: str, status: int, reason: str | None, now: float) -> None:
        """A session ends its call: an error response while unanswered (e.g. 486 for busy),
        else BYE."""
        call = self.calls.get(call_id)
        if call is None or call.state in (CallState.ENDING, CallState.ENDED):
            return
        if call.state in (CallState.ROUTING, CallState.RINGING):
            cause = f"{status} {reason}" if reason else str(status)
            self._fail_call(call, status, reason, now, cause=f"dialplan: {cause}")
        else:
            self._hangup(call, "dialplan hung up", now)

    def bridge(
        self,
        call_id: str,
        bindings: Sequence[Binding],
        timeout: float | None,
        now: float,
        on_result: Callable[[int], None],
    ) -> None:
        """Ring ``bindings`` at once for a session and connect the caller to the first that
        answers; ``on_result`` gets 200, or the best failure status (§16.7 step 6) when every
        fork failed, or 408 when ``timeout`` (default: the ring timeout) ran out. Unanswered,
        the caller's own offer goes out and the answer is relayed; answered already by the
        switch, the forks get the switch's own offer (a "late" bridge, RFC 3264 §5) and the
        relay starts when one answers."""
        call = self.calls.get(call_id)
        if call is None or call.on_bridge is not None or call.b is not None:
            on_result(481)
            return
        if not bindings:
            on_result(480)
            return
        if call.state is CallState.ROUTING:
            call.move(CallState.RINGING)
        elif call.local and call.state in (CallState.ANSWERED, CallState.CONFIRMED):
            if self.media is None or call.ports is None:
                on_result(488)
                return
            laws = ("PCMA", "PCMU") if call.a_law == "pcma" else ("PCMU", "PCMA")
            offer = make_offer(
                local_address=self.media.address,
                local_port=call.ports[1],
                session_id=numeric_id(call.id + "b"),
                session_version=1,
                codec_names=laws,
            )
            call.offer_for_b = bytes(offer)
            call.sent_sdp["b"] = offer
            call.bridging = True
        else:
            on_result(481)
            return
        call.on_bridge = on_result
        call.bridge_start = len(call.forks)
        for binding in bindings:
            self._send_fork(call, binding, now)
        if len(call.forks) == call.bridge_start:
            self._bridge_done(call, 480, now)
            return
        call.ring_deadline = now + (timeout if timeout is not None else self.ring_timeout)
        self._arm(call, call.ring_deadline)
        log.info(
            "call %s: bridging to %d contact(s)%s",
            call.id,
            len(call.forks) - call.bridge_start,
            " (answered by the switch)" if call.bridging else "",
        )

    def cancel_bridge(self, call_id: str, now: float) -> None:
        """Stop a session's bridge that is still ringing (its result is 487)."""
        call = self.calls.get(call_id)
        if call is not None and call.on_bridge is not None and call.b is None:
            self._bridge_done(call, 487, now)

    def answered_contact(self, call_id: str) -> str | None:
        """The registered contact whose fork answered the call (None if none did)."""
        call = self.calls.get(call_id)
        if call is None or call.b is None:
            return None
        return call.b.contact or None

    def _bridge_done(self, call: Call, status: int, now: float) -> None:
        """A session's bridge failed with ``status``: forks still ringing are cancelled, the
        call is the session's again, and the session is told."""
        callback, call.on_bridge = call.on_bridge, None
        if call.bridging:
            call.bridging = False
        elif call.state is CallState.RINGING:
            call.move(CallState.ROUTING)
        for fork in call.forks[call.bridge_start :]:
            if fork.state in (LegState.TRYING, LegState.EARLY):
                self.layer.send_cancel(fork.invite_key, now)
        log.info("call %s: bridge failed (%d), back to the dialplan", call.id, status)
        if callback is not None:
            callback(status)

    def supervise(
        self,
        event: RequestReceived,
        caller: str,
        number: str,
        extension: str,
        mode: str,
        now: float,
    ) -> None:
        """A supervisor dialled a feature code and an extension: join the live call of that
        extension in ``mode`` ("listen", "whisper" or "barge"; digits 1-3 change it later)."""
        monitor = self.monitor_target(extension, mode)
        if monitor is None:
            self._reply(now, event.key, event.request, 404, "No Call To Monitor")
            return
        self.answer_local(event, caller, number, "supervisor", now, monitor=monitor)

    def monitor_target(
        self, extension: str, mode: str, call_id: str | None = None
    ) -> Monitor | None:
        """What a supervisor of ``extension`` joins in ``mode`` ("listen", "whisper" or
        "barge"): the live, bridged call that extension is on (the call ``call_id`` only, when
        given) and its side. None if there is no such call, or the mode is unknown."""
        try:
            chosen = SupervisorMode[mode.upper()]
        except KeyError:
            return None
        calls = [self.calls.get(call_id)] if call_id is not None else self.calls.values()
        for call in calls:
            if call is None or not _monitorable(call):
                continue
            side = _side_of(call, extension)
            if side is not None:
                return Monitor(call.id, side, chosen)
        return None

    def agent_side(self, call_id: str, user: str) -> str | None:
        """The side ("a" or "b") of the call ``call_id`` that ``user`` is on, or None. The
        callee (an agent a queue offered the call to: the user of the answering binding) is
        on side b; on a call the switch placed, the user it called is on side a."""
        call = self.calls.get(call_id)
        return None if call is None else _side_of(call, user)

    # -- calls the switch places ------------------------------------------------------------------

    def originate(
        self,
        user: str,
        bindings: Sequence[Binding],
        *,
        caller: str,
        caller_name: str | None,
        timeout: float,
        now: float,
        on_result: Callable[[int, str | None], None],
        monitor: Monitor | None = None,
    ) -> str | None:
        """Place a call to ``user`` (click to call, a queue's callback, a supervisor's
        monitoring started from the API): the switch's own offer (PCMU, PCMA, telephone-event;
        RFC 3264 §5) goes to every contact in ``bindings`` at once, From ``caller`` at the
        switch's domain with ``caller_name``, To the user. The first 2xx is ACKed (RFC 3261
        §13.2.2.4) and the other forks CANCELled (§9.1); the call is then the switch's own,
        like one it answered itself: a session runs it (:meth:`answer` gives leg A's payload
        type), bridges it to another party (:meth:`bridge`, a late bridge) or hangs it up.

        With ``monitor`` (:meth:`monitor_target`), the answered phone joins that call as its
        supervisor, in PCMU (the mix's codec), and is hung up when that call ends.

        ``on_result`` is called exactly once: 200 and the call id when the phone answered;
        else the failure and None: the best status of the forks (§16.7 step 6), 408 when
        nobody answered within ``timeout`` s, 487 when the call was hung up while ringing,
        and at once (before this returns) 480 when no contact can be rung, 404 when there is
        nothing to monitor, 503 when the switch refuses new calls (draining, the call limit,
        no media). Returns the new call's id, or None when it was refused at once.
        """
        status, why = 0, ""
        target: Call | None = None
        reachable: list[tuple[Binding, tuple[Address, Uri]]] = []
        if self.draining:
            status, why = 503, "the switch is shutting down"
        elif len(self.calls) >= self.max_calls:
            status, why = 503, "too many calls"
        elif self.media is None:
            status, why = 503, "no media anchoring"
        elif monitor is not None:
            target = self.calls.get(monitor.call_id)
            if target is None or not _monitorable(target) or monitor.agent_side not in ("a", "b"):
                status, why = 404, f"no call {monitor.call_id} to monitor"
        if not status:
            for binding in bindings:
                where = self._reach(f"to {user}", binding)
                if where is not None:
                    reachable.append((binding, where))
            if not reachable:
                status, why = 480, "no usable contact" if bindings else "not registered"
        call = Call(self.ids.call_id(), caller, user, now)
        if not status and self.media is not None:
            try:
                call.ports = self.media.allocate(call.id)
            except PortsExhausted:
                status, why = 503, "no RTP ports left"
        if status or call.ports is None or self.media is None:
            log.info("call %s -> %s not placed: %s (%d)", caller, user, why, status)
            on_result(status, None)
            return None
        call.caller_name = caller_name
        call.on_origin = on_result
        offer = make_offer(
            local_address=self.media.address,
            local_port=call.ports[0],
            session_id=numeric_id(call.id),
            session_version=call.sdp_version,
            codec_names=("PCMU",) if monitor is not None else ("PCMU", "PCMA"),
        )
        call.sent_sdp["a"] = offer
        frm = NameAddr(SipUri(self.domain, caller), caller_name)
        for binding, where in reachable:
            call.origin.append(
                self._invite(
                    call, "a", binding, where, frm, user, None, bytes(offer), "application/sdp", now
                )
            )
        call.a = call.origin[0]
        self.calls[call.id] = call
        if monitor is not None and target is not None:
            call.joins = monitor
            call.monitors = target.id
            target.supervisors.add(call.id)  # a supervisor still ringing goes with the call
        call.ring_deadline = now + timeout
        self._arm(call, call.ring_deadline)
        log.info(
            "call %s: the switch calls %s for %s, %d fork(s)%s",
            call.id,
            user,
            caller,
            len(call.origin),
            f" (to monitor call {monitor.call_id})" if monitor is not None else "",
        )
        return call.id

    def _origin_response(self, leg: Leg, resp: Response, now: float) -> None:
        """A response to one of the INVITEs of a call the switch placed."""
        status = resp.status
        if status < 200:
            if status > 100 and leg.state is LegState.TRYING:
                leg.state = LegState.EARLY
            return
        if status < 300:
            self._origin_answered(leg, resp, now)
        else:
            self._origin_failed(leg, status, now)

    def _origin_answered(self, leg: Leg, resp: Response, now: float) -> None:
        """A contact the switch called answered: ACK (again for a retransmitted 2xx,
        §13.2.2.4). The first one is leg A (the others are CANCELled, or sent BYE if they
        answered too, §16.7 step 5 behaviour), its media the switch's."""
        call = leg.call
        if leg.ack is not None:  # a retransmission: the same ACK again, whatever came since
            self.layer.send_stateless(_clone(leg.ack), leg.destination)
            return
        if leg.state is not LegState.TRYING and leg.state is not LegState.EARLY:
            return  # a 2xx that could not make a dialog, retransmitted
        try:
            dialog = Dialog.as_uac(leg.invite, resp)
        except RemoteProtocolError as exc:
            log.warning("call %s: unusable 2xx from %s: %s", call.id, leg.contact, exc)
            self._origin_failed(leg, 502, now)
            return
        leg.dialog = dialog
        leg.ack = dialog.create_request("ACK", cseq=leg.invite.cseq.seq)
        self.layer.send_stateless(_clone(leg.ack), leg.destination)
        leg.state = LegState.UP
        self._dialogs[(leg.call_id, leg.local_tag)] = leg
        if call.state is not CallState.RINGING:  # another contact won, or the call is over
            self._send_bye(leg, now)
            return
        try:
            chosen = parse_answer(
                SessionDescription.parse(leg.invite.body), SessionDescription.parse(resp.body)
            )[0]
        except RemoteProtocolError as exc:
            log.warning("call %s: %s answered unusable SDP: %s", call.id, leg.contact, exc)
            self._send_bye(leg, now)
            self._origin_failed(leg, 488, now)
            return
        assert self.media is not None
        call.a = leg
        call.answered_at = now
        call.final_status = 200
        call.answered_by = str(leg.invite.uri)
        for other in call.origin:
            if other is not leg and other.state in (LegState.TRYING, LegState.EARLY):
                self.layer.send_cancel(other.invite_key, now)
        self.media.set_remote(
            call.id, "a", chosen.remote_address, chosen.remote_port, chosen.telephone_event_pt
        )
        call.a_pt = chosen.payload_type
        law = chosen.codec.lower()
        call.a_law = law if law in G711_LAWS else None
        call.local = True
        call.move(CallState.ANSWERED)
        call.move(CallState.CONFIRMED)  # our ACK confirms the dialog
        log.info("call %s: %s answered at %s", call.id, call.callee, leg.contact)
        if call.joins is not None and not self._join(call, call.joins, now):
            return
        callback, call.on_origin = call.on_origin, None
        if callback is not None:
            callback(200, call.id)

    def _join(self, call: Call, monitor: Monitor, now: float) -> bool:
        """The supervisor's phone answered: into the monitored call's mix. False (the call
        hung up, its requester told 404) if that call cannot be monitored any more."""
        assert self.media is not None
        target = self.calls.get(monitor.call_id)
        if target is None or not self.media.monitor(
            target.id, call.id, monitor.mode, monitor.agent_side
        ):
            log.info("call %s: nothing left to monitor in call %s", call.id, monitor.call_id)
            callback, call.on_origin = call.on_origin, None
            self._hangup(call, "nothing to monitor", now)
            if callback is not None:
                callback(404, None)
            return False
        call.answered_by = f"supervisor ({monitor.mode.name.lower()}) of call {target.id}"
        return True

    def _origin_failed(self, leg: Leg, status: int, now: float) -> None:
        """One INVITE of a call the switch placed failed (or its answer was unusable): the
        call fails once all did, with the best of their statuses (§16.7 step 6)."""
        call = leg.call
        if leg.state is not LegState.ENDED:
            leg.state = LegState.FAILED
        leg.status = status
        if call.state is not CallState.RINGING:
            self._maybe_finish(call)
            return
        if all(o.state in (LegState.FAILED, LegState.ENDED) for o in call.origin):
            best = min((o.status for o in call.origin), key=_status_rank)
            self._fail_call(call, best, None, now, cause=f"{best}")

    def answer_local(
        self,
        event: RequestReceived,
        caller: str,
        number: str,
        app: str,
        now: float,
        *,
        monitor: Monitor | None = None,
    ) -> None:
        """The switch answers itself: ``app`` is "echo" (the caller's audio sent back),
        "prompt" (a prompt, then a tone for each digit: ``prompt_audio`` is what it plays) or
        "supervisor" (joins the live call that ``monitor`` names)."""
        req = event.request
        if self.media is None or not req.body or req.content_type != "application/sdp":
            self._reply(now, event.key, req, 488, "This Number Needs An SDP Offer")
            return
        call = self._new_call(event, caller, number, now)
        if call is None:
            return
        if monitor is not None:
            target = self.calls.get(monitor.call_id)
            if target is None or not self.media.monitor(
                target.id, call.id, monitor.mode, monitor.agent_side
            ):
                self._fail_call(call, 404, "No Call To Monitor", now, cause="nothing to monitor")
                return
            target.supervisors.add(call.id)
            call.monitors = target.id
            app = f"supervisor ({monitor.mode.name.lower()}) of call {target.id}"
        pt = self._answer_a(call, now)
        if pt is None:
            return
        call.answered_by = app
        if app == "echo":
            self.media.echo(call.id)
        elif monitor is None:
            self.media.prompt_test(call.id, pt, self.prompt_audio)
        what = app if app.startswith("supervisor") else f"{app} test"
        log.info("call %s: %s on the %s (%s)", call.id, caller, what, number)

    def _answer_a(self, call: Call, now: float) -> int | None:
        """200 OK with the switch's SDP answer to the caller's offer (RFC 3264 §6); the
        payload type chosen, or None (the caller told why) if there is nothing to answer."""
        a = call.a
        req = a.invite
        if self.media is None or call.a_offer is None or call.ports is None:
            self._fail_call(call, 488, "This Number Needs An SDP Offer", now, cause="no offer")
            return None
        try:
            answer_sdp, chosen = self._answer_offer(call, call.a_offer, call.stream)
        except RemoteProtocolError as exc:
            self._fail_call(call, exc.status, exc.message, now)
            return None
        ok = make_response(req, 200, "OK", to_tag=a.local_tag)
        ok.headers.add("Contact", f"<{self.contact_for(a.destination.transport)}>")
        ok.headers.add("Allow", ALLOW)
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = bytes(answer_sdp)
        try:
            a.dialog = Dialog.as_uas(req, a.local_tag, ok)
        except RemoteProtocolError as exc:
            self._fail_call(call, 400, exc.message, now)
            return None
        self._dialogs[(a.call_id, a.local_tag)] = a
        a.state = LegState.UP
        call.answered_at = now
        call.final_status = 200
        call.local = True
        call.a_pt = chosen.payload_type
        law = chosen.codec.lower()
        call.a_law = law if law in G711_LAWS else None
        call.move(CallState.ANSWERED)
        self._a_invites.pop(a.invite_key, None)
        self.layer.respond(a.invite_key, ok, now)
        return chosen.payload_type

    def _send_fork(self, call: Call, binding: Binding, now: float) -> None:
        """Ring one contact for leg B with what leg A offered (or the switch's offer of a late
        bridge). The fork names the caller and the dialled number; on a call the switch
        placed, the party on leg A calls the bridge's target (click to call)."""
        where = self._reach(call.id, binding)
        if where is None:
            return
        a_req = call.a.invite
        if call.originated:
            frm = NameAddr(SipUri(self.domain, call.callee))
            to_user, mf = binding.aor.partition("@")[0], None
        else:
            frm = NameAddr(SipUri(self.domain, call.caller), call.caller_name)
            to_user, mf = call.callee, a_req.max_forwards
        body = call.offer_for_b if call.offer_for_b is not None else a_req.body
        ctype = a_req.headers.get("Content-Type") if a_req.body else None
        call.forks.append(
            self._invite(call, "b", binding, where, frm, to_user, mf, body, ctype, now)
        )

    def _reach(self, call_id: str, binding: Binding) -> tuple[Address, Uri] | None:
        """Where a binding's INVITE goes: the flow its REGISTER came on (symmetric signalling
        through NAT) and its contact as the Request-URI; None (logged) if either is unusable."""
        try:
            return Address.parse(binding.source), parse_uri(binding.contact)
        except (ValueError, RemoteProtocolError):
            log.warning(
                "call %s: unusable binding %s via %s", call_id, binding.contact, binding.source
            )
            return None

    def _invite(
        self,
        call: Call,
        side: str,
        binding: Binding,
        where: tuple[Address, Uri],
        frm: NameAddr,
        to_user: str,
        mf: int | None,
        body: bytes,
        ctype: str | None,
        now: float,
        purpose: str = "invite",
    ) -> Leg:
        """Send an initial INVITE to one contact (RFC 3261 §8.1.1: a new Call-ID, our From
        tag, CSeq 1): the leg of the UAC dialog it may create (§12.1.2)."""
        destination, target = where
        h = Headers()
        h.add("Max-Forwards", str(max(0, (mf if mf is not None else 70) - 1)))
        tag = self.ids.tag()
        h.add("From", f"{frm};tag={tag}")
        h.add("To", str(NameAddr(SipUri(self.domain, to_user))))
        call_id = self.ids.call_id()
        h.add("Call-ID", call_id)
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<{self.contact_for(destination.transport)}>")
        h.add("Allow", ALLOW)
        if ctype and body:
            h.add("Content-Type", ctype)
        invite = Request("INVITE", target, h, body)
        key = self.layer.send_request(invite, destination, now)
        leg = Leg(
            call,
            side,
            call_id,
            tag,
            destination,
            invite,
            key,
            contact=binding.contact,
            user=binding.aor.partition("@")[0],
        )
        self._track(key, _Pending(leg, purpose))
        return leg

    # -- events from the transaction layer -------------------------------------------------------

    def on_response(self, event: ResponseReceived, now: float) -> bool:
        """Handle a response for one of our client transactions; False if it is not ours."""
        pending = self._pending.get(event.key)
        if pending is None:
            return False
        resp = event.response
        if resp.status >= 200 and not (
            pending.purpose in ("invite", "transfer") and resp.status < 300
        ):
            self._untrack(event.key)
        if pending.purpose == "invite":
            if pending.leg.side == "a":  # a call the switch placed
                self._origin_response(pending.leg, resp, now)
            else:
                self._fork_response(pending.leg, resp, now)
        elif pending.purpose == "bye":
            if resp.status >= 200:
                self._leg_ended(pending.leg, now)
        elif pending.purpose in ("relay", "reinvite"):
            self._relay_response(pending, resp, now)
        elif pending.purpose == "transfer":
            self._transfer_response(pending.leg, resp, now)
        elif pending.purpose in ("join", "reoffer"):
            self._offer_response(pending, resp.status, resp, now)
        elif resp.status >= 200:  # a NOTIFY's answer: nothing to do but let the call go
            self._maybe_finish(pending.leg.call)
        return True

    def on_timeout(self, event: TransactionTimedOut, now: float) -> bool:
        pending = self._untrack(event.key)
        if pending is None:
            return False
        leg = pending.leg
        if pending.purpose == "invite":
            if leg.side == "a":
                self._origin_failed(leg, 408, now)
            else:
                self._fork_failed(leg, 408, now)
        elif pending.purpose == "bye":
            self._leg_ended(leg, now)
        elif pending.purpose == "transfer":
            self._transfer_fork_failed(leg, 408, now)
        elif pending.purpose in ("join", "reoffer"):
            self._offer_response(pending, 408, None, now)
        elif pending.purpose == "notify":  # the transferor's phone is gone; its BYE ends it
            self._maybe_finish(leg.call)
        else:
            if pending.origin_key is not None and pending.origin_leg is not None:
                self._reply(now, pending.origin_key, None, 408, "Request Timeout")
            if pending.purpose == "reinvite":
                leg.reinvite_pending = False
                if pending.origin_leg is not None:
                    pending.origin_leg.reinvite_pending = False
            log.info(
                "call %s: %s timed out on leg %s, ending", leg.call.id, pending.purpose, leg.side
            )
            self._hangup(leg.call, "peer unreachable", now)
        return True

    def on_cancelled(self, event: InviteCancelled, now: float) -> bool:
        call = self._a_invites.get(event.invite_key)
        if call is None:
            return False
        if call.state in (CallState.RINGING, CallState.ROUTING):
            log.info("call %s: cancelled by the caller", call.id)
            self._fail_call(call, 487, "Request Terminated", now, cause="cancelled")
        return True

    def on_ack(self, event: AckReceived, now: float) -> bool:
        leg = self._leg_for(event.request)
        if leg is None:
            return False
        call = leg.call
        if leg.side == "a" and call.state is CallState.ANSWERED:
            call.move(CallState.CONFIRMED)
        return True

    def on_ack_timeout(self, event: AckTimedOut, now: float) -> bool:
        resp = event.response
        leg = self._dialogs.get((resp.call_id, resp.to.tag or ""))
        if leg is None:
            return False
        if leg.call.state is CallState.ANSWERED:
            log.warning("call %s: the caller never acknowledged the 200, ending", leg.call.id)
            self._hangup(leg.call, "no ACK", now)
        return True

    def on_in_dialog(self, event: RequestReceived, now: float) -> bool:
        """A request with a To tag; False when it matches no dialog (the caller sends 481)."""
        req = event.request
        leg = self._leg_for(req)
        if leg is None or leg.dialog is None:
            return False
        try:
            leg.dialog.receive_request(req)
        except RemoteProtocolError as exc:
            self._reply(now, event.key, req, exc.status, exc.message)
            return True
        call = leg.call
        if (
            call.originated
            and leg.side == "a"
            and (leg is not call.a or call.state is CallState.RINGING)
        ):
            # a contact that answered after another one had, or with an answer the switch
            # could not use: the switch sent it BYE
            if req.method == "BYE":
                self._reply(now, event.key, req, 200, "OK")
                self._leg_ended(leg, now)
            else:
                self._reply(now, event.key, req, 481, "Call Leg Gone")
            return True
        if leg is not call.a and leg is not call.b:
            # out of the call: a transferor's leg after the transfer, a fork that lost
            if req.method == "BYE":
                self._reply(now, event.key, req, 200, "OK")
                if call.release is not None and call.release[0] is leg:
                    call.release = None
                self._leg_ended(leg, now)
            else:
                self._reply(now, event.key, req, 481, "Call Leg Gone")
            return True
        if call.transfer is not None:
            self._in_transfer(call.transfer, leg, event, now)
            return True
        if req.method == "BYE":
            self._reply(now, event.key, req, 200, "OK")
            leg.state = LegState.ENDED
            who = _party(leg)
            log.info("call %s: BYE from the %s", call.id, who)
            self._hangup(call, f"{who} hung up", now, skip=leg)
            return True
        if req.method == "INFO" and self.media is not None and call.ports is not None:
            # DTMF by SIP INFO (application/dtmf-relay), the fallback of phones that send
            # neither RFC 4733 events nor clean tones: reported like any other digit, and
            # still relayed to a far end that may want it
            digit = parse_dtmf_relay(
                req.body.decode("utf-8", "replace"), req.headers.get("Content-Type") or ""
            )
            if digit is not None:
                self.media.digit(call.id, leg.side, digit)
                if leg.other is None:  # the switch itself is the far end
                    self._reply(now, event.key, req, 200, "OK")
                    return True
        other = leg.other
        if other is None and call.local and leg.side == "a":
            self._local_in_dialog(call, event, now)  # the switch is the far end
            return True
        if req.method == "REFER":
            self._on_refer(leg, event, now)
            return True
        if other is None or other.dialog is None or other.state is not LegState.UP:
            self._reply(now, event.key, req, 481, "Call Leg Gone")
            return True
        if req.method == "INVITE":
            if leg.reinvite_pending or other.reinvite_pending:
                self._reply(now, event.key, req, 491, "Request Pending")  # §14.1 glare
                return True
            leg.reinvite_pending = other.reinvite_pending = True
        purpose = "reinvite" if req.method == "INVITE" else "relay"
        extra: list[tuple[str, str]] = []
        if req.method in ("INVITE", "UPDATE"):
            extra.append(("Contact", f"<{self.contact_for(other.destination.transport)}>"))
        for name in ("Content-Disposition", "Event", "Subscription-State", "Info-Package"):
            value = req.headers.get(name)
            if value is not None:
                extra.append((name, value))
        if req.method in ("INVITE", "UPDATE"):
            self._music_on_hold(call, leg, req.body)
        body = (
            self._anchor_body(call, req.body, leg.side)
            if req.method in ("INVITE", "UPDATE")
            else req.body
        )
        out = other.dialog.create_request(
            req.method, body=body, content_type=req.headers.get("Content-Type"), extra=extra
        )
        key = self.layer.send_request(out, other.destination, now)
        self._track(key, _Pending(other, purpose, event.key, leg))
        return True

    def _answer_offer(
        self, call: Call, offer: SessionDescription, index: int, *, new_version: bool = False
    ) -> tuple[SessionDescription, NegotiatedMedia]:
        """The switch's own answer to leg A's ``offer`` (RFC 3264 §6; a new ``o=`` version
        for a re-offer, §8), with leg A's media pointed at what the offer names. Raises
        RemoteProtocolError (488) when nothing in it can be accepted."""
        assert self.media is not None and call.ports is not None
        answer_sdp, negotiated = sdp_answer(
            offer,
            local_address=self.media.address,
            local_ports=[call.ports[0]] * len(offer.media),
            session_id=numeric_id(call.id),
            session_version=call.sdp_version + 1 if new_version else call.sdp_version,
        )
        if new_version:
            call.sdp_version += 1
        call.sent_sdp["a"] = answer_sdp
        chosen = next(n for n in negotiated if n.index == index)
        self.media.set_remote(
            call.id, "a", chosen.remote_address, chosen.remote_port, chosen.telephone_event_pt
        )
        return answer_sdp, chosen

    def _local_in_dialog(self, call: Call, event: RequestReceived, now: float) -> None:
        """A request in the dialog of a call the switch answered itself (an IVR, a queue): a
        re-INVITE or UPDATE (a session refresh, RFC 4028; a new address; hold) gets the
        switch's answer to the new offer (RFC 3264 §8), OPTIONS a 200; anything else 501."""
        req = event.request
        a = call.a
        if req.method == "OPTIONS":
            self._reply(
                now, event.key, req, 200, "OK", to_tag=a.local_tag, extra=[("Allow", ALLOW)]
            )
            return
        if req.method not in ("INVITE", "UPDATE"):
            self._reply(now, event.key, req, 501, "Not Implemented Here")
            return
        contact = self.contact_for(a.destination.transport)
        if not req.body:  # a refresh without an offer: nothing changes (RFC 4028 §9)
            self._reply(now, event.key, req, 200, "OK", to_tag=a.local_tag, contact=contact)
            return
        if self.media is None or call.ports is None:
            self._reply(now, event.key, req, 488, "Not Acceptable Here")
            return
        try:
            offer = SessionDescription.parse(req.body)
            answer_sdp, _ = self._answer_offer(call, offer, anchor_stream(offer), new_version=True)
        except RemoteProtocolError as exc:
            self._reply(now, event.key, req, exc.status, exc.message, to_tag=a.local_tag)
            return
        self._reply(
            now,
            event.key,
            req,
            200,
            "OK",
            body=bytes(answer_sdp),
            to_tag=a.local_tag,
            contact=contact,
            extra=[("Allow", ALLOW)],
        )

    # -- call transfer (REFER) -----------------------------------------------------------------

    def _on_refer(self, leg: Leg, event: RequestReceived, now: float) -> None:
        """A REFER in the dialog of ``leg`` (RFC 3515): the switch itself connects the other
        party of the call (the transferee) to the Refer-To target, instead of relaying the
        REFER to a phone. Refused at once, with the status of :func:`parse_refer` (400, 403,
        501) or:

        - 491 Request Pending: a transfer or a re-INVITE is under way on the call;
        - 403 Call Not Bridged: the call is not a confirmed call between two phones;
        - 404 No Such User / 480 Temporarily Unavailable: a blind transfer's target is no
          user of the switch / has no registered contact.

        Else 202 Accepted and a NOTIFY ``100 Trying`` (RFC 3515 §2.4.5; none with
        ``Refer-Sub: false``, RFC 4488), then, blind (RFC 5589 §6), the target's contacts are
        rung with the switch's own offer while the transferee hears music on hold; attended
        (a Replaces naming another of the switch's dialogs, RFC 3891, RFC 5589 §7), the far
        party of that dialog is re-offered the transferee's call (no new INVITE). The final
        NOTIFY carries the outcome: ``200 OK`` (the transferor's leg is then released: its
        phone is expected to send BYE, else the switch does after ``release_grace``), or the
        failure, after which the transferee is back with the transferor (if the transferor
        hung up meanwhile, the call ends). A Replaces naming no dialog the switch can join
        gets a final NOTIFY ``481``.
        """
        req = event.request
        call = leg.call
        leg.refers += 1
        other = leg.other
        bindings: Sequence[Binding] | None = None
        try:
            target = parse_refer(req)
            if (
                call.transfer is not None
                or leg.reinvite_pending
                or (other is not None and other.reinvite_pending)
            ):
                raise ReferRefused(491, "Request Pending")
            if (
                call.state is not CallState.CONFIRMED
                or other is None
                or other.state is not LegState.UP
                or other.dialog is None
                or call.bridging
                or call.monitors is not None
                or self.media is None
                or call.ports is None
            ):
                raise ReferRefused(403, "Call Not Bridged")
            if target.replaces is None:
                bindings = self.locate(target.user)
                if bindings is None:
                    raise ReferRefused(404, "No Such User")
                if not bindings:
                    raise ReferRefused(480, "Temporarily Unavailable")
        except ReferRefused as exc:
            log.info("call %s: REFER from the %s refused: %s", call.id, _party(leg), exc)
            self._reply(now, event.key, req, exc.status, exc.reason)
            return
        subscribed = wants_subscription(req)
        self._reply(
            now,
            event.key,
            req,
            202,
            "Accepted",
            extra=[] if subscribed else [("Refer-Sub", "false")],
            contact=self.contact_for(leg.destination.transport),
        )
        transfer = Transfer(
            call,
            leg,
            target.user,
            event="refer" if leg.refers == 1 else f"refer;id={req.cseq.seq}",
            notify=subscribed,
            deadline=now + self.ring_timeout,
            was_held=other.side in call.held,
        )
        call.transfer = transfer
        log.info(
            "call %s: the %s transfers the %s to %s (%s)",
            call.id,
            _party(leg),
            _party(other),
            target.user,
            "attended" if target.replaces is not None else "blind",
        )
        self._notify(transfer, 100, "Trying", now)
        if target.replaces is not None:
            self._attended(transfer, target.replaces, now)
        elif bindings is not None:
            self._blind(transfer, bindings, now)

    def _transferee(self, transfer: Transfer) -> Leg:
        call = transfer.call
        if transfer.transferor.side == "b":
            return call.a
        assert call.b is not None
        return call.b

    def _notify(
        self, transfer: Transfer, status: int, reason: str, now: float, final: bool = False
    ) -> None:
        """A NOTIFY of the REFER's implicit subscription (RFC 3515 §2.4.4, RFC 6665)."""
        leg = transfer.transferor
        if not transfer.notify or leg.state is not LegState.UP or leg.dialog is None:
            return
        extra = notify_headers(transfer.event, final)
        extra.append(("Contact", f"<{self.contact_for(leg.destination.transport)}>"))
        req = leg.dialog.create_request(
            "NOTIFY", body=sipfrag(status, reason), content_type=SIPFRAG, extra=extra
        )
        key = self.layer.send_request(req, leg.destination, now)
        self._track(key, _Pending(leg, "notify"))

    def _law_of(self, call: Call, side: str) -> str:
        """The G.711 law the leg on ``side`` speaks ("pcmu" or "pcma")."""
        if call.laws is not None:
            return call.laws[0 if side == "a" else 1]
        if call.b_pt in (0, 8):
            return "pcmu" if call.b_pt == 0 else "pcma"
        return call.a_law or "pcmu"

    def _offer_laws(self, call: Call, side: str) -> tuple[str, str]:
        """Both laws, the one the leg on ``side`` speaks first (no translation if it can)."""
        first = self._law_of(call, side)
        return (first.upper(), "PCMA" if first == "pcmu" else "PCMU")

    def _settle_laws(self, call: Call, side: str, law: str) -> None:
        """The leg on ``side`` settled on ``law``: the switch translates if the other leg
        speaks the other one (as :meth:`_pick_laws` does for an answer it relays)."""
        assert self.media is not None
        if law not in G711_LAWS:
            return
        other = self._law_of(call, "b" if side == "a" else "a")
        la, lb = (law, other) if side == "a" else (other, law)
        call.a_law = la
        call.b_pt = G711_LAWS[lb]
        call.laws = (la, lb) if la != lb else None
        if call.laws is None:
            self.media.transcode(call.id, None, None)
        else:
            self.media.transcode(call.id, G711_LAWS[la], G711_LAWS[lb])

    def _blind(self, transfer: Transfer, bindings: Sequence[Binding], now: float) -> None:
        """Ring the target's contacts for the transferee, with the switch's own offer on the
        transferor's side of the anchored media (RFC 3264 §5)."""
        assert self.media is not None
        call = transfer.call
        side = transfer.transferor.side
        transferee = self._transferee(transfer)
        assert call.ports is not None
        offer = make_offer(
            local_address=self.media.address,
            local_port=call.ports[0 if side == "a" else 1],
            session_id=numeric_id(f"{call.id}t{len(call.transfers)}"),
            session_version=1,
            codec_names=self._offer_laws(call, transferee.side),
        )
        frm = NameAddr(SipUri(self.domain, _user_of(transferee)), call.caller_name)
        for binding in bindings:
            where = self._reach(call.id, binding)
            if where is None:
                continue
            to_user = binding.aor.partition("@")[0]
            fork = self._invite(
                call,
                side,
                binding,
                where,
                frm,
                to_user,
                None,
                bytes(offer),
                "application/sdp",
                now,
                purpose="transfer",
            )
            transfer.forks.append(fork)
            call.extra.append(fork)
        if not transfer.forks:
            self._transfer_failed(transfer, 480, "Temporarily Unavailable", now)
            return
        if not transfer.was_held:
            pt = G711_LAWS[self._law_of(call, transferee.side)]
            self.media.hold(call.id, transferee.side, pt)
        self._arm(call, transfer.deadline)

    def _transfer_response(self, leg: Leg, resp: Response, now: float) -> None:
        """A response to a blind transfer's INVITE to one of the target's contacts."""
        call = leg.call
        transfer = call.transfer
        if transfer is not None and leg not in transfer.forks:
            transfer = None
        status = resp.status
        if status < 200:
            if status > 100 and leg.state is LegState.TRYING:
                leg.state = LegState.EARLY
            return
        if status >= 300:
            self._transfer_fork_failed(leg, status, now)
            return
        if leg.ack is not None:  # a retransmitted 2xx: the same ACK again (§13.2.2.4)
            self.layer.send_stateless(_clone(leg.ack), leg.destination)
            return
        if leg.state not in (LegState.TRYING, LegState.EARLY):
            return
        try:
            dialog = Dialog.as_uac(leg.invite, resp)
        except RemoteProtocolError:
            self._transfer_fork_failed(leg, 502, now)
            return
        leg.dialog = dialog
        leg.ack = dialog.create_request("ACK", cseq=leg.invite.cseq.seq)
        self.layer.send_stateless(_clone(leg.ack), leg.destination)
        leg.state = LegState.UP
        self._dialogs[(leg.call_id, leg.local_tag)] = leg
        if transfer is None or transfer.over or call.state is not CallState.CONFIRMED:
            self._send_bye(leg, now)  # another contact won, or the transfer is over
            return
        try:
            offer = SessionDescription.parse(leg.invite.body)
            chosen = parse_answer(offer, SessionDescription.parse(resp.body))[0]
        except RemoteProtocolError as exc:
            log.warning("call %s: transfer target answered unusable SDP: %s", call.id, exc)
            self._send_bye(leg, now)
            self._transfer_fork_failed(leg, 488, now)
            return
        self._install(transfer, leg, chosen, offer, now)

    def _transfer_fork_failed(self, leg: Leg, status: int, now: float) -> None:
        """One INVITE of a blind transfer failed: the transfer fails once all have, with the
        best of their statuses (§16.7 step 6)."""
        call = leg.call
        if leg.state is not LegState.ENDED:
            leg.state = LegState.FAILED
        leg.status = status
        transfer = call.transfer
        if (
            transfer is not None
            and leg in transfer.forks
            and all(f.state in (LegState.FAILED, LegState.ENDED) for f in transfer.forks)
        ):
            best = min((f.status or 500 for f in transfer.forks), key=_status_rank)
            self._transfer_failed(transfer, best, _REASONS.get(best, "Failed"), now)
        self._maybe_finish(call)

    def _attended(self, transfer: Transfer, replaces: Replaces, now: float) -> None:
        """Join the transferee with the far party of the dialog ``replaces`` names (another
        call through the switch, the transferor's leg of it): that party gets a re-INVITE
        with the switch's offer on the transferor's side of the transferee's call."""
        assert self.media is not None
        call = transfer.call
        replaced = self._replaced_leg(replaces)
        other_call = replaced.call if replaced is not None else None
        joining = replaced.other if replaced is not None else None
        if (
            replaced is None
            or other_call is None
            or joining is None
            or other_call is call
            or replaced.state is not LegState.UP
            or replaced not in (other_call.a, other_call.b)
            or other_call.state is not CallState.CONFIRMED
            or other_call.transfer is not None
            or other_call.bridging
            or other_call.monitors is not None
            or other_call.ports is None
            or joining.state is not LegState.UP
            or joining.dialog is None
        ):
            self._transfer_failed(transfer, 481, "Call/Transaction Does Not Exist", now)
            return
        if joining.reinvite_pending or replaced.reinvite_pending:
            self._transfer_failed(transfer, 491, "Request Pending", now)
            return
        transfer.replaced, transfer.joining, transfer.other_call = replaced, joining, other_call
        other_call.transfer = transfer
        side = transfer.transferor.side
        assert call.ports is not None
        offer = reoffer(
            other_call.sent_sdp.get(joining.side),
            other_call.stream,
            address=self.media.address,
            port=call.ports[0 if side == "a" else 1],
            laws=self._offer_laws(call, self._transferee(transfer).side),
            session_id=numeric_id(f"{other_call.id}{joining.side}"),
            version=2,
        )
        self._send_offer(joining, offer, "join", now)

    def _replaced_leg(self, replaces: Replaces) -> Leg | None:
        """The switch's leg of the dialog a Replaces names (RFC 3891 §3: the to-tag is the
        recipient's, the switch's own; the other order is tolerated)."""
        for local, remote in (
            (replaces.to_tag, replaces.from_tag),
            (replaces.from_tag, replaces.to_tag),
        ):
            leg = self._dialogs.get((replaces.call_id, local))
            if leg is not None and leg.dialog is not None and leg.dialog.remote_tag == remote:
                return leg
        return None

    def _send_offer(self, leg: Leg, offer: SessionDescription, purpose: str, now: float) -> None:
        """A re-INVITE of the switch's own in the dialog of ``leg`` (RFC 3261 §14.1)."""
        assert leg.dialog is not None
        leg.reinvite_pending = True
        req = leg.dialog.create_request(
            "INVITE",
            body=bytes(offer),
            content_type="application/sdp",
            extra=[
                ("Contact", f"<{self.contact_for(leg.destination.transport)}>"),
                ("Allow", ALLOW),
            ],
        )
        key = self.layer.send_request(req, leg.destination, now)
        self._track(key, _Pending(leg, purpose, offer=offer))

    def _offer_response(
        self, pending: _Pending, status: int, resp: Response | None, now: float
    ) -> None:
        """The final answer to a re-INVITE of the switch's own: "join" (an attended
        transfer's target moving to the transferee's call) or "reoffer" (a transferee taken
        off hold)."""
        if status < 200:
            return
        leg = pending.leg
        leg.reinvite_pending = False
        ok = 200 <= status < 300 and resp is not None
        if ok and resp is not None and leg.dialog is not None:
            leg.dialog.confirm(resp)
            self.layer.send_stateless(
                leg.dialog.create_request("ACK", cseq=resp.cseq.seq), leg.destination
            )
        chosen = None
        if ok and resp is not None and pending.offer is not None:
            try:
                chosen = parse_answer(pending.offer, SessionDescription.parse(resp.body))[0]
            except RemoteProtocolError as exc:
                log.warning("call %s: unusable answer to the switch's offer: %s", leg.call.id, exc)
        call = leg.call
        if pending.purpose == "reoffer":
            if chosen is not None and self.media is not None and call.ports is not None:
                self.media.set_remote(
                    call.id,
                    leg.side,
                    chosen.remote_address,
                    chosen.remote_port,
                    chosen.telephone_event_pt,
                )
                self._settle_laws(call, leg.side, chosen.codec.lower())
                self.media.connect(call.id)
            self._maybe_finish(call)
            return
        transfer = call.transfer
        if transfer is None or transfer.joining is not leg:
            # the transfer was abandoned meanwhile: the party's media points elsewhere now
            if ok and call.state not in (CallState.ENDING, CallState.ENDED):
                self._hangup(call, "transfer abandoned", now)
            self._maybe_finish(call)
            return
        if transfer.replaced is not None:
            transfer.replaced.reinvite_pending = False
        if chosen is None or pending.offer is None:
            failure = status if status >= 300 else 488
            self._transfer_failed(transfer, failure, _REASONS.get(failure, "Failed"), now)
            if ok:  # its media is no longer where its call expects it
                self._hangup(call, "transfer failed", now)
            return
        self._join_transfer(transfer, leg, chosen, pending.offer, now)

    def _join_transfer(
        self,
        transfer: Transfer,
        joining: Leg,
        chosen: NegotiatedMedia,
        offer: SessionDescription,
        now: float,
    ) -> None:
        """The attended transfer's target answered the re-offer: its leg leaves its call for
        the transferee's, and its old call (the transferor's other call) ends."""
        old = joining.call
        replaced = transfer.replaced
        assert replaced is not None
        old.transfer = None
        if joining in old.forks:
            old.forks.remove(joining)
        if joining in old.origin:
            old.origin.remove(joining)
        if old.a is joining:
            old.a = replaced
            if replaced in old.forks:
                old.forks.remove(replaced)
        if old.b is joining:
            old.b = None
        for key in [k for k in old.pending if self._pending[k].leg is joining]:
            old.pending.discard(key)
            transfer.call.pending.add(key)
        self._install(transfer, joining, chosen, offer, now)
        self._hangup(old, "transferred", now)

    def _install(
        self,
        transfer: Transfer,
        new: Leg,
        chosen: NegotiatedMedia,
        offer: SessionDescription,
        now: float,
    ) -> None:
        """The transfer succeeded: ``new`` takes the transferor's side of the call, the
        media goes to it, the transferee hears it (off hold), the transferor is told and
        released, and :attr:`on_transferred` is called."""
        assert self.media is not None
        call = transfer.call
        transferor = transfer.transferor
        side = transferor.side
        transferee = self._transferee(transfer)
        transfer.over = True
        call.transfer = None
        for fork in transfer.forks:
            if fork is not new and fork.state in (LegState.TRYING, LegState.EARLY):
                self.layer.send_cancel(fork.invite_key, now)
        new.call = call
        new.side = side
        if new in call.extra:
            call.extra.remove(new)
        if side == "b":
            call.b = new
            if new not in call.forks:
                call.forks.append(new)
        else:
            call.a = new
        if transferor not in call.legs():
            call.extra.append(transferor)
        call.sent_sdp[side] = offer
        call.held.discard(side)
        self.media.set_remote(
            call.id, side, chosen.remote_address, chosen.remote_port, chosen.telephone_event_pt
        )
        self._settle_laws(call, side, chosen.codec.lower())
        self.media.connect(call.id)
        self.media.unhold(call.id, transferee.side)
        if transfer.was_held:  # its phone was put on hold: the switch takes it off (§8.4)
            call.held.discard(transferee.side)
            if transferee.dialog is not None and call.ports is not None:
                previous = call.sent_sdp.get(transferee.side)
                again = reoffer(
                    previous,
                    call.stream,
                    address=self.media.address,
                    port=call.ports[0 if transferee.side == "a" else 1],
                    laws=self._offer_laws(call, transferee.side),
                    session_id=numeric_id(f"{call.id}{transferee.side}"),
                    version=call.sdp_version + 1,
                )
                call.sent_sdp[transferee.side] = again
                self._send_offer(transferee, again, "reoffer", now)
        call.transfers.append(transfer.target)
        call.answered_by = new.contact or transfer.target
        log.info("call %s: transferred to %s", call.id, transfer.target)
        self._notify(transfer, 200, "OK", now, final=True)
        if transferor.state is LegState.UP:
            call.release = (transferor, now + self.release_grace)
            self._arm(call, now + self.release_grace)
        try:
            self.on_transferred(call.id, side, transfer.target)
        except Exception:  # a failing observer must not break signalling
            log.exception("call %s: reporting the transfer failed", call.id)

    def _transfer_failed(self, transfer: Transfer, status: int, reason: str, now: float) -> None:
        """The transfer failed with ``status``: the transferor is told (final NOTIFY) and the
        transferee goes back to it; if the transferor has hung up, the call ends."""
        if transfer.over:
            return
        call = transfer.call
        self._abort_transfer(transfer, call, now)
        log.info("call %s: transfer to %s failed (%d)", call.id, transfer.target, status)
        self._notify(transfer, status, reason, now, final=True)
        transferee = self._transferee(transfer)
        if transfer.transferor.state is not LegState.UP:
            call.end_cause = f"transfer failed ({status})"
            self._hangup(call, call.end_cause, now)
        elif not transfer.was_held and self.media is not None:
            self.media.unhold(call.id, transferee.side)

    def _abort_transfer(self, transfer: Transfer, call: Call, now: float) -> None:
        """Stop a transfer (``call``, one of its calls, is ending or the transfer failed):
        its INVITEs are cancelled. When the transferor's other call (attended) is the one
        ending, the transferor is told (487) and keeps its call."""
        if transfer.over:
            return
        transfer.over = True
        if transfer.call.transfer is transfer:
            transfer.call.transfer = None
        other = transfer.other_call
        if other is not None and other.transfer is transfer:
            other.transfer = None
        for fork in transfer.forks:
            if fork.state in (LegState.TRYING, LegState.EARLY):
                self.layer.send_cancel(fork.invite_key, now)
        if call is other and transfer.call.state is CallState.CONFIRMED:
            self._notify(transfer, 487, "Request Terminated", now, final=True)

    def _in_transfer(
        self, transfer: Transfer, leg: Leg, event: RequestReceived, now: float
    ) -> None:
        """A request from a party of a call while a transfer is under way: BYE from the
        transferor (or its leg being replaced) leaves the transfer going; BYE from the
        transferee or the attended target fails it; OPTIONS is answered; anything else gets
        491 (RFC 3261 §14.1: the switch has an offer of its own in progress)."""
        req = event.request
        if req.method == "BYE":
            self._reply(now, event.key, req, 200, "OK")
            leg.state = LegState.ENDED
            if leg is transfer.transferor or leg is transfer.replaced:
                log.info("call %s: the transferor hung up during the transfer", leg.call.id)
                self._maybe_finish(leg.call)
                return
            who = _party(leg)
            self._transfer_failed(transfer, 487, "Request Terminated", now)
            self._hangup(leg.call, f"{who} hung up", now, skip=leg)
            return
        if req.method == "OPTIONS":
            self._reply(now, event.key, req, 200, "OK", extra=[("Allow", ALLOW)])
            return
        self._reply(now, event.key, req, 491, "Request Pending")

    def _transfer_timers(self, call: Call, now: float) -> None:
        """A blind transfer whose target did not answer in time fails with 408; a
        transferor's leg released by a transfer and not hung up yet gets BYE."""
        transfer = call.transfer
        if (
            transfer is not None
            and transfer.call is call
            and transfer.forks
            and transfer.deadline <= now
        ):
            self._transfer_failed(transfer, 408, "Request Timeout", now)
        if call.release is not None and call.release[1] <= now:
            leg, call.release = call.release[0], None
            if leg.state is LegState.UP:
                log.info("call %s: the transferor did not hang up; BYE", call.id)
                self._send_bye(leg, now)

    # -- internals -----------------------------------------------------------------------------

    def _rewrite(self, call: Call, sdp: SessionDescription, from_side: str) -> bytes:
        """SDP from leg ``from_side`` as the other leg gets it: our address and port toward
        that other leg; the sender's own address is where we send its media (until latching).
        """
        assert self.media is not None and call.ports is not None
        md = sdp.media[call.stream] if call.stream < len(sdp.media) else None
        if md is not None and md.port != 0:
            host, port = media_address(md, sdp)
            events = next(
                (
                    c.payload_type
                    for c in codecs(md)
                    if c.name.lower() == "telephone-event" and c.clock_rate == 8000
                ),
                None,
            )
            self.media.set_remote(call.id, from_side, host, port, events)
            if from_side == "b":
                chosen = chosen_codec(md)
                if chosen is not None and chosen.name.lower() in G711_LAWS:
                    call.b_pt = chosen.payload_type
                if call.a_law is not None:
                    self._pick_laws(call, md)
        sdp = restricted(sdp, call.stream)  # codecs the switch can decode, and events
        if call.laws is not None:  # each leg hears of its own law only
            sdp = as_law(sdp, call.stream, call.laws[1 if from_side == "a" else 0])
        toward = call.ports[1] if from_side == "a" else call.ports[0]
        out = anchored(sdp, call.stream, self.media.address, toward)
        call.sent_sdp["b" if from_side == "a" else "a"] = out
        return bytes(out)

    def _music_on_hold(self, call: Call, leg: Leg, body: bytes) -> None:
        """An offer that holds the other leg (sendonly, inactive or c=0.0.0.0, RFC 3264 §8.4)
        gives that leg music on hold; an offer that does not, ends it."""
        if self.media is None or call.ports is None or not body:
            return
        try:
            sdp = SessionDescription.parse(body)
        except RemoteProtocolError:
            return
        if call.stream >= len(sdp.media):
            return
        held = "b" if leg.side == "a" else "a"
        if is_hold(sdp.media[call.stream], sdp):
            call.held.add(held)
            if call.laws is not None:
                pt = G711_LAWS[call.laws[0 if held == "a" else 1]]
            else:
                pt = call.b_pt if call.b_pt is not None else 0
            log.info("call %s: the %s is on hold", call.id, "caller" if held == "a" else "callee")
            self.media.hold(call.id, held, pt)
        else:
            call.held.discard(held)
            self.media.unhold(call.id, held)

    def _pick_laws(self, call: Call, md: MediaDescription) -> None:
        """The callee's SDP says which G.711 law it settled on: if it is not the caller's,
        the switch translates between the two (PCMU <-> PCMA, table-driven in the relay)."""
        assert self.media is not None and call.a_law is not None
        chosen = chosen_codec(md)
        b_law = chosen.name.lower() if chosen is not None else None
        laws = (call.a_law, b_law) if b_law in G711_LAWS and b_law != call.a_law else None
        if laws != call.laws:
            call.laws = laws
            if laws is None:
                self.media.transcode(call.id, None, None)
            else:
                log.info("call %s: translating %s <-> %s", call.id, *(x.upper() for x in laws))
                self.media.transcode(call.id, G711_LAWS[laws[0]], G711_LAWS[laws[1]])

    def _anchor_body(self, call: Call, body: bytes, from_side: str) -> bytes:
        """Rewrite an SDP body of an anchored call; anything else passes unchanged."""
        if not body or call.ports is None or self.media is None:
            return body
        try:
            sdp = SessionDescription.parse(body)
        except RemoteProtocolError as exc:
            log.warning("call %s: unreadable SDP from leg %s: %s", call.id, from_side, exc)
            return body
        out = self._rewrite(call, sdp, from_side)
        if from_side == "b":
            self.media.connect(call.id)  # both sides known once the callee answered
        return out

    def _track(self, key: TxnKey, pending: _Pending) -> None:
        """Remember a client transaction of a call (indexed per call: no scan of all calls)."""
        self._pending[key] = pending
        pending.leg.call.pending.add(key)

    def _untrack(self, key: TxnKey) -> _Pending | None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            pending.leg.call.pending.discard(key)
        return pending

    def _leg_for(self, req: Request) -> Leg | None:
        tag = req.to.tag
        if tag is None:
            return None
        return self._dialogs.get((req.call_id, tag))

    def _reply(
        self,
        now: float,
        key: TxnKey,
        req: Request | None,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
        to_tag: str | None = None,
        contact: str | None = None,
    ) -> None:
        if req is None:
            req = self.layer.server_request(key)
            if req is None:
                return
        resp = make_response(req, status, reason, to_tag=to_tag or self.ids.tag())
        if contact is not None:
            resp.headers.add("Contact", f"<{contact}>")
        for name, value in extra:
            resp.headers.add(name, value)
        if body:
            resp.headers.add("Content-Type", content_type or "application/sdp")
            resp.body = body
        self.layer.respond(key, resp, now)

    def _fork_response(self, fork: Leg, resp: Response, now: float) -> None:
        call = fork.call
        status = resp.status
        if status < 200:
            if status == 100 or call.state is not CallState.RINGING:
                return
            fork.state = LegState.EARLY
            a = call.a
            self._reply(
                now,
                a.invite_key,
                a.invite,
                status,
                resp.reason,
                body=self._anchor_body(call, resp.body, "b"),
                content_type=resp.headers.get("Content-Type"),
                to_tag=a.local_tag,
                contact=self.contact_for(a.destination.transport),
            )
            return
        if status < 300:
            self._fork_answered(fork, resp, now)
            return
        self._fork_failed(fork, status, now)

    def _fork_answered(self, fork: Leg, resp: Response, now: float) -> None:
        call = fork.call
        if fork.ack is not None:  # 2xx retransmission: ACK again (§13.2.2.4), even after BYE
            self.layer.send_stateless(_clone(fork.ack), fork.destination)
            return
        try:
            dialog = Dialog.as_uac(fork.invite, resp)
        except RemoteProtocolError:
            return
        fork.dialog = dialog
        ack = dialog.create_request("ACK", cseq=fork.invite.cseq.seq)
        fork.ack = ack
        self.layer.send_stateless(_clone(ack), fork.destination)
        fork.state = LegState.UP
        self._dialogs[(fork.call_id, fork.local_tag)] = fork
        if (
            (call.state is not CallState.RINGING and not call.bridging)
            or call.b is not None
            or call.forks.index(fork) < call.bridge_start
        ):
            # Another fork won, the caller gave up, or the bridge this fork belonged to is
            # over: this one is not wanted (§16.7 step 5).
            self._send_bye(fork, now)
            return
        if call.bridging:
            self._late_bridge_answered(call, fork, resp, now)
            return
        call.b = fork
        call.answered_at = now
        call.final_status = 200
        call.answered_by = str(fork.invite.uri)
        call.move(CallState.ANSWERED)
        for other in call.forks:
            if other is not fork and other.state in (LegState.TRYING, LegState.EARLY):
                self.layer.send_cancel(other.invite_key, now)
        a = call.a
        ok = make_response(a.invite, 200, "OK", to_tag=a.local_tag)
        ok.headers.add("Contact", f"<{self.contact_for(a.destination.transport)}>")
        ok.headers.add("Allow", ALLOW)
        if resp.body:
            ok.headers.add("Content-Type", resp.headers.get("Content-Type") or "application/sdp")
            ok.body = self._anchor_body(call, resp.body, "b")
        try:
            a.dialog = Dialog.as_uas(a.invite, a.local_tag, ok)
        except RemoteProtocolError:
            a.dialog = None
        if a.dialog is not None:
            self._dialogs[(a.call_id, a.local_tag)] = a
        a.state = LegState.UP
        self.layer.respond(a.invite_key, ok, now)
        self._a_invites.pop(a.invite_key, None)
        log.info("call %s: answered by %s", call.id, fork.invite.uri)
        if a.dialog is None:
            self._hangup(call, "caller gave no Contact", now)
            return
        self._bridged(call)

    def _late_bridge_answered(self, call: Call, fork: Leg, resp: Response, now: float) -> None:
        """A fork of a late bridge answered: leg A, answered by the switch, now hears it."""
        call.b = fork
        call.bridging = False
        call.answered_by = str(fork.invite.uri)
        for other in call.forks:
            if other is not fork and other.state in (LegState.TRYING, LegState.EARLY):
                self.layer.send_cancel(other.invite_key, now)
        if self.media is not None:
            self.media.end_local(call.id)
        call.local = False
        if resp.body:
            self._anchor_body(call, resp.body, "b")  # B's address and law; relay started
        log.info("call %s: bridged to %s", call.id, fork.invite.uri)
        self._bridged(call)

    @staticmethod
    def _bridged(call: Call) -> None:
        callback, call.on_bridge = call.on_bridge, None
        if callback is not None:
            callback(200)

    def _fork_failed(self, fork: Leg, status: int, now: float) -> None:
        call = fork.call
        fork.state = LegState.FAILED
        fork.status = status
        if call.on_bridge is not None and (call.state is CallState.RINGING or call.bridging):
            attempt = call.forks[call.bridge_start :]
            if all(f.state is LegState.FAILED for f in attempt):
                self._bridge_done(call, min((f.status for f in attempt), key=_status_rank), now)
            return
        if call.state is not CallState.RINGING:
            self._maybe_finish(call)
            return
        if all(f.state is LegState.FAILED for f in call.forks):
            best = min((f.status for f in call.forks), key=_status_rank)
            self._fail_call(call, best, None, now, cause=f"{best}")

    def _fail_call(
        self, call: Call, status: int, reason: str | None, now: float, cause: str = ""
    ) -> None:
        """Give the caller a final error and stop every fork still ringing; a call the switch
        placed: stop its INVITEs, and tell who asked for it."""
        call.on_bridge = None
        callback, call.on_origin = call.on_origin, None
        call.end_cause = cause or reason or str(status)
        call.final_status = status
        a = call.a
        if call.originated:
            for leg in call.origin:
                if leg.state in (LegState.TRYING, LegState.EARLY):
                    self.layer.send_cancel(leg.invite_key, now)
        else:
            self._reply(now, a.invite_key, a.invite, status, reason, to_tag=a.local_tag)
            self._a_invites.pop(a.invite_key, None)
            a.state = LegState.ENDED
        call.move(CallState.ENDING)
        for fork in call.forks:
            if fork.state in (LegState.TRYING, LegState.EARLY):
                self.layer.send_cancel(fork.invite_key, now)
        self._maybe_finish(call)
        if callback is not None:
            callback(status, None)

    def _hangup(self, call: Call, cause: str, now: float, skip: Leg | None = None) -> None:
        """End an established call: BYE on every leg that is still up."""
        if call.state is CallState.ENDED:
            return
        call.end_cause = call.end_cause or cause
        call.on_bridge = None
        if call.transfer is not None:
            self._abort_transfer(call.transfer, call, now)
        call.release = None
        if call.state in (CallState.RINGING, CallState.ROUTING):
            if call.originated:  # nobody answered yet: the switch stops calling
                self._fail_call(call, 487, "Request Terminated", now, cause)
            else:
                self._fail_call(call, 480, "Temporarily Unavailable", now, cause)
            return
        call.move(CallState.ENDING)
        if call.bridging:  # a late bridge still ringing
            call.bridging = False
            for fork in call.forks:
                if fork.state in (LegState.TRYING, LegState.EARLY):
                    self.layer.send_cancel(fork.invite_key, now)
        if not call.originated:
            self._a_invites.pop(call.a.invite_key, None)
        for leg in call.legs():
            if leg is not skip and leg.state is LegState.UP:
                self._send_bye(leg, now)
        for leg in call.extra:  # a transfer's INVITEs still ringing
            if leg.state in (LegState.TRYING, LegState.EARLY):
                self.layer.send_cancel(leg.invite_key, now)
        for supervisor in list(call.supervisors):  # nothing left to monitor
            self.hangup(supervisor, "the monitored call ended", now)
        self._maybe_finish(call)

    def _send_bye(self, leg: Leg, now: float) -> None:
        if leg.dialog is None:
            leg.state = LegState.ENDED
            return
        bye = leg.dialog.create_request("BYE")
        key = self.layer.send_request(bye, leg.destination, now)
        self._track(key, _Pending(leg, "bye"))
        leg.state = LegState.ENDED  # ended as far as the call is concerned; BYE in flight

    def _leg_ended(self, leg: Leg, now: float) -> None:
        leg.state = LegState.ENDED
        self._maybe_finish(leg.call)

    def _maybe_finish(self, call: Call) -> None:
        """Forget the call once no leg can still produce anything that needs its state."""
        if call.state is not CallState.ENDING:
            return
        for leg in call.legs():
            if leg.state in (LegState.UP, LegState.TRYING, LegState.EARLY):
                return
        for key in call.pending:
            if self._pending[key].purpose not in ("invite", "transfer"):
                return  # a BYE (or a relayed request) is still under way
        self._forget(call)

    def _forget(self, call: Call) -> None:
        call.move(CallState.ENDED)
        media_report: object = None
        if call.ports is not None and self.media is not None:
            media_report = self.media.release(call.id)
            call.ports = None
        self.calls.pop(call.id, None)
        if not call.originated:
            self._a_invites.pop(call.a.invite_key, None)
        for leg in call.legs():
            self._dialogs.pop((leg.call_id, leg.local_tag), None)
        for key in call.pending:
            del self._pending[key]
        call.pending.clear()
        duration = ""
        if call.answered_at is not None:
            duration = f", answered {call.answered_at - call.created:.1f} s after start"
        log.info("call %s ended: %s%s", call.id, call.end_cause or "normal", duration)
        if call.monitors is not None:
            target = self.calls.get(call.monitors)
            if target is not None:
                target.supervisors.discard(call.id)
        if self.on_call_ended is not None:
            try:
                self.on_call_ended(call, media_report)
            except Exception:  # a failing observer must not break signalling
                log.exception("call %s: recording the end of the call failed", call.id)

    def _relay_response(self, pending: _Pending, resp: Response, now: float) -> None:
        leg = pending.leg
        origin = pending.origin_leg
        if resp.status < 200 and (resp.status == 100 or pending.purpose == "reinvite"):
            return
        if pending.purpose == "reinvite" and resp.status >= 200:
            leg.reinvite_pending = False
            if origin is not None:
                origin.reinvite_pending = False
            if resp.status < 300 and leg.dialog is not None:
                leg.dialog.confirm(resp)
                ack = leg.dialog.create_request("ACK", cseq=resp.cseq.seq)
                self.layer.send_stateless(ack, leg.destination)
        if pending.origin_key is None or origin is None:
            return
        contact = None
        if pending.purpose == "reinvite" and 200 <= resp.status < 300:
            contact = self.contact_for(origin.destination.transport)
        self._reply(
            now,
            pending.origin_key,
            None,
            resp.status,
            resp.reason,
            body=self._anchor_body(leg.call, resp.body, leg.side)
            if pending.purpose == "reinvite" and 200 <= resp.status < 300
            else resp.body,
            content_type=resp.headers.get("Content-Type"),
            to_tag=origin.local_tag,
            contact=contact,
        )

    def hangup(self, call_id: str, cause: str, now: float) -> bool:
        """End one call from outside signalling (dead media, an operator); False if unknown."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        self._hangup(call, cause, now)
        return True

    def hangup_all(self, now: float) -> None:
        """End every call (the grace time after SIGTERM is over)."""
        for call in list(self.calls.values()):
            self._hangup(call, "switch shutting down", now)


def _monitorable(call: Call) -> bool:
    """A live call between two phones, relayed by the switch, and no supervisor's call."""
    return (
        call.state in (CallState.ANSWERED, CallState.CONFIRMED)
        and call.b is not None
        and call.monitors is None
        and call.ports is not None
    )


def _side_of(call: Call, user: str) -> str | None:
    """The side of ``call`` that ``user`` is on (see :meth:`B2bua.agent_side`)."""
    if call.b is not None and user == call.b.user:
        return "b"
    if call.originated:
        return "a" if user in (call.a.user, call.callee) else None
    if user == call.callee:
        return "b"
    if user == call.caller:
        return "a"
    return None


def _party(leg: Leg) -> str:
    """Who is on ``leg``, in the words of call records: on a call the switch placed, the
    user it called (leg A) is the callee and whoever it was bridged to the bridged party."""
    if leg.call.originated:
        return "callee" if leg.side == "a" else "bridged party"
    return "caller" if leg.side == "a" else "callee"


def _user_of(leg: Leg) -> str:
    """The user on ``leg``: the caller of a received call (leg A), else the user of the
    binding it rang."""
    call = leg.call
    if leg.user:
        return leg.user
    if leg.side == "a" and not call.originated:
        return call.caller
    return call.callee


#: reason phrases of the final NOTIFYs the switch words itself
_REASONS = {
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    502: "Bad Gateway",
    600: "Busy Everywhere",
    603: "Decline",
}


def _display_name(req: Request) -> str | None:
    try:
        name = req.from_.display
    except (RemoteProtocolError, LocalProtocolError):
        return None
    return name or None


def _clone(req: Request) -> Request:
    """A copy whose Via the layer can set afresh (ACKs for 2xx are new transactions)."""
    h = Headers([(n, v) for n, v in req.headers if n != "Via"])
    return Request(req.method, req.uri, h, req.body)
