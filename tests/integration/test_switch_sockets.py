"""The switch on real sockets over loopback: UDP, TCP, TLS and IPv6, run in this process."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from softswitch.app import Switch
from softswitch.config import Listener
from softswitch.sip.auth import build_authorization, parse_auth_params
from softswitch.sip.message import Response, parse_message
from tests.integration.local_switch import make_settings


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, trustme.CA]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path, ca


@pytest.fixture
async def switch(tmp_path: Path, tls_files: tuple[Path, Path, Any]) -> AsyncIterator[Switch]:
    cert, key, _ = tls_files
    listeners = (
        Listener(transport="udp", address="127.0.0.1", port=0),
        Listener(transport="tcp", address="127.0.0.1", port=0),
        Listener(transport="tls", address="127.0.0.1", port=0, certificate=cert, key=key),
        Listener(transport="udp", address="::1", port=0),
    )
    sw = Switch(make_settings(tmp_path, listeners))
    await sw.start()
    yield sw
    await sw.stop()


def port_of(sw: Switch, transport: str, family: str = "4") -> int:
    for a in sw.hub.bound:
        if a.transport == transport and ((":" in a.host) == (family == "6")):
            return a.port
    raise AssertionError(f"no {transport} listener")


def options(port: int, transport: str = "UDP", host: str = "127.0.0.1", branch: str = "1") -> bytes:
    h = f"[{host}]" if ":" in host else host
    return (
        f"OPTIONS sip:{h}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {h}:40000;branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@example.org>;tag=p1\r\n"
        f"To: <sip:{h}>\r\nCall-ID: opt-{branch}@t\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def udp_raw(data: bytes, port: int, host: str = "127.0.0.1") -> bytes:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((host, 0))
    try:
        await loop.sock_sendto(sock, data, (host, port))
        reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
    finally:
        sock.close()
    return reply


async def udp_exchange(data: bytes, port: int, host: str = "127.0.0.1") -> Response:
    msg = parse_message(await udp_raw(data, port, host))
    assert isinstance(msg, Response)
    return msg


async def test_options_over_udp_is_answered_200_with_allow_and_accept(switch: Switch) -> None:
    resp = await udp_exchange(options(port_of(switch, "udp")), port_of(switch, "udp"))
    assert resp.status == 200
    assert "INVITE" in (resp.headers.get("Allow") or "")
    assert resp.headers.get("Accept") == "application/sdp"
    via = resp.top_via
    assert via.params["rport"] not in (None, "")  # RFC 3581: the port we really came from
    assert via.params["received"] == "127.0.0.1" or via.host == "127.0.0.1"
    assert switch.health()["messages"]["received"] == 1  # type: ignore[index]


async def test_options_over_ipv6_udp(switch: Switch) -> None:
    port = port_of(switch, "udp", "6")
    resp = await udp_exchange(options(port, host="::1"), port, "::1")
    assert resp.status == 200


async def test_malformed_request_gets_400_that_says_why(switch: Switch) -> None:
    bad = options(port_of(switch, "udp")).replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS")
    reply = await udp_raw(bad, port_of(switch, "udp"))
    status_line = reply.split(b"\r\n", 1)[0].decode()
    assert status_line.startswith("SIP/2.0 400 ")
    assert "CSeq" in status_line  # the reason phrase names what was wrong


async def test_tcp_framing_keepalive_and_two_messages_in_one_segment(switch: Switch) -> None:
    port = port_of(switch, "tcp")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\r\n\r\n")  # RFC 5626 keep-alive ping
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"
        writer.write(options(port, "TCP", branch="a") + options(port, "TCP", branch="b"))
        await writer.drain()
        statuses = []
        for _ in range(2):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            statuses.append(parse_message(head).status)  # type: ignore[union-attr]
        assert statuses == [200, 200]
    finally:
        writer.close()


async def test_tls_listener(switch: Switch, tls_files: tuple[Path, Path, Any]) -> None:
    _, _, ca = tls_files
    context = ssl.create_default_context()
    ca.configure_trust(context)
    port = port_of(switch, "tls")
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(options(port, "TLS"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        resp = parse_message(head)
        assert isinstance(resp, Response) and resp.status == 200
    finally:
        writer.close()


def register(port: int, contact_port: int, auth: str | None = None, cseq: int = 1) -> bytes:
    extra = f"Authorization: {auth}\r\n" if auth else ""
    return (
        f"REGISTER sip:softswitch.local SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{contact_port};branch=z9hG4bKreg{cseq};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:1001@softswitch.local>;tag=r1\r\n"
        "To: <sip:1001@softswitch.local>\r\nCall-ID: reg-1@t\r\n"
        f"CSeq: {cseq} REGISTER\r\nContact: <sip:1001@127.0.0.1:{contact_port}>\r\n"
        f"Expires: 600\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


async def do_register(sw: Switch) -> Response:
    port = port_of(sw, "udp")
    first = await udp_exchange(register(port, 40123), port)
    assert first.status == 401
    challenges = first.headers.rows("WWW-Authenticate")
    assert [parse_auth_params(c)[1]["algorithm"] for c in challenges] == ["SHA-256", "MD5"]
    _, params = parse_auth_params(challenges[0])
    auth = build_authorization(
        username="1001", realm=params["realm"], nonce=params["nonce"], method="REGISTER",
        uri="sip:softswitch.local", cnonce="c1", password="demo1001", algorithm="SHA-256",
    )  # fmt: skip
    return await udp_exchange(register(port, 40123, auth, 2), port)


async def test_register_with_sha256_digest_and_bindings_survive_a_restart(
    tmp_path: Path, tls_files: tuple[Path, Path, Any]
) -> None:
    listeners = (Listener(transport="udp", address="127.0.0.1", port=0),)
    sw = Switch(make_settings(tmp_path, listeners))
    await sw.start()
    try:
        ok = await do_register(sw)
        assert ok.status == 200
        assert "expires=600" in (ok.headers.get("Contact") or "")
        assert len(sw.bindings) == 1
    finally:
        await sw.stop()  # flushes the write-behind queue
    again = Switch(make_settings(tmp_path, listeners))
    await again.start()
    try:
        [binding] = list(again.bindings.all())
        assert binding.aor == "1001@softswitch.local"
        assert binding.contact == "sip:1001@127.0.0.1:40123"
        assert again.health()["registrations"] == 1
    finally:
        await again.stop()
