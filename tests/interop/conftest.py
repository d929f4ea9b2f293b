"""Fixtures for the interop tests: a real switch subprocess, SIPp and pjsua2 peers.

The server under test is the softswitch. ``INTEROP_TARGET=kamailio`` runs the same
tests against the Kamailio baseline of tools/bench/kamailio/ instead (a proxy and
registrar with the same users, realm and /healthz), which proves the harness itself.

Tests skip only when a peer tool is missing (SIPp: Debian package sip-tester;
pjsua2: PyPI pjsua2-python; Kamailio when it is the chosen target). A switch that
does not start is an error, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop.pjua import UserAgent, pjsua2_available
from tests.interop.servers import (
    ServerProcess,
    kamailio_path,
    kamailio_server,
    softswitch_server,
)
from tests.interop.sipp import sipp_path

TARGET = os.environ.get("INTEROP_TARGET", "softswitch")


@pytest.fixture(scope="session")
def sipp_available() -> str:
    path = sipp_path()
    if path is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    return path


@pytest.fixture(scope="session")
def pjsua2_ready() -> None:
    if not pjsua2_available():
        pytest.skip("pjsua2 is not importable (PyPI package pjsua2-python)")


@pytest.fixture(scope="module")
def switch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The server under test, started once per test module and stopped after it.

    Yields a :class:`ServerProcess` with ``.sip_port``, ``.http_port``, ``.address``,
    ``.domain``, ``.users``, ``.health()``, ``.wait_health()``, ``.wait_idle()`` and
    ``.stderr_text()``. A test module may set ``SWITCH_OVERRIDES`` (dotted config key
    -> value) to adjust the switch's temporary configuration.
    """
    workdir = tmp_path_factory.mktemp(f"{TARGET}-server")
    if TARGET == "kamailio":
        if kamailio_path() is None:
            pytest.skip("INTEROP_TARGET=kamailio but kamailio is not installed")
        server = kamailio_server(workdir, children=2, shm_mb=64)
    elif TARGET == "softswitch":
        overrides = getattr(request.module, "SWITCH_OVERRIDES", None)
        server = softswitch_server(workdir, overrides=overrides)
    else:
        raise pytest.UsageError(f"INTEROP_TARGET must be softswitch or kamailio, not {TARGET!r}")
    server.start(timeout=15.0)
    try:
        yield server
    finally:
        # The server's log stays in the module's temp folder for a post-mortem.
        server.stop()


@pytest.fixture
def user_agents() -> Iterator[Any]:
    """A factory of pjsua2 user agents (child processes), all closed after the test."""
    agents: list[UserAgent] = []

    def make(label: str) -> UserAgent:
        agent = UserAgent(label)
        agents.append(agent)
        agent.init()
        return agent

    try:
        yield make
    finally:
        for agent in agents:
            agent.close()
