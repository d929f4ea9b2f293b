"""RTP sockets of the switch: the port pool, endpoints with symmetric latching, the relay.

- Ports come in pairs, RTP on an even port and RTCP on the next odd one (RFC 3550 §11), from a
  configured range; a call's ports return to the pool when it ends.
- Symmetric RTP (RFC 4961): an endpoint sends to where its peer's packets actually come from,
  not to the address in the peer's SDP, so a home agent behind NAT hears audio. Until the first
  packet arrives it sends to the SDP address.
- The relay forwards one leg's RTP to the other without decoding, through a
  ``StreamRewriter`` per direction (RFC 3550 §8.2 translation).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

from media.codecs.g711 import ALAW_TO_ULAW_TABLE, ULAW_TO_ALAW_TABLE
from media.rtp.packet import is_rtcp, payload_bounds
from media.rtp.rewrite import StreamRewriter
from media.rtp.session import RtpSession

__all__ = ["PayloadMap", "PortPool", "PortsExhausted", "Relay", "RtpEndpoint", "g711_map"]

log = logging.getLogger("media.transport")

Addr = tuple[str, int]

_SEQ_TS_SSRC = struct.Struct("!HII")  # bytes 2..11 of the RTP fixed header


class PortsExhausted(RuntimeError):
    """Every RTP port pair of the range is in use (the call should get 503)."""


class PortPool:
    """Even/odd port pairs of ``[first, last]``, handed out least recently used first."""

    def __init__(self, first: int, last: int) -> None:
        if first % 2:
            first += 1
        if not 1024 <= first < last <= 65535:
            raise ValueError(f"bad RTP port range {first}-{last}")
        self.first = first
        self.last = last
        self._free: list[int] = list(range(first, last, 2))
        self._used: set[int] = set()

    def __len__(self) -> int:
        """Free pairs."""
        return len(self._free)

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._used)

    def allocate(self) -> int:
        """An even RTP port whose RTCP port (+1) is also reserved."""
        if not self._free:
            raise PortsExhausted(f"all {self.capacity} RTP port pairs are in use")
        port = self._free.pop(0)
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)  # reused last: stray packets of the old call die out


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint, rtcp: bool) -> None:
        self.endpoint = endpoint
        self.rtcp = rtcp

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.endpoint._received(data, (addr[0], addr[1]), self.rtcp)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


def _ignore_rtp(packet: bytearray) -> None:
    return None


def _ignore_rtcp(packet: bytes) -> None:
    return None


class RtpEndpoint:
    """The switch's RTP/RTCP socket pair toward one leg."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.remote: Addr | None = None  # from SDP, until latching replaces it
        self.latched: Addr | None = None
        #: the peer this port served before its far end was moved (a phone that transferred
        #: the call away): its packets may not latch the port back until this loop time
        self.forsaken: Addr | None = None
        self.forsaken_until = 0.0
        self.rtcp_remote: Addr | None = None
        self.on_rtp: Callable[[bytearray], None] = _ignore_rtp
        self.on_rtcp: Callable[[bytes], None] = _ignore_rtcp
        self.last_received: float | None = None
        self.packets_in = 0
        self.packets_out = 0
        self.octets_out = 0  # RTP payload octets sent (fixed header excluded), for the SR
        #: RFC 3550 reception statistics and RTCP of this leg (None: not accounted)
        self.session: RtpSession | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._closed = False

    async def open(self) -> None:
        for task in self.open_now():
            await task

    def open_now(self) -> list[asyncio.Task[None]]:
        """Bind both sockets at once (so the ports are ours before the SDP names them); the
        event loop starts reading them as soon as it runs the returned tasks."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        socks = []
        try:
            for offset in (0, 1):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.setblocking(False)
                sock.bind((self.host, self.port + offset))
        except OSError:
            for sock in socks:
                sock.close()
            raise
        return [
            asyncio.ensure_future(self._attach(sock, bool(offset)))
            for offset, sock in enumerate(socks)
        ]

    async def _attach(self, sock: socket.socket, rtcp: bool) -> None:
        transport, _ = await self.loop.create_datagram_endpoint(
            lambda: _Protocol(self, rtcp=rtcp), sock=sock
        )
        if self._closed:
            transport.close()
        elif rtcp:
            self._rtcp = transport
        else:
            self._rtp = transport

    def reset(self) -> None:
        """Forget the previous call (for reuse of an open endpoint by the next one)."""
        self.remote = self.latched = self.rtcp_remote = self.forsaken = None
        self.on_rtp = _ignore_rtp
        self.on_rtcp = _ignore_rtcp
        self.last_received = None
        self.packets_in = self.packets_out = self.octets_out = 0
        self.session = None

    def close(self) -> None:
        self._closed = True
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                transport.close()
        self._rtp = self._rtcp = None

    def move(self, remote: Addr, hold_off: float) -> None:
        """The far end of this port is now ``remote`` (its SDP address; the first packet
        latches the real source). The peer latched until now may not take the port back for
        ``hold_off`` seconds: after a transfer, the transferring phone's last packets must not
        pull the customer's audio back to it."""
        if (
            self.remote is not None  # an earlier answer named another peer (not the first)
            and self.remote != remote
            and self.latched is not None
            and self.latched != remote
        ):
            self.forsaken = self.latched
            self.forsaken_until = self.loop.time() + hold_off
            self.latched = None
        self.remote = remote

    def _received(self, data: bytes, addr: Addr, rtcp_port: bool) -> None:
        if self.on_rtp is _ignore_rtp:
            return  # idle (between calls): a stray packet must not latch anything
        self.last_received = now = self.loop.time()
        if addr == self.forsaken and self.latched != addr:
            if now < self.forsaken_until:
                return
            self.forsaken = None
        if rtcp_port or is_rtcp(data):  # RTCP on its own port, or muxed (RFC 5761)
            self.rtcp_remote = addr
            if self.session is not None:
                self.session.receive_rtcp(data, now)
            self.on_rtcp(data)
            return
        session = self.session
        if session is not None and len(data) >= 12:
            seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
            session.receive_rtp_header(ssrc, seq, ts, len(data) - 12, now)
        if self.latched != addr:
            if self.latched is not None:
                log.info("RTP port %d: peer moved from %s to %s", self.port, self.latched, addr)
            self.latched = addr  # symmetric RTP: answer where the packets come from
        self.packets_in += 1
        self.on_rtp(bytearray(data))

    @property
    def destination(self) -> Addr | None:
        return self.latched or self.remote

    def send_rtp(self, packet: bytes | bytearray) -> None:
        dest = self.destination
        if dest is None or self._rtp is None:
            return
        self._rtp.sendto(packet, dest)
        self.packets_out += 1
        self.octets_out += len(packet) - 12

    def send_rtcp(self, packet: bytes) -> None:
        dest = self.rtcp_remote
        if dest is None and self.destination is not None:
            dest = (self.destination[0], self.destination[1] + 1)
        if dest is not None and self._rtcp is not None:
            self._rtcp.sendto(packet, dest)


#: What to do with each payload type arriving from one leg: the payload type to send it on
#: and, for G.711 between laws, the 256-byte transcoding table (None: payload untouched).
PayloadMap = dict[int, tuple[int, bytes | None]]


def g711_map(pt_in: int, pt_out: int) -> PayloadMap:
    """PCMU (0) and PCMA (8) on either side; the same law is a plain relay."""
    if pt_in == pt_out:
        return {}
    table = bytes(ULAW_TO_ALAW_TABLE) if pt_in == 0 else bytes(ALAW_TO_ULAW_TABLE)
    return {pt_in: (pt_out, table)}


def _apply(packet: bytearray, mapping: PayloadMap) -> None:
    entry = mapping.get(packet[1] & 0x7F)
    if entry is None:
        return
    pt_out, table = entry
    packet[1] = (packet[1] & 0x80) | pt_out
    if table is not None:
        start, end = payload_bounds(packet)
        packet[start:end] = packet[start:end].translate(table)


class Relay:
    """Both directions of an anchored two-party call.

    With the same codec on both legs packets are relayed without decoding; between PCMU and
    PCMA each payload byte is transcoded through a table (no linear PCM in between), and other
    payload types (telephone-event) are renumbered to what each leg negotiated.
    """

    def __init__(
        self,
        a: RtpEndpoint,
        b: RtpEndpoint,
        ssrc_a: int,
        ssrc_b: int,
        *,
        a_to_b: PayloadMap | None = None,
        b_to_a: PayloadMap | None = None,
    ) -> None:
        self.a = a
        self.b = b
        # toward A: the switch's stream carrying B's audio, and the reverse
        self.to_a = StreamRewriter(ssrc_a, initial_seq=ssrc_a & 0x7FFF, initial_ts=ssrc_a)
        self.to_b = StreamRewriter(ssrc_b, initial_seq=ssrc_b & 0x7FFF, initial_ts=ssrc_b)
        self.a_to_b: PayloadMap = a_to_b or {}
        self.b_to_a: PayloadMap = b_to_a or {}
        a.on_rtp = self._from_a
        b.on_rtp = self._from_b
        #: relay each direction (off while the switch sends that leg something else: music on
        #: hold, or a mix)
        self.to_a_on = True
        self.to_b_on = True
        #: see each leg's packets as they arrive, before rewriting (recording, DTMF)
        self.tap_a: Callable[[bytearray], None] | None = None
        self.tap_b: Callable[[bytearray], None] | None = None

    def _from_a(self, packet: bytearray) -> None:
        if self.tap_a is not None:
            self.tap_a(packet)
        if self.to_b_on and self.to_b.relay(packet):
            if self.a_to_b:
                _apply(packet, self.a_to_b)
            self.b.send_rtp(packet)

    def _from_b(self, packet: bytearray) -> None:
        if self.tap_b is not None:
            self.tap_b(packet)
        if self.to_a_on and self.to_a.relay(packet):
            if self.b_to_a:
                _apply(packet, self.b_to_a)
            self.a.send_rtp(packet)
