"""The registrar's binding table: address-of-record -> contacts (RFC 3261 §10.3 steps 6-8).

A pure core (ARCHITECTURE.md, principle 1): no clock, no I/O. Times are wall-clock epoch seconds
passed in as ``now``, because bindings are persisted and have to mean the same after a restart.
The REGISTER service parses the request, authenticates it, clamps each expiry (§10.3 step 7's
"MAY shorten"), then calls :meth:`BindingTable.apply` or :meth:`BindingTable.remove_all` and
builds the 200 response from the bindings returned (step 8).

Bounded (principle 6): at most ``max_bindings_per_aor`` contacts per address-of-record and
``max_total`` bindings in all; expired bindings leave the table through :meth:`expire`, which the
adapter calls when :meth:`next_deadline` is reached.

Contacts are matched with the URI comparison of §19.1.4, supplied by the caller as
``same_contact``; a contact registered with a ``+sip.instance`` and a ``reg-id`` (RFC 5626 §6) is
matched by that pair instead, so a UA that re-registers a flow from a new address replaces the
old binding of that flow.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "Binding",
    "BindingError",
    "BindingTable",
    "ContactUpdate",
    "OutOfOrderRegister",
    "SameContact",
    "TableFull",
    "TooManyContacts",
    "default_same_contact",
]

SameContact = Callable[[str, str], bool]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an address-of-record (RFC 3261 §10.3 step 7)."""

    aor: str
    """Address-of-record key, e.g. ``"1001@softswitch.local"``."""
    contact: str
    """The Contact URI exactly as the UA gave it, without the angle brackets."""
    expires_at: float
    """Wall-clock epoch seconds after which the binding is gone."""
    q: float
    """Preference 0..1 (§20.10); higher is tried first."""
    call_id: str
    cseq: int
    source: str
    """``transport:ip:port`` the REGISTER came from; requests for this contact go there."""
    user_agent: str = ""
    instance_id: str = ""
    """``+sip.instance`` of the contact (RFC 5626 §4.1), if any."""
    reg_id: int = 0
    """``reg-id`` of the contact (RFC 5626 §4.2), 0 if none."""

    def expires_in(self, now: float) -> int:
        """Seconds left at ``now``, rounded down and never negative (the 200's ``expires``)."""
        return max(0, int(self.expires_at - now))


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """One Contact header field value of a REGISTER, already validated and clamped.

    ``expires`` is the granted expiry in seconds (0 removes the binding). Out-of-range values
    are a bug in the caller and raise :class:`ValueError`.
    """

    contact: str
    expires: float
    q: float = 1.0
    source: str = ""
    user_agent: str = ""
    instance_id: str = ""
    reg_id: int = 0

    def __post_init__(self) -> None:
        if not self.contact:
            raise ValueError("contact must not be empty")
        if not self.expires >= 0:
            raise ValueError(f"expires must be >= 0, got {self.expires!r}")
        if not 0.0 <= self.q <= 1.0:
            raise ValueError(f"q must be within 0..1, got {self.q!r}")
        if self.reg_id < 0:
            raise ValueError(f"reg_id must be >= 0, got {self.reg_id!r}")


class BindingError(Exception):
    """A REGISTER cannot be applied; ``status`` is the response the registrar should send."""

    status: int = 500

    def __init__(self, aor: str, message: str) -> None:
        super().__init__(f"{aor}: {message}")
        self.aor = aor
        self.message = message


class OutOfOrderRegister(BindingError):
    """Same Call-ID with a CSeq not above the stored one (§10.3 step 7: the request fails)."""

    status = 500


class TooManyContacts(BindingError):
    """The address-of-record would exceed ``max_bindings_per_aor``."""

    status = 403


class TableFull(BindingError):
    """The table would exceed ``max_total`` bindings."""

    status = 503


def _contact_key(uri: str) -> str:
    """``uri`` with its scheme and host (with port) lower-cased; everything else as given."""
    scheme, colon, rest = uri.partition(":")
    if not colon:
        return uri.lower()
    end = len(rest)
    for stop in (";", "?"):
        pos = rest.find(stop)
        if pos != -1:
            end = min(end, pos)
    at = rest.rfind("@", 0, end)
    return f"{scheme.lower()}:{rest[: at + 1]}{rest[at + 1 : end].lower()}{rest[end:]}"


def default_same_contact(a: str, b: str) -> bool:
    """A simple stand-in for §19.1.4: equal after lower-casing the scheme and the host."""
    return a == b or _contact_key(a) == _contact_key(b)


class _Entry:
    __slots__ = ("binding", "seq")

    def __init__(self, binding: Binding, seq: int) -> None:
        self.binding = binding
        self.seq = seq  # grows with every registration or refresh: "most recent" ordering


class BindingTable:
    """Bindings of all addresses-of-record, with per-AOR and total caps."""

    __slots__ = (
        "_aors",
        "_by_seq",
        "_heap",
        "_max_per_aor",
        "_max_total",
        "_reaped",
        "_same",
        "_seq",
    )

    def __init__(
        self,
        max_bindings_per_aor: int,
        max_total: int,
        *,
        same_contact: SameContact = default_same_contact,
    ) -> None:
        if max_bindings_per_aor < 1 or max_total < 1:
            raise ValueError("caps must be >= 1")
        self._max_per_aor = max_bindings_per_aor
        self._max_total = max_total
        self._same = same_contact
        self._aors: dict[str, list[_Entry]] = {}
        self._by_seq: dict[int, _Entry] = {}
        # (expires_at, seq) of every entry; entries removed otherwise are skipped lazily.
        self._heap: list[tuple[float, int]] = []
        # Expired bindings an apply()/remove_all() took out of the table; expire() hands them
        # over so that the owner can delete them from storage.
        self._reaped: deque[Binding] = deque(maxlen=max_total)
        self._seq = 0

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        """Bindings held, including expired ones :meth:`expire` has not collected yet."""
        return len(self._by_seq)

    def all(self) -> Iterator[Binding]:
        """Every binding held (a snapshot; expired ones included until :meth:`expire`)."""
        return iter([entry.binding for entry in self._by_seq.values()])

    def aor_count(self) -> int:
        """Addresses-of-record with at least one binding held."""
        return len(self._aors)

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Unexpired bindings of ``aor``: highest q first, then the most recently registered."""
        entries = self._aors.get(aor)
        if not entries:
            return []
        live = [e for e in entries if e.binding.expires_at > now]
        live.sort(key=lambda e: (-e.binding.q, -e.seq))
        return [e.binding for e in live]

    def next_deadline(self) -> float | None:
        """The earliest expiry :meth:`expire` has to act on, or ``None`` if nothing can expire."""
        deadline: float | None = None
        if self._reaped:
            deadline = min(b.expires_at for b in self._reaped)
        heap = self._heap
        while heap and heap[0][1] not in self._by_seq:
            heapq.heappop(heap)
        if heap and (deadline is None or heap[0][0] < deadline):
            deadline = heap[0][0]
        return deadline

    # ------------------------------------------------------------------ updates

    def apply(
        self, aor: str, call_id: str, cseq: int, updates: Sequence[ContactUpdate], now: float
    ) -> list[Binding]:
        """Apply the Contact values of one REGISTER (§10.3 step 7); return the AOR's bindings.

        For each update, the current binding of the same contact (or of the same RFC 5626 flow)
        is replaced if the Call-ID differs or the CSeq is higher, and removed if the update's
        expiry is 0; a new contact is added. All updates commit together or none does (step 7's
        last paragraph): :class:`OutOfOrderRegister`, :class:`TooManyContacts` or
        :class:`TableFull` leave the table as it was. A request that does not increase the
        number of the AOR's contacts is never refused for a cap.
        """
        entries = self._aors.get(aor, [])
        live = [e for e in entries if e.binding.expires_at > now]
        # (binding, entry it came from if unchanged since before this request)
        work: list[tuple[Binding, _Entry | None]] = [(e.binding, e) for e in live]
        for update in updates:
            kept: list[tuple[Binding, _Entry | None]] = []
            for item in work:
                binding, origin = item
                if not self._matches(binding, update):
                    kept.append(item)
                    continue
                if origin is not None and binding.call_id == call_id and cseq <= binding.cseq:
                    raise OutOfOrderRegister(
                        aor,
                        f"CSeq {cseq} is not above {binding.cseq} stored for "
                        f"{binding.contact} with the same Call-ID",
                    )
            work = kept
            if update.expires > 0:
                work.append((self._binding_from(aor, call_id, cseq, update, now), None))
        self._check_caps(aor, len(live), len(work), len(entries))
        self._commit(aor, entries, work, now)
        return self.lookup(aor, now)

    def remove_all(self, aor: str, call_id: str, cseq: int, now: float) -> list[Binding]:
        """``Contact: *`` with ``Expires: 0`` (§10.3 step 6); return the bindings removed.

        Fails with :class:`OutOfOrderRegister`, removing nothing, if a binding has the same
        Call-ID and a CSeq not below the request's.
        """
        entries = self._aors.get(aor, [])
        live = [e for e in entries if e.binding.expires_at > now]
        for entry in live:
            binding = entry.binding
            if binding.call_id == call_id and cseq <= binding.cseq:
                raise OutOfOrderRegister(
                    aor,
                    f"CSeq {cseq} is not above {binding.cseq} stored for {binding.contact} "
                    "with the same Call-ID",
                )
        self._commit(aor, entries, [], now)
        return [e.binding for e in live]

    def remove(self, aor: str, contact: str, *, reg_id: int | None = None) -> Binding | None:
        """Remove the binding of ``contact`` (e.g. its keep-alives failed); ``None`` if absent.

        ``reg_id`` narrows the match to one RFC 5626 flow, for a UA that registers several
        flows with the same Contact URI.
        """
        entries = self._aors.get(aor)
        if not entries:
            return None
        for index, entry in enumerate(entries):
            if reg_id is not None and entry.binding.reg_id != reg_id:
                continue
            if self._same(entry.binding.contact, contact):
                del entries[index]
                del self._by_seq[entry.seq]
                if not entries:
                    del self._aors[aor]
                self._compact_heap()
                return entry.binding
        return None

    def expire(self, now: float) -> list[Binding]:
        """Remove and return every binding whose expiry is at or before ``now``."""
        # A reaped binding whose contact has been registered again since is not reported: its
        # storage key (aor, contact) now belongs to the new binding.
        gone = [
            b
            for b in self._reaped
            if not any(e.binding.contact == b.contact for e in self._aors.get(b.aor, ()))
        ]
        self._reaped.clear()
        heap = self._heap
        by_seq = self._by_seq
        while heap and heap[0][0] <= now:
            _, seq = heapq.heappop(heap)
            entry = by_seq.pop(seq, None)
            if entry is None:
                continue
            aor = entry.binding.aor
            entries = self._aors[aor]
            entries.remove(entry)
            if not entries:
                del self._aors[aor]
            gone.append(entry.binding)
        return gone

    def load(self, bindings: Iterable[Binding], now: float) -> list[Binding]:
        """Restore bindings from storage; return the ones not taken (to delete from storage).

        Expired bindings are not taken; of two stored bindings of one AOR with the same contact
        the later-expiring one is kept; where a cap would be exceeded the later-expiring
        bindings win. Bindings already in the table are kept as they are.
        """
        dropped: list[Binding] = []
        by_aor: dict[str, list[Binding]] = {}
        for binding in bindings:
            if binding.expires_at <= now:
                dropped.append(binding)
                continue
            group = by_aor.setdefault(binding.aor, [])
            for index, other in enumerate(group):
                if self._same(other.contact, binding.contact):
                    if binding.expires_at > other.expires_at:
                        group[index] = binding
                        dropped.append(other)
                    else:
                        dropped.append(binding)
                    break
            else:
                group.append(binding)
        admitted: list[Binding] = []
        room_total = self._max_total - len(self._by_seq)
        for aor, group in by_aor.items():
            current = self._aors.get(aor, [])
            group.sort(key=lambda b: b.expires_at, reverse=True)
            room = self._max_per_aor - len(current)
            for binding in group:
                taken = any(self._same(e.binding.contact, binding.contact) for e in current)
                if taken or room <= 0:
                    dropped.append(binding)
                    continue
                room -= 1
                admitted.append(binding)
        admitted.sort(key=lambda b: b.expires_at, reverse=True)
        if len(admitted) > room_total:
            dropped.extend(admitted[max(room_total, 0) :])
            admitted = admitted[: max(room_total, 0)]
        # The earliest-expiring gets the lowest sequence: expiry stands in for recency.
        for binding in reversed(admitted):
            self._insert(binding)
        return dropped

    # ------------------------------------------------------------------ internals

    def _matches(self, binding: Binding, update: ContactUpdate) -> bool:
        if update.instance_id and update.reg_id:
            # RFC 5626 §6: the flow (instance-id, reg-id) identifies the binding.
            return binding.instance_id == update.instance_id and binding.reg_id == update.reg_id
        return self._same(binding.contact, update.contact)

    @staticmethod
    def _binding_from(
        aor: str, call_id: str, cseq: int, update: ContactUpdate, now: float
    ) -> Binding:
        return Binding(
            aor=aor,
            contact=update.contact,
            expires_at=now + update.expires,
            q=update.q,
            call_id=call_id,
            cseq=cseq,
            source=update.source,
            user_agent=update.user_agent,
            instance_id=update.instance_id,
            reg_id=update.reg_id,
        )

    def _check_caps(self, aor: str, before: int, after: int, held: int) -> None:
        if after <= before:
            return
        if after > self._max_per_aor:
            raise TooManyContacts(
                aor, f"{after} contacts exceed the limit of {self._max_per_aor} per AOR"
            )
        total = len(self._by_seq) - held + after
        if total > self._max_total:
            raise TableFull(aor, f"the table holds its maximum of {self._max_total} bindings")

    def _commit(
        self,
        aor: str,
        entries: list[_Entry],
        work: list[tuple[Binding, _Entry | None]],
        now: float,
    ) -> None:
        keep = {id(origin) for _, origin in work if origin is not None}
        for entry in entries:
            if id(entry) in keep:
                continue
            del self._by_seq[entry.seq]
            if entry.binding.expires_at <= now:
                self._reaped.append(entry.binding)
        new_entries: list[_Entry] = []
        for binding, origin in work:
            if origin is not None:
                new_entries.append(origin)
            else:
                new_entries.append(self._new_entry(binding))
        if new_entries:
            self._aors[aor] = new_entries
        else:
            self._aors.pop(aor, None)
        self._compact_heap()

    def _insert(self, binding: Binding) -> None:
        self._aors.setdefault(binding.aor, []).append(self._new_entry(binding))

    def _new_entry(self, binding: Binding) -> _Entry:
        self._seq += 1
        entry = _Entry(binding, self._seq)
        self._by_seq[entry.seq] = entry
        heapq.heappush(self._heap, (binding.expires_at, entry.seq))
        return entry

    def _compact_heap(self) -> None:
        """Rebuild the expiry heap once removed entries outnumber the live ones."""
        if len(self._heap) > 2 * len(self._by_seq) + 64:
            self._heap = [(e.binding.expires_at, e.seq) for e in self._by_seq.values()]
            heapq.heapify(self._heap)
