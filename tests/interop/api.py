"""The switch's side of the interop tests: its HTTP API (voicemail, live calls, call records)
and its log, polled with a bound on the wait."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from typing import Any

from tests.interop.servers import ServerProcess


def messages(switch: ServerProcess, mailbox: str) -> list[dict[str, Any]]:
    """``GET /api/voicemail/{mailbox}``: its messages, oldest first."""
    return list(switch.api(f"/api/voicemail/{mailbox}")["messages"])


def mailbox_counts(switch: ServerProcess) -> dict[str, int]:
    """``GET /api/voicemail``: the mailboxes holding messages, and how many each holds."""
    return {box["mailbox"]: box["messages"] for box in switch.api("/api/voicemail")["mailboxes"]}


def wait_new_message(
    switch: ServerProcess, mailbox: str, known: set[str], timeout: float = 5.0
) -> dict[str, Any] | None:
    """The first message of ``mailbox`` whose id is not in ``known``, polled for at most
    ``timeout`` seconds (the message is written when the call ends)."""
    deadline = time.monotonic() + timeout
    while True:
        fresh = [m for m in messages(switch, mailbox) if m["id"] not in known]
        if fresh or time.monotonic() >= deadline:
            return fresh[0] if fresh else None
        time.sleep(0.1)


def message_wav(switch: ServerProcess, mailbox: str, message_id: str) -> bytes:
    """``GET /api/voicemail/{mailbox}/{id}``: the message's WAV file."""
    url = f"http://{switch.host}:{switch.http_port}/api/voicemail/{mailbox}/{message_id}"
    with urllib.request.urlopen(url, timeout=5.0) as response:
        assert response.status == 200
        assert response.headers.get("Content-Type") == "audio/wav"
        return bytes(response.read())


def live_call_id(switch: ServerProcess, caller: str, timeout: float = 3.0) -> str:
    """The switch's id of ``caller``'s live call, from ``GET /api/calls``."""
    deadline = time.monotonic() + timeout
    while True:
        calls = [c for c in switch.api("/api/calls")["calls"] if c["caller"] == caller]
        if calls:
            return str(calls[0]["call_id"])
        assert time.monotonic() < deadline, f"no live call from {caller} in /api/calls"
        time.sleep(0.1)


def call_record(switch: ServerProcess, call_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The detail record of an ended call (``GET /api/calls/{id}`` once it is no longer
    live), polled for at most ``timeout`` seconds: it is written just after the call ends."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            doc = switch.api(f"/api/calls/{call_id}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            doc = {"live": None}
        if doc["live"] is False:
            return doc
        assert time.monotonic() < deadline, f"no detail record of call {call_id}: {doc}"
        time.sleep(0.1)


def wait_log(switch: ServerProcess, pattern: str, timeout: float = 5.0) -> re.Match[str] | None:
    """The first match of ``pattern`` in the switch's log, polled for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, switch.stderr_text())
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)
