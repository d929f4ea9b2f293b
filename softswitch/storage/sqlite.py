"""SQLite implementations of the storage Protocols (the embedded default).

Uses SQLAlchemy 2 Core over aiosqlite, so the event loop never blocks on the database. File
databases run in WAL mode (readers do not block the writer, and a crash loses at most the
transaction in flight); ``":memory:"`` databases live as long as the store and serve tests.

All tables belong to one :data:`metadata`, so several stores may share one database file: each
store creates the tables it owns when it opens, and every connection sets the same pragmas.

A file written by an earlier version is upgraded when a store opens it: columns that a table
has gained since (always nullable) are added with ``ALTER TABLE ... ADD COLUMN`` and missing
indexes are created, so old rows stay readable with the new columns empty (see
:func:`_upgrade`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Mapping, Sequence
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
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateIndex

from softswitch.acd.events import QueueEvent, QueueEventKind
from softswitch.registrar.bindings import Binding
from softswitch.storage.cdr import CallRecord
from softswitch.storage.queue_log import EVENT_KINDS, details_from_json, details_json

__all__ = [
    "SqliteBindingStore",
    "SqliteCdrStore",
    "SqliteQueueEventStore",
    "bindings_table",
    "call_records_table",
    "metadata",
    "queue_events_table",
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
            await conn.run_sync(_upgrade, tables)
    except BaseException:
        await engine.dispose()
        raise
    return engine


def _upgrade(conn: Connection, tables: Sequence[Table]) -> None:
    """Bring tables written by an earlier version up to their definition here.

    Each column the table lacks (``PRAGMA table_info``) is added with ``ALTER TABLE ... ADD
    COLUMN``, which SQLite allows for a nullable column without a default: the old rows read
    it as NULL. Then every index is created if missing. A column that could not be added so
    (not nullable) is a ``RuntimeError``: that change needs a migration of its own. Two stores
    upgrading the same file at once are harmless (a column added meanwhile is skipped).
    """
    quote = conn.dialect.identifier_preparer.quote
    for table in tables:
        info = conn.exec_driver_sql(f"PRAGMA table_info({quote(table.name)})")
        present = {str(row[1]) for row in info}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable or column.primary_key:
                raise RuntimeError(
                    f"table {table.name} lacks column {column.name}, which cannot be added "
                    "to existing rows (not nullable)"
                )
            kind = column.type.compile(dialect=conn.dialect)
            try:
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
                )
            except OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise
            else:
                log.info("database upgraded: column %s.%s added", table.name, column.name)
        for index in table.indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))


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
    # Added after the first release: nullable, so that _upgrade can add them to old files.
    Column("queue", String, nullable=True),
    Column("agent", String, nullable=True),
    Column("wait", Float, nullable=True),
    Column("wrap_up_code", String, nullable=True),
    Column("wrap_up_note", Text, nullable=True),
    Index("ix_call_records_ended", "ended"),
    Index("ix_call_records_call_id", "call_id"),
    Index("ix_call_records_caller", "caller", "ended"),
    Index("ix_call_records_callee", "callee", "ended"),
    Index("ix_call_records_queue", "queue", "ended"),
    Index("ix_call_records_agent", "agent", "ended"),
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
        queue=row.queue,
        agent=row.agent,
        wait=None if row.wait is None else float(row.wait),
        wrap_up_code=row.wrap_up_code,
        wrap_up_note=row.wrap_up_note,
    )


class SqliteCdrStore(_SqliteStore):
    """:class:`~softswitch.storage.protocols.CdrStore` in a SQLite file.

    ``await store.open()`` (or ``async with``) creates the ``call_records`` table and its
    indexes if needed, and adds the queue columns to a table from an earlier version; the file
    may be the one a :class:`SqliteBindingStore` uses. Records are appended, read newest first
    through the index on ``ended`` (or ``(caller|callee|queue|agent, ended)`` when filtered),
    and removed by age with :meth:`purge` (the retention the switch schedules).
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
                    "queue": record.queue,
                    "agent": record.agent,
                    "wait": record.wait,
                    "wrap_up_code": record.wrap_up_code,
                    "wrap_up_note": record.wrap_up_note,
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
        """See :meth:`~softswitch.storage.protocols.CdrStore.recent`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        c = call_records_table.c
        stmt = select(call_records_table)
        if since is not None:
            stmt = stmt.where(c.ended >= since)
        if until is not None:
            stmt = stmt.where(c.ended < until)
        if user is not None:
            stmt = stmt.where(or_(c.caller == user, c.callee == user))
        exact = ((c.caller, caller), (c.callee, callee), (c.queue, queue), (c.agent, agent))
        for column, value in exact:
            if value is not None:
                stmt = stmt.where(column == value)
        stmt = stmt.order_by(*_NEWEST_FIRST).limit(limit)
        async with self._require().connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_call_record(row) for row in rows]

    async def set_wrap_up_code(self, call_id: str, code: str) -> bool:
        """Store the agent's wrap-up (disposition) code with the newest record of the call,
        which is written when the call ends, before the wrap-up does; False if none."""
        return await self._set_newest(call_id, wrap_up_code=code)

    async def set_wrap_up_note(self, call_id: str, note: str) -> bool:
        """Store the agent's wrap-up note with the newest record of the call; False if none."""
        return await self._set_newest(call_id, wrap_up_note=note)

    async def _set_newest(self, call_id: str, **values: str) -> bool:
        newest = (
            select(call_records_table.c.id)
            .where(call_records_table.c.call_id == call_id)
            .order_by(*_NEWEST_FIRST)
            .limit(1)
            .scalar_subquery()
        )
        stmt = update(call_records_table).where(call_records_table.c.id == newest).values(**values)
        async with self._require().begin() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def purge(self, older_than: float) -> int:
        """Delete the records that ended before ``older_than`` (Unix seconds); returns how many."""
        stmt = delete(call_records_table).where(call_records_table.c.ended < older_than)
        async with self._require().begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount)


# --------------------------------------------------------------------------------------------
# the queue log

queue_events_table = Table(
    "queue_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("kind", String, nullable=False),
    Column("call_id", String, nullable=True),
    Column("queue", String, nullable=True),
    Column("agent", String, nullable=True),
    Column("details", Text, nullable=False),
    Index("ix_queue_events_time", "time"),
    Index("ix_queue_events_queue", "queue", "time"),
    Index("ix_queue_events_agent", "agent", "time"),
    Index("ix_queue_events_call_id", "call_id"),
    # AUTOINCREMENT: an id is never reused after a purge, so ids keep the order of arrival
    # that breaks ties between events of the same time.
    sqlite_autoincrement=True,
)

_EVENTS_NEWEST_FIRST = (queue_events_table.c.time.desc(), queue_events_table.c.id.desc())


def _queue_event(row: Row[Any]) -> QueueEvent | None:
    """The stored event; None (logged) for a kind this version does not know.

    Corrupt details are logged and read as empty (or without their bad entries).
    """
    try:
        kind = QueueEventKind(row.kind)
    except ValueError:
        log.warning("queue event row %d: unknown kind %r; skipped", row.id, row.kind)
        return None
    details, problem = details_from_json(row.details)
    if problem is not None:
        log.warning(
            "queue event %s of call %r (row %d): details are %s; read as %s",
            row.kind,
            row.call_id,
            row.id,
            problem,
            "empty" if not details else "the rest",
        )
    return QueueEvent(
        time=float(row.time),
        kind=kind,
        call_id=row.call_id,
        queue=row.queue,
        agent=row.agent,
        details=details,
    )


class SqliteQueueEventStore(_SqliteStore):
    """:class:`~softswitch.storage.protocols.QueueEventStore` in a SQLite file.

    ``await store.open()`` (or ``async with``) creates the ``queue_events`` table and its
    indexes on ``time``, ``(queue, time)``, ``(agent, time)`` and ``call_id`` if needed; the
    file may be shared with the other stores. Events are appended in batches, read by time
    window and filters, and removed by age with :meth:`purge`.
    """

    _tables = (queue_events_table,)

    async def add_many(self, events: Sequence[QueueEvent]) -> None:
        """See :meth:`~softswitch.storage.protocols.QueueEventStore.add_many`."""
        rows = [
            {
                "time": e.time,
                "kind": e.kind.value,
                "call_id": e.call_id,
                "queue": e.queue,
                "agent": e.agent,
                "details": details_json(e),  # a ValueError here stores nothing
            }
            for e in events
        ]
        if not rows:
            return
        async with self._require().begin() as conn:
            await conn.execute(queue_events_table.insert(), rows)

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
        """See :meth:`~softswitch.storage.protocols.QueueEventStore.query`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        c = queue_events_table.c
        stmt = select(queue_events_table)
        if kinds is not None:
            names = set(kinds)
            unknown = names - EVENT_KINDS
            if unknown:
                raise ValueError(
                    f"unknown queue event kinds {sorted(unknown)}; known: {sorted(EVENT_KINDS)}"
                )
            stmt = stmt.where(c.kind.in_(sorted(names)))  # an empty IN matches nothing
        if since is not None:
            stmt = stmt.where(c.time >= since)
        if until is not None:
            stmt = stmt.where(c.time < until)
        for column, value in ((c.queue, queue), (c.agent, agent), (c.call_id, call_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        # The newest `limit` through the index, then turned to oldest first.
        stmt = stmt.order_by(*_EVENTS_NEWEST_FIRST).limit(limit)
        async with self._require().connect() as conn:
            rows = (await conn.execute(stmt)).all()
        found = [_queue_event(row) for row in reversed(rows)]
        return [e for e in found if e is not None]

    async def purge(self, older_than: float) -> int:
        """Delete the events before ``older_than`` (Unix seconds); returns how many."""
        stmt = delete(queue_events_table).where(queue_events_table.c.time < older_than)
        async with self._require().begin() as conn:
            result = await conn.execute(stmt)
        return int(result.rowcount)
