"""Header fields: names, the ordered list, comma lists and the structured values (RFC 3261 §7.3)."""

from __future__ import annotations

import pytest

from softswitch.sip.errors import RemoteProtocolError
from softswitch.sip.headers import (
    COMPACT,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    parse_header_params,
    split_commas,
)
from softswitch.sip.message import Request, parse_message
from softswitch.sip.uri import SipUri, TelUri

# -- names --------------------------------------------------------------------------------------

RFC3261_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
}


@pytest.mark.parametrize(("short", "long"), sorted(RFC3261_COMPACT.items()))
def test_rfc3261_compact_forms(short: str, long: str) -> None:
    """§7.3.3: the compact form is the same field as the long one, in either case."""
    assert canonical_name(short) == long
    assert canonical_name(short.upper()) == long
    h = Headers([(short, "x")])
    assert list(h) == [(long, "x")]
    assert h.get(long) == h.get(short) == h.get(long.upper()) == "x"


def test_later_compact_forms() -> None:
    assert COMPACT["o"] == "Event" and COMPACT["u"] == "Allow-Events"
    assert COMPACT["r"] == "Refer-To" and COMPACT["b"] == "Referred-By"
    assert COMPACT["x"] == "Session-Expires"
    for short, long in COMPACT.items():
        assert canonical_name(short) == long


def test_names_are_case_insensitive_and_written_canonically() -> None:
    h = Headers([("cAlL-iD", "1@h"), ("CSEQ", "1 INVITE"), ("www-authenticate", "Digest x")])
    assert [n for n, _ in h] == ["Call-ID", "CSeq", "WWW-Authenticate"]
    assert h.get("call-id") == h.get("CALL-ID") == h.get("i") == "1@h"
    assert "cseq" in h and "CSeq" in h and "Via" not in h
    assert 42 not in h


def test_unknown_names_keep_their_spelling_but_match_in_any_case() -> None:
    h = Headers([("X-Custom-Thing", "1")])
    assert list(h) == [("X-Custom-Thing", "1")]
    assert h.get("x-custom-thing") == "1"
    assert canonical_name("X-Other") == "X-Other"


# -- comma-separated lists (§7.3.1) -------------------------------------------------------------


def test_split_commas_plain() -> None:
    assert split_commas("a, b ,c") == ["a", "b", "c"]
    assert split_commas("  single  ") == ["single"]
    assert split_commas("") == []
    assert split_commas("   ") == []


def test_split_commas_keeps_quoted_commas() -> None:
    value = '"Watson, Thomas" <sip:t@example.org>, "A \\"quoted, comma\\"" <sip:a@b>'
    assert split_commas(value) == [
        '"Watson, Thomas" <sip:t@example.org>',
        '"A \\"quoted, comma\\"" <sip:a@b>',
    ]


def test_split_commas_keeps_commas_inside_angle_brackets() -> None:
    value = "<sip:a@b?Subject=x,y>;q=0.5, <sip:c@d;p=1,2>"
    assert split_commas(value) == ["<sip:a@b?Subject=x,y>;q=0.5", "<sip:c@d;p=1,2>"]


def test_split_commas_empty_elements_are_kept_for_validation() -> None:
    assert split_commas("a,,b") == ["a", "", "b"]


def test_split_commas_unterminated_quote_is_the_peers_fault() -> None:
    with pytest.raises(RemoteProtocolError):
        split_commas('"open, <sip:a@b>, c')


def test_several_rows_equal_one_comma_separated_row() -> None:
    """§7.3.1: a list field may be split over rows or joined with commas; same meaning."""
    rows = Headers([("Via", "SIP/2.0/UDP a"), ("Route", "<sip:r1>"), ("Via", "SIP/2.0/UDP b")])
    joined = Headers([("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("Route", "<sip:r1>")])
    assert rows.get_all("Via") == joined.get_all("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert rows.rows("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert joined.rows("Via") == ["SIP/2.0/UDP a, SIP/2.0/UDP b"]


def test_same_equivalence_through_the_parser() -> None:
    def contacts(rows: str) -> list[str]:
        msg = parse_message(
            (
                "REGISTER sip:example.com SIP/2.0\r\n"
                "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                "From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n"
                f"Call-ID: c\r\nCSeq: 1 REGISTER\r\n{rows}Content-Length: 0\r\n\r\n"
            ).encode()
        )
        assert isinstance(msg, Request)
        return [str(c) for c in msg.contacts()]

    split = contacts('Contact: "A, B" <sip:a@h1>\r\nm: <sip:a@h2>;q=0.1\r\n')
    joined = contacts('Contact: "A, B" <sip:a@h1>, <sip:a@h2>;q=0.1\r\n')
    assert split == joined == ['"A, B" <sip:a@h1>', "<sip:a@h2>;q=0.1"]


def test_non_list_fields_are_not_split() -> None:
    """Authorization-type values carry commas inside one value (§7.3.1 exceptions)."""
    value = 'Digest username="a", realm="b", nonce="c"'
    h = Headers([("Authorization", value), ("Subject", "hello, world")])
    assert h.get_all("Authorization") == [value]
    assert h.get_all("Subject") == ["hello, world"]


# -- folding ------------------------------------------------------------------------------------


def test_folded_rows_are_unfolded_by_the_parser() -> None:
    raw = (
        b"OPTIONS sip:b@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h\r\n ;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>\r\n\t;tag=1\r\n"
        b"To: <sip:b@example.com>\r\n"
        b"Call-ID: c\r\nCSeq: 1\r\n  \t OPTIONS\r\n"
        b"Subject: one\r\n two\r\n\tthree\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(raw)
    assert msg.top_via.branch == "z9hG4bK1"
    assert msg.from_.tag == "1"
    assert (msg.cseq.seq, msg.cseq.method) == (1, "OPTIONS")
    assert msg.headers.get("Subject") == "one two three"
    assert b"\r\n " not in bytes(msg) and b"\r\n\t" not in bytes(msg)


# -- editing ------------------------------------------------------------------------------------


def test_add_appends() -> None:
    h = Headers()
    h.add("v", "1")
    h.add("To", "t")
    h.add("Via", "2")
    assert list(h) == [("Via", "1"), ("To", "t"), ("Via", "2")]
    assert len(h) == 3


def test_prepend_goes_before_the_first_row_of_the_same_field() -> None:
    h = Headers([("Max-Forwards", "70"), ("Via", "old1"), ("To", "t"), ("Via", "old2")])
    h.prepend("v", "new")
    assert list(h) == [
        ("Max-Forwards", "70"),
        ("Via", "new"),
        ("Via", "old1"),
        ("To", "t"),
        ("Via", "old2"),
    ]
    assert h.get_all("Via") == ["new", "old1", "old2"]


def test_prepend_without_the_field_goes_on_top() -> None:
    h = Headers([("To", "t")])
    h.prepend("Record-Route", "<sip:p;lr>")
    assert list(h) == [("Record-Route", "<sip:p;lr>"), ("To", "t")]


def test_pop_first_takes_one_value_of_a_comma_row() -> None:
    h = Headers([("Route", "<sip:r1;lr>, <sip:r2;lr>"), ("Route", "<sip:r3;lr>")])
    assert h.pop_first("route") == "<sip:r1;lr>"
    assert h.rows("Route") == ["<sip:r2;lr>", "<sip:r3;lr>"]
    assert h.pop_first("Route") == "<sip:r2;lr>"
    assert h.pop_first("Route") == "<sip:r3;lr>"
    assert h.pop_first("Route") is None
    assert "Route" not in h


def test_pop_first_keeps_quoted_commas_together() -> None:
    h = Headers([("Via", 'SIP/2.0/UDP a;x="1,2", SIP/2.0/UDP b')])
    assert h.pop_first("Via") == 'SIP/2.0/UDP a;x="1,2"'
    assert h.get_all("Via") == ["SIP/2.0/UDP b"]


def test_set_replaces_every_row_at_the_first_position() -> None:
    h = Headers([("To", "t"), ("Contact", "a"), ("From", "f"), ("m", "b")])
    h.set("contact", "c")
    assert list(h) == [("To", "t"), ("Contact", "c"), ("From", "f")]
    h.set("Expires", "60")
    assert list(h)[-1] == ("Expires", "60")


def test_remove_and_rows() -> None:
    h = Headers([("Via", "1"), ("To", "t"), ("v", "2")])
    assert h.rows("VIA") == ["1", "2"]
    h.remove("via")
    assert list(h) == [("To", "t")]
    h.remove("Via")  # absent: nothing happens
    assert h.get("Via") is None and h.get("Via", "d") == "d"


def test_copy_is_independent() -> None:
    h = Headers([("To", "t")])
    dup = h.copy()
    dup.add("From", "f")
    dup.set("To", "u")
    assert list(h) == [("To", "t")]
    assert "Headers" in repr(h)


# -- parameters ---------------------------------------------------------------------------------


def test_header_params() -> None:
    params = parse_header_params(' ; tag = 1 ;lr; Q=0.5 ;x="a;b\\"c"')
    assert params == {"tag": "1", "lr": None, "q": "0.5", "x": '"a;b\\"c"'}
    assert parse_header_params("") == {}


@pytest.mark.parametrize(
    "text", [";", ";;a", "x", ";a=", ";a=b c", ';a="open', ";a b=1", ';a="x"y']
)
def test_malformed_header_params(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_header_params(text)


# -- name-addr / addr-spec ----------------------------------------------------------------------


def test_name_addr_with_quoted_display() -> None:
    na = NameAddr.parse('"Alice \\"Al\\" Smith" <sip:alice@atlanta.com;transport=tcp>;tag=88sja8x')
    assert na.display == 'Alice "Al" Smith'
    assert isinstance(na.uri, SipUri) and na.uri.params == {"transport": "tcp"}
    assert na.params == {"tag": "88sja8x"} and na.tag == "88sja8x"
    assert str(na) == '"Alice \\"Al\\" Smith" <sip:alice@atlanta.com;transport=tcp>;tag=88sja8x'
    assert NameAddr.parse(str(na)) == na


def test_name_addr_with_token_display() -> None:
    na = NameAddr.parse("Bob  Smith <sip:bob@biloxi.com>")
    assert na.display == "Bob Smith"
    assert NameAddr.parse("caller<sip:c@h>").display == "caller"


def test_addr_spec_params_belong_to_the_header() -> None:
    """§20.10: without <>, every ;param after the URI is a header parameter."""
    na = NameAddr.parse("sip:alice@atlanta.com;tag=1;transport=tcp")
    assert na.display is None
    assert isinstance(na.uri, SipUri) and na.uri.params == {}
    assert na.params == {"tag": "1", "transport": "tcp"}
    assert str(na) == "<sip:alice@atlanta.com>;tag=1;transport=tcp"


def test_name_addr_other_schemes() -> None:
    na = NameAddr.parse("<tel:+15550123>;tag=x")
    assert isinstance(na.uri, TelUri)
    with pytest.raises(RemoteProtocolError) as info:
        na.sip_uri  # noqa: B018
    assert info.value.status == 416
    assert NameAddr.parse("<sip:a@b>").sip_uri.host == "b"


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b>',
        '"display" sip:a@b',  # quoted display without <>
        "<sip:a@b",  # missing '>'
        "Joe, Bloggs <sip:a@b>",  # non-token display must be quoted
        "< sip:a@b >",  # spaces inside <>
        "sip:a@b?subject=x",  # '?' needs <>
        "",
    ],
)
def test_malformed_name_addr(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        NameAddr.parse(text)


# -- Via ----------------------------------------------------------------------------------------


def test_via_with_lws_everywhere() -> None:
    via = Via.parse("SIP  /   2.0 / udp   Host.Example.COM : 5070 ;  branch = z9hG4bK1 ;rport")
    assert via == Via("UDP", "host.example.com", 5070, {"branch": "z9hG4bK1", "rport": None})
    assert via.branch == "z9hG4bK1"
    assert via.sent_by == ("host.example.com", 5070)
    assert str(via) == "SIP/2.0/UDP host.example.com:5070;branch=z9hG4bK1;rport"


def test_via_ipv6_and_received() -> None:
    via = Via.parse("SIP/2.0/TLS [2001:DB8::9]:5061;branch=z9hG4bKx;received=192.0.2.1;rport=1")
    assert (via.transport, via.host, via.port) == ("TLS", "[2001:db8::9]", 5061)
    assert via.params["received"] == "192.0.2.1" and via.params["rport"] == "1"
    assert Via.parse(str(via)) == via


def test_via_without_port_or_branch() -> None:
    via = Via.parse("SIP/2.0/UDP iftgw.example.com")
    assert (via.port, via.branch, via.params) == (None, None, {})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/3.0/UDP host",
        "SIP/2.0/UDP host:65536",
        "SIP/2.0/UDP host:123456",
        "SIP/2.0/UDP ho st",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host;branch=a b",
    ],
)
def test_malformed_via(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Via.parse(text)


# -- CSeq ---------------------------------------------------------------------------------------


def test_cseq() -> None:
    assert CSeq.parse("0009  INVITE") == CSeq(9, "INVITE")
    assert CSeq.parse(" 4294967295 ACK ") == CSeq(2**32 - 1, "ACK")
    assert str(CSeq(1, "BYE")) == "1 BYE"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "INVITE",
        "1 INVITE x",
        "-1 INVITE",
        "4294967296 INVITE",
        "36893488147419103232 REGISTER",
        "\u00b2 INVITE",  # superscript two
        "\u0661 INVITE",  # Arabic-Indic one
        "1 INV<ITE",
    ],
)
def test_malformed_cseq(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        CSeq.parse(text)
