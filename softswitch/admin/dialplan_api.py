"""HTTP routes of the dialplan: reload, queues, voicemail, and the demo CRM.

Mounted under ``/api/`` (same access rule as the rest of the API):

* ``POST /api/reload``: load, check and compile the dialplan again and swap it in; 200 with
  ``{"ok": true, "seconds", "contexts", "rules"}``, or 422 with ``{"ok": false, "errors":
  [...]}`` (every ``file:line:col: path: message``) and the old plan kept; 404 when the switch
  runs without a dialplan.
* ``GET /api/queues`` and ``GET /api/queues/{name}``: callers waiting, in order, with their
  priority, skills, ``data_class``, wait, IVR path and screen-pop variables.
* ``GET /api/voicemail``: mailboxes holding messages; ``GET /api/voicemail/{mailbox}``: its
  messages; ``GET /api/voicemail/{mailbox}/{id}``: the message's WAV;
  ``DELETE /api/voicemail/{mailbox}/{id}``: delete it.
* ``GET /api/demo/crm/members/{number}``: the demo CRM's member record (a JSON file of
  members), 404 for an unknown member: what the demo plan's identity check asks.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

from aiohttp import web

from softswitch.apps.queueing import QueueService
from softswitch.apps.voicemail import MailboxError, VoicemailStore

__all__ = ["DemoCrm", "add_dialplan_routes"]

log = logging.getLogger("softswitch.http")

_QUEUE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MEMBER = re.compile(r"[0-9]{1,32}")


class Reloadable(Protocol):
    def to_json(self) -> dict[str, object]: ...

    @property
    def ok(self) -> bool: ...


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


class DemoCrm:
    """Members read from a JSON object ``{"<number>": {"name": ..., ...}}`` at start-up."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ValueError(f"{path}: expected a JSON object of member records")
        self.members: Mapping[str, Mapping[str, object]] = data

    async def member(self, request: web.Request) -> web.Response:
        number = request.match_info["number"]
        if not _MEMBER.fullmatch(number):
            return _error(400, "a member number is 1 to 32 digits")
        record = self.members.get(number)
        if record is None:
            return _error(404, f"no member {number}")
        return web.json_response({"member": number, **record})


def add_dialplan_routes(
    api: web.Application,
    *,
    reload: Callable[[], Awaitable[Reloadable]] | None,
    queues: QueueService,
    mailboxes: VoicemailStore | None,
    crm: DemoCrm | None,
) -> None:
    """Add the routes above to the ``/api/`` application."""

    async def do_reload(request: web.Request) -> web.Response:
        if reload is None:
            return _error(404, "this switch runs without a dialplan (settings: dialplan)")
        result = await reload()
        return web.json_response(result.to_json(), status=200 if result.ok else 422)

    async def all_queues(request: web.Request) -> web.Response:
        return web.json_response({"queues": queues.snapshot()["queues"]})

    async def queue(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not _QUEUE.fullmatch(name):
            return _error(400, 'a queue name is letters, digits, "_" and "-"')
        return web.json_response(queues.queue_view(name))

    async def boxes(request: web.Request) -> web.Response:
        if mailboxes is None:
            return _error(404, "voicemail is not configured")
        return web.json_response({"mailboxes": mailboxes.mailboxes()})

    async def messages(request: web.Request) -> web.Response:
        if mailboxes is None:
            return _error(404, "voicemail is not configured")
        try:
            found = mailboxes.messages(request.match_info["mailbox"])
        except MailboxError as exc:
            return _error(400, str(exc))
        return web.json_response({"messages": found})

    async def message(request: web.Request) -> web.StreamResponse:
        if mailboxes is None:
            return _error(404, "voicemail is not configured")
        box, message_id = request.match_info["mailbox"], request.match_info["id"]
        try:
            if request.method == "DELETE":
                if mailboxes.delete(box, message_id):
                    log.info("voicemail %s/%s deleted over the API", box, message_id)
                    return web.Response(status=204)
                return _error(404, f"no message {message_id} in mailbox {box}")
            path = mailboxes.audio(box, message_id)
        except MailboxError as exc:
            return _error(400, str(exc))
        if path is None:
            return _error(404, f"no message {message_id} in mailbox {box}")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    api.router.add_post("/reload", do_reload)
    api.router.add_get("/queues", all_queues)
    api.router.add_get("/queues/{name}", queue)
    api.router.add_get("/voicemail", boxes)
    api.router.add_get("/voicemail/{mailbox}", messages)
    api.router.add_get("/voicemail/{mailbox}/{id}", message)
    api.router.add_delete("/voicemail/{mailbox}/{id}", message)
    if crm is not None:
        api.router.add_get("/demo/crm/members/{number}", crm.member)
