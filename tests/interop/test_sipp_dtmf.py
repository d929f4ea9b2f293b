"""DTMF from a SIPp caller as RFC 4733 telephone-events, reported by the switch.

SIPp (tools/sipp/uac_pcap_dtmf.xml) calls the prompt test extension 9197 as user 1001 with
digest authentication (MD5), ACKs the 200, plays a G.711 capture whose RTP carries the digits
1 5 9 # 0 * as telephone-events (tools/sipp/pcap/dtmf_rfc4733.pcap, written by
tools/sipp/make_dtmf_pcap.py), waits for its end plus a second and hangs up. The switch must
log each digit exactly once, in order, with the duration of its end packets, for that call
(RFC 4733 §2.5.2: three end packets make one digit), and hold no call, dialog or media
session afterwards.

The payload type of the events is the one the caller's SDP names (RFC 4733 §7.1): the same
digits on payload type 96 with an SDP saying 96 are reported too, and events on a payload
type the SDP does not name are not taken for digits.

Two checks need no SIPp: the committed capture equals what the script writes today, and it
follows the sender rules of RFC 4733 §2.5.1 (read here with a parser of its own).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.interop.servers import ServerProcess, free_port, sipp_overrides
from tests.interop.sipp import SCENARIO_DIR, SippResult, run_sipp, write_injection

SWITCH_OVERRIDES = sipp_overrides()

SCENARIO = SCENARIO_DIR / "uac_pcap_dtmf.xml"
GENERATOR = SCENARIO_DIR / "make_dtmf_pcap.py"
CAPTURE = SCENARIO_DIR / "pcap" / "dtmf_rfc4733.pcap"
PROMPT_TEST = "9197"
CALLER = "1001"
#: SIPp's pause after the play starts: the capture's length plus this.
SETTLE_MS = 1000

CALL_LINE = re.compile(r"call (\S+): (\S+) on the prompt test \((\d+)\)")
DIGIT_LINE = re.compile(r"call (\S+): DTMF (\S) from the (caller|callee) \((\d+) ms, ([\w-]+)\)")
ENDED_LINE = re.compile(r"call (\S+) ended: ")


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_dtmf_pcap", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()
#: (digit, milliseconds held) in the order the capture sends them.
SEQUENCE: tuple[tuple[str, int], ...] = GEN.SEQUENCE


def _generate(path: Path, event_pt: int | None = None) -> Path:
    """Run the generator script as a user would, writing ``path``."""
    argv = [sys.executable, str(GENERATOR), "--output", str(path)]
    if event_pt is not None:
        argv += ["--event-pt", str(event_pt)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return path


# --- reading a capture, independently of the generator -------------------------------------


@dataclass(frozen=True, slots=True)
class Captured:
    """One RTP packet of a capture and the capture time of its frame (microseconds)."""

    time_us: int
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def _internet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def read_capture(data: bytes) -> list[Captured]:
    """The RTP packets of a classic libpcap file of Ethernet/IPv4/UDP frames, every header
    checked (lengths and checksums of RFC 791 and RFC 768, RTP version 2 of RFC 3550)."""
    magic, major, minor, _zone, _figs, snaplen, link = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, 1), "not a classic Ethernet pcap"
    packets: list[Captured] = []
    offset = 24
    while offset < len(data):
        seconds, micros, caplen, length = struct.unpack_from("<IIII", data, offset)
        offset += 16
        frame = data[offset : offset + caplen]
        offset += caplen
        assert caplen == length == len(frame) <= snaplen, "truncated frame"
        assert micros < 1_000_000
        assert frame[12:14] == b"\x08\x00", "not IPv4"
        ip = frame[14:34]
        assert ip[0] == 0x45 and ip[9] == 17, "not a plain IPv4 header carrying UDP"
        assert _internet_checksum(ip) == 0xFFFF, "IPv4 header checksum"
        total_length = struct.unpack_from("!H", ip, 2)[0]
        assert total_length == len(frame) - 14
        udp = frame[34:]
        assert struct.unpack_from("!H", udp, 4)[0] == len(udp)
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
        assert _internet_checksum(pseudo + udp) == 0xFFFF, "UDP checksum"
        rtp = udp[8:]
        assert rtp[0] == 0x80, "RTP version 2 without padding, extension or CSRCs"
        _, second, seq, ts, ssrc = struct.unpack_from("!BBHII", rtp)
        packets.append(
            Captured(
                seconds * 1_000_000 + micros,
                bool(second & 0x80),
                second & 0x7F,
                seq,
                ts,
                ssrc,
                rtp[12:],
            )
        )
    return packets


def events_of(packets: list[Captured], event_pt: int) -> Iterator[list[Captured]]:
    """The telephone-event packets grouped by event (consecutive runs of one timestamp)."""
    run: list[Captured] = []
    for packet in packets:
        if packet.payload_type != event_pt:
            continue
        if run and packet.timestamp != run[0].timestamp:
            yield run
            run = []
        run.append(packet)
    if run:
        yield run


# --- the capture -----------------------------------------------------------------------------


def test_committed_capture_is_what_the_script_writes(tmp_path: Path) -> None:
    fresh = _generate(tmp_path / "fresh.pcap")
    assert (
        CAPTURE.read_bytes() == fresh.read_bytes()
    ), f"{CAPTURE} is stale: run python {GENERATOR.relative_to(SCENARIO_DIR.parents[1])}"
    again = _generate(tmp_path / "again.pcap")
    assert again.read_bytes() == fresh.read_bytes(), "the script is not deterministic"


def test_capture_follows_the_sender_rules_of_rfc_4733() -> None:
    packets = read_capture(CAPTURE.read_bytes())
    assert {p.ssrc for p in packets} == {packets[0].ssrc}, "one SSRC"
    assert {p.payload_type for p in packets} == {0, 101}
    for before, after in itertools.pairwise(packets):
        assert after.sequence == (before.sequence + 1) & 0xFFFF, "sequence numbers"
        assert after.time_us - before.time_us == 20_000, "one packet every 20 ms"
    start_us, start_ts = packets[0].time_us, packets[0].timestamp

    def sampled_at(packet: Captured) -> int:  # RTP timestamp of the packet's capture time
        return start_ts + (packet.time_us - start_us) * 8000 // 1_000_000

    audio = [p for p in packets if p.payload_type == 0]
    assert all(len(p.payload) == 160 and p.timestamp == sampled_at(p) for p in audio)
    from media.codecs.g711 import ulaw_decode

    samples = ulaw_decode(b"".join(p.payload for p in audio))
    assert 0 < int(abs(samples.astype(int)).max()) < 2000, "a quiet tone, not silence"

    digits: list[tuple[str, int]] = []
    for run in events_of(packets, 101):
        code, flags, _ = struct.unpack("!BBH", run[0].payload)
        assert all(len(p.payload) == 4 for p in run)
        assert run[0].timestamp == sampled_at(run[0]), "an event is stamped with its start"
        assert [p.marker for p in run] == [True] + [False] * (len(run) - 1), "§2.5.1.3 marker"
        fields = [struct.unpack("!BBH", p.payload) for p in run]
        assert {f[0] for f in fields} == {code}, "one event code per timestamp"
        ends = [bool(f[1] & 0x80) for f in fields]
        assert ends[-3:] == [True] * 3 and not any(ends[:-3]), "§2.5.1.4: three end packets"
        durations = [f[2] for f in fields]
        assert durations[:-2] == [160 * n for n in range(1, len(run) - 1)], "durations grow"
        assert durations[-3] == durations[-2] == durations[-1], "end packets repeat the total"
        assert not any(f[1] & 0x40 for f in fields), "reserved bit"
        held = range(run[0].timestamp, run[0].timestamp + durations[-1])
        assert not any(p.timestamp in held for p in audio), "no audio while a key is held"
        digits.append(("0123456789*#ABCD"[code], durations[-1] // 8))
    assert digits == list(SEQUENCE)
    assert [d for d, _ in digits] == ["1", "5", "9", "#", "0", "*"]


# --- SIPp through the switch -----------------------------------------------------------------


def _raw_socket_blocker(sipp: str) -> str | None:
    """Why SIPp could not send a capture's packets here (a raw socket), or None."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
        return None
    except PermissionError:
        pass
    try:
        # File capabilities (setcap cap_net_raw+ep): struct vfs_cap_data, permitted word 0.
        caps = os.getxattr(os.path.realpath(sipp), "security.capability")
        if len(caps) >= 8 and struct.unpack_from("<I", caps, 4)[0] & (1 << 13):
            return None
    except OSError:
        pass
    return (
        "SIPp plays a pcap through a raw socket: run the tests as root or "
        f"`setcap cap_net_raw+ep {os.path.realpath(sipp)}`"
    )


@pytest.fixture
def pcap_player(sipp_available: str) -> str:
    if os.environ.get("INTEROP_TARGET", "softswitch") != "softswitch":
        pytest.skip("the prompt test extension is the softswitch's own")
    reason = _raw_socket_blocker(sipp_available)
    if reason is not None:
        pytest.skip(reason)
    return sipp_available


@dataclass(frozen=True, slots=True)
class CallReport:
    """What the switch logged about the one call SIPp placed."""

    result: SippResult
    log: str
    call_id: str
    digits: list[tuple[str, int, str]]
    """(digit, milliseconds, source) of the call's caller, in log order."""


def _call_with_capture(
    switch: ServerProcess, workdir: Path, scenario: Path, sdp_event_pt: int
) -> CallReport:
    before = len(switch.stderr_text())
    injection = write_injection(
        workdir / "caller.csv",
        [[CALLER, switch.users[CALLER], switch.domain, str(sdp_event_pt)]],
    )
    pause_ms = GEN.duration_ms() + SETTLE_MS
    result = run_sipp(
        scenario,
        switch.address,
        "-inf",
        str(injection),
        "-s",
        PROMPT_TEST,
        "-auth_uri",
        f"{PROMPT_TEST}@{switch.domain}",
        "-mp",
        str(free_port()),
        "-d",
        str(pause_ms),
        "-m",
        "1",
        "-recv_timeout",
        "10000",
        timeout=20,
        workdir=workdir,
    )
    log = switch.stderr_text()[before:]
    if re.search(r"can't create raw", result.output, re.IGNORECASE):
        pytest.skip("SIPp may not open a raw socket here: " + result.output[-300:])
    context = f"{result.describe()}\n--- server ---\n{log[-4000:]}"
    assert result.ok, context
    assert result.stats is not None and result.stats.successful == 1, context

    calls = CALL_LINE.findall(log)
    assert len(calls) == 1, f"one prompt-test call expected: {calls}\n{context}"
    call_id, caller, number = calls[0]
    assert (caller, number) == (CALLER, PROMPT_TEST), context
    lines = DIGIT_LINE.findall(log)
    assert all(line[0] == call_id and line[2] == "caller" for line in lines), context
    digits = [(digit, int(ms), source) for _, digit, _, ms, source in lines]

    held, doc = switch.wait_health(
        lambda d: d.get("calls") == 0 and d.get("dialogs") == 0 and d.get("media_calls") == 0,
        timeout=10,
    )
    assert held, f"call, dialog or media session left after the BYE: {doc}\n{context}"
    assert call_id in ENDED_LINE.findall(switch.stderr_text()[before:]), context
    return CallReport(result, log, call_id, digits)


def _expected() -> list[tuple[str, int, str]]:
    return [(digit, ms, "rfc4733") for digit, ms in SEQUENCE]


@pytest.mark.interop
@pytest.mark.usefixtures("pcap_player")
def test_digits_of_the_committed_capture_are_reported_once_each(
    switch: ServerProcess, tmp_path: Path
) -> None:
    report = _call_with_capture(switch, tmp_path, SCENARIO, 101)
    assert report.digits == _expected(), report.log[-4000:]


def _scenario_with(workdir: Path, capture_event_pt: int) -> Path:
    """The scenario, copied next to a pcap/ folder whose capture sends its events on
    ``capture_event_pt`` (SIPp looks for the capture next to the scenario first)."""
    scenario = workdir / SCENARIO.name
    shutil.copyfile(SCENARIO, scenario)
    (workdir / "pcap").mkdir()
    _generate(workdir / "pcap" / CAPTURE.name, capture_event_pt)
    return scenario


@pytest.mark.interop
@pytest.mark.usefixtures("pcap_player")
def test_event_payload_type_comes_from_the_sdp(switch: ServerProcess, tmp_path: Path) -> None:
    scenario = _scenario_with(tmp_path, 96)
    report = _call_with_capture(switch, tmp_path, scenario, 96)
    assert report.digits == _expected(), report.log[-4000:]


@pytest.mark.interop
@pytest.mark.usefixtures("pcap_player")
def test_events_on_a_payload_type_the_sdp_did_not_name_are_not_digits(
    switch: ServerProcess, tmp_path: Path
) -> None:
    scenario = _scenario_with(tmp_path, 96)  # the SDP says 101
    report = _call_with_capture(switch, tmp_path, scenario, 101)
    assert report.digits == [], report.log[-4000:]
