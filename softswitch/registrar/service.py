"""The REGISTER service (RFC 3261 §10.3) and keep-alive probing of registered contacts.

Authentication happens before this service (the request pipeline); here the authenticated user
updates the bindings of its own address-of-record. Bindings live in a ``BindingTable`` in
memory; every change is reported as a ``BindingsChanged`` event that the storage adapter writes
behind, so a restart finds them again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from functools import lru_cache

from softswitch.registrar.bindings import (
    Binding,
    BindingError,
    BindingTable,
    ContactUpdate,
)
from softswitch.sip.errors import RemoteProtocolError
from softswitch.sip.events import Address, ResponseReceived, TransactionTimedOut, TxnKey
from softswitch.sip.headers import Headers
from softswitch.sip.message import Request, Response, make_response
from softswitch.sip.txn_layer import TransactionLayer
from softswitch.sip.uri import SipUri, Uri, parse_uri

log = logging.getLogger("softswitch.registrar")


@dataclass(frozen=True, slots=True)
class BindingsChanged:
    """Bindings to write to storage (``saved``) and to delete (``removed``: (aor, contact))."""

    saved: tuple[Binding, ...] = ()
    removed: tuple[tuple[str, str], ...] = ()


def same_contact(a: str, b: str) -> bool:
    """Contact URIs compared by RFC 3261 §19.1.4 (§10.3 step 7)."""
    if a == b:
        return True
    ua, ub = _contact_uri(a), _contact_uri(b)
    if ua is None or ub is None:
        return False
    return ua.equivalent(ub)


@lru_cache(maxsize=4)
def _http_date(second: int) -> str:
    """The Date header value (RFC 3261 §20.17), formatted once per second."""
    return formatdate(second, usegmt=True)


@lru_cache(maxsize=65536)
def _contact_uri(text: str) -> Uri | None:
    """Parsed binding contacts, shared: the result is only read (compared), never changed."""
    try:
        return parse_uri(text)
    except RemoteProtocolError:
        return None


class Registrar:
    """Bindings of the users of one domain."""

    def __init__(
        self,
        domain: str,
        table: BindingTable,
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: Mapping[str, int] | None = None,
    ) -> None:
        self.domain = domain
        #: per-user cap on registered contacts (devices); the table's own cap is the largest
        self.max_contacts = max_contacts or {}
        self.table = table
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires

    def aor(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def lookup(self, user: str, now_wall: float) -> list[Binding]:
        return self.table.lookup(self.aor(user), now_wall)

    def register(
        self, req: Request, user: str, source: Address, now_wall: float
    ) -> tuple[Response, BindingsChanged | None]:
        """Apply an authenticated REGISTER (§10.3 steps 4 to 8)."""
        try:
            to_uri = req.to.uri
        except RemoteProtocolError as exc:
            return make_response(req, 400, exc.message), None
        if not isinstance(to_uri, SipUri):
            return make_response(req, 416), None
        if to_uri.user != user:
            log.warning("REGISTER from %s: %s may not register %s", source, user, to_uri.user)
            return make_response(req, 403, "Not Your Address-of-Record"), None
        aor = self.aor(user)
        call_id = req.call_id
        cseq = req.cseq.seq
        try:
            header_expires = req.expires
        except RemoteProtocolError as exc:
            return make_response(req, 400, exc.message), None
        changed: BindingsChanged | None = None
        try:
            if req.is_star_contact:
                if header_expires != 0 or len(req.headers.get_all("Contact")) != 1:
                    return make_response(req, 400, "Contact * needs Expires: 0"), None
                removed = self.table.remove_all(aor, call_id, cseq, now_wall)
                changed = BindingsChanged(removed=tuple((b.aor, b.contact) for b in removed))
                log.info("%s unregistered all contacts from %s", aor, source)
            elif req.headers.get_all("Contact"):
                updates = self._updates(req, header_expires, source)
                if isinstance(updates, Response):
                    return updates, None
                cap = self.max_contacts.get(user)
                if cap is not None and self._contacts_after(aor, updates, now_wall) > cap:
                    log.warning("%s from %s: more than %d contacts", aor, source, cap)
                    return make_response(req, 403, f"At Most {cap} Contacts"), None
                result = self.table.apply(aor, call_id, cseq, updates, now_wall)
                saved = tuple(
                    b for b in result if any(same_contact(b.contact, u.contact) for u in updates)
                )
                gone = tuple(
                    (aor, u.contact)
                    for u in updates
                    if u.expires == 0 or not any(same_contact(b.contact, u.contact) for b in result)
                )
                changed = BindingsChanged(saved=saved, removed=gone)
                for u in updates:
                    log.info(
                        "%s %s %s from %s (expires %d)",
                        aor,
                        "unregistered" if u.expires == 0 else "registered",
                        u.contact,
                        source,
                        u.expires,
                    )
        except BindingError as exc:
            return make_response(req, exc.status, str(exc)), None
        resp = make_response(req, 200, "OK", to_tag=call_id[:8] or "reg")
        for binding in self.table.lookup(aor, now_wall):
            resp.headers.add(
                "Contact", f"<{binding.contact}>;expires={binding.expires_in(now_wall)}"
            )
        resp.headers.add("Date", _http_date(int(now_wall)))
        return resp, changed

    def _contacts_after(self, aor: str, updates: Sequence[ContactUpdate], now_wall: float) -> int:
        """How many contacts the AOR would have once ``updates`` are applied."""
        current = self.table.lookup(aor, now_wall)
        kept = [
            b
            for b in current
            if not any(u.expires == 0 and same_contact(b.contact, u.contact) for u in updates)
        ]
        added = [
            u
            for u in updates
            if u.expires > 0 and not any(same_contact(b.contact, u.contact) for b in current)
        ]
        return len(kept) + len(added)

    def _updates(
        self, req: Request, header_expires: int | None, source: Address
    ) -> list[ContactUpdate] | Response:
        updates: list[ContactUpdate] = []
        user_agent = req.headers.get("User-Agent") or ""
        try:
            contacts = req.contacts()
        except RemoteProtocolError as exc:
            return make_response(req, 400, f"Bad Contact: {exc.message}")
        for contact in contacts:
            if not isinstance(contact.uri, SipUri):
                return make_response(req, 400, "Contact must be a SIP URI")
            params = contact.params
            expires_text = params.get("expires")
            if expires_text is not None:
                if not expires_text.isdigit() or len(expires_text) > 10:
                    return make_response(req, 400, f"Bad expires parameter {expires_text!r}")
                expires = int(expires_text)
            elif header_expires is not None:
                expires = header_expires
            else:
                expires = self.default_expires
            if 0 < expires < self.min_expires:
                resp = make_response(req, 423, "Interval Too Brief")
                resp.headers.add("Min-Expires", str(self.min_expires))
                return resp
            expires = min(expires, self.max_expires)
            q = 1.0
            if (q_text := params.get("q")) is not None:
                try:
                    q = float(q_text)
                except ValueError:
                    q = -1.0
                if not 0.0 <= q <= 1.0:
                    return make_response(req, 400, f"Bad q parameter {q_text!r}")
            instance = (params.get("+sip.instance") or "").strip('"')
            reg_id_text = params.get("reg-id") or "0"
            reg_id = int(reg_id_text) if reg_id_text.isdigit() and len(reg_id_text) < 6 else 0
            updates.append(
                ContactUpdate(
                    contact=str(contact.uri),
                    expires=expires,
                    q=q,
                    source=str(source),
                    user_agent=user_agent[:200],
                    instance_id=instance[:200],
                    reg_id=reg_id,
                )
            )
        return updates

    def expire(self, now_wall: float) -> BindingsChanged | None:
        gone = self.table.expire(now_wall)
        for b in gone:
            log.info("%s binding %s expired", b.aor, b.contact)
        if not gone:
            return None
        return BindingsChanged(removed=tuple((b.aor, b.contact) for b in gone))

    def remove(self, aor: str, contact: str) -> BindingsChanged | None:
        if self.table.remove(aor, contact) is None:
            return None
        return BindingsChanged(removed=((aor, contact),))


@dataclass(slots=True)
class _Probe:
    failures: int = 0
    next_at: float = 0.0
    in_flight: bool = False


class KeepAlive:
    """OPTIONS probes of every registered contact; dead contacts are removed.

    A contact that leaves ``failures`` consecutive probes unanswered (Timer F of the probe's
    non-INVITE transaction, §17.1.2.2) loses its binding. Any response, even an error, proves
    the contact is alive.
    """

    def __init__(
        self,
        layer: TransactionLayer,
        registrar: Registrar,
        *,
        interval: float,
        failures: int,
        local_uri: Callable[[str], str],
        new_call_id: Callable[[], str],
        on_change: Callable[[BindingsChanged], None],
    ) -> None:
        self.layer = layer
        self.registrar = registrar
        self.interval = interval
        self.failures = failures
        self.local_uri = local_uri
        self.new_call_id = new_call_id
        self.on_change = on_change
        self._probes: dict[tuple[str, str], _Probe] = {}
        self._pending: dict[TxnKey, tuple[str, str]] = {}
        self._next = 0.0

    def next_deadline(self) -> float | None:
        return self._next if self.interval > 0 else None

    def handle_timer(self, now: float, now_wall: float, bindings: Sequence[Binding]) -> None:
        """Probe every contact whose turn has come (at most once per interval each)."""
        if self.interval <= 0 or now < self._next:
            return
        self._next = now + min(1.0, self.interval)
        live: set[tuple[str, str]] = set()
        for binding in bindings:
            key = (binding.aor, binding.contact)
            live.add(key)
            probe = self._probes.get(key)
            if probe is None:
                self._probes[key] = _Probe(0, now + self.interval)
                continue
            if probe.next_at <= now and not probe.in_flight:
                probe.next_at = now + self.interval
                probe.in_flight = self._send_probe(binding, now)
        for key in [k for k in self._probes if k not in live]:
            del self._probes[key]

    def _send_probe(self, binding: Binding, now: float) -> bool:
        try:
            target = parse_uri(binding.contact)
            destination = Address.parse(binding.source)
        except (RemoteProtocolError, ValueError):
            return False
        h = Headers()
        h.add("Max-Forwards", "70")
        h.add("From", f"<{self.local_uri(destination.transport)}>;tag={self.new_call_id()[:10]}")
        h.add("To", f"<sip:{binding.aor}>")
        h.add("Call-ID", self.new_call_id())
        h.add("CSeq", "1 OPTIONS")
        key = self.layer.send_request(Request("OPTIONS", target, h), destination, now)
        self._pending[key] = (binding.aor, binding.contact)
        return True

    def on_response(self, event: ResponseReceived) -> bool:
        key = self._pending.pop(event.key, None) if event.response.status >= 200 else None
        if key is None:
            return event.key in self._pending
        probe = self._probes.get(key)
        if probe is not None:
            probe.failures = 0
            probe.in_flight = False
        return True

    def on_timeout(self, event: TransactionTimedOut) -> bool:
        key = self._pending.pop(event.key, None)
        if key is None:
            return False
        probe = self._probes.get(key)
        if probe is None:
            return True
        probe.failures += 1
        probe.in_flight = False
        if probe.failures >= self.failures:
            log.warning("%s contact %s does not answer keep-alives, removing it", *key)
            del self._probes[key]
            changed = self.registrar.remove(*key)
            if changed is not None:
                self.on_change(changed)
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)
