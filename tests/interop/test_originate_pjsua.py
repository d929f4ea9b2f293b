"""Calls the switch places itself, answered by real pjsua2 phones.

The switch runs in this process (origination has no HTTP route of its own yet), the phones
are pjsua2 user agents in child processes, driven from worker threads so that the event loop
keeps serving SIP and RTP while a phone's command waits. Checked: pjsip accepts the switch's
INVITE and offer, confirms on its ACK and takes its CANCEL; what the switch plays and the far
party's tone are heard (by frequency); a late bridge carries audio both ways; a supervisor's
call joins a live call in whisper mode and ends with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from media.tones import tone
from softswitch.app import Switch
from tests.integration.local_switch import UDP_ONLY, make_settings, running_switch, server_address
from tests.integration.origination import CALLER, CALLER_NAME, EMPTY, Results, channel, originate
from tests.interop.audio import heard_samples, spectrum_share
from tests.interop.pjua import UserAgent, call_between
from tests.interop.servers import DOMAIN, USERS

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]


@pytest.fixture
async def local_switch(tmp_path: Path) -> AsyncIterator[Switch]:
    async with running_switch(make_settings(tmp_path, UDP_ONLY)) as sw:
        yield sw


Agents = Callable[[str], Awaitable[UserAgent]]


@pytest.fixture
async def agents(local_switch: Switch) -> AsyncIterator[Agents]:
    """Registered pjsua2 phones (``await agents("1002")``), closed while the switch runs."""
    made: list[UserAgent] = []
    port = server_address(local_switch, "udp").port

    async def make(user: str) -> UserAgent:
        agent = UserAgent(f"{user}-{len(made)}")
        made.append(agent)
        await asyncio.to_thread(agent.init)
        code = await asyncio.to_thread(
            agent.register, user, USERS[user], f"127.0.0.1:{port}", DOMAIN
        )
        assert code == 200, f"{user} registration: {code}"
        return agent

    try:
        yield make
    finally:
        for agent in made:
            await asyncio.to_thread(agent.close)


async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking pjsua2 command, off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def told(results: Results, timeout: float = 10.0) -> tuple[int, str | None]:
    end = time.monotonic() + timeout
    while not results.seen:
        assert time.monotonic() < end, "on_result was not called"
        await asyncio.sleep(0.02)
    [outcome] = results.seen
    return outcome


async def idle(sw: Switch) -> None:
    end = time.monotonic() + 10
    while sw.b2bua.calls:
        assert time.monotonic() < end, f"calls left: {list(sw.b2bua.calls)}"
        await asyncio.sleep(0.05)
    assert sw.b2bua.table_sizes == EMPTY
    assert sw.media is not None and len(sw.media) == 0


def share(path: Path, hz: float, start: float = 0.0, end: float | None = None) -> float:
    """The share of ``hz`` in what a phone recorded between ``start`` and ``end`` seconds."""
    samples = heard_samples(path)[int(start * 8000) : None if end is None else int(end * 8000)]
    assert len(samples) >= 4000, f"{path.name}: {len(samples)} samples"
    return spectrum_share(samples, 8000, hz)


async def test_click_to_call_prompt_digit_and_late_bridge(
    local_switch: Switch, agents: Agents, tmp_path: Path
) -> None:
    sw = local_switch
    bob, carol = await agents("1002"), await agents("1003")
    results = Results()
    call_id = originate(sw, "1002", results)
    assert call_id is not None
    incoming = await run(bob.wait_incoming, "1002", timeout=10)
    assert f"sip:{CALLER}@{DOMAIN}" in incoming["remote_uri"], incoming
    assert CALLER_NAME in incoming["remote_uri"], incoming
    await run(bob.answer, incoming["call"], 200)
    assert await told(results) == (200, call_id)
    up = await run(bob.wait_state, incoming["call"], "CONFIRMED", timeout=10)  # our ACK
    assert up["last_status"] == 200, up
    bob_wav = tmp_path / "bob.wav"
    await run(bob.media_start, incoming["call"], 440, str(bob_wav))
    ch = channel(sw, call_id, tone((1000,), 1500, -10.0))
    assert await ch.answer()
    started = time.monotonic()
    await asyncio.wait_for(ch.play(["prompt"], barge_in=False), 5)
    prompt_end = time.monotonic() - started
    await run(bob.dtmf, incoming["call"], "5")
    assert await ch.next_digit(5.0) == "5"
    bridge = asyncio.ensure_future(ch.bridge(["1003"], 10.0))
    fork = await run(carol.wait_incoming, "1003", timeout=10)
    assert f"sip:1002@{DOMAIN}" in fork["remote_uri"], fork  # leg A's party calls
    await run(carol.answer, fork["call"], 200)
    assert await asyncio.wait_for(bridge, 10) == 200
    await run(carol.wait_state, fork["call"], "CONFIRMED", timeout=10)
    carol_wav = tmp_path / "carol.wav"
    await run(carol.media_start, fork["call"], 1700, str(carol_wav))
    bridged_at = time.monotonic() - started
    await asyncio.sleep(2.5)
    await run(bob.media_stop, incoming["call"])
    await run(carol.media_stop, fork["call"])
    await run(carol.hangup, fork["call"])
    down = await run(bob.wait_state, incoming["call"], "DISCONNECTED", timeout=10)
    assert down["last_status"] == 200, down  # a BYE from the switch, normal clearing
    await idle(sw)

    # bob's recording began just before the prompt: the prompt first, carol after the bridge
    assert share(bob_wav, 1000, 0.3, prompt_end - 0.3) > 0.8
    assert share(bob_wav, 1700, bridged_at + 0.5) > 0.8
    assert share(carol_wav, 440, 0.5) > 0.8
    await asyncio.gather(*sw._cdr_writes)
    record = await sw.cdrs.get(call_id)
    assert record is not None
    assert (record.caller, record.callee, record.status) == (CALLER, "1002", 200)
    assert record.cause == "bridged party hung up"


async def test_the_other_phone_of_the_user_is_cancelled(
    local_switch: Switch, agents: Agents
) -> None:
    sw = local_switch
    desk, softphone = await agents("1002"), await agents("1002")
    assert len(sw.registrar.lookup("1002", time.time())) == 2
    results = Results()
    call_id = originate(sw, "1002", results)
    ringing_desk = await run(desk.wait_incoming, "1002", timeout=10)
    ringing_soft = await run(softphone.wait_incoming, "1002", timeout=10)
    await run(softphone.answer, ringing_soft["call"], 200)
    assert await told(results) == (200, call_id)
    cancelled = await run(desk.wait_state, ringing_desk["call"], "DISCONNECTED", timeout=10)
    assert cancelled["last_status"] == 487, cancelled  # our CANCEL (RFC 3261 §9.2)
    await run(softphone.wait_state, ringing_soft["call"], "CONFIRMED", timeout=10)
    await run(softphone.hangup, ringing_soft["call"])  # BYE from the phone
    await run(softphone.wait_state, ringing_soft["call"], "DISCONNECTED", timeout=10)
    await idle(sw)


async def test_supervisor_called_by_the_switch_whispers_to_the_agent(
    local_switch: Switch, agents: Agents, tmp_path: Path
) -> None:
    sw = local_switch
    port = server_address(sw, "udp").port
    server = SimpleNamespace(users=USERS, address=f"127.0.0.1:{port}", domain=DOMAIN)
    made: list[UserAgent] = []

    def factory(user: str) -> UserAgent:
        agent = UserAgent(user)
        made.append(agent)
        agent.init()
        return agent

    try:
        alice, outgoing, bob, incoming = await run(call_between, server, factory, "1001", "1003")
        dave = await agents("1004")
        monitor = sw.b2bua.monitor_target("1003", "whisper")
        assert monitor is not None and monitor.agent_side == "b"
        results = Results()
        supervisor_call = originate(sw, "1004", results, monitor=monitor)
        ringing = await run(dave.wait_incoming, "1004", timeout=10)
        await run(dave.answer, ringing["call"], 200)
        assert await told(results) == (200, supervisor_call)
        await run(dave.wait_state, ringing["call"], "CONFIRMED", timeout=10)
        wavs = {name: tmp_path / f"{name}.wav" for name in ("alice", "bob", "dave")}
        await run(alice.media_start, outgoing, 440, str(wavs["alice"]))
        await run(bob.media_start, incoming, 1000, str(wavs["bob"]))
        await run(dave.media_start, ringing["call"], 1700, str(wavs["dave"]))
        await asyncio.sleep(3.0)
        for agent, call in ((alice, outgoing), (bob, incoming), (dave, ringing["call"])):
            await run(agent.media_stop, call)
        await run(alice.hangup, outgoing)
        await run(alice.wait_state, outgoing, "DISCONNECTED", timeout=10)
        # the switch ends the supervisor's call with the call it monitored
        await run(dave.wait_state, ringing["call"], "DISCONNECTED", timeout=10)
        await idle(sw)
    finally:
        for agent in made:
            await asyncio.to_thread(agent.close)

    assert share(wavs["alice"], 1000, 1.0) > 0.8 and share(wavs["alice"], 1700, 1.0) < 0.01
    assert share(wavs["bob"], 440, 1.0) > 0.2 and share(wavs["bob"], 1700, 1.0) > 0.2
    assert share(wavs["dave"], 440, 1.0) > 0.2 and share(wavs["dave"], 1000, 1.0) > 0.2
