"""Round-trip and comparison properties of the SIP parser and serializer (Hypothesis)."""

from __future__ import annotations

import ipaddress
import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softswitch.sip.headers import CSeq, Headers, NameAddr, Via
from softswitch.sip.message import Request, Response, parse_message
from softswitch.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- character classes of RFC 3261 §25.1 --------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
MARK = "-_.!~*'()"
UNRESERVED = ALNUM + MARK
TOKEN = ALNUM + "-.!%*_+`'~"
HEX = "0123456789ABCDEF"

# Any character a header line may hold once decoded: no surrogates, no line breaks.
LINE_CHARS = st.characters(codec="utf-8", exclude_characters="\r\n")

escaped = st.builds(lambda a, b: f"%{a}{b}", st.sampled_from(HEX), st.sampled_from(HEX))


def uri_text(extra: str, *, min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[str]:
    """Strings of unreserved characters, ``extra`` characters and %HEX HEX escapes."""
    return st.lists(
        st.one_of(st.sampled_from(UNRESERVED + extra), escaped),
        min_size=min_size,
        max_size=max_size,
    ).map("".join)


users = uri_text("&=+$,;?/", min_size=1)  # user-unreserved included (';' and '?' too)
passwords = uri_text("&=+$,")
tokens = st.text(TOKEN, min_size=1, max_size=10)
lower_tokens = st.text(TOKEN.lower().replace("%", ""), min_size=1, max_size=10)

label = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(label, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{ipaddress.IPv6Address(a).compressed}]")
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(0, 65535))

uri_param_names = st.text(
    string.ascii_lowercase + string.digits + "-.!*_+`'~", min_size=1, max_size=8
)
uri_param_values = st.one_of(st.none(), uri_text("[]/:&+$"))
uri_params = st.dictionaries(uri_param_names, uri_param_values, max_size=4)
uri_headers = st.dictionaries(
    uri_text("[]/?:+$", min_size=1, max_size=6), uri_text("[]/?:+$"), max_size=3
)


@st.composite
def sip_uris(draw: st.DrawFn, *, with_headers: bool = True) -> SipUri:
    user = draw(st.one_of(st.none(), users))
    password = draw(st.one_of(st.none(), passwords)) if user is not None else None
    return SipUri(
        host=draw(hosts),
        user=user,
        password=password,
        port=draw(ports),
        scheme=draw(st.sampled_from(["sip", "sips"])),
        params=draw(uri_params),
        headers=draw(uri_headers) if with_headers else {},
    )


tel_uris = st.builds(
    TelUri,
    st.from_regex(r"\+?[0-9][0-9\-.()]{0,14}", fullmatch=True),
    st.dictionaries(uri_param_names, st.one_of(st.none(), uri_text("[]/:&+$")), max_size=2),
)
absolute_uris = st.builds(
    AbsoluteUri,
    st.from_regex(r"[a-z][a-z0-9+\-.]{0,8}", fullmatch=True).filter(
        lambda s: s not in ("sip", "sips", "tel")
    ),
    uri_text("/?:@&=+$,;[]", min_size=1),
)
any_uris: st.SearchStrategy[Uri] = st.one_of(sip_uris(), tel_uris, absolute_uris)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


display_names = st.one_of(st.none(), st.text(LINE_CHARS, max_size=20))
header_param_values = st.one_of(st.none(), tokens, st.text(LINE_CHARS, max_size=10).map(quote))
header_params = st.dictionaries(lower_tokens, header_param_values, max_size=4)
name_addrs = st.builds(NameAddr, any_uris, display_names, header_params)

vias = st.builds(
    Via,
    tokens.map(str.upper),
    hosts,
    ports,
    st.dictionaries(lower_tokens, st.one_of(st.none(), tokens), max_size=4),
)

methods = tokens
# Header values: one line of text, no surrounding white space (the parser strips it).
field_values = st.text(LINE_CHARS, max_size=30).map(str.strip)
extension_names = st.text(TOKEN, min_size=1, max_size=10).map(lambda s: "X-" + s)


@st.composite
def common_headers(draw: st.DrawFn, method: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for via in draw(st.lists(vias, min_size=1, max_size=3)):
        rows.append(("Via", str(via)))
    frm = draw(name_addrs)
    frm.params["tag"] = draw(tokens)
    rows.append(("From", str(frm)))
    rows.append(("To", str(draw(name_addrs))))
    rows.append(("Call-ID", draw(st.text(TOKEN + "@:", min_size=1, max_size=20))))
    rows.append(("CSeq", str(CSeq(draw(st.integers(0, 2**32 - 1)), method))))
    for name, value in draw(st.lists(st.tuples(extension_names, field_values), max_size=4)):
        rows.append((name, value))
    draw(st.randoms()).shuffle(rows)  # header order is free (§7.3.1)
    return rows


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(methods)
    rows = draw(common_headers(method))
    if draw(st.booleans()):
        rows.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    uri = draw(st.one_of(sip_uris(with_headers=False), tel_uris, absolute_uris))
    return Request(method, uri, Headers(rows), draw(st.binary(max_size=64)))


@st.composite
def responses(draw: st.DrawFn) -> Response:
    rows = draw(common_headers(draw(methods)))
    reason = draw(st.text(LINE_CHARS, max_size=20))
    return Response(
        draw(st.integers(100, 699)), reason, Headers(rows), draw(st.binary(max_size=64))
    )


# -- URIs ---------------------------------------------------------------------------------------


@SETTINGS
@given(any_uris)
def test_uri_round_trip(uri: Uri) -> None:
    assert parse_uri(str(uri)) == uri


@SETTINGS
@given(any_uris)
def test_equivalence_is_reflexive(uri: Uri) -> None:
    assert uri.equivalent(uri)
    assert uri.equivalent(parse_uri(str(uri)))


@st.composite
def uri_variants(draw: st.DrawFn) -> tuple[SipUri, SipUri]:
    """A URI and a variant that differs in ways §19.1.4 may or may not ignore."""
    a = draw(sip_uris())
    b = a.copy()
    if draw(st.booleans()) and not b.host.startswith("["):
        b.host = "".join(c.upper() if draw(st.booleans()) else c for c in b.host)
    if draw(st.booleans()):
        b.params = dict(reversed(list(b.params.items())))
    if draw(st.booleans()):
        b.params[draw(uri_param_names)] = draw(uri_param_values)
    if draw(st.booleans()) and b.user:
        b.user = "".join(
            f"%{ord(c):02X}" if c in ALNUM and draw(st.booleans()) else c
            for c in re.findall(r"%..|.", b.user)
        )
    if draw(st.booleans()):
        b.port = draw(ports)
    if draw(st.booleans()):
        b.headers = draw(uri_headers)
    return a, b


@SETTINGS
@given(uri_variants())
def test_equivalence_is_symmetric(pair: tuple[SipUri, SipUri]) -> None:
    a, b = pair
    assert a.equivalent(b) == b.equivalent(a)


@SETTINGS
@given(sip_uris(), st.data())
def test_escaping_unreserved_user_characters_keeps_equivalence(
    uri: SipUri, data: st.DataObject
) -> None:
    if uri.user is None:
        uri.user = data.draw(users)
    other = uri.copy()
    assert other.user is not None
    other.user = "".join(
        f"%{ord(c):02x}" if c in UNRESERVED else c for c in re.findall(r"%..|.", other.user)
    )
    other.host = other.host.upper() if not other.host.startswith("[") else other.host
    assert uri.equivalent(other) and other.equivalent(uri)
    assert parse_uri(str(other)).equivalent(uri)


@SETTINGS
@given(sip_uris(), st.sampled_from(["user", "ttl", "method", "maddr", "transport"]), tokens)
def test_special_parameters_present_in_one_uri_never_match(
    uri: SipUri, name: str, value: str
) -> None:
    uri.params.pop(name, None)
    other = uri.copy()
    other.params[name] = value
    assert not uri.equivalent(other) and not other.equivalent(uri)


@SETTINGS
@given(
    sip_uris(),
    uri_param_names.filter(lambda n: n not in ("user", "ttl", "method", "maddr", "transport")),
    uri_param_values,
)
def test_other_parameters_in_one_uri_only_are_ignored(
    uri: SipUri, name: str, value: str | None
) -> None:
    uri.params.pop(name, None)
    other = uri.copy()
    other.params[name] = value
    assert uri.equivalent(other) and other.equivalent(uri)


# -- header values ------------------------------------------------------------------------------


@SETTINGS
@given(name_addrs)
def test_name_addr_round_trip(na: NameAddr) -> None:
    assert NameAddr.parse(str(na)) == na


@SETTINGS
@given(vias)
def test_via_round_trip(via: Via) -> None:
    assert Via.parse(str(via)) == via


@SETTINGS
@given(st.lists(name_addrs, min_size=1, max_size=4))
def test_comma_list_of_name_addrs_round_trips(values: list[NameAddr]) -> None:
    h = Headers([("Contact", ", ".join(str(v) for v in values))])
    assert [NameAddr.parse(v) for v in h.get_all("Contact")] == values


# -- whole messages -----------------------------------------------------------------------------


def without_content_length(headers: Headers) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers if n != "Content-Length"]


@SETTINGS
@given(requests())
def test_request_round_trip(req: Request) -> None:
    wire = bytes(req)
    parsed = parse_message(wire)
    assert isinstance(parsed, Request)
    assert parsed.method == req.method
    assert parsed.uri == req.uri
    assert without_content_length(parsed.headers) == list(req.headers)
    assert parsed.headers.rows("Content-Length") == [str(len(req.body))]
    assert parsed.body == req.body
    assert bytes(parsed) == wire


@SETTINGS
@given(responses())
def test_response_round_trip(resp: Response) -> None:
    wire = bytes(resp)
    parsed = parse_message(wire)
    assert isinstance(parsed, Response)
    assert (parsed.status, parsed.reason) == (resp.status, resp.reason)
    assert without_content_length(parsed.headers) == list(resp.headers)
    assert parsed.body == resp.body
    assert bytes(parsed) == wire


@SETTINGS
@given(st.one_of(requests(), responses()), st.data())
def test_serialize_parse_is_a_fixed_point_of_lenient_input(
    msg: Request | Response, data: st.DataObject
) -> None:
    """Lenient spellings (compact names, odd case, LWS, folding, bare LF) serialize canonically
    once, and that canonical form parses back to itself."""
    wire = bytes(msg)
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    compact = {b"Via": b"v", b"From": b"f", b"To": b"t", b"Call-ID": b"i", b"Content-Length": b"l"}
    out = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        if data.draw(st.booleans()):
            name = compact.get(name, name)
        if not name.startswith(b"X-") and data.draw(st.booleans()):
            name = name.swapcase()  # known names are case-insensitive; extensions keep theirs
        sep = data.draw(st.sampled_from([b": ", b":", b"  :\t", b":\r\n  "]))
        out.append(name + sep + value)
    eol = data.draw(st.sampled_from([b"\r\n", b"\n"]))
    lenient = data.draw(st.sampled_from([b"", b"\r\n\r\n"])) + eol.join(out) + eol + eol + body
    first = bytes(parse_message(lenient))
    assert first == wire
    assert bytes(parse_message(first)) == first
