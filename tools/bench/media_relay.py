"""RTP relay capacity of one switch process on one core, against a minimal relay baseline.

Two processes on 127.0.0.1:

- the **server** (``--serve relay|minimal``), pinned to CPU 1, runs uvloop with N two-party
  calls: ``relay`` is the switch's own path (``media.transport.RtpEndpoint`` pairs joined by
  ``media.transport.Relay``: symmetric latching, SSRC/sequence/timestamp rewriting per
  direction, RTCP sockets open); ``minimal`` is the baseline, one ``DatagramProtocol`` per RTP
  port that forwards the bytes to its peer's latched address and does nothing else;
- the **load generator** (this process, pinned to CPU 0) plays the phones of all N calls: 172-byte
  G.711 RTP packets (12-byte header, 160 bytes of payload) at 50 packets/s in each direction,
  so 100 packets/s per call through the relay. Calls are spread evenly over the 20 ms packet
  interval (one slot per millisecond), as independent phones would be. Each slot is one
  ``sendmmsg`` per socket, reception is ``recvmmsg`` into one buffer parsed with NumPy, so that
  the generator stays cheap. Each payload carries its stream, a sequence number and the
  generator's send time (``perf_counter_ns``); the delay added by the relay is receive time
  minus send time, both read in the generator.

N steps up; each step starts a fresh server, warms up for a second (latching) and measures for
a fixed window. A step passes with under 0.5 % loss, a 99th-percentile added delay under 5 ms
and the server process under 95 % of its core. rtpengine would be the preferred baseline; it
is used only where ``rtpengine`` is on the PATH (driving it is not implemented yet: the run
says so and falls back to the minimal relay).

Run from the repository root: ``python -m tools.bench.media_relay [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import json
import math
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

HOST = "127.0.0.1"
SERVER_CPU = 1
GENERATOR_CPU = 0
PACKET_SIZE = 172  # 12-byte RTP header + 160 bytes of G.711 (20 ms at 8 kHz)
PACKET_INTERVAL_NS = 20_000_000
SLOTS = 20  # the 20 ms interval in 1 ms slots: calls are spread over them
GEN_SOCKETS = 8  # phones share these sockets; the switch latches onto their addresses
RECV_SLOT = 256  # bytes per packet in the receive buffer (packets are 172)
RECV_BATCH = 512
MAGIC = 0x52544231
MAX_LOSS = 0.005
MAX_P99_MS = 5.0
MAX_SERVER_CPU = 0.95
#: The generator's own limits: below this share of the offered packets sent, or above this
#: share of its core used, a step measures the generator rather than the server.
MIN_SENT_SHARE = 0.98
MAX_GENERATOR_CPU = 0.90
#: A generator whose 1 ms slots ran this late (p99) was itself held up: the machine was busy
#: with something else, and the step says little about the server. Such steps run again.
MAX_GENERATOR_LATE_MS = 2.0
MAX_ATTEMPTS = 3
PORT_FIRST = 16000  # server ports: below the ephemeral range the generator's sockets use
PORT_LAST = 31999
SERVER_MAX_SECONDS = 120.0  # a server exits by itself after this, whatever happens
FULL_STEPS = (50, 100, 200, 300, 400, 500, 600, 700, 800, 1000, 1200, 1500)
QUICK_STEPS = (100, 300, 500, 600, 700, 800, 1000, 1200)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# One packet as sent (itemsize 172) and as received (itemsize RECV_SLOT): the RTP fixed header
# (RFC 3550 §5.1, network byte order) then the generator's fields in the payload.
_FIELDS: dict[str, Any] = {
    "names": ["vpxcc", "mpt", "seq", "ts", "ssrc", "magic", "stream", "gseq", "t_ns", "flag"],
    "formats": ["u1", "u1", ">u2", ">u4", ">u4", "<u4", "<u4", "<u4", "<u8", "u1"],
    "offsets": [0, 1, 2, 4, 8, 12, 16, 20, 24, 32],
}
SEND_DTYPE: np.dtype[Any] = np.dtype(cast(Any, {**_FIELDS, "itemsize": PACKET_SIZE}))
RECV_DTYPE: np.dtype[Any] = np.dtype(cast(Any, {**_FIELDS, "itemsize": RECV_SLOT}))


# --- sendmmsg / recvmmsg through ctypes (Linux) ------------------------------------------


class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("hdr", _Msghdr), ("len", ctypes.c_uint))


_libc = ctypes.CDLL(None, use_errno=True)
_libc.sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
_libc.sendmmsg.restype = ctypes.c_int
_libc.recvmmsg.argtypes = (
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_uint,
    ctypes.c_int,
    ctypes.c_void_p,
)
_libc.recvmmsg.restype = ctypes.c_int
_MSG_DONTWAIT = 0x40


def _sockaddr_in(port: int) -> bytes:
    family = struct.pack("=H", socket.AF_INET)
    return family + struct.pack("!H", port) + socket.inet_aton(HOST) + bytes(8)  # 16 bytes


class SendBatch:
    """Packets that leave one generator socket in one slot: one ``sendmmsg`` each tick."""

    def __init__(self, fd: int, streams: np.ndarray, ports: Sequence[int]) -> None:
        count = len(streams)
        self.fd = fd
        self.count = count
        self.packets = np.zeros(count, dtype=SEND_DTYPE)
        raw = self.packets.view(np.uint8).reshape(count, PACKET_SIZE)
        raw[:, 12:] = 0xFF  # mu-law silence
        p = self.packets
        p["vpxcc"] = 0x80  # version 2
        p["mpt"] = 0  # PCMU
        p["seq"] = (streams * 7919) & 0xFFFF
        p["ts"] = (streams * 104729) & 0xFFFFFFFF
        p["ssrc"] = 0x10000000 + streams
        p["magic"] = MAGIC
        p["stream"] = streams
        self._names = ctypes.create_string_buffer(
            b"".join(_sockaddr_in(ports[int(s)]) for s in streams)
        )
        self._iov = (_Iovec * count)()
        self._msgs = (_Mmsghdr * count)()
        base = p.ctypes.data
        names = ctypes.addressof(self._names)
        for k in range(count):
            self._iov[k].base = base + k * PACKET_SIZE
            self._iov[k].len = PACKET_SIZE
            hdr = self._msgs[k].hdr
            hdr.name = names + 16 * k
            hdr.namelen = 16
            hdr.iov = ctypes.addressof(self._iov[k])
            hdr.iovlen = 1
        self._msgs_addr = ctypes.addressof(self._msgs)

    def send(self, gseq: int, measuring: bool) -> int:
        """Stamp and send every packet; the number the kernel took."""
        p = self.packets
        p["seq"] += 1
        p["ts"] += 160
        p["gseq"] = gseq
        p["flag"] = 1 if measuring else 0
        p["t_ns"] = time.perf_counter_ns()
        sent = skipped = 0
        size = ctypes.sizeof(_Mmsghdr)
        for _ in range(self.count + 1):  # bounded: each round sends at least one or stops
            if sent >= self.count:
                break
            n = _libc.sendmmsg(self.fd, self._msgs_addr + sent * size, self.count - sent, 0)
            if n > 0:
                sent += n
            elif ctypes.get_errno() in (11, 105):  # EAGAIN, ENOBUFS: leave the rest unsent
                break
            else:  # another error on one packet: skip it, not counted as sent
                skipped += 1
                sent += 1
        return sent - skipped


class Receiver:
    """Drains the generator's sockets with ``recvmmsg`` and keeps what arrived when."""

    def __init__(self) -> None:
        self.buffer = np.zeros(RECV_BATCH, dtype=RECV_DTYPE)
        self._iov = (_Iovec * RECV_BATCH)()
        self._msgs = (_Mmsghdr * RECV_BATCH)()
        base = self.buffer.ctypes.data
        for k in range(RECV_BATCH):
            self._iov[k].base = base + k * RECV_SLOT
            self._iov[k].len = RECV_SLOT
            self._msgs[k].hdr.iov = ctypes.addressof(self._iov[k])
            self._msgs[k].hdr.iovlen = 1
        self._msgs_addr = ctypes.addressof(self._msgs)
        self.keys: list[np.ndarray] = []
        self.delays: list[np.ndarray] = []
        self.received = 0

    def drain(self, fd: int) -> None:
        for _ in range(1000):  # bounded: 512 000 packets at most per call
            n = _libc.recvmmsg(fd, self._msgs_addr, RECV_BATCH, _MSG_DONTWAIT, None)
            if n <= 0:
                return
            now = time.perf_counter_ns()
            self.received += n
            rec = self.buffer[:n]
            ok = (rec["magic"] == MAGIC) & (rec["flag"] == 1)
            if not ok.all():
                rec = rec[ok]
            if len(rec):
                self.keys.append((rec["stream"].astype(np.uint64) << np.uint64(32)) | rec["gseq"])
                self.delays.append(now - rec["t_ns"].astype(np.int64))
            if n < RECV_BATCH:
                return


# --- /proc readings ----------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def core_busy_seconds(cpu: int) -> float:
    """Non-idle time of one core from /proc/stat (every process and softirq on it)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK
    return 0.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# --- the server process ------------------------------------------------------------------


class _Forward(asyncio.DatagramProtocol):
    """The baseline: forward each datagram to the peer port's latched phone, untouched."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.addr = addr
        self.peer: _Forward | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's UDPTransport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.addr = addr
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.sendto(data, peer.addr)


async def _open_relay(n: int, phones: list[tuple[str, int]]) -> tuple[list[int], list[Any]]:
    from media.transport import PortPool, Relay, RtpEndpoint

    loop = asyncio.get_running_loop()
    pool = PortPool(PORT_FIRST, PORT_LAST)
    endpoints: list[RtpEndpoint] = []
    for _ in range(pool.capacity):
        if len(endpoints) == 2 * n:
            break
        endpoint = RtpEndpoint(loop, HOST, pool.allocate())
        try:
            await endpoint.open()
        except OSError:
            endpoint.close()
            continue
        endpoint.remote = phones[len(endpoints) % len(phones)]  # as if from the SDP
        endpoints.append(endpoint)
    if len(endpoints) < 2 * n:
        raise RuntimeError(f"only {len(endpoints)} RTP ports could be bound")
    relays = [
        Relay(endpoints[2 * i], endpoints[2 * i + 1], 0x20000000 + 2 * i, 0x20000001 + 2 * i)
        for i in range(n)
    ]
    return [e.port for e in endpoints], [*endpoints, *relays]


async def _open_minimal(n: int, phones: list[tuple[str, int]]) -> tuple[list[int], list[Any]]:
    loop = asyncio.get_running_loop()
    protocols: list[_Forward] = []
    ports: list[int] = []
    for port in range(PORT_FIRST, PORT_LAST, 2):
        if len(protocols) == 2 * n:
            break
        addr = phones[len(protocols) % len(phones)]
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda a=addr: _Forward(a),  # type: ignore[misc]
                local_addr=(HOST, port),
            )
        except OSError:
            continue
        protocols.append(protocol)
        ports.append(port)
    if len(protocols) < 2 * n:
        raise RuntimeError(f"only {len(protocols)} RTP ports could be bound")
    for i in range(n):
        protocols[2 * i].peer = protocols[2 * i + 1]
        protocols[2 * i + 1].peer = protocols[2 * i]
    return ports, list(protocols)


async def _serve(kind: str, n: int, phones: list[tuple[str, int]], max_seconds: float) -> None:
    opener = _open_relay if kind == "relay" else _open_minimal
    ports, keep = await opener(n, phones)
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096) and not done.done():
            done.set_result(None)  # the generator closed our stdin: stop

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    sys.stdout.write(json.dumps({"ports": ports, "objects": len(keep)}) + "\n")
    sys.stdout.flush()
    lags: list[float] = []

    async def watch_lag() -> None:
        # How late a 5 ms timer fires: the longest the loop went without serving callbacks.
        for _ in range(int(max_seconds / 0.005)):
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    watcher = asyncio.ensure_future(watch_lag())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(done, max_seconds)
    watcher.cancel()
    loop.remove_reader(sys.stdin.fileno())
    tail = sorted(lags[200:]) or [0.0]  # after the first second (warm-up)
    stats = {"lag_p99_ms": 1e3 * tail[int(0.99 * (len(tail) - 1))], "lag_max_ms": 1e3 * tail[-1]}
    sys.stdout.write(json.dumps(stats) + "\n")
    sys.stdout.flush()


def serve(kind: str, n: int, phones: list[tuple[str, int]], cpu: int | None) -> int:
    import uvloop

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(_serve(kind, n, phones, SERVER_MAX_SECONDS))
    return 0


# --- the generator and the ramp ----------------------------------------------------------

_children: set[subprocess.Popen[bytes]] = set()
_server_stats: dict[int, dict[str, float]] = {}  # what each server printed when it stopped


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close the server's stdin (it then exits), SIGTERM after 3 s, SIGKILL after 2 more."""
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    if proc.stdout is not None:
        ready, _, _ = select.select([proc.stdout], [], [], 3.0)
        line = proc.stdout.readline() if ready else b""
        with contextlib.suppress(ValueError):
            _server_stats[proc.pid] = json.loads(line or b"{}")
    for sig, wait in ((None, 3.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    _children.discard(proc)


def _stop_all() -> None:
    for proc in list(_children):
        _stop(proc)


@dataclass
class Step:
    """One number of calls held for a fixed window."""

    kind: str
    calls: int
    window: float = 0.0
    sent: int = 0
    offered: int = 0
    received: int = 0
    loss: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    server_cpu: float = 0.0
    server_core: float = 0.0
    generator_cpu: float = 0.0
    slot_late_p99_ms: float = 0.0
    slot_late_max_ms: float = 0.0
    server_lag_p99_ms: float = 0.0
    server_lag_max_ms: float = 0.0
    rss: int = 0
    passed: bool = False
    generator_bound: bool = False
    reason: str = ""
    attempt: int = 1
    disturbed: bool = False

    @property
    def us_per_packet(self) -> float:
        """Server CPU microseconds per relayed packet."""
        packets = self.sent * (1.0 - self.loss)
        return 1e6 * self.server_cpu * self.window / packets if packets else 0.0


@dataclass
class Ramp:
    kind: str
    label: str
    steps: list[Step] = field(default_factory=list)
    error: str = ""

    @property
    def best(self) -> Step | None:
        passing = [s for s in self.steps if s.passed]
        return max(passing, key=lambda s: s.calls) if passing else None


def _start_server(
    kind: str, n: int, phones: list[tuple[str, int]], pin: bool, log: Path
) -> tuple[subprocess.Popen[bytes], list[int]]:
    command = [sys.executable, "-m", "tools.bench.media_relay", "--serve", kind]
    command += ["--calls", str(n), "--phones", ",".join(str(p) for _, p in phones)]
    if pin:
        command += ["--cpu", str(SERVER_CPU)]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=Path(__file__).resolve().parents[2],
        )
    _children.add(proc)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60.0)
    line = proc.stdout.readline() if ready else b""
    if not line:
        _stop(proc)
        raise RuntimeError(f"{kind} server did not start: {log.read_text()[-2000:]}")
    ports = [int(p) for p in json.loads(line)["ports"]]
    if len(ports) != 2 * n:
        _stop(proc)
        raise RuntimeError(f"{kind} server opened {len(ports)} ports for {n} calls")
    return proc, ports


def run_step(
    kind: str, n: int, warmup: float, window: float, pin: bool, tmp: Path
) -> tuple[Step, int]:
    """Play ``n`` calls through a fresh server; the step and the server's RSS in bytes."""
    socks = []
    for _ in range(GEN_SOCKETS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        socks.append(sock)
    phones = [(HOST, s.getsockname()[1]) for s in socks]
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, ports = _start_server(kind, n, phones, pin, tmp / f"{kind}-{n}.log")
        # stream j: call j // 2, direction j % 2; its phone is socket j % GEN_SOCKETS and it
        # sends to the server's port j (the endpoint facing that phone); slot j % SLOTS.
        streams = np.arange(2 * n, dtype=np.int64)
        slots: list[list[SendBatch]] = []
        for s in range(SLOTS):
            in_slot = streams[streams % SLOTS == s]
            batches = []
            for k in range(GEN_SOCKETS):
                mine = in_slot[in_slot % GEN_SOCKETS == k]
                if len(mine):
                    batches.append(SendBatch(socks[k].fileno(), mine, ports))
            slots.append(batches)
        receiver = Receiver()
        fds = [s.fileno() for s in socks]
        warmup_ticks = math.ceil(warmup * 1e9 / PACKET_INTERVAL_NS)
        window_ticks = max(1, math.ceil(window * 1e9 / PACKET_INTERVAL_NS))
        slot_ns = PACKET_INTERVAL_NS // SLOTS
        sent = 0
        lateness: list[int] = []
        cpu0 = core0 = gen0 = 0.0
        t_start = 0
        start = time.perf_counter_ns() + 10_000_000
        for tick in range(warmup_ticks + window_ticks):
            measuring = tick >= warmup_ticks
            for s in range(SLOTS):
                due = start + tick * PACKET_INTERVAL_NS + s * slot_ns
                _receive_until(receiver, socks, fds, due)
                if tick == warmup_ticks and s == 0:
                    cpu0 = process_cpu_seconds(proc.pid)
                    core0 = core_busy_seconds(SERVER_CPU)
                    gen0 = sum(os.times()[:2])
                    t_start = time.perf_counter_ns()
                if measuring:
                    lateness.append(time.perf_counter_ns() - due)
                for batch in slots[s]:
                    done = batch.send(tick, measuring)
                    if measuring:
                        sent += done
        elapsed = (time.perf_counter_ns() - t_start) / 1e9
        server_cpu = process_cpu_seconds(proc.pid) - cpu0
        core = core_busy_seconds(SERVER_CPU) - core0
        gen_cpu = sum(os.times()[:2]) - gen0
        rss = rss_bytes(proc.pid)
        _receive_until(receiver, socks, fds, time.perf_counter_ns() + 300_000_000)
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited with {proc.returncode}")
        server_pid = proc.pid
    finally:
        if proc is not None:
            _stop(proc)
        for sock in socks:
            sock.close()
    step = Step(kind=kind, calls=n, window=elapsed, sent=sent, offered=2 * n * window_ticks)
    keys = np.concatenate(receiver.keys) if receiver.keys else np.zeros(0, np.uint64)
    delays = np.concatenate(receiver.delays) if receiver.delays else np.zeros(0, np.int64)
    step.received = int(len(np.unique(keys)))
    step.loss = max(0.0, 1.0 - step.received / sent) if sent else 1.0
    if len(delays):
        p50, p99 = np.percentile(delays, [50, 99]) / 1e6
        step.p50_ms, step.p99_ms = float(p50), float(p99)
        step.max_ms = float(delays.max()) / 1e6
    step.server_cpu = server_cpu / elapsed
    step.server_core = core / elapsed
    step.generator_cpu = gen_cpu / elapsed
    if lateness:
        step.slot_late_p99_ms = float(np.percentile(lateness, 99)) / 1e6
        step.slot_late_max_ms = max(lateness) / 1e6
    lag = _server_stats.pop(server_pid, {})
    step.server_lag_p99_ms = lag.get("lag_p99_ms", 0.0)
    step.server_lag_max_ms = lag.get("lag_max_ms", 0.0)
    step.rss = rss
    reasons = []
    if step.loss > MAX_LOSS:
        reasons.append(f"loss {100 * step.loss:.2f} %")
    if step.p99_ms > MAX_P99_MS:
        reasons.append(f"p99 {step.p99_ms:.2f} ms")
    if step.server_cpu > MAX_SERVER_CPU:
        reasons.append(f"server core {100 * step.server_cpu:.0f} %")
    if sent < MIN_SENT_SHARE * step.offered or step.generator_cpu > MAX_GENERATOR_CPU:
        step.generator_bound = True
        reasons.append(
            f"generator-bound (sent {100 * sent / step.offered:.1f} % of offered, "
            f"generator CPU {100 * step.generator_cpu:.0f} %)"
        )
    if step.slot_late_p99_ms > MAX_GENERATOR_LATE_MS and reasons:
        step.disturbed = True
        reasons.append(f"disturbed (generator slots late by {step.slot_late_p99_ms:.1f} ms p99)")
    step.passed = not reasons
    step.reason = "; ".join(reasons)
    return step, rss


def _receive_until(
    receiver: Receiver, socks: list[socket.socket], fds: list[int], due_ns: int
) -> None:
    """Drain arriving packets until ``due_ns`` (perf_counter_ns); at least one pass."""
    for _ in range(100_000):  # bounded; each round waits or drains
        timeout = (due_ns - time.perf_counter_ns()) / 1e9
        ready, _, _ = select.select(socks, [], [], max(0.0, timeout))
        for sock in ready:
            receiver.drain(sock.fileno())
        if timeout <= 0:
            return


def ramp(
    kind: str, label: str, steps: Sequence[int], warmup: float, window: float, pin: bool, tmp: Path
) -> Ramp:
    result = Ramp(kind=kind, label=label)
    for n in steps:
        step: Step | None = None
        for attempt in range(MAX_ATTEMPTS):  # a failed step runs again: other load on the machine
            try:
                step, _ = run_step(kind, n, warmup, window, pin, tmp)
            except Exception as exc:  # a server that cannot start or dies ends the ramp
                result.error = f"N={n}: {exc}"
                print(f"  {label:<24} N={n:>5}: error: {exc}", flush=True)
                step = None
                break
            step.attempt = attempt + 1
            print(f"  {_step_line(label, step)}", flush=True)
            if step.passed or step.generator_bound or (attempt and not step.disturbed):
                break
        if step is None:
            break
        result.steps.append(step)
        if not step.passed:
            break
    return result


def _step_line(label: str, s: Step) -> str:
    verdict = "pass" if s.passed else f"FAIL ({s.reason})"
    return (
        f"{label:<24} N={s.calls:>5} sent={s.sent:>7} loss={100 * s.loss:6.3f}% "
        f"p50={s.p50_ms:6.3f}ms p99={s.p99_ms:7.3f}ms max={s.max_ms:7.2f}ms "
        f"server={100 * s.server_cpu:5.1f}% core{SERVER_CPU}={100 * s.server_core:5.1f}% "
        f"gen={100 * s.generator_cpu:5.1f}% {s.us_per_packet:5.1f}us/pkt "
        f"rss={s.rss / 2**20:6.1f}MiB loop-lag p99/max={s.server_lag_p99_ms:.1f}/"
        f"{s.server_lag_max_ms:.1f}ms gen-late p99/max={s.slot_late_p99_ms:.1f}/"
        f"{s.slot_late_max_ms:.1f}ms {verdict}"
    )


def _memory(r: Ramp) -> str:
    if not r.steps:
        return "-"
    big = max(r.steps, key=lambda s: s.calls)
    text = f"{big.rss / big.calls / 1024:.1f} KiB (RSS/N at N={big.calls})"
    small = min(r.steps, key=lambda s: s.calls)
    if big.calls > small.calls:
        marginal = (big.rss - small.rss) / (big.calls - small.calls) / 1024
        text += f", {marginal:.1f} KiB marginal"
    return text


def report(switch: Ramp, base: Ramp) -> None:
    def best(r: Ramp, attr: str, fmt: str) -> str:
        b = r.best
        return fmt.format(getattr(b, attr)) if b is not None else "-"

    rows = [
        ("max passing calls (N)", "calls", "{}"),
        ("  one-way streams", "calls", "{}"),
        ("  relayed packets/s", "calls", "{}"),
        ("  loss %", "loss", "{}"),
        ("  added delay p50 ms", "p50_ms", "{:.3f}"),
        ("  added delay p99 ms", "p99_ms", "{:.3f}"),
        ("  server CPU %", "server_cpu", "{}"),
        ("  server CPU us/packet", "us_per_packet", "{:.1f}"),
    ]
    width = 32
    print()
    print(f"{'':<{width}} {switch.label:>26} {base.label:>26} {'ratio':>7}")
    for title, attr, fmt in rows:
        a, b = switch.best, base.best
        if title.strip() == "one-way streams":
            cells = [str(2 * x.calls) if x else "-" for x in (a, b)]
        elif title.strip() == "relayed packets/s":
            cells = [str(100 * x.calls) if x else "-" for x in (a, b)]
        elif attr in ("loss", "server_cpu"):
            cells = [f"{100 * getattr(x, attr):.2f}" if x else "-" for x in (a, b)]
        else:
            cells = [best(switch, attr, fmt), best(base, attr, fmt)]
        ratio = ""
        if title.startswith("max") and a and b:
            ratio = f"{a.calls / b.calls:.2f}"
        elif attr == "us_per_packet" and a and b and b.us_per_packet:
            ratio = f"{a.us_per_packet / b.us_per_packet:.2f}"
        print(f"{title:<{width}} {cells[0]:>26} {cells[1]:>26} {ratio:>7}")
    print(f"{'memory per call':<{width}} {_memory(switch)}")
    print(f"{'':<{width}} baseline: {_memory(base)}")
    for r in (switch, base):
        last = r.steps[-1] if r.steps else None
        if r.error:
            print(f"note: {r.label}: {r.error}")
        elif last is not None and last.passed:
            print(f"note: {r.label}: every step passed; the limit is above N={last.calls}")
        elif last is not None and last.disturbed:
            print(f"note: {r.label}: stopped at N={last.calls}, disturbed by other load each time")
        elif last is not None and last.generator_bound:
            print(f"note: {r.label}: the ramp stopped on the generator; figures are lower bounds")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.media_relay", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s windows, fewer steps")
    parser.add_argument("--steps", help="comma-separated numbers of calls, in order")
    parser.add_argument("--window", type=float, help="measuring seconds per step (default 5)")
    parser.add_argument("--only", choices=("relay", "minimal"), help="run one server kind")
    parser.add_argument("--json", type=Path, help="write every step to this file")
    parser.add_argument("--serve", choices=("relay", "minimal"), help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--phones", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        phones = [(HOST, int(p)) for p in args.phones.split(",") if p]
        return serve(args.serve, args.calls, phones, args.cpu)

    steps = [int(x) for x in args.steps.split(",")] if args.steps else None
    steps = steps or list(QUICK_STEPS if args.quick else FULL_STEPS)
    steps = [n for n in steps if 0 < n <= (PORT_LAST - PORT_FIRST) // 4]
    window = args.window or (2.0 if args.quick else 5.0)
    warmup = 1.0
    pin = len(os.sched_getaffinity(0)) >= 2 and {GENERATOR_CPU, SERVER_CPU} <= os.sched_getaffinity(
        0
    )
    if pin:
        os.sched_setaffinity(0, {GENERATOR_CPU})
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    rtpengine = shutil.which("rtpengine")
    print("RTP relay capacity: G.711 20 ms, 172-byte packets, 50 packets/s each way per call")
    print(
        f"server on CPU {SERVER_CPU}, generator on CPU {GENERATOR_CPU}"
        if pin
        else "fewer than two CPUs: processes not pinned, figures are indicative only"
    )
    print(
        f"pass: loss <= {100 * MAX_LOSS} %, p99 added delay <= {MAX_P99_MS} ms, "
        f"server CPU <= {100 * MAX_SERVER_CPU:.0f} %; warm-up {warmup} s, window {window} s"
    )
    if rtpengine:
        print(f"rtpengine found at {rtpengine}, but driving it over ng is not implemented here;")
    else:
        print("rtpengine is not installed;", end=" ")
    print("baseline: minimal uvloop relay (one DatagramProtocol per port, bytes forwarded)")

    ramps: dict[str, Ramp] = {}
    labels = {"relay": "softswitch Relay", "minimal": "baseline minimal uvloop"}
    with tempfile.TemporaryDirectory(prefix="media-bench-") as tmp:
        try:
            for kind in ("minimal", "relay"):
                if args.only and args.only != kind:
                    continue
                ramps[kind] = ramp(kind, labels[kind], steps, warmup, window, pin, Path(tmp))
        except KeyboardInterrupt:
            print("interrupted")
        finally:
            _stop_all()
    switch = ramps.get("relay", Ramp("relay", labels["relay"]))
    base = ramps.get("minimal", Ramp("minimal", labels["minimal"]))
    report(switch, base)
    if args.json:
        data = {
            k: {"error": r.error, "steps": [asdict(s) for s in r.steps]} for k, r in ramps.items()
        }
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
