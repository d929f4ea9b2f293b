"""The RTP relay on real loopback sockets: two-way forwarding, rewriting and latching."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from media.rtp.packet import RtpPacket
from media.transport import PortPool, PortsExhausted, Relay, RtpEndpoint


def free_even_pair() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1] & ~1
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
            ):
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free even port pair")


class Phone:
    """A UDP socket standing in for a phone's RTP port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()

    def send(self, to: tuple[str, int], seq: int, ts: int, ssrc: int, payload: bytes) -> None:
        self.sock.sendto(bytes(RtpPacket(0, seq, ts, ssrc, payload=payload)), to)

    async def recv(self, timeout: float = 2.0) -> tuple[RtpPacket, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(self.sock, 2048), timeout)
        return RtpPacket.parse(data), addr


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Relay, RtpEndpoint, RtpEndpoint]]:
    loop = asyncio.get_running_loop()
    a = RtpEndpoint(loop, "127.0.0.1", free_even_pair())
    await a.open()
    b = RtpEndpoint(loop, "127.0.0.1", free_even_pair())
    await b.open()
    yield Relay(a, b, ssrc_a=0x0A0A0A0A, ssrc_b=0x0B0B0B0B), a, b
    a.close()
    b.close()


async def test_two_way_relay_rewrites_each_direction(
    relay: tuple[Relay, RtpEndpoint, RtpEndpoint],
) -> None:
    _, a, b = relay
    caller, callee = Phone(), Phone()
    a.remote, b.remote = caller.addr, callee.addr  # as their SDP said
    for i in range(5):
        caller.send(("127.0.0.1", a.port), 100 + i, 1000 + 160 * i, 0x1234, b"C" * 160)
        got, src = await callee.recv()
        assert src == ("127.0.0.1", b.port)  # it comes from the switch's port toward B
        assert got.payload == b"C" * 160 and got.ssrc == 0x0B0B0B0B
        callee.send(("127.0.0.1", b.port), 7000 + i, 500 + 160 * i, 0x9999, b"B" * 160)
        back, src = await caller.recv()
        assert src == ("127.0.0.1", a.port)
        assert back.payload == b"B" * 160 and back.ssrc == 0x0A0A0A0A
    assert a.packets_in == b.packets_in == 5


async def test_symmetric_latching_sends_to_the_real_source(
    relay: tuple[Relay, RtpEndpoint, RtpEndpoint],
) -> None:
    _, a, b = relay
    agent_behind_nat, caller = Phone(), Phone()
    b.remote = ("127.0.0.1", 9)  # what the agent's SDP claims (a private address, in effect)
    a.remote = caller.addr
    # the agent talks first, from its real (translated) address
    agent_behind_nat.send(("127.0.0.1", b.port), 1, 160, 0x55, b"A" * 160)
    await caller.recv()
    assert b.latched == agent_behind_nat.addr
    caller.send(("127.0.0.1", a.port), 1, 160, 0x66, b"C" * 160)
    got, _ = await agent_behind_nat.recv()  # reaches the agent despite its SDP address
    assert got.payload == b"C" * 160


async def test_a_moved_leg_is_not_latched_back_by_its_previous_peer(
    relay: tuple[Relay, RtpEndpoint, RtpEndpoint],
) -> None:
    """After a transfer the leg's far end is a new phone: the transferring phone's last
    packets are dropped for the hold-off, so the customer's audio never goes back to it;
    after the hold-off a packet from that address latches again (a phone that really moved)."""
    _, a, b = relay
    caller, agent, colleague = Phone(), Phone(), Phone()
    a.remote, b.remote = caller.addr, agent.addr
    agent.send(("127.0.0.1", b.port), 1, 160, 0x55, b"A" * 160)
    await caller.recv()
    assert b.latched == agent.addr

    b.move(colleague.addr, hold_off=0.5)  # the call now goes to the colleague
    assert b.latched is None and b.destination == colleague.addr
    agent.send(("127.0.0.1", b.port), 2, 320, 0x55, b"A" * 160)  # a late packet of the agent
    with pytest.raises(TimeoutError):
        await caller.recv(timeout=0.2)  # dropped: not relayed ...
    assert b.latched is None  # ... and it did not take the port back
    caller.send(("127.0.0.1", a.port), 1, 160, 0x66, b"C" * 160)
    got, _ = await colleague.recv()  # the customer's audio reaches the colleague
    assert got.payload == b"C" * 160
    colleague.send(("127.0.0.1", b.port), 1, 160, 0x77, b"K" * 160)
    back, _ = await caller.recv()
    assert back.payload == b"K" * 160 and b.latched == colleague.addr

    b.move(colleague.addr, hold_off=0.5)  # the same address again (a re-INVITE): no change
    assert b.latched == colleague.addr
    await asyncio.sleep(0.6)
    agent.send(("127.0.0.1", b.port), 3, 480, 0x55, b"A" * 160)  # past the hold-off
    await caller.recv()
    assert b.latched == agent.addr


def test_port_pool_pairs_and_exhaustion() -> None:
    pool = PortPool(20001, 20008)  # rounds up to even: 20002, 20004, 20006
    ports = [pool.allocate() for _ in range(3)]
    assert ports == [20002, 20004, 20006] and all(p % 2 == 0 for p in ports)
    with pytest.raises(PortsExhausted):
        pool.allocate()
    pool.release(20004)
    assert len(pool) == 1 and pool.allocate() == 20004
    for port in ports:
        pool.release(port)
    assert len(pool) == pool.capacity == 3


async def test_pcmu_to_pcma_transcoding_and_event_renumbering() -> None:
    from media.codecs.g711 import alaw_decode, ulaw_encode
    from media.tones import tone
    from media.transport import g711_map

    loop = asyncio.get_running_loop()
    a = RtpEndpoint(loop, "127.0.0.1", free_even_pair())
    b = RtpEndpoint(loop, "127.0.0.1", free_even_pair())
    await a.open()
    await b.open()
    try:
        # A talks PCMU with telephone-event 101; B negotiated PCMA with telephone-event 96
        a_to_b = {**g711_map(0, 8), 101: (96, None)}
        b_to_a = {**g711_map(8, 0), 96: (101, None)}
        Relay(a, b, 1, 2, a_to_b=a_to_b, b_to_a=b_to_a)
        caller, agent = Phone(), Phone()
        a.remote, b.remote = caller.addr, agent.addr
        samples = tone((1000.0,), 20, -10.0)
        caller.send(("127.0.0.1", a.port), 1, 0, 0x77, ulaw_encode(samples).tobytes())
        got, _ = await agent.recv()
        assert got.payload_type == 8
        decoded = alaw_decode(got.payload).astype(float)
        # the same waveform within G.711 quantisation (both laws: a few percent of full scale)
        assert float(abs(decoded - samples).max()) < 0.06 * float(abs(samples).max())
        event = bytes([5, 0x0A, 0x00, 0xA0])  # RFC 4733: digit 5, volume 10, duration 160
        caller.sock.sendto(bytes(RtpPacket(101, 2, 0, 0x77, payload=event)), ("127.0.0.1", a.port))
        got, _ = await agent.recv()
        assert (got.payload_type, got.payload) == (96, event)  # renumbered, untouched
    finally:
        a.close()
        b.close()


async def test_engine_reuses_released_endpoints_with_their_state_reset() -> None:
    from media.engine import MediaEngine

    loop = asyncio.get_running_loop()
    first = free_even_pair()
    engine = MediaEngine(loop, "127.0.0.1", "127.0.0.1", PortPool(first, first + 7))
    try:
        a_port, b_port = engine.allocate("call-1")
        await asyncio.sleep(0.05)  # the loop attaches the sockets
        caller, callee = Phone(), Phone()
        engine.set_remote("call-1", "a", *caller.addr)
        engine.set_remote("call-1", "b", *callee.addr)
        engine.connect("call-1")
        caller.send(("127.0.0.1", a_port), 1, 0, 5, b"x" * 160)
        got, _ = await callee.recv()
        assert got.payload == b"x" * 160
        engine.release("call-1")
        assert engine.free_pairs == 4 and len(engine) == 0
        # a stray packet of the old call while idle: dropped, latches nothing
        caller.send(("127.0.0.1", a_port), 2, 160, 5, b"y" * 160)
        await asyncio.sleep(0.05)
        again = engine.allocate("call-2")
        assert set(again) <= {a_port, b_port, first, first + 2, first + 4, first + 6}
        assert again[0] in (a_port, b_port)  # an idle bound endpoint was taken first
        for endpoint in engine._calls["call-2"].a, engine._calls["call-2"].b:
            assert endpoint.latched is None and endpoint.remote is None
            assert endpoint.packets_in == 0
    finally:
        engine.close()
    assert len(engine.pool) == engine.pool.capacity


async def test_engine_terminates_rtcp_per_leg_with_rfc3550_statistics() -> None:
    """Each leg gets the switch's own RTCP (SR/RR + SDES, then BYE at the end), built from
    what that leg sent: loss counted from sequence gaps, RTT from the peer's LSR/DLSR."""
    import time

    from media.engine import MediaEngine
    from media.rtp.packet import (
        Bye,
        ReceiverReport,
        ReportBlock,
        SenderReport,
        SourceDescription,
        ntp_from_unix,
        ntp_middle32,
        parse_rtcp,
    )

    loop = asyncio.get_running_loop()
    first = free_even_pair()
    engine = MediaEngine(
        loop, "127.0.0.1", "127.0.0.1", PortPool(first, first + 3), rtcp_interval=0.2
    )
    engine.rtcp_poll = 0.05
    caller, callee = Phone(), Phone()
    rtcp = Phone()  # the caller's RTCP socket
    try:
        a_port, b_port = engine.allocate("c")
        await asyncio.sleep(0.05)
        engine.set_remote("c", "a", *caller.addr)
        engine.set_remote("c", "b", *callee.addr)
        engine.connect("c")
        ssrc = 0x11223344
        our_ntp = ntp_from_unix(time.time())
        sr = SenderReport(ssrc, our_ntp, 40 * 160, 39, 39 * 160)
        rtcp.sock.sendto(bytes(sr), ("127.0.0.1", a_port + 1))
        await asyncio.sleep(0.01)
        for seq in range(1, 41):
            if seq != 7:  # one packet lost on the way
                caller.send(("127.0.0.1", a_port), seq, seq * 160, ssrc, b"\xff" * 160)
            callee.send(("127.0.0.1", b_port), 500 + seq, seq * 160, 0x55, b"\x7f" * 160)
        sent = 39

        async def report_about(wanted: int) -> tuple[SenderReport | ReceiverReport, ReportBlock]:
            nonlocal sent
            for seq in range(41, 81):
                # a block about a source goes only into the report after it sent something
                caller.send(("127.0.0.1", a_port), seq, seq * 160, ssrc, b"\xff" * 160)
                sent += 1
                data, _addr = await asyncio.wait_for(
                    loop.sock_recvfrom(rtcp.sock, 2048), timeout=2.0
                )
                packets = parse_rtcp(data)
                first_packet = packets[0]
                assert isinstance(first_packet, SenderReport | ReceiverReport)
                assert isinstance(packets[1], SourceDescription)  # SDES CNAME follows
                for block in first_packet.reports:
                    if block.ssrc == wanted and block.packets_lost == 1:
                        return first_packet, block
            raise AssertionError("no report about our stream")

        report, block = await report_about(ssrc)
        # the switch relayed the callee's packets to the caller: a sender report
        assert isinstance(report, SenderReport) and report.packet_count > 0
        assert block.lsr == ntp_middle32(our_ntp)
        assert report.ssrc == engine._calls["c"].ssrc_a
        # the caller reports on the switch's stream; the switch derives the round trip
        lsr = ntp_middle32(report.ntp_timestamp)
        await asyncio.sleep(0.03)
        rr = ReceiverReport(ssrc, (ReportBlock(report.ssrc, lsr=lsr, dlsr=int(0.01 * 65536)),))
        rtcp.sock.sendto(bytes(rr), ("127.0.0.1", a_port + 1))
        await asyncio.sleep(0.05)
        stats = engine.stats("c")
        assert stats is not None
        leg_a = stats["a"]
        assert isinstance(leg_a, dict)
        assert leg_a["packets_lost"] == 1 and leg_a["packets_in"] == sent
        assert leg_a["rtcp_received"] == 2
        assert leg_a["rtt_ms"] is not None and 15 <= leg_a["rtt_ms"] < 500
        final = engine.release("c")
        assert final is not None and final["a"] is not None
        # the leg's last RTCP carries a BYE for the switch's source
        for _ in range(40):
            data, _addr = await asyncio.wait_for(loop.sock_recvfrom(rtcp.sock, 2048), 2.0)
            byes = [p for p in parse_rtcp(data) if isinstance(p, Bye)]
            if byes:
                assert byes[0].ssrcs == (report.ssrc,)
                break
        else:
            raise AssertionError("no RTCP BYE")
    finally:
        engine.close()
        for phone in (caller, callee, rtcp):
            phone.sock.close()


async def _digits_through_engine(
    events_pt: int | None, packets: list[bytes], inband: str = "auto"
) -> list[tuple[str, str, str]]:
    from media.engine import MediaEngine

    loop = asyncio.get_running_loop()
    first = free_even_pair()
    engine = MediaEngine(
        loop, "127.0.0.1", "127.0.0.1", PortPool(first, first + 3), inband_dtmf=inband
    )
    got: list[tuple[str, str, str]] = []
    engine.on_digit = lambda call, side, d: got.append((side, d.digit, d.source))
    caller, callee = Phone(), Phone()
    try:
        a_port, _ = engine.allocate("c")
        await asyncio.sleep(0.05)
        engine.set_remote("c", "a", *caller.addr, events_pt=events_pt)
        engine.set_remote("c", "b", *callee.addr, events_pt=events_pt)
        engine.connect("c")
        for packet in packets:
            caller.sock.sendto(packet, ("127.0.0.1", a_port))
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.1)
    finally:
        engine.close()
        caller.sock.close()
        callee.sock.close()
    return got


def _tone_packets(digit: str) -> list[bytes]:
    import numpy as np

    from media.codecs.g711 import ulaw_encode
    from media.tones import dtmf

    audio = np.concatenate(
        [np.zeros(800, np.int16), dtmf(digit, 120, level_dbm0=-12.0), np.zeros(1600, np.int16)]
    )
    return [
        bytes(
            RtpPacket(
                0, i, i * 160, 9, payload=ulaw_encode(audio[i * 160 : (i + 1) * 160]).tobytes()
            )
        )
        for i in range(len(audio) // 160)
    ]


async def test_engine_hears_dtmf_tones_on_a_leg_without_telephone_event() -> None:
    got = await _digits_through_engine(None, _tone_packets("7"))
    assert got == [("a", "7", "inband")]


async def test_engine_leaves_tones_alone_on_a_leg_that_sends_events_unless_told() -> None:
    assert await _digits_through_engine(101, _tone_packets("7")) == []
    got = await _digits_through_engine(101, _tone_packets("7"), inband="always")
    assert got == [("a", "7", "inband")]
    assert await _digits_through_engine(None, _tone_packets("7"), inband="never") == []


async def test_engine_reports_rfc4733_digits_of_a_relayed_call_once() -> None:
    from media.dtmf import Rfc4733Sender

    sender = Rfc4733Sender()
    packets = [
        bytes(RtpPacket(101, 100 + i, 8000, 9, marker=p.marker, payload=p.payload))
        for i, p in enumerate(sender.packets("4", 120))
    ]
    got = await _digits_through_engine(101, packets)
    assert got == [("a", "4", "rfc4733")]


async def test_engine_plays_prompts_to_a_local_call_with_barge_in() -> None:
    import numpy as np

    from media.codecs.g711 import ULAW_DECODE_TABLE
    from media.dtmf import Rfc4733Sender
    from media.engine import MediaEngine

    loop = asyncio.get_running_loop()
    first = free_even_pair()
    engine = MediaEngine(loop, "127.0.0.1", "127.0.0.1", PortPool(first, first + 3))
    caller = Phone()
    heard_digits: list[str] = []
    try:
        a_port, _ = engine.allocate("ivr")
        await asyncio.sleep(0.05)
        engine.set_remote("ivr", "a", *caller.addr, events_pt=101)
        engine.attach_local("ivr", 0, lambda side, d: heard_digits.append(d.digit))
        tone = np.round(8000 * np.sin(2 * np.pi * 700 * np.arange(2400) / 8000)).astype(np.int16)
        done: asyncio.Future[str | None] = loop.create_future()
        assert engine.play("ivr", [tone, tone], on_done=done.set_result)
        assert await asyncio.wait_for(done, 2.0) is None  # 0.6 s, played out
        received = []
        while True:
            try:
                packet, _ = await caller.recv(timeout=0.05)
            except TimeoutError:
                break
            received.append(packet)
        assert len(received) == 30 and all(p.payload_type == 0 for p in received)
        samples = ULAW_DECODE_TABLE[np.frombuffer(b"".join(p.payload for p in received), np.uint8)]
        assert np.corrcoef(samples[:2400], tone)[0, 1] > 0.99
        # a long prompt with barge-in: the caller's digit stops it and reaches the listener
        stopped: asyncio.Future[str | None] = loop.create_future()
        assert engine.play("ivr", [tone] * 20, barge_in=True, on_done=stopped.set_result)
        await asyncio.sleep(0.2)
        for i, event in enumerate(Rfc4733Sender().packets("5", 100)):
            packet = RtpPacket(101, 50 + i, 8000, 7, marker=event.marker, payload=event.payload)
            caller.sock.sendto(bytes(packet), ("127.0.0.1", a_port))
        assert await asyncio.wait_for(stopped, 1.0) == "5"
        assert heard_digits == ["5"]
        # replaced, then released mid-prompt: each on_done is called once, with None
        ends: list[str | None] = []
        engine.play("ivr", [tone] * 20, on_done=ends.append)
        engine.play("ivr", [tone] * 20, on_done=ends.append)
        engine.release("ivr")
        assert ends == [None, None]
    finally:
        engine.close()
        caller.sock.close()


async def test_engine_tells_tones_of_many_legs_apart_in_one_batch() -> None:
    """Three calls whose callers press different keys at the same moment: each digit is
    reported for its own call (one batched detector pass per tick for all legs)."""
    from media.engine import MediaEngine

    loop = asyncio.get_running_loop()
    first = free_even_pair()
    engine = MediaEngine(loop, "127.0.0.1", "127.0.0.1", PortPool(first, first + 11))
    got: list[tuple[str, str, str]] = []
    engine.on_digit = lambda call, side, d: got.append((call, side, d.digit))
    phones = {}
    try:
        for name in ("c1", "c2", "c3"):
            a_port, _ = engine.allocate(name)
            phones[name] = (Phone(), Phone(), a_port)
        await asyncio.sleep(0.05)
        for name, (caller, callee, _) in phones.items():
            engine.set_remote(name, "a", *caller.addr)
            engine.set_remote(name, "b", *callee.addr, events_pt=101)
            engine.connect(name)
        streams = {name: _tone_packets(key) for name, key in zip(phones, "19#", strict=True)}
        for i in range(len(streams["c1"])):
            for name, (caller, _, a_port) in phones.items():
                caller.sock.sendto(streams[name][i], ("127.0.0.1", a_port))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
    finally:
        engine.close()
        for caller, callee, _ in phones.values():
            caller.sock.close()
            callee.sock.close()
    assert sorted(got) == [("c1", "a", "1"), ("c2", "a", "9"), ("c3", "a", "#")]


async def test_engine_sends_rfc4733_digits_on_its_stream_toward_a_leg() -> None:
    from media.dtmf import Rfc4733Receiver
    from media.engine import MediaEngine

    loop = asyncio.get_running_loop()
    first = free_even_pair()
    engine = MediaEngine(loop, "127.0.0.1", "127.0.0.1", PortPool(first, first + 3))
    caller = Phone()
    try:
        engine.allocate("ivr")
        await asyncio.sleep(0.05)
        engine.set_remote("ivr", "a", *caller.addr, events_pt=96)
        engine.attach_local("ivr", 0)
        assert engine.send_digit("ivr", "a", "7", duration_ms=100)
        assert not engine.send_digit("ivr", "b", "7")  # leg B named no telephone-event
        got = []
        while True:
            try:
                packet, _ = await caller.recv(timeout=0.3)
            except TimeoutError:
                break
            got.append(packet)
        assert [p.payload_type for p in got] == [96] * len(got) and len(got) == 7
        assert got[0].marker and not any(p.marker for p in got[1:])
        assert len({p.timestamp for p in got}) == 1 and len({p.ssrc for p in got}) == 1
        seqs = [p.sequence_number for p in got]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(got))]
        receiver = Rfc4733Receiver()
        digits = [
            d for p in got for d in receiver.receive(p.timestamp, p.marker, p.payload, loop.time())
        ]
        assert [(d.digit, d.duration_ms) for d in digits] == [("7", 100)]
    finally:
        engine.close()
        caller.sock.close()
