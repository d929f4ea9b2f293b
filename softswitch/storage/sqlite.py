"""SQLite implementations of the storage Protocols (the embedded default).

Uses SQLAlchemy 2 Core over aiosqlite, so the event loop never blocks on the database. File
databases run in WAL mode (readers do not block the writer, and a crash loses at most the
transaction in flight); ``":memory:"`` databases live as long as the store and serve tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    bindparam,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from softswitch.registrar.bindings import Binding

__all__ = ["SqliteBindingStore", "bindings_table", "metadata"]

metadata = MetaData()

bindings_table = Table(
    "registrar_bindings",
    metadata,
    Column("aor", String, nullable=False),
    Column("contact", String, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("q", Float, nullable=False),
    Column("call_id", String, nullable=False),
    Column("cseq", Integer, nullable=False),
    Column("source", String, nullable=False),
    Column("user_agent", String, nullable=False, default=""),
    Column("instance_id", String, nullable=False, default=""),
    Column("reg_id", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("aor", "contact", name="pk_registrar_bindings"),
)

_MEMORY = ":memory:"


def _build_upsert() -> Any:
    stmt = sqlite_insert(bindings_table)
    return stmt.on_conflict_do_update(
        index_elements=[bindings_table.c.aor, bindings_table.c.contact],
        set_={
            name: stmt.excluded[name]
            for name in (
                "expires_at", "q", "call_id", "cseq", "source", "user_agent", "instance_id",
                "reg_id",
            )
        },
    )  # fmt: skip


# Statements are immutable: built once, so SQLAlchemy's compiled-statement cache hits on
# every batch instead of building and compiling the upsert again.
_UPSERT = _build_upsert()
_DELETE = delete(bindings_table).where(
    bindings_table.c.aor == bindparam("key_aor"),
    bindings_table.c.contact == bindparam("key_contact"),
)


def _row(binding: Binding) -> dict[str, Any]:
    return {
        "aor": binding.aor,
        "contact": binding.contact,
        "expires_at": binding.expires_at,
        "q": binding.q,
        "call_id": binding.call_id,
        "cseq": binding.cseq,
        "source": binding.source,
        "user_agent": binding.user_agent,
        "instance_id": binding.instance_id,
        "reg_id": binding.reg_id,
    }


class SqliteBindingStore:
    """:class:`~softswitch.storage.protocols.BindingStore` in a SQLite file.

    ``await store.open()`` (or ``async with``) creates the table if needed; ``close()`` disposes
    of the connections. The file survives restarts; bindings are upserted by ``(aor, contact)``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._engine: AsyncEngine | None = None

    @property
    def path(self) -> str:
        return self._path

    async def open(self) -> None:
        """Connect, switch a file database to WAL mode and create the table if missing."""
        if self._engine is not None:
            return
        url = URL.create("sqlite+aiosqlite", database=self._path)
        if self._path == _MEMORY:
            # One shared connection, or every checkout would see a fresh, empty database.
            engine = create_async_engine(url, poolclass=StaticPool)
        else:
            engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", self._on_connect)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if self._path != _MEMORY:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
        finally:
            cursor.close()

    async def __aenter__(self) -> SqliteBindingStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _require(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("SqliteBindingStore is not open (call await store.open())")
        return self._engine

    async def journal_mode(self) -> str:
        """The database's journal mode (``"wal"`` for a file, ``"memory"`` for ``:memory:``)."""
        async with self._require().connect() as conn:
            result = await conn.execute(text("PRAGMA journal_mode"))
            return str(result.scalar_one()).lower()

    async def load_all(self) -> list[Binding]:
        async with self._require().connect() as conn:
            result = await conn.execute(
                select(bindings_table).order_by(bindings_table.c.aor, bindings_table.c.contact)
            )
            return [
                Binding(
                    aor=row.aor,
                    contact=row.contact,
                    expires_at=float(row.expires_at),
                    q=float(row.q),
                    call_id=row.call_id,
                    cseq=int(row.cseq),
                    source=row.source,
                    user_agent=row.user_agent,
                    instance_id=row.instance_id,
                    reg_id=int(row.reg_id),
                )
                for row in result
            ]

    async def save(self, bindings: Sequence[Binding]) -> None:
        if not bindings:
            return
        async with self._require().begin() as conn:
            await conn.execute(_UPSERT, [_row(b) for b in bindings])

    async def delete(self, keys: Sequence[tuple[str, str]]) -> None:
        if not keys:
            return
        async with self._require().begin() as conn:
            await conn.execute(_DELETE, [{"key_aor": a, "key_contact": c} for a, c in keys])

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()
