"""SDP session descriptions and the offer/answer model.

The format is RFC 4566 (§5 for the lines, §6 for the attributes this module interprets), the
negotiation is RFC 3264 (§5 for offers, §6 for answers, §8.4 for hold), static payload types
come from RFC 3551 §6 (table 4) and telephone-event from RFC 4733 §2.5.

Lenient in, strict out: ``SessionDescription.parse`` accepts LF or CRLF line ends and keeps
lines and attributes it does not interpret, in order; ``bytes()`` writes CRLF lines in the
order of RFC 4566 §5. Malformed SDP from a peer raises ``RemoteProtocolError`` (400 for a
description that cannot be read, 488 when it is readable but not acceptable).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "G711_LAWS",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "CodecRef",
    "Connection",
    "Direction",
    "MediaDescription",
    "NegotiatedMedia",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "answer",
    "as_law",
    "chosen_codec",
    "codecs",
    "effective_direction",
    "g711_law",
    "is_hold",
    "make_offer",
    "media_address",
    "parse_answer",
    "restricted",
    "with_other_law",
]

# RFC 3551 §6, table 4: audio payload types with a fixed meaning (name, clock rate, channels).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}
_STATIC_BY_NAME: dict[str, tuple[int, int]] = {}
for _pt, (_name, _rate, _ch) in STATIC_PAYLOAD_TYPES.items():
    _STATIC_BY_NAME.setdefault(_name.upper(), (_pt, _rate))

TELEPHONE_EVENT = "telephone-event"
_TE_EVENTS = "0-16"  # DTMF 0-9 * # A-D and flash (RFC 4733 §3.2)
_DEFAULT_PTIME = 20
_RTP_PROTOS = ("RTP/AVP",)
_MAX_LINES = 1000  # bound on the work one description may cost us

_LINE_RE = re.compile(r"([a-z])=(.*)")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_INT_RE = re.compile(r"[0-9]+")
# The order of lines within the session part and within a media part (RFC 4566 §5).
_SESSION_ORDER = "vosiuepcbtrzkam"
_MEDIA_ORDER = "micbka"


class Direction(StrEnum):
    """Media direction attributes (RFC 3264 §5.1, RFC 4566 §6)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        if sends and receives:
            return cls.SENDRECV
        if sends:
            return cls.SENDONLY
        if receives:
            return cls.RECVONLY
        return cls.INACTIVE

    def reverse(self) -> Direction:
        """The same stream seen from the other end: sendonly <-> recvonly."""
        return Direction.of(self.receives, self.sends)


_DIRECTIONS = frozenset(d.value for d in Direction)


def _bad(message: str, status: int = 400) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed SDP: {message}", status)


def _int(text: str, what: str, line: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise _bad(f"{what} is not a number in {line!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``
    (RFC 4566 §5.2). The session version grows by one with every new offer (RFC 3264 §8)."""

    username: str
    session_id: str
    session_version: int
    net_type: str
    addr_type: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6:
            raise _bad(f"o= needs 6 fields: {'o=' + value!r}")
        user, sid, ver, net, addr_type, addr = parts
        if not _INT_RE.fullmatch(sid):
            raise _bad(f"session id is not a number in {'o=' + value!r}")
        return cls(user, sid, _int(ver, "session version", "o=" + value), net, addr_type, addr)

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.net_type} {self.addr_type} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 4566 §5.7).

    ``address`` is the host alone; a multicast TTL and address count (``/127/3``) are kept in
    ``suffix`` so the line is written back as it came.
    """

    net_type: str
    addr_type: str
    address: str
    suffix: str = ""

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise _bad(f"c= needs 3 fields: {'c=' + value!r}")
        net, addr_type, addr = parts
        host, slash, rest = addr.partition("/")
        if not host:
            raise _bad(f"empty connection address in {'c=' + value!r}")
        return cls(net, addr_type, host, slash + rest)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4`` or ``IN IP6`` according to the address (a host name counts as IP4)."""
        try:
            version = ipaddress.ip_address(address).version
        except ValueError:
            version = 4
        return cls("IN", f"IP{version}", address)

    @property
    def is_null(self) -> bool:
        """The RFC 2543 hold address ``0.0.0.0`` (RFC 3264 §8.4 still asks us to honour it)."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.net_type} {self.addr_type} {self.address}{self.suffix}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start-time> <stop-time>`` and its ``r=`` repeat lines (RFC 4566 §5.9, §5.10)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Timing:
        parts = value.split()
        if len(parts) != 2:
            raise _bad(f"t= needs 2 fields: {'t=' + value!r}")
        return cls(_int(parts[0], "start time", "t=" + value), _int(parts[1], "stop", "t=" + value))

    def lines(self) -> list[str]:
        return [f"t={self.start} {self.stop}", *(f"r={r}" for r in self.repeats)]


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` or ``a=<name>:<value>`` (RFC 4566 §5.13)."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, colon, value = text.partition(":")
        if not _TOKEN_RE.fullmatch(name):
            raise _bad(f"bad attribute name in {'a=' + text!r}")
        return cls(name, value if colon else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]`` (RFC 4566 §6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        line = "a=rtpmap:" + value
        pt_text, _, rest = value.strip().partition(" ")
        pt = _int(pt_text, "payload type", line)
        pieces = rest.strip().split("/")
        if len(pieces) not in (2, 3) or not pieces[0] or pt > 127:
            raise _bad(f"bad rtpmap {line!r}")
        rate = _int(pieces[1], "clock rate", line)
        channels = _int(pieces[2], "channel count", line) if len(pieces) == 3 else 1
        return cls(pt, pieces[0], rate, channels)

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


def _validate_attribute(attr: Attribute) -> None:
    """Check the syntax of the attributes this module interprets (RFC 4566 §6, RFC 3605)."""
    line = f"a={attr}"
    if attr.name == "rtpmap":
        RtpMap.parse(attr.value or "")
    elif attr.name == "fmtp":
        pt, _, _ = (attr.value or "").partition(" ")
        _int(pt, "payload type", line)
    elif attr.name in ("ptime", "maxptime"):
        if not attr.value or not re.fullmatch(r"[0-9]+(\.[0-9]+)?", attr.value.strip()):
            raise _bad(f"bad {attr.name} {line!r}")
    elif attr.name == "rtcp":
        _rtcp_port(attr)


def _rtcp_port(attr: Attribute) -> int:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""
    line = f"a={attr}"
    parts = (attr.value or "").split()
    if len(parts) not in (1, 4):
        raise _bad(f"bad rtcp attribute {line!r}")
    port = _int(parts[0], "RTCP port", line)
    if port > 65535:
        raise _bad(f"RTCP port out of range in {line!r}")
    return port


def _direction_of(attributes: Sequence[Attribute]) -> Direction | None:
    found = None
    for attr in attributes:
        if attr.value is None and attr.name in _DIRECTIONS:
            found = Direction(attr.name)
    return found


def _ms(value: str) -> int:
    return round(float(value))


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One ``m=<media> <port>[/<count>] <proto> <fmt> ...`` section (RFC 4566 §5.14).

    ``attributes`` keep every ``a=`` line in order; the properties interpret rtpmap, fmtp,
    ptime, maxptime, the direction and rtcp. ``other`` keeps the remaining lines (i=, b=, k=).
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    other: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse_m_line(cls, value: str) -> MediaDescription:
        line = "m=" + value
        parts = value.split()
        if len(parts) < 4:
            raise _bad(f"m= needs media, port, proto and at least one format: {line!r}")
        media, port_text, proto, *formats = parts
        port_str, slash, count = port_text.partition("/")
        port = _int(port_str, "port", line)
        if port > 65535:
            raise _bad(f"port out of range in {line!r}")
        port_count = _int(count, "port count", line) if slash else None
        if proto.upper().startswith("RTP/"):
            for fmt in formats:
                if _int(fmt, "payload type", line) > 127:
                    raise _bad(f"payload type out of range in {line!r}")
        return cls(media, port, proto, tuple(formats), port_count)

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value``, or None."""
        for attr in self.attributes:
            if attr.name == name:
                return attr.value
        return None

    @property
    def rtpmap(self) -> dict[int, RtpMap]:
        maps: dict[int, RtpMap] = {}
        for attr in self.attributes:
            if attr.name == "rtpmap":
                rm = RtpMap.parse(attr.value or "")
                maps.setdefault(rm.payload_type, rm)
        return maps

    @property
    def fmtp(self) -> dict[int, str]:
        params: dict[int, str] = {}
        for attr in self.attributes:
            if attr.name == "fmtp" and attr.value is not None:
                pt, _, rest = attr.value.partition(" ")
                params.setdefault(int(pt), rest.strip())
        return params

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        return _ms(value) if value else None

    @property
    def maxptime(self) -> int | None:
        value = self.attribute("maxptime")
        return _ms(value) if value else None

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, or None (then the session's applies)."""
        return _direction_of(self.attributes)

    @property
    def rtcp(self) -> int | None:
        """The RTCP port from ``a=rtcp`` (RFC 3605), or None for the default RTP port + 1."""
        for attr in self.attributes:
            if attr.name == "rtcp":
                return _rtcp_port(attr)
        return None

    def lines(self) -> list[str]:
        count = f"/{self.port_count}" if self.port_count is not None else ""
        out = [(0, f"m={self.media} {self.port}{count} {self.proto} {' '.join(self.formats)}")]
        if self.connection is not None:
            out.append((_MEDIA_ORDER.index("c"), f"c={self.connection}"))
        for kind, value in self.other:
            out.append((_order(_MEDIA_ORDER, kind), f"{kind}={value}"))
        out.extend((_MEDIA_ORDER.index("a"), f"a={a}") for a in self.attributes)
        out.sort(key=lambda item: item[0])
        return [text for _, text in out]


def _order(order: str, kind: str) -> int:
    # Unknown line types go just before the attributes (RFC 4566 §5: receivers ignore them).
    return order.index(kind) if kind in order else order.index("a") - 1


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body (RFC 4566 §5)."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    times: tuple[Timing, ...] = (Timing(),)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    version: int = 0
    other: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse leniently: LF or CRLF, trailing blank lines, unknown line types kept.

        Raises ``RemoteProtocolError(400)`` with the offending line when the text is not SDP.
        """
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _bad(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
        raw_lines = [ln.rstrip("\r") for ln in text.split("\n")]
        while raw_lines and not raw_lines[-1].strip():
            raw_lines.pop()
        if not raw_lines:
            raise _bad("empty description")
        if len(raw_lines) > _MAX_LINES:
            raise _bad(f"more than {_MAX_LINES} lines")

        version: int | None = None
        origin: Origin | None = None
        name: str | None = None
        conn: Connection | None = None
        times: list[Timing] = []
        attrs: list[Attribute] = []
        other: list[tuple[str, str]] = []
        media: list[MediaDescription] = []
        current: MediaDescription | None = None
        m_attrs: list[Attribute] = []
        m_other: list[tuple[str, str]] = []

        def close_media() -> None:
            nonlocal current
            if current is not None:
                media.append(replace(current, attributes=tuple(m_attrs), other=tuple(m_other)))
                m_attrs.clear()
                m_other.clear()
            current = None

        for index, line in enumerate(raw_lines):
            match = _LINE_RE.fullmatch(line)
            if match is None:
                raise _bad(f"line {index + 1} is not <type>=<value>: {line!r}")
            kind, value = match.group(1), match.group(2)
            if index == 0 and kind != "v":
                raise _bad(f"the first line must be v=, got {line!r}")
            if kind == "m":
                close_media()
                current = MediaDescription.parse_m_line(value)
            elif current is not None:
                if kind == "a":
                    attr = Attribute.parse(value)
                    _validate_attribute(attr)
                    m_attrs.append(attr)
                elif kind == "c":
                    current = replace(current, connection=Connection.parse(value))
                else:
                    m_other.append((kind, value))
            elif kind == "v":
                if version is not None:
                    raise _bad(f"second v= line {line!r}")
                version = _int(value.strip(), "version", line)
            elif kind == "o":
                if origin is not None:
                    raise _bad(f"second o= line {line!r}")
                origin = Origin.parse(value)
            elif kind == "s":
                name = value
            elif kind == "c":
                conn = Connection.parse(value)
            elif kind == "t":
                times.append(Timing.parse(value))
            elif kind == "r":
                if not times:
                    raise _bad(f"r= before any t= line: {line!r}")
                times[-1] = replace(times[-1], repeats=(*times[-1].repeats, value))
            elif kind == "a":
                attr = Attribute.parse(value)
                _validate_attribute(attr)
                attrs.append(attr)
            else:
                other.append((kind, value))
        close_media()

        if origin is None:
            raise _bad("missing o= line")
        if name is None:
            raise _bad("missing s= line")
        return cls(
            origin=origin,
            session_name=name,
            connection=conn,
            times=tuple(times) or (Timing(),),
            attributes=tuple(attrs),
            media=tuple(media),
            version=version or 0,
            other=tuple(other),
        )

    @property
    def timing(self) -> Timing:
        return self.times[0]

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute (the default for every m-line), or None."""
        return _direction_of(self.attributes)

    def with_version(self, version: int) -> SessionDescription:
        """The same description with ``o=`` session version ``version`` (RFC 3264 §8)."""
        return replace(self, origin=replace(self.origin, session_version=version))

    def lines(self) -> list[str]:
        out = [
            (0, f"v={self.version}"),
            (1, f"o={self.origin}"),
            (2, f"s={self.session_name or '-'}"),
        ]
        if self.connection is not None:
            out.append((_SESSION_ORDER.index("c"), f"c={self.connection}"))
        for timing in self.times:
            out.extend((_SESSION_ORDER.index("t"), text) for text in timing.lines())
        for kind, value in self.other:
            out.append((_order(_SESSION_ORDER, kind), f"{kind}={value}"))
        out.extend((_SESSION_ORDER.index("a"), f"a={a}") for a in self.attributes)
        out.sort(key=lambda item: item[0])
        result = [text for _, text in out]
        for md in self.media:
            result.extend(md.lines())
        return result

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in self.lines())

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")


# --- helpers over a parsed description -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodecRef:
    """One payload format of an m-line, resolved through rtpmap or RFC 3551's static table."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    def is_named(self, name: str) -> bool:
        return self.name.lower() == name.lower()


def media_address(md: MediaDescription, sdp: SessionDescription) -> tuple[str, int]:
    """Where to send this stream: the media-level c= overrides the session's (RFC 4566 §5.7)."""
    conn = md.connection or sdp.connection
    if conn is None:
        raise _bad(f"no c= line for m={md.media} {md.port} (RFC 4566 §5.7)")
    return conn.address, md.port


def effective_direction(md: MediaDescription, sdp: SessionDescription) -> Direction:
    """Media-level direction, else session-level, else sendrecv (RFC 3264 §5.1)."""
    return md.direction or sdp.direction or Direction.SENDRECV


def codecs(md: MediaDescription) -> list[CodecRef]:
    """The m-line's formats in the sender's order of preference (RFC 3264 §5.1).

    A static payload type without rtpmap takes its meaning from RFC 3551 table 4; a dynamic one
    without rtpmap cannot be identified and is left out.
    """
    if not md.proto.upper().startswith("RTP/"):
        return []
    maps = md.rtpmap
    params = md.fmtp
    out: list[CodecRef] = []
    for fmt in md.formats:
        pt = int(fmt)
        if pt in maps:
            rm = maps[pt]
            out.append(CodecRef(pt, rm.encoding, rm.clock_rate, rm.channels, params.get(pt)))
        elif pt in STATIC_PAYLOAD_TYPES:
            name, rate, channels = STATIC_PAYLOAD_TYPES[pt]
            out.append(CodecRef(pt, name, rate, channels, params.get(pt)))
    return out


def is_hold(md: MediaDescription, sdp: SessionDescription | None = None) -> bool:
    """True when the stream puts us on hold (RFC 3264 §8.4): sendonly or inactive, or the
    RFC 2543 style ``c=0.0.0.0``. Pass ``sdp`` so session-level c= and direction count."""
    direction = md.direction or (sdp.direction if sdp is not None else None)
    if direction in (Direction.SENDONLY, Direction.INACTIVE):
        return True
    conn = md.connection or (sdp.connection if sdp is not None else None)
    return conn is not None and conn.is_null


# --- offer/answer (RFC 3264) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """The outcome for one accepted audio m-line.

    ``index`` is the m-line's position; ``direction`` is what this side does (sendonly = we
    send and do not receive); the payload types are the ones the peer expects to receive.
    """

    index: int
    codec: str
    payload_type: int
    clock_rate: int
    ptime: int
    telephone_event_pt: int | None
    direction: Direction
    remote_address: str
    remote_port: int


def _supported(names: Sequence[str]) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for item in names:
        name, slash, rate = item.partition("/")
        if slash:
            out.append((name, int(rate)))
        else:
            static = _STATIC_BY_NAME.get(name.upper())
            out.append((name, static[1] if static else None))
    return out


def _matches(codec: CodecRef, supported: list[tuple[str, int | None]]) -> bool:
    return any(
        codec.is_named(name) and (rate is None or codec.clock_rate == rate)
        for name, rate in supported
    )


def _rtpmap_attr(codec: CodecRef) -> Attribute:
    rm = RtpMap(codec.payload_type, codec.name, codec.clock_rate, codec.channels)
    return Attribute("rtpmap", str(rm))


def answer(
    offer: SessionDescription,
    *,
    local_address: str,
    local_ports: Sequence[int],
    session_id: str,
    session_version: int,
    supported: Sequence[str] = ("PCMU", "PCMA"),
    local_direction: Direction = Direction.SENDRECV,
    username: str = "-",
    session_name: str = "-",
) -> tuple[SessionDescription, list[NegotiatedMedia]]:
    """Answer ``offer`` (RFC 3264 §6, §6.1).

    Each audio RTP/AVP stream takes the first offered codec we support (the offerer's order),
    plus telephone-event at the same clock rate with the offer's payload type. ``ptime`` is
    echoed (20 ms by default); the direction is the offer's reversed and intersected with
    ``local_direction``. Other streams, and streams with no common codec, are rejected with
    port 0. ``local_ports`` gives one port per m-line (ignored for rejected ones).

    Raises ``RemoteProtocolError(488)`` when no audio stream can be accepted.
    """
    if len(local_ports) != len(offer.media):
        raise LocalProtocolError(
            f"{len(local_ports)} local ports for an offer of {len(offer.media)} m-lines"
        )
    wanted = _supported(supported)
    out_media: list[MediaDescription] = []
    negotiated: list[NegotiatedMedia] = []
    for index, (md, port) in enumerate(zip(offer.media, local_ports, strict=True)):
        chosen: CodecRef | None = None
        te: CodecRef | None = None
        offered = codecs(md) if md.media == "audio" and md.proto in _RTP_PROTOS else []
        if md.port != 0:
            chosen = next((c for c in offered if _matches(c, wanted)), None)
        if chosen is None:
            # RFC 3264 §6: rejected with port 0, same media type and formats.
            out_media.append(MediaDescription(md.media, 0, md.proto, md.formats))
            continue
        te = next(
            (
                c
                for c in offered
                if c.is_named(TELEPHONE_EVENT) and c.clock_rate == chosen.clock_rate
            ),
            None,
        )
        ptime = md.ptime or _DEFAULT_PTIME
        offer_dir = effective_direction(md, offer)
        direction = Direction.of(
            offer_dir.receives and local_direction.sends,
            offer_dir.sends and local_direction.receives,
        )
        attrs = [_rtpmap_attr(chosen)]
        if chosen.fmtp is not None:
            attrs.append(Attribute("fmtp", f"{chosen.payload_type} {chosen.fmtp}"))
        formats = [str(chosen.payload_type)]
        if te is not None:
            formats.append(str(te.payload_type))
            attrs.append(_rtpmap_attr(te))
            attrs.append(Attribute("fmtp", f"{te.payload_type} {_TE_EVENTS}"))
        attrs.append(Attribute("ptime", str(ptime)))
        attrs.append(Attribute(direction.value))
        out_media.append(
            MediaDescription("audio", port, md.proto, tuple(formats), attributes=tuple(attrs))
        )
        remote_address, remote_port = media_address(md, offer)
        negotiated.append(
            NegotiatedMedia(
                index=index,
                codec=chosen.name,
                payload_type=chosen.payload_type,
                clock_rate=chosen.clock_rate,
                ptime=ptime,
                telephone_event_pt=te.payload_type if te is not None else None,
                direction=direction,
                remote_address=remote_address,
                remote_port=remote_port,
            )
        )
    if not negotiated:
        raise RemoteProtocolError(
            "no acceptable audio stream in the offer (supported: " + ", ".join(supported) + ")",
            488,
        )
    conn = Connection.for_address(local_address)
    sdp = SessionDescription(
        origin=Origin(
            username, _sess_id(session_id), session_version, "IN", conn.addr_type, local_address
        ),
        session_name=session_name,
        connection=conn,
        times=(offer.timing,),  # RFC 3264 §6: the answer's t= equals the offer's
        media=tuple(out_media),
    )
    return sdp, negotiated


def make_offer(
    *,
    local_address: str,
    local_port: int,
    session_id: str,
    session_version: int,
    codec_names: Sequence[str] = ("PCMU", "PCMA"),
    telephone_event_pt: int | None = 101,
    ptime: int = _DEFAULT_PTIME,
    direction: Direction = Direction.SENDRECV,
    username: str = "-",
    session_name: str = "-",
) -> SessionDescription:
    """An offer with one audio RTP/AVP stream (RFC 3264 §5): static codecs in the given order,
    telephone-event/8000 (RFC 4733 §7.1) unless ``telephone_event_pt`` is None."""
    conn = Connection.for_address(local_address)
    formats: list[str] = []
    attrs: list[Attribute] = []
    for name in codec_names:
        static = _STATIC_BY_NAME.get(name.upper())
        if static is None:
            raise LocalProtocolError(f"{name!r} has no static payload type (RFC 3551 table 4)")
        pt, rate = static
        formats.append(str(pt))
        attrs.append(_rtpmap_attr(CodecRef(pt, STATIC_PAYLOAD_TYPES[pt][0], rate)))
    if telephone_event_pt is not None:
        if not 96 <= telephone_event_pt <= 127:
            raise LocalProtocolError(
                f"telephone-event payload type {telephone_event_pt} is not dynamic"
            )
        formats.append(str(telephone_event_pt))
        attrs.append(_rtpmap_attr(CodecRef(telephone_event_pt, TELEPHONE_EVENT, 8000)))
        attrs.append(Attribute("fmtp", f"{telephone_event_pt} {_TE_EVENTS}"))
    if not formats:
        raise LocalProtocolError("an offer needs at least one codec")
    attrs.append(Attribute("ptime", str(ptime)))
    attrs.append(Attribute(direction.value))
    md = MediaDescription("audio", local_port, "RTP/AVP", tuple(formats), attributes=tuple(attrs))
    return SessionDescription(
        origin=Origin(
            username, _sess_id(session_id), session_version, "IN", conn.addr_type, local_address
        ),
        session_name=session_name,
        connection=conn,
        media=(md,),
    )


def parse_answer(offer: SessionDescription, answer: SessionDescription) -> list[NegotiatedMedia]:
    """Check a peer's answer against our offer and return the accepted audio streams
    (RFC 3264 §6.1, §7).

    The answer must have as many m-lines as the offer, of the same media types; a stream we
    offered with port 0 must stay at port 0; an accepted stream's codecs must be among those
    we offered; its direction must be compatible with ours. Raises ``RemoteProtocolError(488)``
    otherwise, or when no audio stream was accepted.
    """
    if len(answer.media) != len(offer.media):
        raise RemoteProtocolError(
            f"answer has {len(answer.media)} m-lines, the offer had {len(offer.media)}", 488
        )
    result: list[NegotiatedMedia] = []
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if ours.media != theirs.media:
            raise RemoteProtocolError(
                f"m-line {index}: answered {theirs.media!r} to an offered {ours.media!r}", 488
            )
        if theirs.port == 0:
            continue
        if ours.port == 0:
            raise RemoteProtocolError(f"m-line {index}: accepted a stream offered with port 0", 488)
        if ours.media != "audio" or ours.proto not in _RTP_PROTOS:
            raise RemoteProtocolError(f"m-line {index}: accepted a stream we cannot carry", 488)
        offered = codecs(ours)
        answered = codecs(theirs)
        for codec in answered:
            if not any(
                c.is_named(codec.name) and c.clock_rate == codec.clock_rate for c in offered
            ):
                raise RemoteProtocolError(
                    f"m-line {index}: answer has {codec.name}/{codec.clock_rate} "
                    f"(payload type {codec.payload_type}), which was not offered",
                    488,
                )
        audio = [c for c in answered if not c.is_named(TELEPHONE_EVENT) and not c.is_named("CN")]
        if not audio:
            raise RemoteProtocolError(f"m-line {index}: answer has no audio codec", 488)
        chosen = audio[0]
        te = next(
            (
                c
                for c in answered
                if c.is_named(TELEPHONE_EVENT) and c.clock_rate == chosen.clock_rate
            ),
            None,
        )
        our_dir = effective_direction(ours, offer)
        their_dir = effective_direction(theirs, answer)
        if (their_dir.sends and not our_dir.receives) or (their_dir.receives and not our_dir.sends):
            raise RemoteProtocolError(
                f"m-line {index}: answered {their_dir.value} to an offered {our_dir.value}", 488
            )
        address, port = media_address(theirs, answer)
        result.append(
            NegotiatedMedia(
                index=index,
                codec=chosen.name,
                payload_type=chosen.payload_type,
                clock_rate=chosen.clock_rate,
                ptime=theirs.ptime or ours.ptime or _DEFAULT_PTIME,
                telephone_event_pt=te.payload_type if te is not None else None,
                direction=their_dir.reverse(),
                remote_address=address,
                remote_port=port,
            )
        )
    if not result:
        raise RemoteProtocolError("the answer accepted no audio stream", 488)
    return result


def _sess_id(session_id: str) -> str:
    """RFC 4566 §5.2: sess-id is a numeric string (peers such as pjsip reject anything else)."""
    if not session_id.isascii() or not session_id.isdigit():
        raise LocalProtocolError(f"SDP session id must be digits, got {session_id!r}")
    return session_id


def anchor_stream(sdp: SessionDescription, supported: Sequence[str] = ("PCMU", "PCMA")) -> int:
    """Index of the first audio stream the switch can anchor (port set, a supported codec).

    Raises ``RemoteProtocolError(488)`` when there is none (RFC 3264 §6: not acceptable).
    """
    wanted = {name.upper() for name in supported}
    for index, md in enumerate(sdp.media):
        usable = md.media == "audio" and md.port != 0 and md.proto.upper() == "RTP/AVP"
        if usable and any(c.name.upper() in wanted and c.clock_rate == 8000 for c in codecs(md)):
            return index
    raise _bad("no audio stream with a codec the switch relays (PCMU, PCMA)", 488)


#: attributes of the far phone's stream that do not hold for the switch's stream
_NOT_FORWARDED = frozenset({"rtcp", "ssrc", "ssrc-group"})


def anchored(sdp: SessionDescription, index: int, address: str, port: int) -> SessionDescription:
    """The same description with stream ``index`` moved to the switch's ``address``/``port``.

    What a media-anchoring B2BUA forwards (RFC 3264 §5, §6: c= and m= port are ours; codecs,
    payload types and directions are the peer's, so both legs negotiate the same codec). Other
    streams are refused with port 0; an ``a=rtcp`` port (RFC 3605) is dropped since ours is the
    RTP port + 1, and so are ``a=ssrc``/``a=ssrc-group`` (RFC 5576): the switch sends each leg
    its own SSRC, and a phone that believed the other phone's would report on the wrong source.
    """
    media: list[MediaDescription] = []
    for i, md in enumerate(sdp.media):
        if i == index:
            attrs = tuple(a for a in md.attributes if a.name.lower() not in _NOT_FORWARDED)
            media.append(replace(md, port=port, connection=None, attributes=attrs, port_count=None))
        else:
            media.append(replace(md, port=0, connection=None))
    return replace(sdp, connection=Connection.for_address(address), media=tuple(media))


#: The two G.711 laws by name, and the static payload type of each (RFC 3551 table 4).
G711_LAWS: dict[str, int] = {"pcmu": 0, "pcma": 8}


def g711_law(md: MediaDescription) -> CodecRef | None:
    """The stream's only G.711 law (PCMU or PCMA at 8000 Hz), or None if it has neither or
    both: the case where a switch between the two laws has something to translate."""
    laws = [c for c in codecs(md) if c.name.lower() in G711_LAWS and c.clock_rate == 8000]
    names = {c.name.lower() for c in laws}
    return laws[0] if len(names) == 1 else None


def chosen_codec(md: MediaDescription) -> CodecRef | None:
    """The codec an answer settled on (RFC 3264 §6.1: the first format that is not
    telephone-event or comfort noise), or None."""
    for codec in codecs(md):
        if codec.name.lower() not in ("telephone-event", "cn"):
            return codec
    return None


def _format_attrs(md: MediaDescription, keep: Callable[[str], bool]) -> list[Attribute]:
    """The stream's attributes without the rtpmap and fmtp lines of the payload types that
    ``keep`` refuses (RFC 4566 §6: those lines belong to a format of the m-line)."""
    return [
        a
        for a in md.attributes
        if not (
            a.name in ("rtpmap", "fmtp")
            and a.value is not None
            and not keep(a.value.partition(" ")[0])
        )
    ]


def _with_stream(sdp: SessionDescription, index: int, md: MediaDescription) -> SessionDescription:
    media = list(sdp.media)
    media[index] = md
    return replace(sdp, media=tuple(media))


def _law_attrs(md: MediaDescription, drop: int | None, add: str) -> tuple[Attribute, ...]:
    """The attributes with those of payload type ``drop`` gone and an rtpmap for ``add``."""
    attrs = (
        _format_attrs(md, lambda pt: pt != str(drop)) if drop is not None else list(md.attributes)
    )
    pt = G711_LAWS[add]
    rtpmap = Attribute("rtpmap", f"{pt} {add.upper()}/8000")
    at = next((i for i, a in enumerate(attrs) if a.name == "rtpmap"), len(attrs))
    attrs.insert(at, rtpmap)
    return tuple(attrs)


def with_other_law(sdp: SessionDescription, index: int) -> tuple[SessionDescription, int | None]:
    """An offer to forward with the other G.711 law added after the offerer's own codecs.

    A switch that can translate between PCMU and PCMA offers both to the far leg, so that a
    phone with only one law still reaches a phone with only the other (RFC 3264 §5.1: the
    offerer's order of preference is kept; the added format comes last). Returns the
    description and the payload type added (None when there was nothing to add).
    """
    md = sdp.media[index] if index < len(sdp.media) else None
    law = g711_law(md) if md is not None else None
    if md is None or law is None:
        return sdp, None
    other = "pcma" if law.name.lower() == "pcmu" else "pcmu"
    pt = G711_LAWS[other]
    if str(pt) in md.formats:
        return sdp, None  # the number is taken by something else: leave the offer alone
    formats = list(md.formats)
    events = [c for c in codecs(md) if c.name.lower() == "telephone-event"]
    # after the offerer's codecs, before its telephone-event
    at = formats.index(str(events[0].payload_type)) if events else len(formats)
    formats.insert(at, str(pt))
    new_md = replace(md, formats=tuple(formats), attributes=_law_attrs(md, None, other))
    return _with_stream(sdp, index, new_md), pt


def as_law(sdp: SessionDescription, index: int, law: str) -> SessionDescription:
    """The same description with its one G.711 law replaced by ``law`` ("pcmu"/"pcma"),
    for the leg that speaks that law while the switch translates (RFC 3551 static numbers)."""
    md = sdp.media[index] if index < len(sdp.media) else None
    current = g711_law(md) if md is not None else None
    if md is None or current is None or current.name.lower() == law:
        return sdp
    pt = G711_LAWS[law]
    if str(pt) in md.formats:
        return sdp
    formats = tuple(str(pt) if f == str(current.payload_type) else f for f in md.formats)
    new_md = replace(md, formats=formats, attributes=_law_attrs(md, current.payload_type, law))
    return _with_stream(sdp, index, new_md)


def restricted(
    sdp: SessionDescription, index: int, supported: Sequence[str] = ("PCMU", "PCMA")
) -> SessionDescription:
    """Stream ``index`` with only the codecs the switch handles: ``supported`` (by name, 8000
    Hz, mono) and telephone-event/8000 (RFC 4733). The offerer's order is kept; rtpmap and fmtp
    lines of the formats taken out go with them (RFC 3264 §5.1, §8.3.2: an anchoring switch
    offers what it can decode, so a prompt, a recording or a tone detector always can).

    A stream left with no supported audio codec is returned unchanged (``anchor_stream`` has
    already refused such an offer with 488).
    """
    md = sdp.media[index] if index < len(sdp.media) else None
    if md is None:
        return sdp
    wanted = {name.lower() for name in supported}
    keep = [
        c
        for c in codecs(md)
        if c.clock_rate == 8000
        and c.channels == 1
        and (c.name.lower() in wanted or c.name.lower() == "telephone-event")
    ]
    if not any(c.name.lower() != "telephone-event" for c in keep):
        return sdp
    kept = {str(c.payload_type) for c in keep}
    if kept == set(md.formats):
        return sdp
    attrs = tuple(_format_attrs(md, kept.__contains__))
    new_md = replace(md, formats=tuple(f for f in md.formats if f in kept), attributes=attrs)
    return _with_stream(sdp, index, new_md)
