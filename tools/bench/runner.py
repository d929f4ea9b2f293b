"""Throughput and CPU cost of the softswitch against a Kamailio baseline, with SIPp.

For each server under test (Kamailio first, then the softswitch) this measures

(a) authenticated registrations per second: SIPp ``register_auth.xml`` (REGISTER,
    401, REGISTER with credentials, 200);
(b) call set-ups per second: SIPp ``uac_call_auth.xml`` calling a registered SIPp
    ``uas_answer.xml`` through the server (INVITE, 407, ACK, INVITE, 100, 180, 200,
    ACK, BYE, 200; no media, no hold time);

by stepping the offered rate (``-r``) with a bounded number of calls per step
(``-m``), keeping the highest rate at which fewer than 0.1 % of the calls failed and
SIPp kept up with the offered rate. The server runs on one core (``taskset -c 1``),
SIPp on the other (``taskset -c 0``), everything on 127.0.0.1. The server's CPU time
per operation comes from /proc/PID/stat (utime + stime, all its processes) before
and after the best step.

Without Kamailio the baseline is SIPp talking to SIPp stand-ins (``uas_registrar.xml``
and ``uas_challenge_answer.xml``), which shows the load generator's own ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.interop.servers import (
    DOMAIN,
    USERS,
    ServerProcess,
    ServerStartError,
    cpu_seconds,
    free_port,
    kamailio_path,
    kamailio_server,
    sipp_overrides,
    softswitch_server,
)
from tests.interop.sipp import (
    SippProcess,
    SippResult,
    register_contact,
    run_sipp,
    sipp_path,
    write_injection,
)

MAX_FAILED_RATIO = 0.001
#: A step passes only if the operations completed at >= this share of the offered rate.
KEEP_RATE = 0.9
#: ... and the mean response time stayed below T1 (RFC 3261 section 17.1.1.1): past
#: it, UDP retransmissions start and add to the load.
MAX_RESPONSE_MS = 500.0
SERVER_CPU = 1
SIPP_CPU = 0
#: Settings of the softswitch for the bench on top of those the tests use.
SOFTSWITCH_BENCH_OVERRIDES: dict[str, Any] = {
    "logging.level": "warning",
    "security.max_transactions_per_source": 1_000_000,
    "calls.max_calls": 100_000,
    # Signalling only, like the Kamailio proxy baseline (no media). ``--anchor-media`` turns
    # RTP anchoring on, to see what per-call media set-up costs.
    "media.anchor": False,
}


@dataclass
class Step:
    """One offered rate held for a bounded number of calls."""

    rate: int
    calls: int
    successful: int = 0
    failed: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    response_time_ms: float | None = None
    retransmissions: int = 0
    generator_busy: float = 0.0
    """Share of SIPp's core (SIPP_CPU) that was busy during the step, 0..1."""
    server_iowait: float = 0.0
    """Share of the server's core (SERVER_CPU) idle while waiting for disk I/O, 0..1."""
    passed: bool = False
    reason: str = ""

    @property
    def achieved(self) -> float:
        """Completed operations per second, not counting the last operation's latency.

        SIPp's run time is the traffic time plus the time the last operations take;
        that tail (about one mean response time) is no sign of a backlog.
        """
        tail = (self.response_time_ms or 0.0) / 1000.0
        span = max(self.calls / self.rate, self.elapsed - tail) if self.rate else self.elapsed
        return self.successful / span if span > 0 else 0.0

    @property
    def cpu_ms_per_op(self) -> float | None:
        return 1000.0 * self.cpu / self.successful if self.successful else None

    @property
    def utilisation(self) -> float:
        """The server's CPU seconds per wall second (1.0 = its whole core)."""
        return self.cpu / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class Measurement:
    """The ramp of one workload on one server and its best passing step."""

    server: str
    workload: str
    steps: list[Step] = field(default_factory=list)
    error: str = ""

    @property
    def best(self) -> Step | None:
        passing = [s for s in self.steps if s.passed]
        return max(passing, key=lambda s: s.rate) if passing else None


class Target(Protocol):
    """What a workload needs from the thing under test."""

    name: str

    def alive(self) -> bool: ...
    def cpu_seconds(self) -> float: ...
    def describe_failure(self) -> str: ...


# --- targets --------------------------------------------------------------------------


class ServerTarget:
    """A SIP server subprocess (Kamailio or the softswitch) pinned to SERVER_CPU."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.name = server.name
        self.register_address = server.address
        self.call_address = server.address
        self.needs_callee = True

    def alive(self) -> bool:
        return self.server.alive()

    def cpu_seconds(self) -> float:
        return self.server.cpu_seconds()

    def describe_failure(self) -> str:
        return self.server.stderr_text()[-2000:]

    def settle(self, timeout: float) -> None:
        """Give the server a moment between steps (answers once /healthz responds)."""
        self.server.wait_health(lambda doc: True, timeout=timeout)


class DirectTarget:
    """SIPp stand-ins on SERVER_CPU, for the load generator's own baseline."""

    def __init__(self, workdir: Path) -> None:
        self.name = "sipp-direct"
        self.needs_callee = False
        reg_port, call_port = free_port(), free_port()
        self.registrar = SippProcess(
            "uas_registrar.xml", "-p", str(reg_port), workdir=workdir / "reg", cpu=SERVER_CPU
        )
        self.callee = SippProcess(
            "uas_challenge_answer.xml",
            "-p",
            str(call_port),
            workdir=workdir / "call",
            cpu=SERVER_CPU,
        )
        self.register_address = f"127.0.0.1:{reg_port}"
        self.call_address = f"127.0.0.1:{call_port}"

    def alive(self) -> bool:
        return self.registrar.running() and self.callee.running()

    def cpu_seconds(self) -> float:
        return cpu_seconds([self.registrar.pid, self.callee.pid])

    def describe_failure(self) -> str:
        return ""

    def settle(self, timeout: float) -> None:
        time.sleep(min(timeout, 1.0))

    def stop(self) -> None:
        self.registrar.stop(grace=3)
        self.callee.stop(grace=3)


# --- ramping --------------------------------------------------------------------------


@dataclass
class RampPlan:
    """How rates are stepped; every loop below is bounded by these."""

    start: int = 50
    factor: float = 1.6
    max_rate: int = 20_000
    step_seconds: float = 4.0
    min_calls: int = 100
    max_steps: int = 14
    budget: float = 150.0
    """Seconds one workload on one server may take, all steps included."""
    precision: float = 1.12
    """Stop refining when the failing rate is within this factor of the passing one."""


def ramp(plan: RampPlan, run_step: Callable[[int], Step], log: Callable[[str], None]) -> list[Step]:
    """Raise the rate geometrically until a step fails, then bisect between pass and fail."""
    steps: list[Step] = []
    started = time.monotonic()
    best: Step | None = None
    worst: Step | None = None
    rate = plan.start
    for _ in range(plan.max_steps):
        if time.monotonic() - started > plan.budget:
            log(f"    time budget of {plan.budget:.0f} s used up")
            break
        step = run_step(rate)
        steps.append(step)
        verdict = "pass" if step.passed else f"FAIL ({step.reason})"
        rt = f"{step.response_time_ms:.1f} ms" if step.response_time_ms is not None else "-"
        server = f"{step.utilisation * 100:3.0f}% (io {step.server_iowait * 100:2.0f}%)"
        log(
            f"    {step.rate:>6}/s x {step.calls:>6}: ok {step.successful:>6} "
            f"failed {step.failed:>5} in {step.elapsed:5.1f} s = {step.achieved:7.1f}/s; "
            f"cpu server {server} sipp {step.generator_busy * 100:3.0f}%; "
            f"rt {rt} -> {verdict}"
        )
        if step.passed:
            best = step if best is None or step.rate > best.rate else best
        else:
            worst = step if worst is None or step.rate < worst.rate else worst
            if step.reason.startswith("server"):
                break
        if worst is None:
            if rate >= plan.max_rate:
                break
            rate = min(plan.max_rate, max(rate + 1, int(rate * plan.factor)))
            continue
        if best is None:
            # Even the first rate failed: try lower ones, down to a handful per second.
            if rate <= 5:
                break
            rate = max(5, rate // 3)
            continue
        if worst.rate <= best.rate * plan.precision or worst.rate - best.rate <= 2:
            break
        rate = (best.rate + worst.rate) // 2
    return steps


def core_times() -> dict[int, tuple[float, float, float]]:
    """Per CPU: (busy, iowait, total) jiffies from /proc/stat."""
    out: dict[int, tuple[float, float, float]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            v = [float(x) for x in values[:8]]
            idle, iowait = v[3], v[4]
            total = sum(v)
            out[int(name[3:])] = (total - idle - iowait, iowait, total)
    return out


def _share(
    before: dict[int, tuple[float, float, float]],
    after: dict[int, tuple[float, float, float]],
    cpu: int,
    index: int,
) -> float:
    if cpu not in before or cpu not in after:
        return 0.0
    total = after[cpu][2] - before[cpu][2]
    return (after[cpu][index] - before[cpu][index]) / total if total > 0 else 0.0


def _step_from(result: SippResult, rate: int, calls: int, cpu: float) -> Step:
    step = Step(rate=rate, calls=calls, cpu=cpu)
    stats = result.stats
    if stats is None:
        step.reason = f"no statistics (sipp exit {result.returncode})"
        return step
    step.successful = stats.successful
    step.failed = stats.failed + max(0, calls - stats.successful - stats.failed)
    step.elapsed = stats.elapsed if stats.elapsed > 0 else result.wall_time
    step.retransmissions = stats.retransmissions
    if stats.response_time is not None:
        step.response_time_ms = stats.response_time * 1000.0
    nominal = calls / rate
    if result.timed_out:
        step.reason = "sipp did not finish in time"
    elif step.failed > MAX_FAILED_RATIO * calls:
        reasons = ", ".join(f"{k} {v}" for k, v in stats.failures.items()) or "failed calls"
        step.reason = f"{step.failed}/{calls} failed: {reasons}"
    elif step.achieved < KEEP_RATE * rate:
        step.reason = (
            f"did not keep the rate ({step.achieved:.0f}/s achieved, "
            f"{step.elapsed:.1f} s for {nominal:.1f} s of traffic)"
        )
    elif step.response_time_ms is not None and step.response_time_ms >= MAX_RESPONSE_MS:
        step.reason = f"mean response time {step.response_time_ms:.0f} ms >= T1"
    else:
        step.passed = True
    return step


class Bench:
    """Runs the workloads against one target and collects measurements."""

    def __init__(self, plan: RampPlan, workdir: Path, log: Callable[[str], None]) -> None:
        self.plan = plan
        self.workdir = workdir
        self.log = log
        # REGISTER load uses users that take no part in the call workload: a
        # binding of the callee (1002) to the load generator's port would fork the
        # calls there.
        self.users = write_injection(
            workdir / "users.csv", [[u, USERS[u], DOMAIN] for u in ("1003", "1004")]
        )
        self.caller = write_injection(workdir / "caller.csv", [["1001", USERS["1001"], DOMAIN]])
        self.callee = write_injection(workdir / "callee.csv", [["1002", USERS["1002"], DOMAIN]])

    def _calls_for(self, rate: int) -> int:
        return max(self.plan.min_calls, int(rate * self.plan.step_seconds))

    def _run_step(self, target: Any, scenario: str, rate: int, extra: list[str], port: int) -> Step:
        calls = self._calls_for(rate)
        nominal = calls / rate
        if not target.alive():
            return Step(rate=rate, calls=calls, reason="server is not running")
        before = target.cpu_seconds()
        cores_before = core_times()
        result = run_sipp(
            scenario,
            *extra,
            "-p",
            str(port),
            "-r",
            str(rate),
            "-m",
            str(calls),
            "-recv_timeout",
            "8000",
            "-timeout",
            f"{int(nominal + 40)}s",
            "-max_recv_loops",
            "10000",
            "-max_sched_loops",
            "10000",
            timeout=nominal + 60,
            workdir=self.workdir / "sipp",
            cpu=SIPP_CPU,
        )
        after = target.cpu_seconds()
        cores_after = core_times()
        step = _step_from(result, rate, calls, max(0.0, after - before))
        step.generator_busy = _share(cores_before, cores_after, SIPP_CPU, 0)
        step.server_iowait = _share(cores_before, cores_after, SERVER_CPU, 1)
        if not target.alive():
            step.passed = False
            step.reason = "server died: " + target.describe_failure()[-500:]
        target.settle(timeout=3.0 if step.passed else 8.0)
        if not step.passed:
            time.sleep(2.0)  # let retransmissions of the overloaded step die out
        return step

    def registrations(self, target: Any) -> Measurement:
        measurement = Measurement(target.name, "register")
        self.log(f"  [{target.name}] authenticated REGISTER ramp")
        extra = [target.register_address, "-inf", str(self.users), "-auth_uri", DOMAIN]
        # One local port for every step: each user keeps one contact (a registrar may
        # cap contacts per address-of-record), so every REGISTER refreshes a binding.
        port = free_port()
        measurement.steps = ramp(
            self.plan,
            lambda rate: self._run_step(target, "register_auth.xml", rate, extra, port),
            self.log,
        )
        return measurement

    def calls(self, target: Any) -> Measurement:
        measurement = Measurement(target.name, "call")
        self.log(f"  [{target.name}] call set-up ramp (UAC -> server -> UAS)")
        extra = [
            target.call_address,
            "-inf",
            str(self.caller),
            "-s",
            "1002",
            "-auth_uri",
            f"1002@{DOMAIN}",
            "-d",
            "0",
        ]
        uac_port = free_port()

        def step(rate: int) -> Step:
            return self._run_step(target, "uac_call_auth.xml", rate, extra, uac_port)

        if not target.needs_callee:
            measurement.steps = ramp(self.plan, step, self.log)
            return measurement
        uas_port = free_port()
        registered = register_contact(
            target.call_address, self.callee, DOMAIN, uas_port, workdir=self.workdir / "sipp"
        )
        if not registered.ok:
            measurement.error = "could not register the callee:\n" + registered.describe()
            self.log("    " + measurement.error.replace("\n", "\n    "))
            return measurement
        uas = SippProcess(
            "uas_answer.xml",
            "-p",
            str(uas_port),
            "-max_recv_loops",
            "10000",
            "-max_sched_loops",
            "10000",
            workdir=self.workdir / "uas",
            cpu=SIPP_CPU,
        )
        try:
            time.sleep(0.3)
            measurement.steps = ramp(self.plan, step, self.log)
        finally:
            uas_result = uas.stop(grace=5)
            if uas_result.stats is not None:
                self.log(
                    f"    callee UAS: {uas_result.stats.successful} ok, "
                    f"{uas_result.stats.failed} failed"
                )
        return measurement


# --- reporting ------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def report(results: dict[str, dict[str, Measurement]], baseline: str, subject: str) -> str:
    """The summary table: both servers' figures and subject/baseline ratios."""
    rows: list[tuple[str, str, str, str]] = []

    def add(label: str, base: float | None, subj: float | None, digits: int) -> None:
        ratio = f"{subj / base:.3f}" if base and subj is not None else "n/a"
        rows.append((label, _fmt(base, digits), _fmt(subj, digits), ratio))

    def capacity(step: Step) -> float | None:
        cost = step.cpu_ms_per_op
        return 1000.0 / cost if cost else None

    for workload, label, unit in (
        ("register", "auth. REGISTER/s", "REGISTER"),
        ("call", "call set-ups/s", "call"),
    ):
        b = results.get(baseline, {}).get(workload)
        s = results.get(subject, {}).get(workload)
        bb, sb = (b.best if b else None), (s.best if s else None)
        figures: list[tuple[str, Callable[[Step], float | None], int]] = [
            (label + " (max passing rate)", lambda st: float(st.rate), 0),
            ("  achieved at that rate /s", lambda st: st.achieved, 1),
            (f"  server CPU ms per {unit}", lambda st: st.cpu_ms_per_op, 3),
            (f"  1 core / CPU per {unit} (capacity estimate /s)", capacity, 0),
            ("  server CPU use at that rate %", lambda st: st.utilisation * 100, 1),
            ("  mean response time ms", lambda st: st.response_time_ms, 2),
        ]
        for text, get, digits in figures:
            add(text, get(bb) if bb else None, get(sb) if sb else None, digits)
    head = ("", baseline, subject, f"{subject}/{baseline}")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = [
        "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head))
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)
            )
        )
    return "\n".join(lines)


def notes(results: dict[str, dict[str, Measurement]]) -> list[str]:
    """Caveats: failed set-ups, and what limited each ramp."""
    out: list[str] = []
    for server, by_workload in results.items():
        for workload, m in by_workload.items():
            if m.error:
                out.append(f"{server}/{workload}: {m.error.splitlines()[0]}")
            best = m.best
            if best is None:
                if not m.error:
                    out.append(f"{server}/{workload}: no step passed")
                continue
            above = [s for s in m.steps if s.rate > best.rate]
            if not above:
                out.append(
                    f"{server}/{workload}: no higher rate failed (rate cap, step or time "
                    "limit): the figure is a lower bound"
                )
                continue
            at = (
                f"at {best.rate}/s the server used {best.utilisation * 100:.0f}% of its core "
                f"and SIPp's core was {best.generator_busy * 100:.0f}% busy"
            )
            if best.utilisation >= 0.85:
                continue
            if best.generator_busy >= 0.8:
                out.append(
                    f"{server}/{workload}: {at}: the load generator is (also) the limit, so "
                    "compare CPU per operation rather than the rates"
                )
            else:
                out.append(
                    f"{server}/{workload}: {at}: neither core was saturated; the server may "
                    "wait on something other than CPU (I/O, timers, locks), or other load "
                    "on the machine disturbed the run"
                )
    return out


# --- main -----------------------------------------------------------------------------


@contextlib.contextmanager
def started(kind: str, workdir: Path) -> Iterator[Any]:
    """A target on SERVER_CPU, stopped on exit (also on error or Ctrl-C)."""
    folder = workdir / kind
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "sipp-direct":
        direct = DirectTarget(folder)
        try:
            time.sleep(0.5)
            yield direct
        finally:
            direct.stop()
        return
    if kind == "kamailio":
        server = kamailio_server(folder, cpu=SERVER_CPU, children=1, shm_mb=512)
    else:
        overrides = {**SOFTSWITCH_BENCH_OVERRIDES, **sipp_overrides()}
        server = softswitch_server(folder, cpu=SERVER_CPU, overrides=overrides)
    try:
        server.start(timeout=15.0)
        yield ServerTarget(server)
    finally:
        server.stop()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="REGISTER and call set-up throughput of the softswitch vs. a baseline.",
    )
    parser.add_argument(
        "--baseline",
        choices=["auto", "kamailio", "sipp-direct"],
        default="auto",
        help="auto = kamailio if installed, else SIPp talking to SIPp stand-ins",
    )
    parser.add_argument("--only", choices=["baseline", "softswitch"], help="measure one side only")
    parser.add_argument("--quick", action="store_true", help="short steps, small budget")
    parser.add_argument("--step-seconds", type=float, help="seconds of traffic per step")
    parser.add_argument("--max-rate", type=int, help="highest rate offered (per second)")
    parser.add_argument("--budget", type=float, help="seconds per workload per server")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    parser.add_argument(
        "--anchor-media",
        action="store_true",
        help="run the softswitch with RTP anchoring (default: signalling only, as the baseline)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if sipp_path() is None:
        print("sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 2
    SOFTSWITCH_BENCH_OVERRIDES["media.anchor"] = bool(args.anchor_media)
    print(f"softswitch media anchoring: {'on' if args.anchor_media else 'off (as the baseline)'}")
    plan = RampPlan()
    if args.quick:
        plan = RampPlan(step_seconds=2.0, min_calls=50, budget=45.0, max_steps=8)
    if args.step_seconds:
        plan.step_seconds = args.step_seconds
    if args.max_rate:
        plan.max_rate = args.max_rate
    if args.budget:
        plan.budget = args.budget

    baseline = args.baseline
    if baseline == "auto":
        baseline = "kamailio" if kamailio_path() else "sipp-direct"
    elif baseline == "kamailio" and not kamailio_path():
        print("kamailio is not installed (Debian package kamailio)", file=sys.stderr)
        return 2
    kinds = [baseline, "softswitch"]
    if args.only == "baseline":
        kinds = [baseline]
    elif args.only == "softswitch":
        kinds = ["softswitch"]

    pin = (os.cpu_count() or 1) >= 2
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {SIPP_CPU})
    else:
        print("only one CPU: the server and SIPp share it; figures are not comparable")

    def log(text: str) -> None:
        print(text, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    results: dict[str, dict[str, Measurement]] = {}
    failures = 0
    log(
        f"bench: server on CPU {SERVER_CPU}, SIPp on CPU {SIPP_CPU}; "
        f"steps of {plan.step_seconds:g} s (>= {plan.min_calls} calls), "
        f"pass = < {MAX_FAILED_RATIO * 100:g} % failed and the rate kept; work dir {workdir}"
    )
    try:
        for kind in kinds:
            log(f"== {kind}")
            try:
                with started(kind, workdir) as target:
                    bench = Bench(plan, workdir / kind, log)
                    results[kind] = {}
                    results[kind]["register"] = bench.registrations(target)
                    results[kind]["call"] = bench.calls(target)
            except (ServerStartError, FileNotFoundError) as exc:
                failures += 1
                log(f"  {kind} could not be started: {exc}")
                results[kind] = {
                    "register": Measurement(kind, "register", error=str(exc)),
                    "call": Measurement(kind, "call", error=str(exc)),
                }
            except Exception as exc:  # report what was measured, then fail the run
                failures += 1
                log(traceback.format_exc())
                results.setdefault(kind, {})
                for workload in ("register", "call"):
                    results[kind].setdefault(workload, Measurement(kind, workload, error=repr(exc)))
    except KeyboardInterrupt:
        log("interrupted")
        failures += 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    log("")
    log(report(results, baseline, "softswitch"))
    for line in notes(results):
        log("note: " + line)
    if args.json:
        payload = {
            server: {
                workload: {
                    "best": asdict(m.best) if m.best else None,
                    "steps": [asdict(s) for s in m.steps],
                    "error": m.error,
                }
                for workload, m in by_workload.items()
            }
            for server, by_workload in results.items()
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    missing = [
        f"{server}/{workload}"
        for server, by_workload in results.items()
        for workload, m in by_workload.items()
        if m.best is None
    ]
    if missing:
        log("no passing step for: " + ", ".join(missing))
    return 1 if failures or missing else 0
