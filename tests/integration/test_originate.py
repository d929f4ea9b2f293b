"""Calls the switch places itself (``B2bua.originate``), over real loopback sockets.

The switch rings a user's registered phones with its own SDP offer, ACKs the first 2xx and
CANCELs the other forks; the answered call is then the switch's own: a session channel plays
to it, reads its digits and bridges it to another phone; a supervisor's call joins a live
call's mix. Phones are the scripted UAs of ``tests/sim/network.py`` on UDP sockets, with plain
sockets for their RTP.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from media.codecs.g711 import ULAW_DECODE_TABLE
from media.dtmf import Rfc4733Sender
from media.mixer import SupervisorMode
from media.rtp.packet import RtpPacket
from media.tones import tone
from softswitch.app import Switch
from softswitch.b2bua.call import Monitor
from softswitch.sip.events import Address, RequestReceived
from softswitch.sip.message import Request, Response
from softswitch.sip.sdp import SessionDescription, codecs, media_address
from softswitch.storage.cdr import CallRecord
from tests.integration.local_switch import UDP_ONLY, make_settings, running_switch, server_address
from tests.integration.origination import CALLER, CALLER_NAME, EMPTY, Results, channel, originate
from tests.integration.realnet import (
    RealNet,
    RtpSocket,
    TonePhone,
    audio_target,
    channel_peak_hz,
    talk,
)
from tests.sim.network import DOMAIN, Phone, sdp

#: the initial INVITEs each phone received, in order
_INVITES: weakref.WeakKeyDictionary[Phone, list[Request]] = weakref.WeakKeyDictionary()


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    async with running_switch(make_settings(tmp_path, UDP_ONLY)) as sw:
        yield sw


async def phone(
    sw: Switch,
    net: RealNet,
    user: str,
    *,
    answer: int | None = None,
    rtp: RtpSocket | None = None,
    formats: bytes | None = None,
) -> Phone:
    """A registered phone of ``user`` that answers incoming calls with ``answer`` (None: it
    only rings), its SDP naming ``rtp``; ``formats`` replaces the answer's payload types."""
    p = await net.udp_phone(user, server_address(sw, "udp"))
    p._ids = itertools.count(1000 * len(net.phones))  # Call-IDs of its own, per phone
    invites: list[Request] = []
    _INVITES[p] = invites
    handle = p._on_request

    def on_request(event: RequestReceived, now: float) -> None:
        if event.request.method == "INVITE" and event.request.to.tag is None:
            invites.append(event.request)
        handle(event, now)

    p._on_request = on_request  # type: ignore[method-assign]
    p.auto_answer = answer
    if rtp is not None:
        p.offer_sdp = sdp(rtp.port, user)
        p.answer_sdp = sdp(rtp.port, user)
    if formats is not None:
        p.answer_sdp = p.answer_sdp.replace(b"RTP/AVP 0 8 101", b"RTP/AVP " + formats)
    p.register()
    await net.until(lambda: p.registered)
    return p


def invite_to(p: Phone) -> Request:
    """The first initial INVITE ``p`` received."""
    return _INVITES[p][0]


async def idle(sw: Switch, net: RealNet) -> None:
    """The switch forgot every call, and every table and RTP port is free again."""
    await net.until(lambda: not sw.b2bua.calls, 10)
    assert sw.b2bua.table_sizes == EMPTY
    media = sw.media
    assert media is not None
    await net.until(lambda: len(media) == 0 and media.free_pairs == media.pool.capacity, 5)


async def record_of(sw: Switch, call_id: str) -> CallRecord:
    await asyncio.gather(*sw._cdr_writes)
    record = await sw.cdrs.get(call_id)
    assert record is not None
    return record


def ulaw_peak_hz(payloads: list[bytes]) -> float:
    codes = np.frombuffer(b"".join(payloads), np.uint8)
    return channel_peak_hz(ULAW_DECODE_TABLE[codes])


async def received(rtp: RtpSocket, count: int) -> list[RtpPacket]:
    return [await rtp.recv() for _ in range(count)]


async def test_answered_call_is_the_switchs_own_prompts_digits_and_hang_up(
    switch: Switch, net: RealNet
) -> None:
    rtp = RtpSocket()
    bob = await phone(switch, net, "1002", answer=200, rtp=rtp)
    results = Results()
    call_id = originate(switch, "1002", results)
    assert call_id is not None
    await net.until(lambda: bool(results.seen))
    assert results.seen == [(200, call_id)]
    # the switch ACKed the 200 at once (the phone would resend it after T1, 500 ms)
    await net.until(lambda: bob.call_state == "confirmed", 0.3)
    # the INVITE: From the caller at the switch's domain with its name, To the user, and the
    # switch's own offer (PCMU, PCMA, telephone-event) on one of its RTP ports
    invite: Request = invite_to(bob)
    assert invite.from_.display == CALLER_NAME
    assert str(invite.from_.uri) == f"sip:{CALLER}@{DOMAIN}"
    assert str(invite.to.uri) == f"sip:1002@{DOMAIN}" and invite.to.tag is None
    offer = SessionDescription.parse(invite.body)
    assert [c.name.upper() for c in codecs(offer.media[0])] == ["PCMU", "PCMA", "TELEPHONE-EVENT"]
    to_switch = media_address(offer.media[0], offer)
    media_range = range(switch.settings.media.rtp_port_min, switch.settings.media.rtp_port_max)
    assert to_switch[1] in media_range
    live = switch.live_call(call_id)
    assert live is not None
    assert (live["caller"], live["caller_name"], live["callee"], live["state"]) == (
        CALLER,
        CALLER_NAME,
        "1002",
        "confirmed",
    )
    assert live["answered_by"] == bob.contact
    # a session runs it like a call it answered: prompts go out, digits come in
    ch = channel(switch, call_id, tone((1000,), 1000, -10.0))
    assert await ch.answer()
    play = asyncio.ensure_future(ch.play(["hello"], barge_in=False))
    heard = await received(rtp, 30)
    assert {p.payload_type for p in heard} == {0}  # the law the phone answered with
    assert abs(ulaw_peak_hz([p.payload for p in heard[5:]]) - 1000) < 20
    await asyncio.wait_for(play, 5)
    for seq, packet in enumerate(Rfc4733Sender().packets("7", 100)):
        rtp.sock.sendto(
            bytes(RtpPacket(101, seq, 8000, 0xB0B, marker=packet.marker, payload=packet.payload)),
            to_switch,
        )
        await asyncio.sleep(0.005)
    assert await ch.next_digit(2.0) == "7"
    bob.hangup()
    await net.until(lambda: bob.call_state == "ended")
    await idle(switch, net)
    record = await record_of(switch, call_id)
    assert (record.caller, record.caller_name, record.callee) == (CALLER, CALLER_NAME, "1002")
    assert record.status == 200 and record.cause == "callee hung up"
    assert record.answered is not None
    assert results.seen == [(200, call_id)]  # told once


async def test_switch_hangs_up_and_a_lost_ack_is_sent_again(switch: Switch, net: RealNet) -> None:
    bob = await phone(switch, net, "1002", answer=200)
    acks: list[float] = []
    deliver = bob.receive

    def lossy(data: bytes, source: Address, now: float) -> None:
        if data.startswith(b"ACK "):
            acks.append(now)
            if len(acks) == 1:
                return  # the first ACK is lost: the phone sends its 200 again (§13.3.1.4)
        deliver(data, source, now)

    bob.receive = lossy  # type: ignore[method-assign]
    results = Results()
    call_id = originate(switch, "1002", results)
    await net.until(lambda: bob.call_state == "confirmed", 5)
    assert len(acks) >= 2  # each 2xx got its ACK (§13.2.2.4)
    assert results.seen == [(200, call_id)]
    assert call_id is not None
    assert switch.b2bua.hangup(call_id, "operator hung up", switch.loop.time())
    switch._flush()
    await net.until(lambda: bob.bye_received)
    await idle(switch, net)
    record = await record_of(switch, call_id)
    assert record.cause == "operator hung up"


async def test_first_answer_wins_and_the_other_forks_are_cancelled(
    switch: Switch, net: RealNet
) -> None:
    desk = await phone(switch, net, "1002")  # rings only
    softphone = await phone(switch, net, "1002")
    assert len(switch.registrar.lookup("1002", time.time())) == 2
    results = Results()
    call_id = originate(switch, "1002", results)
    await net.until(lambda: bool(desk.incoming) and bool(softphone.incoming))
    softphone.answer()
    await net.until(lambda: bool(results.seen) and desk.cancelled)
    assert results.seen == [(200, call_id)]
    assert softphone.call_state == "confirmed"
    assert len(switch.b2bua.calls) == 1
    softphone.hangup()
    await net.until(lambda: softphone.call_state == "ended")
    await idle(switch, net)


async def test_busy_everywhere_gives_the_best_status(switch: Switch, net: RealNet) -> None:
    await phone(switch, net, "1002", answer=486)
    await phone(switch, net, "1002", answer=404)
    results = Results()
    call_id = originate(switch, "1002", results)
    assert call_id is not None
    await net.until(lambda: bool(results.seen))
    assert results.seen == [(486, None)]  # 486 ranks above 404 (§16.7 step 6)
    await idle(switch, net)
    record = await record_of(switch, call_id)
    assert record.status == 486 and record.answered is None


async def test_no_answer_in_time_cancels_and_gives_408(switch: Switch, net: RealNet) -> None:
    bob = await phone(switch, net, "1002")
    results = Results()
    start = net.now
    originate(switch, "1002", results, timeout=0.5)
    await net.until(lambda: bool(results.seen), 5)
    assert results.seen == [(408, None)]
    assert net.now - start >= 0.5
    await net.until(lambda: bob.cancelled)
    await idle(switch, net)


async def test_hang_up_while_ringing_cancels_and_gives_487(switch: Switch, net: RealNet) -> None:
    bob = await phone(switch, net, "1002")
    results = Results()
    call_id = originate(switch, "1002", results)
    assert call_id is not None
    await net.until(lambda: bool(bob.incoming))
    assert switch.b2bua.hangup(call_id, "operator gave up", switch.loop.time())
    switch._flush()
    await net.until(lambda: bob.cancelled)
    assert results.seen == [(487, None)]
    await idle(switch, net)


async def test_refusals_are_told_at_once(switch: Switch, net: RealNet) -> None:
    results = Results()
    assert originate(switch, "1002", results) is None  # not registered
    assert results.seen == [(480, None)]
    await phone(switch, net, "1002", answer=200)
    switch.b2bua.draining = True
    assert originate(switch, "1002", results) is None
    switch.b2bua.draining = False
    assert switch.b2bua.monitor_target("1002", "listen") is None  # 1002 is on no call
    gone = Monitor("no-such-call", "b", SupervisorMode.LISTEN)
    assert originate(switch, "1002", results, monitor=gone) is None
    assert results.seen == [(480, None), (503, None), (404, None)]
    assert switch.b2bua.table_sizes == EMPTY and not switch.b2bua.calls


async def test_an_answer_without_an_offered_codec_is_hung_up(switch: Switch, net: RealNet) -> None:
    bob = await phone(switch, net, "1002", answer=200, formats=b"18")  # G.729 only
    results = Results()
    call_id = originate(switch, "1002", results)
    await net.until(lambda: bool(results.seen))
    assert results.seen == [(488, None)]
    await net.until(lambda: bob.bye_received)  # acknowledged, then ended (RFC 3264 §6.1)
    await idle(switch, net)
    assert call_id is not None
    record = await record_of(switch, call_id)
    assert record.status == 488


async def test_options_and_reinvite_from_the_phone_get_the_switchs_answers(
    switch: Switch, net: RealNet
) -> None:
    rtp = RtpSocket()
    bob = await phone(switch, net, "1002", answer=200, rtp=rtp)
    results = Results()
    call_id = originate(switch, "1002", results)
    await net.until(lambda: bob.call_state == "confirmed")
    assert bob.dialog is not None and call_id is not None
    first = SessionDescription.parse(invite_to(bob).body)
    server = server_address(switch, "udp")

    async def in_dialog(method: str, body: bytes = b"") -> Response:
        assert bob.dialog is not None
        req = bob.dialog.create_request(
            method,
            body=body,
            content_type="application/sdp" if body else None,
            extra=[("Contact", f"<{bob.contact}>")],
        )
        cseq = req.cseq
        bob.layer.send_request(req, server, net.now)
        bob._flush()

        def final() -> list[Response]:
            return [r for r in bob.responses if r.cseq == cseq and r.status >= 200]

        await net.until(lambda: bool(final()))
        return final()[0]

    options = await in_dialog("OPTIONS")
    assert options.status == 200
    moved = RtpSocket()
    ok = await in_dialog("INVITE", sdp(moved.port, "bob moved"))
    assert ok.status == 200
    answer = SessionDescription.parse(ok.body)
    assert media_address(answer.media[0], answer) == media_address(first.media[0], first)
    assert answer.origin.session_version == first.origin.session_version + 1  # RFC 3264 §8
    # the switch's stream now goes to the new port
    ch = channel(switch, call_id, tone((600,), 400, -10.0))
    assert await ch.answer()
    await asyncio.wait_for(ch.play(["x"], barge_in=False), 5)
    assert (await moved.recv()).payload_type == 0
    assert switch.b2bua.hangup(call_id, "done", switch.loop.time())
    switch._flush()
    await net.until(lambda: bob.bye_received)
    await idle(switch, net)


async def test_late_bridge_to_another_phone_relays_both_ways(switch: Switch, net: RealNet) -> None:
    bob_rtp, carol_rtp = RtpSocket(), RtpSocket()
    bob = await phone(switch, net, "1002", answer=200, rtp=bob_rtp)
    carol = await phone(switch, net, "1003", answer=200, rtp=carol_rtp)
    results = Results()
    call_id = originate(switch, "1002", results)
    await net.until(lambda: bob.call_state == "confirmed")
    assert call_id is not None
    ch = channel(switch, call_id, tone((1000,), 200, -10.0))
    assert await ch.answer()
    assert await asyncio.wait_for(ch.bridge(["1003"], 5.0), 5) == 200
    # click to call: the party on leg A calls the bridge's target
    fork = invite_to(carol)
    assert str(fork.from_.uri) == f"sip:1002@{DOMAIN}" and str(fork.to.uri) == f"sip:1003@{DOMAIN}"
    await net.until(lambda: carol.call_state == "confirmed")
    to_switch_from_bob = audio_target(invite_to(bob).body)
    to_switch_from_carol = audio_target(fork.body)
    bob_rtp.drain()  # ringback and what the session played before the bridge
    for seq in range(1, 6):
        bob_rtp.send(to_switch_from_bob, seq, b"\x11" * 160)
        assert (await carol_rtp.recv()).payload == b"\x11" * 160
        carol_rtp.send(to_switch_from_carol, seq, b"\x22" * 160)
        for _ in range(50):  # what was still in flight before the relay started
            heard = await bob_rtp.recv()
            if heard.payload == b"\x22" * 160:
                break
        assert heard.payload == b"\x22" * 160
    assert switch.b2bua.agent_side(call_id, "1003") == "b"
    assert switch.b2bua.agent_side(call_id, "1002") == "a"
    carol.hangup()
    await net.until(lambda: bob.bye_received and carol.call_state == "ended")
    await idle(switch, net)
    record = await record_of(switch, call_id)
    assert record.cause == "bridged party hung up"


async def test_supervisor_call_joins_the_mix_and_ends_with_the_call(
    switch: Switch, net: RealNet
) -> None:
    alice_rtp, bob_rtp, dave_rtp = RtpSocket(), RtpSocket(), RtpSocket()
    alice = await phone(switch, net, "1001", rtp=alice_rtp)
    bob = await phone(switch, net, "1003", answer=200, rtp=bob_rtp)
    dave = await phone(switch, net, "1004", answer=200, rtp=dave_rtp, formats=b"0 101")
    alice.call("1003")
    await net.until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    ok = next(r for r in alice.responses if r.status == 200 and r.cseq.method == "INVITE")
    [agent_call] = list(switch.b2bua.calls)
    monitor = switch.b2bua.monitor_target("1003", "whisper")
    assert monitor is not None and monitor.call_id == agent_call and monitor.agent_side == "b"
    assert switch.b2bua.agent_side(agent_call, "1001") == "a"
    results = Results()
    supervisor_call = originate(switch, "1004", results, monitor=monitor)
    await net.until(lambda: bool(results.seen) and dave.call_state == "confirmed")
    assert results.seen == [(200, supervisor_call)]
    offer = SessionDescription.parse(invite_to(dave).body)
    assert [c.name.upper() for c in codecs(offer.media[0])] == ["PCMU", "TELEPHONE-EVENT"]
    live = switch.live_call(supervisor_call or "")
    assert live is not None and live["answered_by"] == f"supervisor (whisper) of call {agent_call}"
    a = TonePhone(alice_rtp, 440, 0xA)
    b = TonePhone(bob_rtp, 1000, 0xB)
    d = TonePhone(dave_rtp, 1700, 0xD)
    a.to = audio_target(ok.body)
    b.to = audio_target(invite_to(bob).body)
    d.to = audio_target(invite_to(dave).body)
    await talk([a, b, d], 1.5)
    assert d.share(440) > 0.2 and d.share(1000) > 0.2  # the supervisor hears both
    assert b.share(1700) > 0.2  # whispers to the agent
    assert a.share(1700) < 0.01  # the caller never hears the supervisor
    alice.hangup()
    await net.until(lambda: bob.bye_received and dave.bye_received)  # gone with the call
    await idle(switch, net)
    assert supervisor_call is not None
    record = await record_of(switch, supervisor_call)
    assert record.cause == "the monitored call ended"


async def test_a_supervisor_still_ringing_is_cancelled_when_the_call_ends(
    switch: Switch, net: RealNet
) -> None:
    alice = await phone(switch, net, "1001")
    bob = await phone(switch, net, "1003", answer=200)
    dave = await phone(switch, net, "1004")  # rings only
    alice.call("1003")
    await net.until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    monitor = switch.b2bua.monitor_target("1003", "listen")
    assert monitor is not None
    results = Results()
    assert originate(switch, "1004", results, monitor=monitor) is not None
    await net.until(lambda: bool(dave.incoming))
    alice.hangup()
    await net.until(lambda: dave.cancelled and bob.bye_received)
    assert results.seen == [(487, None)]
    await idle(switch, net)
    # nothing left to monitor: refused at once
    assert originate(switch, "1004", results, monitor=monitor) is None
    assert results.seen[-1] == (404, None)


async def test_transactions_drain_after_an_originated_call(tmp_path: Path, net: RealNet) -> None:
    """With short SIP timers every transaction of the call ends too (Timer M after the
    2xx, 64*T1; Timer K after the BYE's 200, T4; RFC 6026 §8.4, RFC 3261 §17.1.2.2)."""
    settings = make_settings(tmp_path, UDP_ONLY)
    settings = settings.model_copy(
        update={"sip": settings.sip.model_copy(update={"t1": 0.05, "t2": 0.4, "t4": 0.2})}
    )
    async with running_switch(settings) as sw:
        bob = await phone(sw, net, "1002", answer=200)
        results = Results()
        call_id = originate(sw, "1002", results)
        await net.until(lambda: bob.call_state == "confirmed")
        assert call_id is not None
        assert sw.b2bua.hangup(call_id, "done", sw.loop.time())
        sw._flush()
        await net.until(lambda: bob.bye_received)
        await idle(sw, net)
        await net.until(lambda: len(sw.layer) == 0, 8)
