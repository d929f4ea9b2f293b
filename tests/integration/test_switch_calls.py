"""Calls through an in-process switch over real loopback sockets.

The scripted phones of ``tests/sim/network.py`` run here on real UDP sockets and TCP
connections, driven by the event loop's clock (``tests/integration/realnet.py``).
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from media.codecs.g711 import alaw_encode, ulaw_encode
from media.dtmf import Rfc4733Sender
from media.rtp.packet import RtpPacket
from media.tones import tone
from softswitch.app import Switch
from softswitch.config import Listener
from softswitch.sip.events import Address
from softswitch.sip.message import Response
from softswitch.sip.sdp import SessionDescription, media_address
from tests.integration.local_switch import make_settings, running_switch, server_address
from tests.integration.realnet import RealNet, RtpSocket, audio_target, channel_peak_hz
from tests.sim.network import Phone, sdp


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    listeners = (
        Listener(transport="udp", address="127.0.0.1", port=0),
        Listener(transport="tcp", address="127.0.0.1", port=0),
    )
    async with running_switch(make_settings(tmp_path, listeners)) as sw:
        yield sw


async def test_call_to_a_tcp_registered_phone_reuses_its_connection(
    switch: Switch, net: RealNet
) -> None:
    alice = await net.udp_phone("1001", server_address(switch, "udp"))
    bob = await net.tcp_phone("1002", server_address(switch, "tcp"))
    alice.register()
    bob.register()
    await net.until(lambda: alice.registered and bob.registered)
    [binding] = switch.registrar.lookup("1002", 0)
    assert binding.source == str(bob.address)  # the flow the REGISTER came on
    connections_before = len(switch.hub.connections)
    bob.auto_answer = 200
    alice.call("1002")
    await net.until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    # bob listens on nothing: the INVITE can only have come over his own connection
    assert len(switch.hub.connections) == connections_before
    alice.hangup()
    await net.until(lambda: alice.call_state == "ended" and bob.bye_received)
    await net.until(lambda: not switch.b2bua.calls)


async def establish(switch: Switch, net: RealNet) -> tuple[Phone, Phone]:
    alice = await net.udp_phone("1001", server_address(switch, "udp"))
    bob = await net.udp_phone("1002", server_address(switch, "udp"))
    alice.register()
    bob.register()
    await net.until(lambda: alice.registered and bob.registered)
    bob.auto_answer = 200
    alice.call("1002")
    await net.until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    return alice, bob


async def test_drain_refuses_new_calls_and_lets_established_ones_finish(
    switch: Switch, net: RealNet
) -> None:
    alice, bob = await establish(switch, net)
    carol = await net.udp_phone("1003", server_address(switch, "udp"))
    drain = asyncio.ensure_future(switch.drain(grace=30))
    await asyncio.sleep(0.05)
    carol.call("1002")
    await net.until(lambda: carol.final_status is not None)
    assert carol.final_status == 503
    assert not drain.done()  # the established call keeps the switch up
    alice.hangup()
    await net.until(lambda: bob.bye_received)
    await asyncio.wait_for(drain, 5)  # finished as soon as the last call ended


async def test_drain_ends_calls_left_after_the_grace_time(switch: Switch, net: RealNet) -> None:
    alice, bob = await establish(switch, net)
    start = net.now
    await asyncio.wait_for(switch.drain(grace=1.0), 10)
    assert net.now - start >= 1.0
    await net.until(lambda: alice.bye_received and bob.bye_received)
    await net.until(lambda: not switch.b2bua.calls, 2)


async def test_advertised_address_goes_into_via_and_contact(tmp_path: Path, net: RealNet) -> None:
    """Behind NAT the switch names its public address (a documentation address here; replies
    still come back to loopback through received/rport)."""
    listeners = (Listener(transport="udp", address="127.0.0.1", port=0),)
    settings = make_settings(tmp_path, listeners)
    settings = settings.model_copy(
        update={"sip": settings.sip.model_copy(update={"advertised_address": "203.0.113.5"})}
    )
    async with running_switch(settings) as sw:
        server = server_address(sw, "udp")
        alice = await net.udp_phone("1001", server)
        bob = await net.udp_phone("1002", server)
        alice.register()
        bob.register()
        await net.until(lambda: alice.registered and bob.registered)
        alice.call("1002")
        await net.until(lambda: bool(bob.incoming))
        _, invite = bob.incoming[0]
        assert invite.top_via.host == "203.0.113.5"
        assert f"sip:switch@203.0.113.5:{server.port}" in (invite.headers.get("Contact") or "")
        bob.answer()
        await net.until(lambda: alice.call_state == "confirmed")
        alice.hangup()
        await net.until(lambda: bob.bye_received)


@dataclass
class AnchoredCall:
    """Alice (1001) calling Bob (1002) through the switch, each with an RTP socket."""

    server: Address
    alice: Phone
    bob: Phone
    alice_rtp: RtpSocket
    bob_rtp: RtpSocket
    ok: Response  # the 200 to alice's INVITE
    to_switch_from_alice: tuple[str, int]  # where alice sends RTP: the switch's port
    to_switch_from_bob: tuple[str, int]


async def anchored_call(
    sw: Switch, net: RealNet, *, bob_codecs: bytes | None = None
) -> AnchoredCall:
    """Register both phones and set up a confirmed call; ``bob_codecs`` replaces the formats
    of Bob's answer (e.g. b"8 101" to answer PCMA)."""
    server = server_address(sw, "udp")
    alice = await net.udp_phone("1001", server)
    bob = await net.udp_phone("1002", server)
    alice_rtp, bob_rtp = RtpSocket(), RtpSocket()
    alice.offer_sdp = sdp(alice_rtp.port, "alice")
    bob.answer_sdp = sdp(bob_rtp.port, "bob")
    if bob_codecs is not None:
        bob.answer_sdp = bob.answer_sdp.replace(b"RTP/AVP 0 8 101", b"RTP/AVP " + bob_codecs)
    bob.auto_answer = 200
    for phone in (alice, bob):
        phone.register()
    await net.until(lambda: alice.registered and bob.registered)
    alice.call("1002")
    await net.until(lambda: alice.call_state == "confirmed" and bob.call_state == "confirmed")
    ok = next(r for r in alice.responses if r.status == 200 and r.cseq.method == "INVITE")
    return AnchoredCall(
        server,
        alice,
        bob,
        alice_rtp,
        bob_rtp,
        ok,
        audio_target(ok.body),
        audio_target(bob.incoming_invite_body),
    )


async def test_anchored_call_carries_audio_both_ways_through_the_switch(
    switch: Switch, net: RealNet
) -> None:
    server = server_address(switch, "udp")
    alice = await net.udp_phone("1001", server)
    bob = await net.udp_phone("1002", server)
    alice_rtp, bob_rtp = RtpSocket(), RtpSocket()
    alice.offer_sdp = sdp(alice_rtp.port, "alice")
    bob.answer_sdp = sdp(bob_rtp.port, "bob")
    alice.register()
    bob.register()
    await net.until(lambda: alice.registered and bob.registered)
    alice.call("1002")
    await net.until(lambda: bool(bob.incoming))
    _, invite = bob.incoming[0]
    to_switch_from_bob = audio_target(invite.body)
    media_range = range(switch.settings.media.rtp_port_min, switch.settings.media.rtp_port_max)
    assert to_switch_from_bob[1] in media_range  # the offer names the switch, not alice
    bob.answer()
    await net.until(lambda: alice.call_state == "confirmed")
    ok = next(r for r in alice.responses if r.status == 200 and r.cseq.method == "INVITE")
    to_switch_from_alice = audio_target(ok.body)
    assert to_switch_from_alice[1] in media_range
    assert to_switch_from_alice != to_switch_from_bob
    for seq in range(3):
        alice_rtp.send(to_switch_from_alice, seq, b"\x11" * 160)
        heard = await bob_rtp.recv()
        assert heard.payload == b"\x11" * 160 and heard.ssrc != 0x1234  # rewritten stream
        bob_rtp.send(to_switch_from_bob, seq, b"\x22" * 160)
        heard = await alice_rtp.recv()
        assert heard.payload == b"\x22" * 160
    assert switch.media is not None and len(switch.media) == 1
    alice.hangup()
    await net.until(lambda: bob.bye_received)
    await net.until(lambda: len(switch.media) == 0)  # type: ignore[arg-type]
    assert switch.media.free_pairs == switch.media.pool.capacity  # every port back


async def test_offer_without_a_relayable_codec_gets_488(switch: Switch, net: RealNet) -> None:
    server = server_address(switch, "udp")
    alice = await net.udp_phone("1001", server)
    bob = await net.udp_phone("1002", server)
    bob.register()
    await net.until(lambda: bob.registered)
    g729_only = sdp(4000, "g729").replace(b"RTP/AVP 0 8 101", b"RTP/AVP 18")
    alice.call("1002", g729_only)
    await net.until(lambda: alice.final_status is not None)
    assert alice.final_status == 488
    assert not bob.incoming and not switch.b2bua.calls


async def test_a_leg_that_stops_sending_rtp_ends_the_call(tmp_path: Path, net: RealNet) -> None:
    listeners = (Listener(transport="udp", address="127.0.0.1", port=0),)
    settings = make_settings(tmp_path, listeners)
    settings = settings.model_copy(
        update={"media": settings.media.model_copy(update={"dead_peer_timeout": 1})}
    )
    async with running_switch(settings) as sw:
        c = await anchored_call(sw, net)
        alice, bob, alice_rtp, bob_rtp = c.alice, c.bob, c.alice_rtp, c.bob_rtp
        to_switch_from_alice, to_switch_from_bob = c.to_switch_from_alice, c.to_switch_from_bob
        # both talk for longer than the timeout: the call stays up
        for seq in range(30):
            alice_rtp.send(to_switch_from_alice, seq, b"\x11" * 160)
            bob_rtp.send(to_switch_from_bob, seq, b"\x22" * 160)
            await asyncio.sleep(0.05)
        assert len(sw.b2bua.calls) == 1 and not bob.bye_received
        # bob's network goes away; alice keeps talking
        for seq in range(30, 80):
            alice_rtp.send(to_switch_from_alice, seq, b"\x11" * 160)
            await asyncio.sleep(0.05)
            if alice.bye_received and bob.bye_received:
                break
        assert alice.bye_received and bob.bye_received
        await net.until(lambda: not sw.b2bua.calls)


def tone_payloads(hz: float, count: int, encode: Callable[[np.ndarray], np.ndarray]) -> list[bytes]:
    samples = tone((hz,), 20 * count, -10.0)
    return [encode(samples[i * 160 : (i + 1) * 160]).tobytes() for i in range(count)]


async def test_recorded_call_has_the_caller_left_and_the_callee_right(
    tmp_path: Path, net: RealNet
) -> None:
    listeners = (Listener(transport="udp", address="127.0.0.1", port=0),)
    settings = make_settings(tmp_path, listeners)
    recordings = tmp_path / "recordings"
    settings = settings.model_copy(
        update={
            "media": settings.media.model_copy(
                update={"record_calls": True, "recordings": str(recordings)}
            )
        }
    )
    async with running_switch(settings) as sw:
        c = await anchored_call(sw, net, bob_codecs=b"8 101")
        alice, bob, alice_rtp, bob_rtp = c.alice, c.bob, c.alice_rtp, c.bob_rtp
        to_switch_from_alice, to_switch_from_bob = c.to_switch_from_alice, c.to_switch_from_bob
        caller_frames = tone_payloads(440, 75, ulaw_encode)  # PCMU from the caller
        callee_frames = tone_payloads(1000, 75, alaw_encode)  # PCMA from the callee
        for seq in range(75):
            alice_rtp.sock.sendto(
                bytes(RtpPacket(0, seq, seq * 160, 0xA, payload=caller_frames[seq])),
                to_switch_from_alice,
            )
            bob_rtp.sock.sendto(
                bytes(RtpPacket(8, seq, seq * 160, 0xB, payload=callee_frames[seq])),
                to_switch_from_bob,
            )
            await asyncio.sleep(0.02)
        alice.hangup()
        await net.until(lambda: bob.bye_received)
        await net.until(lambda: not sw.b2bua.calls)
    [path] = list(recordings.glob("*.wav"))
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert len(frames) >= 8000  # about 1.5 s of talk, at least 1 s recorded
    loud = np.flatnonzero(np.abs(frames).max(axis=1) > 1000)
    talking = frames[loud[0] : loud[-1]]  # the contiguous stretch with audio
    assert len(talking) >= 8000
    assert abs(channel_peak_hz(talking[:, 0]) - 440) < 15  # caller on the left
    assert abs(channel_peak_hz(talking[:, 1]) - 1000) < 15  # called party on the right


async def test_rfc4733_digits_in_a_call_are_reported_once_each(
    switch: Switch, net: RealNet
) -> None:
    c = await anchored_call(switch, net)
    alice_rtp, bob_rtp = c.alice_rtp, c.bob_rtp
    to_switch = c.to_switch_from_alice
    seq = 0
    for n, digit in enumerate("5#"):
        start = 10_000 + n * 8000
        for packet in Rfc4733Sender().packets(digit, 100):
            alice_rtp.sock.sendto(
                bytes(
                    RtpPacket(101, seq, start, 0xA, marker=packet.marker, payload=packet.payload)
                ),
                to_switch,
            )
            seq += 1
            await asyncio.sleep(0.005)
    [call_id] = list(switch.b2bua.calls)
    await net.until(lambda: len(switch.digits.get(call_id, [])) == 2)
    assert switch.digits[call_id] == [("a", "5"), ("a", "#")]
    relayed = await bob_rtp.recv()  # the events still reach the callee
    assert relayed.payload_type == 101


async def test_hold_and_resume_by_reinvite_through_the_anchor(switch: Switch, net: RealNet) -> None:
    c = await anchored_call(switch, net)
    alice, bob, alice_rtp, bob_rtp = c.alice, c.bob, c.alice_rtp, c.bob_rtp
    server, first_ok = c.server, c.ok
    media_range = range(switch.settings.media.rtp_port_min, switch.settings.media.rtp_port_max)
    loop = asyncio.get_running_loop()

    async def reinvite(direction: str) -> tuple[SessionDescription, SessionDescription]:
        assert alice.dialog is not None
        offer = alice.dialog.create_request(
            "INVITE",
            body=sdp(alice_rtp.port, "alice", direction),
            content_type="application/sdp",
            extra=[("Contact", f"<{alice.contact}>")],
        )
        seq = offer.cseq.seq
        alice.layer.send_request(offer, server, net.now)
        alice._flush()
        await net.until(lambda: any(r.cseq.seq == seq and r.status == 200 for r in alice.responses))
        answer = next(r for r in alice.responses if r.cseq.seq == seq and r.status == 200)
        return SessionDescription.parse(answer.body), SessionDescription.parse(bob.last_offer)

    on_hold, bob_saw = await reinvite("sendonly")
    assert bob_saw.media[0].direction is not None and bob_saw.media[0].direction.value == "sendonly"
    assert media_address(bob_saw.media[0], bob_saw)[1] in media_range  # still the anchor
    assert media_address(on_hold.media[0], on_hold) == audio_target(first_ok.body)
    # on hold, bob hears the switch's music on hold, not what alice still sends
    to_switch = media_address(on_hold.media[0], on_hold)
    for seq in range(1, 6):
        alice_rtp.send(to_switch, seq, b"\x44" * 160)
    held = [await bob_rtp.recv() for _ in range(10)]
    assert all(p.payload != b"\x44" * 160 and len(p.payload) == 160 for p in held)
    assert len({p.payload for p in held}) > 1  # music, not a constant
    resumed, bob_saw = await reinvite("sendrecv")
    assert bob_saw.media[0].direction.value == "sendrecv"  # type: ignore[union-attr]
    to_switch = media_address(resumed.media[0], resumed)
    while True:  # what the music sent before the resume
        try:
            await asyncio.wait_for(loop.sock_recv(bob_rtp.sock, 2048), 0.1)
        except TimeoutError:
            break
    alice_rtp.send(to_switch, 6, b"\x33" * 160)
    heard = await bob_rtp.recv()
    assert heard.payload == b"\x33" * 160


async def test_a_call_leaves_a_detail_record_and_old_records_are_purged(
    tmp_path: Path, net: RealNet
) -> None:
    import time

    from softswitch.storage.cdr import CallRecord
    from softswitch.storage.sqlite import SqliteCdrStore

    listeners = (Listener(transport="udp", address="127.0.0.1", port=0),)
    settings = make_settings(tmp_path, listeners)
    old = CallRecord("old", "1001", None, "1002", 1.0, None, 2.0, 487, "cancelled")
    async with SqliteCdrStore(settings.registrar.binding_store) as store:
        await store.add(old)  # from long before the retention period
    async with running_switch(settings) as sw:
        c = await anchored_call(sw, net)
        for seq in range(1, 11):
            c.alice_rtp.send(c.to_switch_from_alice, seq, b"\x11" * 160)
            await c.bob_rtp.recv()
        call_id = next(iter(sw.b2bua.calls))
        live = sw.live_call(call_id)
        assert live is not None and live["caller"] == "1001" and live["state"] == "confirmed"
        c.alice.hangup()
        await net.until(lambda: not sw.b2bua.calls)
        await asyncio.gather(*sw._cdr_writes)
        record = await sw.cdrs.get(call_id)
        assert record is not None
        assert (record.caller, record.callee, record.status) == ("1001", "1002", 200)
        assert record.cause == "caller hung up" and record.answered is not None
        assert record.started <= record.answered <= record.ended <= time.time()
        assert record.media["a"]["packets_in"] == 10 and record.media["b"]["packets_out"] == 10
        assert await sw.cdrs.get("old") is None  # purged at start-up


async def test_recording_paused_over_http_leaves_silence_and_the_record_says_so(
    tmp_path: Path, net: RealNet
) -> None:
    import json as jsonlib
    import urllib.request
    import wave

    import numpy as np

    from media.codecs.g711 import ulaw_encode
    from tests.unit.media.test_vad import voiced

    listeners = (Listener(transport="udp", address="127.0.0.1", port=0),)
    settings = make_settings(tmp_path, listeners)
    media = settings.media.model_copy(
        update={"record_calls": True, "recordings": str(tmp_path / "rec")}
    )
    sw = Switch(settings.model_copy(update={"media": media}))
    await sw.start()
    loop = asyncio.get_running_loop()
    try:
        c = await anchored_call(sw, net)
        call_id = next(iter(sw.b2bua.calls))
        speech = np.round(voiced(3.2)).astype(np.int16)  # vowel-like: VAD calls it speech

        async def talk(seconds: float, start: int) -> int:
            seq = start
            for _ in range(int(seconds / 0.02)):
                frame = speech[(seq - 1) * 160 : seq * 160]
                payload = ulaw_encode(frame).tobytes()
                c.alice_rtp.send(c.to_switch_from_alice, seq, payload)
                seq += 1
                await asyncio.sleep(0.02)
            return seq

        def post(action: str) -> dict[str, object]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{sw.http.port}/api/calls/{call_id}/recording",
                data=jsonlib.dumps({"action": action, "reason": "card number"}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=2) as response:
                return dict(jsonlib.loads(response.read()))

        seq = await talk(1.0, 1)
        answer = await loop.run_in_executor(None, post, "pause")
        assert answer == {"call_id": call_id, "action": "pause", "paused": True, "changed": True}
        seq = await talk(1.0, seq)
        assert (await loop.run_in_executor(None, post, "resume"))["changed"] is True
        await talk(1.0, seq)
        c.alice.hangup()
        await net.until(lambda: not sw.b2bua.calls)
        await asyncio.gather(*sw._cdr_writes)
        record = await sw.cdrs.get(call_id)
        assert record is not None and record.recording is not None
        [pause] = record.media["pauses"]
        assert pause["reason"] == "card number" and 0.8 < pause["end"] - pause["start"] < 1.3
        talk_doc = record.media["talk"]
        assert talk_doc["caller_seconds"] > 1.0 and talk_doc["callee_seconds"] < 0.2
        with wave.open(record.recording) as wav:
            rate = wav.getframerate()
            left = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")[::2].astype(float)

        def rms(start: float, end: float) -> float:
            return float(np.sqrt(np.mean(left[int(start * rate) : int(end * rate)] ** 2)))

        assert rms(pause["start"] + 0.1, pause["end"] - 0.1) < 1.0  # silence while paused
        assert rms(pause["start"] - 0.6, pause["start"] - 0.1) > 1000
        assert rms(pause["end"] + 0.2, pause["end"] + 0.7) > 1000
    finally:
        await sw.stop()
