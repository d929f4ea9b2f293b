"""The RFC 3261 §17 machines through the transaction layer, with a fake clock.

Every test asserts the exact instants at which retransmissions leave and at which timers end
the transactions, and that the layer's tables are empty afterwards.
"""

from __future__ import annotations

from itertools import count

from softswitch.sip.events import (
    AckReceived,
    AckTimedOut,
    Address,
    InviteCancelled,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
)
from softswitch.sip.headers import Headers
from softswitch.sip.message import Request, Response, make_response, parse_message
from softswitch.sip.transaction import Timers
from softswitch.sip.txn_layer import TransactionLayer
from softswitch.sip.uri import SipUri

from .sipmsgs import invite, request, response_to

PEER = Address("udp", "10.0.0.1", 5070)
PEER_TCP = Address("tcp", "10.0.0.1", 5070)


def new_layer() -> TransactionLayer:
    ids = count(1)
    layer = TransactionLayer(lambda: f"id{next(ids)}", timers=Timers(0.5, 4.0, 5.0))
    layer.local_via = {"udp": ("192.0.2.10", 5060), "tcp": ("192.0.2.10", 5060)}
    return layer


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, bytes]]:
    """Fire every timer up to ``end``; return (instant, bytes) of everything sent."""
    sent: list[tuple[float, bytes]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= end:
        layer.handle_timer(deadline)
        sent += [(deadline, o.data) for o in layer.take_outgoing()]
    return sent


def client_request(method: str) -> Request:
    h = Headers()
    h.add("Max-Forwards", "70")
    h.add("From", "<sip:alice@example.com>;tag=f1")
    h.add("To", "<sip:bob@example.com>")
    h.add("Call-ID", "cid-1")
    h.add("CSeq", f"1 {method}")
    return Request(method, SipUri("example.com", "bob"), h)


def test_non_invite_client_timer_e_doubles_to_t2_and_f_times_out() -> None:
    layer = new_layer()
    key = layer.send_request(client_request("OPTIONS"), PEER, 0.0)
    assert len(layer.take_outgoing()) == 1
    sent = run_until(layer, 40.0)
    times = [t for t, _ in sent]
    # E: T1, then doubling up to T2 = 4 s (§17.1.2.2): 0.5, 1.5, 3.5, 7.5, 11.5, ... < 32
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    events = layer.take_events()
    assert events == [TransactionTimedOut(key, events[0].request)]  # F at 64*T1 = 32 s
    assert len(layer) == 0


def test_non_invite_client_final_response_then_timer_k() -> None:
    layer = new_layer()
    key = layer.send_request(client_request("OPTIONS"), PEER, 0.0)
    data = layer.take_outgoing()[0].data
    resp = response_to(data, 200, "OK")
    layer.receive_data(resp, PEER, 0.2)
    [event] = layer.take_events()
    assert isinstance(event, ResponseReceived) and event.key == key
    layer.receive_data(resp, PEER, 0.3)  # retransmitted final: absorbed
    assert layer.take_events() == []
    assert run_until(layer, 5.19) == []  # no more retransmissions of the request
    assert len(layer) == 1
    run_until(layer, 5.2)  # Timer K = T4 = 5 s after the final response
    assert len(layer) == 0


def test_non_invite_client_provisional_keeps_retransmitting_at_t2() -> None:
    layer = new_layer()
    layer.send_request(client_request("OPTIONS"), PEER, 0.0)
    data = layer.take_outgoing()[0].data
    layer.receive_data(response_to(data, 180, "Ringing"), PEER, 0.1)
    times = [t for t, _ in run_until(layer, 12.0)]
    assert times == [0.5, 4.5, 8.5]  # Proceeding: every T2 (§17.1.2.2)


def test_invite_client_timer_a_and_b() -> None:
    layer = new_layer()
    key = layer.send_request(client_request("INVITE"), PEER, 0.0)
    layer.take_outgoing()
    times = [t for t, _ in run_until(layer, 40.0)]
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A doubles without cap (§17.1.1.2)
    [event] = layer.take_events()
    assert isinstance(event, TransactionTimedOut) and event.key == key  # B = 32 s
    assert len(layer) == 0


def test_invite_client_in_proceeding_waits_past_timer_b() -> None:
    layer = new_layer()
    layer.send_request(client_request("INVITE"), PEER, 0.0)
    data = layer.take_outgoing()[0].data
    layer.receive_data(response_to(data, 180, "Ringing"), PEER, 0.2)
    layer.take_events()
    run_until(layer, 100.0)
    assert layer.take_events() == []  # Timer B only ends a transaction still Calling
    assert len(layer) == 1


def test_invite_client_over_tcp_has_no_timer_a() -> None:
    layer = new_layer()
    layer.send_request(client_request("INVITE"), PEER_TCP, 0.0)
    layer.take_outgoing()
    assert run_until(layer, 40.0) == []
    assert isinstance(layer.take_events()[0], TransactionTimedOut)


def test_invite_client_error_response_sends_ack_and_absorbs_retransmissions() -> None:
    layer = new_layer()
    layer.send_request(client_request("INVITE"), PEER, 0.0)
    data = layer.take_outgoing()[0].data
    busy = response_to(data, 486, "Busy Here")
    layer.receive_data(busy, PEER, 0.1)
    [ack] = layer.take_outgoing()
    parsed = parse_message(ack.data)
    assert isinstance(parsed, Request) and parsed.method == "ACK"
    assert parsed.cseq.method == "ACK" and parsed.cseq.seq == 1
    assert parsed.top_via.branch == parse_message(data).top_via.branch  # same branch (§17.1.1.3)
    assert parsed.to.tag == "b1"
    layer.receive_data(busy, PEER, 1.0)  # retransmitted 486: ACK again, TU not told again
    assert [o.data for o in layer.take_outgoing()] == [ack.data]
    assert len([e for e in layer.take_events() if isinstance(e, ResponseReceived)]) == 1
    run_until(layer, 32.2)  # Timer D = 32 s over UDP
    assert len(layer) == 0


def test_invite_client_2xx_goes_to_tu_and_retransmissions_too() -> None:
    layer = new_layer()
    layer.send_request(client_request("INVITE"), PEER, 0.0)
    data = layer.take_outgoing()[0].data
    ok = response_to(data, 200, "OK")
    layer.receive_data(ok, PEER, 0.1)
    layer.receive_data(ok, PEER, 0.6)
    events = layer.take_events()
    assert [type(e) for e in events] == [ResponseReceived, ResponseReceived]  # RFC 6026 §7.2
    assert layer.take_outgoing() == []  # the TU, not the transaction, sends the 2xx ACK
    run_until(layer, 32.2)  # Timer M
    assert len(layer) == 0


def test_invite_server_sends_100_and_retransmits_error_until_ack() -> None:
    layer = new_layer()
    raw = invite()
    layer.receive_data(raw, PEER, 0.0)
    [trying] = layer.take_outgoing()
    assert trying.data.startswith(b"SIP/2.0 100 Trying")
    [event] = layer.take_events()
    assert isinstance(event, RequestReceived)
    layer.receive_data(raw, PEER, 0.05)  # retransmitted INVITE: the 100 again
    assert [o.data for o in layer.take_outgoing()] == [trying.data]
    assert layer.take_events() == []
    resp = make_response(event.request, 486, to_tag="t1")
    assert layer.respond(event.key, resp, 1.0)
    [first] = layer.take_outgoing()
    assert first.data.startswith(b"SIP/2.0 486")
    times = [t for t, _ in run_until(layer, 8.9)]
    assert times == [1.5, 2.5, 4.5, 8.5]  # G: T1 doubling to T2 (§17.2.1)
    ack_raw = request("ACK", "z9hG4bKabc", to_tag="t1").replace(b";rport", b"")
    layer.receive_data(ack_raw, PEER, 9.0)
    assert layer.take_events() == []  # absorbed: ACK for a non-2xx never reaches the TU
    assert run_until(layer, 13.9) == []  # Confirmed: no more retransmissions
    assert len(layer) == 1
    run_until(layer, 14.0)  # Timer I = T4 = 5 s
    assert len(layer) == 0


def test_invite_server_timer_h_without_ack() -> None:
    layer = new_layer()
    layer.receive_data(invite(), PEER, 0.0)
    [event] = layer.take_events()
    layer.respond(event.key, make_response(event.request, 603, to_tag="t"), 0.0)
    run_until(layer, 32.0)
    assert len(layer) == 0


def test_2xx_retransmitted_until_ack_then_ack_reaches_tu() -> None:
    layer = new_layer()
    layer.receive_data(invite(), PEER, 0.0)
    layer.take_outgoing()
    [event] = layer.take_events()
    layer.respond(event.key, make_response(event.request, 200, to_tag="t2"), 0.0)
    [ok] = layer.take_outgoing()
    sent = run_until(layer, 8.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5]  # §13.3.1.4
    assert all(d == ok.data for _, d in sent)
    layer.receive_data(request("ACK", "z9hG4bKother", to_tag="t2"), PEER, 9.0)
    [ack_event] = layer.take_events()
    assert isinstance(ack_event, AckReceived)
    assert run_until(layer, 40.0) == []
    assert len(layer) == 0  # Timer L (64*T1) ended the accepted server transaction


def test_2xx_without_ack_times_out_after_64_t1() -> None:
    layer = new_layer()
    layer.receive_data(invite(), PEER, 0.0)
    [event] = layer.take_events()
    layer.respond(event.key, make_response(event.request, 200, to_tag="t2"), 0.0)
    run_until(layer, 40.0)
    events = layer.take_events()
    assert [type(e) for e in events] == [AckTimedOut]
    assert len(layer) == 0


def test_non_invite_server_absorbs_retransmissions_and_timer_j() -> None:
    layer = new_layer()
    raw = request("OPTIONS")
    layer.receive_data(raw, PEER, 0.0)
    [event] = layer.take_events()
    layer.respond(event.key, make_response(event.request, 200, to_tag="x"), 0.0)
    [ok] = layer.take_outgoing()
    layer.receive_data(raw, PEER, 2.0)
    assert [o.data for o in layer.take_outgoing()] == [ok.data]
    assert layer.take_events() == []
    run_until(layer, 31.9)
    assert len(layer) == 1
    run_until(layer, 32.0)  # Timer J = 64*T1
    assert len(layer) == 0


def test_cancel_matches_invite_and_gets_200() -> None:
    layer = new_layer()
    layer.receive_data(invite(), PEER, 0.0)
    [inv_event] = layer.take_events()
    layer.take_outgoing()
    layer.receive_data(request("CANCEL", "z9hG4bKabc").replace(b";rport", b""), PEER, 1.0)
    [cancel_ok] = layer.take_outgoing()
    assert cancel_ok.data.startswith(b"SIP/2.0 200")
    [cancelled] = layer.take_events()
    assert isinstance(cancelled, InviteCancelled) and cancelled.invite_key == inv_event.key


def test_cancel_without_invite_gets_481() -> None:
    layer = new_layer()
    layer.receive_data(request("CANCEL", "z9hG4bKnone"), PEER, 0.0)
    [out] = layer.take_outgoing()
    assert out.data.startswith(b"SIP/2.0 481")
    assert layer.take_events() == []


def test_client_cancel_uses_invite_branch() -> None:
    layer = new_layer()
    key = layer.send_request(client_request("INVITE"), PEER, 0.0)
    inv = parse_message(layer.take_outgoing()[0].data)
    layer.receive_data(response_to(bytes(inv), 180, "Ringing"), PEER, 0.1)
    layer.take_events()
    ckey = layer.send_cancel(key, 0.2)
    assert ckey is not None
    [out] = layer.take_outgoing()
    cancel = parse_message(out.data)
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.top_via.branch == inv.top_via.branch
    assert cancel.cseq.seq == inv.cseq.seq


def test_response_routing_uses_received_and_rport() -> None:
    layer = new_layer()
    natted = Address("udp", "203.0.113.9", 40000)
    layer.receive_data(request("OPTIONS", host="10.0.0.1", port=5070), natted, 0.0)
    [event] = layer.take_events()
    assert isinstance(event, RequestReceived)
    top = event.request.top_via
    assert top.params["received"] == "203.0.113.9" and top.params["rport"] == "40000"
    layer.respond(event.key, make_response(event.request, 200), 0.0)
    [out] = layer.take_outgoing()
    assert out.destination == natted


def test_large_request_switches_to_tcp() -> None:
    layer = new_layer()
    req = client_request("MESSAGE")
    req.body = b"x" * 1400
    layer.send_request(req, PEER, 0.0)
    [out] = layer.take_outgoing()
    assert out.destination.transport == "tcp"
    parsed = parse_message(out.data)
    assert parsed.top_via.transport == "TCP"


def test_malformed_request_gets_400_with_reason() -> None:
    layer = new_layer()
    bad = request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    layer.receive_data(bad, PEER, 0.0)
    [out] = layer.take_outgoing()
    resp = parse_message(out.data)
    assert isinstance(resp, Response) and resp.status == 400
    assert "does not match" in resp.reason
    assert layer.take_events() == [] and len(layer) == 0


def test_transaction_cap_answers_503() -> None:
    layer = TransactionLayer(lambda: "x", max_transactions=2)
    for i in range(3):
        layer.receive_data(request("OPTIONS", f"z9hG4bK{i}"), PEER, 0.0)
    statuses = [o.data.split(b" ", 2)[1] for o in layer.take_outgoing()]
    assert statuses == [b"503"]
    assert len(layer.take_events()) == 2


def test_per_source_limit_counts_requests_in_progress_only() -> None:
    layer = TransactionLayer(lambda: "x", max_per_source=2)
    other = Address("udp", "10.0.0.2", 5070)
    for i in range(3):
        layer.receive_data(request("OPTIONS", f"z9hG4bKa{i}"), PEER, 0.0)
    layer.receive_data(request("OPTIONS", "z9hG4bKb", host="10.0.0.2"), other, 0.0)
    statuses = [o.data.split(b" ", 2)[1] for o in layer.take_outgoing()]
    assert statuses == [b"503"]  # only the third from PEER; the other source is unaffected
    events = layer.take_events()
    assert len(events) == 3
    for event in events:
        layer.respond(event.key, make_response(event.request, 200), 0.0)
    layer.take_outgoing()
    # Answered: the slots are free at once, while the transactions stay (Timer J) to absorb
    # retransmissions.
    assert len(layer) == 3
    for i in range(2):
        layer.receive_data(request("OPTIONS", f"z9hG4bKc{i}"), PEER, 1.0)
    assert len(layer.take_events()) == 2
    assert layer.take_outgoing() == []


def test_stateless_answer_keeps_no_state_and_a_retransmission_is_handled_anew() -> None:
    layer = new_layer()
    raw = request("REGISTER")
    layer.receive_data(raw, PEER, 0.0)
    [event] = layer.take_events()
    layer.respond_stateless(event.key, make_response(event.request, 401, to_tag="x"))
    [out] = layer.take_outgoing()
    assert out.data.startswith(b"SIP/2.0 401") and out.destination == PEER
    assert len(layer) == 0
    assert run_until(layer, 40.0) == []  # nothing kept, nothing resent
    layer.receive_data(raw, PEER, 0.1)  # the same request again: a new transaction
    assert [type(e) for e in layer.take_events()] == [RequestReceived]


def rfc2543_invite() -> bytes:
    """An RFC 2543 INVITE: its Via has no branch, so matching falls back to §17.2.3's rule."""
    return (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1:5070\r\n"
        b"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
        b"Call-ID: old@h\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@10.0.0.1:5070>\r\n"
        b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )


def test_rfc2543_retransmission_and_ack_match_without_a_branch() -> None:
    layer = new_layer()
    raw = rfc2543_invite()
    layer.receive_data(raw, PEER, 0.0)
    [event] = layer.take_events()
    assert event.key[0] == "2543"
    layer.take_outgoing()
    layer.respond(event.key, make_response(event.request, 486, to_tag="t9"), 0.1)
    [busy] = layer.take_outgoing()
    layer.receive_data(raw, PEER, 0.2)  # retransmission: matched, the 486 again, no new event
    assert [o.data for o in layer.take_outgoing()] == [busy.data]
    assert layer.take_events() == []
    ack = raw.replace(b"INVITE sip", b"ACK sip").replace(b"7 INVITE", b"7 ACK")
    ack = ack.replace(b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=t9")
    layer.receive_data(ack, PEER, 0.3)
    assert layer.take_events() == []  # absorbed by the transaction, as for RFC 3261 branches
    assert run_until(layer, 1.0) == []  # Confirmed: no more 486 retransmissions
