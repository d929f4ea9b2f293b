"""Supervisors on a live call, on real sockets: listen, whisper and barge checked by frequency.

The caller plays 440 Hz, the agent 1000 Hz and the supervisor 1700 Hz, each as 20 ms PCMU
packets in real time; each phone's received audio is decoded and its spectrum tells whom it
heard.
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from media.codecs.g711 import ULAW_DECODE_TABLE, ulaw_encode
from media.engine import MediaEngine
from media.mixer import SupervisorMode
from media.rtp.packet import RtpPacket
from media.transport import PortPool
from tests.integration.test_media_relay import free_even_pair

TONES = {"caller": 440.0, "agent": 1000.0, "supervisor": 1700.0}


class TonePhone:
    def __init__(self, hz: float, ssrc: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()
        self.hz = hz
        self.ssrc = ssrc
        self.seq = 0
        self.heard: list[bytes] = []
        self.sent: set[bytes] = set()
        self.to: tuple[str, int] | None = None

    def send_frame(self) -> None:
        t = (np.arange(160) + self.seq * 160) / 8000
        frame = np.round(8000 * np.sin(2 * np.pi * self.hz * t)).astype(np.int16)
        payload = ulaw_encode(frame).tobytes()
        packet = RtpPacket(0, self.seq & 0xFFFF, self.seq * 160, self.ssrc, payload=payload)
        self.sent.add(payload)
        assert self.to is not None
        self.sock.sendto(bytes(packet), self.to)
        self.seq += 1

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            packet = RtpPacket.parse(data)
            if packet.payload_type == 0:
                self.heard.append(packet.payload)

    def share(self, hz: float) -> float:
        """The share of what this phone heard that lies within 20 Hz of ``hz``."""
        codes = np.frombuffer(b"".join(self.heard), np.uint8)
        samples = ULAW_DECODE_TABLE[codes].astype(float)
        if len(samples) < 1600:
            return 0.0
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
        freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
        return float(spectrum[np.abs(freqs - hz) < 20].sum() / max(spectrum.sum(), 1e-9))


async def talk(phones: dict[str, TonePhone], seconds: float) -> None:
    """Every phone sends a frame each 20 ms; what arrived in the first 0.2 s is dropped."""
    for phone in phones.values():
        phone.drain()
    for i in range(int(seconds / 0.02)):
        for phone in phones.values():
            phone.send_frame()
        await asyncio.sleep(0.02)
        for phone in phones.values():
            phone.drain()
            if i == 10:
                phone.heard.clear()
    await asyncio.sleep(0.1)
    for phone in phones.values():
        phone.drain()


@pytest.fixture
async def monitored() -> tuple[MediaEngine, dict[str, TonePhone]]:
    loop = asyncio.get_running_loop()
    first = free_even_pair()
    engine = MediaEngine(loop, "127.0.0.1", "127.0.0.1", PortPool(first, first + 11))
    phones = {name: TonePhone(hz, i + 1) for i, (name, hz) in enumerate(TONES.items())}
    a_port, b_port = engine.allocate("call")
    s_port, _ = engine.allocate("sup")
    await asyncio.sleep(0.05)
    engine.set_remote("call", "a", *phones["caller"].addr)
    engine.set_remote("call", "b", *phones["agent"].addr)
    engine.set_remote("sup", "a", *phones["supervisor"].addr)
    engine.connect("call")
    phones["caller"].to = ("127.0.0.1", a_port)
    phones["agent"].to = ("127.0.0.1", b_port)
    phones["supervisor"].to = ("127.0.0.1", s_port)
    yield engine, phones
    engine.close()
    for phone in phones.values():
        phone.sock.close()


def fresh(phones: dict[str, TonePhone]) -> None:
    for phone in phones.values():
        phone.heard.clear()


async def test_listen_whisper_barge_and_back_to_the_relay(
    monitored: tuple[MediaEngine, dict[str, TonePhone]],
) -> None:
    engine, phones = monitored
    caller, agent, sup = phones["caller"], phones["agent"], phones["supervisor"]
    assert engine.monitor("call", "sup", SupervisorMode.LISTEN, agent_side="b")

    await talk(phones, 0.8)
    # listen: the supervisor hears both parties; nobody hears the supervisor
    assert sup.share(440) > 0.3 and sup.share(1000) > 0.3
    assert caller.share(1000) > 0.8 and caller.share(1700) < 0.01
    assert agent.share(440) > 0.8 and agent.share(1700) < 0.01

    fresh(phones)
    assert engine.set_monitor_mode("sup", SupervisorMode.WHISPER)
    await talk(phones, 0.8)
    # whisper: the agent hears the supervisor, the caller does not
    assert agent.share(1700) > 0.3 and agent.share(440) > 0.3
    assert caller.share(1700) < 0.01 and caller.share(1000) > 0.8

    fresh(phones)
    assert engine.set_monitor_mode("sup", SupervisorMode.BARGE)
    await talk(phones, 0.8)
    # barge: everyone hears everyone, nobody hears itself
    assert caller.share(1700) > 0.3 and agent.share(1700) > 0.3
    assert caller.share(440) < 0.01 and agent.share(1000) < 0.01
    assert sup.share(1700) < 0.01

    engine.release("sup")  # the supervisor hangs up: a plain relay again
    fresh(phones)
    await talk(phones, 0.5)
    assert caller.share(1700) < 0.01 and agent.share(1700) < 0.01
    assert agent.share(440) > 0.8
    # the relay passes the caller's payloads untouched again (no decode and re-encode)
    assert agent.heard and all(p in caller.sent for p in agent.heard)


async def test_a_supervisor_digit_changes_the_mode(
    monitored: tuple[MediaEngine, dict[str, TonePhone]],
) -> None:
    from media.dtmf import DtmfReceived

    engine, phones = monitored
    assert engine.monitor("call", "sup", SupervisorMode.LISTEN, agent_side="b")
    engine.digit("sup", "a", DtmfReceived("3", 100))
    await talk(phones, 0.6)
    assert phones["caller"].share(1700) > 0.3  # barging now


async def test_the_monitor_ends_with_the_monitored_call(
    monitored: tuple[MediaEngine, dict[str, TonePhone]],
) -> None:
    engine, phones = monitored
    assert engine.monitor("call", "sup", SupervisorMode.LISTEN, agent_side="b")
    assert not engine.monitor("call", "sup", SupervisorMode.LISTEN, agent_side="b")  # twice
    assert not engine.monitor("nope", "sup", SupervisorMode.LISTEN, agent_side="b")
    engine.release("call")
    assert not engine.set_monitor_mode("sup", SupervisorMode.BARGE)
    engine.release("sup")
    assert len(engine) == 0 and engine.free_pairs == 6
