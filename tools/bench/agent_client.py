"""The home agent's softphone: the mouth-to-ear delay it adds and the CPU it uses in a call.

The switch (``python -m softswitch``) runs on 127.0.0.1, pinned to CPU 1 with ``taskset``
like the other benches; the bench, its probe and a private PulseAudio daemon
(``tests/agent_client/pulse.py``) run beside it. The client under test is the agent's
:class:`~agent_client.sip_phone.SipPhone` in a child process
(``tests/agent_client/phone_driver.py``), pinned to CPU 0, registered as 1002, with its
headset on PulseAudio through PortAudio and ALSA's pulse plugin: the speaker is the
``headset`` null sink and the microphone is that sink's own monitor, so whatever the agent
hears comes straight back into the microphone (an acoustic loop at the headset).

1. **Delay.** A probe (the scripted SIP phone of ``tests/sim/network.py`` on real sockets,
   with its own RTP socket served by two threads) calls through the switch and sends PCMU
   (RFC 3551 §4.5.14) every 20 ms: silence, with a 40 ms 1 kHz burst every second. Each
   burst's onset is found, to the sample, in what comes back; its round trip is the time
   from the onset sample's place in the sent stream to its place in the received one (a
   packet's last sample is taken to be "now" when it is sent or arrives). Baseline, in the
   same run: the same probe calling the switch's echo test ``9196`` (the network and the
   switch without the client). Then the same probe calls 1002 and the client answers: the
   burst goes down to the agent's ear, into the microphone and back up. The delay the client
   adds is RTT(client) - RTT(echo), mouth to ear in both directions together; half of it is
   the figure per direction (the target is under 60 ms each way at 0 jitter).
2. **The sound system's floor.** In a child process with the client's own stream settings,
   PortAudio plays a click into the ``headset`` sink and records it from its monitor; that
   loop is what PortAudio, the ALSA plugin and PulseAudio cost, whatever the client does.
   The same child also runs the client's headset bridge alone (its rings and streams,
   ticked by a 20 ms timer in place of pjsua2's clock).
3. **CPU.** A pjsua2 user agent (``tests/interop/pjua_worker.py``, null sound device, pinned
   to CPU 0 too) calls the client and plays a tone for the whole window while the client
   loops it back through the headset; the CPU (utime + stime, /proc/PID/stat) of both
   processes over the same window, as a share of one core. The worker is the baseline: the
   ratio shows what the client's Python and its headset bridge cost over a bare pjsua2 user
   agent in the same call. The target is under 10 % of one core.

Every loop is bounded in count and time; all traffic stays on 127.0.0.1. The bench exits
non-zero only when it could not run (a missing tool, a switch or phone that would not
start), never for a missed target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from media.codecs.g711 import ULAW_DECODE_TABLE, ulaw_encode
from media.rtp.packet import RtpPacket
from softswitch.sip.events import Address
from tests.integration.realnet import RealNet, audio_target
from tests.interop.servers import ServerProcess, cpu_seconds, softswitch_server
from tests.sim.network import Phone, sdp
from tools.bench.switch_run import RTP_PORT_MAX, RTP_PORT_MIN, finish, work_folder

SERVER_CPU = 1
CLIENT_CPU = 0
RATE = 8000
PACKET_SAMPLES = 160
PACKET_SECONDS = PACKET_SAMPLES / RATE
BURST_HZ = 1000.0
BURST_SECONDS = 0.04
BURST_AMPLITUDE = 12000
#: the onset of a burst is the first sample above this (the burst's peak is 12000)
ONSET_LEVEL = 3000
BURST_EVERY = 1.0
#: a burst not back within this long is counted lost
BURST_WAIT = 0.6
ECHO_NUMBER = "9196"
CLIENT_NUMBER = "1002"
PROBE_USER = "1003"
CALLER_USER = "1001"
CALLER_HZ = 440.0
SETUP_WAIT = 10.0
#: the targets of the feature
TARGET_DELAY_MS = 60.0
TARGET_CPU = 0.10
SOUND_LOOP_SECONDS = 6.0


# --- the probe's RTP -----------------------------------------------------------------------


def _burst_payloads() -> tuple[bytes, list[bytes]]:
    """PCMU silence, and the payloads of one burst (a 1 kHz sine from sample 0)."""
    silence = ulaw_encode(np.zeros(PACKET_SAMPLES, dtype=np.int16)).tobytes()
    samples = int(BURST_SECONDS * RATE)
    t = np.arange(samples) / RATE
    burst = np.round(BURST_AMPLITUDE * np.sin(2 * np.pi * BURST_HZ * t + np.pi / 2))
    pcm = burst.astype(np.int16)
    return silence, [
        ulaw_encode(pcm[i : i + PACKET_SAMPLES]).tobytes()
        for i in range(0, samples, PACKET_SAMPLES)
    ]


@dataclass
class BurstRun:
    """What one probe call measured."""

    target: str
    sent: int = 0
    back: int = 0
    #: round trips of the bursts that came back, in milliseconds
    rtt_ms: list[float] = field(default_factory=list)
    packets_in: int = 0
    error: str = ""

    @property
    def lost(self) -> int:
        return self.sent - self.back


class RtpProbe:
    """The probe's RTP: one thread sends a packet every 20 ms on an absolute schedule (a
    burst every ``BURST_EVERY`` seconds), another keeps what arrives with its arrival time."""

    def __init__(self, bursts: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.bursts = bursts
        self.to: tuple[str, int] | None = None
        #: the send time of each burst's first packet (its onset is that packet's sample 0)
        self.burst_times: list[float] = []
        self.arrivals: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run(self, lead_in: float) -> None:
        """Send for ``lead_in`` seconds of silence, then the bursts (blocking), and keep
        receiving for BURST_WAIT more."""
        receiver = threading.Thread(target=self._receive, name="probe-rx", daemon=True)
        receiver.start()
        try:
            self._send(lead_in)
            time.sleep(BURST_WAIT)
        finally:
            self._stop.set()
            receiver.join(2.0)
            self.sock.close()

    def _send(self, lead_in: float) -> None:
        assert self.to is not None
        silence, burst = _burst_payloads()
        per_burst = round(BURST_EVERY / PACKET_SECONDS)
        lead = round(lead_in / PACKET_SECONDS)
        total = lead + self.bursts * per_burst
        start = time.monotonic()
        for seq in range(total):  # bounded: one packet per 20 ms for the whole run
            due = start + seq * PACKET_SECONDS
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            k = seq - lead
            in_burst = k >= 0 and k % per_burst < len(burst)
            payload = burst[k % per_burst] if in_burst else silence
            packet = RtpPacket(0, seq & 0xFFFF, seq * PACKET_SAMPLES, 0x5EC0BE, payload=payload)
            self.sock.sendto(bytes(packet), self.to)
            if in_burst and k % per_burst == 0:
                self.burst_times.append(time.monotonic())

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.arrivals.append((time.monotonic(), data))

    def analyse(self, target: str) -> BurstRun:
        """Pair each burst with the first onset heard after it was sent."""
        run = BurstRun(target, sent=len(self.burst_times))
        onsets: list[float] = []
        quiet_until = 0.0
        for arrived, data in self.arrivals:
            try:
                packet = RtpPacket.parse(data)
            except ValueError:
                continue
            if packet.payload_type != 0:
                continue
            run.packets_in += 1
            samples = ULAW_DECODE_TABLE[np.frombuffer(packet.payload, np.uint8)]
            loud = np.nonzero(np.abs(samples.astype(np.int32)) > ONSET_LEVEL)[0]
            if len(loud) == 0:
                continue
            # the packet's last sample is "now": sample j was heard (len - j) samples ago
            onset = arrived - (len(samples) - int(loud[0])) / RATE
            if onset >= quiet_until:
                onsets.append(onset)
            quiet_until = arrived + BURST_SECONDS * 2
        for sent in self.burst_times:
            onset_sent = sent - PACKET_SAMPLES / RATE  # sample 0 of the burst's first packet
            found = next((o for o in onsets if onset_sent < o < sent + BURST_WAIT), None)
            if found is not None:
                run.back += 1
                run.rtt_ms.append((found - onset_sent) * 1000.0)
        return run


# --- the probe's SIP -----------------------------------------------------------------------


async def _until(net: RealNet, cond: Any, timeout: float, what: str) -> None:
    try:
        await net.until(cond, timeout)
    except AssertionError:
        raise RuntimeError(f"timeout waiting for {what}") from None


async def probe_call(
    server: ServerProcess,
    number: str,
    bursts: int,
    lead_in: float,
    answer: Any = None,
) -> BurstRun:
    """Call ``number`` from the probe, measure ``bursts`` bursts, hang up. ``answer``: a
    function run (in a thread) once the INVITE is out, that makes the callee answer."""
    net = RealNet()
    rtp = RtpProbe(bursts)
    try:
        phone: Phone = await net.udp_phone(PROBE_USER, Address("udp", server.host, server.sip_port))
        phone.password = server.users[PROBE_USER]
        phone.rtp_port = rtp.port
        phone.offer_sdp = sdp(rtp.port, "probe")
        phone.call(number)
        if answer is not None:
            await asyncio.to_thread(answer)
        await _until(net, lambda: phone.call_state in ("confirmed", "failed"), SETUP_WAIT, "200")
        if phone.call_state != "confirmed":
            return BurstRun(number, error=f"the call to {number} failed: {phone.final_status}")
        ok = next(r for r in reversed(phone.responses) if r.cseq.method == "INVITE")
        rtp.to = audio_target(ok.body)
        await asyncio.to_thread(rtp.run, lead_in)
        phone.hangup()
        await _until(net, lambda: phone.call_state == "ended", SETUP_WAIT, "the BYE's 200")
        return rtp.analyse(number)
    finally:
        net.close()


# --- pinning and the client -----------------------------------------------------------------


def pin(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` (and those it starts later) on ``cpu``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {cpu})


def can_pin() -> bool:
    return {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def account(server: ServerProcess, extension: str) -> dict[str, Any]:
    return {
        "username": extension,
        "password": server.users[extension],
        "extension": extension,
        "domain": server.domain,
        "server": server.host,
        "port": server.sip_port,
        "transport": "udp",
        "expires": 120,
    }


@contextlib.contextmanager
def client_phone(server: ServerProcess, pulse_env: dict[str, str], pinned: bool) -> Iterator[Any]:
    """The SipPhone under test (a child process), registered as 1002, headset open."""
    from tests.agent_client.phone_driver import PhoneProcess

    phone = PhoneProcess("bench-1002", env=pulse_env)
    try:
        if pinned:
            pin(phone.proc.pid, CLIENT_CPU)
        phone.start(
            account(server, CLIENT_NUMBER),
            audio=True,
            input_device="pulse",
            output_device="pulse",
            log_level=1,
        )
        phone.wait_event("registration", lambda e: e["registered"], timeout=SETUP_WAIT)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # PulseAudio's streams take a moment to run
            stats = phone.request("headset_stats")["stats"]
            if stats["captured"] >= 10 and stats["played"] >= 10:
                break
            time.sleep(0.1)
        if pinned:
            pin(phone.proc.pid, CLIENT_CPU)
        yield phone
    finally:
        phone.close()


# --- the sound system alone (a child process with the private PulseAudio's environment) ---


def sound_loop() -> dict[str, Any]:
    """Run in the child: PortAudio's own loop (output -> headset sink -> its monitor ->
    input) with the client's stream settings, then the headset bridge's loop (speaker ring
    -> streams -> mic ring) ticked every 20 ms by a thread in place of pjsua2's clock."""
    import sounddevice as sd

    from agent_client.headset import FRAME_MS, STREAM_SETTINGS, Headset

    headset = Headset(RATE)
    settings = dict(STREAM_SETTINGS)
    latency = settings.pop("latency", "low")
    click = (BURST_AMPLITUDE * np.sin(2 * np.pi * BURST_HZ * np.arange(80) / RATE)).astype("<i2")
    sent: list[float] = []
    heard: list[float] = []
    last = [0.0]

    def on_output(data: Any, frames: int, time_info: Any, status: Any) -> None:
        out = np.zeros(frames, dtype="<i2")
        now = time.monotonic()
        if now - last[0] >= 0.5:  # a click every 0.5 s, from the block's sample 0
            last[0] = now
            n = min(len(click), frames)
            out[:n] = click[:n]
            sent.append(now - frames / RATE)  # sample 0 of a block whose last is "now"
        data[:] = out.tobytes()

    def on_input(data: Any, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        x = np.frombuffer(bytes(data), "<i2")
        loud = np.nonzero(np.abs(x.astype(np.int32)) > ONSET_LEVEL)[0]
        if len(loud):
            heard.append(now - (len(x) - int(loud[0])) / RATE)

    common = {"samplerate": RATE, "device": "pulse", "channels": 1, "dtype": "int16"}
    inp = sd.RawInputStream(**common, **settings, latency=latency, callback=on_input)
    out = sd.RawOutputStream(**common, **settings, latency=latency, callback=on_output)
    inp.start()
    out.start()
    time.sleep(SOUND_LOOP_SECONDS)
    reported = (float(inp.latency), float(out.latency))
    inp.close()
    out.close()
    portaudio = _pair(sent[2:], heard)

    # the bridge: a 20 ms ticker stands for pjsua2's clock
    headset.open("pulse", "pulse")
    for _ in range(50):  # PulseAudio's streams take a moment to run (at most 5 s)
        counts = headset.stats()
        if counts.captured >= 10 and counts.played >= 10:
            break
        time.sleep(0.1)
    tick = FRAME_MS / 1000
    frame = headset.frame_bytes // 2
    burst = np.zeros(frame, dtype="<i2")
    burst[: len(click)] = click
    bridge_sent: list[float] = []
    bridge_heard: list[float] = []
    start = time.monotonic()
    for n in range(int(SOUND_LOOP_SECONDS / tick)):  # bounded: one tick per 20 ms
        due = start + n * tick
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = time.monotonic()
        back = np.frombuffer(headset.frame_for_call(), "<i2")
        loud = np.nonzero(np.abs(back.astype(np.int32)) > ONSET_LEVEL)[0]
        if len(loud):
            bridge_heard.append(now - (len(back) - int(loud[0])) / RATE)
        if n % 25 == 0 and n >= 50:
            headset.frame_from_call(burst.tobytes())
            bridge_sent.append(now - tick)  # its sample 0, a frame before its last
        else:
            headset.frame_from_call(headset.silence)
    stats = asdict(headset.stats())
    headset.close()
    return {
        "portaudio_latency_ms": [1000 * reported[0], 1000 * reported[1]],
        "stream_settings": {"latency": latency, **settings},
        "portaudio_loop_ms": portaudio,
        "bridge_loop_ms": _pair(bridge_sent, bridge_heard),
        "bridge_stats": stats,
    }


def _pair(sent: Sequence[float], heard: Sequence[float]) -> list[float]:
    """Milliseconds from each sent onset to the first one heard after it (within 0.4 s),
    every heard onset used once."""
    delays: list[float] = []
    used = -1.0
    for s in sent:
        found = next((h for h in heard if s - 0.002 < h < s + 0.4 and h > used), None)
        if found is not None:
            delays.append(1000 * (found - s))
            used = found + 0.1
    return delays


def run_sound_loop(pulse_env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench.agent_client", "--sound-loop"],
        env=dict(pulse_env, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
        capture_output=True,
        text=True,
        timeout=4 * SOUND_LOOP_SECONDS + 30,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the sound loop failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- CPU ---------------------------------------------------------------------------------


@dataclass
class CpuRun:
    seconds: float = 0.0
    client: float = 0.0  # share of one core
    worker: float = 0.0
    client_stats: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def cpu_call(
    server: ServerProcess, phone: Any, window: float, pinned: bool, workdir: Path
) -> CpuRun:
    """A pjsua2 worker (null sound device) calls the client and plays a tone; both
    processes' CPU over the same ``window``."""
    from tests.interop.pjua import UserAgent

    run = CpuRun()
    worker = UserAgent("bench-1001", log_level=1)
    try:
        if pinned:
            pin(worker.proc.pid, CLIENT_CPU)
        worker.init()
        code = worker.register(
            CALLER_USER, server.users[CALLER_USER], server.address, server.domain
        )
        if code != 200:
            run.error = f"the worker's registration: {code}"
            return run
        mark = phone.mark()
        outgoing = worker.call(CALLER_USER, f"sip:{CLIENT_NUMBER}@{server.domain}")
        handle = phone.wait_call("ringing", timeout=SETUP_WAIT, since=mark)["id"]
        phone.request("answer", call=handle)
        worker.wait_state(outgoing, "CONFIRMED", timeout=SETUP_WAIT)
        worker.media_start(outgoing, CALLER_HZ, str(workdir / "worker-heard.wav"))
        if pinned:
            pin(worker.proc.pid, CLIENT_CPU)
            pin(phone.proc.pid, CLIENT_CPU)
        time.sleep(1.0)  # streams and jitter buffers settle
        before = phone.request("headset_stats")["stats"]
        started = time.monotonic()
        c0, w0 = cpu_seconds([phone.proc.pid]), cpu_seconds([worker.proc.pid])
        time.sleep(window)
        c1, w1 = cpu_seconds([phone.proc.pid]), cpu_seconds([worker.proc.pid])
        run.seconds = time.monotonic() - started
        after = phone.request("headset_stats")["stats"]
        run.client = (c1 - c0) / run.seconds
        run.worker = (w1 - w0) / run.seconds
        run.client_stats = _slips(before, after)
        phone.request("hang_up", call=handle)
        worker.wait_state(outgoing, "DISCONNECTED", timeout=SETUP_WAIT)
    finally:
        worker.close()
    return run


def _slips(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The headset's stats at the end, with the counters turned into the window's counts."""
    counters = (
        "mic_overruns",
        "mic_underruns",
        "speaker_overruns",
        "speaker_underruns",
        "trimmed",
        "captured",
        "played",
        "to_call",
        "from_call",
    )
    return {k: (after[k] - before[k] if k in counters else v) for k, v in after.items()}


# --- the report ----------------------------------------------------------------------------


def _q(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(
    echo: BurstRun,
    client: BurstRun,
    client_stats: dict[str, Any],
    sound: dict[str, Any] | None,
    cpu: CpuRun | None,
    pinned: bool,
) -> tuple[list[str], dict[str, Any]]:
    lines = ["", "agent client: mouth-to-ear delay (ms; round trip through the probe)"]
    lines.append(f"{'path':<34} {'bursts':>9} {'p50':>7} {'p95':>7} {'min':>7} {'max':>7}")
    paths = (("echo test 9196 (baseline)", echo), ("client 1002 via the headset", client))
    for label, run in paths:
        lines.append(
            f"{label:<34} {f'{run.back}/{run.sent}':>9} {_ms(_q(run.rtt_ms, 0.5)):>7} "
            f"{_ms(_q(run.rtt_ms, 0.95)):>7} {_ms(min(run.rtt_ms, default=None)):>7} "
            f"{_ms(max(run.rtt_ms, default=None)):>7}"
            + (f"  error: {run.error}" if run.error else "")
        )
    figures: dict[str, Any] = {"echo": asdict(echo), "client": asdict(client)}
    base50, base95 = _q(echo.rtt_ms, 0.5), _q(echo.rtt_ms, 0.95)
    c50, c95 = _q(client.rtt_ms, 0.5), _q(client.rtt_ms, 0.95)
    if None not in (base50, base95, c50, c95):
        assert base50 is not None and base95 is not None and c50 is not None and c95 is not None
        added50, added95 = c50 - base50, c95 - base50
        lines.append(
            f"{'added by the client, round trip':<34} {'':>9} {added50:>7.1f} {added95:>7.1f}"
        )
        lines.append(
            f"{'added per direction (half)':<34} {'':>9} {added50 / 2:>7.1f} {added95 / 2:>7.1f}"
        )
        ratio = c50 / base50 if base50 > 0 else float("inf")
        lines.append(f"ratio client / echo round trip (p50): {ratio:.1f}x")
        verdict = "met" if added50 / 2 < TARGET_DELAY_MS else "MISSED"
        lines.append(
            f"target < {TARGET_DELAY_MS:.0f} ms per direction at 0 jitter: {verdict} "
            f"(p50 {added50 / 2:.1f} ms, p95 {added95 / 2:.1f} ms)"
        )
        figures["added_ms"] = {"round_trip_p50": added50, "round_trip_p95": added95}
    else:
        lines.append(f"target < {TARGET_DELAY_MS:.0f} ms per direction: not measured")
    if client_stats:
        s = client_stats
        lines.append(
            "client headset: PortAudio latency in {:.1f} ms, out {:.1f} ms; the client's own "
            "estimate mic {:.1f} ms, speaker {:.1f} ms; in the call: mic under/overruns "
            "{}/{}, speaker {}/{}, trimmed {}".format(
                1000 * s["input_latency"],
                1000 * s["output_latency"],
                1000 * s["mic_delay"],
                1000 * s["speaker_delay"],
                s["mic_underruns"],
                s["mic_overruns"],
                s["speaker_underruns"],
                s["speaker_overruns"],
                s["trimmed"],
            )
        )
        figures["client_headset"] = s
    if sound is not None:
        pa, bridge = sound["portaudio_loop_ms"], sound["bridge_loop_ms"]
        lines.append(
            f"sound system floor (PortAudio -> pulse null sink -> monitor -> PortAudio, "
            f"{sound['stream_settings']}): p50 {_ms(_q(pa, 0.5))} ms over {len(pa)} clicks; "
            f"reported latency in/out {sound['portaudio_latency_ms'][0]:.1f}/"
            f"{sound['portaudio_latency_ms'][1]:.1f} ms"
        )
        lines.append(
            f"headset bridge alone (rings + streams, 20 ms ticker): p50 {_ms(_q(bridge, 0.5))} ms "
            f"round trip over {len(bridge)} clicks"
        )
        if c50 is not None and base50 is not None and pa:
            floor = _q(pa, 0.5) or 0.0
            own = (c50 - base50 - floor) / 2
            lines.append(
                f"the client's own share per direction (added - floor, halved): {own:.1f} ms"
            )
        figures["sound"] = sound
    if cpu is not None:
        lines += [
            "",
            f"agent client: CPU in a two-way call ({cpu.seconds:.0f} s, "
            + (f"client and worker on CPU {CLIENT_CPU})" if pinned else "not pinned)"),
        ]
        if cpu.error:
            lines.append(f"error: {cpu.error}")
        else:
            cpu_ratio = f"{cpu.client / cpu.worker:.1f}x" if cpu.worker > 0 else "-"
            lines.append(f"{'process':<40} {'% of one core':>14}")
            lines.append(f"{'pjsua2 worker, null sound (baseline)':<40} {100 * cpu.worker:>14.2f}")
            lines.append(f"{'client SipPhone with the headset':<40} {100 * cpu.client:>14.2f}")
            lines.append(f"ratio client / worker: {cpu_ratio}")
            verdict = "met" if cpu.client < TARGET_CPU else "MISSED"
            lines.append(
                f"target < {100 * TARGET_CPU:.0f} % of one core: {verdict} "
                f"({100 * cpu.client:.2f} %)"
            )
        figures["cpu"] = asdict(cpu)
    return lines, figures


# --- main ----------------------------------------------------------------------------------


def missing() -> str | None:
    from tests.agent_client.pulse import missing as pulse_missing
    from tests.interop.pjua import pjsua2_available

    if not pjsua2_available():
        return "pjsua2 is not importable (PyPI package pjsua2-python)"
    return pulse_missing()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.agent_client", description=__doc__)
    parser.add_argument("--bursts", type=int, default=25, help="bursts per probe call (>= 20)")
    parser.add_argument("--cpu-window", type=float, default=20.0, help="seconds of the CPU call")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--sound-loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sound_loop:
        print(json.dumps(sound_loop()))
        return 0
    bursts = max(1, min(args.bursts, 120))
    window = max(1.0, min(args.cpu_window, 120.0))
    reason = missing()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    from tests.agent_client.pulse import PrivatePulse

    pinned = can_pin()
    print(
        "agent client benchmark: "
        + (
            f"switch on CPU {SERVER_CPU}, the client on CPU {CLIENT_CPU}"
            if pinned
            else "fewer than two CPUs: nothing pinned, figures are indicative only"
        ),
        flush=True,
    )
    started = time.monotonic()
    if pinned:
        os.sched_setaffinity(0, {SERVER_CPU})  # the bench, its probe and PulseAudio
    overrides = {
        "logging.level": "warning",
        "media.anchor": True,
        "media.rtp_port_min": RTP_PORT_MIN,
        "media.rtp_port_max": RTP_PORT_MAX,
    }
    with work_folder("agent-client-bench-", args.keep) as workdir, PrivatePulse() as pulse:
        pulse_env = pulse.client_env(PULSE_SINK="headset", PULSE_SOURCE="headset.monitor")
        print("  the sound system alone", flush=True)
        sound = run_sound_loop(pulse_env)
        server = softswitch_server(workdir, cpu=SERVER_CPU if pinned else None, overrides=overrides)
        server.start(timeout=20.0)
        try:
            print(f"  probe -> echo test {ECHO_NUMBER}: {bursts} bursts", flush=True)
            echo = asyncio.run(probe_call(server, ECHO_NUMBER, bursts, 1.0))
            with client_phone(server, pulse_env, pinned) as phone:
                print(f"  probe -> client {CLIENT_NUMBER}: {bursts} bursts", flush=True)
                mark = phone.mark()
                before: dict[str, Any] = {}
                during: dict[str, Any] = {}

                def near_the_end() -> None:
                    with contextlib.suppress(Exception):
                        during.update(phone.request("headset_stats")["stats"])

                # the counters over the call, and the rings' depths while it runs
                reader = threading.Timer(1.0 + bursts * BURST_EVERY, near_the_end)

                def answer() -> None:
                    handle = phone.wait_call("ringing", timeout=SETUP_WAIT, since=mark)["id"]
                    before.update(phone.request("headset_stats")["stats"])
                    phone.request("answer", call=handle)
                    reader.start()

                try:
                    client = asyncio.run(probe_call(server, CLIENT_NUMBER, bursts, 1.0, answer))
                finally:
                    reader.cancel()
                    if reader.ident is not None:
                        reader.join(SETUP_WAIT)
                after = during or phone.request("headset_stats")["stats"]
                client_stats = _slips(before, after) if before else after
                phone.wait_call("ended", timeout=SETUP_WAIT, since=mark)
                print(f"  pjsua2 worker -> client {CLIENT_NUMBER}: CPU, {window:g} s", flush=True)
                cpu = cpu_call(server, phone, window, pinned, workdir)
        finally:
            server.stop()
    lines, figures = report(echo, client, client_stats, sound, cpu, pinned)
    finish(lines, started, args.json, figures)
    failed = echo.error or client.error or (cpu is not None and cpu.error)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
