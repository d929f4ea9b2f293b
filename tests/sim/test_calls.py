"""Whole calls through the real engine, in memory, with a fake clock.

After every scenario, the switch's tables (calls, dialogs, pending transactions, transactions)
must be empty again once the RFC 3261 timers have run out.
"""

from __future__ import annotations

from softswitch.sip.events import Address
from softswitch.sip.message import Request, Response, parse_message

from .network import SWITCH, Network, Phone, sdp


def setup_pair() -> tuple[Network, Phone, Phone]:
    net = Network()
    alice = net.add_phone("1001", 5071)
    bob = net.add_phone("1002", 5072)
    alice.register()
    bob.register()
    net.run_until(lambda: alice.registered and bob.registered, 5)
    return net, alice, bob


def assert_drained(net: Network) -> None:
    net.run(net.now + 40)  # longer than 64*T1: every transaction timer has fired
    assert net.tables() == {"calls": 0, "dialogs": 0, "pending": 0, "invites": 0, "transactions": 0}


def test_register_and_basic_call_then_everything_drains() -> None:
    net, alice, bob = setup_pair()
    assert len(net.engine.registrar.table) == 2
    alice.call("1002")
    net.run_until(lambda: bob.call_state == "ringing-in")
    net.run_until(lambda: alice.call_state == "ringing")
    bob.answer()
    net.run_until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    assert alice.final_status == 200
    # the SDP of each side reached the other unchanged (no anchoring in this layer yet)
    ok = next(r for r in alice.responses if r.status == 200 and r.cseq.method == "INVITE")
    assert ok.body == bob.answer_sdp
    assert net.engine.b2bua.table_sizes["calls"] == 1
    alice.hangup()
    net.run_until(lambda: alice.call_state == "ended" and bob.bye_received)
    assert_drained(net)


def test_callee_hangs_up() -> None:
    net, alice, bob = setup_pair()
    bob.auto_answer = 200
    alice.call("1002")
    net.run_until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    bob.hangup()
    net.run_until(lambda: bob.call_state == "ended" and alice.bye_received)
    assert_drained(net)


def test_lost_ack_is_recovered_by_2xx_retransmission() -> None:
    net, alice, bob = setup_pair()
    bob.auto_answer = 200
    dropped: list[float] = []

    def drop_first_ack(data: bytes, src: object, dst: object) -> bool:
        # the ACK for the 2xx (CSeq 2: the INVITE resent with credentials after the 407)
        if data.startswith(b"ACK ") and b"CSeq: 2 ACK" in data and not dropped:
            dropped.append(net.now)
            return True
        return False

    net.drop = drop_first_ack
    alice.call("1002")
    net.run_until(lambda: len(dropped) == 1)
    # The switch retransmits its 200 after T1; alice ACKs the retransmission (§13.3.1.4).
    net.run_until(
        lambda: sum(1 for t, s, d, data in net.log if s == alice.address and b"CSeq: 2 ACK" in data)
        >= 2,
        3,
    )
    oks = [
        t
        for t, s, d, data in net.log
        if s == SWITCH
        and d == alice.address
        and data.startswith(b"SIP/2.0 200")
        and b"INVITE" in data.split(b"CSeq:")[1][:20]
    ]
    assert len(oks) >= 2 and 0.45 <= oks[1] - oks[0] <= 0.6
    net.run(net.now + 1)
    call = next(iter(net.engine.b2bua.calls.values()))
    assert call.state.value == "confirmed"
    alice.hangup()
    net.run_until(lambda: alice.call_state == "ended" and bob.bye_received)
    assert_drained(net)


def test_ack_never_arrives_ends_the_call_with_bye() -> None:
    net, alice, bob = setup_pair()
    bob.auto_answer = 200
    net.drop = lambda data, src, dst: b"CSeq: 2 ACK" in data and src == alice.address
    alice.call("1002")
    net.run_until(lambda: bob.bye_received, 40)
    assert net.now >= 32  # 64*T1 of retransmitting the 200 first
    assert_drained(net)


def test_cancel_before_answer_gives_487_and_cancels_the_fork() -> None:
    net, alice, bob = setup_pair()
    alice.call("1002")
    net.run_until(lambda: alice.call_state == "ringing")
    alice.cancel()
    net.run_until(lambda: alice.final_status == 487 and bob.cancelled)
    assert_drained(net)


def test_cancel_200_race_switch_sees_200_first() -> None:
    """The callee's 200 reaches the switch before the caller's CANCEL does."""
    net, alice, bob = setup_pair()
    alice.call("1002")
    net.run_until(lambda: alice.call_state == "ringing")
    bob.answer()  # 200 leaves bob now
    alice.cancel()  # CANCEL leaves alice at the same instant
    net.run_until(lambda: alice.final_status is not None, 5)
    # The 200 won: the CANCEL has no effect (§9.2); the caller ends the call with BYE.
    assert alice.final_status == 200
    alice.hangup()
    net.run_until(lambda: alice.call_state == "ended" and bob.bye_received)
    assert_drained(net)


def test_cancel_200_race_switch_sees_cancel_first() -> None:
    """The caller's CANCEL reaches the switch while the callee's 200 is on the wire."""
    net, alice, bob = setup_pair()
    alice.call("1002")
    net.run_until(lambda: alice.call_state == "ringing")
    # Delay bob's 200 so that it crosses the CANCEL the switch sends to bob.
    alice.cancel()
    net.run_until(
        lambda: any(data.startswith(b"CANCEL ") and s == SWITCH for _, s, _, data in net.log), 2
    )
    bob.answer()
    net.run_until(lambda: alice.final_status == 487, 5)
    # The switch ACKs the late 200 and ends bob's leg with BYE (§16.7 step 5 behaviour).
    net.run_until(lambda: bob.bye_received, 5)
    assert_drained(net)


def test_busy_callee_gives_486_to_caller() -> None:
    net, alice, bob = setup_pair()
    bob.auto_answer = 486
    alice.call("1002")
    net.run_until(lambda: alice.final_status is not None)
    assert alice.final_status == 486
    assert_drained(net)


def test_forking_to_two_contacts_first_answer_wins() -> None:
    net, alice, bob = setup_pair()
    bob2 = net.add_phone("1002", 5073)
    bob2.register()
    net.run_until(lambda: bob2.registered)
    alice.call("1002")
    net.run_until(lambda: bob.call_state == "ringing-in" and bob2.call_state == "ringing-in")
    bob2.answer()
    net.run_until(lambda: alice.call_state == "confirmed" and bob.cancelled)
    alice.hangup()
    net.run_until(lambda: bob2.bye_received)
    assert not bob.bye_received
    assert_drained(net)


def test_unknown_number_404_and_unregistered_user_480() -> None:
    net, alice, _ = setup_pair()
    alice.call("9999")
    net.run_until(lambda: alice.final_status is not None)
    assert alice.final_status == 404
    alice.final_status = None
    alice.call("1003")
    net.run_until(lambda: alice.final_status is not None)
    assert alice.final_status == 480
    assert_drained(net)


def test_no_answer_gives_408_after_ring_timeout() -> None:
    net, alice, bob = setup_pair()
    alice.call("1002")
    net.run_until(lambda: alice.final_status is not None, 70)
    assert alice.final_status == 408
    assert 59 <= net.now <= 62
    assert bob.cancelled
    assert_drained(net)


def test_reinvite_is_relayed_to_the_other_leg() -> None:
    net, alice, bob = setup_pair()
    bob.auto_answer = 200
    alice.call("1002")
    net.run_until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    assert alice.dialog is not None
    reinvite = alice.dialog.create_request(
        "INVITE",
        body=sdp(9, "hold", "sendonly"),
        content_type="application/sdp",
        extra=[("Contact", "<sip:1001@127.0.0.1:5071>")],
    )
    seq = reinvite.cseq.seq
    alice.layer.send_request(reinvite, SWITCH, net.now)
    alice._flush()
    net.run_until(
        lambda: any(
            r.cseq.method == "INVITE" and r.cseq.seq == seq and r.status == 200
            for r in alice.responses
        ),
        5,
    )
    reply = next(r for r in alice.responses if r.cseq.seq == seq and r.status == 200)
    assert reply.body == bob.answer_sdp  # bob's answer to the re-offer, relayed back
    seen = [parse_message(d) for _, s, dst, d in net.log if dst == bob.address]
    relayed = [m for m in seen if isinstance(m, Request) and m.method == "INVITE" and m.to.tag]
    assert relayed and relayed[-1].body == sdp(9, "hold", "sendonly")
    alice.hangup()
    net.run_until(lambda: bob.bye_received)
    assert_drained(net)


def test_stray_bye_gets_481() -> None:
    net, alice, _ = setup_pair()
    from softswitch.sip.dialog import Dialog
    from softswitch.sip.uri import SipUri

    d = Dialog(
        "nope",
        "a",
        "b",
        "<sip:1001@softswitch.local>",
        "<sip:x@softswitch.local>",
        1,
        None,
        SipUri("127.0.0.1", port=5060),
    )
    alice.layer.send_request(d.create_request("BYE"), SWITCH, net.now)
    alice._flush()
    net.run(net.now + 1)
    assert any(isinstance(r, Response) and r.status == 481 for r in alice.responses)


def test_wrong_password_is_answered_like_unknown_user_and_bans_after_threshold() -> None:
    net = Network()
    mallory = net.add_phone("1001", 5090)
    mallory.password = "wrong"
    ghost = net.add_phone("7777", 5091)
    for phone in (mallory, ghost):
        phone.register()
    net.run(net.now + 2)
    m_last = [r for r in mallory.responses if r.cseq.method == "REGISTER"][-1]
    g_last = [r for r in ghost.responses if r.cseq.method == "REGISTER"][-1]
    assert (m_last.status, m_last.reason) == (g_last.status, g_last.reason) == (401, "Unauthorized")
    assert sorted(n for n, _ in m_last.headers) == sorted(n for n, _ in g_last.headers)
    threshold = net.settings.security.auth_failures.threshold
    for _ in range(threshold):
        mallory.register()
        net.run(net.now + 1)
    assert net.engine.bans.is_banned("127.0.0.1", net.now)


def test_keepalive_removes_a_contact_that_stops_answering() -> None:
    net = Network(keepalive=10)
    alice = net.add_phone("1001", 5071)
    alice.register()
    net.run_until(lambda: alice.registered)
    net.run(net.now + 25)
    probes = [d for _, s, dst, d in net.log if s == SWITCH and d.startswith(b"OPTIONS ")]
    assert len(probes) >= 1  # answered probes keep the binding
    assert len(net.engine.registrar.table) == 1
    del net.phones[alice.address]  # the phone vanishes (unplugged, VPN down)
    net.run(net.now + 2 * (10 + 32) + 5)  # two probes, each unanswered until Timer F
    assert len(net.engine.registrar.table) == 0
    assert net.engine.keepalive is not None and net.engine.keepalive.pending == 0


def test_each_user_is_held_to_its_own_max_contacts() -> None:
    net = Network()
    caps = net.engine.registrar.max_contacts
    caps["1001"] = 2
    phones = [net.add_phone("1001", 5100 + i) for i in range(3)]
    for phone in phones[:2]:
        phone.register()
        net.run_until(lambda p=phone: p.registered)
    phones[2].register()
    net.run(net.now + 2)
    last = [r for r in phones[2].responses if r.cseq.method == "REGISTER"][-1]
    assert (last.status, last.reason) == (403, "At Most 2 Contacts")
    assert len(net.engine.registrar.lookup("1001", net.engine.wall_clock())) == 2
    phones[0].register()  # a refresh of a registered contact is not a new one
    phones[0].registered = False
    net.run_until(lambda: phones[0].registered)


def test_a_binding_that_cannot_be_reached_fails_the_call_at_once() -> None:
    from softswitch.registrar.bindings import ContactUpdate

    net, alice, _ = setup_pair()
    net.engine.registrar.table.apply(
        "1003@softswitch.local",
        "x",
        1,
        [ContactUpdate("sip:1003@127.0.0.1:5099", 300, source="sctp:nowhere")],
        net.engine.wall_clock(),
    )
    alice.call("1003")
    net.run_until(lambda: alice.final_status is not None, 2)
    assert alice.final_status == 480
    assert_drained(net)


def test_source_network_acl_refuses_a_valid_user_from_outside() -> None:
    """users[].allowed_networks: 1001 may register from loopback only (the demo config)."""
    net = Network()
    outsider = Phone(net, "1001", "demo1001", Address("udp", "192.0.2.50", 5080))
    net.phones[outsider.address] = outsider  # an in-memory address: nothing leaves the process
    outsider.register()
    net.run(net.now + 2)
    last = [r for r in outsider.responses if r.cseq.method == "REGISTER"][-1]
    assert (last.status, last.reason) == (403, "Source Network Not Allowed")
    assert len(net.engine.registrar.table) == 0
    insider = net.add_phone("1001", 5081)
    insider.register()
    net.run_until(lambda: insider.registered)
