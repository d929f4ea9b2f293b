"""RTP relay capacity of one switch process on one core, with and without recording.

Two processes on 127.0.0.1:

- the **server** (``--serve minimal|relay|record``), pinned to CPU 1, runs uvloop with N
  two-party calls:

  - ``relay`` is the switch's own path through its facade, ``media.engine.MediaEngine``: per
    call ``allocate`` (two ``RtpEndpoint`` port pairs), ``set_remote`` for each side (as if from
    the SDP, which offers telephone-event 101 as most phones do), ``connect`` (a ``Relay``:
    symmetric latching, SSRC/sequence/timestamp rewriting per direction, RTCP sockets open),
    and ``release`` when the step ends; whatever the engine does per call or per packet is
    measured with it;
  - ``record`` is the same with the engine recording every call
    (``recordings=<temporary folder>``, ``RecordingOptions()``): each leg's RTP goes through a
    jitter buffer, is decoded on the 20 ms media clock and written to one stereo WAV per call;
  - ``minimal`` is the baseline, one ``DatagramProtocol`` per RTP port that forwards the bytes
    to its peer's latched address and does nothing else;

- the **load generator** (this process, pinned to CPU 0) plays the phones of all N calls: 172-byte
  G.711 RTP packets (12-byte header, 160 bytes of PCMU payload: a tone, so that a recording
  decodes real audio) at 50 packets/s in each direction, so 100 packets/s per call through the
  relay. Calls are spread evenly over the 20 ms packet interval (one slot per millisecond), as
  independent phones would be. Each slot is one ``sendmmsg`` per socket, reception is
  ``recvmmsg`` into one buffer parsed with NumPy, so that the generator stays cheap. The first
  bytes of each payload carry its stream, a sequence number and the generator's send time
  (``perf_counter_ns``); the delay added by the relay is receive time minus send time, both
  read in the generator.

N steps up; each step starts a fresh server, warms up for a second (latching) and measures for
a fixed window. A step passes with under 0.5 % loss, a 99th-percentile added delay under 5 ms
and the server process under 95 % of its core; a ``record`` step also needs every call's WAV
to be valid, as long as the call (no audio dropped, no clock ticks skipped) and to hold the
phones' audio. Memory per call is the server's VmRSS (``/proc/PID/status``, the median of
readings every 0.5 s of the window) minus its VmRSS before the first call was set up, divided
by N. Before each attempt the run waits (up to 10 s, 60 s in all) for both cores to be nearly
idle, and a failing step that other work disturbed runs again. rtpengine would be the preferred
baseline; it is used only where ``rtpengine`` is on the PATH (driving it is not implemented
yet: the run says so and falls back to the minimal relay).

Run from the repository root: ``python -m tools.bench.media_relay [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import gc
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
from collections.abc import Callable, Sequence
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
#: Likewise when the server's event loop thread waited, runnable, for its CPU longer than this
#: share of the window (another task had the CPU; the recording writer threads of the server
#: run under SCHED_IDLE and give way at once). The busy time of the core from /proc/stat would
#: say the same if it were exact, but on this VM it is often below the server's own CPU time.
MAX_LOOP_WAIT = 0.02
MAX_ATTEMPTS = 3
#: Before each attempt the run waits up to this long for both cores to be busier than
#: ``QUIET_BUSY`` no more (other sessions' tests on a shared machine come in bursts), and at
#: most ``QUIET_BUDGET_SECONDS`` in all.
QUIET_WAIT_SECONDS = 10.0
#: A ramp goes on past this many consecutive steps that were disturbed at every attempt.
MAX_SKIPPED = 1
QUIET_BUDGET_SECONDS = 60.0
QUIET_BUSY = 0.15
#: A recording shorter than this share of the time its call was connected lost audio (blocks
#: dropped because the disk lagged, or media clock ticks skipped because the loop stalled).
MIN_RECORDED_SHARE = 0.99
#: Both phones' SDP offers telephone-event (RFC 4733) with this payload type, as most phones'
#: do: the engine watches each leg for events and has no reason to look for tones in-band.
EVENTS_PT = 101
RSS_EVERY_TICKS = 25  # the server's VmRSS is read every 0.5 s of the window; the median counts
#: A recording with 20 ms frames holding audio (not silence) in less than this share of its
#: length did not record what the phones sent.
MIN_AUDIO_SHARE = 0.5
PORT_FIRST = 18000  # server ports: above a running switch's default 16000-17999, below the
#: ephemeral range the generator's sockets use
PORT_LAST = 31999
SERVER_MAX_SECONDS = 120.0  # a server exits by itself after this, whatever happens
#: Setting calls up (binding sockets, creating recording files) and closing them (the last
#: audio of every recording written and synced) may take this long.
SETTLE_SECONDS = 60.0
FULL_STEPS = (100, 150, 200, 250, 300, 400, 500, 600, 700, 800, 1000, 1200, 1500)
QUICK_STEPS = (100, 200, 300, 500, 600, 700, 800, 1000, 1200)
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


def _tones() -> np.ndarray:
    """20 ms of PCMU per stream: tones of 400 to 750 Hz (whole cycles in 20 ms, so a payload
    sent again and again is a steady tone) at about -10 dBm0, as a phone would send."""
    from media.codecs.g711 import ulaw_encode

    t = np.arange(PACKET_SIZE - 12) / 8000.0
    return np.stack(
        [
            ulaw_encode(np.round(7000 * np.sin(2 * np.pi * f * t)).astype(np.int16))
            for f in range(400, 800, 50)
        ]
    )


_TONES = _tones()


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
        raw[:, 12:] = _TONES[streams % len(_TONES)]  # the generator's fields then overwrite 22
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


def loop_waited_seconds(pid: int) -> float:
    """How long the process's main thread (the event loop) has waited, runnable, for a CPU:
    the second field of /proc/PID/task/PID/schedstat, in nanoseconds."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
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


class _MinimalCalls:
    """The baseline's calls: two forwarding protocols each, nothing else."""

    def __init__(self) -> None:
        self.protocols: list[_Forward] = []

    async def open(self, n: int, phones: list[tuple[str, int]]) -> list[int]:
        loop = asyncio.get_running_loop()
        protocols = self.protocols
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
        return ports

    async def close(self) -> None:
        for protocol in self.protocols:
            if protocol.transport is not None:
                protocol.transport.close()


class _EngineCalls:
    """The switch's calls, set up and torn down through ``MediaEngine`` as the B2BUA does it:
    ``allocate`` (ports for the SDP), ``set_remote`` per side (the SDP's addresses),
    ``connect``, and ``release`` at the end; with ``recordings``, every call is recorded."""

    def __init__(self, recordings: Path | None) -> None:
        from media.engine import MediaEngine
        from media.recorder import RecordingOptions
        from media.transport import PortPool

        self.engine = MediaEngine(
            asyncio.get_running_loop(),
            HOST,
            HOST,
            PortPool(PORT_FIRST, PORT_LAST),
            recordings=recordings,
            recording_options=RecordingOptions() if recordings is not None else None,
        )
        self.call_ids: list[str] = []

    async def open(self, n: int, phones: list[tuple[str, int]]) -> list[int]:
        engine = self.engine
        ports: list[int] = []
        for i in range(n):
            call_id = f"bench-{i:05d}"
            a, b = engine.allocate(call_id)  # PortsExhausted ends the step
            self.call_ids.append(call_id)
            host_a, port_a = phones[(2 * i) % len(phones)]
            host_b, port_b = phones[(2 * i + 1) % len(phones)]
            engine.set_remote(call_id, "a", host_a, port_a, events_pt=EVENTS_PT)
            engine.set_remote(call_id, "b", host_b, port_b, events_pt=EVENTS_PT)
            engine.connect(call_id)
            ports += (a, b)
        await _settle(SETTLE_SECONDS)  # sockets read by the loop, recording files open
        return ports

    async def close(self) -> None:
        for call_id in self.call_ids:
            self.engine.release(call_id)
        await asyncio.wait_for(self.engine.drain(), SETTLE_SECONDS)  # recordings closed
        self.engine.close()


async def _settle(timeout: float) -> None:
    """Wait until every other task of the loop has finished; RuntimeError after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    me = asyncio.current_task()
    for _ in range(10_000):  # bounded; each round waits for at least one task or the time
        pending = [t for t in asyncio.all_tasks() if t is not me]
        if not pending:
            return
        remaining = end - loop.time()
        if remaining <= 0:
            raise RuntimeError(f"{len(pending)} set-up tasks still pending after {timeout} s")
        await asyncio.wait(pending, timeout=remaining)


async def _serve(
    kind: str,
    n: int,
    phones: list[tuple[str, int]],
    max_seconds: float,
    recordings: Path | None,
) -> None:
    loop = asyncio.get_running_loop()
    calls: _MinimalCalls | _EngineCalls
    if kind == "minimal":
        calls = _MinimalCalls()
    else:
        calls = _EngineCalls(recordings if kind == "record" else None)
    rss0 = rss_bytes(os.getpid())  # everything imported and built, no call yet
    ports = await calls.open(n, phones)
    # Setting up N calls at once leaves the collector a full collection (tens of ms with
    # hundreds of calls) that would fall into the measurement; a switch whose calls arrive one
    # by one spreads that work out. Collect now; later collections are measured.
    gc.collect()
    done = loop.create_future()

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096) and not done.done():
            done.set_result(None)  # the generator closed our stdin: stop

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    sys.stdout.write(json.dumps({"ports": ports, "rss0": rss0}) + "\n")
    sys.stdout.flush()
    ready = loop.time()
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
    released = loop.time()
    watcher.cancel()
    loop.remove_reader(sys.stdin.fileno())
    await calls.close()
    tail = sorted(lags[200:]) or [0.0]  # after the first second (warm-up)
    stats = {
        "lag_p99_ms": 1e3 * tail[int(0.99 * (len(tail) - 1))],
        "lag_max_ms": 1e3 * tail[-1],
        "connected_s": released - ready,
        "close_s": loop.time() - released,
    }
    sys.stdout.write(json.dumps(stats) + "\n")
    sys.stdout.flush()


def serve(
    kind: str,
    n: int,
    phones: list[tuple[str, int]],
    cpu: int | None,
    recordings: Path | None,
    profile: Path | None,
) -> int:
    import uvloop

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # threads started later (file writes) inherit it
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    main = _serve(kind, n, phones, SERVER_MAX_SECONDS, recordings)
    if profile is None:
        uvloop.run(main)
        return 0
    import cProfile

    profiler = cProfile.Profile()  # the event loop's thread only, not the executor's
    profiler.enable()
    try:
        uvloop.run(main)
    finally:
        profiler.disable()
        profiler.dump_stats(profile)
    return 0


# --- the generator and the ramp ----------------------------------------------------------

_children: set[subprocess.Popen[bytes]] = set()
_server_stats: dict[int, dict[str, float]] = {}  # what each server printed when it stopped


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close the server's stdin (it then closes its calls and exits); SIGTERM if it has not
    said it is done within ``SETTLE_SECONDS`` + 3 s, SIGKILL 2 s later."""
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    if proc.stdout is not None and not proc.stdout.closed:
        ready, _, _ = select.select([proc.stdout], [], [], SETTLE_SECONDS + 3.0)
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
    loop_wait: float = 0.0
    rss: int = 0
    rss0: int = 0
    connected_s: float = 0.0
    close_s: float = 0.0
    recordings: int = 0
    recordings_valid: int = 0
    recorded_min_s: float = 0.0
    recorded_mean_s: float = 0.0
    audio_share: float = 0.0
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

    @property
    def mem_per_call(self) -> float:
        """Bytes: (server VmRSS during the window (median of samples every 0.5 s) - VmRSS before
        any call) / calls."""
        return (self.rss - self.rss0) / self.calls if self.calls and self.rss0 else 0.0


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
    kind: str,
    n: int,
    phones: list[tuple[str, int]],
    pin: bool,
    log: Path,
    recordings: Path | None,
    profile: Path | None,
) -> tuple[subprocess.Popen[bytes], list[int], int]:
    """The server's process, its ports (two per call, in call order) and its VmRSS at 0 calls."""
    command = [sys.executable, "-m", "tools.bench.media_relay", "--serve", kind]
    command += ["--calls", str(n), "--phones", ",".join(str(p) for _, p in phones)]
    if pin:
        command += ["--cpu", str(SERVER_CPU)]
    if recordings is not None:
        command += ["--recordings", str(recordings)]
    if profile is not None:
        command += ["--profile", str(profile)]
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
    ready, _, _ = select.select([proc.stdout], [], [], SETTLE_SECONDS + 30.0)
    line = proc.stdout.readline() if ready else b""
    if not line:
        _stop(proc)
        raise RuntimeError(f"{kind} server did not start: {log.read_text()[-2000:]}")
    hello = json.loads(line)
    ports = [int(p) for p in hello["ports"]]
    if len(ports) != 2 * n:
        _stop(proc)
        raise RuntimeError(f"{kind} server opened {len(ports)} ports for {n} calls")
    return proc, ports, int(hello["rss0"])


def check_recordings(folder: Path) -> dict[str, float]:
    """What the ``record`` server left in ``folder``: files, valid stereo 8 kHz WAVs whose
    RIFF and data sizes match the file, their shortest and mean length, and the share of
    20 ms frames holding audio (any sample not zero) over both channels of every file."""
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    durations: list[float] = []
    audio: list[float] = []
    for path in files:
        data = path.read_bytes()
        if len(data) < 44 or data[:4] != b"RIFF" or data[8:16] != b"WAVEfmt ":
            continue
        riff, channels, rate, size = (
            struct.unpack_from("<I", data, 4)[0],
            struct.unpack_from("<H", data, 22)[0],
            struct.unpack_from("<I", data, 24)[0],
            struct.unpack_from("<I", data, 40)[0],
        )
        if channels != 2 or rate != 8000 or size != len(data) - 44 or riff != len(data) - 8:
            continue
        pcm = np.frombuffer(data, "<i2", offset=44).reshape(-1, 2)
        durations.append(len(pcm) / 8000)
        frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160, 2)
        if len(frames):
            audio.append(float(np.any(frames != 0, axis=1).mean()))
    return {
        "recordings": len(files),
        "recordings_valid": len(durations),
        "recorded_min_s": min(durations, default=0.0),
        "recorded_mean_s": sum(durations) / len(durations) if durations else 0.0,
        "audio_share": sum(audio) / len(audio) if audio else 0.0,
    }


def run_step(
    kind: str,
    n: int,
    warmup: float,
    window: float,
    pin: bool,
    tmp: Path,
    profile: Path | None = None,
) -> Step:
    """Play ``n`` calls through a fresh server."""
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
    recordings = tmp / f"recordings-{n}" if kind == "record" else None
    files: dict[str, float] = {}
    if recordings is not None:
        shutil.rmtree(recordings, ignore_errors=True)  # a previous attempt's files
    try:
        log = tmp / f"{kind}-{n}.log"
        proc, ports, rss0 = _start_server(kind, n, phones, pin, log, recordings, profile)
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
        rss_samples: list[int] = []
        cpu0 = core0 = gen0 = 0.0
        waited0 = 0.0
        t_start = 0
        start = time.perf_counter_ns() + 10_000_000
        for tick in range(warmup_ticks + window_ticks):
            measuring = tick >= warmup_ticks
            for s in range(SLOTS):
                due = start + tick * PACKET_INTERVAL_NS + s * slot_ns
                _receive_until(receiver, socks, fds, due)
                if tick == warmup_ticks and s == 0:
                    cpu0 = process_cpu_seconds(proc.pid)
                    waited0 = loop_waited_seconds(proc.pid)
                    core0 = core_busy_seconds(SERVER_CPU)
                    gen0 = sum(os.times()[:2])
                    t_start = time.perf_counter_ns()
                if measuring:
                    lateness.append(time.perf_counter_ns() - due)
                    if s == SLOTS // 2 and (tick - warmup_ticks) % RSS_EVERY_TICKS == 0:
                        rss_samples.append(rss_bytes(proc.pid))
                for batch in slots[s]:
                    done = batch.send(tick, measuring)
                    if measuring:
                        sent += done
        elapsed = (time.perf_counter_ns() - t_start) / 1e9
        server_cpu = process_cpu_seconds(proc.pid) - cpu0
        waited = loop_waited_seconds(proc.pid) - waited0
        core = core_busy_seconds(SERVER_CPU) - core0
        gen_cpu = sum(os.times()[:2]) - gen0
        rss_samples.append(rss_bytes(proc.pid))
        rss = int(np.median(rss_samples))
        _receive_until(receiver, socks, fds, time.perf_counter_ns() + 300_000_000)
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited with {proc.returncode}")
        server_pid = proc.pid
    finally:
        if proc is not None:
            _stop(proc)
        for sock in socks:
            sock.close()
    if recordings is not None:
        files = check_recordings(recordings)
        shutil.rmtree(recordings, ignore_errors=True)
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
    step.loop_wait = waited / elapsed
    step.generator_cpu = gen_cpu / elapsed
    if lateness:
        step.slot_late_p99_ms = float(np.percentile(lateness, 99)) / 1e6
        step.slot_late_max_ms = max(lateness) / 1e6
    last = _server_stats.pop(server_pid, {})
    step.server_lag_p99_ms = last.get("lag_p99_ms", 0.0)
    step.server_lag_max_ms = last.get("lag_max_ms", 0.0)
    step.connected_s = last.get("connected_s", 0.0)
    step.close_s = last.get("close_s", 0.0)
    step.rss = rss
    step.rss0 = rss0
    reasons = []
    if not last:
        reasons.append("the server did not close its calls in time")
    if recordings is not None:
        step.recordings = int(files["recordings"])
        step.recordings_valid = int(files["recordings_valid"])
        step.recorded_min_s = files["recorded_min_s"]
        step.recorded_mean_s = files["recorded_mean_s"]
        step.audio_share = files["audio_share"]
        if step.recordings_valid < n:
            reasons.append(f"{step.recordings_valid} of {n} recordings valid")
        elif step.recorded_min_s < MIN_RECORDED_SHARE * step.connected_s:
            reasons.append(
                f"a recording holds {step.recorded_min_s:.2f} s of a {step.connected_s:.2f} s call"
            )
        elif step.audio_share < MIN_AUDIO_SHARE:
            reasons.append(f"recordings hold audio in {100 * step.audio_share:.0f} % of frames")
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
    if step.loop_wait > MAX_LOOP_WAIT and reasons:
        step.disturbed = True
        reasons.append(
            f"disturbed (the server's loop waited for its CPU {100 * step.loop_wait:.1f} % "
            "of the window)"
        )
    step.passed = not reasons
    step.reason = "; ".join(reasons)
    return step


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


_quiet_waited = [0.0]  # seconds waited for quiet so far in this run


def wait_for_quiet(cpus: Sequence[int], limit: float) -> float:
    """Wait (at most ``limit`` seconds) until the given cores are nearly idle for half a second:
    other work on them would disturb the step. Returns the seconds waited."""
    started = time.monotonic()
    for _ in range(int(limit / 0.5) + 1):  # bounded: each round takes half a second
        before = [core_busy_seconds(c) for c in cpus]
        time.sleep(0.5)
        busy = [(core_busy_seconds(c) - b) / 0.5 for c, b in zip(cpus, before, strict=True)]
        if max(busy) < QUIET_BUSY or time.monotonic() - started >= limit:
            break
    return time.monotonic() - started - 0.5


def ramp(
    kind: str, label: str, steps: Sequence[int], warmup: float, window: float, pin: bool, tmp: Path
) -> Ramp:
    result = Ramp(kind=kind, label=label)
    skipped = 0  # consecutive steps left out because other work disturbed every attempt
    for n in steps:
        step: Step | None = None
        for attempt in range(MAX_ATTEMPTS):  # a failed step runs again: other load on the machine
            limit = min(QUIET_WAIT_SECONDS, QUIET_BUDGET_SECONDS - _quiet_waited[0])
            waited = wait_for_quiet((GENERATOR_CPU, SERVER_CPU), max(0.0, limit))
            _quiet_waited[0] += waited
            if waited >= 1.0:
                print(f"  (waited {waited:.0f} s for other work on the machine to pause)")
            try:
                step = run_step(kind, n, warmup, window, pin, tmp)
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
        if step.passed:
            skipped = 0
        elif step.disturbed and not step.generator_bound and skipped < MAX_SKIPPED:
            skipped += 1  # says nothing about the server: go on with the next N
            print(f"  {label:<24} N={n:>5}: disturbed at every attempt, going on", flush=True)
        else:
            break
    return result


def _step_line(label: str, s: Step) -> str:
    verdict = "pass" if s.passed else f"FAIL ({s.reason})"
    recorded = ""
    if s.kind == "record":
        recorded = (
            f"wav={s.recordings_valid}/{s.calls} min/mean={s.recorded_min_s:.2f}/"
            f"{s.recorded_mean_s:.2f}s of {s.connected_s:.2f}s audio={100 * s.audio_share:.0f}% "
        )
    return (
        f"{label:<24} N={s.calls:>5} sent={s.sent:>7} loss={100 * s.loss:6.3f}% "
        f"p50={s.p50_ms:6.3f}ms p99={s.p99_ms:7.3f}ms max={s.max_ms:7.2f}ms "
        f"server={100 * s.server_cpu:5.1f}% core{SERVER_CPU}={100 * s.server_core:5.1f}% "
        f"wait={100 * s.loop_wait:4.1f}% "
        f"gen={100 * s.generator_cpu:5.1f}% {s.us_per_packet:5.1f}us/pkt "
        f"rss={s.rss / 2**20:6.1f}MiB {s.mem_per_call / 1024:5.1f}KiB/call "
        f"loop-lag p99/max={s.server_lag_p99_ms:.1f}/{s.server_lag_max_ms:.1f}ms "
        f"gen-late p99/max={s.slot_late_p99_ms:.1f}/{s.slot_late_max_ms:.1f}ms "
        f"close={s.close_s:.1f}s {recorded}{verdict}"
    )


LABELS = {
    "minimal": "baseline minimal uvloop",
    "relay": "MediaEngine relay",
    "record": "MediaEngine + recording",
}
KINDS = ("minimal", "relay", "record")  # the order the ramps run in


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": sys.version.split()[0]}


def summary(ramps: dict[str, Ramp]) -> dict[str, Any]:
    """Per server kind: the best passing step's figures, and ratios to the baseline."""
    base = ramps.get("minimal")
    base_best = base.best if base is not None else None
    modes: dict[str, Any] = {}
    for kind, r in ramps.items():
        b = r.best
        entry: dict[str, Any] = {"label": r.label, "max_calls": b.calls if b else 0}
        if b is not None:
            entry |= {
                "us_per_packet": round(b.us_per_packet, 2),
                "mem_per_call_kib": round(b.mem_per_call / 1024, 1),
                "p99_ms": round(b.p99_ms, 3),
                "server_cpu": round(b.server_cpu, 3),
                "loss": round(b.loss, 5),
            }
            if base_best is not None and kind != "minimal":
                entry["calls_ratio"] = round(b.calls / base_best.calls, 2)
                if base_best.us_per_packet:
                    entry["us_per_packet_ratio"] = round(
                        b.us_per_packet / base_best.us_per_packet, 2
                    )
                if base_best.mem_per_call:
                    entry["mem_per_call_ratio"] = round(b.mem_per_call / base_best.mem_per_call, 2)
        entry["limit"] = _limit(r)
        modes[kind] = entry
    return {"machine": _machine(), "modes": modes}


def _limit(r: Ramp) -> str:
    last = r.steps[-1] if r.steps else None
    if r.error:
        return f"error: {r.error}"
    if last is None:
        return "not run"
    if last.passed:
        return f"every step passed; the limit is above N={last.calls}"
    if last.generator_bound:
        return "the ramp stopped on the generator; figures are lower bounds"
    if last.disturbed:
        return f"stopped at N={last.calls}, disturbed by other load each time"
    return f"N={last.calls} failed: {last.reason}"


def report(ramps: dict[str, Ramp]) -> None:
    shown = [ramps[k] for k in ("relay", "record", "minimal") if k in ramps]
    base = ramps.get("minimal")
    rows: list[tuple[str, Callable[[Step], str]]] = [
        ("max passing calls (N)", lambda s: str(s.calls)),
        ("  one-way streams", lambda s: str(2 * s.calls)),
        ("  relayed packets/s", lambda s: str(100 * s.calls)),
        ("  loss %", lambda s: f"{100 * s.loss:.2f}"),
        ("  added delay p50 ms", lambda s: f"{s.p50_ms:.3f}"),
        ("  added delay p99 ms", lambda s: f"{s.p99_ms:.3f}"),
        ("  server CPU %", lambda s: f"{100 * s.server_cpu:.1f}"),
        ("  server CPU us/packet", lambda s: f"{s.us_per_packet:.1f}"),
        ("  memory per call KiB", lambda s: f"{s.mem_per_call / 1024:.1f}"),
    ]
    ratios: dict[str, Callable[[Step], float]] = {
        "max passing calls (N)": lambda s: s.calls,
        "  server CPU us/packet": lambda s: s.us_per_packet,
        "  memory per call KiB": lambda s: s.mem_per_call,
    }
    others = [r for r in shown if r is not base]
    width, cell = 24, 25
    print()
    head = "".join(f"{r.label:>{cell}}" for r in shown)
    head += "".join(f"{r.kind + '/base':>{14}}" for r in others) if base else ""
    print(f"{'':<{width}}{head}")
    for title, fmt in rows:
        line = "".join(f"{fmt(r.best) if r.best else '-':>{cell}}" for r in shown)
        if base is not None:
            for r in others:
                ratio = ""
                get = ratios.get(title)
                if get is not None and r.best and base.best and get(base.best):
                    ratio = f"{get(r.best) / get(base.best):.2f}"
                line += f"{ratio:>14}"
        print(f"{title:<{width}}{line}")
    print(
        "memory per call = (server VmRSS during the window, median of readings every 0.5 s, "
        "- VmRSS before the first call) / N"
    )
    for r in shown:
        per_step = ", ".join(f"{s.calls}: {s.mem_per_call / 1024:.1f}" for s in r.steps)
        print(f"  {r.label}: KiB/call by N: {per_step or '-'}")
    for r in shown:
        print(f"note: {r.label}: {_limit(r)}")


def _profile_step(kind: str, n: int, window: float, pin: bool, tmp: Path, out: Path) -> None:
    """One step with the server under cProfile; the functions that cost the most."""
    import pstats

    out.mkdir(parents=True, exist_ok=True)
    stats_file = out / f"{kind}-{n}.pstats"
    step = run_step(kind, n, 1.0, window, pin, tmp, profile=stats_file)
    print(f"  {_step_line(LABELS[kind] + ' (profiled)', step)}", flush=True)
    for _ in range(50):  # the server writes its profile as it exits
        if stats_file.exists():
            break
        time.sleep(0.1)
    stats = pstats.Stats(str(stats_file))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"  {stats_file}: {total:.2f} s in the loop's thread, top functions by own time:")
    stats.sort_stats("tottime").print_stats(25)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.media_relay", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s windows, fewer steps")
    parser.add_argument("--steps", help="comma-separated numbers of calls, in order")
    parser.add_argument("--window", type=float, help="measuring seconds per step (default 5)")
    parser.add_argument(
        "--only", help=f"comma-separated server kinds to run, of {','.join(KINDS)} (default all)"
    )
    parser.add_argument("--json", type=Path, help="write the summary and every step to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="no ramp: run each step once with the server under cProfile, stats into DIR",
    )
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--phones", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--recordings", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        phones = [(HOST, int(p)) for p in args.phones.split(",") if p]
        return serve(args.serve, args.calls, phones, args.cpu, args.recordings, args.profile)

    kinds = [k.strip() for k in args.only.split(",")] if args.only else list(KINDS)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown server kind {', '.join(sorted(unknown))}")
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
        f"server CPU <= {100 * MAX_SERVER_CPU:.0f} %; record: every WAV valid, >= "
        f"{100 * MIN_RECORDED_SHARE:.0f} % of its call, with audio; "
        f"warm-up {warmup} s, window {window} s"
    )
    if rtpengine:
        print(f"rtpengine found at {rtpengine}, but driving it over ng is not implemented here;")
    else:
        print("rtpengine is not installed;", end=" ")
    print("baseline: minimal uvloop relay (one DatagramProtocol per port, bytes forwarded)")

    ramps: dict[str, Ramp] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="media-bench-") as tmp:
        try:
            for kind in KINDS:
                if kind not in kinds:
                    continue
                if args.profile is not None:
                    for n in steps:
                        _profile_step(kind, n, window, pin, Path(tmp), args.profile)
                    continue
                ramps[kind] = ramp(kind, LABELS[kind], steps, warmup, window, pin, Path(tmp))
        except KeyboardInterrupt:
            print("interrupted")
        finally:
            _stop_all()
    if args.profile is not None:
        return 0
    report(ramps)
    result = summary(ramps)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(f"summary {json.dumps(result)}")
    if args.json:
        data = {
            "summary": result,
            "steps": {
                k: {"error": r.error, "steps": [asdict(s) for s in r.steps]}
                for k, r in ramps.items()
            },
        }
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
