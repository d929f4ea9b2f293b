"""The dialplan at work in the switch: one session per call, and the plan's atomic reload.

Every call the pipeline hands over (``route``) is accepted by the B2BUA (unanswered, its
offer kept), then run by a :class:`~softswitch.apps.session.CallSession` as an asyncio task
over a :class:`~softswitch.apps.channel.SwitchChannel`. The session keeps the compiled plan
it started with: a reload swaps ``plan`` for new calls only.

A reload parses, validates and compiles the whole tree in a worker thread (the event loop
keeps serving calls and media), and then, on the loop, replaces the plan in one assignment. On
any error the old plan stays and the errors are returned (and logged), every one of them.
Reloads are serialised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from media.player import PromptCache
from softswitch.apps.channel import CallControl, MediaPort, Samples, SwitchChannel
from softswitch.apps.queueing import QueueService
from softswitch.apps.session import CallSession, Lookups
from softswitch.apps.voicemail import VoicemailStore
from softswitch.registrar.bindings import Binding
from softswitch.routing.decide import CallFacts, CompiledPlan
from softswitch.routing.loader import load_plan
from softswitch.sip.events import RequestReceived
from softswitch.yaml_loader import ConfigErrors

__all__ = ["DialplanRuntime", "ReloadResult", "compile_plan"]

log = logging.getLogger("softswitch.dialplan")


class Accepted(Protocol):
    """What the B2BUA returns for a call it accepted for a session."""

    @property
    def id(self) -> str: ...

    @property
    def caller_name(self) -> str | None: ...


class SessionCalls(CallControl, Protocol):
    def accept(
        self, event: RequestReceived, caller: str, number: str, now: float
    ) -> Accepted | None: ...


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    errors: tuple[str, ...] = ()
    seconds: float = 0.0
    contexts: int = 0
    rules: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "errors": list(self.errors),
            "seconds": round(self.seconds, 3),
            "contexts": self.contexts,
            "rules": self.rules,
        }


def compile_plan(path: Path) -> CompiledPlan:
    """Load, validate and compile a plan file (raises ConfigErrors, OSError)."""
    return CompiledPlan(load_plan(path))


def _rules(plan: CompiledPlan) -> int:
    return sum(len(c.rules) for c in plan.plan.contexts.values())


@dataclass(eq=False, slots=True)
class _Running:
    session: CallSession
    channel: SwitchChannel
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class DialplanRuntime:
    """The current plan, and the sessions of the calls in it."""

    plan: CompiledPlan
    path: Path
    calls: SessionCalls
    media: MediaPort
    locate: Callable[[str], Sequence[Binding] | None]
    clock: Callable[[], float]
    after: Callable[[], None]
    lookups: Lookups
    queues: QueueService
    mailboxes: VoicemailStore | None
    contexts: Mapping[str, str] = field(default_factory=dict)  # user -> context
    default_context: str = "internal"
    #: route as if calls arrived at this moment (settings dialplan.at), else the real time
    fixed_time: datetime | None = None
    prompts: PromptCache = field(default_factory=PromptCache)
    sessions: dict[str, _Running] = field(default_factory=dict)
    reloads: int = 0
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # -- calls ---------------------------------------------------------------------------------

    def route(self, event: RequestReceived, user: str, number: str, now: float) -> None:
        """The pipeline's router: a session for the call (the B2BUA refuses it if it must)."""
        call = self.calls.accept(event, user, number, now)
        if call is None:
            return
        plan = self.plan
        facts = CallFacts(
            number=number,
            caller=user,
            context=self.contexts.get(user, self.default_context),
            at=self.fixed_time or datetime.now(UTC),
            caller_name=call.caller_name,
        )

        def prompt(name: str) -> Samples:
            return self.prompts.get(plan.plan.prompt_path(name))

        channel = SwitchChannel(
            call.id,
            self.calls,
            self.media,
            clock=self.clock,
            after=self.after,
            prompt=prompt,
            locate=self.locate,
            queues=self.queues,
            mailboxes=self.mailboxes,
            caller=user,
            caller_name=call.caller_name,
        )
        session = CallSession(plan, facts, channel, self.lookups, call_id=call.id)
        running = _Running(session, channel)
        self.sessions[call.id] = running
        running.task = asyncio.get_running_loop().create_task(self._run(running, call.id))

    async def _run(self, running: _Running, call_id: str) -> None:
        try:
            outcome = await running.session.run()
            log.info(
                "call %s: dialplan done (%s%s); path: %s",
                call_id,
                outcome.how,
                f", {outcome.status}" if outcome.status else "",
                " > ".join(outcome.path) or "-",
            )
        except asyncio.CancelledError:
            log.info(
                "call %s: the call ended in the dialplan; path: %s",
                call_id,
                " > ".join(running.session.path) or "-",
            )
            raise
        except Exception:
            # A bug or a bad prompt must not leave the caller in silence: end the call.
            log.exception("call %s: the dialplan session failed; ending the call", call_id)
            with contextlib.suppress(Exception):
                await running.channel.hangup(500, "Server Internal Error", "dialplan error")
        # The entry stays until the call ends (call_ended): a bridged call's live view and
        # its record keep the IVR path it took.

    def call_ended(self, call_id: str) -> None:
        """The B2BUA forgot the call: its session, if still running, stops."""
        running = self.sessions.pop(call_id, None)
        if running is not None and running.task is not None and not running.task.done():
            running.task.cancel()

    def masking(self, call_id: str) -> bool:
        """The call's keys are personal data right now (a sensitive gather)."""
        running = self.sessions.get(call_id)
        return running is not None and running.channel.masking

    def session_view(self, call_id: str) -> dict[str, object] | None:
        running = self.sessions.get(call_id)
        if running is None:
            return None
        session = running.session
        return {
            "context": session.variables.get("context"),
            "path": list(session.path),
            "plan": str(session.plan.plan.source),
        }

    # -- reload --------------------------------------------------------------------------------

    async def reload(self) -> ReloadResult:
        """Load, check and compile the plan file again; swap it in only if all is well."""
        async with self._reload_lock:
            started = time.perf_counter()
            try:
                plan = await asyncio.to_thread(compile_plan, self.path)
            except ConfigErrors as exc:
                errors = tuple(str(e) for e in exc.errors)
            except OSError as exc:
                errors = (f"{self.path}: {exc.strerror}",)
            else:
                missing = sorted(
                    {c for c in (*self.contexts.values(), self.default_context)}
                    - set(plan.contexts)
                )
                errors = tuple(
                    f"{self.path}: no context {name!r}, which users are assigned"
                    for name in missing
                )
                if not errors:
                    self.plan = plan
                    self.reloads += 1
                    took = time.perf_counter() - started
                    result = ReloadResult(True, (), took, len(plan.contexts), _rules(plan))
                    log.info(
                        "dialplan %s reloaded in %.2f s: %d context(s), %d rule(s); "
                        "%d call(s) in progress keep the previous plan",
                        self.path,
                        took,
                        result.contexts,
                        result.rules,
                        len(self.sessions),
                    )
                    return result
            took = time.perf_counter() - started
            for error in errors:
                log.error("%s", error)
            log.error(
                "dialplan %s not reloaded: %d error(s); the previous plan stays",
                self.path,
                len(errors),
            )
            return ReloadResult(False, errors, took)

    async def close(self) -> None:
        for running in list(self.sessions.values()):
            if running.task is not None:
                running.task.cancel()
        tasks = [r.task for r in self.sessions.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
