"""The ACD with real phones: pjsua2 agents signed in through the agent API take queue calls
from a pjsua2 caller who went through the demo IVR.

The demo configuration (``configs/default.yaml``): queue ``general`` (menu key 1) serves alice
(1001, a home agent, penalty 0) before bob (1002, onsite, penalty 1); queue ``account`` (key 2
and a member number) carries personal data and rings all its onsite agents (bob only, though
alice is a member too). The switch routes as if it were a Tuesday morning in Tokyo
(``dialplan.at``), inside the demo's opening hours.

Checked: who rings (by penalty, by data class), two-way audio by frequency, a supervisor who
listens (feature code) hears both parties and is heard by neither, one who whispers (started
from the API: the switch calls the supervisor's phone) is heard by the agent only, an offer the
agent declines returns the call to the queue for the next agent, the wrap-up code given over
the API, the queue events and call detail records the switch keeps, an agent whose phone
unregisters made not ready, a supervisor forcing an agent not ready, and a reload of the
queues and agents.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from media.player import load_prompt
from tests.interop.api import call_record, live_call_id
from tests.interop.audio import correlation, dominant_hz, heard_samples, spectrum_share
from tests.interop.pjua import PjuaError, UserAgent
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

SWITCH_OVERRIDES = {"dialplan.at": "2026-11-24T10:00+09:00"}
PROMPTS = Path(__file__).resolve().parents[2] / "configs" / "prompts" / "demo"

PASSWORDS = {"alice": "1001", "bob": "1002", "dave": "1004"}


def call_api(
    switch: ServerProcess, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    """One request to the switch's HTTP API: (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{switch.host}:{switch.http_port}{path}", data=data, method=method
    )
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5.0) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def sign_in(switch: ServerProcess, agent: str) -> str:
    user = PASSWORDS[agent]
    status, body = call_api(
        switch, "POST", "/api/agent/login", {"agent": agent, "password": switch.users[user]}
    )
    assert status == 200, body
    return str(body["token"])


def agent_state(switch: ServerProcess, token: str) -> dict[str, Any]:
    status, body = call_api(switch, "GET", "/api/agent/me", token=token)
    assert status == 200, body
    return body.get("agent", body)


def set_ready(switch: ServerProcess, token: str) -> None:
    status, body = call_api(switch, "POST", "/api/agent/state", {"state": "ready"}, token)
    assert status == 200, body


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def registered(agents: Callable[[str], UserAgent], switch: ServerProcess, user: str) -> UserAgent:
    ua = agents(user)
    assert ua.register(user, switch.users[user], switch.address, switch.domain) == 200
    return ua


def no_incoming(ua: UserAgent, user: str, seconds: float) -> bool:
    try:
        ua.wait_incoming(user, timeout=seconds)
    except PjuaError:
        return True
    return False


def into_the_menu(switch: ServerProcess, ua: UserAgent, user: str, key: str) -> int:
    """``user`` calls the demo IVR (100) and presses ``key`` once the menu plays."""
    call = ua.call(user, f"sip:100@{switch.domain}")
    ua.wait_state(call, "CONFIRMED", timeout=10)
    time.sleep(1.0)
    ua.dtmf(call, key)
    return call


def queue_events(switch: ServerProcess, query: str) -> list[dict[str, Any]]:
    return list(switch.api(f"/api/queue-events?{query}")["events"])


def test_queue_calls_reach_agents_by_penalty_and_data_class(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice = registered(user_agents, switch, "1001")
    bob = registered(user_agents, switch, "1002")
    dave = registered(user_agents, switch, "1004")
    carol = registered(user_agents, switch, "1003")
    tokens = {name: sign_in(switch, name) for name in ("alice", "bob")}
    for token in tokens.values():
        set_ready(switch, token)
    assert agent_state(switch, tokens["alice"])["state"] == "ready"

    # -- a general call: alice (penalty 0) rings, bob (penalty 1) does not -------------------
    call = into_the_menu(switch, carol, "1003", "1")
    offered = alice.wait_incoming("1001", timeout=15)
    incoming = int(offered["call"])
    assert no_incoming(bob, "1002", 0.5)
    assert agent_state(switch, tokens["alice"])["state"] in ("reserved", "ringing")
    alice.answer(incoming, 200)
    alice.wait_state(incoming, "CONFIRMED", timeout=10)
    call_id = live_call_id(switch, "1003")
    assert wait_for(lambda: agent_state(switch, tokens["alice"])["state"] == "on_call", 5)

    carol.media_start(call, 440, str(tmp_path / "carol.wav"))
    alice.media_start(incoming, 1000, str(tmp_path / "alice.wav"))
    listen = dave.call("1004", f"sip:*511001@{switch.domain}")  # the supervisor listens in
    dave.wait_state(listen, "CONFIRMED", timeout=10)
    dave.media_start(listen, 1700, str(tmp_path / "dave.wav"))
    time.sleep(3.5)
    for ua, leg in ((carol, call), (alice, incoming), (dave, listen)):
        ua.media_stop(leg)
    carol.hangup(call)
    carol.wait_state(call, "DISCONNECTED", timeout=10)
    alice.wait_state(incoming, "DISCONNECTED", timeout=10)
    dave.wait_state(listen, "DISCONNECTED", timeout=10)

    carol_hears, _ = dominant_hz(tmp_path / "carol.wav", 440)
    alice_hears, _ = dominant_hz(tmp_path / "alice.wav", 1000)
    assert abs(carol_hears - 1000) < 20 and abs(alice_hears - 440) < 20
    for path in ("carol.wav", "alice.wav"):  # the listener is heard by neither party
        assert spectrum_share(heard_samples(tmp_path / path), 8000, 1700) < 0.01, path
    supervisor = heard_samples(tmp_path / "dave.wav")
    assert spectrum_share(supervisor, 8000, 440) > 0.15
    assert spectrum_share(supervisor, 8000, 1000) > 0.15

    # wrap-up: the general queue's 10 s, ended early with a disposition code
    assert wait_for(lambda: agent_state(switch, tokens["alice"])["state"] == "wrap_up", 5)
    status, body = call_api(
        switch, "POST", "/api/agent/wrap-up", {"code": "nonsense"}, tokens["alice"]
    )
    assert status == 400, body
    note = {"code": "sale", "note": "wants the premium plan; call back on Monday"}
    status, body = call_api(switch, "POST", "/api/agent/wrap-up", note, tokens["alice"])
    assert status == 200, body
    assert agent_state(switch, tokens["alice"])["state"] == "ready"

    # -- a personal-data call: only the onsite agent rings, though alice is ready ------------
    call = into_the_menu(switch, carol, "1003", "2")
    time.sleep(1.5)
    carol.dtmf(call, "12345678#")
    offered = bob.wait_incoming("1002", timeout=15)
    assert no_incoming(alice, "1001", 1.0)
    personal = live_call_id(switch, "1003")
    incoming = int(offered["call"])
    bob.answer(incoming, 200)
    bob.wait_state(incoming, "CONFIRMED", timeout=10)
    bob.hangup(incoming)  # the agent ends this one
    carol.wait_state(call, "DISCONNECTED", timeout=10)
    assert wait_for(lambda: agent_state(switch, tokens["bob"])["state"] == "wrap_up", 5)
    status, body = call_api(
        switch, "POST", "/api/agent/wrap-up", {"code": "resolved"}, tokens["bob"]
    )
    assert status == 200, body

    # -- what the switch kept ----------------------------------------------------------------
    def general_events() -> list[tuple[str, str | None]]:
        return [(e["event"], e["agent"]) for e in queue_events(switch, f"call_id={call_id}")]

    expected = [
        ("entered", None),
        ("offered", "alice"),
        ("connected", "alice"),
        ("completed_caller", "alice"),
        ("wrap_up", "alice"),
    ]
    assert wait_for(lambda: general_events() == expected, 5), general_events()
    (wrap,) = [e for e in queue_events(switch, f"call_id={call_id}") if e["event"] == "wrap_up"]
    assert wrap["details"]["code"] == "sale"
    wait_for(lambda: len(queue_events(switch, f"call_id={personal}")) >= 5, 5)
    events = queue_events(switch, f"call_id={personal}")
    assert [(e["event"], e["agent"]) for e in events][:4] == [
        ("entered", None),
        ("offered", "bob"),
        ("connected", "bob"),
        ("completed_agent", "bob"),
    ]
    assert events[0]["queue"] == "account" and events[0]["details"]["data_class"] == "personal"
    assert not [e for e in events if e["agent"] == "alice"]

    record = call_record(switch, call_id)
    assert (record["queue"], record["agent"]) == ("general", "alice")
    assert record["wait"] is not None and record["wait"] > 0
    assert wait_for(lambda: call_record(switch, call_id)["wrap_up_code"] == "sale", 5)
    assert wait_for(lambda: call_record(switch, call_id)["wrap_up_note"] == note["note"], 5), (
        call_record(switch, call_id),
        switch.stderr_text()[-3000:],
    )
    assert call_record(switch, personal)["agent"] == "bob"
    assert wait_for(lambda: call_record(switch, personal)["wrap_up_code"] == "resolved", 5)
    rows = switch.api("/api/cdrs?queue=general&agent=alice")["records"]
    assert [r["call_id"] for r in rows] == [call_id]
    held, doc = switch.wait_idle()
    assert held, doc


def test_a_declined_offer_goes_to_the_next_agent_and_counts_a_miss(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice = registered(user_agents, switch, "1001")
    bob = registered(user_agents, switch, "1002")
    carol = registered(user_agents, switch, "1003")
    dave = registered(user_agents, switch, "1004")
    tokens = {name: sign_in(switch, name) for name in ("alice", "bob")}
    for token in tokens.values():
        wait_for(lambda t=token: agent_state(switch, t)["state"] in ("ready", "not_ready"), 15)
        if agent_state(switch, token)["state"] != "ready":
            set_ready(switch, token)

    call = into_the_menu(switch, carol, "1003", "1")
    first = int(alice.wait_incoming("1001", timeout=15)["call"])
    alice.hangup(first, 486)  # alice declines: busy
    second = int(bob.wait_incoming("1002", timeout=10)["call"])
    bob.answer(second, 200)
    bob.wait_state(second, "CONFIRMED", timeout=10)
    call_id = live_call_id(switch, "1003")
    me = agent_state(switch, tokens["alice"])
    assert me["state"] == "ready" and me["misses"] == 1, me

    # the supervisor whispers to bob from the API: the switch calls dave's phone
    supervisor = sign_in(switch, "dave")
    body = {"agent": "bob", "mode": "whisper"}
    with ThreadPoolExecutor(1) as pool:
        asked = pool.submit(call_api, switch, "POST", "/api/supervisor/monitor", body, supervisor)
        ringing = int(dave.wait_incoming("1004", timeout=10)["call"])
        dave.answer(ringing, 200)
        status, answer = asked.result(timeout=10)
    assert status == 200, answer
    dave.wait_state(ringing, "CONFIRMED", timeout=5)
    carol.media_start(call, 440, str(tmp_path / "carol.wav"))
    bob.media_start(second, 1000, str(tmp_path / "bob.wav"))
    dave.media_start(ringing, 1700, str(tmp_path / "dave.wav"))
    time.sleep(3.0)
    for ua, leg in ((carol, call), (bob, second), (dave, ringing)):
        ua.media_stop(leg)
    bob_hears = heard_samples(tmp_path / "bob.wav")
    assert spectrum_share(bob_hears, 8000, 1700) > 0.1  # the whisper reaches the agent
    assert spectrum_share(heard_samples(tmp_path / "carol.wav"), 8000, 1700) < 0.01
    dave_hears = heard_samples(tmp_path / "dave.wav")
    assert spectrum_share(dave_hears, 8000, 440) > 0.15
    assert spectrum_share(dave_hears, 8000, 1000) > 0.15
    status, answer = call_api(
        switch, "POST", "/api/supervisor/monitor", {"agent": "alice"}, supervisor
    )
    assert status == 404 and "no call" in answer["error"], answer  # alice is on no call
    carol.hangup(call)
    dave.wait_state(ringing, "DISCONNECTED", timeout=10)  # ends with the call it monitored
    bob.wait_state(second, "DISCONNECTED", timeout=10)
    wait_for(lambda: len(queue_events(switch, f"call_id={call_id}")) >= 5, 5)
    kinds = [(e["event"], e["agent"]) for e in queue_events(switch, f"call_id={call_id}")]
    assert kinds[:5] == [
        ("entered", None),
        ("offered", "alice"),
        ("missed", "alice"),
        ("offered", "bob"),
        ("connected", "bob"),
    ], kinds
    (missed,) = [e for e in queue_events(switch, f"call_id={call_id}") if e["event"] == "missed"]
    assert missed["details"]["why"] == "busy"
    held, doc = switch.wait_idle()
    assert held, doc

    # alice's phone goes away: not ready (unreachable), and the supervisor sees it
    assert alice.unregister("1001") == 200
    me = wait_for(lambda: agent_state(switch, tokens["alice"])["reason"] == "unreachable", 5)
    assert me, agent_state(switch, tokens["alice"])
    supervisor = sign_in(switch, "dave")
    status, body = call_api(switch, "GET", "/api/supervisor/agents", token=supervisor)
    assert status == 200, body
    (seen,) = [a for a in body["agents"] if a["id"] == "alice"]
    assert (seen["state"], seen["reason"]) == ("not_ready", "unreachable")
    status, body = call_api(switch, "GET", "/api/supervisor/agents", token=tokens["bob"])
    assert status == 403, body  # an agent's token is not a supervisor's
    # the supervisor takes bob out of the queue
    status, body = call_api(
        switch, "POST", "/api/supervisor/agents/bob/state", {"state": "not_ready"}, supervisor
    )
    assert status == 200, body
    state = wait_for(lambda: agent_state(switch, tokens["bob"])["state"] != "wrap_up", 15)
    assert state
    bob_now = agent_state(switch, tokens["bob"])
    assert (bob_now["state"], bob_now["reason"]) == ("not_ready", "supervisor"), bob_now


def test_reload_takes_new_agents_and_keeps_the_old_settings_when_broken(
    switch: ServerProcess,
) -> None:
    config = switch.workdir / "softswitch.yaml"
    original = config.read_text(encoding="utf-8")
    marker = "  agents:\n"
    assert marker in original
    erin = '    - {id: erin, name: Erin, user: "1003", location: onsite, queues: {general: 0}}\n'
    try:
        config.write_text(original.replace(marker, marker + erin, 1), encoding="utf-8")
        status, body = call_api(switch, "POST", "/api/reload")
        assert status == 200 and body["ok"], body
        supervisor = sign_in(switch, "dave")
        status, body = call_api(switch, "GET", "/api/supervisor/agents", token=supervisor)
        (erin_view,) = [a for a in body["agents"] if a["id"] == "erin"]
        assert erin_view["state"] == "logged_out" and erin_view["queues"] == {"general": 0}
        status, body = call_api(
            switch,
            "POST",
            "/api/agent/login",
            {"agent": "erin", "password": switch.users["1003"]},
        )
        assert status == 200, body

        broken = erin.replace("general: 0", "nowhere: 0")
        config.write_text(original.replace(marker, marker + broken, 1), encoding="utf-8")
        status, body = call_api(switch, "POST", "/api/reload")
        assert status == 422 and not body["ok"], body
        (error,) = [e for e in body["errors"] if "nowhere" in e]
        line = original[: original.index(marker)].count("\n") + 2
        assert f"softswitch.yaml:{line}:" in error and 'no queue "nowhere"' in error, error
        status, body = call_api(switch, "GET", "/api/supervisor/agents", token=supervisor)
        (erin_view,) = [a for a in body["agents"] if a["id"] == "erin"]
        assert erin_view["queues"] == {"general": 0}  # the previous settings stay
    finally:
        config.write_text(original, encoding="utf-8")


def test_a_queued_callback_keeps_the_place_then_calls_the_caller_and_rings_the_agent(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice = registered(user_agents, switch, "1001")
    carol = registered(user_agents, switch, "1003")
    token = sign_in(switch, "alice")
    status, body = call_api(
        switch, "POST", "/api/agent/state", {"state": "not_ready", "reason": "break"}, token
    )
    assert status == 200, body
    bob = sign_in(switch, "bob")
    call_api(switch, "POST", "/api/agent/state", {"state": "not_ready", "reason": "lunch"}, bob)

    since = len(switch.stderr_text())
    call = into_the_menu(switch, carol, "1003", "1")
    call_id = live_call_id(switch, "1003")
    assert wait_for(lambda: switch.api("/api/queues/general")["waiting"] == 1, 5)
    carol.dtmf(call, "5")  # call me back
    carol.media_start(call, 300, str(tmp_path / "goodbye.wav"))
    carol.wait_state(call, "DISCONNECTED", timeout=15)  # after "we will call you back"
    carol.media_stop(call)
    goodbye = load_prompt(PROMPTS / "queue-callback.wav").astype(float)
    # (the recording starts just after the key: the prompt from 0.5 s to 2.5 s)
    score = correlation(heard_samples(tmp_path / "goodbye.wav"), goodbye[4000:20000])
    assert score.size and float(score.max()) > 0.6, float(score.max(initial=0))
    (entry,) = switch.api("/api/queues/general")["callers"]
    assert entry["call_id"] == call_id and entry["callback"] is True

    set_ready(switch, token)  # alice is free: the switch calls carol first
    back = int(carol.wait_incoming("1003", timeout=10)["call"])
    carol.answer(back, 200)
    ringing = int(alice.wait_incoming("1001", timeout=10)["call"])
    alice.answer(ringing, 200)
    alice.wait_state(ringing, "CONFIRMED", timeout=10)
    carol.media_start(back, 440, str(tmp_path / "carol.wav"))
    alice.media_start(ringing, 1000, str(tmp_path / "alice.wav"))
    time.sleep(2.5)
    carol.media_stop(back)
    alice.media_stop(ringing)
    alice.hangup(ringing)
    carol.wait_state(back, "DISCONNECTED", timeout=10)
    assert abs(dominant_hz(tmp_path / "carol.wav", 440)[0] - 1000) < 20
    assert abs(dominant_hz(tmp_path / "alice.wav", 1000)[0] - 440) < 20

    def kinds() -> list[tuple[str, str | None]]:
        return [(e["event"], e["agent"]) for e in queue_events(switch, f"call_id={call_id}")]

    wait_for(lambda: len(kinds()) >= 5, 5)
    assert kinds()[:5] == [
        ("entered", None),
        ("callback_requested", None),
        ("offered", "alice"),
        ("connected", "alice"),
        ("completed_agent", "alice"),
    ], kinds()
    assert switch.api("/api/queues/general")["waiting"] == 0
    rows = switch.api("/api/cdrs?queue=general&agent=alice&limit=1")["records"]
    assert rows and rows[0]["caller"] == "callback" and rows[0]["callee"] == "1003"
    log = switch.stderr_text()[since:]
    assert "Traceback" not in log and "failed" not in log, log[-3000:]
    held, doc = switch.wait_idle()
    assert held, doc


def test_two_waiting_callers_go_to_two_agents_in_arrival_order(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent]
) -> None:
    alice = registered(user_agents, switch, "1001")
    bob = registered(user_agents, switch, "1002")
    carol = registered(user_agents, switch, "1003")
    dave = registered(user_agents, switch, "1004")
    tokens = {name: sign_in(switch, name) for name in ("alice", "bob")}
    for token in tokens.values():  # nobody ready while the callers arrive
        status, body = call_api(
            switch, "POST", "/api/agent/state", {"state": "not_ready", "reason": "break"}, token
        )
        assert status == 200, body
    calls = {}
    for ua, user in ((carol, "1003"), (dave, "1004")):  # carol first, then dave
        call = into_the_menu(switch, ua, user, "1")
        calls[user] = call
        waiting = len(calls)
        assert wait_for(lambda n=waiting: switch.api("/api/queues/general")["waiting"] == n, 8)
    callers = switch.api("/api/queues/general")["callers"]
    assert [(c["caller"], c["position"]) for c in callers] == [("1003", 1), ("1004", 2)]

    set_ready(switch, tokens["bob"])  # bob is ready first: he takes the first caller
    first = int(bob.wait_incoming("1002", timeout=10)["call"])
    bob.answer(first, 200)
    bob.wait_state(first, "CONFIRMED", timeout=10)
    set_ready(switch, tokens["alice"])
    second = int(alice.wait_incoming("1001", timeout=10)["call"])
    alice.answer(second, 200)
    alice.wait_state(second, "CONFIRMED", timeout=10)
    assert switch.api("/api/queues/general")["waiting"] == 0
    carol_id, dave_id = live_call_id(switch, "1003"), live_call_id(switch, "1004")
    for ua, call in ((carol, calls["1003"]), (dave, calls["1004"])):
        ua.hangup(call)
        ua.wait_state(call, "DISCONNECTED", timeout=10)
    wait_for(lambda: len(queue_events(switch, f"call_id={dave_id}")) >= 4, 5)
    connected = {
        e["call_id"]: e["agent"]
        for e in queue_events(switch, "event=connected&queue=general")
        if e["call_id"] in (carol_id, dave_id)
    }
    assert connected == {carol_id: "bob", dave_id: "alice"}
    held, doc = switch.wait_idle()
    assert held, doc


def test_an_agent_transfers_a_queue_call_and_goes_to_wrap_up(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    """Alice takes a queue call and transfers the customer to bob (1002) by REFER: bob rings
    and talks with carol, alice's part ends (the queue log says transferred, to whom) and
    she goes to wrap-up."""
    alice = registered(user_agents, switch, "1001")
    bob = registered(user_agents, switch, "1002")
    carol = registered(user_agents, switch, "1003")
    token = sign_in(switch, "alice")
    set_ready(switch, token)
    call = into_the_menu(switch, carol, "1003", "1")
    offered = int(alice.wait_incoming("1001", timeout=15)["call"])
    alice.answer(offered, 200)
    alice.wait_state(offered, "CONFIRMED", timeout=10)
    carol_id = live_call_id(switch, "1003")

    alice.xfer(offered, f"sip:1002@{switch.domain}")
    rung = int(bob.wait_incoming("1002", timeout=10)["call"])
    bob.answer(rung, 200)
    bob.wait_state(rung, "CONFIRMED", timeout=10)
    alice.wait_state(offered, "DISCONNECTED", timeout=10)

    heard_by_carol, heard_by_bob = tmp_path / "carol.wav", tmp_path / "bob.wav"
    carol.media_start(call, 440, str(heard_by_carol))
    bob.media_start(rung, 1000, str(heard_by_bob))
    time.sleep(2.5)
    carol.media_stop(call)
    bob.media_stop(rung)
    hz, above = dominant_hz(heard_by_bob, own_hz=1000)
    assert abs(hz - 440) < 15 and above > 20, (hz, above)
    hz, above = dominant_hz(heard_by_carol, own_hz=440)
    assert abs(hz - 1000) < 15 and above > 20, (hz, above)

    assert wait_for(lambda: agent_state(switch, token)["state"] == "wrap_up", 5)
    (moved,) = queue_events(switch, f"call_id={carol_id}&event=transferred")
    assert moved["agent"] == "alice" and moved["queue"] == "general"
    assert "1002" in str(moved["details"]["target"])
    carol.hangup(call)
    bob.wait_state(rung, "DISCONNECTED", timeout=10)
    held, doc = switch.wait_idle()
    assert held, doc
