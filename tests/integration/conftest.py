"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.realnet import RealNet


@pytest.fixture
async def net() -> AsyncIterator[RealNet]:
    """Scripted phones on real loopback sockets (``tests/integration/realnet.py``)."""
    n = RealNet()
    yield n
    n.close()
