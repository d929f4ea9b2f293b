"""Dialogs, RFC 3261 §12: creation on either side, in-dialog requests, CSeq rules.

A ``Dialog`` is a plain value with the state of §12.1: Call-ID, local and remote tags, local and
remote URIs and CSeq numbers, remote target and route set. It builds in-dialog requests
(§12.2.1.1) and checks received ones (§12.2.2); it never sends anything itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from softswitch.sip.errors import LocalProtocolError, RemoteProtocolError
from softswitch.sip.headers import Headers, NameAddr
from softswitch.sip.message import Request, Response
from softswitch.sip.uri import Uri

__all__ = ["TARGET_REFRESH", "Dialog", "DialogState"]

#: Requests whose Contact replaces the remote target (§12.2.1.2, §12.2.2, RFC 3311).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Dialog:
    """One dialog as seen from this element (§12.1)."""

    __slots__ = (
        "call_id",
        "local_seq",
        "local_tag",
        "local_uri",
        "remote_seq",
        "remote_tag",
        "remote_target",
        "remote_uri",
        "route_set",
        "state",
    )

    def __init__(
        self,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: str,
        remote_uri: str,
        local_seq: int,
        remote_seq: int | None,
        remote_target: Uri,
        route_set: Iterable[str] = (),
        state: DialogState = DialogState.CONFIRMED,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri  # the name-addr text of our party, without tag
        self.remote_uri = remote_uri
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = list(route_set)
        self.state = state

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, response: Response) -> Dialog:
        """The dialog a UAS creates by answering ``request`` with ``response`` (§12.1.1)."""
        contacts = request.contacts()
        if not contacts:
            raise RemoteProtocolError("dialog-creating request without Contact")
        frm = request.from_
        to = request.to
        state = DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=frm.tag or "",
            local_uri=_without_tag(to),
            remote_uri=_without_tag(frm),
            local_seq=0,
            remote_seq=request.cseq.seq,
            remote_target=contacts[0].uri,
            route_set=request.headers.get_all("Record-Route"),
            state=state,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a UAC creates from a response with a To tag (§12.1.2)."""
        to = response.to
        if not to.tag:
            raise RemoteProtocolError("dialog-creating response without To tag")
        contacts = response.contacts()
        target = contacts[0].uri if contacts else request.uri
        frm = request.from_
        state = DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY
        return cls(
            call_id=request.call_id,
            local_tag=frm.tag or "",
            remote_tag=to.tag,
            local_uri=_without_tag(frm),
            remote_uri=_without_tag(to),
            local_seq=request.cseq.seq,
            remote_seq=None,
            remote_target=target,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            state=state,
        )

    def confirm(self, response: Response) -> None:
        """A 2xx ends the early state (§12.1.2) and refreshes the remote target."""
        self.state = DialogState.CONFIRMED
        contacts = response.contacts()
        if contacts:
            self.remote_target = contacts[0].uri

    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
        cseq: int | None = None,
    ) -> Request:
        """Build an in-dialog request (§12.2.1.1); ACK and CANCEL reuse a given CSeq."""
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("dialog is terminated")
        if cseq is None:
            if method in ("ACK", "CANCEL"):
                raise LocalProtocolError(f"{method} needs the CSeq of its INVITE")
            self.local_seq += 1
            cseq = self.local_seq
        h = Headers()
        for route in self.route_set:
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", f"{self.local_uri};tag={self.local_tag}")
        h.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        for name, value in extra:
            h.add(name, value)
        if content_type and body:
            h.add("Content-Type", content_type)
        return Request(method, self.remote_target, h, body)

    def receive_request(self, request: Request) -> None:
        """Check and apply an in-dialog request (§12.2.2).

        Raises ``RemoteProtocolError(500)`` for a CSeq lower than the last one seen.
        """
        seq = request.cseq.seq
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq < self.remote_seq:
                raise RemoteProtocolError("CSeq lower than the dialog's remote sequence", 500)
            self.remote_seq = seq
        if request.method in TARGET_REFRESH:
            contacts = request.contacts()
            if contacts:
                self.remote_target = contacts[0].uri


def _without_tag(addr: NameAddr) -> str:
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return str(NameAddr(addr.uri, addr.display, params))
