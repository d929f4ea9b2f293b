"""The client without a window: for end-to-end tests and unattended checks.

It signs in, optionally goes ready (once the phone is registered), answers offered calls after
a short delay when asked, ends wrap-ups with a given code, and prints one JSON object per line
on its output for each notable event::

    {"event": "signed_in", "agent": "alice", ...}
    {"event": "registered", ...}
    {"event": "offer", "call_id": "...", "queue": "general", "fields": ["member", "tier"]}
    {"event": "answered", "call_id": "..."}
    {"event": "ended", "call_id": "...", "status": 200}
    {"event": "wrap_up", "call_id": "...", "remaining": 10.0}
    {"event": "signed_out", "why": "..."}
    {"event": "error", "message": "..."}

(``ringing`` and ``state`` lines come too.) Offers carry field names only, never the screen
pop's values or the caller's number. With ``control_stdin`` it reads JSON commands, one a line:
``{"cmd": "ready"}``, ``{"cmd": "not_ready", "reason": r}``, ``{"cmd": "answer"}``,
``{"cmd": "hangup"}``, ``{"cmd": "hold", "on": true}``, ``{"cmd": "mute", "on": true}``,
``{"cmd": "dtmf", "key": "5"}``, ``{"cmd": "wrap_up", "code": "sale", "note": ""}``,
``{"cmd": "test_call"}``, ``{"cmd": "quit"}``; the end of the input quits too.

:func:`run_headless` returns the exit code: 0 after signing out, 1 when signing in failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from agent_client.config import ClientConfig
from agent_client.controller import Controller
from agent_client.phone import Phone
from agent_client.redact import Redactor
from agent_client.view import View

__all__ = ["HeadlessOptions", "run_headless"]

log = logging.getLogger("agent_client.headless")

#: seconds between the phone ringing and the automatic answer
ANSWER_DELAY = 0.5


@dataclass(frozen=True, slots=True)
class HeadlessOptions:
    agent: str
    password: str
    totp: str = ""
    auto_answer: bool = False
    answer_delay: float = ANSWER_DELAY
    ready: bool = False
    wrap_up_code: str | None = None
    control_stdin: bool = False


class _Quit(Exception):
    pass


async def run_headless(
    config: ClientConfig,
    phone: Phone,
    options: HeadlessOptions,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    commands: asyncio.StreamReader | None = None,
    redactor: Redactor | None = None,
    handle_signals: bool = True,
) -> int:
    """Run one session (see the module docstring); ``commands`` replaces standard input."""
    out = out or sys.stdout
    err = err or sys.stderr
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    session = asyncio.Event()  # set once signed in: commands wait for it

    def sink(kind: str, details: dict[str, Any]) -> None:
        out.write(json.dumps({"event": kind, **details}, default=str) + "\n")
        out.flush()
        if kind == "signed_in":
            session.set()
        events.put_nowait((kind, details))

    def ignore(view: View) -> None:  # the events say what matters here
        pass

    controller = Controller(config, phone, ignore, loop=loop, on_event=sink, redactor=redactor)
    controller.start()
    controller.sign_in(options.agent, options.password, options.totp)

    reader: asyncio.Task[None] | None = None
    if options.control_stdin:
        reader = loop.create_task(_read_commands(controller, events, commands, sink, session))
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    stopper = loop.create_task(stop.wait())
    signed_in = False
    sip = False
    code = 0
    try:
        while True:
            getter = loop.create_task(events.get())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            kind, details = getter.result()
            if kind == "error" and not signed_in:
                err.write(f"agent-client: {details.get('message')}\n")
                err.flush()
                code = 1
                break
            if kind == "signed_in":
                signed_in = True
                sip = bool(details.get("sip"))
                if options.ready and not sip:
                    controller.set_ready()
            elif kind == "registered" and options.ready and sip:
                controller.set_ready()
            elif kind == "ringing" and options.auto_answer:
                loop.call_later(options.answer_delay, controller.answer)
            elif kind == "wrap_up" and options.wrap_up_code:
                controller.wrap_up(options.wrap_up_code, "")
            elif kind == "quit":
                break
            elif kind == "signed_out":
                return 0
    finally:
        stopper.cancel()
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await controller.aclose()
    return code


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _read_commands(
    controller: Controller,
    events: asyncio.Queue[tuple[str, dict[str, Any]]],
    commands: asyncio.StreamReader | None,
    sink: Callable[[str, dict[str, Any]], None],
    session: asyncio.Event,
) -> None:
    """Commands are read once the session is up (one typed ahead waits for it)."""
    reader = commands or await _stdin_reader()
    await session.wait()
    while True:
        line = await reader.readline()
        if not line:
            events.put_nowait(("quit", {}))
            return
        text = line.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            command = json.loads(text)
            if not isinstance(command, dict) or not isinstance(command.get("cmd"), str):
                raise ValueError("a command is a JSON object with a text cmd")
            if _run(controller, command):
                events.put_nowait(("quit", {}))
                return
        except (ValueError, TypeError) as exc:
            sink("error", {"message": f"bad command: {exc}"})


def _run(controller: Controller, command: dict[str, Any]) -> bool:
    """Carry out one command; True for quit."""
    name = command["cmd"]
    if name == "quit":
        return True
    if name == "ready":
        controller.set_ready()
    elif name == "not_ready":
        controller.set_not_ready(str(command.get("reason", "break")))
    elif name == "answer":
        controller.answer()
    elif name == "hangup":
        controller.hang_up()
    elif name == "hold":
        controller.hold(bool(command.get("on", True)))
    elif name == "mute":
        controller.mute(bool(command.get("on", True)))
    elif name == "dtmf":
        controller.send_dtmf(str(command.get("key", "")))
    elif name == "wrap_up":
        code = command.get("code")
        controller.wrap_up(code if isinstance(code, str) else None, str(command.get("note", "")))
    elif name == "test_call":
        controller.test_call()
    elif name == "sign_out":
        controller.sign_out()
    else:
        raise ValueError(f"unknown command {name!r}")
    return False
