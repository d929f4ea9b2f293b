"""Call detail records for the store tests: a fixed epoch and a builder of answered calls."""

from __future__ import annotations

from softswitch.storage.cdr import CallRecord

#: A fixed wall-clock time (Unix seconds) the records' times are given from.
T0 = 1_700_000_000.0


def record(call_id: str, ended: float, **kw: object) -> CallRecord:
    """A call from 1001 to 2000 that rang 10 s, was answered and ended at ``ended`` after 20 s
    of talk, the caller hanging up; ``kw`` replaces any field."""
    fields: dict[str, object] = {
        "call_id": call_id,
        "caller": "1001",
        "caller_name": None,
        "callee": "2000",
        "started": ended - 30.0,
        "answered": ended - 20.0,
        "ended": ended,
        "status": 200,
        "cause": "caller hung up",
    }
    fields.update(kw)
    return CallRecord(**fields)  # type: ignore[arg-type]


def ids(records: list[CallRecord]) -> list[str]:
    """The records' Call-IDs, in order."""
    return [r.call_id for r in records]
