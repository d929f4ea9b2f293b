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
    assert out.returncode == 3, out.stderr  # the transfer reaches no rule: refused
    assert out.stdout.splitlines() == [
        "call from 0312345678 to 100 at 2026-11-24T22:00:00+09:00",
        "context public",
        f"  rule '100' ({plan}:43:9): skipped, Tue 2026-11-24 22:00 JST is outside hours office",
        f"  rule '100' ({plan}:95:9): taken",
        "actions of the rule in context public:",
        f"  {plan}:97:13: goto(context='closed', number='100')",
        "    context closed",
        f"      rule '_X!' ({plan}:116:9): skipped, Tue 2026-11-24 22:00 JST is within hours "
        "night_shift",
        f"      rule '_X!' ({plan}:122:9): skipped, 2026-11-24 is not in calendar holidays",
        f"      rule '_X!' ({plan}:125:9): taken",
        "    actions of the rule in context closed:",
        f"      {plan}:127:13: transfer(to='1004')",
        "        context public",
        f"          rule '_1XXX' ({plan}:100:9): skipped, caller name None does not match "
        "'/(?i).*partner.*/'",
        "          context features",
        "        no rule for '1004': the call is refused (404)",
        "        would answer 404 Not Found: no route",
        "path: goto closed > transfer 1004",
    ]


DEMO = "configs/dialplan/demo.yaml"
CRM = 'crm={"member": "12345678", "name": "Hanako Yamada", "tier": "gold"}'


def demo_route(at: str, *more: str) -> list[str]:
    out = softswitch(
        "route", "--plan", DEMO, "--context", "internal", "--from", "1001", "--to", "100",
        "--at", at, *more,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_route_demo_plan_account_changes_with_an_identity_check() -> None:
    lines = demo_route("2026-11-24T10:00+09:00", "--digits", "2,12345678#", "--stub", CRM)
    assert lines == [
        "call from 1001 to 100 at 2026-11-24T10:00:00+09:00",
        "context internal",
        "  context main",
        f"    rule '100' ({DEMO}:48:9): taken",
        "actions of the rule in context main:",
        f"  {DEMO}:51:13: answer",
        f"  {DEMO}:52:13: menu(prompt='demo/main-menu', options=['0', '1', '2'], timeout=4, "
        "retries=1, invalid_prompt='demo/invalid', timeout_prompt='demo/no-input', "
        "on_failure='2 action(s)')",
        "    key 2",
        f"    {DEMO}:64:21: set(variables={{'reason': 'account'}})",
        "      reason = 'account'",
        f"    {DEMO}:65:21: goto(context='identity', number='100')",
        "      context identity",
        f"        rule '100' ({DEMO}:84:9): taken",
        "      actions of the rule in context identity:",
        f"        {DEMO}:86:13: gather(prompt='demo/member-number', into='member', "
        "min_digits=4, max_digits=10, timeout=6, inter_digit_timeout=4, sensitive=True, "
        "on_failure='2 action(s)')",
        "          member = 8 digit(s), sensitive (terminator)",
        f"        {DEMO}:98:13: lookup(service='crm', path='/members/${{member}}', into='crm', "
        "screen_pop=['crm_name', 'crm_tier', 'crm_member'], sensitive='crm_member', "
        "on_failure='3 action(s)')",
        "          GET http://127.0.0.1:8080/api/demo/crm/members/**** (2 s)",
        "          answered: crm_member='****', crm_name='Hanako Yamada', crm_tier='gold'",
        f"        {DEMO}:110:13: play(prompt='demo/hold-account')",
        f"        {DEMO}:111:13: queue(name='account', priority=5, data_class='personal')",
        "          would wait in queue account (priority 5, data_class personal); screen pop: "
        "crm_name='Hanako Yamada', crm_tier='gold', crm_member='****'",
        "          left the queue: dry run",
        "path: menu demo/main-menu: 2 > goto identity > gather member > lookup crm: ok > "
        "queue account",
    ]
    assert not any("12345678" in line for line in lines)  # personal data are never shown


def test_route_demo_plan_other_paths() -> None:
    at = "2026-11-24T10:00+09:00"
    general = demo_route(at, "--digits", "1")
    assert general[-3:] == [
        "      would wait in queue general (priority 0, data_class general); screen pop: nothing",
        "      left the queue: dry run",
        "path: menu demo/main-menu: 1 > queue general",
    ]
    silent = demo_route(at)  # nothing pressed: the menu once more, then goodbye
    assert silent[-8:] == [
        "    no key in 4 s (try 1 of 2)",
        "    play demo/no-input",
        "    no key in 4 s (try 2 of 2)",
        "    no valid key: on_failure",
        f"    {DEMO}:71:19: play(prompt='demo/goodbye')",
        f"    {DEMO}:72:19: hangup",
        "      would hang up (BYE): dialplan: normal",
        "path: menu demo/main-menu: no choice > hangup normal",
    ]
    short = demo_route(at, "--digits", "2,99#")
    assert "          member: 2 digit(s), sensitive, fewer than 4 (terminator)" in short
    assert short[-1] == (
        "path: menu demo/main-menu: 2 > goto identity > gather member: failed > hangup normal"
    )
    unknown = demo_route(at, "--digits", "2,11112222#", "--stub", "crm=fail")
    assert "          failed: stubbed to fail" in unknown
    assert unknown[-2:] == [
        "            would hang up (BYE): dialplan: rejected",
        "path: menu demo/main-menu: 2 > goto identity > gather member > lookup crm: failed > "
        "hangup rejected",
    ]
    night = demo_route("2026-11-24T22:00+09:00")
    assert (
        f"    rule '100' ({DEMO}:48:9): skipped, Tue 2026-11-24 22:00 JST is outside hours open"
    ) in night
    assert "    would record a message of up to 120 s into mailbox main" in night
    assert night[-1] == "path: voicemail main"
    holiday = demo_route("2026-12-31T10:00+09:00")
    assert f"    rule '100' ({DEMO}:48:9): skipped, 2026-12-31 is in calendar holidays" in holiday
    assert holiday[-1] == "path: voicemail main"


def test_route_rejects_bad_digits_and_stubs() -> None:
    base = ("route", "--plan", DEMO, "--from", "1001", "--to", "100")
    out = softswitch(*base, "--digits", "2,12x")
    assert out.returncode == 2 and "'12x' holds a key that is not" in out.stderr
    out = softswitch(*base, "--stub", "nope={}")
    assert out.returncode == 2 and "the plan has no service 'nope'" in out.stderr
    out = softswitch(*base, "--stub", "crm=[1]")
    assert out.returncode == 2 and "expected a JSON object" in out.stderr


def test_route_refuses_unknown_numbers_and_bad_times() -> None:
    plan = "configs/dialplan/example.yaml"
    out = softswitch("route", "--plan", plan, "--from", "1", "--to", "555", "--at", "2026-11-24")
    assert out.returncode == 3
    assert out.stdout.splitlines()[-2:] == [
        "no rule for '555': the call is refused (404)",
        "would answer 404 Not Found: no route",
    ]
    bad = softswitch("route", "--plan", plan, "--from", "1", "--to", "100", "--at", "tomorrow")
    assert bad.returncode == 2 and "expected ISO 8601" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_check_validates_a_dialplan_file() -> None:
    out = softswitch("check", "configs/dialplan/example.yaml")
    assert out.returncode == 0 and out.stdout.strip() == "configs/dialplan/example.yaml: OK"


def test_run_refuses_a_broken_dialplan_or_a_context_it_lacks(tmp_path: Path) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text(
        "dialplan: {file: plan.yaml}\n"
        "users:\n"
        "  - {username: '1001', password: secret1001}\n"
        "  - {username: '1002', password: secret1002, context: nowhere}\n",
        encoding="utf-8",
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        'contexts:\n  internal:\n    rules:\n      - match: "1"\n'
        '        actions: [{bridge: {to: "1", timeout: "30s"}}]\n',
        encoding="utf-8",
    )
    broken = softswitch("run", "-c", str(settings), "--sip-port", "0", "--http-port", "0")
    assert broken.returncode == 1
    assert broken.stderr.splitlines() == [
        f"{plan}:5:47: contexts.internal.rules[0].actions[0].bridge.timeout: "
        'expected seconds (integer > 0), got "30s"',
        f"{settings}: 1 error(s); the switch was not started",
    ]
    plan.write_text(plan.read_text(encoding="utf-8").replace('"30s"', "30"), encoding="utf-8")
    lacking = softswitch("run", "-c", str(settings), "--sip-port", "0", "--http-port", "0")
    assert lacking.returncode == 1
    assert lacking.stderr.splitlines() == [
        f"{settings}:4:55: users[1].context: "
        'no context "nowhere" in the dialplan (it has internal)',
        f"{settings}: 1 error(s); the switch was not started",
    ]
