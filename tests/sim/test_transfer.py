"""Call transfer by REFER through the real engine, in memory, with a fake clock.

The switch's media engine is replaced by a recorder of what the B2BUA asks of it (ports,
where each leg's media goes, hold and translation), so the re-pointing of the anchored media
can be checked without sockets. After every scenario the switch's tables must be empty.
"""

from __future__ import annotations

from typing import Any

from softswitch.b2bua.call import Call
from softswitch.sip.events import Address, RequestReceived
from softswitch.sip.message import Request, Response, make_response
from softswitch.sip.sdp import SessionDescription, media_address

from .network import DOMAIN, Network, Phone, sdp


class RecordedMedia:
    """What the B2BUA asked of the media engine, per call (MediaControl)."""

    address = "127.0.0.2"

    def __init__(self) -> None:
        self.ports = 20000
        self.remote: dict[tuple[str, str], tuple[str, int]] = {}
        self.held: set[tuple[str, str]] = set()
        self.calls: set[str] = set()
        self.log: list[tuple[Any, ...]] = []

    def allocate(self, call_id: str) -> tuple[int, int]:
        self.ports += 4
        self.calls.add(call_id)
        return self.ports, self.ports + 2

    def set_remote(
        self, call_id: str, side: str, host: str, port: int, events_pt: int | None = None
    ) -> None:
        self.remote[(call_id, side)] = (host, port)

    def connect(self, call_id: str) -> None:
        self.log.append(("connect", call_id))

    def transcode(self, call_id: str, a_pt: int | None, b_pt: int | None) -> None:
        self.log.append(("transcode", call_id, a_pt, b_pt))

    def release(self, call_id: str) -> object:
        self.calls.discard(call_id)
        return {}

    def echo(self, call_id: str) -> None: ...

    def digit(self, call_id: str, side: str, digit: Any) -> None: ...

    def hold(self, call_id: str, side: str, payload_type: int) -> None:
        self.held.add((call_id, side))

    def unhold(self, call_id: str, side: str) -> None:
        self.held.discard((call_id, side))

    def monitor(self, call_id: str, supervisor_call: str, mode: Any, agent_side: str) -> bool:
        return False

    def prompt_test(self, call_id: str, payload_type: int, prompt: Any) -> None: ...

    def end_local(self, call_id: str) -> None: ...


class XferPhone(Phone):
    """A phone that also sends REFER and keeps the NOTIFYs it gets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notifies: list[Request] = []
        self.reinvites: list[Request] = []
        self.answer_status = 200  # what incoming INVITEs are answered with by answer()

    def _on_request(self, event: RequestReceived, now: float) -> None:
        req = event.request
        if req.method == "NOTIFY":
            self.notifies.append(req)
        elif req.method == "INVITE" and req.to.tag is not None:
            self.reinvites.append(req)
        super()._on_request(event, now)

    def in_dialog(self, method: str, extra: list[tuple[str, str]], body: bytes = b"") -> None:
        assert self.dialog is not None
        ctype = "application/sdp" if body else None
        req = self.dialog.create_request(method, body=body, content_type=ctype, extra=extra)
        req.headers.add("Contact", f"<{self.contact}>")
        self.layer.send_request(req, self.server, self.net.now)
        self._flush()

    def refer(self, refer_to: str | None, *extra: tuple[str, str]) -> None:
        rows = [("Refer-To", refer_to)] if refer_to is not None else []
        self.in_dialog("REFER", [*rows, *extra])

    def final(self, method: str) -> Response | None:
        done = [r for r in self.responses if r.cseq.method == method and r.status >= 200]
        return done[-1] if done else None

    def sipfrags(self) -> list[str]:
        return [n.body.decode().strip() for n in self.notifies]


def setup(media: RecordedMedia | None = None) -> tuple[Network, XferPhone, XferPhone, XferPhone]:
    net = Network()
    engine = net.engine
    engine.b2bua.media = media or RecordedMedia()

    def locate(user: str) -> Any:
        if user not in engine.accounts:
            return None
        return engine.registrar.lookup(user, net.now + 1_800_000_000.0)

    engine.b2bua.locate = locate
    phones = []
    for user, port in (("1001", 5071), ("1002", 5072), ("1003", 5073)):
        phone = XferPhone(net, user, f"demo{user}", Address("udp", "127.0.0.1", port))
        phone.rtp_port = port + 1000
        phone.offer_sdp = sdp(phone.rtp_port, "caller")
        phone.answer_sdp = sdp(phone.rtp_port, "callee")
        net.phones[phone.address] = phone
        phone.register()
        phones.append(phone)
    net.run_until(lambda: all(p.registered for p in phones), 5)
    return net, phones[0], phones[1], phones[2]


def connect(net: Network, alice: XferPhone, bob: XferPhone) -> Call:
    bob.auto_answer = 200
    alice.call("1002")
    net.run_until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    return next(iter(net.engine.b2bua.calls.values()))


def media_of(net: Network) -> RecordedMedia:
    media = net.engine.b2bua.media
    assert isinstance(media, RecordedMedia)
    return media


def drained(net: Network) -> None:
    net.run(net.now + 40)  # longer than 64*T1: every transaction timer has fired
    assert net.tables() == {"calls": 0, "dialogs": 0, "pending": 0, "invites": 0, "transactions": 0}
    assert not media_of(net).calls


def refer_to(user: str) -> str:
    return f"<sip:{user}@{DOMAIN}>"


def test_blind_transfer_connects_the_caller_to_the_target() -> None:
    net, alice, bob, carol = setup()
    reported: list[tuple[str, str, str]] = []
    net.engine.b2bua.on_transferred = lambda *args: reported.append(args)
    call = connect(net, alice, bob)
    bob.refer(refer_to("1003"), ("Referred-By", f"<sip:1002@{DOMAIN}>"))
    net.run_until(lambda: carol.call_state == "ringing-in")
    assert bob.final("REFER") is not None and bob.final("REFER").status == 202  # type: ignore[union-attr]
    assert bob.sipfrags() == ["SIP/2.0 100 Trying"]
    assert bob.notifies[0].headers.get("Event") == "refer"
    assert bob.notifies[0].headers.get("Content-Type") == "message/sipfrag;version=2.0"
    # the target is called as the transferee, with the switch's offer on the B side
    invite = carol.incoming[0][1]
    assert invite.from_.uri.user == "1001"  # type: ignore[union-attr]
    offer = SessionDescription.parse(invite.body)
    assert call.ports is not None
    assert media_address(offer.media[0], offer) == ("127.0.0.2", call.ports[1])
    assert (call.id, "a") in media_of(net).held  # the caller hears music meanwhile
    carol.answer()
    net.run_until(lambda: len(bob.notifies) == 2)
    assert bob.sipfrags()[1] == "SIP/2.0 200 OK"
    assert bob.notifies[1].headers.get("Subscription-State") == "terminated;reason=noresource"
    assert media_of(net).remote[(call.id, "b")] == ("127.0.0.1", carol.rtp_port)
    assert (call.id, "a") not in media_of(net).held
    assert reported == [(call.id, "b", "1003")]
    assert call.b is not None and call.b.user == "1003" and call.transfers == ["1003"]
    bob.hangup()  # the transferor's phone ends its part
    net.run_until(lambda: bob.call_state == "ended")
    assert not alice.bye_received and not carol.bye_received
    alice.hangup()
    net.run_until(lambda: alice.call_state == "ended" and carol.bye_received)
    drained(net)


def test_the_switch_releases_a_transferor_that_does_not_hang_up() -> None:
    net, alice, bob, carol = setup()
    carol.auto_answer = 200
    connect(net, alice, bob)
    bob.refer(refer_to("1003"))
    net.run_until(lambda: len(bob.notifies) == 2)
    sent_at = net.now
    net.run_until(lambda: bob.bye_received, 10)
    assert 3.5 <= net.now - sent_at <= 5
    assert not alice.bye_received and not carol.bye_received
    carol.hangup()
    net.run_until(lambda: alice.bye_received)
    drained(net)


def test_refused_refers_get_their_status_and_the_call_goes_on() -> None:
    net, alice, bob, carol = setup()
    call = connect(net, alice, bob)
    cases: list[tuple[str | None, tuple[tuple[str, str], ...], int]] = [
        (None, (), 400),  # no Refer-To
        ("<sip:1003@", (), 400),  # malformed
        ("<http://example.com/>", (), 403),  # not a SIP URI
        (f"<sip:{DOMAIN}>", (), 403),  # nobody to call
        (f"<sip:1003@{DOMAIN};method=BYE>", (), 501),
        (refer_to("1999"), (), 404),  # no such user
        (refer_to("1004"), (), 480),  # a user with no registered phone
        (refer_to("1003"), (("Refer-To", refer_to("1001")),), 400),  # two Refer-To
    ]
    for target, extra, status in cases:
        before = len(bob.responses)
        bob.refer(target, *extra)
        net.run_until(lambda b=before: len(bob.responses) > b)  # type: ignore[misc]
        assert bob.responses[-1].status == status, (target, bob.responses[-1].status)
    assert not bob.notifies and carol.call_state == "idle"
    assert call.state.value == "confirmed" and call.transfer is None
    alice.hangup()
    net.run_until(lambda: bob.bye_received)
    drained(net)


def test_refer_while_a_reinvite_is_pending_gets_491() -> None:
    net, alice, bob, carol = setup()
    connect(net, alice, bob)
    # bob's answer to alice's re-INVITE is lost: the re-INVITE stays pending at the switch
    net.drop = lambda data, src, dst: (
        src == bob.address and data.startswith(b"SIP/2.0 200") and b" INVITE" in data
    )
    alice.in_dialog("INVITE", [], alice.offer_sdp)
    net.run_until(lambda: len(bob.reinvites) == 1)
    bob.refer(refer_to("1003"))
    net.run_until(lambda: bob.final("REFER") is not None)
    assert bob.final("REFER").status == 491  # type: ignore[union-attr]
    net.drop = lambda data, src, dst: False
    oks = len([r for r in alice.responses if r.status == 200 and r.cseq.method == "INVITE"])
    net.run_until(
        lambda: len([r for r in alice.responses if r.status == 200 and r.cseq.method == "INVITE"])
        > oks,
        10,
    )
    alice.hangup()
    net.run_until(lambda: bob.bye_received)
    drained(net)


def test_target_declines_and_the_caller_is_back_with_the_transferor() -> None:
    net, alice, bob, carol = setup()
    carol.auto_answer = 486
    call = connect(net, alice, bob)
    bob.refer(refer_to("1003"))
    net.run_until(lambda: len(bob.notifies) == 2)
    assert bob.sipfrags() == ["SIP/2.0 100 Trying", "SIP/2.0 486 Busy Here"]
    assert "terminated" in (bob.notifies[1].headers.get("Subscription-State") or "")
    assert (call.id, "a") not in media_of(net).held
    assert call.b is not None and call.b.user == "1002" and call.transfer is None
    # the call is as it was: a second transfer, to a phone that answers, works
    carol.auto_answer = 200
    bob.refer(refer_to("1003"))
    net.run_until(lambda: len(bob.notifies) == 4)
    assert (bob.notifies[3].headers.get("Event") or "").startswith("refer;id=")
    assert bob.sipfrags()[3] == "SIP/2.0 200 OK"
    bob.hangup()
    alice.hangup()
    net.run_until(lambda: alice.call_state == "ended" and carol.bye_received)
    drained(net)


def test_transferor_hangs_up_before_the_target_answers() -> None:
    net, alice, bob, carol = setup()
    call = connect(net, alice, bob)
    bob.refer(refer_to("1003"))
    net.run_until(lambda: carol.call_state == "ringing-in" and len(bob.notifies) == 1)
    bob.hangup()
    net.run_until(lambda: bob.call_state == "ended")
    assert not alice.bye_received and call.transfer is not None
    carol.answer()
    net.run_until(lambda: call.b is not None and call.b.user == "1003")
    assert len(bob.notifies) == 1  # nobody left to tell
    carol.hangup()
    net.run_until(lambda: alice.bye_received)
    drained(net)


def test_transferor_gone_and_target_declines_ends_the_call() -> None:
    net, alice, bob, carol = setup()
    call = connect(net, alice, bob)
    bob.refer(refer_to("1003"))
    net.run_until(lambda: carol.call_state == "ringing-in")
    bob.hangup()
    net.run_until(lambda: bob.call_state == "ended")
    carol.answer(603)
    net.run_until(lambda: alice.bye_received)
    assert call.end_cause == "transfer failed (603)"
    drained(net)


def test_target_not_answering_in_time_fails_with_408() -> None:
    net, alice, bob, carol = setup()
    net.engine.b2bua.ring_timeout = 5.0
    connect(net, alice, bob)
    bob.refer(refer_to("1003"))
    net.run_until(lambda: len(bob.notifies) == 2, 10)
    assert bob.sipfrags()[1] == "SIP/2.0 408 Request Timeout"
    assert carol.cancelled
    alice.hangup()
    net.run_until(lambda: bob.bye_received)
    drained(net)


def test_transferee_hangs_up_while_the_target_rings() -> None:
    net, alice, bob, carol = setup()
    connect(net, alice, bob)
    bob.refer(refer_to("1003"))
    net.run_until(lambda: carol.call_state == "ringing-in")
    alice.hangup()
    net.run_until(lambda: carol.cancelled and bob.bye_received)
    assert bob.sipfrags()[-1] == "SIP/2.0 487 Request Terminated"
    drained(net)


def test_refer_sub_false_gets_no_notify() -> None:
    net, alice, bob, carol = setup()
    carol.auto_answer = 200
    call = connect(net, alice, bob)
    bob.refer(refer_to("1003"), ("Refer-Sub", "false"))
    net.run_until(lambda: call.transfers == ["1003"])
    ok = bob.final("REFER")
    assert ok is not None and ok.status == 202 and ok.headers.get("Refer-Sub") == "false"
    assert not bob.notifies
    bob.hangup()
    carol.hangup()
    net.run_until(lambda: alice.bye_received)
    drained(net)


def test_caller_transfers_the_callee() -> None:
    """The transferor is leg A: the target takes the caller's side of the call."""
    net, alice, bob, carol = setup()
    carol.auto_answer = 200
    call = connect(net, alice, bob)
    alice.refer(refer_to("1003"))
    net.run_until(lambda: len(alice.notifies) == 2)
    assert alice.sipfrags()[1] == "SIP/2.0 200 OK"
    assert call.a.user == "1003"
    assert media_of(net).remote[(call.id, "a")] == ("127.0.0.1", carol.rtp_port)
    alice.hangup()
    net.run_until(lambda: alice.call_state == "ended")
    bob.hangup()
    net.run_until(lambda: carol.bye_received)
    drained(net)


def hold_sdp(phone: XferPhone) -> bytes:
    return sdp(phone.rtp_port, "held", "sendonly")


def attended_setup() -> tuple[Network, XferPhone, XferPhone, XferPhone, XferPhone, Call, Call]:
    net, alice, bob, carol = setup()
    call1 = connect(net, alice, bob)
    bob.in_dialog("INVITE", [], hold_sdp(bob))  # bob holds alice
    net.run_until(lambda: len(alice.reinvites) == 1 and bob.final("INVITE") is not None)
    assert (call1.id, "a") in media_of(net).held
    # bob's second line (the same user, another contact) calls carol
    bob2 = XferPhone(net, "1002", "demo1002", Address("udp", "127.0.0.1", 5082))
    bob2.rtp_port = 6082
    bob2.offer_sdp = sdp(bob2.rtp_port, "caller")
    net.phones[bob2.address] = bob2
    carol.auto_answer = 200
    bob2.call("1003")
    net.run_until(lambda: bob2.call_state == "confirmed" and carol.call_state == "confirmed")
    call2 = next(c for c in net.engine.b2bua.calls.values() if c is not call1)
    return net, alice, bob, bob2, carol, call1, call2


def replaces_of(phone: XferPhone) -> str:
    d = phone.dialog
    assert d is not None
    return f"{d.call_id}%3Bto-tag%3D{d.remote_tag}%3Bfrom-tag%3D{d.local_tag}"


def test_attended_transfer_joins_the_caller_and_the_target() -> None:
    net, alice, bob, bob2, carol, call1, call2 = attended_setup()
    reported: list[tuple[str, str, str]] = []
    net.engine.b2bua.on_transferred = lambda *args: reported.append(args)
    invites_before = len(carol.incoming)
    bob.refer(f"<sip:1003@{DOMAIN}?Replaces={replaces_of(bob2)}>")
    net.run_until(lambda: len(bob.notifies) == 2 and bob2.bye_received)
    assert bob.sipfrags() == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    # no new INVITE to carol: a re-INVITE moving her media to the caller's call
    assert len(carol.incoming) == invites_before
    offer = SessionDescription.parse(carol.last_offer)
    assert call1.ports is not None
    assert media_address(offer.media[0], offer) == ("127.0.0.2", call1.ports[1])
    assert media_of(net).remote[(call1.id, "b")] == ("127.0.0.1", carol.rtp_port)
    # alice was held by bob: the switch takes her off hold with an offer of its own
    net.run_until(lambda: len(alice.reinvites) == 2)
    again = SessionDescription.parse(alice.reinvites[1].body)
    assert again.media[0].direction is not None and again.media[0].direction.value == "sendrecv"
    assert (call1.id, "a") not in media_of(net).held
    assert reported == [(call1.id, "b", "1003")]
    assert call2.id not in net.engine.b2bua.calls or call2.state.value in ("ending", "ended")
    assert call1.b is not None and call1.b.user == "1003"
    bob.hangup()
    net.run_until(lambda: bob.call_state == "ended")
    carol.hangup()
    net.run_until(lambda: alice.bye_received)
    drained(net)


def test_attended_transfer_naming_no_dialog_fails_with_481() -> None:
    net, alice, bob, bob2, carol, call1, call2 = attended_setup()
    bob.refer(f"<sip:1003@{DOMAIN}?Replaces=nosuchcall%3Bto-tag%3Dx%3Bfrom-tag%3Dy>")
    net.run_until(lambda: len(bob.notifies) == 2)
    assert bob.sipfrags()[1] == "SIP/2.0 481 Call/Transaction Does Not Exist"
    assert bob.final("REFER").status == 202  # type: ignore[union-attr]
    bob.refer(f"<sip:1003@{DOMAIN}?Replaces=broken>")
    net.run_until(lambda: bob.final("REFER").status == 400)  # type: ignore[union-attr]
    assert call1.transfer is None and call2.transfer is None
    for phone in (alice, bob2):
        phone.hangup()
    net.run_until(lambda: bob.bye_received and carol.bye_received)
    drained(net)


def test_attended_target_refusing_the_reoffer_leaves_both_calls() -> None:
    net, alice, bob, bob2, carol, call1, call2 = attended_setup()

    def refuse(event: RequestReceived, now: float) -> None:
        req = event.request
        if req.method == "INVITE" and req.to.tag is not None:
            carol.layer.respond(event.key, make_response(req, 488), now)
        else:
            XferPhone._on_request(carol, event, now)

    carol._on_request = refuse  # type: ignore[method-assign]
    bob.refer(f"<sip:1003@{DOMAIN}?Replaces={replaces_of(bob2)}>")
    net.run_until(lambda: len(bob.notifies) == 2)
    assert bob.sipfrags()[1] == "SIP/2.0 488 Not Acceptable Here"
    assert call1.b is not None and call1.b.user == "1002" and call2.b is not None
    assert not bob2.bye_received
    bob2.hangup()
    alice.hangup()
    net.run_until(lambda: carol.bye_received and bob.bye_received)
    drained(net)
