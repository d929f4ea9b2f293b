"""HTTP route of the audit trail: who signed in, failed, was locked out, viewed a screen pop,
forced an agent's state or monitored a call.

Mounted under ``/api/`` by :func:`add_audit_routes`, so the API's access rule holds: the admin
token (``http.api_token``), or a trusted network when none is set. An agent's token is not
the admin token: agents cannot read the trail.

* ``GET /api/audit``: the entries, newest first, ``{"entries": [{"time", "actor", "action",
  "subject", "address", "details"}, ...]}``. Filters: ``since`` and ``until`` (the window
  ``since <= time < until``), ``actor`` (an agent id or ``admin``), ``action`` (``signin``,
  ``signin_failed``, ``signin_refused``, ``account_locked``, ``account_unlocked``,
  ``signout``, ``totp_enrolled``, ``screen_pop_viewed``, ``help_raised``, ``help_lowered``,
  ``state_forced``, ``monitor``), ``subject`` (a call id or an agent id), all exact.
  ``limit`` is 1..10000 (default 1000); when more entries match, the newest ``limit`` are
  answered (page backwards with ``until`` set to the oldest time received).

Times, ``format=csv`` / ``Accept: text/csv`` and the errors are as for the other record
routes (:mod:`softswitch.admin.records_api`); the CSV columns are those of the ``audit_csv``
handed in (``softswitch.storage.security_store.audit_csv``: the admin layer does not import
the storage layer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from aiohttp import web

from softswitch.admin.http import CdrRecord, _BadParameter, _error, _one
from softswitch.admin.records_api import (
    _check_names,
    _csv_response,
    _event_limit,
    _json_response,
    _text,
    _wants_csv,
    _window,
)

__all__ = ["AuditQuery", "add_audit_routes"]

log = logging.getLogger("softswitch.http")

_PARAMETERS = frozenset({"since", "until", "actor", "action", "subject", "limit", "format"})

E_co = TypeVar("E_co", bound=CdrRecord, covariant=True)
E = TypeVar("E", bound=CdrRecord)


class AuditQuery(Protocol[E_co]):
    """The reading half of the audit trail (the ``AuditStore`` Protocol of
    ``softswitch.storage.protocols`` is one); entries have ``to_dict()``."""

    async def audit(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        limit: int = 1000,
    ) -> Sequence[E_co]: ...


def add_audit_routes(
    api: web.Application,
    audit: AuditQuery[E] | None,
    *,
    audit_csv: Callable[[Iterable[E]], str],
) -> None:
    """Add ``GET /audit`` (see the module docstring) to the ``/api/`` application; ``audit``
    is the trail (None: the switch keeps none, 503), ``audit_csv`` writes entries as CSV."""

    async def entries(request: web.Request) -> web.Response:
        if audit is None:
            return _error(503, "no audit trail is kept by this switch")
        try:
            _check_names(request, _PARAMETERS)
            since, until = _window(request)
            filters = {
                name: _text(name, _one(request, name)) for name in ("actor", "action", "subject")
            }
            limit = _event_limit(_one(request, "limit"))
            csv = _wants_csv(request)
        except _BadParameter as exc:
            return _error(400, exc.reason)
        try:
            found = await audit.audit(
                since=since,
                until=until,
                actor=filters["actor"],
                action=filters["action"],
                subject=filters["subject"],
                limit=limit,
            )
        except Exception:
            log.exception("reading the audit trail failed")
            return _error(500, "reading the audit trail failed (see the log)")
        if csv:
            return _csv_response(audit_csv(found), "audit.csv")
        return _json_response({"entries": [entry.to_dict() for entry in found]})

    api.router.add_get("/audit", entries)
