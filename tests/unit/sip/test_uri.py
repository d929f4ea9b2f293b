"""SIP, SIPS, tel and opaque URIs: parsing, serialization and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pytest

from softswitch.sip.errors import RemoteProtocolError
from softswitch.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri, split_params


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


# -- parsing ------------------------------------------------------------------------------------


def test_full_sip_uri() -> None:
    uri = sip(
        "sip:alice:secret@Atlanta.Example.COM:5070;transport=TCP;lr;maddr=239.255.255.1?subject=hi&priority=urgent"
    )
    assert uri.scheme == "sip"
    assert (uri.user, uri.password) == ("alice", "secret")
    assert uri.host == "atlanta.example.com"  # host is case-insensitive: kept in lower case
    assert uri.port == 5070
    assert uri.params == {"transport": "TCP", "lr": None, "maddr": "239.255.255.1"}
    assert uri.headers == {"subject": "hi", "priority": "urgent"}
    assert uri.transport == "tcp"
    assert uri.host_port == "atlanta.example.com:5070"


def test_minimal_uris() -> None:
    uri = sip("sip:example.com")
    assert (uri.user, uri.password, uri.port, uri.params, uri.headers) == (None, None, None, {}, {})
    assert uri.transport is None
    assert uri.host_port == "example.com"
    assert sip("SIPS:bob@example.com").scheme == "sips"


def test_ipv4_and_ipv6_hosts() -> None:
    assert sip("sip:bob@192.0.2.4:5060").host_port == "192.0.2.4:5060"
    v6 = sip("sip:bob@[2001:DB8::1]:5061;transport=tls")
    assert (v6.host, v6.port) == ("[2001:db8::1]", 5061)
    assert sip("sip:[::1]").host == "[::1]"


def test_user_may_hold_semicolons_and_question_marks() -> None:
    uri = sip("sip:user;par=u%40example.net@example.com;p=1")
    assert uri.user == "user;par=u%40example.net"
    assert uri.params == {"p": "1"}


def test_parameter_names_are_lower_cased_values_kept() -> None:
    assert sip("sip:h;Transport=UDP;MAddr=X").params == {"transport": "UDP", "maddr": "X"}


def test_aor_unescapes_the_user() -> None:
    assert sip("sip:%61lice@example.com").aor == "alice@example.com"
    assert sip("sip:example.com").aor == "example.com"
    assert sip("sip:null-%00-null@example.com").aor == "null-\x00-null@example.com"


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(uri, TelUri)
    assert uri.number == "+1-201-555-0123"
    assert uri.digits == "+12015550123"
    assert uri.params == {"phone-context": "example.com"}
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


def test_unknown_scheme_is_kept_opaque() -> None:
    uri = parse_uri("urn:service:sos")
    assert isinstance(uri, AbsoluteUri)
    assert (uri.scheme, uri.opaque) == ("urn", "service:sos")
    assert str(uri) == "urn:service:sos"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        "sip:",
        "sip:@example.com",  # empty user
        "sip:alice@",  # no host
        "sip:alice@exa mple.com",  # white space
        "<sip:alice@example.com>",
        'sip:"alice"@example.com',
        "sip:alice@-example.com",  # host starting with '-'
        "sip:alice@exa!mple.com",
        "sip:alice@example.com:",  # empty port
        "sip:alice@example.com:65536",
        "sip:alice@example.com:123456",
        "sip:alice@example.com:50a0",
        "sip:alice@example.com:\u00b2",  # superscript two: not an ASCII digit
        "sip:alice@example.com:\u0665\u0660\u0666\u0660",  # Arabic-Indic digits
        "sip:alice@[2001:db8::1",  # unterminated IPv6 reference
        "sip:alice@[2001:db8::zz]",
        "sip:alice@[::1]x",
        "sip:alice@example.com;;lr",  # empty parameter
        "sip:alice@example.com;a b=c",
        "sip:alice@example.com?subject",  # header without '='
        "sip:alice@example.com?",
        "tel:",
        "tel:+1 555",
        "tel:xyz;x",  # (a-f would be valid local-number hex digits)
        "1sip:alice@example.com",  # scheme must start with a letter
        "unknown:",
    ],
)
def test_malformed_uris_are_the_peers_fault(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_uri(text)
    assert info.value.status == 400


def test_sipuri_parse_rejects_other_schemes_with_416() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SipUri.parse("tel:+15550123")
    assert info.value.status == 416
    assert SipUri.parse("sip:a@b").host == "b"


def test_split_params() -> None:
    assert split_params("") == {}
    assert split_params("a=1;B;c=") == {"a": "1", "b": None, "c": ""}
    with pytest.raises(RemoteProtocolError):
        split_params("a;;b")


# -- serialization ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "sip:example.com",
        "sip:alice@example.com",
        "sips:alice:pw@example.com:5061",
        "sip:alice@[2001:db8::1]:5060;transport=tcp;lr",
        "sip:alice@example.com;maddr=239.255.255.1;ttl=15?subject=project%20x&priority=urgent",
        "sip:user;par=u%40example.net@example.com",
        "sip:%00@host5.example.com",
        "tel:+1-201-555-0123;ext=22",
        "urn:service:sos",
    ],
)
def test_canonical_text_round_trips(text: str) -> None:
    uri = parse_uri(text)
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


def test_copy_is_independent() -> None:
    uri = sip("sip:alice@example.com;lr?h=1")
    dup = uri.copy()
    assert dup == uri and dup is not uri
    dup.params["transport"] = "tcp"
    dup.headers["x"] = "y"
    assert uri.params == {"lr": None} and uri.headers == {"h": "1"}


# -- RFC 3261 §19.1.4 comparison ----------------------------------------------------------------

#: Every pair §19.1.4 lists as equivalent.
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]

#: Every pair §19.1.4 lists as not equivalent (with the reason it gives).
NOT_EQUIVALENT = [
    # different usernames (userinfo is case-sensitive)
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    # can resolve to different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    # can resolve to different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    # can resolve to different port and transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    # different header component
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    # even though that's what phone21.boxesbybob.com resolves to
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_examples(a: str, b: str) -> None:
    assert parse_uri(a).equivalent(parse_uri(b))
    assert parse_uri(b).equivalent(parse_uri(a))


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_rfc3261_not_equivalent_examples(a: str, b: str) -> None:
    assert not parse_uri(a).equivalent(parse_uri(b))
    assert not parse_uri(b).equivalent(parse_uri(a))


def test_equality_is_not_transitive() -> None:
    """§19.1.4: carol@chicago.com matches both ;security=on and ;security=off, which differ."""
    plain = parse_uri("sip:carol@chicago.com")
    on = parse_uri("sip:carol@chicago.com;security=on")
    off = parse_uri("sip:carol@chicago.com;security=off")
    assert plain.equivalent(on) and plain.equivalent(off)
    assert not on.equivalent(off)


def test_sip_and_sips_are_never_equivalent() -> None:
    assert not sip("sip:alice@atlanta.com").equivalent(sip("sips:alice@atlanta.com"))


@pytest.mark.parametrize("name", ["user", "ttl", "method", "maddr"])
def test_special_parameter_in_one_uri_only_never_matches(name: str) -> None:
    a = sip("sip:alice@atlanta.com")
    b = sip(f"sip:alice@atlanta.com;{name}=x")
    assert not a.equivalent(b) and not b.equivalent(a)


def test_user_parameter_even_with_its_default_value() -> None:
    assert not sip("sip:bob@biloxi.com").equivalent(sip("sip:bob@biloxi.com;user=ip"))


def test_parameter_values_compare_case_insensitively() -> None:
    assert sip("sip:a@h;method=REGISTER").equivalent(sip("sip:a@h;method=register"))
    assert not sip("sip:a@h;method=INVITE").equivalent(sip("sip:a@h;method=REGISTER"))


def test_password_is_compared() -> None:
    assert not sip("sip:a:x@h").equivalent(sip("sip:a:y@h"))
    assert sip("sip:a:%78@h").equivalent(sip("sip:a:x@h"))


def test_escaped_reserved_characters_differ_from_literal_ones() -> None:
    """Only characters outside the reserved set equal their %HEX HEX form (§19.1.4)."""
    assert not sip("sip:a%3Bb@h").equivalent(sip("sip:a;b@h"))
    assert sip("sip:a%3Bb@h").equivalent(sip("sip:a%3bb@h"))  # hex digits: any case
    assert sip("sip:%7Eme@h").equivalent(sip("sip:~me@h"))


def test_ip_hosts_compare_as_addresses() -> None:
    assert sip("sip:a@[2001:db8::1]").equivalent(sip("sip:a@[2001:0db8:0:0::1]"))
    assert not sip("sip:a@[2001:db8::1]").equivalent(sip("sip:a@[2001:db8::2]"))


def test_header_components_are_never_ignored() -> None:
    assert not sip("sip:a@h?x=1").equivalent(sip("sip:a@h?x=2"))
    assert sip("sip:a@h?X=%41").equivalent(sip("sip:a@h?x=A"))


def test_other_kinds_are_not_equivalent_to_sip() -> None:
    assert not sip("sip:+15550123@h").equivalent(parse_uri("tel:+15550123"))
    assert not sip("sip:a@h").equivalent("sip:a@h")


def test_tel_uri_comparison() -> None:
    """RFC 3966 §4: visual separators are ignored; parameters compare case-insensitively."""
    assert parse_uri("tel:+1-201-555-0123").equivalent(parse_uri("tel:+1.201.555.0123"))
    assert parse_uri("tel:7042;phone-context=EXAMPLE.com").equivalent(
        parse_uri("tel:7042;phone-context=example.com")
    )
    assert not parse_uri("tel:+12015550123").equivalent(parse_uri("tel:+12015550124"))
    assert not parse_uri("tel:7042;phone-context=a.com").equivalent(parse_uri("tel:7042"))


def test_opaque_uri_comparison() -> None:
    assert parse_uri("urn:service:sos").equivalent(parse_uri("URN:service:sos"))
    assert not parse_uri("urn:service:sos").equivalent(parse_uri("urn:service:police"))
