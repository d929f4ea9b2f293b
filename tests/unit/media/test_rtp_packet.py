"""RTP and RTCP packets (RFC 3550 §5.1, §6.1, §6.4-§6.6; RFC 5761 §4).

The fixtures under tests/data/rtp/ are packed field by field from the RFC layouts by
tests/data/rtp/make_fixtures.py (no use of media.rtp), committed as .bin files; a test below
checks the committed files still equal the generator's output.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtp.packet import (
    Bye,
    HeaderExtension,
    ReceiverReport,
    ReportBlock,
    RtcpParseError,
    RtpPacket,
    RtpParseError,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    is_rtcp,
    ntp_from_unix,
    ntp_middle32,
    parse_rtcp,
    serialize_rtcp,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "rtp"


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_committed_fixtures_match_generator() -> None:
    spec = importlib.util.spec_from_file_location("make_fixtures", DATA / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.fixtures()
    assert len(generated) == 5
    for name, data in generated.items():
        assert fixture(name) == data, name


# ---------------------------------------------------------------------------------- RTP


def test_parse_pcmu_fixture() -> None:
    data = fixture("rtp_pcmu_172.bin")
    packet = RtpPacket.parse(data)
    assert packet.payload_type == 0
    assert packet.marker is True
    assert packet.sequence_number == 0x1234
    assert packet.timestamp == 0x00ABCDEF
    assert packet.ssrc == 0x11223344
    assert packet.csrc == ()
    assert packet.extension is None
    assert packet.padding_size == 0
    assert packet.payload == bytes((i * 7) & 0xFF for i in range(160))
    assert bytes(packet) == data


def test_parse_csrc_extension_padding_fixture() -> None:
    data = fixture("rtp_csrc_ext_pad.bin")
    packet = RtpPacket.parse(data)
    assert packet.payload_type == 96
    assert packet.marker is False
    assert packet.sequence_number == 65535
    assert packet.timestamp == 0xFFFFFFFF
    assert packet.ssrc == 0xCAFEBABE
    assert packet.csrc == (0x01020304, 0x05060708)
    assert packet.extension == HeaderExtension(0xBEDE, b"\x10\xaa\x00\x00")
    assert packet.payload == b"\x01\x02\x03"
    assert packet.padding_size == 4
    assert bytes(packet) == data


def test_rtp_round_trip_defaults_and_marker() -> None:
    packet = RtpPacket(payload_type=8, sequence_number=7, timestamp=160, ssrc=1, marker=True)
    data = bytes(packet)
    assert data[:2] == b"\x80\x88"
    assert RtpPacket.parse(data) == packet


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext=st.none()
    | st.builds(
        HeaderExtension,
        st.integers(0, 0xFFFF),
        st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4)),
    ),
    payload=st.binary(max_size=200),
    padding=st.integers(0, 255),
)
def test_rtp_round_trip_property(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    marker: bool,
    csrc: list[int],
    ext: HeaderExtension | None,
    payload: bytes,
    padding: int,
) -> None:
    packet = RtpPacket(pt, seq, ts, ssrc, marker, tuple(csrc), ext, payload, padding)
    assert RtpPacket.parse(bytes(packet)) == packet


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter"),
        (b"\x80\x00" + bytes(9), "shorter"),
        (b"\x40\x00" + bytes(10), "version 1"),
        (b"\x00\x00" + bytes(10), "version 0"),
        (b"\xc0\x00" + bytes(10), "version 3"),
        (b"\x83\x00" + bytes(10) + bytes(8), "CSRC count 3"),
        (b"\x90\x00" + bytes(10) + b"\xbe\xde", "extension"),
        (b"\x90\x00" + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4), "extension"),
        (b"\xa0\x00" + bytes(10) + b"\x01\x00", "padding count 0"),
        (b"\xa0\x00" + bytes(10) + b"\x01\x05", "padding count 5"),
    ],
)
def test_rtp_malformed_rejected(data: bytes, why: str) -> None:
    with pytest.raises(RtpParseError, match=why.split()[0]):
        RtpPacket.parse(data)
    assert issubclass(RtpParseError, ValueError)


def test_rtp_padding_may_fill_whole_payload() -> None:
    data = b"\xa0\x00" + bytes(10) + b"\x00\x00\x00\x04"
    packet = RtpPacket.parse(data)
    assert packet.payload == b""
    assert packet.padding_size == 4


def test_rtp_out_of_range_fields_refused() -> None:
    with pytest.raises(ValueError):
        RtpPacket(payload_type=128)
    with pytest.raises(ValueError):
        RtpPacket(sequence_number=65536)
    with pytest.raises(ValueError):
        RtpPacket(csrc=tuple(range(16)))
    with pytest.raises(ValueError):
        HeaderExtension(1, b"abc")


# --------------------------------------------------------------------------------- RTCP


def test_parse_sr_sdes_fixture() -> None:
    data = fixture("rtcp_sr_sdes.bin")
    sr, sdes = parse_rtcp(data)
    assert sr == SenderReport(
        ssrc=0x11223344,
        ntp_timestamp=(0xE8A1B2C3 << 32) | 0x80000000,
        rtp_timestamp=160000,
        packet_count=1000,
        octet_count=160000,
        reports=(ReportBlock(0x55667788, 64, 12, 0x0001FFFF, 35, 0xB2C38000, 0x00020000),),
    )
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].ssrc == 0x11223344
    assert sdes.chunks[0].cname == "agent7@10.8.0.12"
    assert serialize_rtcp([sr, sdes]) == data


def test_parse_rr_sdes_bye_fixture() -> None:
    data = fixture("rtcp_rr_sdes_bye.bin")
    rr, sdes, bye = parse_rtcp(data)
    assert isinstance(rr, ReceiverReport)
    assert rr.ssrc == 0x55667788
    assert rr.reports[0] == ReportBlock(0x11223344, 0, -3, 0x00010005, 0, 0, 0)
    assert rr.reports[1] == ReportBlock(0x99AABBCC, 255, 0x7FFFFF, 70000, 4000, 0x12345678, 0x9ABC)
    assert sdes == SourceDescription(
        (SdesChunk(0x55667788, (SdesItem(1, b"caller@pbx"), SdesItem(2, b"Caller"))),)
    )
    assert bye == Bye((0x55667788,), "hangup")
    assert serialize_rtcp([rr, sdes, bye]) == data


def test_parse_padded_app_fixture() -> None:
    data = fixture("rtcp_rr_app_padded.bin")
    rr, app = parse_rtcp(data)
    assert rr == ReceiverReport(0x55667788)
    assert app == UnknownRtcp(204, 3, struct.pack("!I", 0x55667788) + b"TEST")
    # Strict out: padding is not written back, the packet shrinks by one word.
    assert bytes(app) == bytes((0x83, 204, 0, 2)) + app.body


@pytest.mark.parametrize(
    "packet",
    [
        SenderReport(1, 2**64 - 1, 2**32 - 1, 5, 800, ()),
        SenderReport(
            1,
            7,
            8,
            9,
            10,
            tuple(ReportBlock(i, i, -i, i, i, i, i) for i in range(31)),
            extension=b"\x01\x02\x03\x04",
        ),
        ReceiverReport(9),
        ReceiverReport(9, (ReportBlock(1, 1, -0x800000, 2, 3, 4, 5),)),
        SourceDescription(()),
        SourceDescription((SdesChunk(1, ()), SdesChunk(2, (SdesItem(1, b"x" * 255),)))),
        SourceDescription((SdesChunk(3, (SdesItem(1, b"abc"), SdesItem(8, b"\x01p"))),)),
        Bye((1, 2, 3)),
        Bye(()),
        Bye((4,), ""),
        Bye((4,), "quitting é"),
        UnknownRtcp(205, 1, b"\x00" * 8),
    ],
)
def test_rtcp_round_trip(packet: object) -> None:
    data = bytes(packet)  # type: ignore[call-overload]
    assert len(data) % 4 == 0
    assert struct.unpack_from("!H", data, 2)[0] == len(data) // 4 - 1
    assert parse_rtcp(data) == [packet]


def test_report_block_lost_is_24_bit_signed() -> None:
    block = ReportBlock(1, 0, -1)
    assert bytes(block)[4:8] == b"\x00\xff\xff\xff"
    assert ReportBlock.parse(bytes(block)).packets_lost == -1
    with pytest.raises(ValueError):
        ReportBlock(1, 0, 0x800000)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x80\xc9", "shorter"),
        (b"\x40\xc9\x00\x01" + bytes(4), "version"),
        (b"\x80\xc9\x00\x02" + bytes(4), "past the end"),
        (b"\x81\xc9\x00\x01" + bytes(4), "truncated"),  # RR says 1 block, has none
        (b"\x81\xc8\x00\x06" + bytes(24), "truncated"),  # SR says 1 block, has none
        (b"\xa0\xc9\x00\x01" + bytes(4) + b"\x80\xc9\x00\x01" + bytes(4), "not the last"),
        (b"\xa0\xc9\x00\x01" + bytes(4), "padding count 0"),
        (b"\xa0\xc9\x00\x01" + b"\x00\x00\x00\x09", "padding count 9"),
        (b"\x81\xca\x00\x02" + bytes(4) + b"\x01\x05ab\x00\x00\x00\x00"[:4], "runs past"),
        (b"\x81\xca\x00\x02" + bytes(4) + b"\x01\x02ab", "not terminated"),
        (b"\x81\xcb\x00\x00", "truncated"),
        (b"\x81\xcb\x00\x02" + bytes(4) + b"\x09abc", "reason"),
        (b"\x80\x00\x00\x00", "not RTCP"),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\x80\xc9", "trailing"),
    ],
)
def test_rtcp_malformed_rejected(data: bytes, why: str) -> None:
    with pytest.raises(RtcpParseError, match=why.split()[0]):
        parse_rtcp(data)


def test_is_rtcp_demux() -> None:
    # RFC 5761 §4: second octet 192-223 is RTCP; RTP PT 0 with or without marker is not.
    assert is_rtcp(fixture("rtcp_sr_sdes.bin"))
    assert is_rtcp(fixture("rtcp_rr_sdes_bye.bin"))
    assert not is_rtcp(fixture("rtp_pcmu_172.bin"))
    assert not is_rtcp(fixture("rtp_csrc_ext_pad.bin"))
    assert [b for b in range(256) if is_rtcp(bytes((0x80, b)))] == list(range(192, 224))
    assert not is_rtcp(b"\x80")


def test_ntp_conversion() -> None:
    # 1970-01-01 is 2208988800 s after the NTP epoch; half a second is 0x80000000.
    assert ntp_from_unix(0.5) == (2208988800 << 32) | 0x80000000
    assert ntp_middle32((0x0001_0002 << 32) | 0x0003_0004) == 0x0002_0003
