"""Running SIPp scenarios from tools/sipp/ and reading their statistics.

SIPp's exit code is 0 when every call of the run succeeded, 1 when at least one
failed, 97 when it was stopped by an internal command, 99 when it ended without
processing a call, and 255/254 on a fatal error. Every run here also writes the
statistics CSV (``-trace_stat``), the final screen (``-trace_screen``) and the
unexpected messages (``-trace_err``) into a private folder, so a failing run can be
explained from the result alone.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIO_DIR = REPO / "tools" / "sipp"
BUFF_SIZE = "4194304"

#: SIPp's exit codes and what they mean.
EXIT_CODES = {
    0: "all calls succeeded",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "normal exit without calls processed",
    255: "fatal error",
    254: "fatal error binding a socket",
}


def sipp_path() -> str | None:
    """The SIPp executable on PATH, or None."""
    return shutil.which("sipp")


def scenario_path(scenario: str | os.PathLike[str]) -> Path:
    """A scenario given by file name (looked up in tools/sipp/) or by path."""
    path = Path(scenario)
    if path.is_file():
        return path
    candidate = SCENARIO_DIR / path
    if candidate.suffix != ".xml":
        candidate = candidate.with_suffix(".xml")
    if not candidate.is_file():
        raise FileNotFoundError(f"no SIPp scenario {scenario!r} in {SCENARIO_DIR}")
    return candidate


def write_injection(path: Path, rows: Sequence[Sequence[str]], order: str = "SEQUENTIAL") -> Path:
    """Write a SIPp injection file (``-inf``): the order line, then ';'-separated rows."""
    lines = [order] + [";".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def _epoch(cell: str) -> float:
    # Date cells look like "2024-01-02<TAB>10:11:12.131415<TAB>1704190272.131415".
    return float(cell.split("\t")[-1])


def _duration(cell: str) -> float:
    # Durations look like "00:00:01:234567" (h:m:s:us) or "00:00:19" (h:m:s).
    parts = [int(p) for p in cell.strip().split(":") if p != ""]
    if len(parts) == 4:
        h, m, s, us = parts
        return h * 3600 + m * 60 + s + us / 1e6
    if len(parts) == 3:
        h, m, s = parts
        return float(h * 3600 + m * 60 + s)
    raise ValueError(f"not a SIPp duration: {cell!r}")


@dataclass(frozen=True, slots=True)
class SippStats:
    """Cumulative figures from the last line of a SIPp statistics CSV."""

    created: int
    successful: int
    failed: int
    current: int
    retransmissions: int
    elapsed: float
    """Seconds from SIPp's start to its last report."""
    response_time: float | None
    """Mean of response-time 1 (``rtd="1"`` in the scenario) in seconds, if measured."""
    failures: dict[str, int] = field(default_factory=dict)
    """Non-zero Failed*(C) counters by reason."""

    @classmethod
    def from_csv(cls, path: Path) -> SippStats | None:
        """Parse ``path``; None if it is missing or holds no report yet."""
        try:
            text = path.read_text(encoding="latin-1")
        except FileNotFoundError:
            return None
        rows = list(csv.reader(text.splitlines(), delimiter=";"))
        if len(rows) < 2:
            return None
        header, last = rows[0], rows[-1]
        row = dict(zip(header, last, strict=False))

        def number(name: str) -> int:
            value = row.get(name, "0").strip()
            return int(value) if value.isdigit() else 0

        failures = {
            name[len("Failed") : -len("(C)")]: number(name)
            for name in header
            if name.startswith("Failed") and name.endswith("(C)") and name != "FailedCall(C)"
        }
        response_time = None
        if "ResponseTime1(C)" in row:
            response_time = _duration(row["ResponseTime1(C)"])
        try:
            elapsed = _epoch(row["CurrentTime"]) - _epoch(row["StartTime"])
        except (KeyError, ValueError, IndexError):
            elapsed = 0.0
        return cls(
            created=number("TotalCallCreated"),
            successful=number("SuccessfulCall(C)"),
            failed=number("FailedCall(C)"),
            current=number("CurrentCall"),
            retransmissions=number("Retransmissions(C)"),
            elapsed=elapsed,
            response_time=response_time,
            failures={k: v for k, v in failures.items() if v},
        )


@dataclass(frozen=True, slots=True)
class SippResult:
    """The outcome of one SIPp run."""

    argv: tuple[str, ...]
    returncode: int
    timed_out: bool
    wall_time: float
    stats: SippStats | None
    output: str
    """SIPp's stdout and stderr."""
    screen: str
    """The final statistics screen (``-trace_screen``)."""
    errors: str
    """Unexpected messages (``-trace_err``), possibly cut to the last 20000 characters."""

    @property
    def ok(self) -> bool:
        """Exit code 0 (every call succeeded) within the time limit."""
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        """A multi-line account of the run, for assertion messages."""
        meaning = EXIT_CODES.get(self.returncode, "unknown")
        late = " after a timeout" if self.timed_out else ""
        lines = [
            f"sipp exit {self.returncode} ({meaning}){late}",
            "argv: " + " ".join(self.argv),
            f"stats: {self.stats}",
        ]
        if "must use MD5" in self.errors:
            lines.append(
                "hint: SIPp answers only the first digest challenge and only with MD5; "
                "the server must offer MD5 first or alone (softswitch setting "
                "security.digest_algorithms, see tests/interop/servers.py)"
            )
        if self.errors.strip():
            lines += ["unexpected messages (tail):", self.errors[-4000:]]
        if self.screen.strip():
            lines += ["final screen:", self.screen[-3000:]]
        if self.output.strip():
            lines += ["output (tail):", self.output[-2000:]]
        return "\n".join(lines)


def _has(args: Sequence[str], option: str) -> bool:
    return option in args


class SippProcess:
    """A running SIPp; ``wait()`` or ``stop()`` gives its :class:`SippResult`."""

    def __init__(
        self,
        scenario: str | os.PathLike[str],
        *args: str,
        workdir: Path | None = None,
        cpu: int | None = None,
        local_ip: str = "127.0.0.1",
    ) -> None:
        exe = sipp_path()
        if exe is None:
            raise FileNotFoundError("sipp is not installed (Debian package sip-tester)")
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="sipp-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        stem = f"{Path(scenario).stem}-{os.getpid()}-{time.monotonic_ns()}"
        self.stat_file = self.workdir / f"{stem}.csv"
        self.screen_file = self.workdir / f"{stem}.screen"
        self.error_file = self.workdir / f"{stem}.errors"
        self.output_file = self.workdir / f"{stem}.out"
        argv = [exe, *args, "-sf", str(scenario_path(scenario))]
        if not _has(args, "-i"):
            argv += ["-i", local_ip]
        if not _has(args, "-buff_size"):
            argv += ["-buff_size", BUFF_SIZE]
        argv += ["-nostdin", "-trace_stat", "-stf", str(self.stat_file)]
        if not _has(args, "-fd"):
            argv += ["-fd", "1"]
        argv += ["-trace_screen", "-screen_file", str(self.screen_file)]
        argv += ["-trace_err", "-error_file", str(self.error_file)]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        self.argv = tuple(argv)
        self._out = self.output_file.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        self._result: SippResult | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stats(self) -> SippStats | None:
        """The statistics reported so far (the CSV is written every ``-fd`` seconds)."""
        return SippStats.from_csv(self.stat_file)

    def wait(self, timeout: float) -> SippResult:
        """Wait up to ``timeout`` seconds; a SIPp still running then is stopped."""
        if self._result is not None:
            return self._result
        timed_out = False
        try:
            self.proc.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            self._terminate()
        return self._finish(timed_out)

    def stop(self, grace: float = 5.0) -> SippResult:
        """Ask SIPp to quit (SIGUSR1 = graceful), then terminate it."""
        if self._result is not None:
            return self._result
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGUSR1)
                self.proc.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self._terminate()
        return self._finish(False)

    def _terminate(self) -> None:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue

    def _finish(self, timed_out: bool) -> SippResult:
        wall = time.monotonic() - self.started
        self._out.close()

        def read(path: Path, limit: int = 20000) -> str:
            try:
                text = path.read_text(encoding="latin-1", errors="replace")
            except FileNotFoundError:
                return ""
            return text[-limit:]

        self._result = SippResult(
            argv=self.argv,
            returncode=self.proc.returncode if self.proc.returncode is not None else -1,
            timed_out=timed_out,
            wall_time=wall,
            stats=SippStats.from_csv(self.stat_file),
            output=read(self.output_file),
            screen=read(self.screen_file),
            errors=read(self.error_file),
        )
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self._result

    def __enter__(self) -> SippProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._result is None:
            self.stop()


def run_sipp(
    scenario: str | os.PathLike[str],
    *args: str,
    timeout: float = 60.0,
    workdir: Path | None = None,
    cpu: int | None = None,
) -> SippResult:
    """Run one SIPp scenario to its end, at most ``timeout`` seconds.

    ``args`` are SIPp's own arguments (the remote host:port, ``-m``, ``-inf``, ...);
    ``-sf``, ``-i 127.0.0.1``, ``-buff_size`` and the trace options are added here.
    """
    return SippProcess(scenario, *args, workdir=workdir, cpu=cpu).wait(timeout)


def register_contact(
    server: str,
    injection: Path,
    domain: str,
    contact_port: int,
    *,
    timeout: float = 30.0,
    workdir: Path | None = None,
) -> SippResult:
    """Register the user of ``injection`` with a Contact on 127.0.0.1:``contact_port`` (a
    SIPp UAS that will take the calls), sending from that same port."""
    return run_sipp(
        "register_contact.xml",
        server,
        *("-inf", str(injection), "-auth_uri", domain),
        *("-key", "contact_host", "127.0.0.1", "-key", "contact_port", str(contact_port)),
        *("-p", str(contact_port), "-m", "1"),
        timeout=timeout,
        workdir=workdir,
    )
