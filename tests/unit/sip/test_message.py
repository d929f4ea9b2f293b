"""Requests and responses: parsing (lenient in), serialization (strict out), limits, errors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError
from softswitch.sip.headers import Headers
from softswitch.sip.message import (
    Limits,
    MalformedMessage,
    Request,
    Response,
    is_unsupported_scheme,
    make_response,
    parse_message,
)
from softswitch.sip.uri import AbsoluteUri, SipUri, parse_uri

VIA = "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds"


def raw_request(
    *,
    method: str = "INVITE",
    uri: str = "sip:bob@biloxi.example.com",
    version: str = "SIP/2.0",
    extra: str = "",
    body: str = "",
    cseq: str | None = None,
    omit: tuple[str, ...] = (),
    eol: str = "\r\n",
) -> bytes:
    rows = {
        "Via": VIA,
        "Max-Forwards": "70",
        "To": "Bob <sip:bob@biloxi.example.com>",
        "From": '"Alice" <sip:alice@atlanta.example.com>;tag=1928301774',
        "Call-ID": "a84b4c76e66710@pc33.atlanta.example.com",
        "CSeq": cseq if cseq is not None else f"314159 {method}",
    }
    lines = [f"{method} {uri} {version}"]
    lines += [f"{name}: {value}" for name, value in rows.items() if name not in omit]
    lines += [line for line in extra.split("\n") if line]
    if "Content-Length" not in omit:
        lines.append(f"Content-Length: {len(body.encode())}")
    return (eol.join(lines) + eol + eol + body).encode()


def raw_response(status_line: str = "SIP/2.0 200 OK", extra: str = "", body: str = "") -> bytes:
    return (
        f"{status_line}\r\nVia: {VIA}\r\n"
        "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\n"
        f"{extra}Content-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()


def parse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def malformed(data: bytes, limits: Limits | None = None) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as info:
        parse_message(data) if limits is None else parse_message(data, limits)
    return info.value


# -- parsing ------------------------------------------------------------------------------------


def test_request_fields() -> None:
    sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
    m = parse_request(
        raw_request(
            extra="Contact: <sip:alice@pc33.atlanta.example.com>\nc: application/sdp", body=sdp
        )
    )
    assert m.method == "INVITE"
    assert m.uri == parse_uri("sip:bob@biloxi.example.com")
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (m.cseq.seq, m.cseq.method) == (314159, "INVITE")
    assert m.from_.display == "Alice" and m.from_.tag == "1928301774"
    assert m.to.display == "Bob" and m.to.tag is None
    assert m.top_via.branch == "z9hG4bK776asdhds" and m.top_via.port == 5060
    assert m.max_forwards == 70
    assert m.content_type == "application/sdp"
    assert [str(c.uri) for c in m.contacts()] == ["sip:alice@pc33.atlanta.example.com"]
    assert m.body == sdp.encode()
    assert repr(m) == "<Request INVITE sip:bob@biloxi.example.com>"


def test_response_fields() -> None:
    m = parse_message(raw_response("SIP/2.0 180 Ringing"))
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (180, "Ringing")
    assert m.to.tag == "a6c85cf"
    assert repr(m) == "<Response 180 Ringing>"


def test_serialization_is_canonical() -> None:
    m = parse_request(
        raw_request(
            extra="v: SIP/2.0/TCP proxy;branch=z9hG4bKp\nx-custom:  1 ", body="hello"
        ).replace(b"Max-Forwards: 70", b"max-forwards:70")
    )
    wire = bytes(m)
    head, body = wire.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"INVITE sip:bob@biloxi.example.com SIP/2.0"
    assert b"Max-Forwards: 70" in lines and b"Via: SIP/2.0/TCP proxy;branch=z9hG4bKp" in lines
    assert b"x-custom: 1" in lines
    assert lines[-1] == b"Content-Length: 5"  # recomputed, written last
    assert body == b"hello"


def test_serialization_recomputes_content_length_after_edits() -> None:
    m = parse_request(raw_request(body="abc"))
    m.body = b"longer body"
    m.headers.add("Content-Length", "3")
    again = parse_request(bytes(m))
    assert again.body == b"longer body"
    assert again.headers.rows("Content-Length") == ["11"]


def test_built_messages_serialize() -> None:
    h = Headers([("Via", VIA), ("To", "<sip:b@h>"), ("From", "<sip:a@h>;tag=1")])
    h.add("Call-ID", "x")
    h.add("CSeq", "1 OPTIONS")
    req = Request("OPTIONS", SipUri("h", "b"), h)
    assert bytes(req).startswith(b"OPTIONS sip:b@h SIP/2.0\r\nVia: ")
    assert parse_request(bytes(req)).headers.get("Call-ID") == "x"
    resp = Response(486, headers=h.copy())
    assert resp.reason == "Busy Here"
    assert bytes(resp).startswith(b"SIP/2.0 486 Busy Here\r\n")
    assert Response(299).reason == "Unknown"


@pytest.mark.parametrize("status", [0, 99, 700, 1000])
def test_response_status_out_of_range_is_a_local_error(status: int) -> None:
    with pytest.raises(LocalProtocolError):
        Response(status)


# -- leniency (RFC 3261 §7, §25) ----------------------------------------------------------------


def test_leading_crlfs_are_ignored() -> None:
    """§7.5: CRLFs before the start line (keep-alives on streams) are skipped."""
    assert parse_request(b"\r\n\r\n" + raw_request()).method == "INVITE"


def test_bare_lf_line_endings() -> None:
    m = parse_request(raw_request(eol="\n", body="x\ny"))
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.body == b"x\ny"


def test_mixed_line_endings() -> None:
    data = raw_request(body="b").replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n")
    assert parse_request(data).max_forwards == 70


def test_header_section_ends_at_the_first_empty_line() -> None:
    """Regression: an LF-LF end of the head with CRLF CRLF inside the body."""
    body = "line1\r\n\r\nline3"
    m = parse_request(raw_request(eol="\n", body=body))
    assert m.body == body.encode()


def test_missing_final_empty_line_is_tolerated() -> None:
    data = raw_request(omit=("Content-Length",)).rstrip(b"\r\n")
    m = parse_request(data)
    assert m.body == b""


def test_no_content_length_takes_the_rest_as_body() -> None:
    assert parse_request(raw_request(omit=("Content-Length",), body="abc")).body == b"abc"


def test_bytes_past_content_length_are_discarded() -> None:
    """§18.3: extra octets in a datagram are ignored."""
    data = raw_request(body="abc") + b"INVITE sip:x SIP/2.0\r\n\r\n"
    assert parse_request(data).body == b"abc"


def test_white_space_before_colon_and_compact_names() -> None:
    data = raw_request().replace(b"Call-ID: ", b"i   :   ").replace(b"To: ", b"t\t: ")
    m = parse_request(data)
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.headers.rows("To") == ["Bob <sip:bob@biloxi.example.com>"]


def test_response_without_reason_phrase_or_its_space() -> None:
    for line in ("SIP/2.0 100 ", "SIP/2.0 100"):
        m = parse_message(raw_response(line))
        assert isinstance(m, Response) and (m.status, m.reason) == (100, "")


def test_version_is_case_insensitive() -> None:
    assert isinstance(parse_message(raw_request(version="sip/2.0")), Request)
    m = parse_message(raw_response("sip/2.0 200 OK"))
    assert isinstance(m, Response) and m.status == 200


def test_unknown_scheme_request_uri_parses_for_a_416() -> None:
    m = parse_request(raw_request(method="OPTIONS", uri="im:alice@example.com"))
    assert isinstance(m.uri, AbsoluteUri)
    assert is_unsupported_scheme(m.uri)
    assert not is_unsupported_scheme(parse_uri("sip:a@b"))


# -- rejections ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_required_headers(name: str) -> None:
    exc = malformed(raw_request(omit=(name,)))
    assert exc.status == 400 and exc.message == f"missing {name} header"
    assert exc.is_request


@pytest.mark.parametrize(
    "row",
    [
        "To: <sip:x@h>",
        "From: <sip:x@h>;tag=2",
        "Call-ID: other",
        "CSeq: 2 INVITE",
        "Max-Forwards: 5",
        "Content-Length: 0",
        "Content-Type: text/plain\nContent-Type: text/plain",
    ],
)
def test_single_valued_fields_appear_once(row: str) -> None:
    assert "more than one" in malformed(raw_request(extra=row)).message


@pytest.mark.parametrize(
    ("start_line", "status"),
    [
        ("INVITE sip:bob@biloxi.example.com SIP/2.0 ", 400),
        ("INVITE  sip:bob@biloxi.example.com SIP/2.0", 400),
        ("INVITE sip:bob@biloxi.example.com", 400),
        ("IN<VITE sip:bob@biloxi.example.com SIP/2.0", 400),
        ("INVITE sip:bob@biloxi.example.com SIP/3.0", 505),
        ("INVITE sip:bob@biloxi.example.com SIP/2.00x", 400),
        ("INVITE sip:bob@biloxi.example.com HTTP/1.1", 400),
        ("INVITE <sip:bob@biloxi.example.com> SIP/2.0", 400),
        ("INVITE sip:bob@biloxi.example.com?Route=%3Csip:x%3E SIP/2.0", 400),
        ("INVITE sip:bob@ SIP/2.0", 400),
    ],
)
def test_bad_request_line(start_line: str, status: int) -> None:
    data = raw_request().replace(b"INVITE sip:bob@biloxi.example.com SIP/2.0", start_line.encode())
    exc = malformed(data)
    assert exc.status == status and exc.is_request
    resp = exc.error_response()
    assert resp is not None and resp.status == status


def test_cseq_method_mismatch_is_400_for_a_known_method_and_501_otherwise() -> None:
    assert malformed(raw_request(method="OPTIONS", cseq="1 INVITE")).status == 400
    assert malformed(raw_request(method="FOO", cseq="1 INVITE")).status == 501
    assert parse_request(raw_request(method="FOO")).method == "FOO"


@pytest.mark.parametrize(
    "value",
    ["-1", "1.5", "abc", "1 2", "9999999999", "\u00b2", "\u0661\u0662", "\uff11"],
)
def test_bad_content_length(value: str) -> None:
    data = raw_request().replace(b"Content-Length: 0", f"Content-Length: {value}".encode())
    assert "Content-Length" in malformed(data).message


def test_content_length_larger_than_the_body() -> None:
    data = raw_request(body="abc").replace(b"Content-Length: 3", b"Content-Length: 4")
    exc = malformed(data)
    assert exc.message == "Content-Length 4 larger than the body (3 bytes)"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0", True),
        ("255", True),
        ("0070", True),
        ("256", False),
        ("-1", False),
        ("x", False),
        ("\u00b2", False),
        ("\u0667\u0660", False),
    ],
)
def test_max_forwards(value: str, ok: bool) -> None:
    data = raw_request().replace(b"Max-Forwards: 70", f"Max-Forwards: {value}".encode())
    if ok:
        assert parse_request(data).max_forwards == int(value)
    else:
        assert "Max-Forwards" in malformed(data).message


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0", True),
        ("3600", True),
        ("4294967295", True),
        ("4294967296", False),
        ("-1", False),
        ("Thu, 01 Dec 1994 16:00:00 GMT", False),
        ("\u00b3\u00b3", False),
    ],
)
def test_expires(value: str, ok: bool) -> None:
    data = raw_request(extra=f"Expires: {value}")
    if ok:
        assert parse_request(data).expires == int(value)
    else:
        assert "Expires" in malformed(data).message


def test_expires_accessor_on_a_built_request() -> None:
    req = Request("REGISTER", parse_uri("sip:h"), Headers([("Expires", "\u00b2")]))
    with pytest.raises(RemoteProtocolError):
        req.expires  # noqa: B018
    assert Request("REGISTER", parse_uri("sip:h")).expires is None


@pytest.mark.parametrize(
    "cseq",
    ["", "1", "x INVITE", "4294967296 INVITE", "\u00b2 INVITE", "1 INVITE extra"],
)
def test_bad_cseq(cseq: str) -> None:
    data = raw_request().replace(b"CSeq: 314159 INVITE", f"CSeq: {cseq}".encode())
    assert malformed(data).status == 400


@pytest.mark.parametrize(
    "row",
    [
        "Via:",  # regression: an empty Via row used to pass and break top_via
        "Via: ,",
        "Via: SIP/2.0/UDP h:\u00b2",
        "Via: SIP/2.0/UDP h;;",
        "Via: garbage",
    ],
)
def test_bad_via(row: str) -> None:
    data = raw_request().replace(f"Via: {VIA}".encode(), row.encode())
    exc = malformed(data)
    assert exc.status == 400 and "Via" in exc.message


@pytest.mark.parametrize(
    "row",
    [
        'To: "Bob <sip:bob@biloxi.example.com>',
        "To: <sip:bob@biloxi.example.com>, <sip:carol@chicago.com>",
        "To: Bob, Smith <sip:bob@biloxi.example.com>",
        "To: < sip:bob@biloxi.example.com >",
        "To: <sip:bob@biloxi.example.com:\u00b2>",
    ],
)
def test_bad_to(row: str) -> None:
    data = raw_request().replace(b"To: Bob <sip:bob@biloxi.example.com>", row.encode())
    assert malformed(data).status == 400


def test_empty_call_id() -> None:
    data = raw_request().replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"i:")
    assert malformed(data).message == "empty Call-ID"


@pytest.mark.parametrize("line", ["NoColonHere", "Bad Name: x", ": empty name", "X\u00e9: y"])
def test_malformed_header_line(line: str) -> None:
    exc = malformed(raw_request(extra=line))
    assert exc.message.startswith("malformed header line")


@pytest.mark.parametrize(
    "status_line",
    [
        "SIP/2.0 700 Too Big",
        "SIP/2.0 99 Small",
        "SIP/2.0 4294967301 better not break the receiver",
        "SIP/2.0 2OO OK",
        "SIP/2.0 \u0662\u0660\u0660 OK",
        "SIP/2.0  200 OK",
        "SIP/2.0 200\rOK",
    ],
)
def test_malformed_responses_are_dropped(status_line: str) -> None:
    exc = malformed(raw_response(status_line))
    assert exc.is_request is False
    assert exc.error_response() is None


def test_response_of_another_version_is_dropped() -> None:
    exc = malformed(raw_response("SIP/3.0 200 OK"))
    assert exc.status == 505 and exc.error_response() is None


# -- error responses (§8.2.6.2) -----------------------------------------------------------------


def test_error_response_copies_the_routing_rows() -> None:
    data = raw_request(extra="v: SIP/2.0/UDP second;branch=z9hG4bK2", cseq="1 BYE")
    exc = malformed(data)
    resp = exc.error_response()
    assert resp is not None and resp.status == 400
    assert resp.reason == "CSeq method BYE does not match INVITE"
    assert [name for name, _ in resp.headers] == ["Via", "Via", "From", "To", "Call-ID", "CSeq"]
    assert resp.headers.rows("Via") == [VIA, "SIP/2.0/UDP second;branch=z9hG4bK2"]
    assert resp.headers.get("CSeq") == "1 BYE"


def test_error_response_with_only_a_via() -> None:
    data = b"INVITE sip:b@h SIP/2.0\r\nVia: " + VIA.encode() + b"\r\n\r\n"
    resp = malformed(data).error_response()
    assert resp is not None and resp.status == 400
    assert list(resp.headers) == [("Via", VIA)]


def test_no_error_response_without_a_via() -> None:
    exc = malformed(raw_request(omit=("Via",)))
    assert exc.is_request and exc.error_response() is None


def test_no_error_response_to_an_ack() -> None:
    """§17: an ACK is never answered, not even a malformed one."""
    assert malformed(raw_request(method="ACK", omit=("To",))).error_response() is None
    bad_line = raw_request(method="ACK", uri="<sip:b@h>")
    assert malformed(bad_line).error_response() is None
    cseq_says_ack = raw_request(method="BYE", cseq="1 ACK")
    assert malformed(cseq_says_ack).error_response() is None


def test_error_response_reads_rows_after_a_malformed_line() -> None:
    data = (
        b"BYE sip:b@h SIP/2.0\r\nthis line is broken\r\nVia: " + VIA.encode() + b"\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n"
    )
    exc = malformed(data)
    assert exc.message == "malformed header line 'this line is broken'"
    resp = exc.error_response()
    assert resp is not None
    assert [name for name, _ in resp.headers] == ["Via", "From", "To", "Call-ID", "CSeq"]


def test_error_response_copies_only_the_first_of_repeated_single_fields() -> None:
    resp = malformed(raw_request(extra="To: <sip:other@h>")).error_response()
    assert resp is not None
    assert resp.headers.rows("To") == ["Bob <sip:bob@biloxi.example.com>"]


def test_error_reason_phrase_is_one_printable_line() -> None:
    data = raw_request(extra="Bad\x01Name: x")
    resp = malformed(data).error_response()
    assert resp is not None
    assert all(ch.isprintable() for ch in resp.reason)
    assert "\r" not in resp.reason and "\n" not in resp.reason
    reparsed = parse_message(bytes(resp))
    assert isinstance(reparsed, Response) and reparsed.status == 400


def test_manual_malformed_message_without_headers() -> None:
    assert MalformedMessage("x").error_response() is None
    assert MalformedMessage("x", is_request=True).error_response() is None


# -- limits -------------------------------------------------------------------------------------


def test_message_above_max_size_is_513() -> None:
    body = "x" * 2000
    data = raw_request(body=body)
    exc = malformed(data, Limits(max_size=1000))
    assert exc.status == 513 and exc.is_request
    resp = exc.error_response()
    assert resp is not None and resp.status == 513
    assert resp.headers.rows("Via") == [VIA]
    assert parse_request(data).body == body.encode()  # under the default limit it is fine


def test_message_at_max_size_is_accepted() -> None:
    data = raw_request(body="x" * 100)
    assert parse_request(data)
    assert isinstance(parse_message(data, Limits(max_size=len(data))), Request)
    assert malformed(data, Limits(max_size=len(data) - 1)).status == 513


def test_default_limit_is_64k() -> None:
    exc = malformed(raw_request(body="x" * 70000))
    assert exc.status == 513


def test_too_many_header_fields() -> None:
    extra = "\n".join(f"X-H{i}: {i}" for i in range(200))
    exc = malformed(raw_request(extra=extra))
    assert exc.status == 400 and "header fields" in exc.message
    resp = exc.error_response()
    assert resp is not None and resp.headers.rows("Via") == [VIA]


def test_header_count_limit_is_inclusive() -> None:
    data = raw_request(extra="X-A: 1\nX-B: 2")
    count = data.split(b"\r\n\r\n")[0].count(b"\r\n")
    assert isinstance(parse_message(data, Limits(max_headers=count)), Request)
    assert malformed(data, Limits(max_headers=count - 1)).status == 400


def _best_time(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(MalformedMessage):
            fn()
        best = min(best, time.perf_counter() - start)
    return best


def _huge(kind: str, n: int) -> bytes:
    """A request with one header value of about ``n`` characters of the given shape."""
    shapes: dict[str, Callable[[int], bytes]] = {
        "subject": lambda n: raw_request(extra="Subject: " + "x" * n),
        "via-params": lambda n: raw_request().replace(
            VIA.encode(), (VIA + ";p=v" * (n // 4)).encode()
        ),
        "via-list": lambda n: raw_request(extra="Via: " + ", ".join([VIA] * (n // len(VIA)))),
        "via-commas": lambda n: raw_request().replace(VIA.encode(), (VIA + "," * n).encode()),
        "via-host": lambda n: raw_request().replace(
            VIA.encode(), ("SIP/2.0/UDP " + "a" * n + "!").encode()
        ),
        "to-display": lambda n: raw_request().replace(
            b"To: Bob", b'To: "' + b"\\x" * (n // 2) + b'"'
        ),
        "to-unterminated": lambda n: raw_request().replace(
            b"To: Bob <sip:bob@biloxi.example.com>", b'To: "' + b"\\x" * (n // 2)
        ),
        "to-params": lambda n: raw_request().replace(
            b"To: Bob <sip:bob@biloxi.example.com>",
            b"To: <sip:bob@biloxi.example.com>" + b";a" * (n // 2),
        ),
        "uri-params": lambda n: raw_request(uri="sip:bob@h" + ";a" * (n // 2)),
        "uri-host": lambda n: raw_request(uri="sip:bob@a" + "-" * n),
        "uri-ipv6": lambda n: raw_request(uri="sip:bob@[" + ":" * n + "]"),
        "contact-list": lambda n: raw_request(extra="Contact: " + "<sip:a@h>," * (n // 10)),
        "quoted-list": lambda n: raw_request(
            extra="Via: " + VIA + ';x="' + '\\",' * (n // 3) + '", ' + VIA
        ),
        "angles": lambda n: raw_request().replace(
            b"To: Bob <sip:bob@biloxi.example.com>", b"To: " + b"<" * n
        ),
        "folded": lambda n: raw_request(extra="Subject: a").replace(
            b"Subject: a", b"Subject: a" + b"\r\n b" * (n // 4)
        ),
        "crlfs-before": lambda n: b"\r\n" * (n // 2) + raw_request(),
    }
    return shapes[kind](n)


@pytest.mark.parametrize(
    "kind",
    [
        "subject",
        "via-params",
        "via-list",
        "via-commas",
        "via-host",
        "to-display",
        "to-unterminated",
        "to-params",
        "uri-params",
        "uri-host",
        "uri-ipv6",
        "contact-list",
        "quoted-list",
        "angles",
        "folded",
        "crlfs-before",
    ],
)
def test_huge_values_parse_in_linear_time(kind: str) -> None:
    """10x the size of a header value costs about 10x the time, not 100x (no quadratic work).

    A ratio measured in the same run, not an absolute time: machines are noisy.
    """
    small, large = _huge(kind, 6_000), _huge(kind, 60_000)
    assert 60_000 <= len(large) <= 65_535
    t_small = _best_time(lambda: parse_message(small))
    t_large = _best_time(lambda: parse_message(large))
    # Quadratic work would make the ratio ~100; allow generous noise around the linear 10.
    assert t_large < 30 * t_small + 0.002, f"{kind}: {t_small=:.5f} {t_large=:.5f}"


def test_deeply_nested_brackets_and_quotes_do_not_recurse() -> None:
    nested = "<" * 30_000 + '"' * 2 + ">" * 30_000
    m = parse_request(raw_request(extra="Contact: " + nested[:60_000]))
    with pytest.raises(RemoteProtocolError):
        m.contacts()


# -- make_response (§8.2.6.2) -------------------------------------------------------------------


def test_make_response_copies_the_dialog_rows_and_adds_a_to_tag() -> None:
    req = parse_request(raw_request(extra="v: SIP/2.0/UDP b;branch=z9hG4bK2\nTimestamp: 54"))
    resp = make_response(req, 180, to_tag="xyz")
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert resp.headers.rows("Via") == req.headers.rows("Via")
    assert resp.to.tag == "xyz"
    assert resp.from_ == req.from_ and resp.call_id == req.call_id and resp.cseq == req.cseq
    assert "Timestamp" not in resp.headers
    assert isinstance(parse_message(bytes(resp)), Response)


def test_make_response_100_has_no_tag_but_the_timestamp() -> None:
    req = parse_request(raw_request(extra="Timestamp: 54"))
    trying = make_response(req, 100, to_tag="xyz")
    assert trying.to.tag is None
    assert trying.headers.get("Timestamp") == "54"


def test_make_response_tags_a_to_whose_display_name_mentions_a_tag() -> None:
    req = parse_request(raw_request().replace(b"To: Bob <", b'To: "Bob;tag=x" <'))
    resp = make_response(req, 200, to_tag="new")
    assert resp.to.display == "Bob;tag=x" and resp.to.tag == "new"
    tabbed = parse_request(
        raw_request().replace(b"example.com>\r\nFrom", b"example.com>\t;\ttag=q\r\nFrom")
    )
    assert make_response(tabbed, 200, to_tag="new").to.tag == "q"


def test_make_response_keeps_an_existing_to_tag() -> None:
    req = parse_request(
        raw_request().replace(
            b"<sip:bob@biloxi.example.com>", b"<sip:bob@biloxi.example.com>;tag=a"
        )
    )
    assert make_response(req, 200, "Fine", to_tag="b").to.tag == "a"
    assert make_response(req, 200, "Fine").reason == "Fine"


# -- accessors ----------------------------------------------------------------------------------


def test_accessors_of_an_empty_message_are_local_errors() -> None:
    req = Request("OPTIONS", parse_uri("sip:h"))
    for name in ("call_id", "cseq", "from_", "to", "top_via"):
        with pytest.raises(LocalProtocolError):
            getattr(req, name)
    assert req.vias == [] and req.contacts() == [] and req.max_forwards is None
    assert req.content_type is None


def test_star_contact_routes_and_record_routes() -> None:
    star = parse_request(raw_request(method="REGISTER", extra="Contact: *\nExpires: 0"))
    assert star.is_star_contact and star.contacts() == []
    routed = parse_request(
        raw_request(extra="Route: <sip:p1;lr>, <sip:p2;lr>\nRecord-Route: <sip:p0;lr>")
    )
    assert [str(r.uri) for r in routed.routes()] == ["sip:p1;lr", "sip:p2;lr"]
    assert [str(r.uri) for r in routed.record_route()] == ["sip:p0;lr"]
    assert not routed.is_star_contact


# -- regressions found by tools/fuzz/fuzz_parser.py ---------------------------------------------

#: Inputs that once raised something other than MalformedMessage (or broke a round trip).
FUZZ_REGRESSIONS = [
    # int() of a non-ASCII digit that str.isdigit() accepts: ValueError escaped the parser.
    raw_request(body="").replace(b"Content-Length: 0", "Content-Length: 0\u00b2".encode()),
    raw_request().replace(b"Max-Forwards: 70", "Max-Forwards: \u00b2".encode()),
    raw_request().replace(b"CSeq: 314159", "CSeq: \u00b2".encode()),
    raw_request(uri="sip:bob@h:\u00b2"),
    raw_request(extra="Expires: \u00b9"),
    # An empty compact Via row ("V :") passed validation; top_via then raised IndexError.
    raw_request(extra="V :"),
]


@pytest.mark.parametrize("data", FUZZ_REGRESSIONS)
def test_fuzz_regressions_are_malformed_messages(data: bytes) -> None:
    exc = malformed(data)
    assert exc.status == 400
    resp = exc.error_response()
    assert resp is not None and bytes(resp)
