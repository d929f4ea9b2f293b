"""Header fields: names, the ordered header list, and the structured values the core reads.

RFC 3261 §7.3 (header field format, compact forms in §7.3.3, comma-separated lists in §7.3.1),
§20 (the fields themselves) and §25.1 (grammar: name-addr, Via, CSeq, quoted strings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from softswitch.sip.errors import RemoteProtocolError
from softswitch.sip.uri import SipUri, Uri, parse_uri

__all__ = [
    "CSeq",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
    "split_commas",
]

#: Compact forms (RFC 3261 §7.3.3 and later registrations).
COMPACT: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
    "Max-Forwards", "Min-Expires", "MIME-Version", "Organization", "Path", "P-Asserted-Identity",
    "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After", "Route",
    "RSeq", "RAck", "Server", "Session-Expires", "Min-SE", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate",
]  # fmt: skip
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN}
_CANONICAL.update({k: v for k, v in COMPACT.items()})

#: Fields whose value is a comma-separated list (§7.3.1): several field rows and one row with
#: commas mean the same. Authorization-type fields are not lists (they hold commas in one value).
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Error-Info",
        "In-Reply-To", "Path", "Proxy-Require", "Record-Route", "Require", "Route",
        "Supported", "Unsupported", "Via", "Warning", "Reason", "P-Asserted-Identity",
    )
)  # fmt: skip

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_DIGITS_RE = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts '²' and '٣'


@lru_cache(maxsize=4096)
def canonical_name(name: str) -> str:
    """The one spelling we write for a field name (strict out); unknown names keep theirs."""
    return _CANONICAL.get(name.lower(), name)


#: Names whose stored spelling is always exactly the canonical one: lookups compare them
#: without case folding.
_KNOWN_CANONICAL = frozenset(_CANONICAL.values())


# One lexical unit of a list value: a quoted string, a <...> URI (its '>' may be missing, then
# it runs to the end), a comma outside both, or a quote that is never closed (§7.3.1, §25.1).
_LIST_LEX_RE = re.compile(r'"(?:[^"\\]|\\.)*+"|<[^>]*+>?|(,)|(")', re.S)


def split_commas(value: str) -> list[str]:
    """Split a list value at commas outside quoted strings and ``<...>`` (§7.3.1)."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",")]
    parts: list[str] = []
    start = 0
    for m in _LIST_LEX_RE.finditer(value):
        if m.group(1) is not None:
            parts.append(value[start : m.start()].strip())
            start = m.end()
        elif m.group(2) is not None:
            raise RemoteProtocolError(f"unterminated quoted string in {value[:80]!r}")
    parts.append(value[start:].strip())
    return parts


class Headers:
    """The ordered list of header fields of one message.

    Names are stored in canonical spelling and looked up case-insensitively (compact forms
    included). Values are kept as text; list fields are split on demand by ``get_all``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_name(name).lower()
        return any(n.lower() == key for n, _ in self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first row of the field, as written."""
        canon = canonical_name(name)
        if canon in _KNOWN_CANONICAL:
            for n, v in self._items:
                if n == canon:
                    return v
            return default
        key = canon.lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def rows(self, name: str) -> list[str]:
        """Every row of the field, unsplit."""
        canon = canonical_name(name)
        if canon in _KNOWN_CANONICAL:
            return [v for n, v in self._items if n == canon]
        key = canon.lower()
        return [v for n, v in self._items if n.lower() == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of the field; list fields (§7.3.1) are split at commas."""
        rows = self.rows(name)
        if canonical_name(name).lower() not in LIST_HEADERS:
            return rows
        values: list[str] = []
        for row in rows:
            values.extend(split_commas(row))
        return values

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first row of the same field, else at the top (for Via, §16.6)."""
        canon = canonical_name(name)
        key = canon.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items.insert(i, (canon, value))
                return
        self._items.insert(0, (canon, value))

    def set(self, name: str, value: str) -> None:
        """Replace every row of the field by one row, keeping the position of the first."""
        canon = canonical_name(name)
        key = canon.lower()
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if n.lower() == key:
                if not placed:
                    out.append((canon, value))
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.append((canon, value))
        self._items = out

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of a list field (e.g. the top Via or Route)."""
        key = canonical_name(name).lower()
        for i, (n, v) in enumerate(self._items):
            if n.lower() == key:
                values = split_commas(v)
                if len(values) > 1:
                    self._items[i] = (n, ", ".join(values[1:]))
                else:
                    del self._items[i]
                return values[0] if values else None
        return None


_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*+)"', re.S)  # quoted-string, §25.1
# One generic-param (§25.1) with the ';' before it: name, then a quoted or a plain value.
_HEADER_PARAM_RE = re.compile(
    r"[ \t]*+;[ \t]*+([^=;\s]++)[ \t]*+"
    r'(?:=[ \t]*+(?:"((?:[^"\\]|\\.)*+)"|([^;\s"]++))[ \t]*+)?',
    re.S,
)


def _parse_quoted(text: str, start: int) -> tuple[str, int]:
    """Parse a quoted-string starting at ``text[start] == '"'``; return (value, end index)."""
    m = _QUOTED_RE.match(text, start)
    if m is None:
        raise RemoteProtocolError(f"unterminated quoted string in {text[:80]!r}")
    return _unquote_pairs(m.group(1)), m.end()


def _unquote_pairs(text: str) -> str:
    """Undo quoted-pairs: ``\\x`` is ``x`` (§25.1); the text never ends in a lone backslash."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while (j := text.find("\\", i)) >= 0:
        out.append(text[i:j])
        out.append(text[j + 1 : j + 2])
        i = j + 2
    out.append(text[i:])
    return "".join(out)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_header_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c;d="q v"`` header parameters (generic-param, §25.1).

    Names are lower-cased; a quoted value is kept quoted, in canonical quoting.
    """
    params: dict[str, str | None] = {}
    pos = 0
    n = len(text)
    while pos < n:
        m = _HEADER_PARAM_RE.match(text, pos)
        if m is None:
            if not text[pos:].strip(" \t"):
                break
            raise RemoteProtocolError(f"malformed parameters {text[:80]!r}")
        name, quoted, plain = m.groups()
        if not _TOKEN_RE.fullmatch(name):
            raise RemoteProtocolError(f"malformed parameter name {name[:40]!r}")
        params[name.lower()] = plain if quoted is None else _quote(_unquote_pairs(quoted))
        pos = m.end()
    return params


def format_header_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(slots=True)
class NameAddr:
    """``"Display" <uri>;params`` or an addr-spec with parameters (To, From, Contact, Route).

    RFC 3261 §20.10 and §25.1: without angle brackets, every ``;param`` is a header parameter.
    """

    uri: Uri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        display: str | None = None
        rest: str
        if text.startswith('"'):
            display, end = _parse_quoted(text, 0)
            rest = text[end:].lstrip()
            if not rest.startswith("<"):
                raise RemoteProtocolError(f"expected <URI> after display name in {text!r}")
        elif "<" in text:
            lt = text.index("<")
            raw = text[:lt].strip()
            if raw:
                if not re.fullmatch(r"[A-Za-z0-9\-.!%*_+`'~ \t]+", raw):
                    raise RemoteProtocolError(f"display name {raw!r} must be quoted")
                display = " ".join(raw.split())
            rest = text[lt:]
        else:
            uri_text, semi, param_text = text.partition(";")
            if "?" in uri_text or "," in uri_text:
                raise RemoteProtocolError(f"URI with '?' or ',' must be in <>: {text!r}")
            return cls(parse_uri(uri_text.strip()), None, parse_header_params(semi + param_text))
        gt = rest.find(">")
        if gt < 0:
            raise RemoteProtocolError(f"missing '>' in {text!r}")
        uri_text = rest[1:gt]
        if uri_text != uri_text.strip():
            raise RemoteProtocolError(f"white space inside <> in {text!r}")
        return cls(parse_uri(uri_text), display, parse_header_params(rest[gt + 1 :]))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def sip_uri(self) -> SipUri:
        if not isinstance(self.uri, SipUri):
            raise RemoteProtocolError(f"expected a SIP URI, got {self.uri}", 416)
        return self.uri

    def __str__(self) -> str:
        head = f"{_quote(self.display)} " if self.display is not None else ""
        return f"{head}<{self.uri}>{format_header_params(self.params)}"


_VIA_RE = re.compile(
    r"\s*+SIP\s*+/\s*+2\.0\s*+/\s*+([A-Za-z0-9\-.!%*_+`'~]++)\s++"
    r"(\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-_.]++)(?:\s*+:\s*+([0-9]{1,5}+))?\s*+(;.*)?$",
    re.S,
)


@dataclass(slots=True)
class Via:
    """One Via entry (RFC 3261 §20.42, §18.2.1; ``rport`` of RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_RE.match(text)
        if m is None:
            raise RemoteProtocolError(f"malformed Via {text.strip()!r}")
        transport, host, port_text, param_text = m.groups()
        port = int(port_text) if port_text else None
        if port is not None and port > 65535:
            raise RemoteProtocolError(f"bad port in Via {text.strip()!r}")
        try:
            params = parse_header_params(param_text) if param_text else {}
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"malformed Via parameters: {exc.message}") from None
        return cls(transport.upper(), host.lower(), port, params)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_header_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16: a 32-bit sequence number and the method)."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if (
            len(parts) != 2
            or not _DIGITS_RE.fullmatch(parts[0])
            or not _TOKEN_RE.fullmatch(parts[1])
        ):
            raise RemoteProtocolError(f"malformed CSeq {text!r}")
        if len(parts[0]) > 10 or int(parts[0]) >= 2**32:
            raise RemoteProtocolError(f"CSeq number out of range in {text!r}")
        return cls(int(parts[0]), parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
