"""Callers waiting in queues and the agents who take them: the asyncio shell of the ACD.

The dialplan's ``queue`` action hands a caller to :meth:`QueueService.wait`. The pure engine
(:class:`softswitch.acd.engine.Acd`) decides; this service carries its commands out:

- :class:`~softswitch.acd.engine.Offer`: ring the offered agents' registered phones through
  the caller's channel (a late bridge: the caller keeps hearing music until one answers); the
  answer connects the call, a failure (no answer in time, busy, declined) returns the caller
  to the same place and counts a miss.
- :class:`~softswitch.acd.engine.Withdraw`: stop ringing.
- :class:`~softswitch.acd.engine.Exit`: the caller leaves for the exit action (the session
  carries it out: another dialplan branch, voicemail, a message and hang-up).
- :class:`~softswitch.acd.engine.Moved`: overflow to another queue (the engine keeps the
  call's data class; only the hold music and announcements follow).

While waiting, a caller hears music on hold, the position and estimated wait announcements
and the queue's periodic message at the times :class:`Announcements` gives, and may press
the queue's exit key. The engine's timers (wrap-up ends, maximum waits, skill relaxation,
retries) run on one ``loop.call_later``; its queue events go to the sinks (the queue log and
the live views).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from softswitch.acd.engine import Acd, AcdError, Command, Exit, Moved, Offer, Withdraw
from softswitch.acd.events import QueueEvent
from softswitch.acd.model import (
    AcdConfig,
    AgentConfig,
    ExitAction,
    QueueConfig,
    Relaxation,
    Strategy,
)
from softswitch.apps.session import QueueRequest, QueueResult
from softswitch.config import AcdSettings, ExitTo
from softswitch.registrar.bindings import Binding

__all__ = ["Announcements", "Dialer", "QueueCaller", "QueueService", "acd_config"]

log = logging.getLogger("softswitch.apps.queueing")


class QueueCaller(Protocol):
    """What the service needs of a waiting caller's channel."""

    call_id: str

    def hold_music(self) -> None:
        """(Re)start music on hold."""

    async def announce(self, prompts: Sequence[str]) -> None:
        """Play prompts over the hold music, then resume it."""

    async def next_digit(self, timeout: float) -> str | None: ...

    def offer(
        self,
        bindings: Sequence[Binding],
        timeout: float,
        on_result: Callable[[int, str | None], None],
    ) -> None:
        """Ring ``bindings``; ``on_result(status, contact)``: 200 and the contact that
        answered, or a failure status and None."""

    def cancel_offer(self) -> None:
        """Stop ringing (the result arrives as a failure)."""


class Dialer(Protocol):
    """Places the calls of queued callbacks (the switch's ``originate`` and late bridge)."""

    def call(
        self,
        user: str,
        caller_name: str,
        timeout: float,
        on_result: Callable[[int, str | None], None],
    ) -> None:
        """Call ``user``; ``on_result(200, call id)`` once answered (the call then hears
        ringback), else the failure status and None."""

    def connect(
        self,
        call_id: str,
        bindings: Sequence[Binding],
        timeout: float,
        on_result: Callable[[int, str | None], None],
    ) -> None:
        """Ring ``bindings`` and bridge the answered call ``call_id`` to the first to answer."""

    def hangup(self, call_id: str) -> None: ...


@dataclass(slots=True)
class Announcements:
    """When a waiting caller hears the position and periodic messages (pure timing).

    The first position announcement comes ``first`` seconds after joining, then every
    ``every`` seconds; the periodic message every ``periodic_every`` seconds (if any). Two due
    at once play one after the other, position first.
    """

    joined: float
    config: QueueConfig
    _next_position: float | None = None
    _next_periodic: float | None = None

    def __post_init__(self) -> None:
        cfg = self.config
        if cfg.position_every > 0:
            self._next_position = self.joined + cfg.position_first
        if cfg.periodic_prompt and cfg.periodic_every > 0:
            self._next_periodic = self.joined + cfg.periodic_every

    def next_at(self) -> float | None:
        times = [t for t in (self._next_position, self._next_periodic) if t is not None]
        return min(times) if times else None

    def due(self, now: float) -> list[str]:
        """What is due at ``now`` ("position", "periodic"), each rescheduled."""
        out = []
        if self._next_position is not None and now >= self._next_position:
            out.append("position")
            while self._next_position <= now:
                self._next_position += self.config.position_every
        if self._next_periodic is not None and now >= self._next_periodic:
            out.append("periodic")
            while self._next_periodic <= now:
                self._next_periodic += self.config.periodic_every
        return out


def spoken_wait(position: int, seconds: float | None) -> list[str]:
    """The prompts of a position announcement: "you are caller number N" and, when known,
    "your estimated wait is about M minutes" (rounded up; "less than a minute" below 60 s)."""
    out = ["queue-position", f"number-{min(position, 20)}"]
    if position > 20:
        out[-1] = "number-many"
    if seconds is not None:
        minutes = int(-(-seconds // 60))
        if minutes <= 1:
            out.append("queue-wait-short")
        elif minutes <= 20:
            out += ["queue-wait", f"number-{minutes}", "minutes"]
        else:
            out.append("queue-wait-long")
    return out


@dataclass(slots=True)
class _Waiting:
    request: QueueRequest
    caller: QueueCaller
    result: asyncio.Future[QueueResult]
    offer: Offer | None = None
    contacts: dict[str, str] = field(default_factory=dict)  # contact -> agent


class QueueService:
    """The ACD on the event loop: waiting callers, offers to agents, the engine's timers."""

    def __init__(
        self,
        config: AcdConfig,
        *,
        clock: Callable[[], float],
        locate: Callable[[str], Sequence[Binding] | None],
        draw: Callable[[int], int] | None = None,
        dialer: Dialer | None = None,
    ) -> None:
        self.clock = clock
        self.locate = locate
        self.acd = Acd(config, now=clock(), draw=draw)
        self._waiting: dict[str, _Waiting] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: called with each batch of queue events (the queue log, the live views)
        self.sinks: list[Callable[[list[QueueEvent]], None]] = []
        #: places the calls of queued callbacks (None: callbacks are dropped)
        self.dialer = dialer
        self._aliases: dict[str, str] = {}  # a callback's call -> the queue entry's call id

    # -- the dialplan's queue action ------------------------------------------------------------

    async def wait(self, request: QueueRequest, caller: QueueCaller) -> QueueResult:
        """Hold the caller in the queue until an agent answers or the caller leaves it."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, caller, loop.create_future())
        self._waiting[request.call_id] = waiting
        caller.hold_music()
        self._run(
            self.acd.join(
                request.call_id,
                request.queue,
                self.clock(),
                priority=request.priority,
                skills=request.skills,
                data_class=request.data_class,
                caller=request.caller,
            )
        )
        tasks = []
        if not waiting.result.done():
            tasks = [
                loop.create_task(self._announce(waiting)),
                loop.create_task(self._keys(waiting)),
            ]
        try:
            return await asyncio.shield(waiting.result)
        finally:
            for task in tasks:
                task.cancel()
            self._waiting.pop(request.call_id, None)
            if not waiting.result.done():  # the caller hung up (the session was cancelled)
                # the engine first (it releases the agents rung: no miss for them), then the
                # ringing stops (its late failure is then about an offer no longer current)
                self._run(self.acd.call_gone(request.call_id, self.clock(), by="caller"))
                if waiting.offer is not None:
                    caller.cancel_offer()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _announce(self, waiting: _Waiting) -> None:
        call_id = waiting.request.call_id
        joined = self.acd.entry(call_id)
        if joined is None:
            return
        plan = Announcements(self.clock(), self.acd.queue_config(joined.queue))
        while True:
            at = plan.next_at()
            if at is None:
                return
            await asyncio.sleep(max(0.0, at - self.clock()))
            entry = self.acd.entry(call_id)
            if entry is None:
                return
            if entry.offered:  # an agent is ringing: no message now
                plan.due(self.clock())
                continue
            prompts: list[str] = []
            for what in plan.due(self.clock()):
                if what == "position":
                    position = self.acd.position(call_id) or 1
                    wait = self.acd.estimated_wait(call_id, self.clock())
                    prompts += [self.announcement(p) for p in spoken_wait(position, wait)]
                else:
                    periodic = self.acd.queue_config(entry.queue).periodic_prompt
                    if periodic:
                        prompts.append(periodic)
            if prompts:
                try:
                    await waiting.caller.announce(prompts)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a missing prompt must not end the wait
                    log.exception("call %s: announcement %s failed", call_id, prompts)
                    waiting.caller.hold_music()

    async def _keys(self, waiting: _Waiting) -> None:
        while True:
            key = await waiting.caller.next_digit(3600.0)
            if key is not None:
                self._run(self.acd.key_pressed(waiting.request.call_id, key, self.clock()))

    # -- calls ending -----------------------------------------------------------------------

    def connection(self, call_id: str) -> tuple[str, str, float] | None:
        """The queue, agent and wait of a call an agent took (a callback's placed call
        too), for the call's detail record; None if no agent took it."""
        return self.acd.connection(self._aliases.get(call_id, call_id))

    def call_ended(self, call_id: str, by: str) -> None:
        """The B2BUA forgot the call (``by`` "caller" or "agent" hung up)."""
        queued = self._aliases.pop(call_id, call_id)  # a callback's call: the queue's entry
        self._run(self.acd.call_gone(queued, self.clock(), by=by))

    def transferred(self, call_id: str, target: str) -> None:
        """A connected queue call was transferred by the agent to ``target``."""
        queued = self._aliases.get(call_id, call_id)  # a callback's call: the queue's entry
        if self.acd.connection(queued) is not None:
            self._run(self.acd.transferred(queued, target, self.clock()))

    def agent_reachable(self, user: str) -> None:
        """The SIP user registered a phone: a not ready left pending by its loss is dropped."""
        for agent_id in self.acd.agents_of_user(user):
            with contextlib.suppress(AcdError):
                self._run(self.acd.reachable(agent_id, self.clock()))

    def agent_unreachable(self, user: str) -> None:
        """The SIP user's last registration went away: its logged-in agents are unreachable."""
        for agent_id in self.acd.agents_of_user(user):
            with contextlib.suppress(AcdError):
                self._run(self.acd.unreachable(agent_id, self.clock()))

    def reload(self, config: AcdConfig) -> None:
        self._run(self.acd.reload(config, self.clock()))

    def control(self, action: Callable[[Acd, float], list[Command]]) -> None:
        """Run an agent request (login, ready, not ready...) against the engine; raises
        :class:`AcdError` when it does not apply."""
        self._run(action(self.acd, self.clock()))

    # -- carrying out the engine's commands ------------------------------------------------------

    def _run(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, Offer):
                self._offer(command)
            elif isinstance(command, Withdraw):
                waiting = self._waiting.get(command.call_id)
                if waiting is not None and waiting.offer is not None:
                    waiting.caller.cancel_offer()
            elif isinstance(command, Exit):
                self._exit(command)
            elif isinstance(command, Moved):
                log.info("call %s: moved to queue %s", command.call_id, command.queue)
        self._flush_events()
        self._arm()

    def _offer(self, offer: Offer) -> None:
        waiting = self._waiting.get(offer.call_id)
        now = self.clock()
        if waiting is None:  # a callback: the caller is not on the line
            self._call_back(offer)
            return
        bindings: list[Binding] = []
        contacts: dict[str, str] = {}
        reachable = []
        for agent_id in offer.agents:
            user = self.acd.agent_config(agent_id).user
            found = self.locate(user) or ()
            if not found:
                self._run(self.acd.missed(offer.call_id, agent_id, now, why="unreachable"))
                continue
            reachable.append(agent_id)
            for binding in found:
                bindings.append(binding)
                contacts[binding.contact] = agent_id
        if not reachable:
            return
        waiting.offer = offer
        waiting.contacts = contacts
        log.info(
            "call %s: offered to %s (queue %s)", offer.call_id, ", ".join(reachable), offer.queue
        )

        def done(status: int, contact: str | None) -> None:
            self._offer_done(waiting, offer, reachable, status, contact)

        waiting.caller.offer(bindings, offer.ring_timeout, done)

    def _offer_done(
        self,
        waiting: _Waiting,
        offer: Offer,
        agents: list[str],
        status: int,
        contact: str | None,
    ) -> None:
        if waiting.offer is offer:
            waiting.offer = None
        now = self.clock()
        call_id = offer.call_id
        if status == 200:
            agent_id = waiting.contacts.get(contact or "", agents[0])
            commands = self.acd.answered(call_id, agent_id, now)
            connected = self.acd.connected_agent(call_id)
            if connected is not None and not waiting.result.done():
                waiting.result.set_result(QueueResult("connected", agent=connected))
            self._run(commands)
            return
        if not waiting.result.done() and call_id in self._waiting:
            waiting.caller.hold_music()  # the caller keeps the place, with music
        why = {408: "no answer", 486: "busy", 600: "busy", 603: "declined", 487: "withdrawn"}
        for agent_id in agents:
            self._run(self.acd.missed(call_id, agent_id, now, why=why.get(status, str(status))))

    # -- queued callbacks ------------------------------------------------------------------

    def _call_back(self, offer: Offer) -> None:
        """A callback reached an agent (reserved for it): call the caller, then ring the
        agent (``callback_first: caller``), or call the agent, then the caller (``agent``).
        A caller who does not answer loses the callback (abandoned); an agent who does not
        answer counts a miss and the callback keeps its place for the next agent."""
        call_id, number = offer.call_id, offer.callback
        agent_id = offer.agents[0]
        for other in offer.agents[1:]:  # one agent per callback, even in a ring-all queue
            self._run(self.acd.missed(call_id, other, self.clock(), why="callback"))
        if self.dialer is None or number is None:
            log.warning("call %s: no way to place the callback; it is dropped", call_id)
            self._run(self.acd.call_gone(call_id, self.clock(), by="switch"))
            return
        dialer = self.dialer
        agent_user = self.acd.agent_config(agent_id).user
        first_caller = self.acd.queue_config(offer.queue).callback_first == "caller"
        log.info("call %s: calling back %s with agent %s", call_id, number, agent_id)

        def connected(placed: str) -> None:
            self._aliases[placed] = call_id  # the placed call stands for the queue's entry
            self._run(self.acd.answered(call_id, agent_id, self.clock()))

        def second_leg(placed: str, status: int) -> None:
            if status == 200 and first_caller:
                connected(placed)
                return
            if status == 200:  # the agent took it first; the caller answered too
                return
            log.info("call %s: the callback's second call failed (%d)", call_id, status)
            if first_caller:
                self._run(self.acd.missed(call_id, agent_id, self.clock(), why=str(status)))
                self._run(self.acd.call_gone(call_id, self.clock(), by="switch"))
            dialer.hangup(placed)

        def first_leg(status: int, placed: str | None) -> None:
            if placed is None or status != 200:
                log.info("call %s: the callback's first call failed (%d)", call_id, status)
                if first_caller:
                    self._run(self.acd.call_gone(call_id, self.clock(), by="switch"))
                else:
                    self._run(self.acd.missed(call_id, agent_id, self.clock(), why=str(status)))
                return
            if not first_caller:
                connected(placed)
            target = agent_user if first_caller else number
            bindings = self.locate(target) or ()
            dialer.connect(
                placed, bindings, offer.ring_timeout, lambda st, _c: second_leg(placed, st)
            )

        first = number if first_caller else agent_user
        name = f"Callback {offer.queue}" if first_caller else f"Callback {number}"
        dialer.call(first, name, offer.ring_timeout, first_leg)

    def _exit(self, command: Exit) -> None:
        waiting = self._waiting.get(command.call_id)
        if waiting is None or waiting.result.done():
            return
        a = command.action
        if a.kind == "callback" and a.prompt is None:
            a = ExitAction("callback", a.target, self.announcement("queue-callback"))
        waiting.result.set_result(
            QueueResult(f"exit {command.why}", action=a.kind, target=a.target, prompt=a.prompt)
        )

    # -- events and timers ------------------------------------------------------------------

    def _flush_events(self) -> None:
        events = self.acd.drain_events()
        if not events:
            return
        for sink in self.sinks:
            try:
                sink(events)
            except Exception:
                log.exception("a queue event sink failed")

    def _arm(self) -> None:
        deadline = self.acd.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is None:
            return
        delay = max(0.0, deadline - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._run(self.acd.handle_timer(self.clock()))

    def announcement(self, name: str) -> str:
        """The prompt name of one of the switch's own queue prompts (``acd.announcements``)."""
        folder = self.acd.config.announcements.strip("/")
        return f"{folder}/{name}" if folder else name

    def request_of(self, call_id: str) -> QueueRequest | None:
        """What the dialplan said about a waiting caller (the screen pop of an offer)."""
        waiting = self._waiting.get(call_id)
        return None if waiting is None else waiting.request

    def snapshot(self) -> dict[str, object]:
        """Every queue (with its callers, their IVR path and screen pop) and agent, live."""
        snap = self.acd.snapshot(self.clock())
        queues = snap["queues"]
        assert isinstance(queues, list)
        for queue in queues:
            self._add_requests(queue)
        return snap

    def queue_view(self, name: str) -> dict[str, object]:
        """One queue's live view (an idle, empty one for a queue nobody used yet)."""
        return self._add_requests(self.acd.queue_view(name, self.clock()))

    def _add_requests(self, queue: dict[str, object]) -> dict[str, object]:
        """What the dialplan said about each waiting caller: name, IVR path, screen pop."""
        callers = queue["callers"]
        assert isinstance(callers, list)
        for view in callers:
            waiting = self._waiting.get(view["call_id"])
            if waiting is not None:
                r = waiting.request
                view["caller_name"] = r.caller_name
                view["path"] = list(r.path)
                view["screen_pop"] = dict(r.screen_pop)
        return queue

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def acd_config(settings: AcdSettings) -> AcdConfig:
    """The engine's configuration from the settings' ``acd`` section."""
    outbound = set(settings.outbound_only_classes)
    queues = {
        q.name: QueueConfig(
            name=q.name,
            strategy=Strategy(q.strategy),
            ring_timeout=q.ring_timeout,
            retry=q.retry,
            wrap_up=q.wrap_up,
            skills=dict(q.skills),
            relax=tuple(Relaxation(r.after, r.by) for r in q.relax),
            max_length=q.max_length,
            max_wait=q.max_wait,
            on_timeout=_exit_action(q.on_timeout),
            on_full=_exit_action(q.on_full),
            on_empty=_exit_action(q.on_empty),
            join_when=q.join_when,
            stay_when=q.stay_when,
            personal_locations=frozenset(q.personal_locations),
            service_level=q.service_level,
            position_first=q.announce_first,
            position_every=q.announce_position,
            periodic_prompt=q.periodic_prompt,
            periodic_every=q.periodic_every,
            exit_key=q.exit_key,
            exit_to=q.exit_to,
            callback_key=q.callback_key,
            callback_first=q.callback_first,
        )
        for q in settings.queues
    }
    agents = {
        a.id: AgentConfig(
            id=a.id,
            name=a.name,
            user=a.user,
            location=a.location,
            skills=dict(a.skills),
            roles=frozenset(a.roles),
            queues=dict(a.queues),
            wrap_up=a.wrap_up,
            outbound_only=a.agent_class in outbound,
            max_misses=a.max_misses,
        )
        for a in settings.agents
    }
    return AcdConfig(
        queues, agents, settings.reasons, settings.wrap_up_codes, settings.announcements
    )


def _exit_action(exit_to: ExitTo) -> ExitAction:
    return ExitAction(exit_to.action, exit_to.target, exit_to.prompt)
