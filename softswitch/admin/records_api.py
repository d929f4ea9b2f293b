"""HTTP routes of the switch's records: the queue log and the call detail records.

Mounted under ``/api/`` (same access rule as the rest of the API) by
:func:`add_records_routes`:

* ``GET /api/queue-events``: the queue log (:class:`~softswitch.acd.events.QueueEvent`),
  oldest first, ``{"events": [...]}``. Filters: ``since`` and ``until`` (the window
  ``since <= time < until``), ``queue``, ``agent``, ``call_id`` (exact), ``event`` (kinds,
  comma-separated: ``event=connected,abandoned``). ``limit`` is 1..10000 (default 1000); when
  more events match, the newest ``limit`` are answered (page backwards with ``until`` set to
  the oldest time received).
* ``GET /api/cdrs``: call detail records, newest end time first, ``{"records": [...]}``.
  Filters: ``since`` and ``until`` (on the end time, ``since <= ended < until``), ``user``
  (caller or callee), ``caller``, ``callee``, ``queue``, ``agent`` (exact). ``limit`` is
  1..1000 (default 100).

Times are Unix seconds (``1700000000.5``) or ISO 8601 date-times with a UTC offset
(``2024-05-01T08:00:00Z``, ``2024-05-01T10:00:00%2B02:00``; an unencoded ``+`` reads as a space
in a query and is taken back as ``+`` before the offset). ``format=csv`` (or ``Accept:
text/csv`` preferred over ``application/json``, RFC 9110 §12.5.1) answers CSV (RFC 4180) as an
attachment, ``format=json`` JSON; the CSV columns are those of
:func:`softswitch.storage.cdr.records_csv` and :func:`softswitch.storage.queue_log.events_csv`,
handed in by the caller (the admin layer does not import the storage layer).

Errors are ``{"error": "<reason>"}``: 400 for a bad, repeated or unknown parameter (the reason
starts with the parameter's name), 503 when the switch keeps no such records, 500 (logged) when
reading them fails.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from aiohttp import web

from softswitch.acd.events import QueueEvent, QueueEventKind
from softswitch.admin.http import CdrRecord, _BadParameter, _error, _limit, _one, _user

__all__ = [
    "MAX_EVENT_LIMIT",
    "CdrQuery",
    "QueueEventQuery",
    "add_records_routes",
]

log = logging.getLogger("softswitch.http")

#: Bounds of the ``limit`` parameter of ``/api/queue-events``.
MAX_EVENT_LIMIT = 10_000
DEFAULT_EVENT_LIMIT = 1000

#: The longest text filter (queue, agent, call, number) accepted.
MAX_TEXT = 256

_KINDS = tuple(sorted(kind.value for kind in QueueEventKind))

_EVENT_PARAMETERS = frozenset(
    {"since", "until", "queue", "agent", "call_id", "event", "limit", "format"}
)
_CDR_PARAMETERS = frozenset(
    {"since", "until", "user", "caller", "callee", "queue", "agent", "limit", "format"}
)

_JSON = "application/json"
_CSV = "text/csv"

R_co = TypeVar("R_co", bound=CdrRecord, covariant=True)
R = TypeVar("R", bound=CdrRecord)


class CdrQuery(Protocol[R_co]):
    """The reading half of a call detail record store, with the filters of ``/api/cdrs``
    (:class:`softswitch.storage.protocols.CdrStore` is one)."""

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
    ) -> Sequence[R_co]: ...


class QueueEventQuery(Protocol):
    """The reading half of the queue log
    (:class:`softswitch.storage.protocols.QueueEventStore` is one)."""

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
    ) -> Sequence[QueueEvent]: ...


# -- parameters --------------------------------------------------------------------------------


def _check_names(request: web.Request, known: frozenset[str]) -> None:
    unknown = sorted(set(request.query) - known)
    if unknown:
        raise _BadParameter(
            f"{unknown[0]} is not a parameter of {request.path}; known: {', '.join(sorted(known))}"
        )


def _instant(name: str, raw: str | None) -> float | None:
    """Unix seconds, or an ISO 8601 date-time with a UTC offset (RFC 3339 §5.6), as Unix
    seconds."""
    if raw is None:
        return None
    text = raw.strip()
    expected = f"{name} must be Unix seconds or an ISO 8601 date-time with a UTC offset"
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise _BadParameter(f"{expected}, got {raw!r}")
        return value
    moment = _iso_datetime(text)
    if moment is None:
        raise _BadParameter(f"{expected}, got {raw!r}")
    if moment.tzinfo is None:
        raise _BadParameter(
            f"{name} needs a UTC offset (Z or +hh:mm; write + as %2B in a URL), got {raw!r}"
        )
    return moment.timestamp()


def _iso_datetime(text: str) -> datetime | None:
    candidates = [text]
    head, space, offset = text.rpartition(" ")
    if space and head and offset[:1].isdigit():  # "+01:00" sent unencoded arrives as " 01:00"
        candidates.append(f"{head}+{offset}")
    for candidate in candidates:
        try:
            return datetime.fromisoformat(candidate)
        except ValueError:
            continue
    return None


def _text(name: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw or len(raw) > MAX_TEXT:
        raise _BadParameter(f"{name} must be 1 to {MAX_TEXT} characters long")
    return raw


def _kinds(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",")]
    if not all(names):
        raise _BadParameter(
            f"event must be a comma-separated list of event kinds, got {raw!r}; "
            f"valid kinds: {', '.join(_KINDS)}"
        )
    unknown = [name for name in names if name not in _KINDS]
    if unknown:
        raise _BadParameter(
            f"event has unknown kind {', '.join(repr(u) for u in unknown)}; "
            f"valid kinds: {', '.join(_KINDS)}"
        )
    return names


def _event_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_EVENT_LIMIT
    text = raw.strip()
    if not text.isdecimal() or not text.isascii():
        raise _BadParameter(f"limit must be an integer from 1 to {MAX_EVENT_LIMIT}, got {raw!r}")
    value = int(text)
    if not 1 <= value <= MAX_EVENT_LIMIT:
        raise _BadParameter(f"limit must be from 1 to {MAX_EVENT_LIMIT}, got {value}")
    return value


def _window(request: web.Request) -> tuple[float | None, float | None]:
    since = _instant("since", _one(request, "since"))
    until = _instant("until", _one(request, "until"))
    if since is not None and until is not None and since > until:
        raise _BadParameter(f"since ({since}) must not be after until ({until})")
    return since, until


def _wants_csv(request: web.Request) -> bool:
    """CSV or JSON: the ``format`` parameter, else the Accept header, else JSON."""
    raw = _one(request, "format")
    if raw is not None:
        if raw.lower() not in ("json", "csv"):
            raise _BadParameter(f"format must be json or csv, got {raw!r}")
        return raw.lower() == "csv"
    accept = request.headers.get("Accept")
    if accept is None:
        return False
    return _quality(accept, _CSV) > _quality(accept, _JSON)


def _quality(accept: str, media_type: str) -> float:
    """The q-value that ``accept`` gives ``media_type``: that of the most specific media range
    matching it (RFC 9110 §12.5.1), 0 if none does."""
    kind = media_type.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for item in accept.split(","):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        media_range = media_range.lower()
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{kind}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        q = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        if specificity > best[0]:
            best = (specificity, q)
    return best[1]


def _csv_response(body: str, filename: str) -> web.Response:
    return web.Response(
        text=body,
        content_type=_CSV,
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Vary": "Accept",
        },
    )


def _json_response(document: dict[str, object]) -> web.Response:
    return web.json_response(document, headers={"Vary": "Accept"})


# -- routes ------------------------------------------------------------------------------------


def add_records_routes(
    api: web.Application,
    cdrs: CdrQuery[R] | None,
    events: QueueEventQuery | None,
    *,
    cdrs_csv: Callable[[Iterable[R]], str],
    events_csv: Callable[[Iterable[QueueEvent]], str],
) -> None:
    """Add ``GET /queue-events`` and ``GET /cdrs`` (see the module docstring) to the ``/api/``
    application.

    ``cdrs`` and ``events`` are the stores (None: the switch keeps no such records, 503);
    ``cdrs_csv`` and ``events_csv`` write their records as CSV
    (:func:`softswitch.storage.cdr.records_csv`, :func:`softswitch.storage.queue_log.events_csv`).
    """

    async def queue_events(request: web.Request) -> web.Response:
        if events is None:
            return _error(503, "queue events are not kept by this switch")
        try:
            _check_names(request, _EVENT_PARAMETERS)
            since, until = _window(request)
            filters = {
                name: _text(name, _one(request, name)) for name in ("queue", "agent", "call_id")
            }
            kinds = _kinds(_one(request, "event"))
            limit = _event_limit(_one(request, "limit"))
            csv = _wants_csv(request)
        except _BadParameter as exc:
            return _error(400, exc.reason)
        try:
            found = await events.query(
                since=since,
                until=until,
                queue=filters["queue"],
                agent=filters["agent"],
                call_id=filters["call_id"],
                kinds=kinds,
                limit=limit,
            )
        except Exception:
            log.exception("reading the queue events failed")
            return _error(500, "reading the queue events failed (see the log)")
        if csv:
            return _csv_response(events_csv(found), "queue-events.csv")
        return _json_response({"events": [event.to_dict() for event in found]})

    async def records(request: web.Request) -> web.Response:
        if cdrs is None:
            return _error(503, "call detail records are not kept by this switch")
        try:
            _check_names(request, _CDR_PARAMETERS)
            since, until = _window(request)
            user = _user(_one(request, "user"))
            filters = {
                name: _text(name, _one(request, name))
                for name in ("caller", "callee", "queue", "agent")
            }
            limit = _limit(_one(request, "limit"))
            csv = _wants_csv(request)
        except _BadParameter as exc:
            return _error(400, exc.reason)
        try:
            found = await cdrs.recent(
                limit,
                since,
                user,
                until=until,
                caller=filters["caller"],
                callee=filters["callee"],
                queue=filters["queue"],
                agent=filters["agent"],
            )
        except Exception:
            log.exception("reading recent call detail records failed")
            return _error(500, "reading the call detail records failed (see the log)")
        if csv:
            return _csv_response(cdrs_csv(found), "cdrs.csv")
        return _json_response({"records": [record.to_dict() for record in found]})

    api.router.add_get("/queue-events", queue_events)
    api.router.add_get("/cdrs", records)
