"""Phones on real loopback sockets for tests of an in-process switch.

:class:`RealNet` runs the scripted phones of ``tests/sim/network.py`` on real UDP sockets and
TCP connections, driven by the event loop's clock; :class:`RtpSocket` is a phone's RTP port
and :class:`TonePhone` one that talks a tone in 20 ms PCMU packets (RFC 3551 §4.5.14) and keeps
what it hears, told apart by frequency.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import numpy as np

from media.codecs.g711 import ULAW_DECODE_TABLE, ulaw_encode
from media.rtp.packet import RtpPacket
from softswitch.sip.events import Address
from softswitch.sip.framing import StreamFramer
from softswitch.sip.sdp import SessionDescription, media_address
from tests.sim.network import Phone


class RealNet:
    """Phones on real sockets: ``now`` is the loop clock, ``send`` writes to a socket."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.phones: list[Phone] = []
        self._udp: dict[Address, asyncio.DatagramTransport] = {}
        self._tcp: dict[Address, asyncio.StreamWriter] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._tasks.append(asyncio.ensure_future(self._tick()))

    @property
    def now(self) -> float:
        return self.loop.time()

    def send(self, data: bytes, source: Address, destination: Address) -> None:
        if source.transport == "udp":
            self._udp[source].sendto(data, (destination.host, destination.port))
        else:
            self._tcp[source].write(data)

    async def udp_phone(self, user: str, server: Address) -> Phone:
        phone_box: list[Phone] = []

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                phone_box[0].receive(data, Address("udp", addr[0], addr[1]), self_net.now)

        self_net = self
        transport, _ = await self.loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        phone = Phone(self, user, f"demo{user}", Address("udp", "127.0.0.1", port), server)
        phone_box.append(phone)
        self._udp[phone.address] = transport
        self.phones.append(phone)
        return phone

    async def tcp_phone(self, user: str, server: Address) -> Phone:
        """A phone that only has its outbound TCP connection (it listens on nothing)."""
        reader, writer = await asyncio.open_connection(server.host, server.port)
        port = writer.get_extra_info("sockname")[1]
        phone = Phone(self, user, f"demo{user}", Address("tcp", "127.0.0.1", port), server)
        self._tcp[phone.address] = writer
        self.phones.append(phone)

        async def read() -> None:
            framer = StreamFramer()
            while data := await reader.read(65536):
                for message in framer.feed(data):
                    phone.receive(message, server, self.now)

        self._tasks.append(asyncio.ensure_future(read()))
        return phone

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            for phone in self.phones:
                deadline = phone.layer.next_deadline()
                if deadline is not None and deadline <= self.now:
                    phone.layer.handle_timer(self.now)
                    phone.process(self.now)

    async def until(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        end = self.now + timeout
        while not cond():
            assert self.now < end, "condition not reached in time"
            await asyncio.sleep(0.01)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for transport in self._udp.values():
            transport.close()
        for writer in self._tcp.values():
            writer.close()


class RtpSocket:
    """A phone's RTP port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def send(self, to: tuple[str, int], seq: int, payload: bytes) -> None:
        self.sock.sendto(bytes(RtpPacket(0, seq, seq * 160, 0x1234, payload=payload)), to)

    async def recv(self) -> RtpPacket:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), 2.0)
        return RtpPacket.parse(data)

    def drain(self) -> list[bytes]:
        """The datagrams that have arrived, without waiting for more."""
        datagrams: list[bytes] = []
        while True:
            try:
                datagrams.append(self.sock.recv(2048))
            except BlockingIOError:
                return datagrams


def audio_target(body: bytes) -> tuple[str, int]:
    """Where the SDP in ``body`` wants its first audio stream sent."""
    offer = SessionDescription.parse(body)
    return media_address(offer.media[0], offer)


def channel_peak_hz(channel: np.ndarray) -> float:
    """The strongest frequency of 8 kHz samples (the DC bin left out)."""
    spectrum = np.abs(np.fft.rfft(channel.astype(float) * np.hanning(len(channel))))
    return float(np.fft.rfftfreq(len(channel), 1 / 8000)[int(np.argmax(spectrum[1:])) + 1])


class TonePhone:
    """A phone's RTP socket that sends a tone as PCMU every 20 ms and keeps what it hears."""

    def __init__(self, rtp: RtpSocket, hz: float, ssrc: int) -> None:
        self.rtp, self.hz, self.ssrc = rtp, hz, ssrc
        self.seq = 0
        self.heard: list[bytes] = []
        self.to: tuple[str, int] | None = None

    def send(self) -> None:
        assert self.to is not None
        t = (np.arange(160) + self.seq * 160) / 8000
        frame = np.round(8000 * np.sin(2 * np.pi * self.hz * t)).astype(np.int16)
        packet = RtpPacket(
            0, self.seq, self.seq * 160, self.ssrc, payload=ulaw_encode(frame).tobytes()
        )
        self.rtp.sock.sendto(bytes(packet), self.to)
        self.seq += 1

    def take(self) -> None:
        """Keep the PCMU payloads that have arrived."""
        for data in self.rtp.drain():
            packet = RtpPacket.parse(data)
            if packet.payload_type == 0:
                self.heard.append(packet.payload)

    def share(self, hz: float) -> float:
        """The share of what this phone heard that lies within 20 Hz of ``hz``."""
        samples = ULAW_DECODE_TABLE[np.frombuffer(b"".join(self.heard), np.uint8)].astype(float)
        if len(samples) < 1600:
            return 0.0
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
        freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
        return float(spectrum[np.abs(freqs - hz) < 20].sum() / max(spectrum.sum(), 1e-9))


async def talk(phones: list[TonePhone], seconds: float) -> None:
    """Every phone sends its tone in real time for ``seconds``; what they heard before is
    dropped."""
    for p in phones:
        p.take()
        p.heard.clear()
    for _ in range(int(seconds / 0.02)):
        for p in phones:
            p.send()
        await asyncio.sleep(0.02)
        for p in phones:
            p.take()
