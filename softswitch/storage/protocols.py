"""Storage interfaces the services depend on (ARCHITECTURE.md, "Storage and scale").

Services receive an implementation through their constructor, typed by these Protocols; only
``softswitch.app`` picks the concrete class (SQLite embedded, PostgreSQL in production).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from softswitch.acd.events import QueueEvent
from softswitch.registrar.bindings import Binding
from softswitch.storage.cdr import CallRecord

__all__ = ["BindingStore", "CdrStore", "QueueEventStore"]


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
