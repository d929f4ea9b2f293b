"""SDP (RFC 4566) parsing and serialization, and RFC 3264 offer/answer."""

from __future__ import annotations

import pytest

from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError
from softswitch.sip.sdp import (
    Attribute,
    CodecRef,
    Connection,
    Direction,
    MediaDescription,
    NegotiatedMedia,
    SessionDescription,
    answer,
    codecs,
    effective_direction,
    is_hold,
    make_offer,
    media_address,
    parse_answer,
)


def crlf(*lines: str) -> str:
    return "".join(line + "\r\n" for line in lines)


PJSUA = crlf(
    "v=0",
    "o=- 3912345678 3912345678 IN IP4 192.168.1.20",
    "s=pjmedia",
    "b=AS:84",
    "t=0 0",
    "a=X-nat:0",
    "m=audio 4000 RTP/AVP 96 9 8 0 101",
    "c=IN IP4 192.168.1.20",
    "b=AS:64000",
    "b=TIAS:64000",
    "a=rtcp:4001 IN IP4 192.168.1.20",
    "a=sendrecv",
    "a=rtpmap:96 speex/16000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ssrc:1829404586 cname:2b1d1a6f5f6e3c7a",
)

SIPP = crlf(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 127.0.1.1",
    "s=-",
    "c=IN IP4 127.0.1.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
)

LINPHONE = crlf(
    "v=0",
    "o=bob 1234 5678 IN IP4 10.0.0.7",
    "s=Talk",
    "c=IN IP4 10.0.0.7",
    "t=0 0",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:97 speex/16000",
    "a=fmtp:97 vbr=on",
    "a=rtpmap:98 speex/8000",
    "a=fmtp:98 vbr=on",
    "a=fmtp:18 annexb=yes",
    "a=rtpmap:101 telephone-event/48000",
    "a=rtpmap:99 telephone-event/16000",
    "a=rtpmap:100 telephone-event/8000",
    "a=rtcp-fb:* trr-int 1000",
    "m=video 9078 RTP/AVP 96",
    "a=rtpmap:96 VP8/90000",
    "a=recvonly",
)

# RFC 4566 §5 example.
RFC4566 = crlf(
    "v=0",
    "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5",
    "s=SDP Seminar",
    "i=A Seminar on the session description protocol",
    "u=http://www.example.com/seminars/sdp.pdf",
    "e=j.doe@example.com (Jane Doe)",
    "c=IN IP4 224.2.17.12/127",
    "t=2873397496 2873404696",
    "a=recvonly",
    "m=audio 49170 RTP/AVP 0",
    "m=video 51372 RTP/AVP 99",
    "a=rtpmap:99 h263-1998/90000",
)


def offer_with(*media_lines: str, session: tuple[str, ...] = ()) -> SessionDescription:
    return SessionDescription.parse(
        crlf(
            "v=0",
            "o=alice 1 1 IN IP4 198.51.100.1",
            "s=-",
            "c=IN IP4 198.51.100.1",
            "t=0 0",
            *session,
            *media_lines,
        )
    )


def do_answer(
    offer: SessionDescription,
    *,
    supported: tuple[str, ...] = ("PCMU", "PCMA"),
    local_direction: Direction = Direction.SENDRECV,
) -> tuple[SessionDescription, list[NegotiatedMedia]]:
    ports = [20000 + 2 * i for i in range(len(offer.media))]
    return answer(
        offer,
        local_address="203.0.113.5",
        local_ports=ports,
        session_id="77",
        session_version=1,
        supported=supported,
        local_direction=local_direction,
    )


# -- parse / serialize ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", [PJSUA, SIPP, LINPHONE, RFC4566], ids=["pjsua", "sipp", "linphone", "rfc4566"]
)
def test_round_trip_is_byte_exact(text: str) -> None:
    sdp = SessionDescription.parse(text)
    assert str(sdp) == text
    assert bytes(sdp) == text.encode()
    assert SessionDescription.parse(bytes(sdp)) == sdp


def test_pjsua_fields() -> None:
    sdp = SessionDescription.parse(PJSUA)
    assert sdp.version == 0
    o = sdp.origin
    assert (o.username, o.session_id, o.session_version) == ("-", "3912345678", 3912345678)
    assert (o.net_type, o.addr_type, o.address) == ("IN", "IP4", "192.168.1.20")
    assert sdp.session_name == "pjmedia"
    assert sdp.connection is None
    assert (sdp.timing.start, sdp.timing.stop) == (0, 0)
    assert sdp.attributes == (Attribute("X-nat", "0"),)
    assert sdp.other == (("b", "AS:84"),)
    (md,) = sdp.media
    assert (md.media, md.port, md.proto) == ("audio", 4000, "RTP/AVP")
    assert md.formats == ("96", "9", "8", "0", "101")
    assert md.connection == Connection("IN", "IP4", "192.168.1.20")
    assert md.rtcp == 4001
    assert md.direction is Direction.SENDRECV
    assert md.rtpmap[101].encoding == "telephone-event"
    assert md.rtpmap[96].clock_rate == 16000
    assert md.fmtp == {101: "0-16"}
    assert md.other == (("b", "AS:64000"), ("b", "TIAS:64000"))
    assert md.attribute("ssrc") == "1829404586 cname:2b1d1a6f5f6e3c7a"
    assert media_address(md, sdp) == ("192.168.1.20", 4000)


def test_rfc4566_example_fields() -> None:
    sdp = SessionDescription.parse(RFC4566)
    assert sdp.connection is not None
    assert sdp.connection.address == "224.2.17.12"
    assert sdp.connection.suffix == "/127"
    assert (sdp.timing.start, sdp.timing.stop) == (2873397496, 2873404696)
    assert sdp.direction is Direction.RECVONLY
    assert [k for k, _ in sdp.other] == ["i", "u", "e"]
    audio, video = sdp.media
    assert audio.direction is None
    assert effective_direction(audio, sdp) is Direction.RECVONLY
    assert media_address(video, sdp) == ("224.2.17.12", 51372)
    assert codecs(video) == [CodecRef(99, "h263-1998", 90000)]


def test_lf_only_input_is_accepted_and_written_with_crlf() -> None:
    lf = SIPP.replace("\r\n", "\n")
    sdp = SessionDescription.parse(lf)
    assert str(sdp) == SIPP
    # No trailing newline at all, mixed endings and trailing blank lines are tolerated too.
    assert SessionDescription.parse(lf.rstrip("\n")) == sdp
    assert SessionDescription.parse(SIPP + "\r\n\n") == sdp


def test_serializer_writes_canonical_order() -> None:
    # Lines out of RFC 4566 §5 order: t= before c=, b= after t=, media c= after a=.
    messy = "\n".join(
        [
            "v=0",
            "o=- 1 2 IN IP4 10.0.0.1",
            "s=x",
            "t=0 0",
            "b=AS:10",
            "c=IN IP4 10.0.0.1",
            "m=audio 5000 RTP/AVP 0",
            "a=ptime:30",
            "c=IN IP4 10.0.0.2",
        ]
    )
    out = str(SessionDescription.parse(messy)).split("\r\n")
    assert out[:9] == [
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=x",
        "c=IN IP4 10.0.0.1",
        "b=AS:10",
        "t=0 0",
        "m=audio 5000 RTP/AVP 0",
        "c=IN IP4 10.0.0.2",
        "a=ptime:30",
    ]


def test_repeat_and_unknown_lines_are_kept() -> None:
    text = crlf(
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=x",
        "t=3034423619 3042462419",
        "r=604800 3600 0 90000",
        "z=2882844526 -1h",
        "x=unknown",
        "m=audio 5000/2 RTP/AVP 0",
        "i=main audio",
    )
    sdp = SessionDescription.parse(text)
    assert sdp.timing.repeats == ("604800 3600 0 90000",)
    assert sdp.media[0].port_count == 2
    assert sdp.media[0].other == (("i", "main audio"),)
    assert str(sdp) == crlf(
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=x",
        "t=3034423619 3042462419",
        "r=604800 3600 0 90000",
        "z=2882844526 -1h",
        "x=unknown",
        "m=audio 5000/2 RTP/AVP 0",
        "i=main audio",
    )


def test_with_version_changes_only_the_origin_version() -> None:
    sdp = SessionDescription.parse(SIPP)
    newer = sdp.with_version(sdp.origin.session_version + 1)
    assert newer.origin.session_version == 2353687638
    assert newer.origin.session_id == sdp.origin.session_id
    assert newer.media == sdp.media
    assert "o=user1 53655765 2353687638 IN IP4 127.0.1.1\r\n" in str(newer)


# -- malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ("o=- 1 IN IP4 10.0.0.1", "o=- 1 IN IP4 10.0.0.1"),
        ("o=- 1 abc IN IP4 10.0.0.1", "o=- 1 abc IN IP4 10.0.0.1"),
        ("c=IN IP4", "c=IN IP4"),
        ("t=0", "t=0"),
        ("m=audio RTP/AVP 0", "m=audio RTP/AVP 0"),
        ("m=audio x RTP/AVP 0", "m=audio x RTP/AVP 0"),
        ("m=audio 70000 RTP/AVP 0", "m=audio 70000 RTP/AVP 0"),
        ("m=audio 5000 RTP/AVP PCMU", "m=audio 5000 RTP/AVP PCMU"),
        ("m=audio 5000 RTP/AVP 200", "m=audio 5000 RTP/AVP 200"),
        ("a=rtpmap:x PCMU/8000", "a=rtpmap:x PCMU/8000"),
        ("a=rtpmap:0 PCMU", "a=rtpmap:0 PCMU"),
        ("a=rtpmap:96 opus/fast", "a=rtpmap:96 opus/fast"),
        ("a=ptime:twenty", "a=ptime:twenty"),
        ("a=rtcp:abc", "a=rtcp:abc"),
        ("a=fmtp:x 0-15", "a=fmtp:x 0-15"),
        ("this is not sdp", "this is not sdp"),
        ("A=sendrecv", "A=sendrecv"),
    ],
)
def test_malformed_line_is_reported_with_the_line(bad_line: str, fragment: str) -> None:
    lines = ["v=0", "o=- 1 2 IN IP4 10.0.0.1", "s=-", "c=IN IP4 10.0.0.1", "t=0 0"]
    if bad_line.startswith(("o=", "c=", "t=")):
        lines = [bad_line if ln[0] == bad_line[0] else ln for ln in lines]
        lines.append("m=audio 5000 RTP/AVP 0")
    elif bad_line.startswith("m="):
        lines.append(bad_line)
    else:
        lines += ["m=audio 5000 RTP/AVP 0", bad_line]
    with pytest.raises(RemoteProtocolError) as info:
        SessionDescription.parse(crlf(*lines))
    assert info.value.status == 400
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("o=- 1 2 IN IP4 10.0.0.1\r\nv=0\r\ns=-\r\n", "first line must be v="),
        ("v=0\r\ns=-\r\nt=0 0\r\n", "missing o="),
        ("v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\nt=0 0\r\n", "missing s="),
        ("v=0\r\nv=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\n", "second v="),
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nr=1 2 3\r\n", "r= before any t="),
    ],
)
def test_structural_errors(text: str, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment):
        SessionDescription.parse(text)


def test_non_utf8_bytes_are_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        SessionDescription.parse(b"v=0\r\ns=\xff\r\n")


def test_missing_connection_is_an_error_when_resolving() -> None:
    sdp = SessionDescription.parse(
        crlf("v=0", "o=- 1 2 IN IP4 h", "s=-", "t=0 0", "m=audio 1 RTP/AVP 0")
    )
    with pytest.raises(RemoteProtocolError, match="no c= line"):
        media_address(sdp.media[0], sdp)


# -- codecs --------------------------------------------------------------------------------------


def test_static_payload_types_are_implied_without_rtpmap() -> None:
    sdp = offer_with("m=audio 5000 RTP/AVP 8 0 96 18", "a=rtpmap:96 telephone-event/8000")
    assert codecs(sdp.media[0]) == [
        CodecRef(8, "PCMA", 8000),
        CodecRef(0, "PCMU", 8000),
        CodecRef(96, "telephone-event", 8000),
        CodecRef(18, "G729", 8000),
    ]


def test_dynamic_payload_type_without_rtpmap_is_left_out() -> None:
    sdp = offer_with("m=audio 5000 RTP/AVP 97 0")
    assert [c.payload_type for c in codecs(sdp.media[0])] == [0]


def test_rtpmap_channels_and_fmtp() -> None:
    md = SessionDescription.parse(LINPHONE).media[0]
    opus = codecs(md)[0]
    assert (opus.name, opus.clock_rate, opus.channels, opus.fmtp) == (
        "opus",
        48000,
        2,
        "useinbandfec=1",
    )
    g729 = next(c for c in codecs(md) if c.payload_type == 18)
    assert g729.fmtp == "annexb=yes"


def test_non_rtp_media_has_no_codecs() -> None:
    sdp = offer_with("m=image 5000 udptl t38")
    assert sdp.media[0].formats == ("t38",)
    assert codecs(sdp.media[0]) == []


# -- answer --------------------------------------------------------------------------------------


def test_answer_to_pjsua_picks_first_supported_in_offer_order() -> None:
    offer = SessionDescription.parse(PJSUA)
    sdp, (nm,) = do_answer(offer)
    # speex and G722 are not supported; PCMA comes before PCMU in the offer.
    assert (nm.codec, nm.payload_type, nm.clock_rate) == ("PCMA", 8, 8000)
    assert nm.telephone_event_pt == 101
    assert nm.ptime == 20
    assert nm.direction is Direction.SENDRECV
    assert (nm.remote_address, nm.remote_port) == ("192.168.1.20", 4000)
    assert nm.index == 0
    md = sdp.media[0]
    assert md.formats == ("8", "101")
    assert md.port == 20000
    assert md.rtpmap[101].encoding == "telephone-event"
    assert md.fmtp[101] == "0-16"
    assert md.direction is Direction.SENDRECV
    assert media_address(md, sdp) == ("203.0.113.5", 20000)
    assert sdp.origin.session_id == "77"
    assert sdp.origin.session_version == 1
    # The answer is well-formed SDP in its own right.
    assert SessionDescription.parse(bytes(sdp)) == sdp


def test_answer_prefers_offer_order_over_our_order() -> None:
    offer = offer_with("m=audio 5000 RTP/AVP 0 8")
    _, (nm,) = do_answer(offer, supported=("PCMA", "PCMU"))
    assert nm.codec == "PCMU"


def test_answer_to_sipp() -> None:
    sdp, (nm,) = do_answer(SessionDescription.parse(SIPP))
    assert (nm.codec, nm.payload_type, nm.telephone_event_pt) == ("PCMU", 0, None)
    assert sdp.media[0].formats == ("0",)
    assert (nm.remote_address, nm.remote_port) == ("127.0.1.1", 6000)


def test_answer_rejects_video_with_port_zero() -> None:
    offer = SessionDescription.parse(LINPHONE)
    sdp, negotiated = do_answer(offer)
    assert [nm.index for nm in negotiated] == [0]
    audio, video = sdp.media
    assert audio.formats == ("0", "100")  # telephone-event at 8000 Hz, not 48000 or 16000
    assert negotiated[0].telephone_event_pt == 100
    assert (video.media, video.port, video.proto, video.formats) == ("video", 0, "RTP/AVP", ("96",))
    assert "m=video 0 RTP/AVP 96\r\n" in str(sdp)


def test_answer_mirrors_t_line_and_m_line_count() -> None:
    offer = SessionDescription.parse(RFC4566)
    sdp, negotiated = do_answer(offer)
    assert sdp.timing == offer.timing
    assert len(sdp.media) == 2
    assert sdp.media[1].port == 0
    # Session-level recvonly in the offer: we only send.
    assert negotiated[0].direction is Direction.SENDONLY
    assert negotiated[0].remote_address == "224.2.17.12"


@pytest.mark.parametrize("pt", [96, 101])
def test_telephone_event_payload_type_comes_from_offer(pt: int) -> None:
    offer = offer_with(f"m=audio 5000 RTP/AVP 0 {pt}", f"a=rtpmap:{pt} telephone-event/8000")
    sdp, (nm,) = do_answer(offer)
    assert nm.telephone_event_pt == pt
    assert sdp.media[0].formats == ("0", str(pt))
    assert sdp.media[0].rtpmap[pt].encoding == "telephone-event"


def test_ptime_is_echoed_from_offer() -> None:
    offer = offer_with("m=audio 5000 RTP/AVP 8", "a=ptime:30")
    sdp, (nm,) = do_answer(offer)
    assert nm.ptime == 30
    assert sdp.media[0].ptime == 30
    _, (default,) = do_answer(offer_with("m=audio 5000 RTP/AVP 8"))
    assert default.ptime == 20


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendrecv", Direction.SENDRECV),
        ("sendonly", Direction.RECVONLY),
        ("recvonly", Direction.SENDONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_direction_mapping(offered: str, answered: Direction) -> None:
    sdp, (nm,) = do_answer(offer_with("m=audio 5000 RTP/AVP 0", f"a={offered}"))
    assert sdp.media[0].direction is answered
    assert nm.direction is answered
    # The same through a session-level attribute.
    sdp2, (nm2,) = do_answer(offer_with("m=audio 5000 RTP/AVP 0", session=(f"a={offered}",)))
    assert sdp2.media[0].direction is answered
    assert nm2.direction is answered


def test_media_level_direction_overrides_session_level() -> None:
    offer = offer_with("m=audio 5000 RTP/AVP 0", "a=sendrecv", session=("a=sendonly",))
    assert effective_direction(offer.media[0], offer) is Direction.SENDRECV
    _, (nm,) = do_answer(offer)
    assert nm.direction is Direction.SENDRECV


def test_local_direction_is_intersected() -> None:
    _, (nm,) = do_answer(offer_with("m=audio 5000 RTP/AVP 0"), local_direction=Direction.SENDONLY)
    assert nm.direction is Direction.SENDONLY
    _, (nm2,) = do_answer(
        offer_with("m=audio 5000 RTP/AVP 0", "a=sendonly"), local_direction=Direction.SENDONLY
    )
    assert nm2.direction is Direction.INACTIVE


def test_media_level_connection_overrides_session_level() -> None:
    offer = offer_with("m=audio 5000 RTP/AVP 0", "c=IN IP4 192.0.2.99")
    assert media_address(offer.media[0], offer) == ("192.0.2.99", 5000)
    _, (nm,) = do_answer(offer)
    assert nm.remote_address == "192.0.2.99"


def test_no_common_codec_is_488() -> None:
    offer = offer_with("m=audio 5000 RTP/AVP 18 9", "a=rtpmap:18 G729/8000")
    with pytest.raises(RemoteProtocolError) as info:
        do_answer(offer)
    assert info.value.status == 488


def test_pcmu_at_a_wrong_clock_rate_is_not_pcmu() -> None:
    offer = offer_with("m=audio 5000 RTP/AVP 96", "a=rtpmap:96 PCMU/16000")
    with pytest.raises(RemoteProtocolError) as info:
        do_answer(offer)
    assert info.value.status == 488


def test_no_audio_at_all_is_488() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        do_answer(offer_with("m=video 5000 RTP/AVP 96", "a=rtpmap:96 VP8/90000"))
    assert info.value.status == 488


def test_secure_profile_is_rejected() -> None:
    offer = offer_with("m=audio 5000 RTP/SAVP 0", "m=audio 5002 RTP/AVP 8")
    sdp, (nm,) = do_answer(offer)
    assert sdp.media[0].port == 0
    assert (nm.index, nm.codec) == (1, "PCMA")
    assert sdp.media[1].port == 20002


def test_stream_offered_with_port_zero_stays_rejected() -> None:
    offer = offer_with("m=audio 0 RTP/AVP 0", "m=audio 5002 RTP/AVP 0")
    sdp, (nm,) = do_answer(offer)
    assert sdp.media[0].port == 0
    assert nm.index == 1


def test_answer_needs_one_port_per_m_line() -> None:
    with pytest.raises(LocalProtocolError):
        answer(
            SessionDescription.parse(LINPHONE),
            local_address="10.0.0.1",
            local_ports=[4000],
            session_id="1",
            session_version=1,
        )


def test_ipv6_answer_uses_ip6() -> None:
    sdp, _ = answer(
        SessionDescription.parse(SIPP),
        local_address="2001:db8::5",
        local_ports=[4000],
        session_id="1",
        session_version=1,
    )
    assert sdp.connection == Connection("IN", "IP6", "2001:db8::5")
    assert sdp.origin.addr_type == "IP6"


# -- hold ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_lines", "session", "held"),
    [
        (("m=audio 5000 RTP/AVP 0",), (), False),
        (("m=audio 5000 RTP/AVP 0", "a=sendrecv"), (), False),
        (("m=audio 5000 RTP/AVP 0", "a=recvonly"), (), False),
        (("m=audio 5000 RTP/AVP 0", "a=sendonly"), (), True),
        (("m=audio 5000 RTP/AVP 0", "a=inactive"), (), True),
        (("m=audio 5000 RTP/AVP 0", "c=IN IP4 0.0.0.0"), (), True),
        (("m=audio 5000 RTP/AVP 0",), ("a=sendonly",), True),
        (("m=audio 5000 RTP/AVP 0", "a=sendrecv"), ("a=sendonly",), False),
    ],
)
def test_is_hold(media_lines: tuple[str, ...], session: tuple[str, ...], held: bool) -> None:
    sdp = offer_with(*media_lines, session=session)
    assert is_hold(sdp.media[0], sdp) is held


def test_is_hold_with_session_level_null_address() -> None:
    sdp = SessionDescription.parse(
        crlf(
            "v=0", "o=- 1 2 IN IP4 h", "s=-", "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 5000 RTP/AVP 0"
        )
    )
    assert is_hold(sdp.media[0], sdp)
    assert not is_hold(sdp.media[0])  # without the session, only the m-line counts


# -- make_offer / parse_answer -------------------------------------------------------------------


def our_offer(**kw: object) -> SessionDescription:
    return make_offer(
        local_address="203.0.113.5",
        local_port=30000,
        session_id="900",
        session_version=1,
        **kw,  # type: ignore[arg-type]
    )


def test_make_offer_default() -> None:
    offer = our_offer()
    assert str(offer) == crlf(
        "v=0",
        "o=- 900 1 IN IP4 203.0.113.5",
        "s=-",
        "c=IN IP4 203.0.113.5",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    )


def test_make_offer_rejects_bad_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        our_offer(codec_names=("opus",))
    with pytest.raises(LocalProtocolError):
        our_offer(telephone_event_pt=8)
    with pytest.raises(LocalProtocolError):
        our_offer(codec_names=(), telephone_event_pt=None)


def test_offer_answer_between_two_of_us() -> None:
    offer = our_offer(codec_names=("PCMA", "PCMU"))
    ans, theirs = do_answer(offer)
    ours = parse_answer(offer, ans)
    assert len(ours) == len(theirs) == 1
    assert (ours[0].codec, ours[0].payload_type, ours[0].telephone_event_pt) == ("PCMA", 8, 101)
    assert (ours[0].remote_address, ours[0].remote_port) == ("203.0.113.5", 20000)
    assert (theirs[0].remote_address, theirs[0].remote_port) == ("203.0.113.5", 30000)


def peer_answer(*media_lines: str) -> SessionDescription:
    return SessionDescription.parse(
        crlf(
            "v=0", "o=bob 5 5 IN IP4 192.0.2.7", "s=-", "c=IN IP4 192.0.2.7", "t=0 0", *media_lines
        )
    )


def test_parse_answer_reads_codec_ptime_and_dtmf() -> None:
    ans = peer_answer(
        "m=audio 40000 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000", "a=ptime:30"
    )
    (nm,) = parse_answer(our_offer(), ans)
    assert (nm.codec, nm.payload_type, nm.ptime, nm.telephone_event_pt) == ("PCMA", 8, 30, 101)
    assert (nm.remote_address, nm.remote_port) == ("192.0.2.7", 40000)
    assert nm.direction is Direction.SENDRECV


def test_parse_answer_without_telephone_event() -> None:
    (nm,) = parse_answer(our_offer(), peer_answer("m=audio 40000 RTP/AVP 0"))
    assert (nm.codec, nm.telephone_event_pt, nm.ptime) == ("PCMU", None, 20)


@pytest.mark.parametrize(
    ("answered", "ours"),
    [
        ("sendrecv", Direction.SENDRECV),
        ("recvonly", Direction.SENDONLY),
        ("sendonly", Direction.RECVONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_parse_answer_direction_is_seen_from_our_side(answered: str, ours: Direction) -> None:
    (nm,) = parse_answer(our_offer(), peer_answer("m=audio 40000 RTP/AVP 0", f"a={answered}"))
    assert nm.direction is ours


def test_parse_answer_rejects_incompatible_direction() -> None:
    offer = our_offer(direction=Direction.SENDONLY)
    with pytest.raises(RemoteProtocolError, match="sendrecv") as info:
        parse_answer(offer, peer_answer("m=audio 40000 RTP/AVP 0", "a=sendrecv"))
    assert info.value.status == 488
    (nm,) = parse_answer(offer, peer_answer("m=audio 40000 RTP/AVP 0", "a=recvonly"))
    assert nm.direction is Direction.SENDONLY


@pytest.mark.parametrize(
    ("media_lines", "fragment"),
    [
        (("m=audio 40000 RTP/AVP 18",), "G729/8000"),
        (("m=audio 40000 RTP/AVP 96", "a=rtpmap:96 opus/48000/2"), "opus/48000"),
        (("m=audio 40000 RTP/AVP 0", "m=video 0 RTP/AVP 96"), "2 m-lines"),
        ((), "0 m-lines"),
        (("m=video 40000 RTP/AVP 0",), "'video'"),
        (("m=audio 0 RTP/AVP 0",), "no audio stream"),
        (("m=audio 40000 RTP/AVP 101", "a=rtpmap:101 telephone-event/8000"), "no audio codec"),
    ],
)
def test_parse_answer_rejects_bad_answers(media_lines: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment) as info:
        parse_answer(our_offer(), peer_answer(*media_lines))
    assert info.value.status == 488


def test_parse_answer_rejects_accepting_a_disabled_stream() -> None:
    offer = SessionDescription.parse(str(our_offer()) + "m=video 0 RTP/AVP 96\r\n")
    ans = peer_answer("m=audio 40000 RTP/AVP 0", "m=video 5000 RTP/AVP 96", "a=rtpmap:96 VP8/90000")
    with pytest.raises(RemoteProtocolError, match="port 0"):
        parse_answer(offer, ans)


def test_media_description_can_be_built_directly() -> None:
    md = MediaDescription("audio", 1234, "RTP/AVP", ("0",), attributes=(Attribute("ptime", "40"),))
    assert md.lines() == ["m=audio 1234 RTP/AVP 0", "a=ptime:40"]
    assert md.ptime == 40
    assert md.maxptime is None
    assert md.rtcp is None


def test_session_id_must_be_numeric() -> None:
    """RFC 4566 §5.2: a hex or alphanumeric o= session id is refused before it goes out."""
    from softswitch.sip.errors import LocalProtocolError
    from softswitch.sip.sdp import make_offer

    with pytest.raises(LocalProtocolError):
        make_offer(
            local_address="127.0.0.1", local_port=4000, session_id="acf58005", session_version=1
        )
    offer = make_offer(
        local_address="127.0.0.1", local_port=4000, session_id="123", session_version=1
    )
    assert offer.origin.session_id == "123"


def test_the_b2bua_derives_numeric_session_ids() -> None:
    from softswitch.b2bua.service import numeric_id

    ids = {numeric_id(f"{n:016x}") for n in range(200)}
    assert len(ids) == 200 and all(i.isdigit() for i in ids)


# -- translating between the G.711 laws ---------------------------------------------------


def test_with_other_law_adds_pcma_after_the_offerers_codecs_before_events() -> None:
    from softswitch.sip.sdp import with_other_law

    offer = offer_with(
        "m=audio 4000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
    )
    out, added = with_other_law(offer, 0)
    assert added == 8
    md = SessionDescription.parse(bytes(out)).media[0]
    assert md.formats == ("0", "8", "101")
    assert [c.name for c in codecs(md)] == ["PCMU", "PCMA", "telephone-event"]


def test_with_other_law_leaves_offers_with_both_or_neither_law() -> None:
    from softswitch.sip.sdp import with_other_law

    both = SessionDescription.parse(PJSUA)
    assert with_other_law(both, 0) == (both, None)
    neither = offer_with("m=audio 4000 RTP/AVP 9", "a=rtpmap:9 G722/8000")
    assert with_other_law(neither, 0) == (neither, None)
    # 8 already means something else in this offer: nothing is added
    taken = offer_with("m=audio 4000 RTP/AVP 0 8", "a=rtpmap:8 opus/48000/2")
    assert with_other_law(taken, 0) == (taken, None)


def test_as_law_renames_the_one_law_and_keeps_everything_else() -> None:
    from softswitch.sip.sdp import as_law, chosen_codec

    answer_b = offer_with(
        "m=audio 5000 RTP/AVP 8 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=ptime:20",
    )
    toward_a = SessionDescription.parse(bytes(as_law(answer_b, 0, "pcmu")))
    md = toward_a.media[0]
    assert md.formats == ("0", "101") and md.ptime == 20
    assert chosen_codec(md) == CodecRef(0, "PCMU", 8000)
    assert as_law(answer_b, 0, "pcma") is answer_b  # already that law
