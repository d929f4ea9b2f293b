"""SqliteBindingStore against a real SQLite file: upsert, delete, WAL, survival of a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from softswitch.registrar.bindings import Binding, BindingTable, ContactUpdate
from softswitch.storage.protocols import BindingStore
from softswitch.storage.sqlite import SqliteBindingStore

T0 = 1_700_000_000.0


def binding(aor: str, contact: str, **kw: object) -> Binding:
    fields: dict[str, object] = {
        "aor": aor,
        "contact": contact,
        "expires_at": T0 + 3600,
        "q": 1.0,
        "call_id": "call-1@ua",
        "cseq": 1,
        "source": "udp:127.0.0.1:5062",
    }
    fields.update(kw)
    return Binding(**fields)  # type: ignore[arg-type]


def key(b: Binding) -> tuple[str, str]:
    return (b.aor, b.contact)


async def test_write_close_reopen_read_back(tmp_path: Path) -> None:
    path = tmp_path / "bindings.db"
    rows = [
        binding(
            "1001@softswitch.local",
            "sip:1001@127.0.0.1:5062;transport=udp",
            q=0.5,
            cseq=7,
            user_agent="Softphone/2.1 (ünïcode)",
            instance_id="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>",
            reg_id=1,
        ),
        binding("1001@softswitch.local", "sip:1001@[::1]:5064", expires_at=T0 + 12.25),
        binding("1002@softswitch.local", "sip:1002@127.0.0.1:5070"),
    ]
    store = SqliteBindingStore(path)
    await store.open()
    await store.save(rows)
    await store.close()
    assert path.exists()

    reopened = SqliteBindingStore(str(path))
    await reopened.open()
    try:
        loaded = await reopened.load_all()
    finally:
        await reopened.close()
    assert sorted(loaded, key=key) == sorted(rows, key=key)


async def test_upsert_replaces_by_aor_and_contact(tmp_path: Path) -> None:
    async with SqliteBindingStore(tmp_path / "b.db") as store:
        first = binding("a@x", "sip:a@h:1", cseq=1)
        await store.save([first, binding("b@x", "sip:a@h:1")])
        newer = binding("a@x", "sip:a@h:1", cseq=2, expires_at=T0 + 99, q=0.1, call_id="c2")
        await store.save([newer])
        loaded = {key(b): b for b in await store.load_all()}
    assert len(loaded) == 2
    assert loaded[("a@x", "sip:a@h:1")] == newer
    assert loaded[("b@x", "sip:a@h:1")].cseq == 1


async def test_delete_by_key(tmp_path: Path) -> None:
    async with SqliteBindingStore(tmp_path / "b.db") as store:
        rows = [binding("a@x", f"sip:a@h:{port}") for port in range(5060, 5065)]
        await store.save(rows)
        await store.delete([key(rows[1]), key(rows[3]), ("nobody@x", "sip:none")])
        await store.delete([])
        await store.save([])
        remaining = sorted(b.contact for b in await store.load_all())
    assert remaining == sorted([rows[0].contact, rows[2].contact, rows[4].contact])


async def test_file_database_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    async with SqliteBindingStore(path) as store:
        assert await store.journal_mode() == "wal"
        await store.save([binding("a@x", "sip:a@h")])
    # WAL is a persistent property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM registrar_bindings").fetchone()[0] == 1
    conn.close()


async def test_memory_database_shares_one_connection() -> None:
    store = SqliteBindingStore(":memory:")
    await store.open()
    try:
        await store.save([binding("a@x", "sip:a@h")])
        assert [key(b) for b in await store.load_all()] == [("a@x", "sip:a@h")]
        assert await store.journal_mode() == "memory"
    finally:
        await store.close()


async def test_use_before_open_and_after_close_is_an_error(tmp_path: Path) -> None:
    store = SqliteBindingStore(tmp_path / "b.db")
    with pytest.raises(RuntimeError, match="not open"):
        await store.load_all()
    await store.open()
    await store.open()  # idempotent
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError, match="not open"):
        await store.save([binding("a@x", "sip:a@h")])


async def test_table_round_trip_through_store_across_restart(tmp_path: Path) -> None:
    """The registrar's write-through: table -> store, restart, store -> table."""
    path = tmp_path / "registrar.db"
    table = BindingTable(5, 100)
    after = table.apply(
        "1001@softswitch.local",
        "call-1",
        3,
        [
            ContactUpdate("sip:1001@127.0.0.1:5062", 3600, 1.0, "udp:127.0.0.1:5062"),
            ContactUpdate("sip:1001@127.0.0.1:5064", 10, 0.5, "udp:127.0.0.1:5064"),
        ],
        T0,
    )
    store: BindingStore = SqliteBindingStore(path)
    assert isinstance(store, SqliteBindingStore)
    await store.open()
    await store.save(after)
    await store.close()

    restarted = SqliteBindingStore(path)
    await restarted.open()
    try:
        fresh = BindingTable(5, 100)
        dropped = fresh.load(await restarted.load_all(), T0 + 60)
        await restarted.delete([key(b) for b in dropped])
        assert [b.contact for b in dropped] == ["sip:1001@127.0.0.1:5064"]
        assert [key(b) for b in await restarted.load_all()] == [
            ("1001@softswitch.local", "sip:1001@127.0.0.1:5062")
        ]
    finally:
        await restarted.close()
    assert fresh.lookup("1001@softswitch.local", T0 + 60) == [after[0]]
    # The restored binding still guards against out-of-order REGISTERs.
    assert fresh.lookup("1001@softswitch.local", T0 + 60)[0].cseq == 3
