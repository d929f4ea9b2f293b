"""Atomic reload of the dialplan on a running switch, with real calls.

The plan sends number 200 to a short prompt and then a queue whose name says which version
of the plan the call ran under. A call that started under version 1 finishes under version 1
although version 2 was loaded while it listened to the prompt; new calls take version 2. A
broken plan is refused over ``POST /api/reload`` with every error (file:line:col) and the
running plan stays; SIGHUP loads the next good one.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.pjua import UserAgent
from tests.interop.servers import ServerProcess, softswitch_server

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

ROOT = Path(__file__).resolve().parents[2]


def plan(version: str, prompt_seconds: str = "long") -> str:
    return f"""
prompts: prompts
contexts:
  internal:
    rules:
      - match: "200"
        actions:
          - answer
          - play: {prompt_seconds}
          - queue: {{name: {version}}}
      - match: "_10XX"
        actions:
          - bridge: "${{number}}"
"""


BROKEN = """
prompts: prompts
contexts:
  internal:
    rules:
      - match: "200"
        actions:
          - answer
          - bridge: {to: "1002", timeout: "30s"}
          - queue: {name: v3, data_class: secret}
"""


@pytest.fixture
def reloading(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    folder = tmp_path / "plan"
    (folder / "prompts").mkdir(parents=True)
    # a 4 s prompt: long enough to reload the plan while a call listens to it
    closed = ROOT / "configs" / "prompts" / "demo" / "closed.wav"
    shutil.copy(closed, folder / "prompts" / "long.wav")
    path = folder / "dialplan.yaml"
    path.write_text(plan("v1"), encoding="utf-8")
    server = softswitch_server(
        tmp_path,
        # (no queues: this plan has none of the demo's prompts)
        overrides={"dialplan.file": str(path), "dialplan.at": None, "acd": {}},
    )
    server.start(timeout=15.0)
    try:
        yield server, path
    finally:
        server.stop()


def post_reload(server: ServerProcess) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}/api/reload", data=b"", method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def waiting_in(
    server: ServerProcess, queue: str, count: int = 1, timeout: float = 12.0
) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        callers = server.api(f"/api/queues/{queue}")["callers"]
        if len(callers) >= count or time.monotonic() > deadline:
            return callers
        time.sleep(0.2)


def test_calls_keep_their_plan_and_a_broken_plan_is_refused(
    reloading: tuple[ServerProcess, Path], user_agents: Callable[[str], UserAgent]
) -> None:
    server, path = reloading
    alice, bob = user_agents("1001"), user_agents("1002")
    for ua, user in ((alice, "1001"), (bob, "1002")):
        assert ua.register(user, server.users[user], server.address, server.domain) == 200
    first = alice.call("1001", f"sip:200@{server.domain}")
    alice.wait_state(first, "CONFIRMED", timeout=10)
    # version 2 while the first call still hears the prompt of version 1
    path.write_text(plan("v2"), encoding="utf-8")
    status, answer = post_reload(server)
    assert status == 200 and answer["ok"] is True, answer
    assert answer["contexts"] == 1 and answer["rules"] == 2 and answer["seconds"] < 2
    second = bob.call("1002", f"sip:200@{server.domain}")
    bob.wait_state(second, "CONFIRMED", timeout=10)
    assert [c["caller"] for c in waiting_in(server, "v1")] == ["1001"]
    assert [c["caller"] for c in waiting_in(server, "v2")] == ["1002"]

    # a broken plan: refused with every error, and the running plan stays
    path.write_text(BROKEN, encoding="utf-8")
    status, answer = post_reload(server)
    assert status == 422 and answer["ok"] is False
    assert answer["errors"] == [
        f"{path}:9:43: contexts.internal.rules[0].actions[1].bridge.timeout: "
        'expected seconds (integer > 0), got "30s"',
        f"{path}:10:43: contexts.internal.rules[0].actions[2].queue.data_class: "
        'expected one of "general", "personal", got "secret"',
    ]
    assert "dialplan" in server.stderr_text() and "not reloaded: 2 error(s)" in (
        server.stderr_text()
    )
    alice.hangup(first)
    alice.wait_state(first, "DISCONNECTED", timeout=10)
    third = alice.call("1001", f"sip:200@{server.domain}")
    alice.wait_state(third, "CONFIRMED", timeout=10)
    assert sorted(c["caller"] for c in waiting_in(server, "v2", 2)) == ["1001", "1002"]

    # SIGHUP: the next good version
    path.write_text(plan("v4"), encoding="utf-8")
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reloaded in" not in server.stderr_text().split("not reloaded")[-1]:
        assert time.monotonic() < deadline, server.stderr_text()[-2000:]
        time.sleep(0.1)
    alice.hangup(third)
    alice.wait_state(third, "DISCONNECTED", timeout=10)
    fourth = alice.call("1001", f"sip:200@{server.domain}")
    alice.wait_state(fourth, "CONFIRMED", timeout=10)
    assert [c["caller"] for c in waiting_in(server, "v4")] == ["1001"]
    for ua, call in ((alice, fourth), (bob, second)):
        ua.hangup(call)
        ua.wait_state(call, "DISCONNECTED", timeout=10)
    held, doc = server.wait_idle(timeout=10)
    assert held, doc
