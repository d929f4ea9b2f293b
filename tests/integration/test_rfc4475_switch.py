"""Every RFC 4475 torture message sent to a running switch over UDP on loopback.

The top Via is rewritten to this test's own loopback socket (the messages name hosts such as
192.0.2.x), so every reply stays on 127.0.0.1. The switch must answer each request with the
status ``tests/unit/sip/rfc4475_expectations.py`` names, send nothing back for responses, and
stay up throughout.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from softswitch.app import Switch
from softswitch.config import Listener
from tests.integration.test_switch_sockets import make_settings, options, udp_exchange
from tests.unit.sip.rfc4475_expectations import EXPECTATIONS, message_bytes

_VIA_HOST = re.compile(rb"^((?:Via|v)\s*:\s*SIP\s*/\s*2\.0\s*/\s*\w+\s+)([^;\r\n]+)", re.I | re.M)


def readdress(data: bytes, port: int) -> bytes:
    """Point the top Via's sent-by at our socket so the reply comes back to it."""
    return _VIA_HOST.sub(lambda m: m.group(1) + f"127.0.0.1:{port}".encode(), data, count=1)


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    sw = Switch(make_settings(tmp_path, (Listener(transport="udp", address="127.0.0.1", port=0),)))
    await sw.start()
    yield sw
    await sw.stop()


async def final_status(data: bytes, port: int, wait: float) -> tuple[int | None, list[bytes]]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    got: list[bytes] = []
    try:
        await loop.sock_sendto(sock, readdress(data, sock.getsockname()[1]), ("127.0.0.1", port))
        end = loop.time() + wait
        while loop.time() < end:
            try:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), end - loop.time())
            except TimeoutError:
                break
            got.append(reply)
            status = int(reply.split(b" ", 2)[1])
            if status >= 200:
                return status, got
    finally:
        sock.close()
    return None, got


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
async def test_torture_message(switch: Switch, name: str) -> None:
    exp = EXPECTATIONS[name]
    port = switch.hub.bound[0].port
    data = message_bytes(name)
    if exp.kind == "response":
        status, replies = await final_status(data, port, 0.3)
        assert replies == [], f"{name}: a response must never be answered"
    elif exp.switch is not None:
        status, replies = await final_status(data, port, 3.0)
        assert status == exp.switch, f"{name} ({exp.section}): {replies[-1:]!r}"
    else:
        status, replies = await final_status(data, port, 3.0)
        # Its normal course: authentication challenges or an answer, never a 400.
        assert status is not None and status != 400, f"{name}: {replies[-1:]!r}"
    # still up, and nothing of it left in progress beyond retransmission caches
    resp = await udp_exchange(options(port, branch=f"after-{name}"), port)
    assert resp.status == 200
    assert switch.b2bua.calls == {}
