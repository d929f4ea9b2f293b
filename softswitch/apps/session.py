"""A call in the dialplan: the actions of the rule it took, run one after the other.

:class:`CallSession` is the interpreter of a compiled plan's decision (ARCHITECTURE.md, "The
dialplan"): ``decide`` picks the rule, the session carries out its actions over a
:class:`~softswitch.apps.channel.Channel` (what the B2BUA and the media engine do to the call,
or, for ``softswitch route``, a dry run that only writes down what would happen). The same
code path runs real calls and traces, so a trace shows exactly what a call would do.

Behaviour, action by action:

- ``answer``: 200 OK with the switch's SDP. ``play``, ``menu``, ``gather``, ``voicemail`` and
  ``queue`` answer first when nobody has (as Asterisk's Playback does).
- ``play``: prompts in order; with ``barge_in`` a key stops them and stays typed ahead for the
  next ``menu`` or ``gather``.
- ``menu``: the prompt (always interruptible), then up to ``timeout`` seconds for a key; a key
  that is an option runs its actions; an invalid key or no key plays ``invalid_prompt`` /
  ``timeout_prompt`` and offers the menu again, ``retries`` times; then ``on_failure`` (or the
  next action).
- ``gather``: the prompt, then keys until ``max_digits``, the terminator, or a pause longer
  than ``inter_digit_timeout`` (``timeout`` for the first key); fewer than ``min_digits`` runs
  ``on_failure``. ``sensitive`` digits never reach a log line, a trace or a call record.
- ``set``: ``${name}`` references replaced by call variables (unknown ones by "").
- ``lookup``: an HTTP JSON request; each top-level field ``f`` of the object answered becomes
  the variable ``PREFIX_f``; errors, timeouts and non-2xx answers run ``on_failure``. Its
  ``sensitive`` fields are personal data, masked in logs and traces as a sensitive gather's
  digits are; its ``screen_pop`` variables are added to the call's screen pop.
- ``bridge``: rings users and connects the caller to the first who answers; the session ends
  there. Otherwise the variable ``bridge_status`` holds the SIP status and the rule goes on.
- ``queue``: hands the caller to the queue with the screen pop
  (:mod:`softswitch.apps.screen_pop`): the variables of the lookups' ``screen_pop`` in order,
  each flagged sensitive when it holds personal data (a sensitive gather, a sensitive lookup
  field, or a value made from them); the values stay in memory, and the agent sees a
  sensitive one only where the location allows. The session ends when the caller leaves the
  queue.
- ``voicemail``: greeting, beep, message; the session ends with the call.
- ``record``: start, pause, resume or stop the call recording.
- ``goto`` / ``transfer``: route again (in another context, or the same number in the
  caller's context) and run that rule instead; what followed is not run.
- ``hangup``: ends the call with a cause (an error status when unanswered, else BYE).

Running out of actions ends the call: BYE if answered, else the last bridge's failure status
(480 if there was none). At most ``max_steps`` actions run per call (a menu that sends the
caller round in circles ends there).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import quote

from softswitch.apps.screen_pop import MASK, ScreenField, ScreenPop
from softswitch.routing.decide import CallFacts, CompiledPlan, Decision
from softswitch.routing.schema import (
    Action,
    Answer,
    Bridge,
    Gather,
    Goto,
    Hangup,
    Lookup,
    Menu,
    Play,
    Queue,
    Record,
    Service,
    SetVars,
    Transfer,
    Voicemail,
)

__all__ = [
    "HANGUP_STATUS",
    "CallSession",
    "Channel",
    "LookupFailed",
    "Lookups",
    "QueueRequest",
    "QueueResult",
    "SessionOutcome",
]

log = logging.getLogger("softswitch.apps.session")

#: what an unanswered caller gets for each hangup cause (RFC 3261 §21)
HANGUP_STATUS: Mapping[str, tuple[int, str]] = {
    "normal": (480, "Temporarily Unavailable"),
    "unavailable": (480, "Temporarily Unavailable"),
    "busy": (486, "Busy Here"),
    "rejected": (603, "Decline"),
    "no_answer": (408, "Request Timeout"),
}

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class QueueRequest:
    """A caller handed to a queue, with what the agent who takes the call is shown."""

    call_id: str
    queue: str
    priority: int
    skills: Mapping[str, int]
    data_class: str
    caller: str
    caller_name: str | None
    path: tuple[str, ...]
    """The IVR path: each menu choice and step, in order (for the screen pop)."""
    screen_pop: Mapping[str, str]
    """Variables the dialplan marked for the agent's screen, in order: a
    :class:`~softswitch.apps.screen_pop.ScreenPop` (sensitive values masked when read as a
    mapping; :func:`~softswitch.apps.screen_pop.screen_pop_fields` shows them where allowed)
    when built by a session."""


@dataclass(frozen=True, slots=True)
class QueueResult:
    """How a caller left a queue: ``how`` is "connected" (to ``agent``), "abandoned", or
    "exit <why>" with the exit ``action`` (hangup, voicemail, goto, callback) and its
    ``target`` and ``prompt``."""

    how: str
    agent: str | None = None
    action: str | None = None
    target: str | None = None
    prompt: str | None = None


class Channel(Protocol):
    """What a session can do to its call."""

    @property
    def answered(self) -> bool: ...

    async def answer(self) -> bool:
        """200 OK; False if the call is gone or cannot be answered."""

    async def play(self, prompts: Sequence[str], *, barge_in: bool) -> str | None:
        """Play prompts to the caller; the key that stopped them (it stays typed ahead), or
        None when they ran to the end."""

    def start_input(self) -> None:
        """A menu or gather begins waiting for keys (a dry run moves to its next input)."""

    async def next_digit(self, timeout: float) -> str | None:
        """The next key the caller presses (typed-ahead ones first), or None after
        ``timeout`` seconds."""

    def sensitive(self, on: bool) -> None:
        """Keys pressed from now on are (or are no longer) personal data: logged masked."""

    async def bridge(self, targets: Sequence[str], timeout: float | None) -> int:
        """Ring ``targets`` at once; 200 when one answered (the caller is connected), else the
        failure status."""

    async def queue(self, request: QueueRequest) -> QueueResult:
        """Hand the caller to a queue; returns how the caller left it."""

    async def voicemail(
        self, mailbox: str, max_length: float, beep: bool, greeting: str | None
    ) -> str | None:
        """Record a message into ``mailbox``; its id, or None if nothing was recorded."""

    def record(self, action: str, reason: str) -> bool:
        """Start, pause, resume or stop the call's recording; False if that did nothing."""

    async def hangup(self, status: int, reason: str, cause: str) -> None:
        """End the call: ``status`` if unanswered, else BYE."""


class LookupFailed(Exception):
    """A lookup got no usable answer: the reason, for the trace."""


class Lookups(Protocol):
    async def fetch(
        self,
        service: Service,
        method: str,
        url: str,
        query: Mapping[str, str],
        body: Mapping[str, str],
        timeout: float,
    ) -> Mapping[str, object]:
        """The JSON object answered, or raises :class:`LookupFailed`."""


@dataclass(slots=True)
class SessionOutcome:
    """How the session ended."""

    how: str
    """"bridged", "queued", "voicemail", "hangup", "ended", "no route" or "too many steps"."""
    status: int | None = None
    """The SIP status a refused caller got, if any."""
    path: list[str] = field(default_factory=list)


class _Stop(Exception):
    """The call is done with the dialplan (bridged, queued, hung up...)."""

    def __init__(self, how: str, status: int | None = None) -> None:
        super().__init__(how)
        self.how = how
        self.status = status


class CallSession:
    """One call's run through the dialplan."""

    def __init__(
        self,
        plan: CompiledPlan,
        facts: CallFacts,
        channel: Channel,
        lookups: Lookups,
        *,
        call_id: str = "",
        trace: Callable[[str], None] | None = None,
        max_steps: int = 500,
    ) -> None:
        self.plan = plan
        self.facts = facts
        self.channel = channel
        self.lookups = lookups
        self.call_id = call_id
        self._trace = trace
        self.max_steps = max_steps
        self.steps = 0
        self.variables: dict[str, str] = {
            "caller": facts.caller,
            "caller_name": facts.caller_name or "",
            "number": facts.number,
            "context": facts.context,
            "call_id": call_id,
            **facts.variables,
        }
        self.sensitive: set[str] = set()
        self.screen_pop: list[str] = []
        #: the IVR path: menu keys, gathers, lookups, gotos (no sensitive values)
        self.path: list[str] = []
        self._last_bridge: int | None = None
        self._depth = 0

    # -- output --------------------------------------------------------------------------------

    def note(self, line: str) -> None:
        text = "  " * self._depth + line
        if self._trace is not None:
            self._trace(text)
        else:
            log.debug("call %s: %s", self.call_id, line)

    def render(self, template: str, *, shown: bool = False, quoted: bool = False) -> str:
        """``template`` with its ``${name}`` references replaced; ``shown``: sensitive values
        masked (for traces and logs); ``quoted``: values percent-encoded (a URL path)."""

        def value(found: re.Match[str]) -> str:
            name = found[1]
            if shown and name in self.sensitive:
                return MASK
            text = self.variables.get(name, "")
            return quote(text, safe="") if quoted else text

        return _REFERENCE.sub(value, template)

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> SessionOutcome:
        """Route the call and run its actions until it is done with the dialplan."""
        try:
            facts, depth = self.facts, 0
            while True:  # each goto or transfer unwinds to here: no nesting, however many
                try:
                    self._depth = depth
                    await self._route(facts)
                    break
                except _Reroute as jump:
                    facts, depth = jump.facts, jump.depth
            self._depth = 0
            if self.channel.answered:
                self.note("end of the actions: hang up")
                await self.channel.hangup(200, "", "end of the dialplan")
                raise _Stop("ended")
            status = self._last_bridge or 480
            reason = "Temporarily Unavailable" if status == 480 else ""
            self.note(f"end of the actions: the caller gets {status}")
            await self.channel.hangup(status, reason, "end of the dialplan")
            raise _Stop("ended", status)
        except _Stop as stop:
            return SessionOutcome(stop.how, stop.status, self.path)

    async def _route(self, facts: CallFacts) -> None:
        decision = self.plan.decide(facts)
        for line in decision.trace:
            self.note(line)
        if decision.rule is None:
            await self.channel.hangup(404, "Not Found", "no route")
            raise _Stop("no route", 404)
        await self._rule(decision)

    async def _rule(self, decision: Decision) -> None:
        self.note(f"actions of the rule in context {decision.context}:")
        self.variables["context"] = decision.context
        self._depth += 1
        try:
            await self._actions(decision.actions)
        finally:
            self._depth -= 1

    async def _actions(self, actions: Sequence[Action]) -> None:
        for action in actions:
            self.steps += 1
            if self.steps > self.max_steps:
                self.note(f"more than {self.max_steps} actions: the call is ended")
                await self.channel.hangup(500, "Dialplan Loop", "too many steps")
                raise _Stop("too many steps", 500)
            self.note(f"{action.where}: {self.describe(action)}" if action.where else "")
            self._depth += 1
            try:
                await self._act(action)
            finally:
                self._depth -= 1

    async def _act(self, action: Action) -> None:
        if isinstance(action, Answer):
            if not self.channel.answered and not await self.channel.answer():
                raise _Stop("hangup")
        elif isinstance(action, Play):
            await self._answered()
            key = await self.channel.play(action.prompt, barge_in=action.barge_in)
            if key is not None:
                self.note(f"stopped by key {key}")
        elif isinstance(action, Menu):
            await self._menu(action)
        elif isinstance(action, Gather):
            await self._gather(action)
        elif isinstance(action, SetVars):
            for name, template in action.variables.items():
                self.variables[name] = self.render(template)
                if self._uses_sensitive(template):
                    self.sensitive.add(name)
                self.note(f"{name} = {self._shown(name)!r}")
        elif isinstance(action, Lookup):
            await self._lookup(action)
        elif isinstance(action, Bridge):
            await self._bridge(action)
        elif isinstance(action, Queue):
            await self._queue(action)
        elif isinstance(action, Voicemail):
            await self._answered()
            self.path.append(f"voicemail {action.mailbox}")  # a message usually ends the call
            message = await self.channel.voicemail(
                self.render(action.mailbox), action.max_length, action.beep, action.prompt
            )
            self.note(f"message {message} left" if message else "no message left")
            await self.channel.hangup(200, "", "voicemail")
            raise _Stop("voicemail")
        elif isinstance(action, Record):
            done = self.channel.record(action.action, action.reason or "")
            if not done:
                self.note("the call is not being recorded: nothing to do")
        elif isinstance(action, Goto):
            number = self.render(action.number) if action.number else self.variables["number"]
            self.path.append(f"goto {action.context}")
            self._again(replace(self.facts, context=action.context, number=number), action.number)
        elif isinstance(action, Transfer):
            to = self.render(action.to)
            self.path.append(f"transfer {self.render(action.to, shown=True)}")
            self._again(replace(self.facts, number=to), action.to)
        elif isinstance(action, Hangup):
            status, reason = HANGUP_STATUS[action.cause]
            self.path.append(f"hangup {action.cause}")
            await self.channel.hangup(status, reason, f"dialplan: {action.cause}")
            raise _Stop("hangup", None if self.channel.answered else status)

    def _again(self, facts: CallFacts, template: str | None = None) -> None:
        """Route again (goto, transfer): the rest of the current rule is not run. The jump
        unwinds to :meth:`run` (its trace lines stay indented under the action). A number
        made of sensitive variables keeps ``number`` sensitive."""
        if template is not None and self._uses_sensitive(template):
            self.sensitive.add("number")
        self.variables["number"] = facts.number
        raise _Reroute(replace(facts, variables=dict(self.variables)), self._depth)

    async def _answered(self) -> None:
        if not self.channel.answered:
            self.note("answer")
            if not await self.channel.answer():
                raise _Stop("hangup")

    # -- menus and digits ----------------------------------------------------------------------

    async def _menu(self, menu: Menu) -> None:
        await self._answered()
        for attempt in range(menu.retries + 1):
            again = attempt < menu.retries
            self.channel.start_input()
            key = await self.channel.play(menu.prompt, barge_in=True)
            if key is None:
                key = await self.channel.next_digit(menu.timeout)
            else:
                await self.channel.next_digit(0)  # the key that stopped the prompt
            if key is None:
                self.note(f"no key in {menu.timeout} s (try {attempt + 1} of {menu.retries + 1})")
                if again and menu.timeout_prompt:
                    self.note(f"play {menu.timeout_prompt}")
                    await self.channel.play([menu.timeout_prompt], barge_in=True)
                continue
            actions = menu.options.get(key)
            if actions is None:
                self.note(f"key {key}: not an option (try {attempt + 1} of {menu.retries + 1})")
                if again and menu.invalid_prompt:
                    self.note(f"play {menu.invalid_prompt}")
                    await self.channel.play([menu.invalid_prompt], barge_in=True)
                continue
            self.note(f"key {key}")
            self.path.append(f"menu {_first(menu.prompt)}: {key}")
            await self._actions(actions)
            return
        self.path.append(f"menu {_first(menu.prompt)}: no choice")
        if menu.on_failure:
            self.note("no valid key: on_failure")
            await self._actions(menu.on_failure)
        else:
            self.note("no valid key: going on")

    async def _gather(self, gather: Gather) -> None:
        await self._answered()
        name = gather.into
        if gather.sensitive:
            self.sensitive.add(name)
            self.channel.sensitive(True)
        try:
            self.channel.start_input()
            digits = ""
            if gather.prompt is not None:
                await self.channel.play(gather.prompt, barge_in=True)
            ended = "timeout"
            while len(digits) < gather.max_digits:
                wait = gather.timeout if not digits else gather.inter_digit_timeout
                key = await self.channel.next_digit(wait)
                if key is None:
                    break
                if gather.terminator is not None and key == gather.terminator:
                    ended = "terminator"
                    break
                digits += key
            else:
                ended = "max_digits"
        finally:
            if gather.sensitive:
                self.channel.sensitive(False)
        self.variables[name] = digits
        shown = f"{len(digits)} digit(s), sensitive" if gather.sensitive else repr(digits)
        if len(digits) < gather.min_digits:
            self.variables[name] = ""
            self.note(f"{name}: {shown}, fewer than {gather.min_digits} ({ended})")
            self.path.append(f"gather {name}: failed")
            if gather.on_failure:
                await self._actions(gather.on_failure)
            return
        self.note(f"{name} = {shown} ({ended})")
        self.path.append(f"gather {name}")

    # -- lookups ---------------------------------------------------------------------------------

    async def _lookup(self, lookup: Lookup) -> None:
        service = self.plan.plan.services[lookup.service]
        url = service.url.rstrip("/") + self.render(lookup.path, quoted=True)
        shown_url = service.url.rstrip("/") + self.render(lookup.path, shown=True)
        query = {k: self.render(v) for k, v in lookup.query.items()}
        body = {k: self.render(v) for k, v in lookup.body.items()}
        timeout = lookup.timeout if lookup.timeout is not None else service.timeout
        self.note(f"{lookup.method} {shown_url} ({timeout:g} s)")
        try:
            answer = await self.lookups.fetch(service, lookup.method, url, query, body, timeout)
        except LookupFailed as exc:
            self.note(f"failed: {exc}")
            self.path.append(f"lookup {lookup.service}: failed")
            self.variables[f"{lookup.into}_ok"] = "0"
            if lookup.on_failure:
                await self._actions(lookup.on_failure)
            return
        fields = []
        for key, value in answer.items():
            if isinstance(value, dict | list) or not _FIELD.fullmatch(key):
                continue
            name = f"{lookup.into}_{key}"
            self.variables[name] = _text(value)
            fields.append(name)
        self.variables[f"{lookup.into}_ok"] = "1"
        self.sensitive.update(lookup.sensitive)
        for name in lookup.screen_pop:
            if name not in self.screen_pop:
                self.screen_pop.append(name)
        shown = ", ".join(f"{n}={self._shown(n)!r}" for n in fields)
        self.note(f"answered: {shown or 'no fields'}")
        self.path.append(f"lookup {lookup.service}: ok")

    # -- leaving the dialplan ----------------------------------------------------------------------

    async def _bridge(self, bridge: Bridge) -> None:
        targets = [self.render(t) for t in bridge.to]
        status = await self.channel.bridge(targets, bridge.timeout)
        self.variables["bridge_status"] = str(status)
        if status == 200:
            self.note("answered: the call is bridged")
            shown = ",".join(self.render(t, shown=True) for t in bridge.to)
            self.path.append(f"bridge {shown}")
            raise _Stop("bridged")
        self._last_bridge = status
        self.note(f"not connected ({status})")

    async def _queue(self, queue: Queue) -> None:
        await self._answered()
        request = QueueRequest(
            call_id=self.call_id,
            queue=queue.name,
            priority=queue.priority,
            skills=dict(queue.skills),
            data_class=queue.data_class,
            caller=self.facts.caller,
            caller_name=self.facts.caller_name,
            path=tuple(self.path),
            screen_pop=ScreenPop(
                ScreenField(n, self.variables.get(n, ""), n in self.sensitive)
                for n in self.screen_pop
            ),
        )
        self.path.append(f"queue {queue.name}")
        result = await self.channel.queue(request)
        self.note(f"left the queue: {result.how}")
        if result.how == "connected":
            self.path.append(f"agent {result.agent}")
            raise _Stop("queued")
        if result.action is None:
            raise _Stop("queued")
        # an exit action of the queue: carried out here, as the dialplan's own actions are
        self.path.append(f"{result.how}: {result.action}")
        if result.prompt:
            await self.channel.play([result.prompt], barge_in=False)
        if result.action == "goto" and result.target:
            self._again(replace(self.facts, number=result.target))
        if result.action == "voicemail" and result.target:
            message = await self.channel.voicemail(result.target, 120.0, True, None)
            self.note(f"message {message} left" if message else "no message left")
            await self.channel.hangup(200, "", "voicemail")
            raise _Stop("voicemail")
        await self.channel.hangup(200, "", f"queue {result.how}")
        raise _Stop("queued")

    def _uses_sensitive(self, template: str) -> bool:
        return any(m[1] in self.sensitive for m in _REFERENCE.finditer(template))

    # -- display -----------------------------------------------------------------------------------

    def _shown(self, name: str) -> str:
        return MASK if name in self.sensitive else self.variables.get(name, "")

    def describe(self, action: Action) -> str:
        """One line for an action in a trace (sensitive values never shown)."""
        fields = action.model_dump(exclude={"where"}, exclude_defaults=True, by_alias=True)
        if isinstance(action, Menu):
            fields["options"] = sorted(action.options)
        for key in ("prompt", "to", "screen_pop", "sensitive"):
            value = fields.get(key)
            if isinstance(value, tuple | list):
                fields[key] = value[0] if len(value) == 1 else list(value)
        for key in ("on_failure",):
            if key in fields:
                fields[key] = f"{len(fields[key])} action(s)"
        name = "set" if isinstance(action, SetVars) else type(action).__name__.lower()
        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{name}({shown})" if shown else name


class _Reroute(Exception):
    """A goto or transfer: route these facts next (the trace indented ``depth`` levels)."""

    def __init__(self, facts: CallFacts, depth: int) -> None:
        super().__init__(facts.number)
        self.facts = facts
        self.depth = depth


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _first(prompt: str | Sequence[str]) -> str:
    return prompt if isinstance(prompt, str) else (prompt[0] if prompt else "")
