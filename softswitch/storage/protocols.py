"""Storage interfaces the services depend on (ARCHITECTURE.md, "Storage and scale").

Services receive an implementation through their constructor, typed by these Protocols; only
``softswitch.app`` picks the concrete class (SQLite embedded, PostgreSQL in production).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from softswitch.registrar.bindings import Binding

__all__ = ["BindingStore"]


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
