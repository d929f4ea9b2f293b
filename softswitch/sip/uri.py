"""SIP, SIPS and tel URIs: parsing, serialization and comparison.

Implements the SIP-URI grammar of RFC 3261 §19.1.1 and §25.1, the comparison rules of §19.1.4
and the tel URI of RFC 3966 §3. Any other scheme is kept opaque as an ``AbsoluteUri`` so that a
request carrying it can be answered 416 (RFC 3261 §8.2.2.1) instead of failing to parse.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from softswitch.sip.errors import RemoteProtocolError

__all__ = [
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "parse_uri",
    "split_params",
]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# Characters that may never appear unescaped in a URI we accept (RFC 3261 §25.1): white space,
# angle brackets and double quotes.
_FORBIDDEN = re.compile(r'[\s<>"]')
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_])?\.?|[A-Za-z0-9]")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]/:&$]+")
_PORT_RE = re.compile(r"[0-9]{1,5}")  # ASCII digits only: str.isdigit() also accepts '²'

# Parameters that, when present in either URI, must match (RFC 3261 §19.1.4; transport as its
# examples show: sip:bob@biloxi.com and sip:bob@biloxi.com;transport=udp differ).
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")


def split_params(text: str) -> dict[str, str | None]:
    """Split ``;name=value;flag`` (without the leading ``;``) into an ordered dict.

    Names are lower-cased (parameter names are case-insensitive, §7.3.1); values are kept as
    written. An empty parameter (``;;``) is an error.
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name or not _TOKEN_RE.fullmatch(name):
            raise RemoteProtocolError(f"malformed URI parameter {part!r}")
        params[name.lower()] = value.strip() if eq else None
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _parse_host(hostport: str) -> tuple[str, int | None]:
    """Parse ``host[:port]`` where host is a name, IPv4 address or ``[IPv6]`` reference."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise RemoteProtocolError(f"unterminated IPv6 reference in {hostport!r}")
        host = hostport[: end + 1]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise RemoteProtocolError(f"bad IPv6 reference {host!r}") from None
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise RemoteProtocolError(f"junk after IPv6 reference in {hostport!r}")
        port_text = rest[1:] if rest else None
        host = host.lower()
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
        if not host or not _HOSTNAME_RE.fullmatch(host):
            raise RemoteProtocolError(f"bad host {host!r}")
        host = host.lower()
    port: int | None = None
    if port_text is not None:
        if not _PORT_RE.fullmatch(port_text) or int(port_text) > 65535:
            raise RemoteProtocolError(f"bad port {port_text!r}")
        port = int(port_text)
    return host, port


def _unescape(text: str) -> str:
    return unquote(text, errors="surrogateescape")


@dataclass(slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        uri = parse_uri(text)
        if not isinstance(uri, SipUri):
            raise RemoteProtocolError(f"expected a sip: or sips: URI, got {text!r}", 416)
        return uri

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """``user@host`` (unescaped user), the key of an address-of-record (§10.3 step 5)."""
        user = _unescape(self.user) if self.user else ""
        return f"{user}@{self.host}" if user else self.host

    def copy(self) -> SipUri:
        return SipUri(
            self.host,
            self.user,
            self.password,
            self.port,
            self.scheme,
            dict(self.params),
            dict(self.headers),
        )

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(_format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)

    def equivalent(self, other: object) -> bool:
        """URI comparison of RFC 3261 §19.1.4.

        Userinfo is case-sensitive, everything else case-insensitive; an escaped character
        equals its literal form unless it is in the reserved set; ``user``, ``ttl``,
        ``method``, ``maddr`` and ``transport`` present in one URI must be present and equal in
        the other; other parameters are compared only when both URIs carry them; URI headers
        must match exactly as a set.
        """
        if not isinstance(other, SipUri) or self.scheme != other.scheme:
            return False
        if _canonical_escapes(self.user or "") != _canonical_escapes(other.user or ""):
            return False
        if _canonical_escapes(self.password or "") != _canonical_escapes(other.password or ""):
            return False
        if not _same_host(self.host, other.host) or self.port != other.port:
            return False
        mine = _comparable_params(self.params)
        theirs = _comparable_params(other.params)
        for name in _MUST_MATCH:
            if mine.get(name) != theirs.get(name):
                return False
        for name, value in mine.items():
            if name in theirs and theirs[name] != value:
                return False
        return _comparable_headers(self.headers) == _comparable_headers(other.headers)


# Reserved characters (RFC 2396 §2.2): their escaped form is not equivalent to the literal.
_RESERVED = frozenset(";/?:@&=+$,")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")


def _decode_escape(m: re.Match[str]) -> str:
    ch = chr(int(m.group(1), 16))
    if 0x21 <= ord(ch) <= 0x7E and ch not in _RESERVED and ch != "%":
        return ch
    return "%" + m.group(1).upper()


def _canonical_escapes(text: str) -> str:
    """One spelling per equivalence class of §19.1.4: unreserved escapes decoded, others
    kept escaped with upper-case hex digits."""
    return _ESCAPE_RE.sub(_decode_escape, text) if "%" in text else text


def _comparable_params(params: dict[str, str | None]) -> dict[str, str]:
    return {
        _canonical_escapes(k).lower(): _canonical_escapes(v or "").lower()
        for k, v in params.items()
    }


def _comparable_headers(headers: dict[str, str]) -> dict[str, str]:
    return {_canonical_escapes(k).lower(): _canonical_escapes(v) for k, v in headers.items()}


def _same_host(a: str, b: str) -> bool:
    """Host names compare case-insensitively, IP addresses by value (§19.1.4)."""
    if a == b or a.lower() == b.lower():
        return True
    try:
        return ipaddress.ip_address(a.strip("[]")) == ipaddress.ip_address(b.strip("[]"))
    except ValueError:
        return False


@dataclass(slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966 §3): a global (+...) or local number with parameters."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)
    scheme: str = "tel"

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return re.sub(r"[\-.()]", "", self.number)

    def __str__(self) -> str:
        return f"tel:{self.number}{_format_params(self.params)}"

    def equivalent(self, other: object) -> bool:
        """RFC 3966 §4: numbers compared digit by digit, parameters as a set."""
        if not isinstance(other, TelUri) or self.digits != other.digits:
            return False
        norm = {k: (v or "").lower() for k, v in self.params.items()}
        return norm == {k: (v or "").lower() for k, v in other.params.items()}


@dataclass(slots=True)
class AbsoluteUri:
    """A URI of a scheme this element does not understand, kept opaque (§19.1, §8.2.2.1)."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def equivalent(self, other: object) -> bool:
        return (
            isinstance(other, AbsoluteUri)
            and self.scheme == other.scheme
            and self.opaque == other.opaque
        )


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse a URI; raise ``RemoteProtocolError`` (400) when it is malformed."""
    if _FORBIDDEN.search(text):
        raise RemoteProtocolError(f'white space or <>" inside URI {text!r}')
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme):
        raise RemoteProtocolError(f"not a URI: {text!r}")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest, text)
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not number or not re.fullmatch(r"\+?[0-9A-Fa-f*#\-.()]+", number):
            raise RemoteProtocolError(f"bad tel URI {text!r}")
        return TelUri(number, split_params(params))
    if not rest:
        raise RemoteProtocolError(f"empty URI {text!r}")
    return AbsoluteUri(scheme, rest)


def _parse_sip(scheme: str, rest: str, text: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if colon:
            password = pw
        if not user:
            raise RemoteProtocolError(f"empty user part in {text!r}")
    rest, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = rest.partition(";")
    host, port = _parse_host(hostport)
    params = split_params(param_text) if semi else {}
    headers: dict[str, str] = {}
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise RemoteProtocolError(f"malformed URI header {item!r} in {text!r}")
            headers[name] = value
    return SipUri(host, user, password, port, scheme, params, headers)
