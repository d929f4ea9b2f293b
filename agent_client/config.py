"""The agent client's configuration file (TOML, read with :mod:`tomllib`).

The file says where the switch is and how the client may reach it; nothing secret goes in it
(the agent types the password and one-time code, and the SIP credentials come from the switch at
each sign-in). Example (``configs/agent-client.example.toml``)::

    [switch]
    address = "10.66.0.1"    # the switch's VPN-side address: the only one the client talks to
    api_port = 8080
    api_scheme = "http"      # or "https"
    vpn_required = true      # refuse a session unless the switch answers on that address
    echo_test = "9196"       # the number the "test call" button dials

    [agent]
    id = "alice"             # fills in the sign-in form
    idle_signout = 600       # optional: sign out sooner than the switch asks

    [audio]
    input = "Headset Microphone"   # optional device names; the last choice is remembered
    output = "Headset Earphone"

The default location is per platform (:func:`default_path`); ``--config`` overrides it. A bad
file raises :class:`ConfigError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AgentSection",
    "AudioSection",
    "ClientConfig",
    "ConfigError",
    "SwitchSection",
    "default_path",
    "load_config",
    "parse_config",
]

APP_FOLDER = "softswitch-agent"
FILE_NAME = "agent-client.toml"

_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_DIAL = re.compile(r"^[0-9*#+]{1,32}$")


class ConfigError(Exception):
    """The configuration file is missing or wrong; the text names the file and the fault."""


@dataclass(frozen=True, slots=True)
class SwitchSection:
    """``[switch]``: where the switch's agent API is (its VPN-side address)."""

    address: str
    api_port: int = 8080
    api_scheme: str = "http"
    vpn_required: bool = True
    echo_test: str = "9196"

    @property
    def base_url(self) -> str:
        """``scheme://address:port`` of the switch's HTTP API (IPv6 in brackets, RFC 3986
        §3.2.2)."""
        host = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"{self.api_scheme}://{host}:{self.api_port}"


@dataclass(frozen=True, slots=True)
class AgentSection:
    """``[agent]``: the sign-in form's default agent id, and an optional idle sign-out
    shorter than the switch's (seconds; the lower of the two applies)."""

    id: str | None = None
    idle_signout: float | None = None


@dataclass(frozen=True, slots=True)
class AudioSection:
    """``[audio]``: the headset's device names, when the remembered choice is not there."""

    input: str | None = None
    output: str | None = None


@dataclass(frozen=True, slots=True)
class ClientConfig:
    switch: SwitchSection
    agent: AgentSection = field(default_factory=AgentSection)
    audio: AudioSection = field(default_factory=AudioSection)
    #: the file read (None: built in code)
    path: Path | None = None

    @property
    def folder(self) -> Path:
        """The folder of the configuration: remembered preferences go there too."""
        return (self.path or default_path()).parent


def default_path() -> Path:
    """The configuration file's default location: ``%APPDATA%\\softswitch-agent`` on Windows,
    ``~/Library/Application Support/softswitch-agent`` on macOS, else
    ``$XDG_CONFIG_HOME/softswitch-agent`` (``~/.config/softswitch-agent``)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / APP_FOLDER / FILE_NAME


def load_config(path: Path | None = None) -> ClientConfig:
    """Read and check the configuration file (``path``, else :func:`default_path`)."""
    path = path or default_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; create it with at least [switch] address = "
            f'"<the switch\'s VPN-side address>" (see configs/agent-client.example.toml)'
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path | None = None) -> ClientConfig:
    """Check the parsed TOML tables; :class:`ConfigError` names the first fault found."""
    where = str(path) if path is not None else "configuration"

    def fail(what: str) -> ConfigError:
        return ConfigError(f"{where}: {what}")

    _known(data, {"switch", "agent", "audio"}, "", fail)
    switch = _table(data, "switch", fail, required=True)
    _known(
        switch, {"address", "api_port", "api_scheme", "vpn_required", "echo_test"}, "switch", fail
    )
    address = switch.get("address")
    if not isinstance(address, str) or not address:
        raise fail('[switch] address is required: the switch\'s VPN-side address, e.g. "10.66.0.1"')
    if not _is_host(address):
        raise fail(f"[switch] address {address!r} is not an IP address or host name")
    port = switch.get("api_port", 8080)
    if type(port) is not int or not 1 <= port <= 65535:
        raise fail(f"[switch] api_port must be a port number 1..65535, not {port!r}")
    scheme = switch.get("api_scheme", "http")
    if scheme not in ("http", "https"):
        raise fail(f'[switch] api_scheme must be "http" or "https", not {scheme!r}')
    vpn = switch.get("vpn_required", True)
    if not isinstance(vpn, bool):
        raise fail(f"[switch] vpn_required must be true or false, not {vpn!r}")
    echo = switch.get("echo_test", "9196")
    if not isinstance(echo, str) or not _DIAL.match(echo):
        raise fail(f"[switch] echo_test must be a number to dial (digits, * # +), not {echo!r}")

    agent = _table(data, "agent", fail)
    _known(agent, {"id", "idle_signout"}, "agent", fail)
    agent_id = agent.get("id")
    if agent_id is not None and (not isinstance(agent_id, str) or not 1 <= len(agent_id) <= 128):
        raise fail(f"[agent] id must be a text of 1 to 128 characters, not {agent_id!r}")
    idle = agent.get("idle_signout")
    if idle is not None and (type(idle) not in (int, float) or idle < 0):
        raise fail(f"[agent] idle_signout must be seconds (0 or more), not {idle!r}")

    audio = _table(data, "audio", fail)
    _known(audio, {"input", "output"}, "audio", fail)
    for name in ("input", "output"):
        value = audio.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise fail(f"[audio] {name} must be a device name, not {value!r}")

    return ClientConfig(
        switch=SwitchSection(address, port, scheme, vpn, echo),
        agent=AgentSection(agent_id, None if not idle else float(idle)),
        audio=AudioSection(audio.get("input"), audio.get("output")),
        path=path,
    )


def _table(
    data: dict[str, Any], name: str, fail: Callable[[str], ConfigError], *, required: bool = False
) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        if required:
            raise fail(f"the [{name}] table is missing")
        return {}
    if not isinstance(value, dict):
        raise fail(f"{name} must be a table ([{name}]), not a value")
    return value


def _known(
    table: dict[str, Any], names: set[str], section: str, fail: Callable[[str], ConfigError]
) -> None:
    for key in table:
        if key not in names:
            place = f"[{section}] " if section else ""
            raise fail(f"{place}unknown key {key!r}; the keys are {', '.join(sorted(names))}")


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_HOST.match(text))
    return True
