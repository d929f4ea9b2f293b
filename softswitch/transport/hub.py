"""asyncio listeners and connections for SIP over UDP, TCP and TLS (RFC 3261 §18).

The hub owns every socket. Received messages go to one callback with their source
``Address``; ``send`` routes an ``Outgoing`` by its destination: UDP from the listening socket
of the same address family (so replies leave from the port the peer talks to, which symmetric
NAT needs), TCP/TLS over the existing connection to that address (a registered flow is reused)
or a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import cast

from softswitch.sip.errors import RemoteProtocolError
from softswitch.sip.events import Address, Outgoing
from softswitch.sip.framing import PONG, StreamFramer

log = logging.getLogger("softswitch.transport")

MessageSink = Callable[[bytes, Address], None]


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, hub: TransportHub) -> None:
        self.hub = hub
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) <= 4 and data.strip(b"\r\n\x00") == b"":
            return  # keep-alive (CRLF or NUL) from a UA behind NAT
        self.hub.on_message(data, Address("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP errors on an unconnected socket
        log.debug("UDP error: %s", exc)


class _Stream(asyncio.Protocol):
    def __init__(self, hub: TransportHub, name: str, outbound: Address | None = None) -> None:
        self.hub = hub
        self.name = name  # "tcp" or "tls"
        self.framer = StreamFramer(hub.max_size)
        self.transport: asyncio.Transport | None = None
        self.address = outbound
        self.queue: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's classes are not subclasses
        self.transport = transport
        if self.address is None:
            peer = transport.get_extra_info("peername")
            self.address = Address(self.name, str(peer[0]), int(peer[1]))
        self.hub.connections[self.address] = self
        for data in self.queue:
            transport.write(data)
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        assert self.address is not None and self.transport is not None
        try:
            messages = self.framer.feed(data)
        except RemoteProtocolError as exc:
            log.warning("closing %s: %s", self.address, exc.message)
            self.transport.close()
            return
        if self.framer.pings:
            self.transport.write(PONG * self.framer.pings)
        for message in messages:
            self.hub.on_message(message, self.address)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is not None and self.hub.connections.get(self.address) is self:
            del self.hub.connections[self.address]

    def send(self, data: bytes) -> None:
        if self.transport is None:
            self.queue.append(data)
        else:
            self.transport.write(data)


class TransportHub:
    """Every SIP socket of the process."""

    def __init__(self, on_message: MessageSink, *, max_size: int = 65535) -> None:
        self.on_message = on_message
        self.max_size = max_size
        self._udp: dict[int, asyncio.DatagramTransport] = {}  # address family -> socket
        self._servers: list[asyncio.Server] = []
        self.connections: dict[Address, _Stream] = {}
        self._tls_client: ssl.SSLContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.bound: list[Address] = []

    async def listen_udp(self, host: str, port: int) -> Address:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        sock.bind((host, port))
        transport, _ = await loop.create_datagram_endpoint(lambda: _Datagram(self), sock=sock)
        self._udp[family] = transport
        bound = Address("udp", host, sock.getsockname()[1])
        self.bound.append(bound)
        return bound

    async def listen_stream(
        self, host: str, port: int, context: ssl.SSLContext | None = None
    ) -> Address:
        loop = asyncio.get_running_loop()
        name = "tls" if context is not None else "tcp"
        server = await loop.create_server(
            lambda: _Stream(self, name), host, port, ssl=context, reuse_address=True
        )
        self._servers.append(server)
        bound = Address(name, host, server.sockets[0].getsockname()[1])
        self.bound.append(bound)
        return bound

    def send(self, out: Outgoing) -> None:
        dest = out.destination
        if dest.transport == "udp":
            family = socket.AF_INET6 if ":" in dest.host else socket.AF_INET
            udp = self._udp.get(family)
            if udp is None:
                log.warning("no UDP socket for %s", dest)
                return
            udp.sendto(out.data, (dest.host, dest.port))
            return
        conn = self.connections.get(dest)
        if conn is None:
            conn = _Stream(self, dest.transport, dest)
            self.connections[dest] = conn
            task = asyncio.ensure_future(self._connect(conn, dest))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        conn.send(out.data)

    async def _connect(self, conn: _Stream, dest: Address) -> None:
        loop = asyncio.get_running_loop()
        context = None
        if dest.transport == "tls":
            context = self._tls_client or ssl.create_default_context()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: conn, dest.host, dest.port, ssl=context), 10.0
            )
        except (OSError, TimeoutError) as exc:
            log.warning("cannot connect to %s: %s", dest, exc)
            if self.connections.get(dest) is conn:
                del self.connections[dest]

    async def close(self) -> None:
        for udp in self._udp.values():
            udp.close()
        for server in self._servers:
            server.close()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        for server in self._servers:
            await server.wait_closed()
        self._udp.clear()
        self._servers.clear()
