"""An in-process switch on loopback for integration tests: the demo settings with the given
listeners, the HTTP API on a free port and the bindings in the test's folder."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from softswitch.app import Switch
from softswitch.config import Listener, Settings, load_settings
from softswitch.sip.events import Address

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
#: One UDP listener on a free loopback port.
UDP_ONLY = (Listener(transport="udp", address="127.0.0.1", port=0),)


def make_settings(tmp_path: Path, listeners: tuple[Listener, ...]) -> Settings:
    """``configs/default.yaml`` with ``listeners``, HTTP on port 0, the binding and security
    stores under ``tmp_path`` and no keep-alives."""
    base = load_settings(CONFIG)
    sip = base.sip.model_copy(update={"listeners": listeners})
    http = base.http.model_copy(update={"port": 0})
    registrar = base.registrar.model_copy(
        update={"binding_store": str(tmp_path / "bindings.db"), "keepalive_interval": 0}
    )
    signin = base.security.signin.model_copy(update={"store": str(tmp_path / "security.db")})
    security = base.security.model_copy(update={"signin": signin})
    return base.model_copy(
        update={"sip": sip, "http": http, "registrar": registrar, "security": security}
    )


@contextlib.asynccontextmanager
async def running_switch(settings: Settings) -> AsyncIterator[Switch]:
    """A started switch, stopped on the way out."""
    sw = Switch(settings)
    await sw.start()
    try:
        yield sw
    finally:
        await sw.stop()


def server_address(sw: Switch, transport: str) -> Address:
    """The switch's bound address for ``transport``."""
    return next(a for a in sw.hub.bound if a.transport == transport)
