"""Rewriting relayed RTP so that each leg sees one continuous stream from the switch.

An anchored call's outgoing stream toward a leg is the switch's own RTP source (RFC 3550 §8.2:
a translator may rewrite SSRC, sequence numbers and timestamps): packets relayed from the other
leg and frames the switch generates itself (a prompt, a tone) share one SSRC, sequence numbers
that only ever go up by one, and timestamps that keep their spacing. When the origin changes,
the first packet is marked (§5.1 marker bit: start of a talkspurt) so the phone's jitter buffer
resynchronises instead of treating the jump as loss.

The rewrite works on the 12-byte fixed header in place (no parse of the payload): this runs for
every relayed packet.
"""

from __future__ import annotations

import struct

__all__ = ["StreamRewriter"]

_SEQ_TS_SSRC = struct.Struct("!HII")  # bytes 2..11 of the fixed header


class StreamRewriter:
    """One outgoing RTP stream: its SSRC and the continuity of its numbering."""

    __slots__ = (
        "_in_ssrc",
        "_last_seq",
        "_last_ts",
        "_mark_next",
        "_seq_off",
        "_started",
        "_ts_off",
        "samples_per_frame",
        "ssrc",
    )

    def __init__(
        self, ssrc: int, initial_seq: int, initial_ts: int, samples_per_frame: int = 160
    ) -> None:
        self.ssrc = ssrc & 0xFFFFFFFF
        self.samples_per_frame = samples_per_frame
        self._last_seq = (initial_seq - 1) & 0xFFFF
        self._last_ts = (initial_ts - samples_per_frame) & 0xFFFFFFFF
        self._in_ssrc: int | None = None
        self._seq_off = 0
        self._ts_off = 0
        self._mark_next = False
        self._started = False

    def relay(self, packet: bytearray) -> bool:
        """Rewrite a relayed RTP packet in place; False (leave it unsent) if it is malformed."""
        if len(packet) < 12 or packet[0] >> 6 != 2:
            return False
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(packet, 2)
        if ssrc != self._in_ssrc:
            # A new origin (first packet, the peer restarted, or a handover): continue our
            # numbering from where the last packet we sent left off.
            self._in_ssrc = ssrc
            self._seq_off = (self._last_seq + 1 - seq) & 0xFFFF
            self._ts_off = (self._last_ts + self.samples_per_frame - ts) & 0xFFFFFFFF
            self._mark_next = self._started
        out_seq = (seq + self._seq_off) & 0xFFFF
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        _SEQ_TS_SSRC.pack_into(packet, 2, out_seq, out_ts, self.ssrc)
        if self._mark_next:
            packet[1] |= 0x80
            self._mark_next = False
        if ((out_seq - self._last_seq) & 0xFFFF) < 0x8000:  # newer: track the high mark
            self._last_seq = out_seq
            self._last_ts = out_ts
        self._started = True
        return True

    def next_generated(self) -> tuple[int, int, bool]:
        """Sequence number, timestamp and marker for a frame the switch sends itself."""
        seq = (self._last_seq + 1) & 0xFFFF
        ts = (self._last_ts + self.samples_per_frame) & 0xFFFFFFFF
        marker = self._in_ssrc is not None or not self._started
        self._last_seq, self._last_ts = seq, ts
        self._in_ssrc = None  # relayed packets after this are a new origin again
        self._started = True
        return seq, ts, marker

    def next_sequence(self) -> tuple[int, int]:
        """The next sequence number with the timestamp unchanged: a further packet of the same
        instant, such as an RFC 4733 event update (§2.5.1.3: every packet of an event carries
        the event's start timestamp)."""
        seq = (self._last_seq + 1) & 0xFFFF
        self._last_seq = seq
        self._in_ssrc = None
        self._started = True
        return seq, self._last_ts

    @property
    def last_sent(self) -> tuple[int, int]:
        return self._last_seq, self._last_ts
