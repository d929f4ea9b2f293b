"""Driving pjsua2 user agents that live in child processes (see pjua_worker.py).

One :class:`UserAgent` is one worker process with one pjsua2 Endpoint and one SIP
transport on 127.0.0.1; it can hold several accounts. Every request waits for its
answer at most ``timeout`` (+ a margin) seconds; a worker that dies or stays silent
raises :class:`PjuaError` with the tail of its stderr (pjsip's log). The log file is
removed when the worker ends cleanly, unless ``keep_log`` is set.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("pjua_worker.py")
ANSWER_MARGIN = 5.0


def pjsua2_available() -> bool:
    """Whether the pjsua2 module can be imported (PyPI pjsua2-python)."""
    return importlib.util.find_spec("pjsua2") is not None


class PjuaError(RuntimeError):
    """A command failed, or the worker died or did not answer."""


class UserAgent:
    """A pjsua2 user agent in a child process."""

    def __init__(
        self,
        label: str = "ua",
        log_level: int = 4,
        keep_log: bool = False,
        netns: str | None = None,
    ) -> None:
        """``netns``: run the worker inside that network namespace (a test host of
        ``tests/e2e/netlab.py``; needs root)."""
        self.label = label
        self.log_level = log_level
        self.keep_log = keep_log
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the worker
            prefix=f"pjua-{label}-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        prefix = ["ip", "netns", "exec", netns] if netns is not None else []
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self._next_id = 1
        self.port: int | None = None

    # --- plumbing -----------------------------------------------------------------

    def log_text(self, limit: int = 8000) -> str:
        """The tail of the worker's stderr (pjsip's log)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-limit:]
        except FileNotFoundError:
            return ""

    def _readline(self, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PjuaError(f"{self.label}: no answer within {timeout:.1f} s")
            if not self._selector.select(timeout=min(left, 0.5)):
                if self.proc.poll() is not None:
                    break
                continue
            chunk = self.proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                break
            self._buffer += chunk
        if b"\n" not in self._buffer:
            code = self.proc.poll()
            raise PjuaError(
                f"{self.label}: worker ended (exit {code}) without answering\n{self.log_text()}"
            )
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def request(self, cmd: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        """Send one command and return its answer; raises PjuaError if it failed."""
        if self.proc.poll() is not None:
            raise PjuaError(f"{self.label}: worker is not running\n{self.log_text()}")
        ident = self._next_id
        self._next_id += 1
        message = {"id": ident, "cmd": cmd, **params}
        if "timeout" in params or cmd.startswith("wait") or cmd in ("register", "unregister"):
            message["timeout"] = timeout
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise PjuaError(f"{self.label}: worker is gone\n{self.log_text()}") from None
        answer = json.loads(self._readline(timeout + ANSWER_MARGIN))
        if not answer.get("ok"):
            raise PjuaError(
                f"{self.label}: {cmd} failed: {answer.get('error')}\n"
                f"--- pjsip log (tail) ---\n{self.log_text(3000)}"
            )
        return dict(answer)

    # --- commands -----------------------------------------------------------------

    def init(self, port: int = 0, transport: str = "udp") -> int:
        """Create the Endpoint and its SIP transport; answers the bound port."""
        answer = self.request(
            "init",
            timeout=10.0,
            bind="127.0.0.1",
            port=port,
            transport=transport,
            log_level=self.log_level,
        )
        self.port = int(answer["port"])
        return self.port

    def register(
        self,
        user: str,
        password: str,
        server: str,
        domain: str,
        name: str | None = None,
        timeout: float = 10.0,
        **options: Any,
    ) -> int:
        """Add account ``name`` (default: the user) and register it; answers the status."""
        answer = self.request(
            "register",
            timeout=timeout,
            name=name or user,
            user=user,
            password=password,
            domain=domain,
            server=server,
            **options,
        )
        return int(answer["code"])

    def unregister(self, name: str, timeout: float = 10.0) -> int:
        return int(self.request("unregister", timeout=timeout, name=name)["code"])

    def call(self, name: str, uri: str) -> int:
        """Place a call from account ``name`` to ``uri``; answers the call handle."""
        return int(self.request("call", name=name, uri=uri)["call"])

    def wait_incoming(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.request("wait_incoming", timeout=timeout, name=name)

    def answer(self, call: int, code: int = 200) -> None:
        self.request("answer", call=call, code=code)

    def hangup(self, call: int, code: int = 603) -> None:
        self.request("hangup", call=call, code=code)

    def wait_state(self, call: int, state: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.request("wait_state", timeout=timeout, call=call, state=state)

    def media_start(self, call: int, tone_hz: float, record: str) -> None:
        self.request("media_start", call=call, tone_hz=tone_hz, record=record)

    def dtmf(self, call: int, digits: str, method: str = "rfc4733") -> None:
        self.request("dtmf", timeout=15.0, call=call, digits=digits, method=method)

    def codecs(self, *only: str) -> list[str]:
        """Keep only these codecs (``"PCMU/8000"``...); answers the codec ids kept."""
        return list(self.request("codecs", only=list(only))["codecs"])

    def hold(self, call: int) -> None:
        self.request("hold", call=call)

    def unhold(self, call: int) -> None:
        self.request("unhold", call=call)

    def xfer(self, call: int, uri: str) -> None:
        self.request("xfer", call=call, uri=uri)

    def xfer_replaces(self, call: int, other: int) -> None:
        self.request("xfer_replaces", call=call, other=other)

    def stream_stat(self, call: int) -> dict[str, Any]:
        return self.request("stream_stat", call=call)

    def media_stop(self, call: int) -> None:
        self.request("media_stop", call=call)

    def call_info(self, call: int) -> dict[str, Any]:
        return self.request("call_info", call=call)

    def close(self, timeout: float = 10.0) -> None:
        """Ask the worker to quit (it unregisters and hangs up), then make sure it is gone."""
        if self.proc.poll() is None:
            with contextlib.suppress(PjuaError, OSError, ValueError):
                self.request("quit", timeout=2.0)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5.0)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._selector.close()
        self._log.close()
        if self.proc.returncode == 0 and not self.keep_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> UserAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call_between(
    switch: Any,
    agents: Any,
    caller: str = "1001",
    callee: str = "1002",
    *,
    codecs: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
) -> tuple[UserAgent, int, UserAgent, int]:
    """Register ``caller`` and ``callee`` (user agents made by the ``user_agents`` fixture) on
    ``switch`` and set up a confirmed call between them: (caller's agent, its call, callee's
    agent, its call). ``codecs``: the only codecs each side may use."""
    a: UserAgent = agents(caller)
    b: UserAgent = agents(callee)
    if codecs is not None:
        assert a.codecs(*codecs[0]) and b.codecs(*codecs[1])
    for agent, user in ((a, caller), (b, callee)):
        code = agent.register(user, switch.users[user], switch.address, switch.domain)
        assert code == 200, f"{user} registration: {code}"
    outgoing = a.call(caller, f"sip:{callee}@{switch.domain}")
    incoming = int(b.wait_incoming(callee, timeout=10)["call"])
    b.answer(incoming, 200)
    a.wait_state(outgoing, "CONFIRMED", timeout=10)
    b.wait_state(incoming, "CONFIRMED", timeout=10)
    return a, outgoing, b, incoming
