"""Fixtures for the softphone's tests: the switch and the pjsua2 peers of the interop tests
(a real switch subprocess on 127.0.0.1, user agents in child processes), and phones under
test, each a SipPhone in a child process (tests/agent_client/phone_driver.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.agent_client.phone_driver import PhoneProcess
from tests.interop.conftest import pjsua2_ready, switch, user_agents
from tests.interop.servers import ServerProcess

__all__ = ["account_for", "phones", "pjsua2_ready", "switch", "user_agents"]


def account_for(server: ServerProcess, extension: str, transport: str = "udp") -> dict[str, Any]:
    """The SipAccount fields (as the driver's ``start`` takes them) of a demo user."""
    return {
        "username": extension,
        "password": server.users[extension],
        "extension": extension,
        "domain": server.domain,
        "server": server.host,
        "port": server.sip_port,
        "transport": transport,
        "expires": 60,
    }


@pytest.fixture
def phones() -> Iterator[Callable[..., PhoneProcess]]:
    """A factory of phones under test (child processes), all stopped after the test."""
    made: list[PhoneProcess] = []

    def make(label: str = "agent", env: dict[str, str] | None = None) -> PhoneProcess:
        phone = PhoneProcess(label, env=env)
        made.append(phone)
        return phone

    try:
        yield make
    finally:
        for phone in made:
            phone.close()
