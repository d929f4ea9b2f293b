"""A sans-I/O RTP session with RFC 3550 statistics and RTCP reporting.

Per remote source (:class:`RtpReceiveStats`): sequence-number validation and the extended
highest sequence number (RFC 3550 Appendix A.1), cumulative and per-interval loss (A.3) and
interarrival jitter (§6.4.1, A.8). Per session (:class:`RtpSession`): packets and octets sent,
round-trip time from the LSR/DLSR of reports about our stream (§6.4.1), and our own compound
RTCP (SR or RR, then SDES CNAME; §6.1, §6.4) every report interval.

Simplifications, deliberate for a two-party anchored call leg:

* The report interval is a fixed ``interval`` (5 s, the RFC 3550 §6.2 minimum) multiplied by a
  random factor in [0.5, 1.5) from the injected ``random`` source (§6.3.1), measured from the
  last report. No bandwidth- or membership-scaled interval, no timer reconsideration, no
  1.21828 compensation factor: with two members the computed interval is the minimum anyway.
* A duplicate packet (same extended sequence number within the last 128) is counted in
  ``duplicates`` and not in ``received``, so duplication cannot hide loss. RFC 3550 A.3 counts
  duplicates as received (and cumulative loss may then go negative); ours stays exact.
* The packets of the MIN_SEQUENTIAL probation (A.1) are counted once the source is validated,
  so a clean stream of N packets reports N received and 0 lost.

The session never reads a clock: ``now`` (monotonic seconds) is passed to every call, the NTP
wall clock is an injected callable returning Unix seconds, and randomness is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from media.rtp.packet import (
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    RtpPacket,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle32,
    parse_rtcp,
)

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "RtpReceiveStats",
    "RtpSession",
    "RtpSessionStats",
    "SourceStats",
]

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

_DUP_WINDOW = 128
_DUP_MASK = (1 << _DUP_WINDOW) - 1
_MAX_REPORT_BLOCKS = 31


@dataclass(frozen=True, slots=True)
class SourceStats:
    """A snapshot of one remote source's reception statistics (RFC 3550 A.3, A.8)."""

    ssrc: int
    packets_received: int
    octets_received: int
    packets_expected: int
    packets_lost: int
    duplicates: int
    extended_highest_seq: int
    jitter: float
    """Interarrival jitter in RTP timestamp units."""
    fraction_lost: float
    """Fraction lost in the last completed report interval, 0.0 to 1.0."""
    validated: bool


class RtpReceiveStats:
    """Reception state of one remote source (RFC 3550 Appendix A.1, A.3, A.8).

    ``update(seq, timestamp, payload_octets, now)`` returns True when the packet is valid
    (A.1: the source passed probation and the packet is not a large jump or duplicate).
    """

    __slots__ = (
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "duplicates",
        "expected_prior",
        "fraction_lost",
        "jitter",
        "last_heard",
        "max_seq",
        "octets",
        "probation",
        "probation_octets",
        "received",
        "received_prior",
        "seen",
        "ssrc",
        "transit",
    )

    def __init__(self, ssrc: int, seq: int, clock_rate: int, now: float) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.octets = 0
        self.probation_octets = 0
        self.duplicates = 0
        self.jitter = 0.0
        self.transit: float | None = None
        self.fraction_lost = 0
        self.last_heard = now
        self._init_seq(seq)
        # A.1: a new source starts on probation, max_seq one before its first packet.
        self.max_seq = (seq - 1) & 0xFFFF
        self.probation = MIN_SEQUENTIAL

    def _init_seq(self, seq: int) -> None:
        """RFC 3550 A.1 ``init_seq``."""
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.seen = 1

    def update(self, seq: int, timestamp: int, payload_octets: int, now: float) -> bool:
        """Account one received RTP packet; ``now`` is its arrival time in seconds.

        Returns True for a valid packet (RFC 3550 A.1 ``update_seq``); False while the source
        is on probation, for a duplicate and for the first packet after a large jump.
        """
        self.last_heard = now
        if self.probation:
            return self._update_probation(seq, timestamp, payload_octets, now)
        if not self._update_seq(seq):
            return False
        self.octets += payload_octets
        self._update_jitter(timestamp, now)
        return True

    def _update_probation(self, seq: int, timestamp: int, payload_octets: int, now: float) -> bool:
        """A.1: a source is valid after MIN_SEQUENTIAL packets in sequence."""
        if seq != (self.max_seq + 1) & 0xFFFF:
            # Out of sequence: this packet starts a new run of probation.
            self.probation = MIN_SEQUENTIAL - 1
            self.max_seq = seq
            self.probation_octets = payload_octets
            self.transit = now * self.clock_rate - timestamp
            return False
        self.probation -= 1
        self.max_seq = seq
        self.probation_octets += payload_octets
        self._update_jitter(timestamp, now)
        if self.probation:
            return False
        self._init_seq(seq)
        # Count the run of sequential packets that passed probation (module docstring).
        self.base_seq = seq - (MIN_SEQUENTIAL - 1)
        self.received = MIN_SEQUENTIAL
        self.seen = (1 << MIN_SEQUENTIAL) - 1
        self.octets += self.probation_octets
        self.probation_octets = 0
        return True

    def _update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1 ``update_seq`` after probation, with duplicates over the last 128."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if udelta < MAX_DROPOUT:
            if udelta == 0:
                self.duplicates += 1
                return False
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # sequence number wrapped
            self.max_seq = seq
            self.seen = ((self.seen << udelta) | 1) & _DUP_MASK
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq != self.bad_seq:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
            # Two sequential packets after a large jump: the source restarted (A.1).
            self._init_seq(seq)
            self.transit = None
        else:
            back = RTP_SEQ_MOD - udelta  # late (reordered) or duplicate
            if back < _DUP_WINDOW:
                bit = 1 << back
                if self.seen & bit:
                    self.duplicates += 1
                    return False
                self.seen |= bit
        self.received += 1
        return True

    def _update_jitter(self, timestamp: int, now: float) -> None:
        """RFC 3550 §6.4.1 / A.8: J += (|D(i-1,i)| - J) / 16, in RTP timestamp units.

        transit = arrival (now x clock rate) - RTP timestamp; D is the change in transit,
        taken modulo 2^32 so that a timestamp wrap-around is not a jump.
        """
        transit = now * self.clock_rate - timestamp
        previous = self.transit
        self.transit = transit
        if previous is not None:
            d = (transit - previous + 2147483648.0) % 4294967296.0 - 2147483648.0
            if d < 0:
                d = -d
            self.jitter += (d - self.jitter) / 16.0

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """A.3: packets expected, from the first validated sequence number to the highest."""
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received if not self.probation else 0

    def report_block(self, lsr: int, dlsr: int) -> ReportBlock:
        """Close the report interval (A.3) and return the reception report block (§6.4.1)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            self.fraction_lost = 0
        else:
            self.fraction_lost = (lost_interval << 8) // expected_interval
        lost = max(-0x800000, min(0x7FFFFF, expected - self.received))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(self.fraction_lost, 255),
            packets_lost=lost,
            highest_seq=self.extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter) & 0xFFFFFFFF,
            lsr=lsr,
            dlsr=dlsr,
        )

    def snapshot(self) -> SourceStats:
        validated = self.probation == 0
        return SourceStats(
            ssrc=self.ssrc,
            packets_received=self.received if validated else 0,
            octets_received=self.octets,
            packets_expected=self.expected if validated else 0,
            packets_lost=self.lost,
            duplicates=self.duplicates,
            extended_highest_seq=self.extended_max,
            jitter=self.jitter,
            fraction_lost=self.fraction_lost / 256.0,
            validated=validated,
        )


@dataclass(frozen=True, slots=True)
class RtpSessionStats:
    """A snapshot of one call leg's RTP/RTCP statistics, for supervisors and the call record.

    Reception figures are summed over every remote source the leg has had; ``jitter_ms`` and
    ``fraction_lost`` are those of the most recently heard source. ``remote_*`` are what the
    peer reported about our stream in its last RR/SR block (None until one arrives).
    """

    ssrc: int
    remote_ssrc: int | None
    remote_cname: str | None
    packets_received: int
    octets_received: int
    packets_lost: int
    duplicates: int
    fraction_lost: float
    jitter_ms: float
    packets_sent: int
    octets_sent: int
    rtt_ms: float | None
    remote_packets_lost: int | None
    remote_fraction_lost: float | None
    remote_jitter_ms: float | None
    rtcp_sent: int
    rtcp_received: int
    rtcp_malformed: int
    sources: tuple[SourceStats, ...]


class RtpSession:
    """One RTP session (one call leg): reception stats per source, send counters, RTCP.

    Inputs: :meth:`receive_rtp` (or :meth:`receive_rtp_header` on the relay path),
    :meth:`note_rtp_sent`, :meth:`receive_rtcp`, :meth:`handle_timer`; outputs: the RTCP bytes
    returned by :meth:`handle_timer` and :meth:`bye`, and :meth:`stats`.

    Tables are bounded: at most ``max_sources`` remote sources (the least recently heard is
    retired first) and sources silent for ``source_timeout`` seconds are retired at the next
    timer (RFC 3550 §6.3.5); retired sources' totals stay in :meth:`stats`.
    """

    def __init__(
        self,
        *,
        ssrc: int,
        cname: str,
        now: float,
        wallclock: Callable[[], float],
        random: Callable[[], float],
        clock_rate: int = 8000,
        interval: float = 5.0,
        max_sources: int = 8,
        source_timeout: float = 30.0,
    ) -> None:
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise ValueError(f"SSRC {ssrc} out of range")
        if clock_rate <= 0 or interval <= 0 or max_sources < 1:
            raise ValueError("clock_rate, interval and max_sources must be positive")
        self.ssrc = ssrc
        self.cname = cname
        self.clock_rate = clock_rate
        self.interval = interval
        self.max_sources = max_sources
        self.source_timeout = source_timeout
        self._wallclock = wallclock
        self._random = random
        self._sources: dict[int, RtpReceiveStats] = {}
        self._primary: RtpReceiveStats | None = None
        self._retired_received = 0
        self._retired_octets = 0
        self._retired_lost = 0
        self._retired_duplicates = 0
        self._last_sr: dict[int, tuple[int, float]] = {}
        self._remote_cname: dict[int, str] = {}
        self._reported_since: set[int] = set()
        self.packets_sent = 0
        self.octets_sent = 0
        self._last_sent_ts = 0
        self._last_sent_at = now
        self._sent_at_reports: tuple[int, int] = (0, 0)
        self._rtt: float | None = None
        self._remote_block: ReportBlock | None = None
        self.rtcp_sent = 0
        self.rtcp_received = 0
        self.rtcp_malformed = 0
        self._closed = False
        self._deadline = now + self._next_interval()

    # -------------------------------------------------------------------------- RTP in/out

    def receive_rtp(self, packet: RtpPacket, now: float) -> bool:
        """Account a received RTP packet (RFC 3550 A.1); True if it is valid."""
        return self.receive_rtp_header(
            packet.ssrc, packet.sequence_number, packet.timestamp, len(packet.payload), now
        )

    def receive_rtp_header(
        self, ssrc: int, sequence_number: int, timestamp: int, payload_octets: int, now: float
    ) -> bool:
        """Like :meth:`receive_rtp` for a relay that has only read the header fields."""
        source = self._sources.get(ssrc)
        if source is None:
            if len(self._sources) >= self.max_sources:
                oldest = min(self._sources.values(), key=lambda s: s.last_heard)
                self._retire(oldest.ssrc)
            source = RtpReceiveStats(ssrc, sequence_number, self.clock_rate, now)
            self._sources[ssrc] = source
        self._primary = source
        valid = source.update(sequence_number, timestamp, payload_octets, now)
        if valid:
            self._reported_since.add(ssrc)
        return valid

    def note_rtp_sent(self, timestamp: int, payload_octets: int, now: float) -> None:
        """Account an RTP packet we sent: the SR's packet and octet counts (§6.4.1)."""
        self.packets_sent += 1
        self.octets_sent += payload_octets
        self._last_sent_ts = timestamp
        self._last_sent_at = now

    def set_sent(self, packets: int, octets: int, timestamp: int, now: float) -> None:
        """Set the send counters at once, for a relay that counts its packets itself and
        reads the timestamp of the last one it sent from its rewriter (§6.4.1 sender info);
        cheaper than :meth:`note_rtp_sent` per packet."""
        if packets != self.packets_sent:
            self._last_sent_ts = timestamp
            self._last_sent_at = now
        self.packets_sent = packets
        self.octets_sent = octets

    # --------------------------------------------------------------------------------- RTCP

    def receive_rtcp(self, data: bytes, now: float) -> list[RtcpPacket]:
        """Parse and account a received compound RTCP datagram; return its packets.

        A malformed datagram is the peer's fault: it is counted in ``rtcp_malformed`` and
        yields an empty list, never an exception.
        """
        try:
            packets = parse_rtcp(data)
        except RtcpParseError:
            self.rtcp_malformed += 1
            return []
        self.rtcp_received += 1
        for packet in packets:
            if isinstance(packet, SenderReport):
                self._remember_sr(packet.ssrc, ntp_middle32(packet.ntp_timestamp), now)
                self._take_blocks(packet.reports)
            elif isinstance(packet, ReceiverReport):
                self._take_blocks(packet.reports)
            elif isinstance(packet, SourceDescription):
                for chunk in packet.chunks:
                    cname = chunk.cname
                    if cname is not None and (
                        chunk.ssrc in self._remote_cname
                        or len(self._remote_cname) < self.max_sources
                    ):
                        self._remote_cname[chunk.ssrc] = cname
            elif isinstance(packet, Bye):
                for ssrc in packet.ssrcs:
                    self._retire(ssrc)
        return packets

    def _remember_sr(self, ssrc: int, middle32: int, now: float) -> None:
        if ssrc not in self._last_sr and len(self._last_sr) >= self.max_sources:
            del self._last_sr[min(self._last_sr, key=lambda k: self._last_sr[k][1])]
        self._last_sr[ssrc] = (middle32, now)

    def _take_blocks(self, blocks: tuple[ReportBlock, ...]) -> None:
        """Use a report block about our own stream: RTT = A - LSR - DLSR (RFC 3550 §6.4.1)."""
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue
            self._remote_block = block
            if block.lsr == 0:
                continue
            arrival = ntp_middle32(ntp_from_unix(self._wallclock()))
            rtt = (arrival - block.lsr - block.dlsr) & 0xFFFFFFFF
            if rtt < 0x80000000:  # a negative RTT means skewed clocks or a bogus block
                self._rtt = rtt / 65536.0

    def _retire(self, ssrc: int) -> None:
        source = self._sources.pop(ssrc, None)
        self._last_sr.pop(ssrc, None)
        self._reported_since.discard(ssrc)
        if source is None:
            return
        if source.probation == 0:
            self._retired_received += source.received
            self._retired_lost += source.lost
        self._retired_octets += source.octets
        self._retired_duplicates += source.duplicates

    def _next_interval(self) -> float:
        """RFC 3550 §6.3.1 randomisation of a fixed interval: ``interval`` x [0.5, 1.5)."""
        return self.interval * (0.5 + self._random())

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` next has a report to send; None after :meth:`bye`."""
        return None if self._closed else self._deadline

    def handle_timer(self, now: float) -> bytes | None:
        """At the deadline, return our compound RTCP report and schedule the next one."""
        if self._closed or now < self._deadline:
            return None
        for source in list(self._sources.values()):
            if now - source.last_heard > self.source_timeout:
                self._retire(source.ssrc)
        report = self._compound(now, bye=None)
        self._deadline = now + self._next_interval()
        return report

    def bye(self, now: float, reason: str | None = None) -> bytes:
        """Leave the session (RFC 3550 §6.6): a final report, SDES and BYE; stops the timer."""
        self._closed = True
        return self._compound(now, bye=Bye((self.ssrc,), reason))

    def _compound(self, now: float, bye: Bye | None) -> bytes:
        """SR if we sent RTP since the report before last (§6.4), else RR; then SDES CNAME."""
        blocks = []
        for ssrc in list(self._reported_since)[:_MAX_REPORT_BLOCKS]:
            source = self._sources[ssrc]
            last_sr = self._last_sr.get(ssrc)
            if last_sr is None:
                lsr = dlsr = 0
            else:
                lsr = last_sr[0]
                dlsr = min(int((now - last_sr[1]) * 65536.0), 0xFFFFFFFF)
            blocks.append(source.report_block(lsr, dlsr))
        self._reported_since.clear()
        two_ago, _previous = self._sent_at_reports
        first: SenderReport | ReceiverReport
        if self.packets_sent > two_ago:
            elapsed = int(round((now - self._last_sent_at) * self.clock_rate))
            first = SenderReport(
                ssrc=self.ssrc,
                ntp_timestamp=ntp_from_unix(self._wallclock()),
                rtp_timestamp=(self._last_sent_ts + elapsed) & 0xFFFFFFFF,
                packet_count=self.packets_sent & 0xFFFFFFFF,
                octet_count=self.octets_sent & 0xFFFFFFFF,
                reports=tuple(blocks),
            )
        else:
            first = ReceiverReport(ssrc=self.ssrc, reports=tuple(blocks))
        self._sent_at_reports = (self._sent_at_reports[1], self.packets_sent)
        sdes = SourceDescription(
            (SdesChunk(self.ssrc, (SdesItem(SDES_CNAME, self.cname.encode("utf-8")[:255]),)),)
        )
        self.rtcp_sent += 1
        parts = [bytes(first), bytes(sdes)]
        if bye is not None:
            parts.append(bytes(bye))
        return b"".join(parts)

    # -------------------------------------------------------------------------------- stats

    def stats(self) -> RtpSessionStats:
        """A frozen snapshot of this leg's statistics (does not close a report interval)."""
        sources = tuple(s.snapshot() for s in self._sources.values())
        primary = self._primary if self._primary is not None else None
        if primary is not None and primary.ssrc not in self._sources:
            primary = None
        remote = self._remote_block
        return RtpSessionStats(
            ssrc=self.ssrc,
            remote_ssrc=primary.ssrc if primary is not None else None,
            remote_cname=(self._remote_cname.get(primary.ssrc) if primary is not None else None),
            packets_received=self._retired_received + sum(s.packets_received for s in sources),
            octets_received=self._retired_octets + sum(s.octets_received for s in sources),
            packets_lost=self._retired_lost + sum(s.packets_lost for s in sources),
            duplicates=self._retired_duplicates + sum(s.duplicates for s in sources),
            fraction_lost=primary.fraction_lost / 256.0 if primary is not None else 0.0,
            jitter_ms=(primary.jitter * 1000.0 / self.clock_rate if primary is not None else 0.0),
            packets_sent=self.packets_sent,
            octets_sent=self.octets_sent,
            rtt_ms=self._rtt * 1000.0 if self._rtt is not None else None,
            remote_packets_lost=remote.packets_lost if remote is not None else None,
            remote_fraction_lost=remote.fraction_lost / 256.0 if remote is not None else None,
            remote_jitter_ms=(
                remote.jitter * 1000.0 / self.clock_rate if remote is not None else None
            ),
            rtcp_sent=self.rtcp_sent,
            rtcp_received=self.rtcp_received,
            rtcp_malformed=self.rtcp_malformed,
            sources=sources,
        )
