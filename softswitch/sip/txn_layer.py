"""The transaction layer: matching, retransmission absorption, timers and the UA core's 2xx
retransmission, as one sans-I/O object.

- Server transaction matching, RFC 3261 §17.2.3 (with the RFC 2543 fallback);
  client transaction matching, §17.1.3.
- NAT fix-up of the top Via on receipt: ``received`` (§18.2.1) and ``rport`` (RFC 3581 §4);
  response routing by the top Via, §18.2.2 and RFC 3581 §4.
- CANCEL, §9.2: matched to its INVITE, answered 200 (or 481), reported to the TU.
- 2xx to INVITE retransmitted until ACK, §13.3.1.4; RFC 6026 Accepted states absorb
  retransmitted INVITEs and forward retransmitted 2xx.
- Requests above the path MTU go over TCP, §18.1.1.

Inputs are verbs (``receive``, ``send_request``, ``respond``, ``handle_timer``); outputs are
drained with ``take_outgoing`` and ``take_events``. The clock is ``now`` (monotonic seconds)
passed in; branch ids come from an injected factory.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from itertools import count

from softswitch.sip.errors import LocalProtocolError
from softswitch.sip.events import (
    AckReceived,
    AckTimedOut,
    Address,
    InviteCancelled,
    Outgoing,
    RequestReceived,
    TxnKey,
)
from softswitch.sip.headers import Headers, Via
from softswitch.sip.message import (
    Limits,
    MalformedMessage,
    Request,
    Response,
    make_response,
    parse_message,
)
from softswitch.sip.transaction import (
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
    State,
    Timers,
    Transaction,
)

__all__ = ["MAGIC_COOKIE", "MTU_LIMIT", "TransactionLayer"]

MAGIC_COOKIE = "z9hG4bK"
#: §18.1.1: a request within 200 bytes of a 1500-byte MTU, or larger than 1300 bytes when the
#: MTU is unknown, goes over a congestion-controlled transport.
MTU_LIMIT = 1300


class _Acceptor(Transaction):
    """The UA core's retransmission of a 2xx to INVITE until the ACK arrives (§13.3.1.4)."""

    __slots__ = ("_interval", "data", "response")

    def __init__(self, key: TxnKey, request: Request, destination: Address) -> None:
        super().__init__(key, request, destination)
        self.data = b""
        self._interval = 0.0
        self.response: Response | None = None

    def start(self, resp: Response, data: bytes, now: float, layer: TransactionLayer) -> None:
        self.response = resp
        self.data = data
        t = layer.timers
        if not self.reliable:
            self._interval = t.t1
            self._arm(layer, "2xx", now + t.t1)
        self._arm(layer, "ack", now + 64 * t.t1)

    def fire(self, name: str, now: float, sink: object, t: Timers) -> None:
        assert isinstance(sink, TransactionLayer)
        if name == "2xx":
            sink.send(self.data, self.destination)
            self._interval = min(2 * self._interval, t.t2)
            self._arm(sink, "2xx", now + self._interval)
        elif name == "ack":
            self._terminate()
            if self.response is not None:
                sink.emit(AckTimedOut(self.key, self.response))


def server_key(request: Request, via: Via) -> TxnKey:
    """The key a request matches server transactions by (§17.2.3)."""
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    sent_by = f"{via.host}:{via.port or 5060}"
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, sent_by, method)
    # RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq number and top Via identify it;
    # the To tag is checked separately for ACK against the tag of our response.
    cseq = request.cseq.seq
    from_tag = request.from_.tag or ""
    return ("2543", str(request.uri), from_tag, request.call_id, str(cseq), str(via), method)


class TransactionLayer:
    """All transactions of one SIP element, keyed and timed."""

    def __init__(
        self,
        new_branch: Callable[[], str],
        *,
        timers: Timers | None = None,
        limits: Limits | None = None,
        max_transactions: int = 100_000,
        max_per_source: int = 0,
        user_agent: str = "softswitch",
    ) -> None:
        self.timers = timers or Timers()
        self.limits = limits or Limits()
        self.max_transactions = max_transactions
        #: most server transactions one source host may have in progress, i.e. not yet
        #: answered with a final response (0 = no limit)
        self.max_per_source = max_per_source
        self._per_source: dict[str, int] = {}
        self.user_agent = user_agent
        self._new_branch = new_branch
        self._server: dict[TxnKey, Transaction] = {}
        self._client: dict[TxnKey, Transaction] = {}
        self._acceptors: dict[TxnKey, _Acceptor] = {}
        self._heap: list[tuple[float, int, str, TxnKey, str]] = []
        self._seq = count()
        self._out: list[Outgoing] = []
        self._events: list[object] = []
        self._hint: float | None = None
        #: sent-by of our own Via per transport ("udp", "tcp", "tls"), set by the adapter.
        self.local_via: dict[str, tuple[str, int]] = {}

    # -- sink interface for the machines -------------------------------------------------------

    def send(self, data: bytes, destination: Address) -> None:
        self._out.append(Outgoing(data, destination))

    def emit(self, event: object) -> None:
        self._events.append(event)

    def arm(self, txn: Transaction, name: str, deadline: float) -> None:
        if isinstance(txn, _Acceptor):
            table = "a"
        elif isinstance(txn, ClientInvite | ClientNonInvite):
            table = "c"
        else:
            table = "s"
        heapq.heappush(self._heap, (deadline, next(self._seq), table, txn.key, name))
        if self._hint is None or deadline < self._hint:
            self._hint = deadline

    def take_deadline_hint(self) -> float | None:
        """The earliest deadline armed since the last call (None if none): a cheap check
        after each input of whether the adapter's timer must fire sooner."""
        hint, self._hint = self._hint, None
        return hint

    # -- outputs -------------------------------------------------------------------------------

    def take_outgoing(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def take_events(self) -> list[object]:
        events, self._events = self._events, []
        return events

    def __len__(self) -> int:
        """Live transactions (server, client and 2xx retransmitters)."""
        return len(self._server) + len(self._client) + len(self._acceptors)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "server": len(self._server),
            "client": len(self._client),
            "acceptors": len(self._acceptors),
        }

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, table, key, name = heapq.heappop(heap)
            txns: dict[TxnKey, Transaction]
            if table == "s":
                txns = self._server
            elif table == "c":
                txns = self._client
            else:
                txns = self._acceptors  # type: ignore[assignment]
            txn = txns.get(key)
            if txn is None or txn.timers.get(name) != deadline:
                continue
            del txn.timers[name]
            txn.fire(name, now, self, self.timers)
            if txn.terminated:
                if table == "s":
                    self._forget_server(txn)
                else:
                    del txns[key]

    # -- receiving -----------------------------------------------------------------------------

    def receive_data(self, data: bytes, source: Address, now: float) -> None:
        """Parse one message and handle it; a malformed request is answered (§8.2.6.2)."""
        try:
            msg = parse_message(data, self.limits)
        except MalformedMessage as exc:
            resp = exc.error_response()
            if resp is not None:
                self._send_stateless_response(resp, source)
            return
        self.receive(msg, source, now)

    def receive(self, msg: Request | Response, source: Address, now: float) -> None:
        if isinstance(msg, Request):
            self._receive_request(msg, source, now)
        else:
            self._receive_response(msg, now)

    def _receive_request(self, req: Request, source: Address, now: float) -> None:
        via = _fix_top_via(req, source)
        key = server_key(req, via)
        txn = self._server.get(key)
        if req.method == "ACK":
            if isinstance(txn, ServerInvite) and txn.ack(now, self, self.timers):
                return  # the ACK for our 3xx-6xx ends the transaction (§17.2.1)
            acceptor = self._acceptors.pop(("2xx", req.call_id, str(req.cseq.seq)), None)
            if acceptor is not None:
                acceptor.timers.clear()
            self.emit(AckReceived(req, source))
            return
        if txn is not None:
            if isinstance(txn, ServerInvite | ServerNonInvite):
                txn.retransmission(self)
            return
        destination = _response_destination(via, source)
        if len(self) >= self.max_transactions:
            self._send_stateless_response(
                make_response(req, 503, "Too Many Transactions"), destination
            )
            return
        count_from = self._per_source.get(source.host, 0)
        if self.max_per_source and count_from >= self.max_per_source:
            resp = make_response(req, 503, "Too Many Transactions From Your Address")
            resp.headers.add("Retry-After", "5")
            self._send_stateless_response(resp, destination)
            return
        self._per_source[source.host] = count_from + 1
        if req.method == "INVITE":
            sit = ServerInvite(key, req, destination)
            sit.source_host = source.host
            self._server[key] = sit
            trying = make_response(req, 100)
            sit.respond(trying, self._serialize(trying), now, self, self.timers)
            self.emit(RequestReceived(req, source, key))
            return
        nist = ServerNonInvite(key, req, destination)
        nist.source_host = source.host
        self._server[key] = nist
        if req.method == "CANCEL":
            invite_key = (*key[:-1], "INVITE")
            invite = self._server.get(invite_key)
            if invite is None:
                self._respond_txn(nist, make_response(req, 481), now)
                return
            self._respond_txn(nist, make_response(req, 200), now)
            if invite.state is State.PROCEEDING:
                self.emit(InviteCancelled(invite_key, req))
            return
        self.emit(RequestReceived(req, source, key))

    def _receive_response(self, resp: Response, now: float) -> None:
        try:
            via = resp.top_via
            cseq = resp.cseq
        except Exception:
            return
        if via.branch is None:
            return
        key: TxnKey = (via.branch, cseq.method)
        txn = self._client.get(key)
        if txn is None:
            return  # §18.1.2 / §17.1.3: a response matching no transaction is dropped
        if isinstance(txn, ClientInvite | ClientNonInvite):
            txn.receive(resp, now, self, self.timers)
        if txn.terminated:
            del self._client[key]

    # -- sending -------------------------------------------------------------------------------

    def respond(self, key: TxnKey, resp: Response, now: float) -> bool:
        """Send ``resp`` on server transaction ``key``; False when it no longer exists."""
        txn = self._server.get(key)
        if txn is None:
            return False
        self._respond_txn(txn, resp, now)
        return True

    def respond_stateless(self, key: TxnKey, resp: Response) -> bool:
        """Answer a non-INVITE request with a final response and forget its transaction.

        A stateless UAS (RFC 3261 §8.2.7): a retransmission of the request is handled anew.
        Fit for answers that are cheap to repeat and change nothing, such as a digest
        challenge or an OPTIONS reply; it spares 64*T1 of state per request.
        """
        txn = self._server.get(key)
        if not isinstance(txn, ServerNonInvite) or resp.status < 200:
            raise LocalProtocolError("only a final response to a non-INVITE can be stateless")
        if "Server" not in resp.headers:
            resp.headers.add("Server", self.user_agent)
        self.send(bytes(resp), txn.destination)
        txn.state = State.TERMINATED
        txn.timers.clear()
        self._forget_server(txn)
        return True

    def _respond_txn(self, txn: Transaction, resp: Response, now: float) -> None:
        if "Server" not in resp.headers and resp.status >= 200:
            resp.headers.add("Server", self.user_agent)
        data = self._serialize(resp)
        if resp.status >= 200:
            self._release_source(txn)
        if isinstance(txn, ServerInvite):
            txn.respond(resp, data, now, self, self.timers)
            if 200 <= resp.status < 300:
                acc_key = ("2xx", resp.call_id, str(resp.cseq.seq))
                acc = _Acceptor(acc_key, txn.request, txn.destination)
                old = self._acceptors.pop(acc_key, None)
                if old is not None:
                    old.timers.clear()
                self._acceptors[acc_key] = acc
                acc.start(resp, data, now, self)
        elif isinstance(txn, ServerNonInvite):
            txn.respond(resp, data, now, self, self.timers)
            if resp.status >= 200:
                # Completed: only the response bytes are needed now (to answer retransmissions
                # for Timer J). Drop the parsed values so 64*T1 of finished transactions do not
                # weigh on the garbage collector.
                txn.request._parsed.clear()
        if txn.terminated:
            self._forget_server(txn)

    def _forget_server(self, txn: Transaction) -> None:
        self._server.pop(txn.key, None)
        self._release_source(txn)

    def _release_source(self, txn: Transaction) -> None:
        """The transaction no longer counts against its source's in-progress limit."""
        host = txn.source_host
        if not host:
            return
        txn.source_host = ""
        left = self._per_source.get(host, 1) - 1
        if left > 0:
            self._per_source[host] = left
        else:
            self._per_source.pop(host, None)

    def server_request(self, key: TxnKey) -> Request | None:
        txn = self._server.get(key)
        return txn.request if txn is not None else None

    def add_via(self, request: Request, transport: str, branch: str | None = None) -> str:
        """Put our Via on top of ``request`` (§8.1.1.7); returns the branch."""
        sent_by = self.local_via.get(transport)
        if sent_by is None:
            raise LocalProtocolError(f"no local address for transport {transport}")
        host, port = sent_by
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        branch = branch or MAGIC_COOKIE + self._new_branch()
        request.headers.prepend(
            "Via", f"SIP/2.0/{transport.upper()} {host}:{port};" f"branch={branch};rport"
        )
        return branch

    def send_request(self, request: Request, destination: Address, now: float) -> TxnKey:
        """Start a client transaction for ``request`` (which must not yet carry our Via)."""
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction; use send_stateless")
        branch = self.add_via(request, destination.transport)
        data = self._serialize(request)
        if destination.transport == "udp" and len(data) > MTU_LIMIT and "tcp" in self.local_via:
            request.headers.pop_first("Via")
            destination = Address("tcp", destination.host, destination.port)
            self.add_via(request, "tcp", branch)
            data = self._serialize(request)
        key: TxnKey = (branch, request.method)
        txn: ClientInvite | ClientNonInvite
        if request.method == "INVITE":
            txn = ClientInvite(key, request, destination)
        else:
            txn = ClientNonInvite(key, request, destination)
        self._client[key] = txn
        txn.start(data, now, self, self.timers)
        return key

    def send_cancel(self, invite_key: TxnKey, now: float) -> TxnKey | None:
        """CANCEL a pending INVITE client transaction (§9.1); None if it is past Proceeding."""
        txn = self._client.get(invite_key)
        if not isinstance(txn, ClientInvite) or txn.state not in (
            State.CALLING,
            State.PROCEEDING,
        ):
            return None
        inv = txn.request
        h = Headers()
        h.add("Via", inv.headers.get_all("Via")[0])
        for row in inv.headers.rows("Route"):
            h.add("Route", row)
        h.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            h.add(name, inv.headers.get(name) or "")
        h.add("CSeq", f"{inv.cseq.seq} CANCEL")
        cancel = Request("CANCEL", inv.uri, h)
        key: TxnKey = (invite_key[0], "CANCEL")
        cit = ClientNonInvite(key, cancel, txn.destination)
        self._client[key] = cit
        cit.start(self._serialize(cancel), now, self, self.timers)
        return key

    def send_stateless(self, request: Request, destination: Address) -> None:
        """Send a request outside any transaction (the ACK for a 2xx, §13.2.2.4)."""
        if not request.headers.rows("Via"):
            self.add_via(request, destination.transport)
        self.send(self._serialize(request), destination)

    def _send_stateless_response(self, resp: Response, destination: Address) -> None:
        self.send(bytes(resp), destination)

    def _serialize(self, msg: Request | Response) -> bytes:
        return bytes(msg)

    def client_request(self, key: TxnKey) -> Request | None:
        txn = self._client.get(key)
        return txn.request if txn is not None else None


def _fix_top_via(req: Request, source: Address) -> Via:
    """Add ``received`` and fill ``rport`` on the top Via (§18.2.1, RFC 3581 §4)."""
    top = req.top_via
    via = Via(top.transport, top.host, top.port, dict(top.params))  # parsed values are shared
    changed = False
    if via.host != source.host:
        via.params["received"] = source.host
        changed = True
    if "rport" in via.params and via.params["rport"] is None:
        via.params["rport"] = str(source.port)
        via.params.setdefault("received", source.host)
        changed = True
    if changed:
        req.headers.pop_first("Via")
        req.headers.prepend("Via", str(via))
    return via


def _response_destination(via: Via, source: Address) -> Address:
    """Where responses to this request go (§18.2.2 with RFC 3581 §4)."""
    if source.transport != "udp":
        return source  # the same connection
    if "maddr" in via.params:
        maddr = via.params["maddr"] or source.host
        return Address("udp", maddr, via.port or 5060)
    host = via.params.get("received") or via.host
    rport = via.params.get("rport")
    port = int(rport) if rport else (via.port or 5060)
    return Address("udp", host, port)
