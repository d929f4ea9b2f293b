"""Concurrent callers in IVR menus on one core, and the reload time of a 10,000-rule dialplan.

**IVR callers.** The switch (``python -m softswitch``, pinned to CPU 1 with ``taskset``) runs
with ``tools/bench/ivr_plan.yaml`` as its dialplan: number 100 is answered and goes to a menu
whose prompt (about 75 s of the demo prompts) restarts on every key, so a caller hears a prompt
for as long as it stays. SIPp on CPU 0 places N calls (``tools/sipp/uac_pcap_dtmf.xml``:
INVITE, 407, INVITE with credentials, 200, ACK, media, BYE) at ``--rate`` calls per second and
holds each one until all N are up and a measuring window has passed. Each caller sends G.711
RTP at 50 packets/s: a capture that starts like ``tools/sipp/pcap/dtmf_rfc4733.pcap`` (300 ms
of a quiet tone, then the digits 1 5 9 # 0 * as RFC 4733 telephone-events) and then goes on
with the tone for the whole call, so the switch's digit detection sees every packet of every
leg while it plays the prompt to it (50 packets/s out). In the window the bench reads:

- the switch's CPU share of its core: utime + stime of its process (/proc/PID/stat) over the
  window's wall time;
- per leg, the RTP packets the switch sent (the prompt) and received (the caller's audio) per
  second, from ``GET /api/calls`` (media counters) read at both ends of the window;
- whether every call is in the menu: answered, in context ``ivr`` with ``goto ivr`` in its
  dialplan path (``/api/calls``), and whether every call's digits were recognised (the call's
  ``digits``: 1 5 9 # 0 *; the switch's log has a ``DTMF`` line for each, counted as well);
- ``GET /healthz`` latency every 0.25 s (how promptly the event loop answers under the load).

A step **passes** when SIPp completed all N calls without a failure, all N were in the menu
during the window with all their digits recognised, the switch used < 90 % of its core, and
it sent the prompt at >= 49 packets/s on every leg (and received >= 49 packets/s from every
caller). The baseline, measured at every N in the same run, is the same N callers with the
same capture dialling 1002 instead: the switch bridges them to a SIPp UAS registered as 1002
and relays their RTP without decoding. Both cases carry the same packets (50/s in and 50/s out
per caller); the ratio IVR / relay of CPU is the cost of playing prompts and running a menu
instead of relaying. Each step starts a fresh switch; before each the bench waits (up to 10 s,
60 s in all) for both cores to be nearly idle, and a failing step whose event loop waited for
its CPU (another process had it) runs once more. A step whose SIPp used > 90 % of its core is
generator-bound and ends the ramp. The steps (the switch, the callers, the window's readings,
the pass rule, the ramp) are those of ``tools/bench/switch_run.py``, shared with the ACD bench.

**Reload.** A plan of 10,001 rules: the 10,000 match strings of ``tools/bench/routing.py``
(7,000 exact numbers, 2,990 Asterisk patterns, 10 regexes, fixed seed) in one context with
actions mixed (bridge, answer + play + hangup, queue, a two-option menu, set + voicemail),
included by ``internal``. Timed as ``softswitch.apps.runtime.compile_plan`` in this process
(the baseline: the same work with no switch around it) and as ``POST /api/reload`` on a
running switch (CPU 1) that started with that plan: the answer's ``seconds`` and the request's
wall time, ``--reloads`` runs each, median and max. While each reload runs, ``/healthz`` is
asked every 20 ms on a kept-alive connection; its latency then, against the idle switch's,
shows whether the event loop kept answering (the compile runs in a worker thread).

Targets of the issue: >= 300 concurrent IVR callers per core, a 10,000-rule reload < 2 s.

Run from the repository root: ``python -m tools.bench.ivr [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from softswitch.apps.runtime import compile_plan
from softswitch.routing.loader import load_plan
from softswitch.routing.schema import Menu
from tests.interop.servers import REPO, ServerStartError, softswitch_server
from tests.interop.sipp import sipp_path
from tools.bench.routing import generate_rules
from tools.bench.switch_run import (
    MAX_SERVER_CPU,
    MIN_PACKETS_PER_S,
    SERVER_CPU,
    SIPP_CPU,
    CallStep,
    HealthProbe,
    RunPlan,
    SwitchBench,
    add_ramp_arguments,
    beside_relay,
    best,
    can_pin,
    finish,
    largest_passed,
    latency_ms,
    ramp_steps,
    steps_json,
    switch_overrides,
    work_folder,
)
from tools.sipp.make_dtmf_pcap import SEQUENCE

PLAN = Path(__file__).resolve().parent / "ivr_plan.yaml"
PROMPTS = REPO / "configs" / "prompts"
IVR_NUMBER = "100"
EXPECTED_DIGITS = "".join(digit for digit, _ in SEQUENCE)
QUIET_BUDGET_SECONDS = 60.0
#: Seconds the calls' hold time leaves beyond the nominal set-up time (N / rate) for set-ups
#: that come late: the window must end before the first caller hangs up.
UP_SLACK = 8.0
RELOAD_HEALTH_EVERY = 0.02
FULL_STEPS = (100, 200, 300, 350, 400, 450, 500, 600, 800)
QUICK_STEPS = (100, 300)


def menu_prompt_seconds() -> float:
    """How long the IVR menu's prompt of ``ivr_plan.yaml`` plays (its WAV files in turn): a
    caller must hang up before the prompt runs out, or the window would see the menu's silent
    wait for a key."""
    plan = load_plan(PLAN)
    menus = [a for r in plan.contexts["ivr"].rules for a in r.actions if isinstance(a, Menu)]
    total = 0.0
    for name in menus[0].prompt if menus else ():
        with wave.open(str(plan.prompt_path(name)), "rb") as audio:
            total += audio.getnframes() / audio.getframerate()
    return total


# --- one step: N callers held for a window ---------------------------------------------------


@dataclass
class Step(CallStep):
    """N calls of one kind (``ivr`` or ``relay``) held through a measuring window: in the
    expected state, IVR calls are in the menu; ``out_pps_*`` is the prompt."""

    digits_ok: int = 0
    """Calls whose digits were all recognised, in order."""
    dtmf_lines: int = 0
    """``DTMF`` lines in the switch's log."""


def _digits_of(call: dict[str, Any]) -> str:
    return "".join(
        str(d.get("digit", "")) for d in call.get("digits") or () if d.get("side") == "a"
    )


class IvrCallers(SwitchBench[Step]):
    """Callers who dial the IVR's number and stay in its menu while it plays the prompt."""

    measured = "ivr"
    number = IVR_NUMBER
    place = "menu"
    labels = {"relay": "relayed calls (baseline)", "ivr": "IVR callers"}
    up_slack = UP_SLACK
    quiet_budget = QUIET_BUDGET_SECONDS

    def __init__(self, plan: RunPlan, inband_dtmf: str) -> None:
        super().__init__(plan)
        self.inband_dtmf = inband_dtmf

    def new_step(self, mode: str, n: int, hold: float, attempt: int) -> Step:
        return Step(mode, n, hold=hold, attempt=attempt)

    def overrides(self, hold: float) -> dict[str, Any]:
        return switch_overrides(hold, PLAN, self.inband_dtmf)

    def in_place(self, call: dict[str, Any]) -> bool:
        """Answered, in context ``ivr`` with ``goto ivr`` in its dialplan path."""
        view = call.get("dialplan") or {}
        return (
            call.get("answered") is not None
            and view.get("context") == "ivr"
            and "goto ivr" in (view.get("path") or ())
        )

    def tally(self, step: Step, call: dict[str, Any]) -> None:
        if _digits_of(call) == EXPECTED_DIGITS:
            step.digits_ok += 1

    def reasons(self, step: Step) -> list[str]:
        if step.mode == "ivr" and step.digits_ok < step.calls:
            return [f"digits recognised on {step.digits_ok}/{step.calls} calls"]
        return []

    def after_stop(self, step: Step, log: str) -> None:
        step.dtmf_lines = sum(1 for line in log.splitlines() if ": DTMF " in line)

    def details(self, step: Step) -> str:
        return f"digits {step.digits_ok}/{step.calls} (log {step.dtmf_lines}), "


def ivr_report(steps: dict[str, list[Step]]) -> list[str]:
    """The IVR table: per N, both kinds of calls and the ratio of their CPU."""
    lines = [
        "",
        "IVR callers per core (switch on CPU 1, SIPp on CPU 0; G.711 20 ms, 50 packets/s in "
        "and out per caller)",
    ]
    head = (
        f"{'N':>5} {'relay CPU %':>12} {'IVR CPU %':>10} {'IVR/relay':>10} "
        f"{'IVR ms/caller/s':>16} {'prompt pkt/s min':>17} {'in menu':>8} {'digits':>8} "
        f"{'healthz max ms':>15}  result"
    )
    lines += [head, "-" * len(head)]
    relay = {s.calls: s for s in steps.get("relay", ())}
    for s, r, ratio, result in beside_relay(steps, "ivr"):
        health = f"{s.health_max_ms:.1f}" if s.health_max_ms is not None else "-"
        lines.append(
            f"{s.calls:>5} {(f'{100 * r.server_cpu:.1f}' if r else '-'):>12} "
            f"{100 * s.server_cpu:>10.1f} {ratio:>10} {s.cpu_ms_per_caller:>16.3f} "
            f"{s.out_pps_min:>17.1f} {f'{s.in_state}/{s.calls}':>8} "
            f"{f'{s.digits_ok}/{s.calls}':>8} {health:>15}  {result}"
        )
    top = best(steps.get("ivr", ()))
    base = best(steps.get("relay", ()))
    if top is None:
        lines.append("IVR: no step passed")
    else:
        lines.append(largest_passed("IVR", top))
        same = relay.get(top.calls)
        if same is not None and same.server_cpu:
            lines.append(
                f"baseline: the same {top.calls} callers relayed used "
                f"{100 * same.server_cpu:.1f} % (= {same.cpu_ms_per_caller:.3f} ms per caller per "
                f"second): an IVR caller costs {top.server_cpu / same.server_cpu:.2f}x a relayed "
                "one"
            )
    if base is not None:
        lines.append(f"baseline: largest relayed N that passed: {base.calls}")
    ivr_steps = steps.get("ivr", ())
    if ivr_steps and ivr_steps[-1].passed:
        lines.append(f"note: every IVR step passed: the limit is above N={ivr_steps[-1].calls}")
    elif ivr_steps:
        last = ivr_steps[-1]
        lines.append(f"note: N={last.calls} failed: {last.reason}")
    verdict = "met" if top is not None and top.calls >= 300 else "not shown"
    if top is not None and top.calls < 300 and top.per_core >= 300:
        verdict += f" (measured {top.calls}; the cost per caller projects ~{top.per_core:.0f})"
    lines.append(f"target >= 300 IVR callers per core: {verdict}")
    return lines


# --- reload of a 10,000-rule plan ------------------------------------------------------------


def _quoted(text: str) -> str:
    """A YAML single-quoted scalar (no escapes but the doubled quote)."""
    return "'" + text.replace("'", "''") + "'"


#: Actions of the generated rules, in turn: what a large plan's rules do.
_ACTIONS = (
    "[{bridge: {to: '1002', timeout: 20}}]",
    "[answer, {play: {prompt: demo/closed}}, hangup]",
    "[{queue: {name: general, priority: 1}}]",
    "[{menu: {prompt: demo/main-menu, timeout: 4, retries: 1, options: {'1': "
    "[{queue: {name: general}}], '0': [{bridge: {to: '1003'}}]}, on_failure: [hangup]}}]",
    "[{set: {reason: routed}}, {voicemail: {mailbox: main, max_length: 60}}]",
)


def write_big_plan(path: Path, seed: int) -> dict[str, int]:
    """The reload benchmark's plan: the 10,000 match strings of the routing benchmark in
    context ``routes`` (actions in turn from ``_ACTIONS``), included by ``internal``, whose own
    rule is the IVR's number. Returns the counts of rules by kind."""
    rules = generate_rules(random.Random(seed))
    lines = [
        "# Generated by tools/bench/ivr.py for the reload benchmark.",
        "timezone: UTC",
        f"prompts: {_quoted(str(PROMPTS))}",
        "contexts:",
        "  internal:",
        "    include: [routes]",
        "    rules:",
        "      - match: '100'",
        "        actions: [answer, {play: {prompt: demo/main-menu}}, hangup]",
        "  routes:",
        "    rules:",
    ]
    for i, match in enumerate(rules):
        lines.append(f"      - match: {_quoted(match)}")
        lines.append(f"        actions: {_ACTIONS[i % len(_ACTIONS)]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kinds = {"exact": 0, "pattern": 0, "regex": 0}
    for match in rules:
        kind = "regex" if match.startswith("/") else "pattern" if match.startswith("_") else "exact"
        kinds[kind] += 1
    kinds["total"] = len(rules) + 1
    return kinds


@dataclass
class ReloadFigures:
    rules: dict[str, int] = field(default_factory=dict)
    compile_s: list[float] = field(default_factory=list)
    start_s: float = 0.0
    api_s: list[float] = field(default_factory=list)
    """The ``seconds`` of each POST /api/reload answer."""
    wall_s: list[float] = field(default_factory=list)
    """Wall time of each POST /api/reload request."""
    reloaded_rules: int = 0
    idle_health: list[float | None] = field(default_factory=list)
    reload_health: list[float | None] = field(default_factory=list)
    error: str = ""


def post_reload(port: int) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/reload", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120.0) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:  # 422: the plan did not load
        body = json.loads(exc.read().decode("utf-8") or "{}")
    if not isinstance(body, dict):
        raise ValueError(f"/api/reload answered {body!r}")
    return body


def reload_bench(runs: int, seed: int, pin: bool, workdir: Path) -> ReloadFigures:
    """Compile the 10,000-rule plan in this process, then reload it on a running switch."""
    figures = ReloadFigures()
    folder = workdir / "reload"
    folder.mkdir(parents=True, exist_ok=True)
    plan_path = folder / "plan-10k.yaml"
    figures.rules = write_big_plan(plan_path, seed)
    for _ in range(runs):
        gc.collect()  # what the bench itself left behind is not the compile's to collect
        started = time.perf_counter()
        compile_plan(plan_path)
        figures.compile_s.append(time.perf_counter() - started)
    overrides = switch_overrides(60.0, plan_path)
    server = softswitch_server(folder, cpu=SERVER_CPU if pin else None, overrides=overrides)
    try:
        started = time.perf_counter()
        server.start(timeout=120.0)
        figures.start_s = time.perf_counter() - started
        with HealthProbe(server.http_port, RELOAD_HEALTH_EVERY) as probe:
            time.sleep(2.0)
            figures.idle_health = probe.between(0.0, time.perf_counter())
            for _ in range(runs):
                started = time.perf_counter()
                answer = post_reload(server.http_port)
                ended = time.perf_counter()
                if not answer.get("ok"):
                    figures.error = f"reload failed: {answer.get('errors')}"[:600]
                    break
                figures.api_s.append(float(answer.get("seconds", 0.0)))
                figures.wall_s.append(ended - started)
                figures.reloaded_rules = int(answer.get("rules", 0))
                figures.reload_health += probe.between(started, ended)
                time.sleep(0.5)
    except (OSError, ValueError, ServerStartError) as exc:
        figures.error = f"error: {exc}"[:600]
    finally:
        server.stop()
    return figures


def reload_report(f: ReloadFigures) -> list[str]:
    r = f.rules
    lines = [
        "",
        f"dialplan reload: {r.get('total', 0):,} rules ({r.get('exact', 0):,} exact, "
        f"{r.get('pattern', 0):,} patterns, {r.get('regex', 0):,} regexes; actions mixed)",
        f"{'':<36}{'median s':>10}{'max s':>10}{'runs':>6}",
    ]

    def row(label: str, values: Sequence[float]) -> None:
        if values:
            lines.append(
                f"{label:<36}{statistics.median(values):>10.3f}{max(values):>10.3f}"
                f"{len(values):>6}"
            )
        else:
            lines.append(f"{label:<36}{'-':>10}{'-':>10}{0:>6}")

    row("in-process compile_plan (baseline)", f.compile_s)
    row("POST /api/reload: answer's seconds", f.api_s)
    row("POST /api/reload: request wall time", f.wall_s)
    if f.api_s and f.compile_s:
        ratio = statistics.median(f.api_s) / statistics.median(f.compile_s)
        lines.append(f"ratio reload in the switch / in-process compile (medians): {ratio:.2f}")
    if f.start_s:
        lines.append(f"switch start with this plan, to /healthz answering: {f.start_s:.2f} s")
    if f.reloaded_rules:
        lines.append(f"rules the switch reported after the reload: {f.reloaded_rules:,}")
    idle = latency_ms(f.idle_health)
    busy = latency_ms(f.reload_health)

    def health(label: str, figures: tuple[float | None, float | None, int], count: int) -> None:
        p50, top, missing = figures
        shown = (
            f"p50 {p50:.1f} ms, max {top:.1f} ms" if p50 is not None and top is not None else "-"
        )
        lines.append(f"{label}: {shown} ({count - missing}/{count} answered)")

    health("/healthz every 20 ms, idle switch", idle, len(f.idle_health))
    health("/healthz every 20 ms, during reloads", busy, len(f.reload_health))
    if f.error:
        lines.append(f"note: {f.error}")
    if f.api_s:
        worst = max(f.api_s)
        verdict = "met" if worst < 2.0 else "MISSED"
        lines.append(f"target reload of 10,000 rules < 2 s: {verdict} (max {worst:.2f} s)")
        answered = busy[2] == 0 and busy[1] is not None
        lines.append(
            "event loop during reloads: "
            + (
                f"kept answering (slowest /healthz {busy[1]:.0f} ms)"
                if answered and busy[1] is not None
                else "some /healthz requests got no answer"
            )
        )
    return lines


# --- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.ivr", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N = 100, 300; 4 s windows")
    add_ramp_arguments(parser, rate=50, window=10, ramp="IVR")
    parser.add_argument("--reloads", type=int, help="runs of each reload timing (default 5)")
    parser.add_argument("--seed", type=int, default=20260401, help="seed of the 10,000 rules")
    parser.add_argument(
        "--inband-dtmf",
        choices=["auto", "always"],
        default="auto",
        help="the switch's media.inband_dtmf: auto (as configs/default.yaml; the callers "
        "offer telephone-event, so only RFC 4733 events are looked for) or always (a Goertzel "
        "detector on every leg as well)",
    )
    parser.add_argument("--only", choices=["ivr", "reload"], help="run one part only")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)

    steps = ramp_steps(args.steps, QUICK_STEPS if args.quick else FULL_STEPS)
    rate = args.rate or 50.0
    window = args.window or (4.0 if args.quick else 10.0)
    reloads = args.reloads or 5
    if rate <= 0 or window <= 0 or reloads < 1:
        parser.error("--rate, --window and --reloads must be positive")
    budget = args.budget or (300.0 if args.quick else 1200.0)
    pin = can_pin()
    if pin:
        os.sched_setaffinity(0, {SIPP_CPU})
    plan = RunPlan(
        steps=steps,
        rate=rate,
        window=window,
        settle=2.0 if args.quick else 3.0,
        budget=budget,
        pin=pin,
    )
    bench = IvrCallers(plan, args.inband_dtmf)
    prompt_s = menu_prompt_seconds()
    fits = tuple(n for n in steps if bench.hold_seconds(n) + 3.0 < prompt_s)
    if fits != steps:
        print(
            f"left out N = {', '.join(str(n) for n in steps if n not in fits)}: their callers "
            f"would stay longer than the menu's prompt plays ({prompt_s:.0f} s)"
        )
        plan.steps = fits
    if args.only != "reload" and sipp_path() is None:
        print("sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 2

    print(
        "IVR and reload benchmark: "
        + (
            f"switch on CPU {SERVER_CPU}, SIPp and the bench on CPU {SIPP_CPU}"
            if pin
            else "fewer than two CPUs: nothing pinned, figures are indicative only"
        )
    )
    print(
        f"steps N = {', '.join(map(str, plan.steps))}; "
        f"set-up {rate:g} calls/s, window {window:g} s; "
        f"pass: all calls in the menu with their digits, switch < {100 * MAX_SERVER_CPU:.0f} % "
        f"of its core, >= {MIN_PACKETS_PER_S:g} packets/s each way on every leg; "
        f"media.inband_dtmf {args.inband_dtmf}",
        flush=True,
    )
    started = time.monotonic()
    ivr_steps: dict[str, list[Step]] = {}
    reload: ReloadFigures | None = None
    with work_folder("ivr-bench-", args.keep) as workdir:
        if args.only != "reload":
            ivr_steps = bench.ramp(workdir)
        if args.only != "ivr":
            print(f"  reload: {reloads} runs of each timing ...", flush=True)
            reload = reload_bench(reloads, args.seed, pin, workdir)

    lines: list[str] = []
    if ivr_steps:
        lines += ivr_report(ivr_steps)
    if reload is not None:
        lines += reload_report(reload)
    figures = {
        "ivr": steps_json(ivr_steps),
        "reload": asdict(reload) if reload is not None else None,
    }
    finish(lines, started, args.json, figures)
    failed = (args.only != "reload" and best(ivr_steps.get("ivr", ())) is None) or (
        args.only != "ivr" and (reload is None or bool(reload.error) or not reload.api_s)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
