"""Tests of SIP digest authentication (softswitch.sip.auth)."""

from __future__ import annotations

import ast
import functools
import hashlib
import hmac
import inspect
from collections.abc import Callable

import pytest

from softswitch.sip import auth
from softswitch.sip.auth import (
    AuthResult,
    DigestAuthenticator,
    build_authorization,
    compute_response,
    format_challenge,
    ha1,
    parse_auth_params,
)
from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError

REALM = "pbx.example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
URI = "sip:pbx.example.com"
USERS = {"alice": "wonderland", "bob": "builder"}

_HASHLIB_NAMES = {"MD5": "md5", "SHA-256": "sha256"}


def _h(algorithm: str, text: str | bytes) -> str:
    """Independent reference hash, straight from hashlib."""
    data = text.encode() if isinstance(text, str) else text
    return hashlib.new(_HASHLIB_NAMES[algorithm], data).hexdigest()


def _lookup(users: dict[str, str] = USERS) -> Callable[[str, str, str], str | None]:
    def lookup(username: str, realm: str, algorithm: str) -> str | None:
        password = users.get(username)
        if password is None:
            return None
        return _h(algorithm, f"{username}:{realm}:{password}")

    return lookup


def _challenge_params(authn: DigestAuthenticator, now: float) -> dict[str, dict[str, str]]:
    """Issue a challenge and return its parameters keyed by algorithm."""
    out = {}
    for value in authn.challenge(now):
        scheme, params = parse_auth_params(value)
        assert scheme == "Digest"
        out[params["algorithm"]] = params
    return out


def _answer(
    authn: DigestAuthenticator,
    now: float,
    *,
    username: str = "alice",
    password: str | None = None,
    algorithm: str = "SHA-256",
    nc: int = 1,
    method: str = "REGISTER",
    nonce: str | None = None,
    realm: str = REALM,
    cnonce: str = "c0ffee",
    qop: str | None = "auth",
    opaque: str | None = None,
    body: bytes = b"",
) -> tuple[str, str]:
    """Return (nonce, Authorization value) answering a fresh challenge or the given nonce."""
    if nonce is None:
        nonce = _challenge_params(authn, now)[algorithm]["nonce"]
    value = build_authorization(
        username=username,
        realm=realm,
        nonce=nonce,
        method=method,
        uri=URI,
        cnonce=cnonce,
        password=USERS.get(username, "x") if password is None else password,
        algorithm=algorithm,
        qop=qop,
        nc=nc,
        opaque=opaque,
        body=body,
    )
    return nonce, value


# --------------------------------------------------------------------------------------------
# Known answers: RFC 7616 §3.9.1
# --------------------------------------------------------------------------------------------

RFC = {
    "username": "Mufasa",
    "password": "Circle of Life",
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "method": "GET",
    "uri": "/dir/index.html",
}
RFC_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_reference_derivation(algorithm: str) -> None:
    # The published values, derived here with hashlib alone (checks the test's own formula).
    a1 = _h(algorithm, f"{RFC['username']}:{RFC['realm']}:{RFC['password']}")
    a2 = _h(algorithm, f"{RFC['method']}:{RFC['uri']}")
    response = _h(algorithm, f"{a1}:{RFC['nonce']}:00000001:{RFC['cnonce']}:auth:{a2}")
    assert response == RFC_RESPONSES[algorithm]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_compute_response(algorithm: str) -> None:
    a1 = ha1(RFC["username"], RFC["realm"], RFC["password"], algorithm)
    assert a1 == _h(algorithm, f"{RFC['username']}:{RFC['realm']}:{RFC['password']}")
    response = compute_response(
        algorithm=algorithm,
        ha1=a1,
        nonce=RFC["nonce"],
        method=RFC["method"],
        uri=RFC["uri"],
        qop="auth",
        nc="00000001",
        cnonce=RFC["cnonce"],
    )
    assert response == RFC_RESPONSES[algorithm]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_build_authorization(algorithm: str) -> None:
    value = build_authorization(
        username=RFC["username"],
        realm=RFC["realm"],
        nonce=RFC["nonce"],
        method=RFC["method"],
        uri=RFC["uri"],
        cnonce=RFC["cnonce"],
        password=RFC["password"],
        algorithm=algorithm,
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    )
    scheme, params = parse_auth_params(value)
    assert scheme == "Digest"
    assert params == {
        "username": RFC["username"],
        "realm": RFC["realm"],
        "nonce": RFC["nonce"],
        "uri": RFC["uri"],
        "response": RFC_RESPONSES[algorithm],
        "algorithm": algorithm,
        "cnonce": RFC["cnonce"],
        "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
        "qop": "auth",
        "nc": "00000001",
    }
    # qop and nc are tokens on the wire (RFC 7616 §3.4), not quoted strings.
    assert "qop=auth," in value and value.endswith("nc=00000001")


def test_rfc2069_and_auth_int_formulas() -> None:
    a1 = _h("MD5", "u:r:p")
    plain = compute_response(
        algorithm="MD5", ha1=a1, nonce="n", method="INVITE", uri="sip:x", qop=None
    )
    assert plain == _h("MD5", f"{a1}:n:{_h('MD5', 'INVITE:sip:x')}")
    body = b"v=0\r\n"
    a2 = _h("SHA-256", f"INVITE:sip:x:{_h('SHA-256', body)}")
    a1s = _h("SHA-256", "u:r:p")
    integrity = compute_response(
        algorithm="SHA-256",
        ha1=a1s,
        nonce="n",
        method="INVITE",
        uri="sip:x",
        qop="auth-int",
        nc="00000002",
        cnonce="cn",
        body=body,
    )
    assert integrity == _h("SHA-256", f"{a1s}:n:00000002:cn:auth-int:{a2}")


def test_ha1_is_utf8_and_rejects_unknown_algorithm() -> None:
    assert ha1("jürgen", REALM, "pässwörd", "sha-256") == _h(
        "SHA-256", f"jürgen:{REALM}:pässwörd".encode()
    )
    with pytest.raises(LocalProtocolError):
        ha1("a", "b", "c", "SHA-1")


# --------------------------------------------------------------------------------------------
# Parsing and formatting header values
# --------------------------------------------------------------------------------------------


def test_parse_tricky_values() -> None:
    value = (
        ' \tDigest  USERNAME = "al\\"ice" ,Realm="a, b\\\\c"\r\n ,,  nonce\t=\t"x=,y" ,'
        ' uri="sip:bob@example.com;transport=tcp", NC=00000001, qop = auth,'
        ' algorithm=SHA-256, response="", opaque="", cnonce=abc/def+==,  '
    )
    scheme, params = parse_auth_params(value)
    assert scheme == "Digest"
    assert params == {
        "username": 'al"ice',
        "realm": "a, b\\c",
        "nonce": "x=,y",
        "uri": "sip:bob@example.com;transport=tcp",
        "nc": "00000001",
        "qop": "auth",
        "algorithm": "SHA-256",
        "response": "",
        "opaque": "",
        "cnonce": "abc/def+==",
    }


def test_parse_keeps_scheme_case_and_allows_no_params() -> None:
    assert parse_auth_params("digest") == ("digest", {})
    assert parse_auth_params("DIGEST   ") == ("DIGEST", {})
    assert parse_auth_params('Digest qop="auth,auth-int"')[1] == {"qop": "auth,auth-int"}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "expected an authentication scheme"),
        ("   ", "expected an authentication scheme"),
        ('"Digest" realm=x', "expected an authentication scheme"),
        ("Digest,realm=x", "expected an authentication scheme"),
        ("Digest realm", "expected name=value"),
        ("Digest realm=", "expected name=value"),
        ('Digest realm="abc, nonce=x', "unterminated quoted string"),
        ('Digest realm="abc\\"', "unterminated quoted string"),
        ("Digest realm=a nonce=b", "expected name=value"),
        ('Digest realm="a" "b"', "expected name=value"),
        ("Digest realm=a, REALM=b", "duplicate parameter 'realm'"),
        ("Digest =x", "expected name=value"),
    ],
)
def test_parse_malformed(value: str, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_auth_params(value)
    assert info.value.status == 400
    assert fragment in info.value.message


def test_format_challenge_canonical() -> None:
    value = format_challenge(
        'say "hi"', "n0", algorithm="sha-256", qop=("auth", "auth-int"), opaque="op", stale=True
    )
    assert value == (
        'Digest realm="say \\"hi\\"", nonce="n0", opaque="op", algorithm=SHA-256, '
        'qop="auth,auth-int", stale=true'
    )
    assert parse_auth_params(value)[1]["realm"] == 'say "hi"'
    assert format_challenge("r", "n") == 'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"'


def test_formatting_refuses_header_injection() -> None:
    with pytest.raises(LocalProtocolError):
        format_challenge("r\r\nX-Evil: 1", "n")
    with pytest.raises(LocalProtocolError):
        build_authorization(
            username="a\nb", realm="r", nonce="n", method="M", uri="u", cnonce="c", password="p"
        )


def test_build_authorization_misuse() -> None:
    build = functools.partial(
        build_authorization, username="a", realm="r", nonce="n", method="M", uri="u"
    )
    with pytest.raises(LocalProtocolError):
        build(cnonce="c")  # neither password nor ha1
    with pytest.raises(LocalProtocolError):
        build(cnonce="c", password="p", ha1="0" * 32)
    with pytest.raises(LocalProtocolError):
        build(cnonce="c", password="p", nc=0)
    with pytest.raises(LocalProtocolError):
        build(cnonce="c", password="p", nc=1 << 32)
    with pytest.raises(LocalProtocolError):
        build(cnonce="", password="p")
    with pytest.raises(LocalProtocolError):
        build(cnonce="c", ha1="abc")
    with pytest.raises(LocalProtocolError):
        build(cnonce="c", password="p", algorithm="SHA-1")
    assert "nc=" not in build(cnonce="", password="p", qop=None)


def test_build_authorization_from_ha1_equals_from_password() -> None:
    build = functools.partial(
        build_authorization, username="a", realm="r", nonce="n", method="M", uri="u"
    )
    stored = ha1("a", "r", "p", "SHA-256")
    assert build(cnonce="c", ha1=stored.upper(), algorithm="SHA-256", nc=7) == build(
        cnonce="c", password="p", algorithm="SHA-256", nc=7
    )


# --------------------------------------------------------------------------------------------
# Challenges and nonces
# --------------------------------------------------------------------------------------------


def test_challenge_offers_sha256_first_with_one_fresh_nonce() -> None:
    authn = DigestAuthenticator(REALM, SECRET, algorithms=("MD5", "SHA-256"))
    values = authn.challenge(10.0)
    parsed = [parse_auth_params(v)[1] for v in values]
    assert [p["algorithm"] for p in parsed] == ["SHA-256", "MD5"]
    for p in parsed:
        assert p["realm"] == REALM
        assert p["qop"] == "auth"
        assert "stale" not in p
        assert "opaque" not in p
    assert parsed[0]["nonce"] == parsed[1]["nonce"]
    assert 'qop="auth"' in values[0]


def test_challenge_stale_and_opaque() -> None:
    authn = DigestAuthenticator(REALM, SECRET, algorithms=("MD5",), opaque="xyz")
    (value,) = authn.challenge(1.0, stale=True)
    params = parse_auth_params(value)[1]
    assert params["stale"] == "true"
    assert params["opaque"] == "xyz"
    assert params["algorithm"] == "MD5"


def test_nonces_issued_in_the_same_instant_differ() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    nonces = {_challenge_params(authn, 5.0)["MD5"]["nonce"] for _ in range(50)}
    assert len(nonces) == 50


def test_nonces_depend_on_secret() -> None:
    a = DigestAuthenticator(REALM, SECRET)
    b = DigestAuthenticator(REALM, b"another secret of enough length")
    assert _challenge_params(a, 5.0)["MD5"]["nonce"] != _challenge_params(b, 5.0)["MD5"]["nonce"]


def test_constructor_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        DigestAuthenticator(REALM, b"short")
    with pytest.raises(LocalProtocolError):
        DigestAuthenticator(REALM, SECRET, nonce_ttl=0)
    with pytest.raises(LocalProtocolError):
        DigestAuthenticator(REALM, SECRET, algorithms=())
    with pytest.raises(LocalProtocolError):
        DigestAuthenticator(REALM, SECRET, algorithms=("SHA-1",))
    with pytest.raises(LocalProtocolError):
        DigestAuthenticator(REALM, SECRET, max_tracked_nonces=0)
    with pytest.raises(LocalProtocolError):
        DigestAuthenticator(REALM, SECRET, qop=("auth-conf",))
    with pytest.raises(LocalProtocolError):
        DigestAuthenticator(REALM, SECRET).challenge(float("nan"))


def test_core_does_no_io_imports() -> None:
    tree = ast.parse(inspect.getsource(auth))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"time", "random", "os", "secrets", "asyncio", "socket"}


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_good_password(algorithm: str) -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 100.0, algorithm=algorithm)
    result = authn.verify("REGISTER", value, _lookup(), 101.0)
    assert result == AuthResult(True, "alice", False, "ok", URI)
    assert len(authn) == 1


def test_lookup_receives_username_realm_algorithm() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    calls: list[tuple[str, str, str]] = []
    inner = _lookup()

    def lookup(username: str, realm: str, algorithm: str) -> str | None:
        calls.append((username, realm, algorithm))
        return inner(username, realm, algorithm)

    _, value = _answer(authn, 0.0, username="bob", algorithm="SHA-256")
    assert authn.verify("REGISTER", value, lookup, 0.0).ok
    assert calls == [("bob", REALM, "SHA-256")]


def test_ha1_stored_password() -> None:
    store = {("carol", "MD5"): ha1("carol", REALM, "s3cret", "MD5")}
    authn = DigestAuthenticator(REALM, SECRET, algorithms=("MD5",))

    def lookup(username: str, realm: str, algorithm: str) -> str | None:
        return store.get((username, algorithm))

    _, value = _answer(authn, 0.0, username="carol", password="s3cret", algorithm="MD5")
    assert authn.verify("REGISTER", value, lookup, 1.0).ok
    _, value = _answer(authn, 0.0, username="carol", password="S3cret", algorithm="MD5")
    assert authn.verify("REGISTER", value, lookup, 1.0).reason == "wrong password"


def test_wrong_password() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 0.0, password="guess")
    result = authn.verify("REGISTER", value, _lookup(), 1.0)
    assert result == AuthResult(False, "alice", False, "wrong password", URI)
    assert len(authn) == 0


def test_wrong_method_fails() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 0.0, method="REGISTER")
    assert authn.verify("INVITE", value, _lookup(), 1.0).reason == "wrong password"


def test_unknown_user_looks_like_wrong_password(monkeypatch: pytest.MonkeyPatch) -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    compared: list[tuple[str, str]] = []
    real_compare = hmac.compare_digest

    def counting_compare(a: str, b: str) -> bool:
        if isinstance(a, str):
            compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting_compare)
    _, unknown = _answer(authn, 0.0, username="mallory", password="guess")
    _, wrong = _answer(authn, 0.0, username="alice", password="guess")
    r_unknown = authn.verify("REGISTER", unknown, _lookup(), 1.0)
    n_unknown = len(compared)
    r_wrong = authn.verify("REGISTER", wrong, _lookup(), 1.0)
    n_wrong = len(compared) - n_unknown
    assert (r_unknown.reason, r_wrong.reason) == ("unknown user", "wrong password")
    assert (r_unknown.ok, r_unknown.stale) == (r_wrong.ok, r_wrong.stale) == (False, False)
    # The same work: one digest compared in constant time in both cases, of the same length.
    assert n_unknown == n_wrong == 1
    assert len(compared[0][0]) == len(compared[1][0]) == 64
    # A user who knows the dummy cannot get in: an unknown user never authenticates, whatever
    # response he sends.
    assert len(authn) == 0


def test_stale_nonce_after_ttl() -> None:
    authn = DigestAuthenticator(REALM, SECRET, nonce_ttl=30.0)
    nonce, value = _answer(authn, 1000.0)
    assert authn.verify("REGISTER", value, _lookup(), 1029.9).ok
    _, value2 = _answer(authn, 1000.0, nonce=nonce, nc=2)
    result = authn.verify("REGISTER", value2, _lookup(), 1030.0)
    assert result == AuthResult(False, "alice", True, "nonce expired", URI)
    # An expired nonce with a wrong password is not "stale" (RFC 7616 §3.3).
    _, bad = _answer(authn, 1000.0, nonce=nonce, nc=3, password="guess")
    assert authn.verify("REGISTER", bad, _lookup(), 1030.0) == AuthResult(
        False, "alice", False, "wrong password", URI
    )
    # After a stale answer the client retries with a fresh nonce and succeeds.
    _, fresh = _answer(authn, 1030.0)
    assert authn.verify("REGISTER", fresh, _lookup(), 1030.5).ok


def test_nonce_forged_with_another_secret() -> None:
    ours = DigestAuthenticator(REALM, SECRET)
    theirs = DigestAuthenticator(REALM, b"not our secret, but long enough")
    _, value = _answer(theirs, 0.0)
    assert theirs.verify("REGISTER", value, _lookup(), 1.0).ok
    # Right password, nonce not ours (e.g. issued before a restart with a new secret): stale,
    # so the client retries silently with one of our nonces.
    assert ours.verify("REGISTER", value, _lookup(), 1.0) == AuthResult(
        False, "alice", True, "bad nonce", URI
    )
    assert len(ours) == 0
    # Wrong password on a forged nonce: no stale hint, counted as a wrong password.
    _, guess = _answer(theirs, 0.0, password="guess")
    assert ours.verify("REGISTER", guess, _lookup(), 1.0) == AuthResult(
        False, "alice", False, "wrong password", URI
    )


def test_nonce_from_another_realm_with_same_secret() -> None:
    ours = DigestAuthenticator(REALM, SECRET)
    other = DigestAuthenticator("other.example.com", SECRET)
    nonce = _challenge_params(other, 0.0)["SHA-256"]["nonce"]
    _, value = _answer(ours, 0.0, nonce=nonce)
    assert ours.verify("REGISTER", value, _lookup(), 1.0).reason == "bad nonce"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda n: n[:-1] + ("A" if n[-1] != "A" else "B"),  # MAC changed
        lambda n: ("A" if n[0] != "A" else "B") + n[1:],  # timestamp changed
        lambda n: n[:-1],  # too short
        lambda n: n + "A",  # too long
        lambda n: n[:-1] + "=",  # padding where there is none
        lambda n: n[:10] + "-" + n[11:],  # base64url alphabet, not ours
        lambda n: n[:10] + " " + n[11:],  # a character base64 decoding would skip
        lambda n: "",
        lambda n: "é" * 64,
    ],
)
def test_tampered_nonce(mangle: Callable[[str], str]) -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    nonce = _challenge_params(authn, 0.0)["SHA-256"]["nonce"]
    _, value = _answer(authn, 0.0, nonce=mangle(nonce))
    result = authn.verify("REGISTER", value, _lookup(), 1.0)
    assert (result.ok, result.stale, result.reason) == (False, True, "bad nonce")
    assert len(authn) == 0


def test_nonce_from_the_future_is_bad() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 500.0)
    result = authn.verify("REGISTER", value, _lookup(), 499.0)
    assert (result.ok, result.stale, result.reason) == (False, True, "bad nonce")
    assert authn.verify("REGISTER", value, _lookup(), 500.0).ok


def test_nonce_count_replay() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    nonce, v1 = _answer(authn, 0.0, nc=1)
    lookup = _lookup()
    assert authn.verify("REGISTER", v1, lookup, 1.0).ok
    assert authn.verify("REGISTER", v1, lookup, 1.0) == AuthResult(
        False, "alice", False, "nonce-count replay", URI
    )
    _, v2 = _answer(authn, 0.0, nonce=nonce, nc=2, method="INVITE")
    assert authn.verify("INVITE", v2, lookup, 2.0).ok
    _, v1b = _answer(authn, 0.0, nonce=nonce, nc=1, cnonce="other")
    assert authn.verify("REGISTER", v1b, lookup, 2.0).reason == "nonce-count replay"
    # A failed attempt with a huge nc must not burn the client's nonce-counts.
    _, forged = _answer(authn, 0.0, nonce=nonce, nc=0xFFFFFFFF, password="guess")
    assert authn.verify("REGISTER", forged, lookup, 2.0).reason == "wrong password"
    _, v5 = _answer(authn, 0.0, nonce=nonce, nc=5)
    assert authn.verify("REGISTER", v5, lookup, 3.0).ok
    _, v4 = _answer(authn, 0.0, nonce=nonce, nc=4)
    assert authn.verify("REGISTER", v4, lookup, 3.0).reason == "nonce-count replay"
    assert len(authn) == 1


def test_nonce_count_zero_is_refused() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    nonce, value = _answer(authn, 0.0)
    zero = value.replace("nc=00000001", "nc=00000000")
    # Recompute the response for nc=0 so that only the count is wrong.
    params = parse_auth_params(zero)[1]
    response = compute_response(
        algorithm="SHA-256",
        ha1=ha1("alice", REALM, USERS["alice"], "SHA-256"),
        nonce=nonce,
        method="REGISTER",
        uri=URI,
        qop="auth",
        nc="00000000",
        cnonce=params["cnonce"],
    )
    zero = zero.replace(params["response"], response)
    assert authn.verify("REGISTER", zero, _lookup(), 1.0).reason == "nonce-count replay"


def test_table_bound_evicts_oldest_without_reopening_replay() -> None:
    authn = DigestAuthenticator(REALM, SECRET, max_tracked_nonces=3)
    lookup = _lookup()
    nonces = []
    for i in range(5):
        nonces.append(_challenge_params(authn, float(i))["SHA-256"]["nonce"])
    # Use nonces 1..4 (nonce 0 issued but never used).
    for i in range(1, 5):
        _, value = _answer(authn, 0.0, nonce=nonces[i])
        assert authn.verify("REGISTER", value, lookup, 10.0).ok
        assert len(authn) == min(i, 3)
    assert authn.tracked_nonces == 3
    # nonce 1 was evicted: replaying its nc=1 request must not be accepted again.
    _, replay = _answer(authn, 0.0, nonce=nonces[1])
    assert authn.verify("REGISTER", replay, lookup, 11.0) == AuthResult(
        False, "alice", True, "nonce evicted", URI
    )
    # Nor a later count on it, nor the older unused nonce 0: the client must fetch a new one.
    _, later = _answer(authn, 0.0, nonce=nonces[1], nc=9)
    assert authn.verify("REGISTER", later, lookup, 11.0).reason == "nonce evicted"
    _, older = _answer(authn, 0.0, nonce=nonces[0])
    assert authn.verify("REGISTER", older, lookup, 11.0).reason == "nonce evicted"
    # Tracked nonces keep working.
    _, v = _answer(authn, 0.0, nonce=nonces[4], nc=2)
    assert authn.verify("REGISTER", v, lookup, 11.0).ok
    assert len(authn) == 3


def test_table_expiry_and_timer() -> None:
    authn = DigestAuthenticator(REALM, SECRET, nonce_ttl=60.0)
    lookup = _lookup()
    assert authn.next_deadline() is None
    for issued in (100.0, 110.0, 120.0):
        _, value = _answer(authn, issued)
        assert authn.verify("REGISTER", value, lookup, 125.0).ok
    assert len(authn) == 3
    assert authn.next_deadline() == 160.0
    authn.handle_timer(159.9)
    assert len(authn) == 3
    authn.handle_timer(160.0)
    assert len(authn) == 2
    assert authn.next_deadline() == 170.0
    authn.handle_timer(1000.0)
    assert len(authn) == 0
    assert authn.tracked_nonces == 0
    assert authn.next_deadline() is None


def test_verify_prunes_expired_entries_without_timer() -> None:
    authn = DigestAuthenticator(REALM, SECRET, nonce_ttl=10.0)
    lookup = _lookup()
    _, value = _answer(authn, 0.0)
    assert authn.verify("REGISTER", value, lookup, 1.0).ok
    _, value = _answer(authn, 50.0)
    assert authn.verify("REGISTER", value, lookup, 51.0).ok
    assert len(authn) == 1


def test_realm_mismatch() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    nonce = _challenge_params(authn, 0.0)["SHA-256"]["nonce"]
    _, value = _answer(authn, 0.0, nonce=nonce, realm="evil.example.com")
    assert authn.verify("REGISTER", value, _lookup(), 1.0) == AuthResult(
        False, "alice", False, "realm mismatch", URI
    )


def test_algorithm_not_offered_is_refused() -> None:
    authn = DigestAuthenticator(REALM, SECRET, algorithms=("SHA-256",))
    nonce = _challenge_params(authn, 0.0)["SHA-256"]["nonce"]
    _, value = _answer(authn, 0.0, nonce=nonce, algorithm="MD5")
    assert authn.verify("REGISTER", value, _lookup(), 1.0).reason == "unsupported algorithm"
    # Without an algorithm parameter the algorithm is MD5 (RFC 7616 §3.4).
    no_alg = value.replace(", algorithm=MD5", "")
    assert "algorithm" not in parse_auth_params(no_alg)[1]
    assert authn.verify("REGISTER", no_alg, _lookup(), 1.0).reason == "unsupported algorithm"
    md5 = DigestAuthenticator(REALM, SECRET, algorithms=("MD5",))
    assert md5.verify("REGISTER", no_alg, _lookup(), 1.0).ok


def test_case_insensitive_tokens_and_uppercase_hex() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 0.0)
    params = parse_auth_params(value)[1]
    shouted = (
        value.replace("algorithm=SHA-256", "ALGORITHM=sha-256")
        .replace("qop=auth", "QOP=AUTH")
        .replace(params["response"], params["response"].upper())
    )
    # qop is hashed as sent by the client; the client sent lower case, so keep it.
    shouted = shouted.replace("QOP=AUTH", "QOP=auth")
    assert authn.verify("REGISTER", shouted, _lookup(), 1.0).ok


@pytest.mark.parametrize(
    ("authorization", "reason", "username"),
    [
        ("Digest", "malformed", None),
        ('Digest username="alice", realm=', "malformed", None),
        ('Basic QWxhZGRpbjpvcGVu="', "malformed", None),
        ("Basic realm=x, username=alice", "unsupported scheme", "alice"),
        (f'Digest username="alice", realm="{REALM}", nonce="n", uri="{URI}"', "malformed", "alice"),
    ],
)
def test_malformed_credentials_never_raise(
    authorization: str, reason: str, username: str | None
) -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    result = authn.verify("REGISTER", authorization, _lookup(), 1.0)
    assert (result.ok, result.reason, result.username) == (False, reason, username)


@pytest.mark.parametrize(
    ("remove", "reason"),
    [
        ("uri", "malformed"),
        ("username", "malformed"),
        ("nonce", "malformed"),
        ("response", "malformed"),
        ("realm", "malformed"),
        ("cnonce", "malformed"),
        ("nc", "malformed"),
        ("qop", "qop required"),
    ],
)
def test_missing_parameter(remove: str, reason: str) -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 0.0)
    scheme, params = parse_auth_params(value)
    del params[remove]
    rebuilt = "Digest " + ", ".join(f'{k}="{v}"' for k, v in params.items())
    result = authn.verify("REGISTER", rebuilt, _lookup(), 1.0)
    assert (result.ok, result.reason) == (False, reason)
    assert result.uri == params.get("uri")


def test_bad_nc_and_response_syntax() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 0.0)
    params = parse_auth_params(value)[1]
    assert authn.verify(
        "REGISTER", value.replace("nc=00000001", "nc=1g"), _lookup(), 1.0
    ).reason == ("malformed")
    assert (
        authn.verify(
            "REGISTER", value.replace("nc=00000001", "nc=000000001"), _lookup(), 1.0
        ).reason
        == "malformed"
    )
    short = value.replace(params["response"], params["response"][:-2])
    assert authn.verify("REGISTER", short, _lookup(), 1.0).reason == "malformed"
    non_hex = value.replace(params["response"], "z" + params["response"][1:])
    assert authn.verify("REGISTER", non_hex, _lookup(), 1.0).reason == "malformed"
    unicode = value.replace(params["response"], "é" + params["response"][1:])
    assert authn.verify("REGISTER", unicode, _lookup(), 1.0).reason == "malformed"


def test_uri_is_exposed_for_request_uri_check() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    nonce = _challenge_params(authn, 0.0)["SHA-256"]["nonce"]
    value = build_authorization(
        username="alice",
        realm=REALM,
        nonce=nonce,
        method="INVITE",
        uri="sip:100@pbx.example.com",
        cnonce="abc",
        password=USERS["alice"],
        algorithm="SHA-256",
    )
    result = authn.verify("INVITE", value, _lookup(), 1.0)
    assert result.ok and result.uri == "sip:100@pbx.example.com"


def test_opaque_must_be_echoed() -> None:
    authn = DigestAuthenticator(REALM, SECRET, opaque="op4que")
    nonce = _challenge_params(authn, 0.0)["SHA-256"]["nonce"]
    _, without = _answer(authn, 0.0, nonce=nonce)
    assert authn.verify("REGISTER", without, _lookup(), 1.0).reason == "opaque mismatch"
    _, other = _answer(authn, 0.0, nonce=nonce, opaque="other")
    assert authn.verify("REGISTER", other, _lookup(), 1.0).reason == "opaque mismatch"
    _, good = _answer(authn, 0.0, nonce=nonce, opaque="op4que")
    assert authn.verify("REGISTER", good, _lookup(), 1.0).ok


def test_userhash_is_refused() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 0.0)
    assert authn.verify("REGISTER", value + ", userhash=true", _lookup(), 1.0).reason == (
        "unsupported userhash"
    )
    assert authn.verify("REGISTER", value + ", userhash=false", _lookup(), 1.0).ok


def test_auth_int_only_when_offered_and_covers_body() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    plain = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(plain, 0.0, qop="auth-int", body=body)
    assert plain.verify("REGISTER", value, _lookup(), 1.0, body).reason == "unsupported qop"

    authn = DigestAuthenticator(REALM, SECRET, qop=("auth", "auth-int"))
    assert parse_auth_params(authn.challenge(0.0)[0])[1]["qop"] == "auth,auth-int"
    _, value = _answer(authn, 0.0, qop="auth-int", body=body)
    assert authn.verify("REGISTER", value, _lookup(), 1.0, body).ok
    _, value = _answer(authn, 0.0, qop="auth-int", body=body)
    assert authn.verify("REGISTER", value, _lookup(), 1.0, body + b"x").reason == "wrong password"


def test_rfc2069_refused_by_default_and_single_use_when_allowed() -> None:
    strict = DigestAuthenticator(REALM, SECRET, algorithms=("MD5",))
    _, value = _answer(strict, 0.0, algorithm="MD5", qop=None)
    assert "qop" not in parse_auth_params(value)[1]
    assert strict.verify("REGISTER", value, _lookup(), 1.0).reason == "qop required"

    compat = DigestAuthenticator(REALM, SECRET, algorithms=("MD5",), allow_rfc2069=True)
    nonce, value = _answer(compat, 0.0, algorithm="MD5", qop=None)
    assert compat.verify("REGISTER", value, _lookup(), 1.0).ok
    assert compat.verify("REGISTER", value, _lookup(), 1.0) == AuthResult(
        False, "alice", True, "nonce reused", URI
    )
    # The same nonce cannot be switched to qop=auth afterwards either.
    _, with_qop = _answer(compat, 0.0, nonce=nonce, algorithm="MD5", nc=1)
    assert compat.verify("REGISTER", with_qop, _lookup(), 1.0).reason == "nonce-count replay"
    assert len(compat) == 1


def test_bad_stored_ha1_is_a_local_error() -> None:
    authn = DigestAuthenticator(REALM, SECRET)
    _, value = _answer(authn, 0.0, algorithm="SHA-256")

    def md5_for_everything(username: str, realm: str, algorithm: str) -> str | None:
        return ha1(username, realm, "x", "MD5")

    with pytest.raises(LocalProtocolError):
        authn.verify("REGISTER", value, md5_for_everything, 1.0)


def test_surrogate_escaped_bytes_are_hashed_as_received() -> None:
    # A header decoded with surrogateescape (as the message parser does) hashes its raw bytes.
    raw_user = b"d\xe9bora".decode("utf-8", "surrogateescape")
    authn = DigestAuthenticator(REALM, SECRET)
    stored = hashlib.sha256(b"d\xe9bora:" + REALM.encode() + b":pw").hexdigest()

    def lookup(username: str, realm: str, algorithm: str) -> str | None:
        return stored if username == raw_user else None

    nonce = _challenge_params(authn, 0.0)["SHA-256"]["nonce"]
    value = build_authorization(
        username=raw_user,
        realm=REALM,
        nonce=nonce,
        method="REGISTER",
        uri=URI,
        cnonce="c",
        ha1=stored,
        algorithm="SHA-256",
    )
    assert authn.verify("REGISTER", value, lookup, 1.0).ok
    # A lone surrogate that no byte decodes to is reported, not raised.
    odd = value.replace(f'uri="{URI}"', 'uri="sip:\ud800"')
    assert authn.verify("REGISTER", odd, lookup, 1.0).reason == "malformed"
