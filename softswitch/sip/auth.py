"""SIP digest authentication, sans-I/O (RFC 3261 §22.4, RFC 7616, RFC 8760).

The server side is :class:`DigestAuthenticator`: it writes the ``WWW-Authenticate`` /
``Proxy-Authenticate`` challenge values a registrar or proxy sends with a 401/407 and verifies
the ``Authorization`` / ``Proxy-Authorization`` value of the retried request. The client side is
:func:`build_authorization`. Both use ``qop=auth`` (``auth-int`` on request) with the MD5 and
SHA-256 algorithms.

Design choices:

* **Stateless nonces.** A nonce is ``base64(issued || counter || HMAC-SHA256(key, issued ||
  counter))`` where ``issued`` is the ``now`` given to :meth:`DigestAuthenticator.challenge`
  (IEEE 754 double), ``counter`` a 64-bit per-instance counter so that two nonces issued in the
  same instant differ, and ``key`` is derived from the injected secret and the realm. Any nonce
  can be checked without a table; the only state is the nonce-count table below. The clock is the
  caller's monotonic clock, so a nonce that claims to be issued in the future is not ours.
  Give each process its own secret (for example ``secrets.token_bytes(32)`` at start-up): nonces
  issued before a restart are then refused instead of being accepted by a process that has
  forgotten their nonce-counts. A nonce we did not issue (another secret, tampered, from the
  future) with a response that is correct for it is answered as stale (``"bad nonce"``): RFC 7616
  §3.3 allows ``stale`` exactly when the digest is valid for an invalid nonce, and it lets
  clients retry silently with a fresh nonce after a restart. This tells the peer nothing it could
  not learn by answering a fresh challenge.
* **Replay protection** (RFC 7616 §3.4 ``nc``, §5.5): for every nonce used successfully the
  table keeps the highest nonce-count seen; a request whose ``nc`` is not greater is refused as
  ``"nonce-count replay"``. Entries expire with their nonce and the table holds at most
  ``max_tracked_nonces`` entries. When it is full the oldest nonce is evicted, and every nonce
  issued no later than an evicted one is from then on answered as stale (``"nonce evicted"``),
  so eviction can never reopen a replay window: the client simply retries with a fresh nonce.
* **RFC 2069 compatibility** (no ``qop``) is off by default. Without ``qop`` there is no
  nonce-count and no client nonce, so a captured request could be replayed for the nonce's
  lifetime. With ``allow_rfc2069=True`` such a nonce is accepted once only; a second use is
  answered as stale (``"nonce reused"``) so the client fetches a fresh nonce for every request.
* **Unknown user vs wrong password.** Both compute one response digest (against a dummy HA1 for
  an unknown user) and one :func:`hmac.compare_digest`, and both yield ``ok=False,
  stale=False``; only :attr:`AuthResult.reason` (for logs) tells them apart. The caller must
  answer both identically.
* Not supported: the ``-sess`` algorithm variants, SHA-512-256, ``userhash`` (RFC 7616 §3.4.4)
  and ``username*`` (RFC 7616 §4); a request using them is refused with a distinct reason.
"""

from __future__ import annotations

import binascii
import hashlib
import heapq
import hmac
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthReason",
    "AuthResult",
    "DigestAuthenticator",
    "HA1Lookup",
    "build_authorization",
    "compute_response",
    "format_challenge",
    "ha1",
    "parse_auth_params",
]


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Canonical algorithm name -> hex digest function, strongest first (RFC 7616 §3.2, RFC 8760).
_HEX_DIGEST: Final[dict[str, Callable[[bytes], str]]] = {
    "SHA-256": _sha256_hex,
    "MD5": _md5_hex,
}
_HEX_LEN: Final[dict[str, int]] = {"SHA-256": 64, "MD5": 32}
_CANONICAL: Final[dict[str, str]] = {name.upper(): name for name in _HEX_DIGEST}

#: Digest algorithms this module implements, most preferred first.
SUPPORTED_ALGORITHMS: Final[tuple[str, ...]] = tuple(_HEX_DIGEST)

_SUPPORTED_QOPS: Final[frozenset[str]] = frozenset({"auth", "auth-int"})

AuthReason = Literal[
    "ok",
    "malformed",
    "unsupported scheme",
    "unsupported algorithm",
    "unsupported qop",
    "unsupported userhash",
    "qop required",
    "realm mismatch",
    "opaque mismatch",
    "bad nonce",
    "unknown user",
    "wrong password",
    "nonce expired",
    "nonce evicted",
    "nonce reused",
    "nonce-count replay",
]

#: ``lookup_ha1(username, realm, algorithm)`` -> the stored HA1 in hex, or None if unknown.
HA1Lookup = Callable[[str, str, str], str | None]


def _b(text: str) -> bytes:
    # surrogateescape round-trips the bytes of a message decoded the same way (message.py).
    return text.encode("utf-8", "surrogateescape")


def _canonical_algorithm(algorithm: str) -> str:
    try:
        return _CANONICAL[algorithm.upper()]
    except KeyError:
        raise LocalProtocolError(
            f"unsupported digest algorithm {algorithm!r}; supported: {SUPPORTED_ALGORITHMS}"
        ) from None


# --------------------------------------------------------------------------------------------
# Digest computation (RFC 7616 §3.4.1-§3.4.3)
# --------------------------------------------------------------------------------------------


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """Return ``H(username ":" realm ":" password)`` in lower-case hex (RFC 7616 §3.4.2).

    This is the value a user store keeps instead of the password; the verifier works from it.
    Strings are hashed as UTF-8. Raises :class:`LocalProtocolError` for an unknown algorithm.
    """
    return _ha1_hex(username, realm, password, algorithm)


def _ha1_hex(username: str, realm: str, password: str, algorithm: str) -> str:
    digest = _HEX_DIGEST[_canonical_algorithm(algorithm)]
    return digest(_b(f"{username}:{realm}:{password}"))


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str = "",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """Return the ``response`` parameter in lower-case hex (RFC 7616 §3.4.1, RFC 3261 §22.4).

    With ``qop`` ``"auth"`` or ``"auth-int"`` the response is
    ``H(HA1:nonce:nc:cnonce:qop:HA2)``; with ``qop=None`` it is the RFC 2069 form
    ``H(HA1:nonce:HA2)``. ``HA2`` is ``H(method:uri)``, or ``H(method:uri:H(body))`` for
    ``auth-int`` (RFC 7616 §3.4.3). ``nc`` is the 8-hex-digit string exactly as sent.
    """
    digest = _HEX_DIGEST[_canonical_algorithm(algorithm)]
    if qop is None:
        ha2 = digest(_b(f"{method}:{uri}"))
        return digest(_b(f"{ha1}:{nonce}:{ha2}"))
    if qop == "auth":
        ha2 = digest(_b(f"{method}:{uri}"))
    elif qop == "auth-int":
        ha2 = digest(_b(f"{method}:{uri}:{digest(body)}"))
    else:
        raise LocalProtocolError(f"unsupported qop {qop!r}; supported: auth, auth-int")
    return digest(_b(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


# --------------------------------------------------------------------------------------------
# Header values: parsing (lenient) and formatting (strict)
# --------------------------------------------------------------------------------------------

_LWS = r"[ \t\r\n]*"
_TOKEN = r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+"
_SCHEME_RE: Final = re.compile(rf"({_TOKEN})(?:[ \t\r\n]+|\Z)")
# One parameter, with the separators before it and the comma (or end) after it. The quoted
# string is written as an unrolled loop, about twice as fast as an alternation per character.
_PARAM_RE: Final = re.compile(
    rf"[ \t\r\n,]*({_TOKEN}){_LWS}={_LWS}"
    r'(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s,"]+))'
    rf"{_LWS}(?:,|\Z)",
    re.DOTALL,
)
_UNTERMINATED_RE: Final = re.compile(rf'{_TOKEN}{_LWS}={_LWS}"(?:[^"\\]|\\.)*\\?\Z', re.DOTALL)
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.)", re.DOTALL)
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SEPARATORS: Final = " \t\r\n,"


def _malformed(value: str, pos: int, what: str) -> RemoteProtocolError:
    fragment = value[pos : pos + 24]
    return RemoteProtocolError(
        f"malformed authentication header at offset {pos} ({fragment!r}): {what}", 400
    )


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Parse a challenge or credentials header value into ``(scheme, params)``.

    Handles ``WWW-Authenticate``, ``Proxy-Authenticate``, ``Authorization`` and
    ``Proxy-Authorization`` values (RFC 3261 §25.1 ``challenge`` / ``credentials``, RFC 7235
    §2.1). Lenient: LWS is allowed around ``=`` and ``,``, empty list elements are skipped,
    values are quoted strings (backslash escapes removed, RFC 3261 §25.1 ``quoted-pair``) or
    unquoted tokens. Parameter names are case-insensitive and lower-cased in the dict; values are
    kept as written. The scheme is returned as written (compare it case-insensitively).

    Raises :class:`RemoteProtocolError` (status 400) when the value is malformed: no scheme, a
    parameter without ``=`` or value, an unterminated quoted string, a missing comma or a
    duplicate parameter.
    """
    n = len(value)
    pos = len(value) - len(value.lstrip(" \t\r\n"))
    scheme_match = _SCHEME_RE.match(value, pos)
    if scheme_match is None:
        raise _malformed(value, pos, "expected an authentication scheme")
    scheme = scheme_match.group(1)
    params: dict[str, str] = {}
    pos = scheme_match.end()
    match = _PARAM_RE.match
    while pos < n:
        m = match(value, pos)
        if m is None:
            rest = value[pos:]
            if not rest.strip(_SEPARATORS):
                break
            pos += len(rest) - len(rest.lstrip(_SEPARATORS))
            if _UNTERMINATED_RE.match(value, pos) is not None:
                raise _malformed(value, pos, "unterminated quoted string")
            raise _malformed(value, pos, "expected name=value, separated by commas")
        name, quoted, token = m.groups()
        name = name.lower()
        if name in params:
            raise _malformed(value, m.start(1), f"duplicate parameter {name!r}")
        if quoted is None:
            params[name] = token
        elif "\\" in quoted:
            params[name] = _QUOTED_PAIR_RE.sub(r"\1", quoted)
        else:
            params[name] = quoted
        pos = m.end()
    return scheme, params


def _quote(value: str, what: str) -> str:
    """Return ``value`` as an RFC 3261 §25.1 quoted-string; refuse control characters."""
    if _CONTROL_RE.search(value) is not None:
        raise LocalProtocolError(f"{what} contains a control character: {value!r}")
    if '"' in value or "\\" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def format_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: tuple[str, ...] = ("auth",),
    opaque: str | None = None,
    stale: bool = False,
) -> str:
    """Return a ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (RFC 7616 §3.3).

    Canonical form: ``Digest realm="...", nonce="...", opaque="...", algorithm=SHA-256,
    qop="auth", stale=true``. ``opaque`` is left out when None, ``qop`` when empty (an RFC 2069
    challenge), ``stale`` unless true.
    """
    parts = [f"Digest realm={_quote(realm, 'realm')}", f"nonce={_quote(nonce, 'nonce')}"]
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque, 'opaque')}")
    parts.append(f"algorithm={_canonical_algorithm(algorithm)}")
    if qop:
        for option in qop:
            if option not in _SUPPORTED_QOPS:
                raise LocalProtocolError(f"unsupported qop {option!r}")
        parts.append(f'qop="{",".join(qop)}"')
    if stale:
        parts.append("stale=true")
    return ", ".join(parts)


def build_authorization(
    *,
    username: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    cnonce: str,
    password: str | None = None,
    ha1: str | None = None,
    algorithm: str = "MD5",
    qop: str | None = "auth",
    nc: int = 1,
    opaque: str | None = None,
    body: bytes = b"",
) -> str:
    """Return an ``Authorization`` / ``Proxy-Authorization`` value as a client sends it.

    RFC 7616 §3.4, RFC 3261 §22.4. Give exactly one of ``password`` and ``ha1`` (the stored
    ``H(username:realm:password)`` hex). ``cnonce`` comes from the caller's id factory; ``nc``
    is the count of requests sent with this nonce, this one included (1 for the first).
    ``qop=None`` builds an RFC 2069 response without ``nc``/``cnonce``. Raises
    :class:`LocalProtocolError` on a misuse (both or neither secret, bad ``nc``, empty
    ``cnonce``, control characters).
    """
    alg = _canonical_algorithm(algorithm)
    if (password is None) == (ha1 is None):
        raise LocalProtocolError("give exactly one of password and ha1")
    if ha1 is None:
        assert password is not None
        ha1_hex = _ha1_hex(username, realm, password, alg)
    else:
        ha1_hex = ha1.lower()
        if len(ha1_hex) != _HEX_LEN[alg]:
            raise LocalProtocolError(f"ha1 must be {_HEX_LEN[alg]} hex digits for {alg}")
    nc_text = ""
    if qop is not None:
        if not 1 <= nc <= 0xFFFFFFFF:
            raise LocalProtocolError(f"nonce-count must be in 1..0xffffffff, not {nc}")
        if not cnonce:
            raise LocalProtocolError("cnonce must not be empty when qop is used")
        nc_text = f"{nc:08x}"
    response = compute_response(
        algorithm=alg,
        ha1=ha1_hex,
        nonce=nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    parts = [
        f"Digest username={_quote(username, 'username')}",
        f"realm={_quote(realm, 'realm')}",
        f"nonce={_quote(nonce, 'nonce')}",
        f"uri={_quote(uri, 'uri')}",
        f'response="{response}"',
        f"algorithm={alg}",
    ]
    if qop is not None:
        parts.append(f"cnonce={_quote(cnonce, 'cnonce')}")
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque, 'opaque')}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_text}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of :meth:`DigestAuthenticator.verify`.

    ``username`` is the username the credentials claim whenever one could be read (useful for
    logs and brute-force bans); it is authenticated only when ``ok`` is true. ``stale`` means the
    response was correct for a nonce that is no longer usable: re-challenge with
    ``stale=True`` (RFC 7616 §3.3). ``uri`` is the ``uri`` parameter, for the caller to compare
    with the Request-URI (RFC 3261 §22.4). ``reason`` is for logs only and must not be shown to
    the peer: in particular "unknown user" and "wrong password" must be answered identically.
    """

    ok: bool
    username: str | None
    stale: bool
    reason: AuthReason
    uri: str | None = None


_NONCE_PAYLOAD: Final = struct.Struct(">dQ")  # issued (monotonic seconds), counter
_NONCE_TEXT_RE: Final = re.compile(r"[A-Za-z0-9+/]{64}")  # base64 of 16 + 32 bytes, unpadded
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]+")
_NC_RE: Final = re.compile(r"[0-9a-fA-F]{1,8}")
# Recorded for a nonce used without qop: greater than any 8-hex-digit nonce-count.
_NC_EXHAUSTED: Final = 1 << 32


class DigestAuthenticator:
    """Challenges and verifies SIP digest credentials for one realm (RFC 3261 §22.4).

    ``secret`` keys the nonce MAC (at least 16 bytes); ``nonce_ttl`` is how long a nonce stays
    usable, in the seconds of the ``now`` the caller passes; ``algorithms`` are offered and
    accepted (always challenged strongest first); ``qop`` lists the protections offered
    (``"auth"``, optionally ``"auth-int"``); ``opaque``, when given, is sent in every challenge
    and required back unchanged; ``allow_rfc2069`` accepts credentials without ``qop``, one
    request per nonce (see the module docstring).

    Timers: :meth:`next_deadline` is the expiry of the oldest tracked nonce; call
    :meth:`handle_timer` then. :meth:`verify` also prunes expired entries as it goes.
    """

    __slots__ = (
        "_algorithms",
        "_allow_rfc2069",
        "_counter",
        "_dummy_ha1",
        "_evicted_upto",
        "_heap",
        "_mac_key",
        "_max_tracked",
        "_nc",
        "_opaque",
        "_qops",
        "_realm",
        "_ttl",
    )

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        nonce_ttl: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        max_tracked_nonces: int = 100_000,
        qop: tuple[str, ...] = ("auth",),
        opaque: str | None = None,
        allow_rfc2069: bool = False,
    ) -> None:
        if len(secret) < 16:
            raise LocalProtocolError("the digest secret must be at least 16 bytes")
        if not nonce_ttl > 0:
            raise LocalProtocolError(f"nonce_ttl must be positive, not {nonce_ttl!r}")
        if max_tracked_nonces < 1:
            raise LocalProtocolError("max_tracked_nonces must be at least 1")
        if not algorithms:
            raise LocalProtocolError("at least one digest algorithm is required")
        if not qop or any(option not in _SUPPORTED_QOPS for option in qop):
            raise LocalProtocolError(f"qop must be a non-empty subset of auth, auth-int: {qop}")
        wanted = {_canonical_algorithm(name) for name in algorithms}
        _quote(realm, "realm")
        if opaque is not None:
            _quote(opaque, "opaque")
        self._realm = realm
        self._ttl = float(nonce_ttl)
        self._algorithms = tuple(name for name in SUPPORTED_ALGORITHMS if name in wanted)
        self._max_tracked = max_tracked_nonces
        self._qops = tuple(dict.fromkeys(qop))
        self._opaque = opaque
        self._allow_rfc2069 = allow_rfc2069
        self._mac_key = hmac.digest(secret, b"sip digest nonce\x00" + _b(realm), "sha256")
        dummy = hmac.digest(secret, b"sip digest dummy ha1\x00" + _b(realm), "sha256").hex()
        self._dummy_ha1 = {name: dummy[: _HEX_LEN[name]] for name in self._algorithms}
        self._counter = 0
        # nonce payload (issued || counter) -> highest nonce-count seen
        self._nc: dict[bytes, int] = {}
        # (issued, counter, payload), one per entry of _nc; the minimum expires first
        self._heap: list[tuple[float, int, bytes]] = []
        # (issued, counter) of the newest nonce evicted while still valid
        self._evicted_upto: tuple[float, int] = (float("-inf"), -1)

    @property
    def realm(self) -> str:
        """The protection domain this authenticator challenges for."""
        return self._realm

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms challenged and accepted, most preferred first."""
        return self._algorithms

    # -- challenges ---------------------------------------------------------------------------

    def _issue_nonce(self, now: float) -> str:
        if not math.isfinite(now):
            raise LocalProtocolError(f"now must be a finite number, not {now!r}")
        self._counter += 1
        payload = _NONCE_PAYLOAD.pack(now, self._counter)
        mac = hmac.digest(self._mac_key, payload, "sha256")
        return binascii.b2a_base64(payload + mac, newline=False).decode("ascii")

    def challenge(self, now: float, stale: bool = False) -> list[str]:
        """Return the challenge header values for a 401/407, one per algorithm.

        Strongest algorithm first, as RFC 8760 asks of a UAS offering several; all share one
        fresh nonce (as in RFC 7616 §3.9.1). Pass ``stale=True`` after a result with ``stale``.
        """
        nonce = self._issue_nonce(now)
        return [
            format_challenge(
                self._realm,
                nonce,
                algorithm=algorithm,
                qop=self._qops,
                opaque=self._opaque,
                stale=stale,
            )
            for algorithm in self._algorithms
        ]

    # -- verification -------------------------------------------------------------------------

    def _open_nonce(self, nonce: str) -> tuple[float, int, bytes] | None:
        """Return ``(issued, counter, payload)`` of a nonce we issued, else None."""
        if _NONCE_TEXT_RE.fullmatch(nonce) is None:
            return None
        raw = binascii.a2b_base64(nonce)
        payload = raw[: _NONCE_PAYLOAD.size]
        expected = hmac.digest(self._mac_key, payload, "sha256")
        if not hmac.compare_digest(raw[_NONCE_PAYLOAD.size :], expected):
            return None
        issued, counter = _NONCE_PAYLOAD.unpack(payload)
        return issued, counter, payload

    def verify(
        self,
        method: str,
        authorization: str,
        lookup_ha1: HA1Lookup,
        now: float,
        body: bytes = b"",
    ) -> AuthResult:
        """Check an ``Authorization`` / ``Proxy-Authorization`` value (RFC 7616 §3.4).

        ``method`` is the request's method, ``body`` its body (used by ``qop=auth-int`` only).
        ``lookup_ha1(username, realm, algorithm)`` returns the stored HA1 hex for that algorithm
        or None for an unknown user. Never raises for anything the peer sent; raises
        :class:`LocalProtocolError` if ``lookup_ha1`` returns a value of the wrong length.

        Checks, in order: syntax, scheme, realm, algorithm, qop, opaque, then the response
        digest (unknown user / wrong password), then the nonce: authenticity ("bad nonce") and
        expiry ("nonce expired"), both stale since the digest was right, then the nonce-count.
        Only a correct response updates the nonce-count table, so a peer cannot burn the
        nonce-counts of someone else's nonce.
        """
        try:
            scheme, params = parse_auth_params(authorization)
        except RemoteProtocolError:
            return AuthResult(False, None, False, "malformed")
        username = params.get("username")
        uri = params.get("uri")
        if scheme.lower() != "digest":
            return AuthResult(False, username, False, "unsupported scheme", uri)
        nonce = params.get("nonce")
        response = params.get("response")
        realm = params.get("realm")
        if username is None or uri is None or nonce is None or response is None or realm is None:
            return AuthResult(False, username, False, "malformed", uri)
        if realm != self._realm:
            return AuthResult(False, username, False, "realm mismatch", uri)
        algorithm = _CANONICAL.get(params.get("algorithm", "MD5").upper())
        if algorithm is None or algorithm not in self._dummy_ha1:
            return AuthResult(False, username, False, "unsupported algorithm", uri)
        if params.get("userhash", "false").lower() != "false":
            return AuthResult(False, username, False, "unsupported userhash", uri)
        if len(response) != _HEX_LEN[algorithm] or _HEX_RE.fullmatch(response) is None:
            return AuthResult(False, username, False, "malformed", uri)
        qop = params.get("qop")
        nc_text = cnonce = ""
        nc = 0
        if qop is None:
            if not self._allow_rfc2069:
                return AuthResult(False, username, False, "qop required", uri)
        else:
            qop = qop.lower()
            if qop not in self._qops:
                return AuthResult(False, username, False, "unsupported qop", uri)
            nc_text = params.get("nc", "")
            cnonce = params.get("cnonce", "")
            if not cnonce or _NC_RE.fullmatch(nc_text) is None:
                return AuthResult(False, username, False, "malformed", uri)
            nc = int(nc_text, 16)
        if self._opaque is not None and params.get("opaque") != self._opaque:
            return AuthResult(False, username, False, "opaque mismatch", uri)
        stored = lookup_ha1(username, self._realm, algorithm)
        if stored is None:
            ha1_hex = self._dummy_ha1[algorithm]
        else:
            ha1_hex = stored.lower()
            if len(ha1_hex) != _HEX_LEN[algorithm]:
                raise LocalProtocolError(
                    f"lookup_ha1 returned {len(ha1_hex)} characters for {algorithm}; "
                    f"expected {_HEX_LEN[algorithm]} hex digits"
                )
        try:
            expected = compute_response(
                algorithm=algorithm,
                ha1=ha1_hex,
                nonce=nonce,
                method=method,
                uri=uri,
                qop=qop,
                nc=nc_text,
                cnonce=cnonce,
                body=body,
            )
        except UnicodeEncodeError:
            return AuthResult(False, username, False, "malformed", uri)
        matches = hmac.compare_digest(expected, response.lower())
        if stored is None:
            return AuthResult(False, username, False, "unknown user", uri)
        if not matches:
            return AuthResult(False, username, False, "wrong password", uri)
        opened = self._open_nonce(nonce)
        if opened is None or opened[0] > now:
            return AuthResult(False, username, True, "bad nonce", uri)
        issued, counter, key = opened
        if now >= issued + self._ttl:
            return AuthResult(False, username, True, "nonce expired", uri)

        self._prune(now)
        seen = self._nc.get(key)
        if seen is None:
            if (issued, counter) <= self._evicted_upto:
                return AuthResult(False, username, True, "nonce evicted", uri)
            self._track(issued, counter, key)
            seen = 0
        if qop is None:
            if seen:
                return AuthResult(False, username, True, "nonce reused", uri)
            self._nc[key] = _NC_EXHAUSTED
        elif nc <= seen:
            return AuthResult(False, username, False, "nonce-count replay", uri)
        else:
            self._nc[key] = nc
        return AuthResult(True, username, False, "ok", uri)

    # -- the nonce-count table ----------------------------------------------------------------

    def _track(self, issued: float, counter: int, key: bytes) -> None:
        while len(self._nc) >= self._max_tracked:
            old_issued, old_counter, old_key = heapq.heappop(self._heap)
            del self._nc[old_key]
            self._evicted_upto = max(self._evicted_upto, (old_issued, old_counter))
        self._nc[key] = 0
        heapq.heappush(self._heap, (issued, counter, key))

    def _prune(self, now: float) -> None:
        heap = self._heap
        ttl = self._ttl
        while heap and heap[0][0] + ttl <= now:
            del self._nc[heapq.heappop(heap)[2]]

    def next_deadline(self) -> float | None:
        """When the oldest tracked nonce expires, or None if the table is empty."""
        return self._heap[0][0] + self._ttl if self._heap else None

    def handle_timer(self, now: float) -> None:
        """Forget the nonce-counts of nonces that have expired by ``now``."""
        self._prune(now)

    @property
    def tracked_nonces(self) -> int:
        """Number of nonces whose nonce-count is currently remembered."""
        return len(self._nc)

    def __len__(self) -> int:
        return len(self._nc)
