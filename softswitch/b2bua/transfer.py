"""The pure parts of call transfer by REFER: what a REFER asks for, and what the NOTIFYs say.

- ``Refer-To`` (RFC 3515 §2.1): exactly one, a SIP URI (or a ``tel:`` number) naming the user
  the transferee is to be connected to; an embedded ``Replaces`` URI header (RFC 3891 §3,
  RFC 5589 §7) turns it into an attended transfer naming the dialog to replace.
- ``Refer-Sub: false`` (RFC 4488 §4) asks for no implicit subscription (no NOTIFYs).
- The NOTIFYs of the implicit subscription carry a ``message/sipfrag`` status line
  (RFC 3420, RFC 3515 §2.4.5) under ``Event: refer`` (RFC 6665 §8.2.1, ``id`` the REFER's
  CSeq for any REFER after the first of a dialog, RFC 3515 §2.4.6).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import unquote

from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError
from softswitch.sip.headers import NameAddr
from softswitch.sip.message import Request
from softswitch.sip.sdp import Direction, SessionDescription, make_offer
from softswitch.sip.uri import SipUri, TelUri

SIPFRAG = "message/sipfrag;version=2.0"


class ReferRefused(Exception):
    """A REFER that cannot be carried out, with the status its response gets."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Replaces:
    """The dialog an attended transfer replaces (RFC 3891 §6.1): its Call-ID and the tags as
    the target of the INVITE would see them (``to_tag`` the target's own)."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False


@dataclass(frozen=True, slots=True)
class ReferTarget:
    """What a REFER asks: connect the transferee to ``user``; with ``replaces``, by taking
    the place of that dialog instead of ringing anyone (attended transfer)."""

    user: str
    uri: str
    replaces: Replaces | None = None


def parse_replaces(text: str) -> Replaces:
    """``callid;to-tag=x;from-tag=y[;early-only]`` (RFC 3891 §6.1), already unescaped."""
    call_id, _, rest = text.strip().partition(";")
    params: dict[str, str | None] = {}
    for item in rest.split(";"):
        name, eq, value = item.strip().partition("=")
        if name:
            params[name.lower()] = value.strip() if eq else None
    to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
    if not call_id.strip() or not to_tag or not from_tag:
        raise ReferRefused(400, "Malformed Replaces")
    return Replaces(call_id.strip(), to_tag, from_tag, "early-only" in params)


def parse_refer(req: Request) -> ReferTarget:
    """The target of a REFER (RFC 3515 §2.4.1), or :class:`ReferRefused`:

    - 400: no Refer-To, more than one, or one that does not parse (also a bad Replaces);
    - 403: a URI of another scheme than sip/sips/tel, or with no user to call;
    - 501: a ``method`` parameter other than INVITE (only calls are transferred).
    """
    rows = req.headers.rows("Refer-To")
    if len(rows) != 1:
        raise ReferRefused(400, "Exactly One Refer-To Needed")
    try:
        addr = NameAddr.parse(rows[0])
    except (RemoteProtocolError, LocalProtocolError, ValueError):
        raise ReferRefused(400, "Malformed Refer-To") from None
    uri = addr.uri
    if isinstance(uri, TelUri):
        return ReferTarget(uri.digits.lstrip("+"), str(uri))
    if not isinstance(uri, SipUri):
        raise ReferRefused(403, "Refer-To Must Be A SIP URI")
    method = uri.params.get("method")
    if method is not None and method.upper() != "INVITE":
        raise ReferRefused(501, "Only INVITE Can Be Referred")
    if not uri.user:
        raise ReferRefused(403, "Refer-To Names No User")
    replaces: Replaces | None = None
    for name, value in uri.headers.items():
        if name.lower() == "replaces":
            replaces = parse_replaces(unquote(value))
    return ReferTarget(unquote(uri.user), str(uri), replaces)


def wants_subscription(req: Request) -> bool:
    """False when the REFER says ``Refer-Sub: false`` (RFC 4488 §4)."""
    value = req.headers.get("Refer-Sub")
    return value is None or value.split(";")[0].strip().lower() != "false"


def sipfrag(status: int, reason: str) -> bytes:
    """The body of a REFER NOTIFY: the status line of the referred INVITE (RFC 3420)."""
    return f"SIP/2.0 {status} {reason}\r\n".encode()


def notify_headers(event: str, final: bool, expires: int = 60) -> list[tuple[str, str]]:
    """Event and Subscription-State of a REFER NOTIFY (RFC 6665 §4.1.3, §8.2.3): active
    while the INVITE is under way; terminated (reason noresource) with its final status."""
    state = "terminated;reason=noresource" if final else f"active;expires={expires}"
    return [("Event", event), ("Subscription-State", state)]


def reoffer(
    previous: SessionDescription | None,
    stream: int,
    *,
    address: str,
    port: int,
    laws: tuple[str, ...],
    session_id: str,
    version: int,
) -> SessionDescription:
    """The switch's offer to a leg whose media it moves (RFC 3264 §8): sendrecv audio on
    ``port`` in ``laws``. Against the last description the leg got from the switch, the same
    origin with the next version and the same m-lines (the others stay refused); without one,
    a fresh offer with ``session_id``/``version``."""
    fresh = make_offer(
        local_address=address,
        local_port=port,
        session_id=session_id,
        session_version=version,
        codec_names=laws,
        direction=Direction.SENDRECV,
    )
    if previous is None or stream >= len(previous.media):
        return fresh
    media = list(previous.media)
    media[stream] = fresh.media[0]
    origin = replace(previous.origin, session_version=previous.origin.session_version + 1)
    # session-level attributes (a direction among them) would qualify the new stream
    return replace(
        previous, origin=origin, connection=fresh.connection, attributes=(), media=tuple(media)
    )
