"""SQLite implementations of the storage Protocols (the embedded default).

Uses SQLAlchemy 2 Core over aiosqlite, so the event loop never blocks on the database. File
databases run in WAL mode (readers do not block the writer, and a crash loses at most the
transaction in flight); ``":memory:"`` databases live as long as the store and serve tests.

All tables belong to one :data:`metadata`, so several stores may share one database file: each
store creates the tables it owns when it opens, and every connection sets the same pragmas.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    Text,
    bindparam,
    delete,
    event,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from softswitch.registrar.bindings import Binding
from softswitch.storage.cdr import CallRecord

__all__ = [
    "SqliteBindingStore",
    "SqliteCdrStore",
    "bindings_table",
    "call_records_table",
    "metadata",
]

log = logging.getLogger("softswitch.storage")

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


async def _open_engine(path: str, tables: Sequence[Table]) -> AsyncEngine:
    """An engine on ``path`` whose connections get the store pragmas, with ``tables`` created.

    Every store uses the same pragmas, so stores sharing a file agree on them.
    """
    url = URL.create("sqlite+aiosqlite", database=path)
    if path == _MEMORY:
        engine = create_async_engine(url, poolclass=StaticPool)
    else:
        engine = create_async_engine(url)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if path != _MEMORY:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
        finally:
            cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all, tables=list(tables))
    except BaseException:
        await engine.dispose()
        raise
    return engine


class _SqliteStore:
    """What every SQLite store shares: the file, its engine (WAL, one pragma set, see
    :func:`_open_engine`), ``open``/``close`` and ``async with``; a store names its tables."""

    _tables: tuple[Table, ...] = ()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._engine: AsyncEngine | None = None

    @property
    def path(self) -> str:
        return self._path

    async def open(self) -> None:
        """Connect, switch a file database to WAL mode and create the tables if missing."""
        if self._engine is None:
            self._engine = await _open_engine(self._path, self._tables)

    async def __aenter__(self) -> Self:
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
            name = type(self).__name__
            raise RuntimeError(f"{name} is not open (call await store.open())")
        return self._engine

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()


class SqliteBindingStore(_SqliteStore):
    """:class:`~softswitch.storage.protocols.BindingStore` in a SQLite file.

    ``await store.open()`` (or ``async with``) creates the table if needed; ``close()`` disposes
    of the connections. The file survives restarts; bindings are upserted by ``(aor, contact)``.
    """

    _tables = (bindings_table,)

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


# --------------------------------------------------------------------------------------------
# call detail records

call_records_table = Table(
    "call_records",
    metadata,
    # Not keyed by Call-ID: a retried INVITE keeps its Call-ID (see CallRecord).
    Column("id", Integer, primary_key=True),
    Column("call_id", String, nullable=False),
    Column("caller", String, nullable=False),
    Column("caller_name", String, nullable=True),
    Column("callee", String, nullable=False),
    Column("started", Float, nullable=False),
    Column("answered", Float, nullable=True),
    Column("ended", Float, nullable=False),
    Column("status", Integer, nullable=False),
    Column("cause", String, nullable=False),
    Column("recording", String, nullable=True),
    Column("media", Text, nullable=False),
    Index("ix_call_records_ended", "ended"),
    Index("ix_call_records_call_id", "call_id"),
    Index("ix_call_records_caller", "caller", "ended"),
    Index("ix_call_records_callee", "callee", "ended"),
)

_NEWEST_FIRST = (call_records_table.c.ended.desc(), call_records_table.c.id.desc())


def _media_json(record: CallRecord) -> str:
    try:
        return json.dumps(
            dict(record.media), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"call record {record.call_id!r}: media is not a JSON document: {exc}"
        ) from exc


def _media_doc(row: Row[Any]) -> Mapping[str, Any]:
    """The stored media document; a corrupt one is logged and read as empty."""
    try:
        doc = json.loads(row.media)
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning(
            "call record %r (row %d): media is not valid JSON (%s); read as empty",
            row.call_id,
            row.id,
            exc,
        )
        return {}
    if not isinstance(doc, dict):
        log.warning(
            "call record %r (row %d): media is a JSON %s, not an object; read as empty",
            row.call_id,
            row.id,
            type(doc).__name__,
        )
        return {}
    return doc


def _call_record(row: Row[Any]) -> CallRecord:
    return CallRecord(
        call_id=row.call_id,
        caller=row.caller,
        caller_name=row.caller_name,
        callee=row.callee,
        started=float(row.started),
        answered=None if row.answered is None else float(row.answered),
        ended=float(row.ended),
        status=int(row.status),
        cause=row.cause,
        recording=row.recording,
        media=_media_doc(row),
    )


class SqliteCdrStore(_SqliteStore):
    """:class:`~softswitch.storage.protocols.CdrStore` in a SQLite file.

    ``await store.open()`` (or ``async with``) creates the ``call_records`` table and its
    indexes if needed; the file may be the one a :class:`SqliteBindingStore` uses. Records are
    appended, read newest first through the index on ``ended``, and removed by age with
    :meth:`purge` (the retention the switch schedules).
    """

    _tables = (call_records_table,)

    async def add(self, record: CallRecord) -> None:
        media = _media_json(record)
        async with self._require().begin() as conn:
            await conn.execute(
                call_records_table.insert(),
                {
                    "call_id": record.call_id,
                    "caller": record.caller,
                    "caller_name": record.caller_name,
                    "callee": record.callee,
                    "started": record.started,
                    "answered": record.answered,
                    "ended": record.ended,
                    "status": record.status,
                    "cause": record.cause,
                    "recording": record.recording,
                    "media": media,
                },
            )

    async def get(self, call_id: str) -> CallRecord | None:
        stmt = (
            select(call_records_table)
            .where(call_records_table.c.call_id == call_id)
            .order_by(*_NEWEST_FIRST)
            .limit(1)
        )
        async with self._require().connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _call_record(row)

    async def recent(
        self, limit: int = 100, since: float | None = None, user: str | None = None
    ) -> list[CallRecord]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        stmt = select(call_records_table)
        if since is not None:
            stmt = stmt.where(call_records_table.c.ended >= since)
        if user is not None:
            stmt = stmt.where(
                or_(call_records_table.c.caller == user, call_records_table.c.callee == user)
            )
        stmt = stmt.order_by(*_NEWEST_FIRST).limit(limit)
        async with self._require().connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_call_record(row) for row in rows]

    async def purge(self, older_than: float) -> int:
        """Delete the records that ended before ``older_than`` (Unix seconds); returns how many."""
        stmt = delete(call_records_table).where(call_records_table.c.ended < older_than)
        async with self._require().begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount)
