"""Write the RTP capture that SIPp plays in the DTMF interop test (``play_pcap_audio``).

One RTP stream (one SSRC) of G.711 mu-law audio (payload type 0, RFC 3551 §4.5.14) in
20 ms packets, interrupted by RFC 4733 telephone-events for the digits of ``SEQUENCE``:

* every packet of one event carries the RTP timestamp of the event's start (§2.5.1.3), the
  first one with the marker bit set, and its duration field grows by 160 samples per packet
  (§2.5.1.3, updates every 20 ms);
* the last packet has the E bit set and is sent three times in all, 20 ms apart, each with its
  own sequence number and the same (final) duration (§2.5.1.4);
* no audio is sent while an event lasts; audio resumes with the timestamp of its sampling
  instant, so events and audio share one timeline.

The audio is a quiet 1 kHz tone (-30 dBFS): a single frequency, which no in-band DTMF detector
takes for a digit. The samples come from an integer table, so the file is the same byte for
byte on every machine.

The capture is classic libpcap (magic 0xa1b2c3d4, microsecond timestamps, little-endian,
link type 1 = Ethernet), each frame Ethernet / IPv4 / UDP / RTP with correct IPv4 and UDP
checksums. SIPp keeps only the UDP part and replaces the ports and addresses with those of
the call, so the addresses here are documentation ones (RFC 5737) and the timestamps start at
a fixed date.

Usage, from the repository root::

    python tools/sipp/make_dtmf_pcap.py            # writes tools/sipp/pcap/dtmf_rfc4733.pcap
    python tools/sipp/make_dtmf_pcap.py --event-pt 96 -o x.pcap  # the events on type 96
    python tools/sipp/make_dtmf_pcap.py --check    # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

#: The committed capture, played by tools/sipp/uac_pcap_dtmf.xml.
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "pcap" / "dtmf_rfc4733.pcap"

#: Digits and how long each key is held, in milliseconds (a multiple of the 20 ms packet time).
SEQUENCE: tuple[tuple[str, int], ...] = (
    ("1", 100),
    ("5", 120),
    ("9", 80),
    ("#", 140),
    ("0", 100),
    ("*", 160),
)

AUDIO_PT = 0  # PCMU, RFC 3551 table 4
EVENT_PT = 101  # the usual dynamic payload type of telephone-event/8000
CLOCK_RATE = 8000
PTIME_MS = 20
SAMPLES_PER_PACKET = CLOCK_RATE * PTIME_MS // 1000  # 160
LEAD_IN_PACKETS = 15  # audio before the first digit (300 ms)
GAP_PACKETS = 10  # audio between two digits and after the last one (200 ms)
END_PACKETS = 3  # RFC 4733 §2.5.1.4
EVENT_VOLUME = 10  # -10 dBm0, RFC 4733 §2.3.4

SSRC = 0x5EED4733
FIRST_SEQUENCE = 1000
FIRST_TIMESTAMP = 160_000
START_TIME = 1_704_067_200  # 2024-01-01T00:00:00Z, the first packet's capture time

SOURCE_MAC = bytes.fromhex("020000000001")  # locally administered addresses
DESTINATION_MAC = bytes.fromhex("020000000002")
SOURCE_IP = bytes([192, 0, 2, 10])  # RFC 5737 TEST-NET-1
DESTINATION_IP = bytes([192, 0, 2, 20])
SOURCE_PORT = 40000
DESTINATION_PORT = 6000

#: One period of a 1 kHz tone at 8 kHz, amplitude 1036 of 32768 (-30 dBFS), as integers.
TONE_PERIOD: tuple[int, ...] = (0, 733, 1036, 733, 0, -733, -1036, -733)

# G.711 mu-law in 16-bit units: the bias (33 in the 14-bit units of Table 2/G.711, times 4)
# and the largest magnitude that stays in segment 7 once biased.
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635

_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_RTP_HEADER = struct.Struct("!BBHII")
_EVENT_PAYLOAD = struct.Struct("!BBH")
_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_UDP_HEADER = struct.Struct("!HHHH")


def ulaw_encode(sample: int) -> int:
    """One 16-bit linear sample as a G.711 mu-law byte (negative samples one's complemented,
    as in the ITU-T G.191 reference coder, so that -1 codes as -0)."""
    sign = 0x80 if sample < 0 else 0x00
    magnitude = min(~sample if sample < 0 else sample, _ULAW_CLIP) + _ULAW_BIAS  # 132..32767
    exponent = magnitude.bit_length() - 8  # the segment, 0..7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_payload(packet_index: int) -> bytes:
    """160 mu-law bytes of the tone for the 20 ms starting at packet ``packet_index``."""
    first = packet_index * SAMPLES_PER_PACKET
    period = len(TONE_PERIOD)
    return bytes(ulaw_encode(TONE_PERIOD[(first + n) % period]) for n in range(SAMPLES_PER_PACKET))


def event_code(digit: str) -> int:
    """The RFC 4733 §3.2 event code of a DTMF digit."""
    code = "0123456789*#ABCD".find(digit.upper())
    if len(digit) != 1 or code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return code


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One packet of the stream, at ``tick`` (20 ms units from the first packet)."""

    tick: int
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    payload: bytes

    def __bytes__(self) -> bytes:
        header = _RTP_HEADER.pack(
            0x80,  # version 2, no padding, no extension, no CSRC
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence & 0xFFFF,
            self.timestamp & 0xFFFFFFFF,
            SSRC,
        )
        return header + self.payload


def rtp_stream(
    sequence: tuple[tuple[str, int], ...] = SEQUENCE, event_pt: int = EVENT_PT
) -> list[RtpPacket]:
    """The packets of the capture, in sending order (RFC 3550 §5.1, RFC 4733 §2.5.1)."""
    if not 96 <= event_pt <= 127:
        raise ValueError(f"telephone-event needs a dynamic payload type (96-127): {event_pt}")
    packets: list[RtpPacket] = []
    tick = 0

    def add(payload_type: int, marker: bool, timestamp_tick: int, payload: bytes) -> None:
        packets.append(
            RtpPacket(
                tick,
                payload_type,
                marker,
                FIRST_SEQUENCE + len(packets),
                FIRST_TIMESTAMP + timestamp_tick * SAMPLES_PER_PACKET,
                payload,
            )
        )

    def audio(count: int) -> None:
        nonlocal tick
        for n in range(count):  # the marker starts each talkspurt (RFC 3551 §4.1)
            add(AUDIO_PT, n == 0, tick, tone_payload(tick))
            tick += 1

    audio(LEAD_IN_PACKETS)
    for digit, held_ms in sequence:
        if held_ms <= 0 or held_ms % PTIME_MS:
            raise ValueError(f"digit {digit!r}: {held_ms} ms is not a positive multiple of 20")
        code = event_code(digit)
        start = tick  # every packet of the event carries this timestamp
        updates = held_ms // PTIME_MS
        for n in range(1, updates + END_PACKETS):
            end = n >= updates
            duration = min(n, updates) * SAMPLES_PER_PACKET
            flags = (0x80 if end else 0) | EVENT_VOLUME  # E, R = 0, volume
            add(event_pt, n == 1, start, _EVENT_PAYLOAD.pack(code, flags, duration))
            tick += 1
        audio(GAP_PACKETS)
    return packets


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet_frame(rtp: bytes, identification: int) -> bytes:
    """``rtp`` in UDP (RFC 768) in IPv4 (RFC 791) in an Ethernet II frame."""
    udp_length = _UDP_HEADER.size + len(rtp)
    pseudo = SOURCE_IP + DESTINATION_IP + struct.pack("!BBH", 0, 17, udp_length)
    udp_plain = _UDP_HEADER.pack(SOURCE_PORT, DESTINATION_PORT, udp_length, 0) + rtp
    udp_sum = _checksum(pseudo + udp_plain) or 0xFFFF
    udp = _UDP_HEADER.pack(SOURCE_PORT, DESTINATION_PORT, udp_length, udp_sum) + rtp
    total_length = _IPV4_HEADER.size + udp_length
    fields = (0x45, 0, total_length, identification & 0xFFFF, 0x4000, 64, 17)
    plain = _IPV4_HEADER.pack(*fields, 0, SOURCE_IP, DESTINATION_IP)
    ip = _IPV4_HEADER.pack(*fields, _checksum(plain), SOURCE_IP, DESTINATION_IP)
    return DESTINATION_MAC + SOURCE_MAC + b"\x08\x00" + ip + udp


def build_pcap(sequence: tuple[tuple[str, int], ...] = SEQUENCE, event_pt: int = EVENT_PT) -> bytes:
    """The whole capture file."""
    out = bytearray(_PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for index, packet in enumerate(rtp_stream(sequence, event_pt)):
        frame = ethernet_frame(bytes(packet), index + 1)
        micros = packet.tick * PTIME_MS * 1000
        seconds, micros = divmod(micros, 1_000_000)
        out += _PCAP_RECORD.pack(START_TIME + seconds, micros, len(frame), len(frame))
        out += frame
    return bytes(out)


def duration_ms(sequence: tuple[tuple[str, int], ...] = SEQUENCE) -> int:
    """Milliseconds from the first packet of the capture to its last."""
    packets = rtp_stream(sequence)
    return (packets[-1].tick - packets[0].tick) * PTIME_MS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--event-pt", type=int, default=EVENT_PT, help="telephone-event PT")
    parser.add_argument(
        "--check", action="store_true", help="compare with --output instead of writing it"
    )
    args = parser.parse_args(argv)
    try:
        data = build_pcap(event_pt=args.event_pt)
    except ValueError as exc:
        parser.error(str(exc))
    if args.check:
        try:
            current = args.output.read_bytes()
        except FileNotFoundError:
            current = b""
        if current != data:
            print(f"{args.output} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
