"""The security store: agents' second-factor secrets, sign-in lockouts and the audit trail.

One SQLite file (``security.signin.store``, ``var/security.db`` by default), apart from the
call records, because two processes use it: the running switch, and the administrator's
command line (``softswitch agent totp ID`` enrols a secret, ``softswitch agent unlock ID``
lifts a lock) while the switch runs. Hence:

* WAL mode (readers never wait for the writer) and ``busy_timeout`` (a writer waits up to 5 s
  for the other process's transaction instead of failing).
* No cache: every sign-in reads the agent's secret and lock afresh, so an enrolment or an
  unlock made from the command line takes effect at the next sign-in, without a reload.
* Read-modify-write steps run in ``BEGIN IMMEDIATE`` transactions (the write lock first), so
  a failure counted by the switch and an unlock from the command line never lose each other,
  and a code's time step is accepted at most once (:meth:`SecurityDb.accept_step`).

:class:`SecurityDb` is the synchronous store (the command line); :class:`SqliteSecurityStore`
is the same store for the switch's event loop: each call runs on one worker thread of its
own, so the loop never waits on the disk (the
:class:`~softswitch.storage.protocols.SecretStore` and
:class:`~softswitch.storage.protocols.AuditStore` Protocols). The standard library's
``sqlite3`` serves both (the other stores' async engine has no synchronous twin).

The file is created readable by its owner only (mode 0600): it holds the TOTP secrets.

Tables: ``totp_secrets`` (agent, secret, enrolled, last accepted step), ``signin_locks``
(agent, failures in a row, locked at, locked until), ``audit_trail`` (time, actor (an agent
id or ``admin``), action, subject (a call id or an agent id), client address, details as a
JSON object), indexed by time and by actor, action and subject with time; its rows are kept
bounded by :meth:`SecurityDb.purge_audit` (the retention the switch schedules).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from softswitch.security.lockout import LockState
from softswitch.security.totp import Enrolment

__all__ = [
    "AUDIT_COLUMNS",
    "AuditEntry",
    "SecurityDb",
    "SqliteSecurityStore",
    "audit_csv",
]

log = logging.getLogger("softswitch.storage.security")

_MEMORY = ":memory:"
#: the most audit rows one query answers
MAX_AUDIT_LIMIT = 10_000
#: longest text kept in an audit column (longer ones are cut)
MAX_AUDIT_TEXT = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS totp_secrets (
    agent TEXT PRIMARY KEY NOT NULL,
    secret TEXT NOT NULL,
    enrolled REAL NOT NULL,
    last_step INTEGER
);
CREATE TABLE IF NOT EXISTS signin_locks (
    agent TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    locked_at REAL,
    locked_until REAL
);
CREATE TABLE IF NOT EXISTS audit_trail (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    address TEXT,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_audit_trail_time ON audit_trail (time);
CREATE INDEX IF NOT EXISTS ix_audit_trail_actor ON audit_trail (actor, time);
CREATE INDEX IF NOT EXISTS ix_audit_trail_action ON audit_trail (action, time);
CREATE INDEX IF NOT EXISTS ix_audit_trail_subject ON audit_trail (subject, time);
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit trail: who did what to what, from where, when."""

    time: float
    actor: str
    """The agent id who acted, or ``admin`` (the API token or the command line)."""
    action: str
    """What was done: ``signin``, ``signin_failed``, ``screen_pop_viewed``..."""
    subject: str | None = None
    """What it was done to: a call id or an agent id."""
    address: str | None = None
    """The client's address (None from the command line)."""
    details: Mapping[str, object] = field(default_factory=dict)
    """More about it, a flat JSON object."""

    def __post_init__(self) -> None:
        if not isinstance(self.details, MappingProxyType):
            object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def to_dict(self) -> dict[str, object]:
        return {
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "address": self.address,
            "details": dict(self.details),
        }


#: the columns of :func:`audit_csv`
AUDIT_COLUMNS = ("time", "actor", "action", "subject", "address", "details")


def audit_csv(entries: Iterable[AuditEntry]) -> str:
    """The entries as CSV (RFC 4180, CRLF line ends), with a header line; ``details`` is its
    JSON text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(AUDIT_COLUMNS)
    for e in entries:
        details = json.dumps(dict(e.details), ensure_ascii=False, sort_keys=True)
        writer.writerow([e.time, e.actor, e.action, e.subject or "", e.address or "", details])
    return out.getvalue()


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:MAX_AUDIT_TEXT]


def _details_json(details: Mapping[str, object]) -> str:
    try:
        return json.dumps(dict(details), ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit details are not a JSON object: {exc}") from exc


def _details(raw: str, row_id: int) -> dict[str, object]:
    try:
        doc = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        log.warning("audit row %d: details are not a JSON object; read as empty", row_id)
        return {}
    return doc


class SecurityDb:
    """The security store over one ``sqlite3`` connection (see the module docstring).

    Safe to call from any thread (one lock around the connection); ``close()`` when done, or
    use it as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if self.path != _MEMORY:
            _create_private(self.path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        try:
            if self.path != _MEMORY:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise RuntimeError(f"the security store {self.path} is closed")
            yield self._db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed at the end, rolled back on error."""
        with self._conn() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def journal_mode(self) -> str:
        with self._conn() as db:
            return str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # -- second factor ---------------------------------------------------------------------

    def enrol(self, agent: str, secret: str, now: float) -> None:
        """Store ``agent``'s secret (replacing an earlier one; no step used yet)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO totp_secrets (agent, secret, enrolled, last_step) "
                "VALUES (?, ?, ?, NULL) ON CONFLICT (agent) DO UPDATE SET "
                "secret = excluded.secret, enrolled = excluded.enrolled, last_step = NULL",
                (agent, secret, now),
            )

    def remove_secret(self, agent: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM totp_secrets WHERE agent = ?", (agent,)).rowcount > 0

    def secret(self, agent: str) -> Enrolment | None:
        """``agent``'s enrolment as stored now, or None."""
        with self._conn() as db:
            row = db.execute(
                "SELECT secret, enrolled, last_step FROM totp_secrets WHERE agent = ?", (agent,)
            ).fetchone()
        if row is None:
            return None
        return Enrolment(agent, str(row[0]), float(row[1]), None if row[2] is None else int(row[2]))

    def accept_step(self, agent: str, step: int) -> bool:
        """Record ``step`` as ``agent``'s last accepted one if it is later than the last;
        False (nothing changed) if a code of that step or a later one was accepted already,
        or the agent has no secret: the code is then a replay (RFC 6238 §5.2)."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE totp_secrets SET last_step = ? "
                "WHERE agent = ? AND (last_step IS NULL OR last_step < ?)",
                (step, agent, step),
            )
            return cursor.rowcount > 0

    # -- lockout ---------------------------------------------------------------------------

    def lock_state(self, agent: str) -> LockState:
        with self._conn() as db:
            return _lock_state(db, agent)

    def change_lock(self, agent: str, change: Callable[[LockState], LockState]) -> LockState:
        """Apply ``change`` to ``agent``'s lock state in one transaction; the new state. A
        clear state removes the row (accounts nobody tried keep none)."""
        with self._write() as db:
            new = change(_lock_state(db, agent))
            if new.clear:
                db.execute("DELETE FROM signin_locks WHERE agent = ?", (agent,))
            else:
                db.execute(
                    "INSERT INTO signin_locks (agent, failures, locked_at, locked_until) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (agent) DO UPDATE SET "
                    "failures = excluded.failures, locked_at = excluded.locked_at, "
                    "locked_until = excluded.locked_until",
                    (agent, new.failures, new.locked_at, new.locked_until),
                )
            return new

    def unlock(self, agent: str) -> LockState:
        """Lift ``agent``'s lock and forget the failures; the state it had."""
        with self._write() as db:
            old = _lock_state(db, agent)
            db.execute("DELETE FROM signin_locks WHERE agent = ?", (agent,))
            return old

    # -- audit trail -----------------------------------------------------------------------

    def add_audit(
        self,
        *,
        time: float,
        actor: str,
        action: str,
        subject: str | None = None,
        address: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """Append one entry (texts longer than :data:`MAX_AUDIT_TEXT` are cut); raises
        ``ValueError`` for details that are not a JSON object."""
        self.add_entries([AuditEntry(time, actor, action, subject, address, details or {})])

    def add_entries(self, entries: Sequence[AuditEntry]) -> None:
        """Append the entries in one transaction; a ``ValueError`` (details that are not a
        JSON object) stores none."""
        rows = [
            (
                e.time,
                _cut(e.actor),
                _cut(e.action),
                _cut(e.subject),
                _cut(e.address),
                _details_json(e.details),
            )
            for e in entries
        ]
        if not rows:
            return
        with self._write() as db:
            db.executemany(
                "INSERT INTO audit_trail (time, actor, action, subject, address, details) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def audit(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """The entries matching every filter given, newest first, at most ``limit`` (1 to
        :data:`MAX_AUDIT_LIMIT`). ``since`` keeps those at or after it, ``until`` those
        before it; ``actor``, ``action`` and ``subject`` are exact."""
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise ValueError(f"limit must be from 1 to {MAX_AUDIT_LIMIT}, got {limit}")
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time < ?")
            args.append(until)
        for column, value in (("actor", actor), ("action", action), ("subject", subject)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT id, time, actor, action, subject, address, details FROM audit_trail"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, id DESC LIMIT ?"
        args.append(limit)
        with self._conn() as db:
            rows = db.execute(sql, args).fetchall()
        return [
            AuditEntry(
                time=float(r[1]),
                actor=str(r[2]),
                action=str(r[3]),
                subject=r[4],
                address=r[5],
                details=_details(r[6], int(r[0])),
            )
            for r in rows
        ]

    def purge_audit(self, older_than: float) -> int:
        """Delete the entries before ``older_than`` (Unix seconds); how many."""
        with self._write() as db:
            return db.execute("DELETE FROM audit_trail WHERE time < ?", (older_than,)).rowcount


def _lock_state(db: sqlite3.Connection, agent: str) -> LockState:
    row = db.execute(
        "SELECT failures, locked_at, locked_until FROM signin_locks WHERE agent = ?", (agent,)
    ).fetchone()
    if row is None:
        return LockState()
    locked_until = None if row[2] is None else float(row[2])
    if locked_until is not None and not math.isfinite(locked_until):
        locked_until = None
    return LockState(int(row[0]), None if row[1] is None else float(row[1]), locked_until)


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only, if it does not exist yet."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


P = ParamSpec("P")
T = TypeVar("T")


class SqliteSecurityStore:
    """:class:`SecurityDb` for the event loop: the
    :class:`~softswitch.storage.protocols.SecretStore` and
    :class:`~softswitch.storage.protocols.AuditStore` of the switch.

    ``await store.open()`` (or ``async with``) opens the file on a worker thread of the
    store's own, where every later call runs, one at a time.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._db: SecurityDb | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def path(self) -> str:
        return self._path

    async def open(self) -> None:
        if self._db is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="security-store")
        try:
            loop = asyncio.get_running_loop()
            self._db = await loop.run_in_executor(executor, SecurityDb, self._path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

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

    async def close(self) -> None:
        db, self._db = self._db, None
        executor, self._executor = self._executor, None
        if db is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, db.close)
        if executor is not None:
            executor.shutdown(wait=False)

    async def _run(self, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._executor is None:
            raise RuntimeError(f"the security store {self._path} is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: method(*args, **kwargs))

    def _open_db(self) -> SecurityDb:
        if self._db is None:
            raise RuntimeError(f"the security store {self._path} is not open")
        return self._db

    async def journal_mode(self) -> str:
        return await self._run(self._open_db().journal_mode)

    async def enrol(self, agent: str, secret: str, now: float) -> None:
        await self._run(self._open_db().enrol, agent, secret, now)

    async def secret(self, agent: str) -> Enrolment | None:
        return await self._run(self._open_db().secret, agent)

    async def accept_step(self, agent: str, step: int) -> bool:
        return await self._run(self._open_db().accept_step, agent, step)

    async def lock_state(self, agent: str) -> LockState:
        return await self._run(self._open_db().lock_state, agent)

    async def change_lock(self, agent: str, change: Callable[[LockState], LockState]) -> LockState:
        return await self._run(self._open_db().change_lock, agent, change)

    async def unlock(self, agent: str) -> LockState:
        return await self._run(self._open_db().unlock, agent)

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
        entry = AuditEntry(time, actor, action, subject, address, details or {})
        await self._run(self._open_db().add_entries, [entry])

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
        return await self._run(
            self._open_db().audit,
            since=since,
            until=until,
            actor=actor,
            action=action,
            subject=subject,
            limit=limit,
        )

    async def purge_audit(self, older_than: float) -> int:
        return await self._run(self._open_db().purge_audit, older_than)
