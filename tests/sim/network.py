"""An in-memory network, a fake clock and scripted phones around the real SIP engine.

Phones are small UAs built on the same sans-I/O transaction layer and dialogs as the switch;
the network delivers every datagram after a fixed delay and can drop chosen ones, so lost
ACKs and CANCEL/200 races can be staged deterministically.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from softswitch.app import build_engine
from softswitch.config import Settings, load_settings
from softswitch.pipeline import SipEngine
from softswitch.sip.auth import build_authorization, parse_auth_params
from softswitch.sip.dialog import Dialog
from softswitch.sip.events import (
    AckReceived,
    Address,
    InviteCancelled,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TxnKey,
)
from softswitch.sip.headers import Headers
from softswitch.sip.message import Request, Response, make_response, parse_message
from softswitch.sip.txn_layer import TransactionLayer
from softswitch.sip.uri import SipUri

SWITCH = Address("udp", "127.0.0.1", 5060)


def sdp(port: int, session: str = "-", direction: str = "sendrecv") -> bytes:
    """A phone's audio SDP: PCMU, PCMA and telephone-event on 127.0.0.1:``port``."""
    return (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns={session}\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a=fmtp:101 0-15\r\na=ptime:20\r\na={direction}\r\n"
    ).encode()


DOMAIN = "softswitch.local"
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


@dataclass(order=True)
class _Packet:
    at: float
    seq: int
    data: bytes = field(compare=False)
    source: Address = field(compare=False)
    destination: Address = field(compare=False)


class Network:
    """Delivers datagrams between the switch and phones with a delay, under a fake clock."""

    def __init__(self, delay: float = 0.01, keepalive: int = 0) -> None:
        self.now = 0.0
        self.delay = delay
        self._queue: list[_Packet] = []
        self._seq = count()
        self.drop: Callable[[bytes, Address, Address], bool] = lambda data, src, dst: False
        self.log: list[tuple[float, Address, Address, bytes]] = []
        ids = count(1)
        settings = load_settings(CONFIG)
        sip = settings.sip.model_copy(update={"domain": DOMAIN})
        security = settings.security.model_copy(update={"trusted_networks": ()})
        registrar = settings.registrar.model_copy(update={"keepalive_interval": keepalive})
        self.settings: Settings = settings.model_copy(
            update={"sip": sip, "security": security, "registrar": registrar}
        )
        self.engine: SipEngine = build_engine(
            self.settings,
            token=lambda: f"s{next(ids)}",
            secret=b"k" * 32,
            wall_clock=lambda: 1_800_000_000.0 + self.now,
        )
        self.engine.layer.local_via = {"udp": (SWITCH.host, SWITCH.port)}
        self.phones: dict[Address, Phone] = {}

    def send(self, data: bytes, source: Address, destination: Address) -> None:
        self.log.append((self.now, source, destination, data))
        if self.drop(data, source, destination):
            return
        heapq.heappush(
            self._queue, _Packet(self.now + self.delay, next(self._seq), data, source, destination)
        )

    def _flush_switch(self) -> None:
        for out in self.engine.take_outgoing():
            self.send(out.data, SWITCH, out.destination)

    def step(self) -> bool:
        """Advance to the next packet or timer; False when nothing is left to happen."""
        candidates = [p for p in (self._queue[0].at if self._queue else None,) if p is not None]
        d = self.engine.next_deadline()
        if d is not None:
            candidates.append(d)
        for phone in self.phones.values():
            pd = phone.layer.next_deadline()
            if pd is not None:
                candidates.append(pd)
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        while self._queue and self._queue[0].at <= self.now:
            pkt = heapq.heappop(self._queue)
            if pkt.destination == SWITCH:
                self.engine.receive_datagram(pkt.data, pkt.source, self.now)
                self._flush_switch()
            elif pkt.destination in self.phones:
                self.phones[pkt.destination].receive(pkt.data, pkt.source, self.now)
            # else: nobody listens there any more; the datagram is lost
        d = self.engine.next_deadline()
        if d is not None and d <= self.now:
            self.engine.handle_timer(self.now)
            self._flush_switch()
        for phone in list(self.phones.values()):
            pd = phone.layer.next_deadline()
            if pd is not None and pd <= self.now:
                phone.layer.handle_timer(self.now)
                phone.process(self.now)
        return True

    def run(self, until: float) -> None:
        """Run until the fake clock reaches ``until`` (or nothing is left)."""
        for _ in range(200_000):
            nxt = self._next_time()
            if nxt is None or nxt > until:
                self.now = max(self.now, until)
                return
            self.step()
        raise AssertionError("simulation did not settle")

    def run_until(self, cond: Callable[[], bool], limit: float = 60.0) -> None:
        end = self.now + limit
        for _ in range(200_000):
            if cond():
                return
            nxt = self._next_time()
            if nxt is None or nxt > end:
                break
            self.step()
        assert cond(), f"condition not reached by t={self.now:.2f}"

    def _next_time(self) -> float | None:
        times = [self._queue[0].at] if self._queue else []
        for d in [
            self.engine.next_deadline(),
            *(p.layer.next_deadline() for p in self.phones.values()),
        ]:
            if d is not None:
                times.append(d)
        return min(times) if times else None

    def add_phone(self, user: str, port: int) -> Phone:
        phone = Phone(self, user, f"demo{user}", Address("udp", "127.0.0.1", port))
        self.phones[phone.address] = phone
        return phone

    def tables(self) -> dict[str, int]:
        """Sizes of every per-call table of the switch (all must be 0 after the calls)."""
        sizes = dict(self.engine.b2bua.table_sizes)
        sizes["transactions"] = len(self.engine.layer)
        return sizes


class Phone:
    """A scripted SIP phone: registers, calls, answers, hangs up, cancels."""

    def __init__(
        self, net: Any, user: str, password: str, address: Address, server: Address = SWITCH
    ) -> None:
        self.net = net  # anything with .now and .send(data, source, destination)
        self.server = server
        self.user = user
        self.password = password
        #: the digest user name, when it is not the user (credentials issued per session)
        self.auth_user: str | None = None
        self.address = address
        ids = count(1)
        self.layer = TransactionLayer(lambda: f"{user}b{next(ids)}")
        self.layer.local_via = {address.transport: (address.host, address.port)}
        self._ids = count(1)
        self.registered = False
        self.auto_answer: int | None = None  # status to answer incoming INVITEs with
        self.answer_delay: float | None = None
        self.incoming: list[tuple[TxnKey, Request]] = []
        self.incoming_invite_body = b""
        self.last_offer = b""
        self.dialog: Dialog | None = None
        self.call_state = "idle"
        self.final_status: int | None = None
        self.invite_key: TxnKey | None = None
        self.invite: Request | None = None
        self.bye_received = False
        self.drop_acks = 0
        self.cancelled = False
        self.responses: list[Response] = []
        # where this phone would receive RTP (a port nobody listens on unless a test binds it)
        self.rtp_port = 9
        self.offer_sdp = sdp(self.rtp_port, "caller")
        self.answer_sdp = sdp(self.rtp_port, "callee")

    def _id(self) -> str:
        return f"{self.user}-{next(self._ids)}"

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self.layer.receive_data(data, source, now)
        self.process(now)

    def _flush(self) -> None:
        for out in self.layer.take_outgoing():
            self.net.send(out.data, self.address, out.destination)

    def process(self, now: float) -> None:
        for event in self.layer.take_events():
            if isinstance(event, ResponseReceived):
                self._on_response(event.response, event.key, now)
            elif isinstance(event, RequestReceived):
                self._on_request(event, now)
            elif isinstance(event, InviteCancelled):
                req = self.layer.server_request(event.invite_key)
                if req is not None:
                    self.layer.respond(
                        event.invite_key, make_response(req, 487, to_tag="callee"), now
                    )
                self.call_state = "cancelled"
                self.cancelled = True
            elif isinstance(event, AckReceived):
                if self.call_state == "answered":
                    self.call_state = "confirmed"
            elif isinstance(event, TransactionTimedOut):
                self.final_status = 408
        self._flush()

    # -- requests we send ------------------------------------------------------------------------

    def _base(self, method: str, target: SipUri, to_user: str, call_id: str, cseq: int) -> Request:
        h = Headers()
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:{self.user}@{DOMAIN}>;tag={self.user}t")
        h.add("To", f"<sip:{to_user}@{DOMAIN}>")
        h.add("Call-ID", call_id)
        h.add("CSeq", f"{cseq} {method}")
        h.add("Contact", f"<{self.contact}>")
        return Request(method, target, h)

    @property
    def contact(self) -> str:
        suffix = "" if self.address.transport == "udp" else f";transport={self.address.transport}"
        return f"sip:{self.user}@{self.address.host}:{self.address.port}{suffix}"

    def register(self, expires: int = 300) -> None:
        self._reg_call_id = self._id()
        req = self._base("REGISTER", SipUri(DOMAIN), self.user, self._reg_call_id, 1)
        req.headers.add("Expires", str(expires))
        self.layer.send_request(req, self.server, self.net.now)
        self._flush()

    def call(self, number: str, body: bytes | None = None) -> None:
        self.call_state = "calling"
        req = self._base("INVITE", SipUri(DOMAIN, number), number, self._id(), 1)
        req.headers.add("Content-Type", "application/sdp")
        req.body = body if body is not None else self.offer_sdp
        self.invite = req
        self.invite_key = self.layer.send_request(req, self.server, self.net.now)
        self._flush()

    def cancel(self) -> None:
        assert self.invite_key is not None
        self.layer.send_cancel(self.invite_key, self.net.now)
        self._flush()

    def hangup(self) -> None:
        assert self.dialog is not None
        bye = self.dialog.create_request("BYE")
        self.layer.send_request(bye, self.server, self.net.now)
        self.call_state = "ending"
        self._flush()

    def answer(self, status: int = 200) -> None:
        key, req = self.incoming.pop(0)
        resp = make_response(req, status, to_tag="callee")
        resp.headers.add("Contact", f"<sip:{self.user}@{self.address.host}:{self.address.port}>")
        if status == 200:
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = self.answer_sdp
            self.dialog = Dialog.as_uas(req, "callee", resp)
            self.call_state = "answered"
        self.layer.respond(key, resp, self.net.now)
        self._flush()

    # -- what we receive -------------------------------------------------------------------------

    def _on_response(self, resp: Response, key: TxnKey, now: float) -> None:
        self.responses.append(resp)
        method = resp.cseq.method
        if resp.status in (401, 407) and resp.cseq.seq < 5:
            self._retry_with_auth(resp, key, now)
            return
        if method == "REGISTER":
            self.registered = resp.status == 200
            return
        if method == "INVITE":
            if resp.status < 200:
                if resp.status > 100:
                    self.call_state = "ringing"
                return
            self.final_status = resp.status
            if resp.status < 300:
                if self.dialog is None:
                    assert self.invite is not None
                    sent = self.layer.client_request(key) or self.invite
                    self.dialog = Dialog.as_uac(sent, resp)
                    self.call_state = "confirmed"
                if self.drop_acks > 0:
                    self.drop_acks -= 1
                    return
                ack = self.dialog.create_request("ACK", cseq=resp.cseq.seq)
                self.layer.send_stateless(ack, self.server)
            else:
                self.call_state = "failed"
        elif method == "BYE" and resp.status >= 200:
            self.call_state = "ended"

    def _retry_with_auth(self, resp: Response, key: TxnKey, now: float) -> None:
        sent = self.layer.client_request(key)
        assert sent is not None
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenge = next(v for v in resp.headers.rows(header) if "MD5" in v)
        _, params = parse_auth_params(challenge)
        value = build_authorization(
            username=self.auth_user or self.user,
            realm=params["realm"],
            nonce=params["nonce"],
            method=sent.method,
            uri=str(sent.uri),
            cnonce=self._id(),
            password=self.password,
            algorithm="MD5",
        )
        h = Headers([(n, v) for n, v in sent.headers if n not in ("Via",)])
        cseq = sent.cseq
        h.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        h.add("Authorization" if resp.status == 401 else "Proxy-Authorization", value)
        again = Request(sent.method, sent.uri, h, sent.body)
        new_key = self.layer.send_request(again, self.server, now)
        if sent.method == "INVITE":
            self.invite = again
            self.invite_key = new_key

    def _on_request(self, event: RequestReceived, now: float) -> None:
        req = event.request
        if req.method == "INVITE" and req.to.tag is None:
            self.incoming.append((event.key, req))
            self.incoming_invite_body = req.body
            self.layer.respond(event.key, make_response(req, 180, to_tag="callee"), now)
            self.call_state = "ringing-in"
            if self.auto_answer is not None:
                self.answer(self.auto_answer)
        elif req.method == "BYE":
            self.layer.respond(event.key, make_response(req, 200), now)
            self.bye_received = True
            self.call_state = "ended"
        elif req.method == "INVITE":  # re-INVITE: answer with our SDP again
            self.last_offer = req.body
            resp = make_response(req, 200)
            resp.headers.add(
                "Contact", f"<sip:{self.user}@{self.address.host}:{self.address.port}>"
            )
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = self.answer_sdp
            self.layer.respond(event.key, resp, now)
        elif req.method == "OPTIONS":
            self.layer.respond(event.key, make_response(req, 200, to_tag="o"), now)
        else:
            self.layer.respond(event.key, make_response(req, 200), now)


def parse(data: bytes) -> Request | Response:
    return parse_message(data)
