"""Storage interfaces the services depend on (ARCHITECTURE.md, "Storage and scale").

Services receive an implementation through their constructor, typed by these Protocols; only
``softswitch.app`` picks the concrete class (SQLite embedded, PostgreSQL in production).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from softswitch.acd.events import QueueEvent
from softswitch.registrar.bindings import Binding
from softswitch.security.lockout import LockState
from softswitch.security.totp import Enrolment
from softswitch.storage.cdr import CallRecord
from softswitch.storage.security_store import AuditEntry

__all__ = ["AuditStore", "BindingStore", "CdrStore", "QueueEventStore", "SecretStore"]


class BindingStore(Protocol):
    """Persistent registrar bindings (RFC 3261 §10.3), keyed by ``(aor, contact)``.

    The registrar keeps the authoritative table in memory and writes through to the store, so
    that registrations survive a restart of the switch.
    """

    async def load_all(self) -> list[Binding]:
        """Every stored binding, expired ones included (the table's ``load`` filters them)."""
        ...

    async def save(self, bindings: Sequence[Binding]) -> None:
        """Insert or replace each binding by its ``(aor, contact)`` key, in one transaction."""
        ...

    async def delete(self, keys: Sequence[tuple[str, str]]) -> None:
        """Delete the bindings with these ``(aor, contact)`` keys; unknown keys are ignored."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


class CdrStore(Protocol):
    """Call detail records (:class:`~softswitch.storage.cdr.CallRecord`), written once per call.

    Implementations never block the event loop and keep the table bounded by age (the SQLite
    store has ``purge``; the switch runs it on a retention schedule).
    """

    async def add(self, record: CallRecord) -> None:
        """Store one record; raises ``ValueError`` if its media is not a JSON document."""
        ...

    async def get(self, call_id: str) -> CallRecord | None:
        """The newest record with this Call-ID (by end time), or None."""
        ...

    async def recent(
        self,
        limit: int = 100,
        since: float | None = None,
        user: str | None = None,
        *,
        until: float | None = None,
        caller: str | None = None,
        callee: str | None = None,
        queue: str | None = None,
        agent: str | None = None,
    ) -> list[CallRecord]:
        """Up to ``limit`` (at least 1, else ``ValueError``) records, newest end time first.

        Every filter given must hold (they combine with AND): ``since`` keeps the records that
        ended at or after it and ``until`` those that ended before it (Unix seconds, so
        consecutive windows do not overlap); ``user`` keeps those whose caller or callee is
        exactly ``user``; ``caller``, ``callee``, ``queue`` and ``agent`` keep those whose
        field is exactly that text (a record without a queue or agent matches no such filter).
        """
        ...

    async def set_wrap_up_code(self, call_id: str, code: str) -> bool:
        """Store the wrap-up code with the newest record of ``call_id``; False if none."""
        ...

    async def set_wrap_up_note(self, call_id: str, note: str) -> bool:
        """Store the agent's wrap-up note with the newest record of ``call_id``; False if
        none."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


class QueueEventStore(Protocol):
    """The queue log (:class:`~softswitch.acd.events.QueueEvent`), in the spirit of Asterisk's
    ``queue_log``: appended by the ACD in batches, read back by time window and filters for
    reports and the API, and kept bounded by age with :meth:`purge`.
    """

    async def add_many(self, events: Sequence[QueueEvent]) -> None:
        """Append the events in one transaction: all are stored or none.

        Raises ``ValueError`` (and stores nothing) if an event's details are not a flat
        object of texts and finite numbers.
        """
        ...

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        queue: str | None = None,
        agent: str | None = None,
        call_id: str | None = None,
        kinds: Collection[str] | None = None,
        limit: int = 1000,
    ) -> list[QueueEvent]:
        """The events that match every filter given, oldest first (ascending time; events of
        the same time in the order they were added).

        ``since`` keeps the events at or after it and ``until`` those before it (Unix
        seconds); ``queue``, ``agent`` and ``call_id`` keep those whose field is exactly that
        text; ``kinds`` keeps those whose kind's name (``"connected"``...) is in it, an empty
        collection matching nothing (a name that is no kind is a ``ValueError``).

        When more than ``limit`` (at least 1, else ``ValueError``) events match, the newest
        ``limit`` of them are returned, still oldest first: a window that is too wide loses
        its beginning, and the newest events are always there.
        """
        ...

    async def purge(self, older_than: float) -> int:
        """Delete the events before ``older_than`` (Unix seconds); returns how many."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


class SecretStore(Protocol):
    """Agents' second-factor secrets (RFC 6238) and sign-in lockouts, shared with the
    administrator's command line (a separate process): every read is fresh, so an enrolment
    or an unlock made there holds at the next sign-in, and a lock survives a restart.
    """

    async def enrol(self, agent: str, secret: str, now: float) -> None:
        """Store ``agent``'s secret, replacing an earlier one (no step used yet)."""
        ...

    async def secret(self, agent: str) -> Enrolment | None:
        """``agent``'s enrolment as stored now, or None."""
        ...

    async def accept_step(self, agent: str, step: int) -> bool:
        """Record ``step`` as the last accepted one if later than the last (atomically);
        False if it is not (a replayed code) or the agent has no secret."""
        ...

    async def lock_state(self, agent: str) -> LockState:
        """``agent``'s failures in a row and lock (a clear state if none is stored)."""
        ...

    async def change_lock(self, agent: str, change: Callable[[LockState], LockState]) -> LockState:
        """Apply ``change`` to ``agent``'s lock state in one transaction; the new state."""
        ...

    async def unlock(self, agent: str) -> LockState:
        """Lift the lock and forget the failures; the state before."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


class AuditStore(Protocol):
    """The audit trail: sign-ins, screen pops viewed, supervisors' actions. Appended one entry
    at a time, read newest first by filters, kept bounded by age with :meth:`purge_audit`.
    """

    async def add_audit(
        self,
        *,
        time: float,
        actor: str,
        action: str,
        subject: str | None = None,
        address: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """Append one entry; ``ValueError`` for details that are not a JSON object."""
        ...

    async def audit(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """The entries matching every filter, newest first, at most ``limit``: ``since``
        keeps those at or after it, ``until`` those before it (Unix seconds); ``actor``,
        ``action`` and ``subject`` are exact."""
        ...

    async def purge_audit(self, older_than: float) -> int:
        """Delete the entries before ``older_than`` (Unix seconds); how many."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
