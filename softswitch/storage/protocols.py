"""Storage interfaces the services depend on (ARCHITECTURE.md, "Storage and scale").

Services receive an implementation through their constructor, typed by these Protocols; only
``softswitch.app`` picks the concrete class (SQLite embedded, PostgreSQL in production).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from softswitch.registrar.bindings import Binding
from softswitch.storage.cdr import CallRecord

__all__ = ["BindingStore", "CdrStore"]


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
        self, limit: int = 100, since: float | None = None, user: str | None = None
    ) -> list[CallRecord]:
        """Up to ``limit`` (at least 1) records, newest end time first.

        ``since`` keeps the records that ended at or after it (Unix seconds); ``user`` keeps
        those whose caller or callee is exactly ``user``.
        """
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
