"""SIP requests and responses: parsing (lenient, RFC 3261 §7 and §25) and serialization (strict).

``parse_message`` accepts what §25 allows (compact names, folding, LWS, case-insensitive names,
comma lists) and rejects what it does not with a ``MalformedMessage`` whose reason phrase says
what was wrong. For a request, the error keeps every well-formed header row so the receiver can
still answer 400 (§8.2.6.2) through the request's Via; a malformed response is dropped (§18.1.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError
from softswitch.sip.headers import CSeq, Headers, NameAddr, Via, canonical_name, split_commas
from softswitch.sip.uri import AbsoluteUri, SipUri, Uri, parse_uri

_T = TypeVar("_T")


def _parse_top_via(row: str) -> Via:
    return Via.parse(split_commas(row)[0])


def _parse_contacts(rows: str) -> tuple[NameAddr, ...]:
    values: list[str] = []
    for row in rows.split("\n"):
        values.extend(split_commas(row))
    return tuple(NameAddr.parse(v) for v in values if v != "*")


__all__ = [
    "REASONS",
    "MalformedMessage",
    "Message",
    "Request",
    "Response",
    "make_response",
    "parse_message",
]

REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}  # fmt: skip

_METHOD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# Status-Line (§7.2, §25.1); the reason phrase may be empty and, leniently, so may its SP.
_STATUS_RE = re.compile(r"(?i:SIP)/([0-9]+)\.([0-9]+) ([1-6][0-9][0-9])(?: ([^\r\n]*))?")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
_BLANK_LINE_RE = re.compile(rb"\n\r?\n")
_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")

# Fields that may appear at most once (§20, and RFC 4475 §3.3.8 / §3.3.9).
_SINGLE = ("to", "from", "call-id", "cseq", "max-forwards", "content-length", "content-type")
_REQUIRED = ("To", "From", "Call-ID", "CSeq", "Via")  # §8.1.1 (and §8.2.6.2 for responses)

#: Methods defined by RFC 3261 and its extensions (RFC 3262, 3265, 3311, 3428, 3515, 3903,
#: 6086); an unknown method with a mismatched CSeq is answered 501 (RFC 4475 §3.1.2.18).
_KNOWN_METHODS = frozenset(
    ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE")
)  # fmt: skip


class MalformedMessage(RemoteProtocolError):
    """A message that does not follow the grammar.

    ``is_request`` tells whether the start line looked like a request; ``headers`` holds the
    well-formed header rows that could be read, so that a 400 can still be built
    (``error_response``).
    """

    #: The Request-Line method when it could be read (no response is ever sent to an ACK).
    method: str | None = None

    def __init__(
        self,
        message: str,
        status: int = 400,
        *,
        is_request: bool = False,
        headers: Headers | None = None,
    ) -> None:
        super().__init__(message, status)
        self.is_request = is_request
        self.headers = headers if headers is not None else Headers()

    def error_response(self) -> Response | None:
        """The response to send for a malformed request, or None when none can be sent.

        A response is routed by its Via (RFC 3261 §18.2.2), so one is built whenever the
        request had at least one Via row; the From, To, Call-ID and CSeq rows that exist are
        copied too (§8.2.6.2), the missing ones left out. A malformed response is dropped
        (§18.1.2) and an ACK is never answered (§17.2.1).
        """
        if not self.is_request or self.method == "ACK":
            return None
        h = self.headers
        vias = h.rows("Via")
        if not vias:
            return None
        cseq = h.get("CSeq")
        if cseq is not None and cseq.split()[-1:] == ["ACK"]:
            return None
        out = Headers()
        for row in vias:
            out.add("Via", row)
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = h.get(name)
            if value is not None:
                out.add(name, value)
        return Response(self.status, _safe_reason(self.message), out)


def _safe_reason(text: str) -> str:
    """A reason phrase is one line of printable text (§25.1 Reason-Phrase)."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned[:120] or "Bad Request"


class Message:
    """Fields and accessors shared by requests and responses."""

    __slots__ = ("_parsed", "body", "headers")

    headers: Headers
    body: bytes
    _parsed: dict[str, tuple[str, object]]

    # -- typed accessors ------------------------------------------------------------------------
    # Each parses its header row on first access and keeps the result keyed by the identity of
    # the row's text: rewriting the header (set, prepend, pop) stores a new string, so a stale
    # value is never returned. Callers must treat the returned objects as read-only.

    def _cached(self, key: str, raw: str, parse: Callable[[str], _T]) -> _T:
        hit = self._parsed.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]  # type: ignore[return-value]
        value = parse(raw)
        self._parsed[key] = (raw, value)
        return value

    @property
    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if value is None:
            raise LocalProtocolError("message has no Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        value = self.headers.get("CSeq")
        if value is None:
            raise LocalProtocolError("message has no CSeq")
        return self._cached("cseq", value, CSeq.parse)

    @property
    def from_(self) -> NameAddr:
        value = self.headers.get("From")
        if value is None:
            raise LocalProtocolError("message has no From")
        return self._cached("from", value, NameAddr.parse)

    @property
    def to(self) -> NameAddr:
        value = self.headers.get("To")
        if value is None:
            raise LocalProtocolError("message has no To")
        return self._cached("to", value, NameAddr.parse)

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        first = self.headers.get("Via")
        if first is None:
            raise LocalProtocolError("message has no Via")
        return self._cached("top_via", first, _parse_top_via)

    def contacts(self) -> list[NameAddr]:
        """The Contact values; ``*`` is reported by ``is_star_contact`` instead."""
        rows = self.headers.rows("Contact")
        if not rows:
            return []
        return list(
            self._cached(
                "contacts", rows[0] if len(rows) == 1 else "\n".join(rows), _parse_contacts
            )
        )

    @property
    def is_star_contact(self) -> bool:
        return [v.strip() for v in self.headers.get_all("Contact")] == ["*"]

    def record_route(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Record-Route")]

    def routes(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Route")]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        if value is None:
            return None
        value = value.strip()
        if not _is_number(value, 10):
            raise RemoteProtocolError(f"bad Expires {value!r}")
        return int(value)

    def _serialize(self, start_line: str) -> bytes:
        parts = [start_line, "\r\n"]
        for name, value in self.headers:
            if name == "Content-Length":
                continue
            parts.append(name)
            parts.append(": ")
            parts.append(value)
            parts.append("\r\n")
        parts.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "".join(parts).encode("utf-8", "surrogateescape") + self.body


class Request(Message):
    """A SIP request (RFC 3261 §7.1)."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: Uri, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._parsed = {}

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return int(value) if value is not None else None

    def __bytes__(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} SIP/2.0")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response (RFC 3261 §7.2)."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} out of range")
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._parsed = {}

    def __bytes__(self) -> bytes:
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def make_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """Build a response to ``request`` as a UAS does (RFC 3261 §8.2.6.2).

    Via rows, From, Call-ID and CSeq are copied; To is copied and gets ``to_tag`` when it has
    no tag yet (never for 100, §8.2.6.2); 100 Trying copies Timestamp (§8.2.6.1).
    """
    h = request.headers
    out = Headers()
    for row in h.rows("Via"):
        out.add("Via", row)
    to_row = h.get("To") or ""
    if to_tag is not None and status > 100 and not _has_tag(request, to_row):
        to_row = f"{to_row};tag={to_tag}"
    out.add("From", h.get("From") or "")
    out.add("To", to_row)
    out.add("Call-ID", h.get("Call-ID") or "")
    out.add("CSeq", h.get("CSeq") or "")
    if status == 100 and (ts := h.get("Timestamp")) is not None:
        out.add("Timestamp", ts)
    return Response(status, reason, out)


def _has_tag(request: Request, value: str) -> bool:
    """Whether the To value carries a tag parameter (not merely ";tag=" in its display)."""
    try:
        return request.to.tag is not None  # parsed once per message (accessor cache)
    except RemoteProtocolError:
        return ";tag=" in value.replace(" ", "").replace("\t", "").lower()


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied while parsing (a peer cannot make us hold unbounded state)."""

    max_size: int = 65535
    max_headers: int = 128


DEFAULT_LIMITS = Limits()


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """Parse one complete message from a datagram or a framed stream chunk.

    Raises ``MalformedMessage`` with the status a request deserves (400, 501, 505, 513); for a
    request it carries the well-formed header rows so that ``error_response`` can answer.
    """
    start = 0
    while data.startswith(b"\r\n", start):  # §7.5: ignore CRLFs before the start line
        start += 2
    if len(data) > limits.max_size:
        start_line, headers, _ = _read_head(_split_head(data[: start + limits.max_size], start)[0])
        raise _malformed(f"message larger than {limits.max_size} bytes", 513, start_line, headers)
    head_bytes, body = _split_head(data, start)
    start_line, headers, bad_line = _read_head(head_bytes)
    if len(headers) + (bad_line is not None) > limits.max_headers:
        raise _malformed(f"more than {limits.max_headers} header fields", 400, start_line, headers)
    if bad_line is not None:
        raise _malformed(f"malformed header line {bad_line[:40]!r}", 400, start_line, headers)
    if start_line[:4].upper() == "SIP/":
        return _finish_response(start_line, headers, body)
    return _finish_request(start_line, headers, body)


def _split_head(data: bytes, start: int) -> tuple[bytes, bytes]:
    """Split at the first empty line: CRLF CRLF, or (lenient) a bare-LF form of it (§7)."""
    m = _BLANK_LINE_RE.search(data, start)
    if m is None:
        return data[start:].rstrip(b"\r\n"), b""
    end = m.start()
    if end > start and data[end - 1] == 0x0D:
        end -= 1
    return data[start:end], data[m.end() :]


def _read_head(head_bytes: bytes) -> tuple[str, Headers, str | None]:
    """Decode and unfold the header section; return (start line, rows, first malformed line).

    Every well-formed row is kept even after a malformed one, so that a 400 can still copy the
    Via, From, To, Call-ID and CSeq rows that follow it.
    """
    head = head_bytes.decode("utf-8", "surrogateescape")
    if "\n " in head or "\n\t" in head:
        head = _FOLD_RE.sub(" ", head)  # §7.3.1: folded lines are one line
    lines = head.split("\n")
    headers = Headers()
    items = headers._items
    bad_line: str | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip()
        if colon and _NAME_RE.fullmatch(name):
            items.append((canonical_name(name), value.strip()))
        elif bad_line is None:
            bad_line = line.removesuffix("\r")
    return lines[0].removesuffix("\r"), headers, bad_line


def _malformed(message: str, status: int, start_line: str, headers: Headers) -> MalformedMessage:
    is_request = start_line[:4].upper() != "SIP/"
    exc = MalformedMessage(message, status, is_request=is_request, headers=headers)
    if is_request:
        exc.method = start_line.partition(" ")[0]
    return exc


def _is_number(text: str, max_digits: int) -> bool:
    """``1*DIGIT`` with ASCII digits only (``str.isdigit`` also accepts e.g. '²' and '٣')."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def _check_common(
    start_line: str, headers: Headers, body: bytes, parsed: dict[str, tuple[str, object]]
) -> tuple[bytes, CSeq]:
    """Checks shared by requests and responses (§8.1.1, §20, §18.3); return (body, CSeq).

    The values parsed on the way go into ``parsed``, the new message's accessor cache.
    """
    index: dict[str, list[str]] = {}
    for name, value in headers._items:
        key = name.lower()
        rows = index.get(key)
        if rows is None:
            index[key] = [value]
        else:
            rows.append(value)

    def fail(message: str, status: int = 400) -> MalformedMessage:
        return _malformed(message, status, start_line, headers)

    for name in _REQUIRED:
        if name.lower() not in index:
            raise fail(f"missing {name} header")
    for key in _SINGLE:
        if len(index.get(key, ())) > 1:
            raise fail(f"more than one {canonical_name(key)} header")
    try:
        for row in index["via"]:
            values = split_commas(row)
            if not values:
                raise fail("empty Via header")
            for via in values:
                parsed_via = Via.parse(via)
                if "top_via" not in parsed:
                    parsed["top_via"] = (row, parsed_via)
        cseq_row = index["cseq"][0]
        cseq = CSeq.parse(cseq_row)
        parsed["cseq"] = (cseq_row, cseq)
        for key in ("to", "from"):
            value = index[key][0]
            if len(split_commas(value)) != 1:
                raise fail(f"more than one value in {canonical_name(key)}")
            parsed[key] = (value, NameAddr.parse(value))
    except MalformedMessage:
        raise
    except RemoteProtocolError as exc:
        raise fail(exc.message, exc.status) from None
    if not index["call-id"][0]:
        raise fail("empty Call-ID")
    length_rows = index.get("content-length")
    if length_rows is not None:
        length_text = length_rows[0]
        if not _is_number(length_text, 9):
            raise fail(f"bad Content-Length {length_text[:20]!r}")
        length = int(length_text)
        if length > len(body):
            raise fail(f"Content-Length {length} larger than the body ({len(body)} bytes)")
        body = body[:length]  # §18.3: bytes past Content-Length are discarded
    expires_rows = index.get("expires")
    if expires_rows is not None:
        expires = expires_rows[0]
        if not _is_number(expires, 10) or int(expires) >= 2**32:
            raise fail(f"bad Expires {expires[:20]!r}")
    return body, cseq


def _finish_request(start_line: str, headers: Headers, body: bytes) -> Request:
    parts = start_line.split(" ")

    def fail(message: str, status: int = 400) -> MalformedMessage:
        return _malformed(message, status, start_line, headers)

    if len(parts) != 3 or not all(parts):
        raise fail("malformed Request-Line")
    method, uri_text, version = parts
    if not _METHOD_RE.fullmatch(method):
        raise fail(f"bad method {method[:20]!r}")
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise fail(f"version {version} not supported", 505)
        raise fail(f"bad SIP version {version[:20]!r}")
    try:
        uri = parse_uri(uri_text)
    except RemoteProtocolError as exc:
        raise fail(f"bad Request-URI: {exc.message}") from None
    if isinstance(uri, SipUri) and uri.headers:
        raise fail("Request-URI must not carry headers")  # §19.1.5 / RFC 4475 §3.1.2.11
    parsed: dict[str, tuple[str, object]] = {}
    body, cseq = _check_common(start_line, headers, body, parsed)
    if cseq.method != method:
        # RFC 4475 §3.1.2.18: for a method nobody defined, 501 is the better answer.
        status = 400 if method in _KNOWN_METHODS else 501
        raise fail(f"CSeq method {cseq.method[:20]} does not match {method[:20]}", status)
    mf = headers.get("Max-Forwards")
    if mf is not None and (not _is_number(mf, 10) or int(mf) > 255):
        raise fail(f"bad Max-Forwards {mf[:20]!r}")
    request = Request(method, uri, headers, body)
    request._parsed = parsed
    return request


def _finish_response(start_line: str, headers: Headers, body: bytes) -> Response:
    m = _STATUS_RE.fullmatch(start_line)
    if m is None:
        raise _malformed("malformed Status-Line", 400, start_line, headers)
    if (m.group(1), m.group(2)) != ("2", "0"):
        raise _malformed("version not supported", 505, start_line, headers)
    parsed: dict[str, tuple[str, object]] = {}
    body, _ = _check_common(start_line, headers, body, parsed)
    response = Response(int(m.group(3)), m.group(4) or "", headers, body)
    response._parsed = parsed
    return response


def is_unsupported_scheme(uri: Uri) -> bool:
    """True for a Request-URI scheme this element cannot serve (answer 416, §8.2.2.1)."""
    return isinstance(uri, AbsoluteUri)
