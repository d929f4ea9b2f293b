"""Write the RTP/RTCP fixture files of this folder from the RFC 3550 bit layouts.

Independent of media.rtp on purpose: every header is packed field by field with struct, so the
fixtures check the parser against the RFC, not against the serializer. Run from the repository
root: ``.venv/bin/python tests/data/rtp/make_fixtures.py``; tests/unit/media/test_rtp_packet.py
checks that the committed .bin files equal what this script writes.
"""

from __future__ import annotations

import struct
from pathlib import Path

HERE = Path(__file__).parent


def rtp_header(p: int, x: int, cc: int, m: int, pt: int, seq: int, ts: int, ssrc: int) -> bytes:
    # RFC 3550 §5.1: V(2) P(1) X(1) CC(4) | M(1) PT(7) | sequence(16) | timestamp | SSRC
    return struct.pack("!BBHII", (2 << 6) | (p << 5) | (x << 4) | cc, (m << 7) | pt, seq, ts, ssrc)


def rtcp_header(p: int, count: int, pt: int, body: bytes) -> bytes:
    # RFC 3550 §6.4.1: V(2) P(1) RC(5) | PT(8) | length in 32-bit words minus one
    assert len(body) % 4 == 0
    return struct.pack("!BBH", (2 << 6) | (p << 5) | count, pt, len(body) // 4) + body


def report_block(
    ssrc: int, fraction: int, lost: int, highest: int, jitter: int, lsr: int, dlsr: int
) -> bytes:
    return struct.pack(
        "!IB3sIIII",
        ssrc,
        fraction,
        (lost & 0xFFFFFF).to_bytes(3, "big"),
        highest,
        jitter,
        lsr,
        dlsr,
    )


def fixtures() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    # G.711 mu-law, 20 ms: 12-octet header + 160 octets (172 in all), marker set.
    out["rtp_pcmu_172.bin"] = rtp_header(0, 0, 0, 1, 0, 0x1234, 0x00ABCDEF, 0x11223344) + bytes(
        (i * 7) & 0xFF for i in range(160)
    )
    # Two CSRCs, a one-word header extension (profile 0xBEDE) and 4 padding octets.
    out["rtp_csrc_ext_pad.bin"] = (
        rtp_header(1, 1, 2, 0, 96, 65535, 0xFFFFFFFF, 0xCAFEBABE)
        + struct.pack("!II", 0x01020304, 0x05060708)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x10\xaa\x00\x00"
        + b"\x01\x02\x03"
        + b"\x00\x00\x00\x04"
    )
    # SR with one report block, then SDES with a CNAME.
    sr_body = struct.pack("!IIIIII", 0x11223344, 0xE8A1B2C3, 0x80000000, 160000, 1000, 160000)
    sr_body += report_block(0x55667788, 64, 12, 0x0001FFFF, 35, 0xB2C38000, 0x00020000)
    cname = b"agent7@10.8.0.12"
    chunk = struct.pack("!I", 0x11223344) + bytes((1, len(cname))) + cname + b"\x00"
    chunk += bytes(-len(chunk) % 4)
    out["rtcp_sr_sdes.bin"] = rtcp_header(0, 1, 200, sr_body) + rtcp_header(0, 1, 202, chunk)
    # RR with two blocks (one with negative cumulative loss), SDES (CNAME + NAME), BYE + reason.
    rr_body = struct.pack("!I", 0x55667788)
    rr_body += report_block(0x11223344, 0, -3, 0x00010005, 0, 0, 0)
    rr_body += report_block(0x99AABBCC, 255, 0x7FFFFF, 70000, 4000, 0x12345678, 0x9ABC)
    c1 = b"caller@pbx"
    n1 = b"Caller"
    chunk = struct.pack("!I", 0x55667788) + bytes((1, len(c1))) + c1 + bytes((2, len(n1))) + n1
    chunk += b"\x00" + bytes(-(len(chunk) + 1) % 4)
    reason = b"hangup"
    bye_body = struct.pack("!I", 0x55667788) + bytes((len(reason),)) + reason
    bye_body += bytes(-len(bye_body) % 4)
    out["rtcp_rr_sdes_bye.bin"] = (
        rtcp_header(0, 2, 201, rr_body)
        + rtcp_header(0, 1, 202, chunk)
        + rtcp_header(0, 1, 203, bye_body)
    )
    # Empty RR followed by an APP packet (type 204) padded by 4 octets.
    app_body = struct.pack("!I", 0x55667788) + b"TEST" + b"\x00\x00\x00\x04"
    out["rtcp_rr_app_padded.bin"] = rtcp_header(0, 0, 201, struct.pack("!I", 0x55667788)) + (
        rtcp_header(1, 3, 204, app_body)
    )
    return out


def main() -> None:
    for name, data in fixtures().items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
