"""The agent's softphone (agent_client.sip_phone.SipPhone) in a child process, driven over
JSON lines.

pjsua2 allows one library instance per process, and the peers of the tests are pjsua2 user
agents too, so each phone under test runs in a child process running this file. The parent
(:class:`PhoneProcess`) writes one command per line::

    {"id": 1, "cmd": "start", "account": {...}, "options": {...}}

and reads answers (one per command) and the listener's events, in any order::

    {"id": 1, "ok": true}
    {"event": "registration", "registered": true, "status": "registered"}
    {"event": "call", "call": {"id": 1, "state": "ringing", ...}}
    {"event": "levels", "mic": 0.41, "speaker": 0.0}

Commands: ``start(account, options)``, then every Phone method by name with its arguments
(``call``, ``answer``, ``hang_up``, ``hold``, ``mute``, ``send_dtmf``, ``transfer_blind``,
``transfer_attended``, ``quality``, ``devices``, ``use_devices``, ``stop``) and
``headset_stats`` and ``quit``. pjsip's log and Python's logging go to stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ANSWER_WAIT = 15.0


# --- the child's side --------------------------------------------------------------------


class _Events:
    """A PhoneListener that writes every call it gets as a JSON line."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(json.dumps(message) + "\n")
            self.out.flush()

    def registration_changed(self, registered: bool, status: str) -> None:
        self.send({"event": "registration", "registered": registered, "status": status})

    def call_changed(self, call: Any) -> None:
        body = dataclasses.asdict(call)
        body["state"] = call.state.value
        self.send({"event": "call", "call": body, "thread": threading.current_thread().name})

    def levels(self, mic: float, speaker: float) -> None:
        self.send({"event": "levels", "mic": mic, "speaker": speaker})


def _serve() -> int:
    from agent_client.phone import SipAccount
    from agent_client.sip_phone import SipPhone

    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever native code prints goes to stderr
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    events = _Events(out)
    phone: SipPhone | None = None
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        ident = request.pop("id", None)
        name = request.pop("cmd")
        answer: dict[str, Any] = {"id": ident, "ok": True}
        try:
            if name == "quit":
                if phone is not None:
                    phone.stop()
                events.send(answer)
                return 0
            if name == "start":
                phone = SipPhone(**request.get("options", {}))
                phone.start(SipAccount(**request["account"]), events)
            elif phone is None:
                raise RuntimeError("start first")
            elif name == "headset_stats":
                answer["stats"] = dataclasses.asdict(phone.headset.stats())
            elif name == "quality":
                found = phone.quality(int(request["call"]))
                answer["quality"] = dataclasses.asdict(found) if found else None
            elif name == "devices":
                inputs, outputs = phone.devices()
                answer["inputs"], answer["outputs"] = list(inputs), list(outputs)
            else:
                started = time.monotonic()
                getattr(phone, name)(**request)
                answer["seconds"] = time.monotonic() - started
        except Exception as exc:
            answer = {"id": ident, "ok": False, "error": repr(exc)}
        events.send(answer)
    if phone is not None:
        phone.stop()
    return 0


# --- the parent's side -------------------------------------------------------------------


class DriverError(RuntimeError):
    """A command failed, or the phone's process died or did not answer."""


class PhoneProcess:
    """A SipPhone in a child process; its listener's events are collected as they come."""

    def __init__(self, label: str = "agent", env: dict[str, str] | None = None) -> None:
        self.label = label
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the child
            prefix=f"phone-{label}-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        self.proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            env=dict(os.environ, **(env or {}), PYTHONPATH=str(ROOT)),
            start_new_session=True,
        )
        self._cond = threading.Condition()
        self._answers: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._next_id = 1
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            with self._cond:
                if "event" in message:
                    message["at"] = time.monotonic()
                    self.events.append(message)
                else:
                    self._answers[int(message.get("id") or 0)] = message
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def log_text(self, limit: int = 6000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-limit:]
        except FileNotFoundError:
            return ""

    def request(self, cmd: str, timeout: float = ANSWER_WAIT, **params: Any) -> dict[str, Any]:
        """Send one command, wait for its answer; raises DriverError if it failed."""
        ident = self._next_id
        self._next_id += 1
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"id": ident, "cmd": cmd, **params}) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            gone = f"{self.label}: the phone's process is gone\n{self.log_text()}"
            raise DriverError(gone) from None
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise DriverError(
                        f"{self.label}: no answer to {cmd} (exit {self.proc.poll()})\n"
                        f"{self.log_text()}"
                    )
                self._cond.wait(min(left, 0.2))
            answer = self._answers.pop(ident)
        if not answer.get("ok"):
            raise DriverError(f"{self.label}: {cmd} failed: {answer.get('error')}")
        return answer

    def start(self, account: dict[str, Any], **options: Any) -> None:
        self.request("start", account=account, options=options)

    def wait_event(
        self,
        kind: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 10.0,
        since: int = 0,
    ) -> dict[str, Any]:
        """The first event of ``kind`` from index ``since`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[since:]:
                    if event["event"] == kind and predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e for e in self.events[since:] if e["event"] != "levels"]
                    raise DriverError(
                        f"{self.label}: no {kind} event within {timeout:.0f} s; saw {seen}\n"
                        f"{self.log_text()}"
                    )
                self._cond.wait(min(left, 0.2))

    def wait_call(self, state: str, timeout: float = 10.0, since: int = 0) -> dict[str, Any]:
        """The first reported call in ``state`` ("ringing", "confirmed"...)."""
        event = self.wait_event("call", lambda e: e["call"]["state"] == state, timeout, since)
        return dict(event["call"])

    def mark(self) -> int:
        """The index of the next event (for ``since``)."""
        with self._cond:
            return len(self.events)

    def of_kind(self, kind: str, since: int = 0) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events[since:] if e["event"] == kind]

    def close(self, timeout: float = 10.0) -> None:
        """Ask the phone to stop and the process to end; kill it if it does not."""
        if self.proc.poll() is None:
            with contextlib.suppress(DriverError, OSError):
                self.request("quit", timeout=timeout)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5.0)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()
        if self.proc.returncode == 0:
            self.log_path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    code = _serve()
    sys.stdout.flush()
    os._exit(code)
