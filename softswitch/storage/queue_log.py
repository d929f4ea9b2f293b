"""The queue log as stored and exported: the details document and the CSV form.

A :class:`~softswitch.acd.events.QueueEvent` is kept as one row (time, kind, call, queue,
agent) plus its details as a compact JSON object. This module holds the pure parts that every
store and the HTTP export share: turning details into JSON and back (rejecting what is not a
flat object of texts and finite numbers), and :func:`events_csv`, the log as CSV (RFC 4180), the
portable cousin of Asterisk's pipe-separated ``queue_log`` file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

from softswitch.acd.events import Detail, QueueEvent, QueueEventKind
from softswitch.storage.cdr import csv_table, spreadsheet_cell

__all__ = [
    "EVENT_CSV_COLUMNS",
    "EVENT_KINDS",
    "details_from_json",
    "details_json",
    "events_csv",
]

#: The columns of :func:`events_csv`, in order.
EVENT_CSV_COLUMNS: tuple[str, ...] = ("time", "event", "call_id", "queue", "agent", "details")

#: Every event kind's name, as stored and as the API's ``event`` filter takes it.
EVENT_KINDS: frozenset[str] = frozenset(kind.value for kind in QueueEventKind)


def details_json(event: QueueEvent) -> str:
    """The event's details as a compact JSON object (keys in the event's order).

    Raises ``ValueError`` naming the event if a value is not a text or a finite number
    (JSON has no NaN or infinity, RFC 8259 §6).
    """
    for key, value in event.details.items():
        if not _is_detail(value):
            raise ValueError(
                f"queue event {event.kind.value} of call {event.call_id!r}: detail {key!r} "
                f"must be a text or a finite number, got {value!r}"
            )
    return json.dumps(
        dict(event.details), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )


def details_from_json(text: str) -> tuple[dict[str, Detail], str | None]:
    """The details stored as ``text`` and what was wrong with them (None if nothing).

    A text that is not JSON, or JSON that is not an object, gives no details; entries whose
    value is not a text or a finite number are dropped. The caller logs the problem.
    """
    try:
        doc = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        return {}, f"not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return {}, f"a JSON {type(doc).__name__}, not an object"
    details = {key: value for key, value in doc.items() if _is_detail(value)}
    if len(details) != len(doc):
        dropped = sorted(set(doc) - set(details))
        return details, f"entries {dropped} are not texts or numbers; dropped"
    return details, None


def _is_detail(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)


def _details_cell(details: Mapping[str, Detail]) -> str:
    return json.dumps(dict(details), ensure_ascii=False, separators=(",", ":"))


def events_csv(events: Iterable[QueueEvent]) -> str:
    """The events as CSV with the columns :data:`EVENT_CSV_COLUMNS`, one line per event in the
    order given.

    ``time`` is Unix seconds with three decimals, ``event`` the kind's name, a missing call,
    queue or agent an empty field, and ``details`` a compact JSON object. Texts that a
    spreadsheet would take for a formula are defused
    (:func:`~softswitch.storage.cdr.spreadsheet_cell`).
    """
    return csv_table(
        EVENT_CSV_COLUMNS,
        (
            (
                f"{e.time:.3f}",
                e.kind.value,
                _text(e.call_id),
                _text(e.queue),
                _text(e.agent),
                _details_cell(e.details),
            )
            for e in events
        ),
    )


def _text(value: str | None) -> str:
    return "" if value is None else spreadsheet_cell(value)
