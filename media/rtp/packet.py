"""RTP and RTCP wire formats (RFC 3550), as value objects with ``parse()`` and ``__bytes__``.

RTP fixed header and header extension: RFC 3550 §5.1 and §5.3.1. RTCP: sender report (§6.4.1),
receiver report (§6.4.2), source description (§6.5), goodbye (§6.6), compound packets (§6.1)
with the validity checks of Appendix A.2 that apply to single packets. Demultiplexing RTP and
RTCP on one port: RFC 5761 §4.

Lenient in, strict out: ``parse`` accepts any well-formed packet (padding, unknown RTCP packet
types, profile-specific extensions) and raises :class:`RtpParseError` (a ``ValueError``) for
malformed input; the serializers write one canonical form (no padding unless asked for in RTP).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

__all__ = [
    "NTP_UNIX_OFFSET",
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "SDES_CNAME",
    "Bye",
    "HeaderExtension",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtcpParseError",
    "RtpPacket",
    "RtpParseError",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcp",
    "is_rtcp",
    "ntp_from_unix",
    "ntp_middle32",
    "parse_rtcp",
    "payload_bounds",
    "serialize_rtcp",
]

RTP_VERSION = 2

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

SDES_END = 0
SDES_CNAME = 1

#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01), RFC 3550 §4.
NTP_UNIX_OFFSET = 2_208_988_800

_RTP_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_CSRC = tuple(struct.Struct(f"!{n}I") for n in range(16))
_RTCP_HEADER = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_SR_INFO = struct.Struct("!IQIII")
_REPORT_BLOCK = struct.Struct("!IIIIII")


class RtpParseError(ValueError):
    """A datagram is not a well-formed RTP or RTCP packet (the peer's fault)."""


class RtcpParseError(RtpParseError):
    """A datagram is not a well-formed (compound) RTCP packet."""


def is_rtcp(data: bytes) -> bool:
    """Tell RTCP from RTP on a multiplexed port (RFC 5761 §4).

    RTCP packet types 192-223 fall where RTP would carry the marker bit and payload types
    64-95, which RFC 5761 reserves for exactly this reason.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


def payload_bounds(packet: bytes | bytearray) -> tuple[int, int]:
    """Start and end of an RTP packet's payload: past the CSRCs and any header extension,
    before any padding (RFC 3550 §5.1, §5.3.1), without parsing the whole packet."""
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10 and len(packet) >= start + 4:
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    end = len(packet)
    if packet[0] & 0x20 and end > start:
        end -= packet[-1]
    return start, max(start, end)


def ntp_from_unix(seconds: float) -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4) for a Unix time in seconds."""
    return round((seconds + NTP_UNIX_OFFSET) * 4294967296.0) & 0xFFFFFFFFFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, the unit of LSR and DLSR (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------- RTP


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """An RTP header extension (RFC 3550 §5.3.1): a 16-bit profile field and whole words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise ValueError(f"extension profile {self.profile} out of range")
        if len(self.data) % 4 or len(self.data) > 0xFFFF * 4:
            raise ValueError("extension data must be a whole number of 32-bit words")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """An RTP data packet (RFC 3550 §5.1). The version is always 2.

    ``padding_size`` is the number of padding octets (RFC 3550 §5.1, P bit), counting the last
    octet that holds the count; 0 means no padding.
    """

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: HeaderExtension | None = None
    payload: bytes = b""
    padding_size: int = 0

    def __post_init__(self) -> None:
        if (
            not 0 <= self.payload_type <= 127
            or not 0 <= self.sequence_number <= 0xFFFF
            or not 0 <= self.timestamp <= 0xFFFFFFFF
            or not 0 <= self.ssrc <= 0xFFFFFFFF
            or not 0 <= self.padding_size <= 255
            or len(self.csrc) > 15
        ):
            raise ValueError(f"RTP header field out of range in {self!r}")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet (RFC 3550 §5.1); raise :class:`RtpParseError` if malformed."""
        size = len(data)
        if size < 12:
            raise RtpParseError(f"RTP packet of {size} octets is shorter than the fixed header")
        b0, b1, seq, ts, ssrc = _RTP_HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpParseError(f"RTP version {b0 >> 6}, expected 2")
        pos = 12
        cc = b0 & 0x0F
        csrc: tuple[int, ...] = ()
        if cc:
            pos += 4 * cc
            if pos > size:
                raise RtpParseError(f"CSRC count {cc} runs past the end of a {size}-octet packet")
            csrc = _CSRC[cc].unpack_from(data, 12)
        extension = None
        if b0 & 0x10:
            if pos + 4 > size:
                raise RtpParseError("header extension runs past the end of the packet")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            start = pos + 4
            pos = start + 4 * words
            if pos > size:
                raise RtpParseError("header extension runs past the end of the packet")
            extension = HeaderExtension(profile, bytes(data[start:pos]))
        end = size
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or pos + padding > size:
                raise RtpParseError(f"bad RTP padding count {padding}")
            end -= padding
        # The parsed fields are in range by construction, so skip __init__'s checks: setting
        # the slots directly halves the cost of a parse (the relay's hot path).
        packet = _new_object(cls)
        _set_pt(packet, b1 & 0x7F)
        _set_seq(packet, seq)
        _set_ts(packet, ts)
        _set_ssrc(packet, ssrc)
        _set_marker(packet, b1 > 127)
        _set_csrc(packet, csrc)
        _set_extension(packet, extension)
        _set_payload(packet, data[pos:end])
        _set_padding(packet, padding)
        return packet

    def __bytes__(self) -> bytes:
        b0 = 0x80 | len(self.csrc)
        b1 = self.payload_type | 0x80 if self.marker else self.payload_type
        if self.padding_size:
            b0 |= 0x20
        ext = self.extension
        if ext is not None:
            b0 |= 0x10
        head = _RTP_HEADER.pack(b0, b1, self.sequence_number, self.timestamp, self.ssrc)
        if not (self.csrc or ext is not None or self.padding_size):
            return head + self.payload
        parts = [head]
        if self.csrc:
            parts.append(_CSRC[len(self.csrc)].pack(*self.csrc))
        if ext is not None:
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)


def _slot_setter(name: str) -> Callable[[RtpPacket, object], None]:
    setter: Callable[[RtpPacket, object], None] = vars(RtpPacket)[name].__set__
    return setter


_new_object = object.__new__
_set_pt = _slot_setter("payload_type")
_set_seq = _slot_setter("sequence_number")
_set_ts = _slot_setter("timestamp")
_set_ssrc = _slot_setter("ssrc")
_set_marker = _slot_setter("marker")
_set_csrc = _slot_setter("csrc")
_set_extension = _slot_setter("extension")
_set_payload = _slot_setter("payload")
_set_padding = _slot_setter("padding_size")

# -------------------------------------------------------------------------------------- RTCP


def _rtcp_header(count: int, packet_type: int, body_len: int) -> bytes:
    """The common RTCP header (RFC 3550 §6.4.1): length in 32-bit words minus one."""
    if not 0 <= count <= 31:
        raise ValueError(f"RTCP count {count} exceeds 31")
    return _RTCP_HEADER.pack(0x80 | count, packet_type, body_len // 4)


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1), 24 octets.

    ``packets_lost`` is the 24-bit signed cumulative number lost; ``fraction_lost`` the 8-bit
    fixed-point fraction (lost/expected * 256); ``lsr`` and ``dlsr`` are in the NTP middle-32
    format (1/65536 s).
    """

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_seq: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    SIZE: ClassVar[int] = 24

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError(f"fraction_lost {self.fraction_lost} out of range")
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise ValueError(f"packets_lost {self.packets_lost} out of 24-bit signed range")

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost_word = (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF)
        return _REPORT_BLOCK.pack(
            self.ssrc, lost_word, self.highest_seq, self.jitter, self.lsr, self.dlsr
        )


def _parse_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    return tuple(ReportBlock.parse(body, offset + 24 * i) for i in range(count))


@dataclass(frozen=True, slots=True)
class SenderReport:
    """RTCP SR, packet type 200 (RFC 3550 §6.4.1).

    ``ntp_timestamp`` is the full 64-bit NTP timestamp; ``extension`` holds any
    profile-specific extension octets after the report blocks.
    """

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    packet_type: ClassVar[int] = RTCP_SR

    @classmethod
    def parse_body(cls, body: bytes, count: int) -> SenderReport:
        if len(body) < 24 + 24 * count:
            raise RtcpParseError(f"SR with {count} report blocks is truncated")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        blocks = _parse_blocks(body, 24, count)
        return cls(ssrc, ntp, rtp_ts, packets, octets, blocks, bytes(body[24 + 24 * count :]))

    def __bytes__(self) -> bytes:
        body = b"".join(
            [
                _SR_INFO.pack(
                    self.ssrc,
                    self.ntp_timestamp,
                    self.rtp_timestamp,
                    self.packet_count,
                    self.octet_count,
                ),
                *(bytes(b) for b in self.reports),
                _pad4(self.extension),
            ]
        )
        return _rtcp_header(len(self.reports), RTCP_SR, body_len=len(body)) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RTCP RR, packet type 201 (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    packet_type: ClassVar[int] = RTCP_RR

    @classmethod
    def parse_body(cls, body: bytes, count: int) -> ReceiverReport:
        if len(body) < 4 + 24 * count:
            raise RtcpParseError(f"RR with {count} report blocks is truncated")
        (ssrc,) = _U32.unpack_from(body)
        blocks = _parse_blocks(body, 4, count)
        return cls(ssrc, blocks, bytes(body[4 + 24 * count :]))

    def __bytes__(self) -> bytes:
        body = b"".join(
            [_U32.pack(self.ssrc), *(bytes(b) for b in self.reports), _pad4(self.extension)]
        )
        return _rtcp_header(len(self.reports), RTCP_RR, body_len=len(body)) + body


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item (RFC 3550 §6.5): type (1 = CNAME ... 8 = PRIV) and up to 255 octets."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.type <= 255 or len(self.value) > 255:
            raise ValueError(f"bad SDES item {self!r}")


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk (RFC 3550 §6.5): an SSRC/CSRC and its items."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    @property
    def cname(self) -> str | None:
        """The CNAME item (RFC 3550 §6.5.1), decoded as UTF-8, if the chunk has one."""
        for item in self.items:
            if item.type == SDES_CNAME:
                return item.value.decode("utf-8", "replace")
        return None

    def __bytes__(self) -> bytes:
        out = bytearray(_U32.pack(self.ssrc))
        for item in self.items:
            out += bytes((item.type, len(item.value)))
            out += item.value
        # One or more null octets end the item list, then pad to a word (RFC 3550 §6.5).
        out.append(SDES_END)
        out += bytes(-len(out) % 4)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """RTCP SDES, packet type 202 (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    packet_type: ClassVar[int] = RTCP_SDES

    @classmethod
    def parse_body(cls, body: bytes, count: int) -> SourceDescription:
        chunks = []
        pos = 0
        size = len(body)
        for _ in range(count):
            start = pos
            if pos + 4 > size:
                raise RtcpParseError("SDES chunk is truncated")
            (ssrc,) = _U32.unpack_from(body, pos)
            pos += 4
            items = []
            while True:
                if pos >= size:
                    raise RtcpParseError("SDES item list is not terminated by a null octet")
                item_type = body[pos]
                if item_type == SDES_END:
                    pos += 1
                    break
                if pos + 2 > size or pos + 2 + body[pos + 1] > size:
                    raise RtcpParseError("SDES item runs past the end of the packet")
                length = body[pos + 1]
                items.append(SdesItem(item_type, bytes(body[pos + 2 : pos + 2 + length])))
                pos += 2 + length
            pos += -(pos - start) % 4
            if pos > size:
                raise RtcpParseError("SDES chunk padding runs past the end of the packet")
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def __bytes__(self) -> bytes:
        body = b"".join(bytes(c) for c in self.chunks)
        return _rtcp_header(len(self.chunks), RTCP_SDES, body_len=len(body)) + body


@dataclass(frozen=True, slots=True)
class Bye:
    """RTCP BYE, packet type 203 (RFC 3550 §6.6): the sources leaving and an optional reason."""

    ssrcs: tuple[int, ...]
    reason: str | None = None

    packet_type: ClassVar[int] = RTCP_BYE

    @classmethod
    def parse_body(cls, body: bytes, count: int) -> Bye:
        pos = 4 * count
        if pos > len(body):
            raise RtcpParseError(f"BYE with {count} sources is truncated")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = None
        if pos < len(body):
            length = body[pos]
            if pos + 1 + length > len(body):
                raise RtcpParseError("BYE reason runs past the end of the packet")
            reason = bytes(body[pos + 1 : pos + 1 + length]).decode("utf-8", "replace")
        return cls(tuple(ssrcs), reason)

    def __bytes__(self) -> bytes:
        body = b"".join(_U32.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode("utf-8")
            if len(text) > 255:
                raise ValueError("BYE reason longer than 255 octets")
            body += _pad4(bytes((len(text),)) + text)
        return _rtcp_header(len(self.ssrcs), RTCP_BYE, body_len=len(body)) + body


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """Any other RTCP packet (APP, feedback, XR ...), kept as its count and body octets."""

    packet_type: int
    count: int
    body: bytes

    def __bytes__(self) -> bytes:
        body = _pad4(self.body)
        return _rtcp_header(self.count, self.packet_type, body_len=len(body)) + body


RtcpPacket: TypeAlias = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet (RFC 3550 §6.1) into its packets.

    Checks per packet (RFC 3550 Appendix A.2): version 2, the lengths add up to the datagram
    exactly, padding only in the last packet. The first packet need not be SR/RR, so that
    reduced-size RTCP (RFC 5506) is accepted. Raises :class:`RtcpParseError`.
    """
    size = len(data)
    if size < 4:
        raise RtcpParseError(f"RTCP datagram of {size} octets is shorter than a header")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < size:
        if size - pos < 4:
            raise RtcpParseError("trailing octets after the last RTCP packet")
        b0, packet_type, words = _RTCP_HEADER.unpack_from(data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise RtcpParseError(f"RTCP version {b0 >> 6}, expected 2")
        end = pos + 4 * (words + 1)
        if end > size:
            raise RtcpParseError(f"RTCP packet type {packet_type} runs past the end of datagram")
        body_end = end
        if b0 & 0x20:
            if end != size:
                raise RtcpParseError("padding bit set on an RTCP packet that is not the last")
            padding = data[end - 1]
            if padding == 0 or padding > 4 * words:
                raise RtcpParseError(f"bad RTCP padding count {padding}")
            body_end -= padding
        body = data[pos + 4 : body_end]
        count = b0 & 0x1F
        packet: RtcpPacket
        if packet_type == RTCP_SR:
            packet = SenderReport.parse_body(body, count)
        elif packet_type == RTCP_RR:
            packet = ReceiverReport.parse_body(body, count)
        elif packet_type == RTCP_SDES:
            packet = SourceDescription.parse_body(body, count)
        elif packet_type == RTCP_BYE:
            packet = Bye.parse_body(body, count)
        elif 192 <= packet_type <= 223:
            packet = UnknownRtcp(packet_type, count, bytes(body))
        else:
            raise RtcpParseError(f"packet type {packet_type} is not RTCP")
        packets.append(packet)
        pos = end
    return packets


def serialize_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Join RTCP packets into one compound datagram (RFC 3550 §6.1)."""
    return b"".join(bytes(p) for p in packets)
