"""The 49 RFC 4475 torture messages through the parser (table in rfc4475_expectations.py)."""

from __future__ import annotations

import hashlib

import pytest

from softswitch.sip.errors import RemoteProtocolError
from softswitch.sip.headers import NameAddr, Via
from softswitch.sip.message import MalformedMessage, Request, Response, parse_message
from softswitch.sip.uri import AbsoluteUri, SipUri, parse_uri

from .rfc4475_expectations import DATA_DIR, EXPECTATIONS, message_bytes


def parse(name: str) -> Request | Response:
    return parse_message(message_bytes(name))


def request(name: str) -> Request:
    msg = parse(name)
    assert isinstance(msg, Request)
    return msg


def response(name: str) -> Response:
    msg = parse(name)
    assert isinstance(msg, Response)
    return msg


def rejection(name: str) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as info:
        parse(name)
    return info.value


# -- the table itself ---------------------------------------------------------------------------


def test_table_covers_every_message_of_the_archive() -> None:
    files = {p.stem for p in DATA_DIR.glob("*.dat")}
    assert len(files) == 49
    assert set(EXPECTATIONS) == files


def test_messages_are_the_byte_exact_archive_copies() -> None:
    sums = {}
    for line in (DATA_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    assert len(sums) == 49
    for name, digest in sums.items():
        assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() == digest, name


def test_sections_are_distinct_and_from_rfc4475_section_3() -> None:
    sections = [e.section for e in EXPECTATIONS.values()]
    assert len(set(sections)) == len(sections)
    assert all(s.startswith("3.") for s in sections)


def test_table_is_consistent() -> None:
    for name, e in EXPECTATIONS.items():
        assert e.rfc and e.title, name
        if e.parser == "rejects":
            assert e.kind == "request" and e.parser_status == e.switch, name
        else:
            assert e.parser_status is None, name
        if e.parser == "drops" or e.kind == "response":
            assert e.switch is None, name


# -- the parser column --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_parser_outcome(name: str) -> None:
    e = EXPECTATIONS[name]
    data = message_bytes(name)
    if e.parser == "parses":
        msg = parse_message(data)
        assert isinstance(msg, Request if e.kind == "request" else Response)
        wire = bytes(msg)
        again = parse_message(wire)
        assert bytes(again) == wire
        return
    with pytest.raises(MalformedMessage) as info:
        parse_message(data)
    exc = info.value
    if e.parser == "drops":
        assert exc.is_request is False
        assert exc.error_response() is None
        return
    assert exc.is_request is True
    assert exc.status == e.parser_status
    resp = exc.error_response()
    assert resp is not None and resp.status == e.parser_status
    assert resp.headers.rows("Via"), "the answer must be routable by the request's Via"
    # The answer itself is a well-formed message on the wire.
    assert b"\r\n\r\n" in bytes(resp)


# -- 3.1.1 valid messages: what the parser must have read ---------------------------------------


def test_wsinv_fields() -> None:
    m = request("wsinv")
    assert m.method == "INVITE"
    assert isinstance(m.uri, SipUri) and m.uri.params == {"unknownparam": None}
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")  # "0009\r\n  INVITE", folded
    assert m.max_forwards == 68  # "0068"
    assert m.from_.display == 'J Rosenberg \\"'  # quoted-pairs \\ and \" unescaped
    assert m.from_.tag == "98asjd8"
    assert m.to.tag == "1918181833n"
    assert m.headers.get("Subject") == ""  # "s :" empty, compact form
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    vias = m.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    (contact,) = m.contacts()
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    (route,) = m.routes()
    assert isinstance(route.uri, SipUri)
    assert route.uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    assert len(m.body) == 150


def test_intmeth_fields() -> None:
    m = request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method and m.cseq.method == method
    uri = m.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com" and uri.params == {}
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"


def test_esc01_unescaped_user_parts() -> None:
    m = request("esc01")
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "sips%3Auser%40example.com"  # kept as written on the wire
    assert m.uri.aor == "sips:user@example.com@example.net"
    assert m.uri.host == "example.net"
    to_uri = m.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.aor == "user@example.com"
    assert to_uri.equivalent(parse_uri("sip:user@example.com"))
    from_uri = m.from_.uri
    assert isinstance(from_uri, SipUri) and from_uri.aor == "I have spaces@example.net"
    (contact,) = m.contacts()
    assert isinstance(contact.uri, SipUri)
    # ";%6C%72;n%61me=v%61lue%25%34%31" is ";lr;name=value%41" with the '%' itself escaped.
    assert contact.uri.equivalent(parse_uri("sip:caller@host5.example.net;lr;name=value%2541"))
    assert not contact.uri.equivalent(parse_uri("sip:caller@host5.example.net;name=valueA"))
    assert not contact.uri.equivalent(parse_uri("sip:caller@host5.example.net;name=value"))


def test_escnull_keeps_the_nul_inside_the_user() -> None:
    m = request("escnull")
    to_uri = m.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.aor == "null-\x00-null@example.com"
    contacts = [c.uri for c in m.contacts()]
    assert [c.aor for c in contacts if isinstance(c, SipUri)] == [
        "\x00@host5.example.com",
        "\x00\x00@host5.example.com",
    ]
    assert not contacts[0].equivalent(contacts[1])  # two distinct bindings


def test_esc02_percent_is_not_an_escape_outside_uris() -> None:
    m = request("esc02")
    assert m.method == "RE%47IST%45R" and m.method != "REGISTER"
    assert m.to.display == "%Z%45"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is an extension header of its own, not a Contact.
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert [str(c.uri) for c in m.contacts()] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]


def test_lwsdisp_token_display_name_without_space() -> None:
    m = request("lwsdisp")
    assert m.from_.display == "caller"
    assert str(m.from_.uri) == "sip:caller@example.com"
    assert m.from_.tag == "323"


def test_longreq_long_values() -> None:
    m = request("longreq")
    assert m.to.display is not None and m.to.display.startswith("I have a user name of extreme")
    assert len(m.to.display) > 100
    to_uri = m.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.port == 6000
    assert len(to_uri.params) == 3
    assert any(len(name) > 100 for name in to_uri.params)
    assert m.from_.tag is not None and len(m.from_.tag) > 150
    assert len(m.call_id) > 100
    vias = m.vias
    assert len(vias) == 34
    assert vias[-1].params["received"] == "192.0.2.5"
    assert vias[-1].branch is not None and len(vias[-1].branch) > 200
    assert vias[0].host == "sip33.example.com"
    (long_name,) = [n for n, _ in m.headers if n.startswith("Unknown-LongLong")]
    assert len(long_name) > 80
    value = m.headers.get(long_name)
    assert value is not None and value.startswith("unknown-longlong") and len(value) > 80
    assert len(m.body) == 150


def test_dblreq_ignores_octets_after_the_body() -> None:
    m = request("dblreq")
    assert m.method == "REGISTER"
    assert m.body == b""
    assert b"INVITE" not in bytes(m)


def test_semiuri_user_contains_semicolons() -> None:
    m = request("semiuri")
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "user;par=u%40example.net"
    assert m.uri.host == "example.com" and m.uri.params == {}
    assert m.headers.get_all("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports_via_values() -> None:
    m = request("transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert [v.host for v in m.vias] == [f"t{i}.example.com" for i in range(1, 6)]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"  # leading LWS dropped


def test_mpart01_binary_body_is_kept_byte_exact() -> None:
    m = request("mpart01")
    raw = message_bytes("mpart01")
    assert len(m.body) == 553
    assert m.body == raw[raw.index(b"\r\n\r\n") + 4 :][:553]
    assert m.content_type == "multipart/mixed"
    assert bytes(m).endswith(m.body)


def test_unreason_utf8_reason_phrase() -> None:
    m = response("unreason")
    assert m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert bytes(m).startswith("SIP/2.0 200 = 2**3 * 5**2 но".encode())


def test_noreason_empty_reason_phrase() -> None:
    m = response("noreason")
    assert m.status == 100
    assert m.reason == ""


# -- 3.1.2 invalid messages: why they are rejected ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("badinv01", "parameter"),
        ("clerr", "Content-Length"),
        ("ncl", "Content-Length"),
        ("scalar02", "CSeq"),
        ("quotbal", "quoted string"),
        ("ltgtruri", "Request-URI"),
        ("lwsruri", "Request-Line"),
        ("lwsstart", "Request-Line"),
        ("trws", "Request-Line"),
        ("escruri", "headers"),
        ("badaspec", "white space"),
        ("baddn", "To"),
        ("badvers", "version"),
        ("mismatch01", "CSeq method"),
        ("mismatch02", "CSeq method"),
        ("multi01", "more than one"),
        ("mcl01", "Content-Length"),
        ("insuf", "missing"),
    ],
)
def test_rejection_reason(name: str, fragment: str) -> None:
    exc = rejection(name)
    assert fragment in exc.message
    resp = exc.error_response()
    assert resp is not None and fragment in resp.reason


def test_scalarlg_and_bigcode_responses_are_dropped() -> None:
    assert "CSeq" in rejection("scalarlg").message
    assert "Status-Line" in rejection("bigcode").message


def test_baddate_keeps_the_date_as_text() -> None:
    assert request("baddate").headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def test_regbadct_contact_is_rejected_when_read() -> None:
    m = request("regbadct")
    (row,) = m.headers.get_all("Contact")
    with pytest.raises(RemoteProtocolError) as info:
        NameAddr.parse(row)
    assert info.value.status == 400
    with pytest.raises(RemoteProtocolError):
        m.contacts()


def test_badvers_answer_is_505() -> None:
    resp = rejection("badvers").error_response()
    assert resp is not None and resp.status == 505


# -- 3.2 / 3.3 / 3.4: the facts the higher layers rely on ---------------------------------------


def test_badbranch_branch_is_only_the_magic_cookie() -> None:
    assert request("badbranch").top_via.branch == "z9hG4bK"


def test_insuf_answer_copies_what_exists() -> None:
    exc = rejection("insuf")
    assert exc.message == "missing To header"
    resp = exc.error_response()
    assert resp is not None and resp.status == 400
    assert resp.headers.rows("Via") == ["SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf"]
    assert resp.headers.get("CSeq") == "193942 INVITE"
    for absent in ("From", "To", "Call-ID"):
        assert absent not in resp.headers


def test_unkscm_request_uri_is_opaque() -> None:
    uri = request("unkscm").uri
    assert isinstance(uri, AbsoluteUri)
    assert uri.scheme == "nobodyknowsthisscheme" and uri.opaque == "totallyopaquecontent"


def test_novelsc_request_uri_is_opaque() -> None:
    uri = request("novelsc").uri
    assert isinstance(uri, AbsoluteUri)
    assert (uri.scheme, uri.opaque) == ("soap.beep", "//192.0.2.103:3002")


def test_unksm2_header_uris_of_other_schemes() -> None:
    m = request("unksm2")
    assert m.method == "REGISTER"
    assert isinstance(m.to.uri, AbsoluteUri) and m.to.uri.scheme == "isbn"
    assert isinstance(m.from_.uri, AbsoluteUri) and m.from_.uri.scheme == "http"
    (contact,) = m.contacts()
    assert isinstance(contact.uri, AbsoluteUri) and contact.uri.scheme == "name"
    with pytest.raises(RemoteProtocolError):
        m.to.sip_uri  # noqa: B018 - the registrar's "To must be a SIP AOR" check


def test_bext01_require_and_proxy_require() -> None:
    m = request("bext01")
    assert m.headers.get_all("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.headers.get_all("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def test_invut_content_type() -> None:
    m = request("invut")
    assert m.content_type == "application/unknownformat"
    assert len(m.body) == 40


def test_regaut01_authorization_scheme() -> None:
    m = request("regaut01")
    assert m.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def test_bcast_second_via_is_broadcast() -> None:
    m = response("bcast")
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf_max_forwards_zero() -> None:
    assert request("zeromf").max_forwards == 0


def test_cparam01_parameter_belongs_to_the_contact() -> None:
    (contact,) = request("cparam01").contacts()
    assert contact.params == {"unknownparam": None}
    assert isinstance(contact.uri, SipUri) and contact.uri.params == {}


def test_cparam02_parameter_belongs_to_the_uri() -> None:
    (contact,) = request("cparam02").contacts()
    assert contact.params == {}
    assert isinstance(contact.uri, SipUri) and contact.uri.params == {"unknownparam": None}


def test_regescrt_contact_uri_keeps_its_escaped_header() -> None:
    (contact,) = request("regescrt").contacts()
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}
    assert "?Route=%3Csip:sip.example.com%3E" in str(contact)


def test_sdp01_accept_excludes_sdp() -> None:
    m = request("sdp01")
    assert m.headers.get_all("Accept") == ["text/nobodyKnowsThis"]
    assert m.content_type == "application/sdp"


def test_inv2543_rfc2543_syntax() -> None:
    m = request("inv2543")
    assert m.top_via.branch is None
    assert m.from_.tag is None
    assert m.max_forwards is None
    assert m.vias == [Via("UDP", "iftgw.example.com")]
