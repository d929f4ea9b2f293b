"""RTP session statistics and RTCP reporting (RFC 3550 §6.4, Appendix A.1, A.3, A.8)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from media.rtp.packet import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtpPacket,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle32,
    parse_rtcp,
)
from media.rtp.session import MAX_DROPOUT, RtpReceiveStats, RtpSession

OUR_SSRC = 0xAAAA0001
PEER = 0x5EE50001


class FixedRandom:
    """A random source that replays a fixed sequence."""

    def __init__(self, values: list[float]) -> None:
        self._values: Iterator[float] = iter(values)

    def __call__(self) -> float:
        return next(self._values)


class Clock:
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


def make_session(
    now: float = 0.0, random: list[float] | None = None, wallclock: Clock | None = None, **kw: int
) -> RtpSession:
    return RtpSession(
        ssrc=OUR_SSRC,
        cname="switch@pbx",
        now=now,
        wallclock=wallclock or Clock(1_700_000_000.0),
        random=FixedRandom(random or [0.5] * 100),
        **kw,
    )


def feed(stats: RtpReceiveStats, seqs: list[int], start_time: float = 0.0) -> list[bool]:
    """Packets 20 ms apart with the timestamp of their sequence number (constant transit)."""
    return [stats.update(seq, 160 * i, 160, start_time + 0.02 * i) for i, seq in enumerate(seqs)]


# --------------------------------------------------------------- sequence numbers (A.1, A.3)


def test_clean_stream_counts_every_packet() -> None:
    stats = RtpReceiveStats(PEER, 1000, 8000, 0.0)
    valid = feed(stats, list(range(1000, 1050)))
    assert valid == [False] + [True] * 49  # the first packet is on probation
    snap = stats.snapshot()
    assert snap.packets_received == 50
    assert snap.packets_expected == 50
    assert snap.packets_lost == 0
    assert snap.octets_received == 50 * 160
    assert snap.extended_highest_seq == 1049


def test_probation_restarts_on_out_of_sequence_packet() -> None:
    stats = RtpReceiveStats(PEER, 10, 8000, 0.0)
    assert feed(stats, [10, 20, 21, 22]) == [False, False, True, True]
    snap = stats.snapshot()
    # 20 and 21 passed probation, then 22: three received, none lost, 10 forgotten.
    assert (snap.packets_received, snap.packets_expected, snap.packets_lost) == (3, 3, 0)
    assert snap.octets_received == 3 * 160


def test_not_validated_source_reports_nothing() -> None:
    stats = RtpReceiveStats(PEER, 10, 8000, 0.0)
    assert feed(stats, [10]) == [False]
    snap = stats.snapshot()
    assert not snap.validated
    assert (snap.packets_received, snap.packets_lost, snap.octets_received) == (0, 0, 0)


def test_sequence_wrap_extends_highest() -> None:
    stats = RtpReceiveStats(PEER, 65530, 8000, 0.0)
    seqs = [*range(65530, 65536), *range(0, 6)]
    assert all(feed(stats, seqs)[1:])
    snap = stats.snapshot()
    assert snap.extended_highest_seq == 65536 + 5
    assert snap.packets_received == 12
    assert snap.packets_lost == 0


def test_loss_across_wrap_is_exact() -> None:
    stats = RtpReceiveStats(PEER, 65530, 8000, 0.0)
    seqs = [s & 0xFFFF for s in range(65530, 65546) if s not in (65534, 65536, 65537)]
    feed(stats, seqs)
    snap = stats.snapshot()
    assert snap.packets_expected == 16
    assert snap.packets_received == 13
    assert snap.packets_lost == 3


def test_reordering_is_not_loss() -> None:
    stats = RtpReceiveStats(PEER, 1, 8000, 0.0)
    valid = feed(stats, [1, 2, 3, 5, 4, 6, 8, 7])
    assert valid == [False] + [True] * 7
    snap = stats.snapshot()
    assert (snap.packets_received, snap.packets_lost, snap.duplicates) == (8, 0, 0)
    assert snap.extended_highest_seq == 8


def test_late_packet_before_wrap_after_wrap() -> None:
    stats = RtpReceiveStats(PEER, 65533, 8000, 0.0)
    feed(stats, [65533, 65534, 0, 65535, 1])
    snap = stats.snapshot()
    assert snap.extended_highest_seq == 65537
    assert (snap.packets_received, snap.packets_lost) == (5, 0)


def test_duplicates_counted_apart_and_do_not_hide_loss() -> None:
    stats = RtpReceiveStats(PEER, 1, 8000, 0.0)
    # 5 is lost; 3 arrives three times and 2 twice.
    valid = feed(stats, [1, 2, 3, 3, 2, 4, 6, 3])
    assert valid == [False, True, True, False, False, True, True, False]
    snap = stats.snapshot()
    assert snap.duplicates == 3
    assert snap.packets_received == 5
    assert snap.packets_lost == 1


def test_large_jump_then_restart() -> None:
    stats = RtpReceiveStats(PEER, 10, 8000, 0.0)
    feed(stats, list(range(10, 20)))
    jump = 19 + MAX_DROPOUT + 1
    assert not stats.update(jump, 0, 160, 1.0)  # a single wild packet is dropped
    assert stats.snapshot().packets_received == 10
    assert stats.update(jump + 1, 160, 160, 1.02)  # the next in sequence: the source restarted
    snap = stats.snapshot()
    assert snap.extended_highest_seq == jump + 1
    assert (snap.packets_received, snap.packets_lost) == (1, 0)


def test_fraction_lost_per_interval() -> None:
    stats = RtpReceiveStats(PEER, 100, 8000, 0.0)
    feed(stats, [s for s in range(100, 120) if s not in (105, 110, 111)])
    block = stats.report_block(0, 0)
    assert block.fraction_lost == 3 * 256 // 20
    assert block.packets_lost == 3
    assert block.highest_seq == 119
    feed(stats, list(range(120, 130)), start_time=1.0)
    block = stats.report_block(0, 0)
    assert block.fraction_lost == 0  # nothing lost in this interval
    assert block.packets_lost == 3  # cumulative
    assert stats.report_block(0, 0).fraction_lost == 0  # empty interval


# ------------------------------------------------------------------------------ jitter (A.8)


def test_constant_transit_has_no_jitter() -> None:
    stats = RtpReceiveStats(PEER, 0, 8000, 0.0)
    start_ts = 2**32 - 800  # the timestamp wraps after five packets
    for i in range(50):
        stats.update(i, (start_ts + 160 * i) & 0xFFFFFFFF, 160, 10.0 + 0.02 * i)
    assert stats.snapshot().jitter == pytest.approx(0.0, abs=1e-6)


def test_alternating_delay_jitter_follows_recurrence() -> None:
    # Every other packet 10 ms late: |D| = 80 timestamp units each time, so after n
    # differences J = 80 (1 - (15/16)^n).
    stats = RtpReceiveStats(PEER, 0, 8000, 0.0)
    count = 40
    for i in range(count):
        stats.update(i, 160 * i, 160, 0.02 * i + (0.01 if i % 2 else 0.0))
    expected = 80 * (1 - (15 / 16) ** (count - 1))
    assert stats.snapshot().jitter == pytest.approx(expected, rel=1e-9)
    assert stats.report_block(0, 0).jitter == int(expected)


def test_session_jitter_in_ms() -> None:
    session = make_session()
    for i in range(200):
        session.receive_rtp(
            RtpPacket(0, i, 160 * i, PEER, payload=bytes(160)), 0.02 * i + (0.01 if i % 2 else 0)
        )
    # Converged to 80 units = 10 ms at 8000 Hz.
    assert session.stats().jitter_ms == pytest.approx(10.0, rel=1e-4)


# ---------------------------------------------------------------------------- RTCP and RTT


def test_timer_cadence_with_fixed_random() -> None:
    session = make_session(now=100.0, random=[0.0, 0.5, 0.999, 0.25])
    assert session.next_deadline() == 102.5  # 5 s x 0.5
    assert session.handle_timer(102.4) is None
    assert session.handle_timer(102.5) is not None
    assert session.next_deadline() == 107.5  # 5 s x 1.0 from the report
    assert session.handle_timer(107.0) is None
    assert session.handle_timer(108.0) is not None
    assert session.next_deadline() == pytest.approx(108.0 + 5 * 1.499)
    assert session.stats().rtcp_sent == 2


def test_receiver_report_with_blocks_and_lsr() -> None:
    session = make_session(random=[0.9, 0.5])  # first report at 7.0
    for i in range(20):
        if i not in (4, 5):
            session.receive_rtp(RtpPacket(0, 500 + i, 160 * i, PEER, payload=bytes(160)), 0.02 * i)
    peer_ntp = ntp_from_unix(1_700_000_003.25)
    peer_sr = bytes(SenderReport(PEER, peer_ntp, 1234, 18, 2880))
    assert session.receive_rtcp(peer_sr, now=3.0) == [SenderReport(PEER, peer_ntp, 1234, 18, 2880)]
    data = session.handle_timer(7.0)
    assert data is not None
    rr, sdes = parse_rtcp(data)
    assert isinstance(rr, ReceiverReport)
    assert rr.ssrc == OUR_SSRC
    (block,) = rr.reports
    assert block.ssrc == PEER
    assert block.packets_lost == 2
    assert block.fraction_lost == 2 * 256 // 20
    assert block.highest_seq == 519
    assert block.lsr == ntp_middle32(peer_ntp)
    assert block.dlsr == 4 * 65536  # 4 s between the SR's arrival and our report
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].ssrc == OUR_SSRC
    assert sdes.chunks[0].cname == "switch@pbx"
    stats = session.stats()
    assert stats.packets_received == 18
    assert stats.packets_lost == 2
    assert stats.fraction_lost == pytest.approx((2 * 256 // 20) / 256)
    assert stats.remote_ssrc == PEER


def test_sender_report_when_we_sent() -> None:
    session = make_session(random=[0.0] * 10)  # reports every 2.5 s
    for i in range(10):
        session.note_rtp_sent(16000 + 160 * i, 160, now=1.0 + 0.02 * i)
    # Last packet at t=1.18 with timestamp 17440; the report at t=2.5 extrapolates.
    data = session.handle_timer(2.5)
    assert data is not None
    sr = parse_rtcp(data)[0]
    assert isinstance(sr, SenderReport)
    assert sr.packet_count == 10
    assert sr.octet_count == 1600
    assert sr.rtp_timestamp == 17440 + round((2.5 - 1.18) * 8000)
    assert sr.ntp_timestamp == ntp_from_unix(1_700_000_000.0)
    # Still a sender at the next report; an RR once nothing was sent for two intervals.
    assert isinstance(parse_rtcp(session.handle_timer(5.0) or b"")[0], SenderReport)
    assert isinstance(parse_rtcp(session.handle_timer(7.5) or b"")[0], ReceiverReport)
    stats = session.stats()
    assert (stats.packets_sent, stats.octets_sent) == (10, 1600)


def test_rtt_from_receiver_report() -> None:
    wall = Clock(1_700_000_000.0)
    session = make_session(wallclock=wall)
    session.note_rtp_sent(0, 160, now=0.0)
    our_sr = parse_rtcp(session.handle_timer(5.0) or b"")[0]
    assert isinstance(our_sr, SenderReport)
    lsr = ntp_middle32(our_sr.ntp_timestamp)
    # The peer holds our SR for 1.5 s; the RR reaches us 120 ms after the SR left in all.
    rr = ReceiverReport(PEER, (ReportBlock(OUR_SSRC, 13, 7, 99, 240, lsr, int(1.5 * 65536)),))
    wall.value += 1.5 + 0.120
    assert session.stats().rtt_ms is None
    session.receive_rtcp(bytes(rr), now=6.62)
    stats = session.stats()
    assert stats.rtt_ms == pytest.approx(120.0, abs=0.05)
    assert stats.remote_packets_lost == 7
    assert stats.remote_fraction_lost == pytest.approx(13 / 256)
    assert stats.remote_jitter_ms == pytest.approx(30.0)


def test_rtt_ignored_without_lsr_or_for_other_ssrc() -> None:
    session = make_session()
    session.receive_rtcp(bytes(ReceiverReport(PEER, (ReportBlock(OUR_SSRC, lsr=0),))), 1.0)
    session.receive_rtcp(bytes(ReceiverReport(PEER, (ReportBlock(123, lsr=5, dlsr=1),))), 1.0)
    assert session.stats().rtt_ms is None


def test_malformed_rtcp_is_counted_not_raised() -> None:
    session = make_session()
    assert session.receive_rtcp(b"\x80\xc9\x00\x05", 1.0) == []
    assert session.receive_rtcp(b"garbage", 1.0) == []
    stats = session.stats()
    assert (stats.rtcp_malformed, stats.rtcp_received) == (2, 0)


def test_bye_retires_source_and_final_report() -> None:
    session = make_session()
    for i in range(10):
        session.receive_rtp(RtpPacket(0, i, 160 * i, PEER, payload=bytes(160)), 0.02 * i)
    session.receive_rtcp(bytes(ReceiverReport(PEER)) + bytes(Bye((PEER,), "bye")), 1.0)
    stats = session.stats()
    assert stats.sources == ()
    assert stats.packets_received == 10  # kept after the source left
    assert stats.remote_ssrc is None
    final = parse_rtcp(session.bye(2.0, "hangup"))
    assert isinstance(final[0], ReceiverReport)
    assert final[-1] == Bye((OUR_SSRC,), "hangup")
    assert session.next_deadline() is None
    assert session.handle_timer(100.0) is None


def test_source_table_is_bounded_and_times_out() -> None:
    session = make_session(max_sources=2)
    for n, ssrc in enumerate((1, 2, 3)):
        for i in range(5):
            session.receive_rtp_header(ssrc, i, 160 * i, 160, n + 0.02 * i)
    stats = session.stats()
    assert [s.ssrc for s in stats.sources] == [2, 3]
    assert stats.packets_received == 15
    assert stats.octets_received == 15 * 160
    assert stats.remote_ssrc == 3
    session.handle_timer(5.0)  # all heard within the 30 s timeout
    assert len(session.stats().sources) == 2
    session.handle_timer(40.0)
    stats = session.stats()
    assert stats.sources == ()
    assert stats.packets_received == 15


def test_remote_cname_from_sdes() -> None:
    session = make_session()
    session.receive_rtp_header(PEER, 1, 0, 160, 0.0)
    session.receive_rtp_header(PEER, 2, 160, 160, 0.02)
    fixture_like = bytes(ReceiverReport(PEER)) + bytes(
        SourceDescription.parse_body(b"\x5e\xe5\x00\x01\x01\x03a@b\x00\x00\x00\x00\x00", 1)
    )
    session.receive_rtcp(fixture_like, 0.1)
    assert session.stats().remote_cname == "a@b"
