"""The queue service on the event loop: the engine's offers carried out through a caller's
channel, answers and failures reported back, exits, keys, hang-ups, announcements' timing
and the settings turned into the engine's configuration.

The channel is the scripted one of ``tests/acd_callers.py`` (the SIP side is tested with real
phones in ``tests/interop/test_acd_pjsua.py``); the engine is the real one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from softswitch.acd.model import AcdConfig, AgentConfig, ExitAction, QueueConfig, Strategy
from softswitch.apps.queueing import Announcements, QueueService, acd_config, spoken_wait
from softswitch.apps.session import QueueRequest, QueueResult
from softswitch.config import ANNOUNCEMENTS, load_settings
from tests.acd_callers import ScriptedCaller, binding

ROOT = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def request(call_id: str, queue: str = "support", data_class: str = "general") -> QueueRequest:
    return QueueRequest(
        call_id=call_id,
        queue=queue,
        priority=0,
        skills={},
        data_class=data_class,
        caller="0312345678",
        caller_name="Customer",
        path=("menu main: 1",),
        screen_pop={"crm_name": "Hanako"},
    )


def service(
    queues: dict[str, QueueConfig] | None = None,
    registered: frozenset[str] = frozenset({"1001", "1002"}),
    clock: Clock | None = None,
) -> QueueService:
    config = AcdConfig(
        queues=queues or {"support": QueueConfig("support", strategy=Strategy.LINEAR)},
        agents={
            "alice": AgentConfig("alice", "Alice", "1001", location="home", queues={"support": 0}),
            "bob": AgentConfig("bob", "Bob", "1002", location="onsite", queues={"support": 0}),
        },
        codes=("sale",),
    )
    return QueueService(
        config,
        clock=clock or Clock(),
        locate=lambda user: [binding(user)] if user in registered else [],
    )


def ready(svc: QueueService, *agents: str) -> None:
    for agent in agents:
        svc.control(lambda acd, now, a=agent: acd.login(a, now))
        svc.control(lambda acd, now, a=agent: acd.ready(a, now))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_answered_offer_connects_the_caller_to_the_agent_who_answered() -> None:
    svc = service()
    ready(svc, "alice", "bob")
    caller = ScriptedCaller("c1")
    waiting = asyncio.create_task(svc.wait(request("c1"), caller))
    await settle()
    assert caller.events[0] == ("music",)
    assert caller.rung == ["sip:1001@127.0.0.1:5070"]  # linear: alice is first
    snap = svc.queue_view("support")
    (view,) = snap["callers"]  # type: ignore[misc]
    assert view["screen_pop"] == {"crm_name": "Hanako"} and view["offered_to"] == ["alice"]
    caller.result(200, "sip:1001@127.0.0.1:5070")
    result = await asyncio.wait_for(waiting, 1)
    assert result == QueueResult("connected", agent="alice")
    assert svc.acd.agent("alice").state.value == "on_call"
    assert svc.connection("c1")[:2] == ("support", "alice")  # type: ignore[index]
    svc.call_ended("c1", "agent")
    assert svc.acd.agent("alice").state.value == "ready"  # no wrap-up configured
    assert svc.connection("c1") is None
    svc.close()


async def test_a_failed_offer_keeps_the_place_restarts_music_and_rings_the_next_agent() -> None:
    svc = service()
    ready(svc, "alice", "bob")
    caller = ScriptedCaller("c1")
    waiting = asyncio.create_task(svc.wait(request("c1"), caller))
    await settle()
    caller.result(486)
    await settle()
    assert caller.events[-2:] == [("music",), ("offer", ("sip:1002@127.0.0.1:5070",), 15.0)]
    assert svc.acd.agent("alice").misses == 1
    assert svc.acd.position("c1") == 1
    caller.result(200, "sip:1002@127.0.0.1:5070")
    assert (await asyncio.wait_for(waiting, 1)).agent == "bob"
    svc.close()


async def test_an_agent_without_a_registered_phone_is_made_unreachable() -> None:
    svc = service(registered=frozenset({"1002"}))
    ready(svc, "alice", "bob")
    caller = ScriptedCaller("c1")
    waiting = asyncio.create_task(svc.wait(request("c1"), caller))
    await settle()
    assert caller.rung == ["sip:1002@127.0.0.1:5070"]
    alice = svc.acd.agent("alice")
    assert (alice.state.value, alice.reason) == ("not_ready", "unreachable")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    svc.close()


async def test_a_caller_hanging_up_while_rung_cancels_the_offer_and_is_abandoned() -> None:
    svc = service()
    ready(svc, "alice")
    seen: list[str] = []
    svc.sinks.append(lambda events: seen.extend(e.kind.value for e in events))
    caller = ScriptedCaller("c1")
    waiting = asyncio.create_task(svc.wait(request("c1"), caller))
    await settle()
    waiting.cancel()  # what the runtime does when the B2BUA forgets the call
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert ("cancel",) in caller.events
    assert svc.acd.entry("c1") is None
    alice = svc.acd.agent("alice")
    assert (alice.state.value, alice.misses) == ("ready", 0)  # not the agent's miss
    assert "missed" not in seen and seen[-1] == "abandoned"
    svc.close()


async def test_the_exit_key_and_the_maximum_wait_end_the_wait_with_their_action() -> None:
    clock = Clock()
    queues = {
        "support": QueueConfig(
            "support",
            exit_key="*",
            exit_to="100",
            max_wait=30,
            on_timeout=ExitAction("voicemail", "main", "queue-timeout"),
        )
    }
    svc = service(queues, clock=clock)
    first, second = ScriptedCaller("c1"), ScriptedCaller("c2")
    one = asyncio.create_task(svc.wait(request("c1"), first))
    two = asyncio.create_task(svc.wait(request("c2"), second))
    await settle()
    first.keys.put_nowait("5")  # not a key of this queue
    first.keys.put_nowait("*")
    assert await asyncio.wait_for(one, 1) == QueueResult("exit key", action="goto", target="100")
    clock.now += 30
    svc._on_timer()  # the engine's timer, due now on the fake clock
    assert await asyncio.wait_for(two, 1) == QueueResult(
        "exit timeout", action="voicemail", target="main", prompt="queue-timeout"
    )
    svc.close()


def test_announcements_come_at_first_then_every_period_and_the_periodic_message_apart() -> None:
    cfg = QueueConfig(
        "q", position_first=10, position_every=30, periodic_prompt="p", periodic_every=25
    )
    plan = Announcements(100.0, cfg)
    times: list[tuple[float, list[str]]] = []
    while (at := plan.next_at()) is not None and at <= 200:
        times.append((at, plan.due(at)))
    assert times == [
        (110.0, ["position"]),
        (125.0, ["periodic"]),
        (140.0, ["position"]),
        (150.0, ["periodic"]),
        (170.0, ["position"]),
        (175.0, ["periodic"]),
        (200.0, ["position", "periodic"]),
    ]
    assert Announcements(0.0, QueueConfig("quiet")).next_at() is None
    late = Announcements(0.0, cfg)
    assert late.due(75.0) == ["position", "periodic"]  # each once, however late
    assert late.next_at() == 100.0


def test_the_spoken_position_and_wait() -> None:
    assert spoken_wait(3, None) == ["queue-position", "number-3"]
    assert spoken_wait(1, 20.0) == ["queue-position", "number-1", "queue-wait-short"]
    assert spoken_wait(2, 150.0) == [
        "queue-position",
        "number-2",
        "queue-wait",
        "number-3",
        "minutes",
    ]
    assert spoken_wait(25, 3600.0) == ["queue-position", "number-many", "queue-wait-long"]
    # every name it can say is one the settings check for (config.ANNOUNCEMENTS)
    said = {p for n in range(1, 30) for w in (None, 10, 150, 900, 3600) for p in spoken_wait(n, w)}
    assert said <= set(ANNOUNCEMENTS) and "queue-callback" in ANNOUNCEMENTS


def test_the_demo_settings_become_the_engines_configuration() -> None:
    config = acd_config(load_settings(ROOT / "configs" / "default.yaml").acd)
    general, account = config.queues["general"], config.queues["account"]
    assert general.strategy is Strategy.LONGEST_IDLE and account.strategy is Strategy.RING_ALL
    assert general.on_timeout == ExitAction("voicemail", "main", "demo/queue-timeout")
    assert account.personal_locations == frozenset({"onsite"})
    assert (general.exit_key, general.exit_to) == ("*", "100")
    alice = config.agents["alice"]
    assert (alice.user, alice.location, dict(alice.queues)) == (
        "1001",
        "home",
        {"general": 0, "account": 0},
    )
    assert "supervisor" in config.agents["dave"].roles
    assert config.codes == ("resolved", "follow_up", "sale", "complaint")
