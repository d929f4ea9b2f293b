"""The ``softswitch`` command as an admin runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEVERAL = ROOT / "tests" / "data" / "configs" / "several"


def softswitch(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "softswitch", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_check_accepts_the_demo_config() -> None:
    result = softswitch("check", "configs/default.yaml")
    assert result.returncode == 0, result.stderr
    assert "configs/default.yaml: OK" in result.stdout


def test_check_lists_every_error_and_exits_non_zero() -> None:
    result = softswitch("check", "several_mistakes.yaml", cwd=SEVERAL)
    expected = (SEVERAL / "several_mistakes.expected").read_text().splitlines()
    assert result.returncode == 1
    assert result.stdout.splitlines() == expected
    assert "Traceback" not in result.stderr


def test_run_refuses_a_broken_config_without_a_traceback() -> None:
    result = softswitch("run", "-c", "several_mistakes.yaml", cwd=SEVERAL)
    assert result.returncode == 1
    expected = (SEVERAL / "several_mistakes.expected").read_text().splitlines()
    for line in expected:
        assert line in result.stderr
    assert "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_flags_override_the_file_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    sip, http = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "softswitch", "run", "-c", str(ROOT / "configs/default.yaml"),
         "--sip-port", str(sip), "--http-port", str(http), "--bind", "127.0.0.1"],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=1) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert f"udp:127.0.0.1:{sip}" in body and f"tcp:127.0.0.1:{sip}" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "shutting down" in log and "stopped" in log
        assert (tmp_path / "var" / "softswitch.db").exists()  # the binding store
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_route_traces_a_call_through_the_example_plan_step_by_step() -> None:
    plan = "configs/dialplan/example.yaml"
    out = softswitch(
        "route", "--plan", plan, "--from", "0312345678", "--to", "100",
        "--at", "2026-11-24T22:00+09:00",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "call from 0312345678 to 100 at 2026-11-24T22:00:00+09:00",
        "context public",
        f"  rule '100' ({plan}:43:9): skipped, Tue 2026-11-24 22:00 JST is outside hours office",
        f"  rule '100' ({plan}:95:9): taken",
        "actions of the rule in context public:",
        f"  {plan}:97:13: goto(context='closed', number='100')",
        "goto: 100 in context closed",
        "context closed",
        f"  rule '_X!' ({plan}:116:9): skipped, Tue 2026-11-24 22:00 JST is within hours "
        "night_shift",
        f"  rule '_X!' ({plan}:122:9): skipped, 2026-11-24 is not in calendar holidays",
        f"  rule '_X!' ({plan}:125:9): taken",
        "actions of the rule in context closed:",
        f"  {plan}:127:13: transfer(to='1004')",
    ]


def test_route_refuses_unknown_numbers_and_bad_times() -> None:
    plan = "configs/dialplan/example.yaml"
    out = softswitch("route", "--plan", plan, "--from", "1", "--to", "555", "--at", "2026-11-24")
    assert out.returncode == 3
    assert out.stdout.splitlines()[-1] == "no rule for '555': the call is refused (404)"
    bad = softswitch("route", "--plan", plan, "--from", "1", "--to", "100", "--at", "tomorrow")
    assert bad.returncode == 2 and "expected ISO 8601" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_check_validates_a_dialplan_file() -> None:
    out = softswitch("check", "configs/dialplan/example.yaml")
    assert out.returncode == 0 and out.stdout.strip() == "configs/dialplan/example.yaml: OK"
