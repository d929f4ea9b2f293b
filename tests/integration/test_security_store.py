"""The security store on a real SQLite file: secrets, replay guard, lockout state and the
audit trail, written by a command-line style synchronous connection and read by the switch's
asynchronous store at once (two connections, WAL)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from softswitch.security.lockout import Lockout, LockState
from softswitch.storage.security_store import (
    AUDIT_COLUMNS,
    AuditEntry,
    SecurityDb,
    SqliteSecurityStore,
    audit_csv,
)


async def test_an_enrolment_from_another_connection_is_read_at_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "security.db"
    async with SqliteSecurityStore(path) as store:
        assert await store.journal_mode() == "wal"
        assert await store.secret("ann") is None
        with SecurityDb(path) as cli:
            cli.enrol("ann", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 1000.0)
        found = await store.secret("ann")
        assert found is not None
        assert (found.secret, found.enrolled, found.last_step) == (
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            1000.0,
            None,
        )
        assert await store.accept_step("ann", 50)
        assert not await store.accept_step("ann", 50)
        assert not await store.accept_step("ann", 49)
        assert await store.accept_step("ann", 51)
        assert not await store.accept_step("bob", 1)  # no secret
        # re-enrolment from the command line replaces the secret and forgets the step
        with SecurityDb(path) as cli:
            cli.enrol("ann", "KRSXG5DSN5XGOYLNMVZGK3TTMVZGK3TT", 2000.0)
            assert cli.secret("ann") is not None
        again = await store.secret("ann")
        assert again is not None and again.secret.startswith("KRSX") and again.last_step is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_concurrent_acceptance_of_one_step_lets_one_through(tmp_path: Path) -> None:
    path = tmp_path / "security.db"
    with SecurityDb(path) as cli:
        cli.enrol("ann", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 0.0)
    async with SqliteSecurityStore(path) as one, SqliteSecurityStore(path) as two:
        results = await asyncio.gather(
            *(store.accept_step("ann", 77) for store in (one, two, one, two))
        )
    assert sorted(results) == [False, False, False, True]


async def test_lock_state_survives_a_restart_and_an_unlock_from_the_command_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "security.db"
    rule = Lockout(2, 0)
    async with SqliteSecurityStore(path) as store:
        assert await store.lock_state("ann") == LockState()
        await store.change_lock("ann", lambda s: rule.failed(s, 10.0))
        state = await store.change_lock("ann", lambda s: rule.failed(s, 11.0))
        assert state == LockState(2, 11.0, None)
    async with SqliteSecurityStore(path) as store:  # the switch restarted
        state = await store.lock_state("ann")
        assert state == LockState(2, 11.0, None) and rule.locked(state, 1e12)
        with SecurityDb(path) as cli:
            assert cli.unlock("ann") == LockState(2, 11.0, None)
        assert await store.lock_state("ann") == LockState()
        # a clear state keeps no row
        await store.change_lock("bob", lambda s: rule.failed(s, 1.0))
        await store.change_lock("bob", rule.succeeded)
    with SecurityDb(path) as cli, cli._conn() as db:
        assert db.execute("SELECT count(*) FROM signin_locks").fetchone()[0] == 0


async def test_timed_lock_round_trips(tmp_path: Path) -> None:
    rule = Lockout(1, 300)
    async with SqliteSecurityStore(tmp_path / "s.db") as store:
        state = await store.change_lock("ann", lambda s: rule.failed(s, 1000.5))
        assert await store.lock_state("ann") == state == LockState(1, 1000.5, 1300.5)


async def test_audit_rows_filter_order_and_purge(tmp_path: Path) -> None:
    path = tmp_path / "security.db"
    async with SqliteSecurityStore(path) as store:
        await store.add_audit(time=100.0, actor="ann", action="signin", address="192.0.2.7")
        await store.add_audit(
            time=200.0,
            actor="ann",
            action="screen_pop_viewed",
            subject="call-1",
            address="192.0.2.7",
            details={"queue": "support"},
        )
        await store.add_audit(time=200.0, actor="admin", action="account_unlocked", subject="ann")
        with SecurityDb(path) as cli:
            cli.add_audit(time=300.0, actor="admin", action="totp_enrolled", subject="bob")
        everything = await store.audit()
        assert [(e.time, e.action) for e in everything] == [
            (300.0, "totp_enrolled"),
            (200.0, "account_unlocked"),  # same time: the later row first
            (200.0, "screen_pop_viewed"),
            (100.0, "signin"),
        ]
        viewed = everything[2]
        assert viewed == AuditEntry(
            200.0, "ann", "screen_pop_viewed", "call-1", "192.0.2.7", {"queue": "support"}
        )
        assert [e.action for e in await store.audit(actor="ann")] == [
            "screen_pop_viewed",
            "signin",
        ]
        assert [e.subject for e in await store.audit(subject="ann")] == ["ann"]
        assert [e.time for e in await store.audit(since=200.0, until=300.0)] == [200.0, 200.0]
        assert [e.time for e in await store.audit(limit=1)] == [300.0]
        assert [e.action for e in await store.audit(action="signin")] == ["signin"]
        with pytest.raises(ValueError):
            await store.audit(limit=0)
        with pytest.raises(ValueError):
            await store.add_audit(time=1.0, actor="x", action="y", details={"bad": object()})
        assert await store.purge_audit(200.0) == 1
        assert len(await store.audit()) == 3
        text = audit_csv(await store.audit(action="screen_pop_viewed"))
        lines = text.split("\r\n")
        assert lines[0] == ",".join(AUDIT_COLUMNS)
        assert lines[1] == '200.0,ann,screen_pop_viewed,call-1,192.0.2.7,"{""queue"": ""support""}"'


async def test_a_closed_or_unopened_store_says_so(tmp_path: Path) -> None:
    store = SqliteSecurityStore(tmp_path / "s.db")
    with pytest.raises(RuntimeError, match="not open"):
        await store.secret("ann")
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.lock_state("ann")
    db = SecurityDb(tmp_path / "s.db")
    db.close()
    with pytest.raises(RuntimeError, match="closed"):
        db.secret("ann")
