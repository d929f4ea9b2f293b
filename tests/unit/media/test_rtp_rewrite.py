"""RTP translation for relayed streams (RFC 3550 §8.2): one continuous stream per leg."""

from __future__ import annotations

from media.rtp.packet import RtpPacket
from media.rtp.rewrite import StreamRewriter


def pkt(seq: int, ts: int, ssrc: int, marker: bool = False) -> bytearray:
    return bytearray(bytes(RtpPacket(0, seq, ts, ssrc, marker=marker, payload=b"\xff" * 160)))


def out(data: bytearray) -> RtpPacket:
    return RtpPacket.parse(bytes(data))


def test_relayed_stream_takes_our_ssrc_and_numbering() -> None:
    rw = StreamRewriter(ssrc=0xABCDEF01, initial_seq=1000, initial_ts=50_000)
    results = []
    for i in range(3):
        p = pkt(40_000 + i, 9_000_000 + 160 * i, 0x1111)
        assert rw.relay(p)
        results.append(out(p))
    assert [r.ssrc for r in results] == [0xABCDEF01] * 3
    assert [r.sequence_number for r in results] == [1000, 1001, 1002]
    assert [r.timestamp for r in results] == [50_000, 50_160, 50_320]
    assert [r.marker for r in results] == [False, False, False]
    assert results[0].payload == b"\xff" * 160


def test_gaps_and_reordering_are_preserved_not_hidden() -> None:
    rw = StreamRewriter(ssrc=1, initial_seq=0, initial_ts=0)
    seqs = []
    for seq in (10, 11, 13, 12, 14):  # one packet late, arriving after its successor
        p = pkt(seq, seq * 160, 0x22)
        rw.relay(p)
        seqs.append(out(p).sequence_number)
    assert seqs == [0, 1, 3, 2, 4]  # the receiver still sees the loss/reorder pattern
    assert rw.last_sent == (4, 4 * 160)


def test_wraparound_of_input_and_output() -> None:
    rw = StreamRewriter(ssrc=1, initial_seq=65534, initial_ts=0xFFFFFF00)
    seqs, tss = [], []
    for i in range(4):
        p = pkt((65000 + i) & 0xFFFF, (0xFFFFFFF0 + 160 * i) & 0xFFFFFFFF, 0x33)
        rw.relay(p)
        r = out(p)
        seqs.append(r.sequence_number)
        tss.append(r.timestamp)
    assert seqs == [65534, 65535, 0, 1]
    assert tss == [0xFFFFFF00, (0xFFFFFF00 + 160) & 0xFFFFFFFF, 0x40, 0xE0]


def test_generated_frames_in_between_keep_one_stream_and_mark_talkspurts() -> None:
    rw = StreamRewriter(ssrc=7, initial_seq=100, initial_ts=8000)
    first = pkt(5, 500, 0x44)
    rw.relay(first)
    assert out(first).sequence_number == 100 and not out(first).marker
    # the switch plays a prompt: three frames of its own
    gen = [rw.next_generated() for _ in range(3)]
    assert gen == [(101, 8160, True), (102, 8320, False), (103, 8480, False)]
    # relaying resumes from the same peer: continues after the prompt, marked
    again = pkt(6, 660, 0x44)
    rw.relay(again)
    r = out(again)
    assert (r.sequence_number, r.timestamp, r.marker) == (104, 8640, True)
    nxt = pkt(7, 820, 0x44)
    rw.relay(nxt)
    assert (out(nxt).sequence_number, out(nxt).marker) == (105, False)


def test_new_source_is_joined_seamlessly() -> None:
    rw = StreamRewriter(ssrc=9, initial_seq=0, initial_ts=0)
    a = pkt(300, 30_000, 0xA)
    rw.relay(a)
    b = pkt(7, 77, 0xB)  # e.g. the callee's phone restarted its stream
    rw.relay(b)
    r = out(b)
    assert (r.ssrc, r.sequence_number, r.timestamp, r.marker) == (9, 1, 160, True)


def test_malformed_packets_are_refused() -> None:
    rw = StreamRewriter(ssrc=1, initial_seq=0, initial_ts=0)
    assert not rw.relay(bytearray(b"\x80\x00\x00"))
    assert not rw.relay(bytearray(b"\x40" + b"\x00" * 11))  # version 1


def test_payload_bounds_agree_with_the_parser() -> None:
    from media.rtp.packet import HeaderExtension, payload_bounds

    plain = bytes(RtpPacket(0, 1, 2, 3, payload=b"p" * 160))
    fancy = bytes(
        RtpPacket(
            8,
            1,
            2,
            3,
            csrc=(7, 8),
            extension=HeaderExtension(0xBEDE, b"\x01" * 8),
            payload=b"q" * 20,
            padding_size=4,
        )
    )
    for raw in (plain, fancy):
        start, end = payload_bounds(raw)
        assert raw[start:end] == RtpPacket.parse(raw).payload
