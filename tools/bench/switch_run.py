"""N SIPp callers held on a pinned switch through a measuring window, against N relayed calls.

What ``tools/bench/ivr.py`` (callers in an IVR menu) and ``tools/bench/acd.py`` (callers
waiting in a queue) both do with the real switch: the switch (``python -m softswitch``) runs on
CPU 1 with ``taskset``, SIPp and the bench on CPU 0. A step starts a fresh switch, and SIPp
places N calls (``tools/sipp/uac_pcap_dtmf.xml``: INVITE, 407, INVITE with credentials, 200,
ACK, media, BYE) that each send G.711 RTP at 50 packets/s for the whole call: a capture that
starts like ``tools/sipp/pcap/dtmf_rfc4733.pcap`` (300 ms of a quiet tone, then the digits
1 5 9 # 0 * as RFC 4733 telephone-events) and goes on with the tone. Each call is held until
all N are up, the bench's settling time and a measuring window have passed. In the window the
bench reads:

- the switch's CPU share of its core: utime + stime of its process (/proc/PID/stat) over the
  window's wall time, and how long its event loop thread waited, runnable, for the core;
- per leg, the RTP packets the switch sent and received per second, from ``GET /api/calls``
  (media counters) read at both ends of the window;
- how many calls are in the state the bench expects (``SwitchBench.in_state``);
- ``GET /healthz`` latency every 0.25 s (how promptly the event loop answers under the load).

A step **passes** when SIPp completed all N calls without a failure, all N were in the
expected state, the bench's own checks hold (``SwitchBench.reasons``), the switch used < 90 %
of its core, and every leg got >= 49 packets/s from the switch and sent it >= 49. The
baseline (``relay``), measured at every N in the same run, is the same N callers dialling 1002
instead: the switch bridges them to a SIPp UAS registered as 1002 and relays their RTP. Before
each step the bench waits (up to 10 s each, a budget in all) for both cores to be nearly idle,
and a failing step whose event loop waited for its CPU (other work on the machine) runs once
more. A step whose SIPp used > 90 % of its core is generator-bound and ends the ramp, as does
the first failing step of the measured kind.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from tests.interop.servers import (
    DOMAIN,
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
    write_injection,
)
from tools.bench.media_relay import loop_waited_seconds, wait_for_quiet
from tools.sipp.make_dtmf_pcap import (
    AUDIO_PT,
    EVENT_PT,
    FIRST_TIMESTAMP,
    PTIME_MS,
    SAMPLES_PER_PACKET,
    START_TIME,
    RtpPacket,
    ethernet_frame,
    rtp_stream,
    tone_payload,
)

SERVER_CPU = 1
SIPP_CPU = 0
CALLER_SCENARIO = SCENARIO_DIR / "uac_pcap_dtmf.xml"
CALLEE_SCENARIO = "uas_answer.xml"
#: The capture's name as the caller scenario plays it, looked up next to the scenario first.
CAPTURE_NAME = Path("pcap") / "dtmf_rfc4733.pcap"
RELAY_NUMBER = "1002"
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
HEALTH_EVERY = 0.25

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


# --- the switch -----------------------------------------------------------------------------


def switch_overrides(hold: float, dialplan: Path, inband_dtmf: str = "auto") -> dict[str, Any]:
    """Settings of the switch under test on top of the test defaults (tests/interop): info
    logs as deployed, no per-source or call limits in the way, media anchored on the bench's
    RTP ports, ``dialplan`` as its plan."""
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
        "dialplan.file": str(dialplan),
        **sipp_overrides(),
    }


def read_calls(server: ServerProcess) -> tuple[list[dict[str, Any]], float, float]:
    """``GET /api/calls``: the calls, and the perf_counter times the request was sent and
    answered (the counters were read in between)."""
    sent = time.perf_counter()
    calls = server.api("/api/calls", timeout=30.0).get("calls") or []
    return list(calls), sent, time.perf_counter()


def _packets(call: dict[str, Any], leg: str, key: str) -> int | None:
    counters = (call.get("media") or {}).get(leg) or {}
    value = counters.get(key)
    return int(value) if isinstance(value, int) else None


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


def latency_ms(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(p50, max) in milliseconds of the answered ones, and how many got no answer."""
    answered = sorted(v for v in values if v is not None)
    missing = len(values) - len(answered)
    if not answered:
        return None, None, missing
    return 1000 * statistics.median(answered), 1000 * answered[-1], missing


# --- one step: N callers held for a window ---------------------------------------------------


@dataclass
class CallStep:
    """N calls of one kind (the bench's measured kind or ``relay``) held through a measuring
    window."""

    mode: str
    calls: int
    hold: float = 0.0
    setup_s: float = 0.0
    window: float = 0.0
    in_state: int = 0
    """Calls in the expected state at the window's end (relay: bridged)."""
    sipp_successful: int = 0
    sipp_failed: int = 0
    server_cpu: float = 0.0
    """The switch's CPU seconds per wall second of the window (1.0 = its whole core)."""
    loop_wait: float = 0.0
    generator_cpu: float = 0.0
    out_pps_mean: float = 0.0
    out_pps_min: float = 0.0
    """Packets the switch sent per leg per second: to the caller (measured kind) or the
    relayed stream."""
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


StepT = TypeVar("StepT", bound=CallStep)


class SwitchBench(abc.ABC, Generic[StepT]):
    """A ramp of steps of N callers: per N the relayed baseline, then the measured kind. A
    bench names its measured kind, the number its callers dial, the switch's settings and
    what a call in the expected state looks like; the hooks add its own readings."""

    measured: str
    """The kind of call under test (``ivr``, ``queue``); ``relay`` is the baseline."""
    number: str
    """The number the measured kind of callers dial."""
    place: str
    """Where a measured call is expected to be (``menu``, ``queue``)."""
    labels: dict[str, str]
    up_slack: float
    """Seconds the calls' hold time leaves beyond the nominal set-up time (N / rate) for
    set-ups that come late: the window must end before the first caller hangs up."""
    quiet_budget: float
    """Seconds in all the ramp waits for quiet cores."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan

    @property
    def modes(self) -> tuple[str, str]:
        return ("relay", self.measured)

    def hold_seconds(self, n: int) -> float:
        """How long each of N callers stays: set-up of all N, slack, settling, the window."""
        return n / self.plan.rate + self.up_slack + self.plan.settle + self.plan.window

    @abc.abstractmethod
    def new_step(self, mode: str, n: int, hold: float, attempt: int) -> StepT:
        """A step not yet measured."""

    @abc.abstractmethod
    def overrides(self, hold: float) -> dict[str, Any]:
        """The switch's settings for a step whose callers stay ``hold`` seconds."""

    @abc.abstractmethod
    def in_place(self, call: dict[str, Any]) -> bool:
        """Whether a call of ``GET /api/calls`` is where a measured call should be."""

    def in_state(self, mode: str, call: dict[str, Any]) -> bool:
        """Whether a call of ``GET /api/calls`` is where a call of ``mode`` should be: a
        relayed one confirmed with its B leg."""
        if mode == self.measured:
            return self.in_place(call)
        media = call.get("media") or {}
        return call.get("state") == "confirmed" and "b" in media

    def tally(self, step: StepT, call: dict[str, Any]) -> None:
        """Count what the bench checks on each call of the window's last reading."""

    def window_opens(self, server: ServerProcess, step: StepT) -> None:
        """Read what the bench needs before the window's first reading of /api/calls."""

    def window_closes(self, server: ServerProcess, step: StepT) -> None:
        """Read what the bench needs after the window's last reading of /api/calls."""

    def reasons(self, step: StepT) -> list[str]:
        """The bench's own reasons for a step to fail."""
        return []

    def after_stop(self, step: StepT, log: str) -> None:
        """Read the stopped switch's log (stderr)."""

    def details(self, step: StepT) -> str:
        """The bench's own readings in a step's progress line (ending in ", ", or empty)."""
        return ""

    def analyse(
        self, step: StepT, before: list[dict[str, Any]], after: list[dict[str, Any]], dt: float
    ) -> None:
        """Fill ``step`` from two readings of /api/calls ``dt`` seconds apart."""
        out_leg = "a" if step.mode == self.measured else "b"
        first = {c.get("call_id"): c for c in before}
        outs: list[float] = []
        ins: list[float] = []
        for call in after:
            if self.in_state(step.mode, call):
                step.in_state += 1
            self.tally(step, call)
            earlier = first.get(call.get("call_id"))
            if earlier is None or dt <= 0:
                continue
            for leg, key, into in ((out_leg, "packets_out", outs), ("a", "packets_in", ins)):
                now_n, then_n = _packets(call, leg, key), _packets(earlier, leg, key)
                into.append(
                    (now_n - then_n) / dt if now_n is not None and then_n is not None else 0
                )
        # a call missing from either reading counts as a leg that sent or received nothing
        missing = [0.0] * max(0, step.calls - len(outs))
        if outs or missing:
            step.out_pps_mean = statistics.fmean(outs + missing)
            step.out_pps_min = min(outs + missing)
        if ins or missing:
            step.in_pps_mean = statistics.fmean(ins + missing)
            step.in_pps_min = min(ins + missing)

    def judge(self, step: StepT, sipp: SippResult | None) -> None:
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
            what = f"in the {self.place}" if step.mode == self.measured else "bridged"
            reasons.append(f"{step.in_state}/{step.calls} calls {what}")
        reasons += self.reasons(step)
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

    def run_step(self, mode: str, n: int, workdir: Path, attempt: int) -> StepT:
        """Start a switch, place N calls of ``mode``, measure the window, end everything."""
        plan = self.plan
        folder = workdir / f"{mode}-{n}-{attempt}"
        folder.mkdir(parents=True, exist_ok=True)
        ramp_s = n / plan.rate
        hold = self.hold_seconds(n)
        step = self.new_step(mode, n, round(hold, 1), attempt)
        scenario = caller_scenario(folder, hold + 2.0)
        cpu = SERVER_CPU if plan.pin else None
        sipp_cpu = SIPP_CPU if plan.pin else None
        server = softswitch_server(folder, cpu=cpu, overrides=self.overrides(hold))
        callee: SippProcess | None = None
        caller: SippProcess | None = None
        result: SippResult | None = None
        try:
            server.start(timeout=30.0)
            number = self.number
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
                lambda d: int(d.get("calls", 0)) >= n,
                timeout=ramp_s + self.up_slack - 1.0,
                interval=0.5,
            )
            step.setup_s = time.monotonic() - started
            if not up:
                step.reason = (
                    f"only {doc.get('calls', '?')}/{n} calls up after {step.setup_s:.0f} s"
                )
                result = caller.stop(grace=5.0)
                return step
            time.sleep(plan.settle)  # the last callers' digits are in; the media is steady
            generators = [p.pid for p in (caller, callee) if p is not None]
            with HealthProbe(server.http_port, HEALTH_EVERY) as probe:
                self.window_opens(server, step)
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
                self.window_closes(server, step)
            step.window = window_end - window_start
            step.server_cpu = (cpu_b - cpu_a) / step.window
            step.loop_wait = (wait_b - wait_a) / step.window
            step.generator_cpu = (gen_b - gen_a) / step.window
            step.calls_read_ms = 1000 * max(got_a - sent_a, got_b - sent_b)
            step.health_p50_ms, step.health_max_ms, step.health_missing = latency_ms(
                probe.between(window_start, window_end)
            )
            self.analyse(step, before, after, (sent_b + got_b) / 2 - (sent_a + got_a) / 2)
            late = time.monotonic() - (started + hold)
            result = caller.wait(timeout=hold + ramp_s + 45.0 - (time.monotonic() - started))
            self.judge(step, result)
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
            self.after_stop(step, server.stderr_text())

    def step_line(self, s: StepT) -> str:
        """A step's progress line."""
        verdict = "pass" if s.passed else f"FAIL ({s.reason})"
        health = (
            f"{s.health_p50_ms:.1f}/{s.health_max_ms:.1f}ms"
            if s.health_p50_ms is not None and s.health_max_ms is not None
            else "-"
        )
        state = f"in {self.place}" if s.mode == self.measured else "bridged"
        return (
            f"{self.labels[s.mode]:<25} N={s.calls:>4}: up in {s.setup_s:4.1f}s, "
            f"{state} {s.in_state}/{s.calls}, {self.details(s)}"
            f"switch {100 * s.server_cpu:5.1f}% = {s.cpu_ms_per_caller:.3f} ms/caller/s, "
            f"sent {s.out_pps_mean:4.1f} (min {s.out_pps_min:4.1f}) recv {s.in_pps_mean:4.1f} "
            f"(min {s.in_pps_min:4.1f}) pkt/s/leg, loop wait {100 * s.loop_wait:.1f}%, "
            f"sipp {100 * s.generator_cpu:4.1f}%, healthz p50/max {health}, "
            f"sipp {s.sipp_successful} ok {s.sipp_failed} failed -> {verdict}"
        )

    def ramp(self, workdir: Path) -> dict[str, list[StepT]]:
        """Per N, the baseline then the measured step; up to the first measured step that
        fails (or a generator-bound one)."""
        plan = self.plan
        steps: dict[str, list[StepT]] = {mode: [] for mode in self.modes}
        started = time.monotonic()
        quiet_waited = 0.0
        for n in plan.steps:
            if time.monotonic() - started > plan.budget:
                print(f"  time budget of {plan.budget:.0f} s used up", flush=True)
                break
            stop = False
            for mode in self.modes:
                step: StepT | None = None
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    limit = max(0.0, min(QUIET_WAIT_SECONDS, self.quiet_budget - quiet_waited))
                    waited = wait_for_quiet((SIPP_CPU, SERVER_CPU), limit) if plan.pin else 0.0
                    quiet_waited += waited
                    if waited >= 1.0:
                        print(f"  (waited {waited:.0f} s for other work on the machine to pause)")
                    step = self.run_step(mode, n, workdir, attempt)
                    print(f"  {self.step_line(step)}", flush=True)
                    if step.passed or step.generator_bound or not step.disturbed:
                        break
                assert step is not None
                steps[mode].append(step)
                if (mode == self.measured and not step.passed) or step.generator_bound:
                    stop = True
            if stop:
                break
        return steps


def best(steps: Sequence[StepT]) -> StepT | None:
    """The passing step with the most callers."""
    passing = [s for s in steps if s.passed]
    return max(passing, key=lambda s: s.calls) if passing else None


def beside_relay(
    steps: dict[str, list[StepT]], measured: str
) -> Iterator[tuple[StepT, StepT | None, str, str]]:
    """Each measured step with the relayed step of the same N (if any), the ratio of their
    CPU as text, and the measured step's result (noting a baseline that failed)."""
    relay = {s.calls: s for s in steps.get("relay", ())}
    for s in steps.get(measured, ()):
        r = relay.get(s.calls)
        ratio = f"{s.server_cpu / r.server_cpu:.2f}" if r and r.server_cpu else "-"
        result = "pass" if s.passed else "FAIL"
        if r is not None and not r.passed:
            result += " (relay failed)"
        yield s, r, ratio, result


def largest_passed(label: str, top: CallStep) -> str:
    """The closing line of the largest N that passed: its CPU, per caller, and the callers a
    core would hold at that cost."""
    return (
        f"{label}: {top.calls} callers passed (largest N); the switch used "
        f"{100 * top.server_cpu:.1f} % of its core = {top.cpu_ms_per_caller:.3f} ms CPU per "
        f"caller per second; at {100 * MAX_SERVER_CPU:.0f} % of a core that cost gives "
        f"~{top.per_core:.0f} callers"
    )


# --- a bench's command line and its figures --------------------------------------------------


def add_ramp_arguments(
    parser: argparse.ArgumentParser, *, rate: float, window: float, ramp: str
) -> None:
    """The options of a ramp of steps, their defaults named in the help."""
    parser.add_argument("--steps", help="comma-separated numbers of callers, in order")
    parser.add_argument("--rate", type=float, help=f"calls set up per second (default {rate:g})")
    parser.add_argument(
        "--window", type=float, help=f"measuring seconds per step (default {window:g})"
    )
    parser.add_argument("--budget", type=float, help=f"seconds for the whole {ramp} ramp")


def ramp_steps(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    """The numbers of callers of ``--steps`` (or ``default``), those the RTP ports can carry
    (two port pairs per call)."""
    steps = tuple(int(x) for x in text.split(",")) if text else None
    most = (RTP_PORT_MAX - RTP_PORT_MIN) // 4
    return tuple(n for n in steps or default if 0 < n <= most)


def can_pin() -> bool:
    """Whether this process may run on both the switch's and SIPp's CPUs."""
    cpus = os.sched_getaffinity(0)
    return len(cpus) >= 2 and {SIPP_CPU, SERVER_CPU} <= cpus


@contextlib.contextmanager
def work_folder(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary folder for the steps' files, removed at the end unless ``keep``; an
    interrupt (Ctrl-C) ends the run there and the bench reports what it measured."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        if keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": sys.version.split()[0]}


def finish(
    lines: list[str], started: float, json_path: Path | None, figures: dict[str, Any]
) -> None:
    """Print the report and the run's seconds (since ``started``, monotonic); with
    ``--json``, write the figures too, after the machine they come from and the seconds."""
    print("\n".join(lines))
    elapsed = time.monotonic() - started
    print(f"({elapsed:.0f} s)")
    if json_path:
        data = {"machine": _machine(), "seconds": round(elapsed, 1), **figures}
        json_path.write_text(json.dumps(data, indent=2) + "\n")


def steps_json(steps: dict[str, list[StepT]]) -> dict[str, list[dict[str, Any]]]:
    """Every figure of every step, by kind, with the CPU milliseconds per caller."""
    return {
        mode: [asdict(s) | {"cpu_ms_per_caller": s.cpu_ms_per_caller} for s in found]
        for mode, found in steps.items()
    }
