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
generator-bound and ends the ramp.

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
import contextlib
import gc
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
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
from tests.interop.servers import (
    DOMAIN,
    REPO,
    USERS,
    ServerProcess,
    ServerStartError,
    cpu_seconds,
    free_port,
    sipp_overrides,
    softswitch_server,
)
from tests.interop.sipp import (
    SCENARIO_DIR,
    SippProcess,
    SippResult,
    register_contact,
    sipp_path,
    write_injection,
)
from tools.bench.media_relay import loop_waited_seconds, wait_for_quiet
from tools.bench.routing import generate_rules
from tools.sipp.make_dtmf_pcap import (
    AUDIO_PT,
    EVENT_PT,
    FIRST_TIMESTAMP,
    PTIME_MS,
    SAMPLES_PER_PACKET,
    SEQUENCE,
    START_TIME,
    RtpPacket,
    ethernet_frame,
    rtp_stream,
    tone_payload,
)

SERVER_CPU = 1
SIPP_CPU = 0
PLAN = Path(__file__).resolve().parent / "ivr_plan.yaml"
PROMPTS = REPO / "configs" / "prompts"
CALLER_SCENARIO = SCENARIO_DIR / "uac_pcap_dtmf.xml"
CALLEE_SCENARIO = "uas_answer.xml"
#: The capture's name as the caller scenario plays it, looked up next to the scenario first.
CAPTURE_NAME = Path("pcap") / "dtmf_rfc4733.pcap"
IVR_NUMBER = "100"
RELAY_NUMBER = "1002"
EXPECTED_DIGITS = "".join(digit for digit, _ in SEQUENCE)
#: The switch's RTP ports: those of the other benches, away from a running switch's and the
#: tests' default range (16000-17999) and below the ephemeral ports SIPp and the bench use.
RTP_PORT_MIN = 18000
RTP_PORT_MAX = 31999
MAX_SERVER_CPU = 0.90
MIN_PACKETS_PER_S = 49.0
MAX_GENERATOR_CPU = 0.90
#: A failing step whose event loop thread waited, runnable, for its CPU longer than this share
#: of the window was disturbed by other work on the machine; it runs once more.
MAX_LOOP_WAIT = 0.02
MAX_ATTEMPTS = 2
QUIET_WAIT_SECONDS = 10.0
QUIET_BUDGET_SECONDS = 60.0
#: Seconds the calls' hold time leaves beyond the nominal set-up time (N / rate) for set-ups
#: that come late: the window must end before the first caller hangs up.
UP_SLACK = 8.0
HEALTH_EVERY = 0.25
RELOAD_HEALTH_EVERY = 0.02
FULL_STEPS = (100, 200, 300, 350, 400, 450, 500, 600, 800)
QUICK_STEPS = (100, 300)
MODES = ("relay", "ivr")
LABELS = {"relay": "relayed calls (baseline)", "ivr": "IVR callers"}

_PCAP_HEADER = struct.Struct("<IHHiIII")  # classic libpcap, microseconds, little-endian
_PCAP_RECORD = struct.Struct("<IIII")


# --- the callers' media ------------------------------------------------------------------


def caller_capture(seconds: float) -> bytes:
    """A libpcap capture of ``seconds`` of one caller's RTP: the packets of the committed DTMF
    capture (``make_dtmf_pcap.rtp_stream``: tone, then the digits as RFC 4733 events), then the
    same tone in 20 ms packets that carry on its sequence numbers and timestamps (RFC 3550
    §5.1), so that the stream stays one talkspurt of one source for the whole call."""
    packets = rtp_stream()
    last = packets[-1]
    sequence = last.sequence
    for tick in range(last.tick + 1, max(last.tick + 1, int(seconds * 1000 / PTIME_MS))):
        sequence += 1
        timestamp = FIRST_TIMESTAMP + tick * SAMPLES_PER_PACKET
        packets.append(RtpPacket(tick, AUDIO_PT, False, sequence, timestamp, tone_payload(tick)))
    out = bytearray(_PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # link type Ethernet
    for index, packet in enumerate(packets):
        frame = ethernet_frame(bytes(packet), index + 1)
        whole, micros = divmod(packet.tick * PTIME_MS * 1000, 1_000_000)
        out += _PCAP_RECORD.pack(START_TIME + whole, micros, len(frame), len(frame))
        out += frame
    return bytes(out)


def caller_scenario(folder: Path, seconds: float) -> Path:
    """The caller scenario copied into ``folder`` with a capture of ``seconds`` beside it
    (SIPp looks for the capture next to the scenario first)."""
    scenario = folder / CALLER_SCENARIO.name
    shutil.copyfile(CALLER_SCENARIO, scenario)
    capture = folder / CAPTURE_NAME
    capture.parent.mkdir(parents=True, exist_ok=True)
    capture.write_bytes(caller_capture(seconds))
    return scenario


def free_media_port(attempts: int = 50) -> int:
    """A port P for SIPp's ``-mp``: SIPp binds P (audio) and P + 2 (video), both free."""
    for _ in range(attempts):
        port = free_port()
        if port + 2 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 2))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no media port pair free after {attempts} tries")


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


# --- /healthz latency ----------------------------------------------------------------------


class HealthProbe:
    """Asks ``GET /healthz`` every ``interval`` seconds in a thread, on one kept-alive HTTP
    connection, and keeps (start, latency) of each answer (latency None: no answer in 5 s)."""

    def __init__(self, port: int, interval: float, limit: int = 100_000) -> None:
        self.port = port
        self.interval = interval
        self.limit = limit
        self.samples: list[tuple[float, float | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthz-probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        for _ in range(self.limit):  # bounded in count; each round waits at least interval
            if self._stop.is_set():
                break
            started = time.perf_counter()
            latency: float | None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5.0)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                latency = time.perf_counter() - started if response.status == 200 else None
            except (OSError, http.client.HTTPException):
                latency = None
                if conn is not None:
                    conn.close()
                conn = None
            self.samples.append((started, latency))
            self._stop.wait(max(0.0, self.interval - (time.perf_counter() - started)))
        if conn is not None:
            conn.close()

    def between(self, start: float, end: float) -> list[float | None]:
        """Latencies of the requests sent from ``start`` to ``end`` (perf_counter seconds)."""
        return [lat for at, lat in self.samples if start <= at <= end]


def _ms(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(p50, max) in milliseconds of the answered ones, and how many got no answer."""
    answered = sorted(v for v in values if v is not None)
    missing = len(values) - len(answered)
    if not answered:
        return None, None, missing
    return 1000 * statistics.median(answered), 1000 * answered[-1], missing


# --- one step: N callers held for a window ---------------------------------------------------


@dataclass
class Step:
    """N calls of one kind (``ivr`` or ``relay``) held through a measuring window."""

    mode: str
    calls: int
    hold: float = 0.0
    setup_s: float = 0.0
    window: float = 0.0
    in_state: int = 0
    """Calls in the expected state at the window's end (IVR: in the menu; relay: bridged)."""
    digits_ok: int = 0
    """Calls whose digits were all recognised, in order."""
    dtmf_lines: int = 0
    sipp_successful: int = 0
    sipp_failed: int = 0
    server_cpu: float = 0.0
    """The switch's CPU seconds per wall second of the window (1.0 = its whole core)."""
    loop_wait: float = 0.0
    generator_cpu: float = 0.0
    out_pps_mean: float = 0.0
    out_pps_min: float = 0.0
    """Packets the switch sent per leg per second: the prompt (IVR) or the relayed stream."""
    in_pps_mean: float = 0.0
    in_pps_min: float = 0.0
    """Packets the switch received from each caller per second."""
    health_p50_ms: float | None = None
    health_max_ms: float | None = None
    health_missing: int = 0
    calls_read_ms: float = 0.0
    passed: bool = False
    generator_bound: bool = False
    disturbed: bool = False
    reason: str = ""
    attempt: int = 1

    @property
    def cpu_ms_per_caller(self) -> float:
        """Switch CPU milliseconds per caller per second of the call."""
        return 1000.0 * self.server_cpu / self.calls if self.calls else 0.0

    @property
    def per_core(self) -> float:
        """Callers one core would hold at MAX_SERVER_CPU at this cost (a projection)."""
        return MAX_SERVER_CPU * self.calls / self.server_cpu if self.server_cpu else 0.0


@dataclass
class RunPlan:
    """Every loop of the ramp is bounded by these."""

    steps: tuple[int, ...]
    rate: float
    window: float
    settle: float
    budget: float
    pin: bool
    inband_dtmf: str


def hold_seconds(n: int, plan: RunPlan) -> float:
    """How long each of N callers stays: set-up of all N, slack, settling, the window."""
    return n / plan.rate + UP_SLACK + plan.settle + plan.window


def switch_overrides(hold: float, inband_dtmf: str) -> dict[str, Any]:
    """Settings of the switch under test on top of the test defaults (tests/interop)."""
    return {
        "logging.level": "info",  # as deployed: a DTMF line per digit, a line per call
        "security.max_transactions_per_source": 1_000_000,
        "calls.max_calls": 100_000,
        "media.anchor": True,
        "media.rtp_port_min": RTP_PORT_MIN,
        "media.rtp_port_max": RTP_PORT_MAX,
        "media.inband_dtmf": inband_dtmf,
        # the relayed calls' callee sends no RTP: keep them past the hold time
        "media.dead_peer_timeout": max(60, int(hold) + 30),
        "dialplan.file": str(PLAN),
        **sipp_overrides(),
    }


def _digits_of(call: dict[str, Any]) -> str:
    return "".join(
        str(d.get("digit", "")) for d in call.get("digits") or () if d.get("side") == "a"
    )


def _in_state(mode: str, call: dict[str, Any]) -> bool:
    if mode == "ivr":
        view = call.get("dialplan") or {}
        return (
            call.get("answered") is not None
            and view.get("context") == "ivr"
            and "goto ivr" in (view.get("path") or ())
        )
    media = call.get("media") or {}
    return call.get("state") == "confirmed" and "b" in media


def _packets(call: dict[str, Any], leg: str, key: str) -> int | None:
    media = call.get("media") or {}
    counters = media.get(leg) or {}
    value = counters.get(key)
    return int(value) if isinstance(value, int) else None


def read_calls(server: ServerProcess) -> tuple[list[dict[str, Any]], float, float]:
    """``GET /api/calls``: the calls, and the perf_counter times the request was sent and
    answered (the counters were read in between)."""
    sent = time.perf_counter()
    calls = server.api("/api/calls", timeout=30.0).get("calls") or []
    return list(calls), sent, time.perf_counter()


def analyse(
    step: Step, before: list[dict[str, Any]], after: list[dict[str, Any]], dt: float
) -> None:
    """Fill ``step`` from two readings of /api/calls ``dt`` seconds apart."""
    out_leg = "a" if step.mode == "ivr" else "b"
    first = {c.get("call_id"): c for c in before}
    outs: list[float] = []
    ins: list[float] = []
    for call in after:
        if _in_state(step.mode, call):
            step.in_state += 1
        if _digits_of(call) == EXPECTED_DIGITS:
            step.digits_ok += 1
        earlier = first.get(call.get("call_id"))
        if earlier is None or dt <= 0:
            continue
        for leg, key, into in ((out_leg, "packets_out", outs), ("a", "packets_in", ins)):
            now_n, then_n = _packets(call, leg, key), _packets(earlier, leg, key)
            into.append((now_n - then_n) / dt if now_n is not None and then_n is not None else 0)
    # a call missing from either reading counts as a leg that sent or received nothing
    missing = [0.0] * max(0, step.calls - len(outs))
    if outs or missing:
        step.out_pps_mean = statistics.fmean(outs + missing)
        step.out_pps_min = min(outs + missing)
    if ins or missing:
        step.in_pps_mean = statistics.fmean(ins + missing)
        step.in_pps_min = min(ins + missing)


def judge(step: Step, sipp: SippResult | None) -> None:
    """Pass or fail, with the reasons."""
    reasons: list[str] = []
    if sipp is not None and sipp.stats is not None:
        step.sipp_successful = sipp.stats.successful
        step.sipp_failed = sipp.stats.failed
    if sipp is None or sipp.stats is None or sipp.timed_out:
        reasons.append("SIPp gave no statistics or did not finish in time")
    elif step.sipp_successful < step.calls or step.sipp_failed:
        why = ", ".join(f"{k} {v}" for k, v in sipp.stats.failures.items())
        reasons.append(
            f"SIPp: {step.sipp_successful}/{step.calls} calls ok, {step.sipp_failed} failed"
            + (f" ({why})" if why else "")
        )
    if step.in_state < step.calls:
        what = "in the menu" if step.mode == "ivr" else "bridged"
        reasons.append(f"{step.in_state}/{step.calls} calls {what}")
    if step.mode == "ivr" and step.digits_ok < step.calls:
        reasons.append(f"digits recognised on {step.digits_ok}/{step.calls} calls")
    if step.server_cpu >= MAX_SERVER_CPU:
        reasons.append(f"switch CPU {100 * step.server_cpu:.0f} %")
    if step.out_pps_min < MIN_PACKETS_PER_S:
        reasons.append(f"sent {step.out_pps_min:.1f} packets/s on the slowest leg")
    if step.in_pps_min < MIN_PACKETS_PER_S:
        reasons.append(f"received {step.in_pps_min:.1f} packets/s from the slowest caller")
    if step.generator_cpu > MAX_GENERATOR_CPU:
        step.generator_bound = True
        reasons.append(f"generator-bound (SIPp CPU {100 * step.generator_cpu:.0f} %)")
    if reasons and step.loop_wait > MAX_LOOP_WAIT:
        step.disturbed = True
        reasons.append(
            f"disturbed (the switch's loop waited for its CPU {100 * step.loop_wait:.1f} % "
            "of the window)"
        )
    step.passed = not reasons
    step.reason = "; ".join(reasons)


def run_step(mode: str, n: int, plan: RunPlan, workdir: Path, attempt: int) -> Step:
    """Start a switch, place N calls of ``mode``, measure the window, end everything."""
    folder = workdir / f"{mode}-{n}-{attempt}"
    folder.mkdir(parents=True, exist_ok=True)
    ramp_s = n / plan.rate
    hold = hold_seconds(n, plan)
    step = Step(mode, n, hold=round(hold, 1), attempt=attempt)
    scenario = caller_scenario(folder, hold + 2.0)
    cpu = SERVER_CPU if plan.pin else None
    sipp_cpu = SIPP_CPU if plan.pin else None
    server = softswitch_server(folder, cpu=cpu, overrides=switch_overrides(hold, plan.inband_dtmf))
    callee: SippProcess | None = None
    caller: SippProcess | None = None
    result: SippResult | None = None
    try:
        server.start(timeout=30.0)
        number = IVR_NUMBER
        if mode == "relay":
            number = RELAY_NUMBER
            uas_port = free_port()
            users = write_injection(
                folder / "callee.csv", [[RELAY_NUMBER, USERS[RELAY_NUMBER], DOMAIN]]
            )
            registered = register_contact(
                server.address, users, DOMAIN, uas_port, workdir=folder / "register"
            )
            if not registered.ok:
                step.reason = "could not register the callee: " + registered.describe()[:500]
                return step
            callee = SippProcess(
                CALLEE_SCENARIO,
                *("-p", str(uas_port), "-mp", str(free_media_port())),
                *("-max_recv_loops", "10000", "-max_sched_loops", "10000"),
                workdir=folder / "callee",
                cpu=sipp_cpu,
            )
            time.sleep(0.3)
        users = write_injection(
            folder / "caller.csv", [["1001", USERS["1001"], DOMAIN, str(EVENT_PT)]]
        )
        caller = SippProcess(
            scenario,
            server.address,
            *("-inf", str(users), "-s", number, "-auth_uri", f"{number}@{DOMAIN}"),
            *("-p", str(free_port()), "-mp", str(free_media_port())),
            *("-d", str(int(hold * 1000)), "-m", str(n), "-l", str(n), "-r", f"{plan.rate:g}"),
            *("-recv_timeout", "30000", "-timeout", f"{int(hold + ramp_s + 60)}s"),
            *("-max_recv_loops", "10000", "-max_sched_loops", "10000"),
            workdir=folder / "caller",
            cpu=sipp_cpu,
        )
        started = time.monotonic()
        up, doc = server.wait_health(
            lambda d: int(d.get("calls", 0)) >= n, timeout=ramp_s + UP_SLACK - 1.0, interval=0.5
        )
        step.setup_s = time.monotonic() - started
        if not up:
            step.reason = f"only {doc.get('calls', '?')}/{n} calls up after {step.setup_s:.0f} s"
            result = caller.stop(grace=5.0)
            return step
        time.sleep(plan.settle)  # the last callers' digits are in; the media is steady
        generators = [p.pid for p in (caller, callee) if p is not None]
        with HealthProbe(server.http_port, HEALTH_EVERY) as probe:
            before, sent_a, got_a = read_calls(server)
            cpu_a, wait_a, gen_a = (
                server.cpu_seconds(),
                loop_waited_seconds(server.pid),
                cpu_seconds(generators),
            )
            window_start = time.perf_counter()
            time.sleep(plan.window)
            cpu_b, wait_b, gen_b = (
                server.cpu_seconds(),
                loop_waited_seconds(server.pid),
                cpu_seconds(generators),
            )
            window_end = time.perf_counter()
            after, sent_b, got_b = read_calls(server)
        step.window = window_end - window_start
        step.server_cpu = (cpu_b - cpu_a) / step.window
        step.loop_wait = (wait_b - wait_a) / step.window
        step.generator_cpu = (gen_b - gen_a) / step.window
        step.calls_read_ms = 1000 * max(got_a - sent_a, got_b - sent_b)
        step.health_p50_ms, step.health_max_ms, step.health_missing = _ms(
            probe.between(window_start, window_end)
        )
        analyse(step, before, after, (sent_b + got_b) / 2 - (sent_a + got_a) / 2)
        late = time.monotonic() - (started + hold)
        result = caller.wait(timeout=hold + ramp_s + 45.0 - (time.monotonic() - started))
        judge(step, result)
        if late > -0.5:
            step.passed = False
            step.reason = "; ".join(
                r for r in (step.reason, "the window overlapped the first hang-ups") if r
            )
        return step
    except (OSError, ValueError, ServerStartError) as exc:
        step.reason = f"error: {exc}"[:600]
        return step
    finally:
        if caller is not None and result is None:
            caller.stop(grace=5.0)
        if callee is not None:
            callee.stop(grace=3.0)
        server.stop()
        step.dtmf_lines = sum(1 for line in server.stderr_text().splitlines() if ": DTMF " in line)


def step_line(s: Step) -> str:
    verdict = "pass" if s.passed else f"FAIL ({s.reason})"
    health = (
        f"{s.health_p50_ms:.1f}/{s.health_max_ms:.1f}ms"
        if s.health_p50_ms is not None and s.health_max_ms is not None
        else "-"
    )
    return (
        f"{LABELS[s.mode]:<25} N={s.calls:>4}: up in {s.setup_s:4.1f}s, "
        f"{'in menu' if s.mode == 'ivr' else 'bridged'} {s.in_state}/{s.calls}, "
        f"digits {s.digits_ok}/{s.calls} (log {s.dtmf_lines}), "
        f"switch {100 * s.server_cpu:5.1f}% = {s.cpu_ms_per_caller:.3f} ms/caller/s, "
        f"sent {s.out_pps_mean:4.1f} (min {s.out_pps_min:4.1f}) recv {s.in_pps_mean:4.1f} "
        f"(min {s.in_pps_min:4.1f}) pkt/s/leg, loop wait {100 * s.loop_wait:.1f}%, "
        f"sipp {100 * s.generator_cpu:4.1f}%, healthz p50/max {health}, "
        f"sipp {s.sipp_successful} ok {s.sipp_failed} failed -> {verdict}"
    )


def ramp(plan: RunPlan, workdir: Path) -> dict[str, list[Step]]:
    """Per N, the baseline then the IVR step; up to the first IVR step that fails."""
    steps: dict[str, list[Step]] = {mode: [] for mode in MODES}
    started = time.monotonic()
    quiet_waited = 0.0
    for n in plan.steps:
        if time.monotonic() - started > plan.budget:
            print(f"  time budget of {plan.budget:.0f} s used up", flush=True)
            break
        stop = False
        for mode in MODES:
            step: Step | None = None
            for attempt in range(1, MAX_ATTEMPTS + 1):
                limit = max(0.0, min(QUIET_WAIT_SECONDS, QUIET_BUDGET_SECONDS - quiet_waited))
                waited = wait_for_quiet((SIPP_CPU, SERVER_CPU), limit) if plan.pin else 0.0
                quiet_waited += waited
                if waited >= 1.0:
                    print(f"  (waited {waited:.0f} s for other work on the machine to pause)")
                step = run_step(mode, n, plan, workdir, attempt)
                print(f"  {step_line(step)}", flush=True)
                if step.passed or step.generator_bound or not step.disturbed:
                    break
            assert step is not None
            steps[mode].append(step)
            if mode == "ivr" and not step.passed:
                stop = True
            if step.generator_bound:
                stop = True
        if stop:
            break
    return steps


def best(steps: Sequence[Step]) -> Step | None:
    passing = [s for s in steps if s.passed]
    return max(passing, key=lambda s: s.calls) if passing else None


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
    for s in steps.get("ivr", ()):
        r = relay.get(s.calls)
        ratio = f"{s.server_cpu / r.server_cpu:.2f}" if r and r.server_cpu else "-"
        health = f"{s.health_max_ms:.1f}" if s.health_max_ms is not None else "-"
        result = "pass" if s.passed else "FAIL"
        if r is not None and not r.passed:
            result += " (relay failed)"
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
        lines.append(
            f"IVR: {top.calls} callers passed (largest N); the switch used "
            f"{100 * top.server_cpu:.1f} % of its core = {top.cpu_ms_per_caller:.3f} ms CPU per "
            f"caller per second; at {100 * MAX_SERVER_CPU:.0f} % of a core that cost gives "
            f"~{top.per_core:.0f} callers"
        )
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
    overrides = switch_overrides(60.0, "auto")
    overrides["dialplan.file"] = str(plan_path)
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
    idle = _ms(f.idle_health)
    busy = _ms(f.reload_health)

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


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": sys.version.split()[0]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.ivr", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N = 100, 300; 4 s windows")
    parser.add_argument("--steps", help="comma-separated numbers of callers, in order")
    parser.add_argument("--rate", type=float, help="calls set up per second (default 50)")
    parser.add_argument("--window", type=float, help="measuring seconds per step (default 10)")
    parser.add_argument("--budget", type=float, help="seconds for the whole IVR ramp")
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

    steps = tuple(int(x) for x in args.steps.split(",")) if args.steps else None
    steps = steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    most = (RTP_PORT_MAX - RTP_PORT_MIN) // 4  # two port pairs per call
    steps = tuple(n for n in steps if 0 < n <= most)
    rate = args.rate or 50.0
    window = args.window or (4.0 if args.quick else 10.0)
    reloads = args.reloads or 5
    if rate <= 0 or window <= 0 or reloads < 1:
        parser.error("--rate, --window and --reloads must be positive")
    budget = args.budget or (300.0 if args.quick else 1200.0)
    pin = len(os.sched_getaffinity(0)) >= 2 and {SIPP_CPU, SERVER_CPU} <= os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {SIPP_CPU})
    plan = RunPlan(
        steps=steps,
        rate=rate,
        window=window,
        settle=2.0 if args.quick else 3.0,
        budget=budget,
        pin=pin,
        inband_dtmf=args.inband_dtmf,
    )
    prompt_s = menu_prompt_seconds()
    fits = tuple(n for n in steps if hold_seconds(n, plan) + 3.0 < prompt_s)
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
    workdir = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    ivr_steps: dict[str, list[Step]] = {}
    reload: ReloadFigures | None = None
    try:
        if args.only != "reload":
            ivr_steps = ramp(plan, workdir)
        if args.only != "ivr":
            print(f"  reload: {reloads} runs of each timing ...", flush=True)
            reload = reload_bench(reloads, args.seed, pin, workdir)
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    lines: list[str] = []
    if ivr_steps:
        lines += ivr_report(ivr_steps)
    if reload is not None:
        lines += reload_report(reload)
    print("\n".join(lines))
    elapsed = time.monotonic() - started
    print(f"({elapsed:.0f} s)")
    if args.json:
        data = {
            "machine": _machine(),
            "seconds": round(elapsed, 1),
            "ivr": {
                mode: [asdict(s) | {"cpu_ms_per_caller": s.cpu_ms_per_caller} for s in found]
                for mode, found in ivr_steps.items()
            },
            "reload": asdict(reload) if reload is not None else None,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    failed = (args.only != "reload" and best(ivr_steps.get("ivr", ())) is None) or (
        args.only != "ivr" and (reload is None or bool(reload.error) or not reload.api_s)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
