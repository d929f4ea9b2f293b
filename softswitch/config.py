"""Process settings of the softswitch: listeners, users, registrar, security, calls, logging.

The settings file is YAML (see ``configs/default.yaml``), loaded by
:mod:`softswitch.yaml_loader`: every mistake is reported with ``file:line:col``, all of them
at once, never as a traceback. The models below are the schema; their docstrings become the
descriptions of the JSON Schema (``Settings.model_json_schema()``).

Relative paths of TLS certificates and keys are resolved against the folder of the
configuration file; the binding store path is relative to the working directory.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticKnownError

from softswitch.yaml_loader import (
    ConfigError,
    ConfigErrors,
    Loc,
    YamlDocument,
    format_path,
    load_model,
    load_yaml,
    rule_violation,
    validate_with_rules,
)

if TYPE_CHECKING:
    from softswitch.routing.schema import Plan

log = logging.getLogger(__name__)

__all__ = [
    "AuthFailures",
    "Calls",
    "Flood",
    "Http",
    "Listener",
    "Logging",
    "Peer",
    "PeersFileError",
    "Registrar",
    "Security",
    "Settings",
    "Signin",
    "Sip",
    "User",
    "Vpn",
    "check",
    "host_network",
    "load_settings",
    "parse_peers",
    "read_vpn_peers",
    "render_peers",
    "with_vpn_peers",
]


# --------------------------------------------------------------------------------------------
# Value types


def _integer(value: Any) -> Any:
    """YAML ``true`` is not a number, even though Python's bool is an int."""
    if isinstance(value, bool):
        raise PydanticKnownError("int_type")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticKnownError("float_type")
    return value


def _text(value: Any) -> Any:
    """Accept a plain decimal integer where text is expected (``username: 1001``).

    The loader keeps integers written with leading zeros as their text, so this is exact.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _ip_literal(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"expected an IPv4 or IPv6 address, got {_quoted(value)}") from None


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _host(value: Any) -> str:
    """A DNS host name (RFC 1123) or an IP address literal."""
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    try:
        return _ip_literal(value)
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    if name and len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split(".")):
        return value
    raise ValueError(f"expected a host name or an IP address, got {_quoted(value)}")


def _network(value: Any) -> IPv4Network | IPv6Network:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f'expected a network such as "192.168.1.0/24" or "2001:db8::/32", '
            f"got {_quoted(value)}"
        ) from None
    raise ValueError(f'{_quoted(value)} has host bits set (did you mean "{loose}"?)')


def _endpoint(value: Any) -> str:
    """``host:port`` as WireGuard's Endpoint takes it: a host name or IPv4 address, or an
    IPv6 address in brackets (``[2001:db8::1]:51820``)."""
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    text = value.strip()
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]")
        ok = bool(bracket) and port.startswith(":")
        port = port[1:]
        if ok:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                ok = False
    else:
        host, colon, port = text.rpartition(":")
        ok = bool(colon) and ":" not in host
        if ok:
            try:
                _host(host)
            except ValueError:
                ok = False
    if ok and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535:
        return text
    raise ValueError(
        'expected host:port, e.g. "vpn.example.com:51820", "203.0.113.5:51820" or '
        f'"[2001:db8::1]:51820", got {_quoted(value)}'
    )


Integer = Annotated[int, BeforeValidator(_integer)]
Number = Annotated[float, BeforeValidator(_number)]
Port = Annotated[int, BeforeValidator(_integer), Field(ge=0, le=65535)]
IPLiteral = Annotated[str, PlainValidator(_ip_literal, json_schema_input_type=str)]
Host = Annotated[str, PlainValidator(_host, json_schema_input_type=str)]
Network = Annotated[IPv4Network | IPv6Network, PlainValidator(_network, json_schema_input_type=str)]
Text = Annotated[str, BeforeValidator(_text)]
Endpoint = Annotated[str, PlainValidator(_endpoint, json_schema_input_type=str)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# --------------------------------------------------------------------------------------------
# sip


class Listener(_Section):
    """A socket on which the switch receives SIP (RFC 3261 §18)."""

    transport: Literal["udp", "tcp", "tls"]
    """Transport protocol: udp, tcp or tls."""
    address: IPLiteral = "127.0.0.1"
    """IPv4 or IPv6 address to bind (a literal, not a host name); 0.0.0.0 or :: for all."""
    port: Port = 5060
    """Port to bind; 0 picks a free port. Default 5060, or 5061 for tls (RFC 3261 §26.2)."""
    certificate: Path | None = None
    """TLS only, required there: PEM certificate chain file (relative to the config folder)."""
    key: Path | None = None
    """TLS only, required there: PEM private key file (relative to the config folder)."""

    @model_validator(mode="before")
    @classmethod
    def _tls_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and "port" not in data and data.get("transport") == "tls":
            return {**data, "port": 5061}
        return data

    @field_validator("certificate", "key")
    @classmethod
    def _existing_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = (info.context or {}).get("config_dir")
        path = value if value.is_absolute() or base is None else Path(base) / value
        if not path.is_file():
            raise ValueError(f'file "{value}" does not exist')
        return path

    @model_validator(mode="after")
    def _tls_files(self) -> Listener:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name in ("certificate", "key"):
            given = getattr(self, name) is not None
            if self.transport == "tls" and not given:
                problems.append(((name,), f'missing required key "{name}" (needed for tls)'))
            elif self.transport != "tls" and given:
                problems.append(((name,), 'only used with transport "tls"'))
        if problems:
            raise rule_violation(*problems)
        return self


class Sip(_Section):
    """SIP listeners, identity and protocol limits."""

    listeners: tuple[Listener, ...] = (Listener(transport="udp"),)
    """Sockets to listen on, at least one (default: UDP on 127.0.0.1:5060)."""
    advertised_address: Host | None = None
    """Host or IP put in Via, Contact and Record-Route instead of the bound address (NAT)."""
    domain: Host = "softswitch.local"
    """The SIP domain served, also the digest realm (RFC 3261 §22.1)."""
    max_message_size: Integer = Field(default=65535, ge=1024, le=16 * 1024 * 1024)
    """Largest SIP message accepted, in bytes; larger ones are refused (513 / dropped)."""
    max_headers: Integer = Field(default=128, ge=16, le=10_000)
    """Most header fields accepted in one message."""
    t1: Number = Field(default=0.5, gt=0, le=60)
    """Timer T1, the round-trip time estimate, in seconds (RFC 3261 §17.1.1.1)."""
    t2: Number = Field(default=4.0, gt=0, le=600)
    """Timer T2, the longest retransmission interval, in seconds (RFC 3261 §17.1.2.2)."""
    t4: Number = Field(default=5.0, gt=0, le=600)
    """Timer T4, how long a message may stay in the network, in seconds (RFC 3261 §17.1.2.2)."""

    @field_validator("listeners")
    @classmethod
    def _some_listener(cls, value: tuple[Listener, ...]) -> tuple[Listener, ...]:
        # Checked here rather than with min_length, which pydantic also reports when an item
        # is invalid.
        if not value:
            raise ValueError("needs at least one listener")
        return value

    @model_validator(mode="after")
    def _rules(self) -> Sip:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.t2 < self.t1:
            blame = "t2" if "t2" in self.model_fields_set else "t1"
            problems.append(((blame,), f"t2 ({self.t2:g}) must not be less than t1 ({self.t1:g})"))
        seen: dict[tuple[str, str, int], int] = {}
        for i, listener in enumerate(self.listeners):
            if listener.port == 0:
                continue
            socket_kind = "udp" if listener.transport == "udp" else "tcp"
            where = (socket_kind, listener.address, listener.port)
            if where in seen:
                problems.append(
                    (
                        ("listeners", i, "port"),
                        f"{listener.address} port {listener.port} is already used by "
                        f"listeners[{seen[where]}]",
                    )
                )
            else:
                seen[where] = i
        if problems:
            raise rule_violation(*problems)
        return self


# --------------------------------------------------------------------------------------------
# http


class Http(_Section):
    """The HTTP and WebSocket API (admin, agents, metrics)."""

    address: IPLiteral = "127.0.0.1"
    """IPv4 or IPv6 address to bind."""
    port: Port = 8080
    """TCP port to bind; 0 picks a free port."""
    api_token: Text | None = Field(default=None, repr=False)
    """Secret that API clients send as "Authorization: Bearer <token>" (RFC 6750 §2.1);
    at least 16 characters of letters, digits and - . _ ~ + / (= only at the end). Best
    taken from the environment (api_token: !env SOFTSWITCH_API_TOKEN). Unset: the /api/
    routes answer only clients on the loopback (127.0.0.0/8, ::1)."""
    demo_crm: Text | None = None
    """JSON file of demo CRM members ({"<number>": {"name": ...}}), served at
    /api/demo/crm/members/<number> for the demo dialplan's identity check; null: none."""

    @field_validator("api_token")
    @classmethod
    def _api_token(cls, value: str | None) -> str | None:
        # The messages never repeat the value: it is a secret.
        if value is None:
            return None
        if len(value) < 16:
            raise ValueError(
                f"must be at least 16 characters long, got {len(value)} "
                '(generate one with: python -c "import secrets; print(secrets.token_urlsafe())")'
            )
        if not re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", value):
            raise ValueError(
                "may contain only letters, digits and - . _ ~ + / (and = at the end), "
                "to be sent as a Bearer token (RFC 6750 §2.1)"
            )
        return value


# --------------------------------------------------------------------------------------------
# users

_USERNAME = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]{1,64}")
_HA1 = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}")


class User(_Section):
    """A SIP account that may register and place calls (digest authentication, RFC 7616)."""

    username: Text
    """User part of the address of record: digits or a SIP token; unique."""
    password: Text | None = Field(default=None, min_length=1)
    """Digest password. Give either password or ha1."""
    ha1: str | None = None
    """Precomputed digest HA1 = H(username:realm:password) with realm = sip.domain, in hex:
    32 characters for MD5 or 64 for SHA-256. Give either password or ha1."""
    display_name: Text | None = None
    """Name shown to the called party."""
    allowed_networks: tuple[Network, ...] = ()
    """Networks (CIDR) the account may register and call from; empty means anywhere."""
    max_contacts: Integer = Field(default=5, ge=1, le=100)
    """Most simultaneous registered contacts (devices) for this account."""
    context: Text | None = None
    """The dialplan context of this account's calls (none: ``dialplan.context``)."""
    sip_credentials: Literal["any", "session"] = "any"
    """Which credentials may REGISTER and call as this account: "any" (the configured
    password or ha1, and the credentials the switch issues at an agent's sign-in) or
    "session" (only those issued at sign-in; the configured password is refused for SIP)."""

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _USERNAME.fullmatch(value):
            raise ValueError(
                "expected digits or a SIP token (letters, digits and - . ! % * _ + ` ' ~, "
                f"at most 64), got {_quoted(value)}"
            )
        return value

    @field_validator("ha1")
    @classmethod
    def _ha1(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _HA1.fullmatch(value):
            raise ValueError(
                f"expected 32 (MD5) or 64 (SHA-256) hexadecimal characters, got {_quoted(value)}"
            )
        return value.lower()

    @model_validator(mode="after")
    def _one_secret(self) -> User:
        if self.password is None and self.ha1 is None:
            raise rule_violation((("password",), 'missing required key "password" (or "ha1")'))
        if self.password is not None and self.ha1 is not None:
            raise rule_violation((("ha1",), 'give either "password" or "ha1", not both'))
        return self


# --------------------------------------------------------------------------------------------
# registrar


class Registrar(_Section):
    """REGISTER handling (RFC 3261 §10.3) and the health of registered contacts."""

    min_expires: Integer = Field(default=60, ge=1)
    """Shortest registration accepted, in seconds; shorter requests get 423 (§10.3 step 7)."""
    max_expires: Integer = Field(default=3600, ge=1)
    """Longest registration granted, in seconds; longer requests are shortened."""
    default_expires: Integer = Field(default=3600, ge=1)
    """Registration time granted when the request names none, in seconds."""
    keepalive_interval: Integer = Field(default=30, ge=0)
    """Seconds between OPTIONS probes of each registered contact; 0 turns probing off."""
    keepalive_failures: Integer = Field(default=2, ge=1)
    """Unanswered probes in a row after which a contact is removed."""
    binding_store: str = Field(default="var/softswitch.db", min_length=1)
    """SQLite file for registrations, relative to the working directory; ":memory:" keeps
    them in memory only."""

    @model_validator(mode="after")
    def _expires_order(self) -> Registrar:
        given = self.model_fields_set
        lo, hi, dflt = self.min_expires, self.max_expires, self.default_expires

        def shown(name: str, value: int) -> str:
            return f"{name} ({value}{'' if name in given else ', the default'})"

        if lo > hi:
            blame = "max_expires" if "max_expires" in given else "min_expires"
            text = f"{shown('min_expires', lo)} is greater than {shown('max_expires', hi)}"
            raise rule_violation(((blame,), text))
        if not lo <= dflt <= hi:
            if "default_expires" in given:
                blame = "default_expires"
            else:
                blame = "max_expires" if dflt > hi else "min_expires"
            text = (
                f"{shown('default_expires', dflt)} must lie between "
                f"{shown('min_expires', lo)} and {shown('max_expires', hi)}"
            )
            raise rule_violation(((blame,), text))
        return self


# --------------------------------------------------------------------------------------------
# security


class AuthFailures(_Section):
    """Ban a source address after repeated failed authentications (brute force)."""

    threshold: Integer = Field(default=5, ge=1)
    """Failed authentications from one source address that trigger a ban."""
    window: Integer = Field(default=60, ge=1)
    """Seconds over which failures are counted."""
    ban_time: Integer = Field(default=300, ge=1)
    """Seconds a banned source stays banned."""


class Flood(_Section):
    """Ban a source address that sends too many requests (flood)."""

    max_requests_per_second: Integer = Field(default=200, ge=1)
    """Requests per second accepted from one source address."""
    ban_time: Integer = Field(default=60, ge=1)
    """Seconds a flooding source stays banned."""


class Signin(_Section):
    """Agents' sign-in to the softphone and the agent API: second factor (TOTP, RFC 6238),
    lockout after failed attempts, idle sign-out and the audit trail."""

    totp: Literal["required", "optional", "off"] = "optional"
    """Time-based one-time passwords (RFC 6238): "required" (every agent must enrol and
    give a code), "optional" (agents who enrolled must give one), "off" (never asked)."""
    lockout_failures: Integer = Field(default=10, ge=1)
    """Failed sign-ins in a row after which the agent's account is locked."""
    lockout_time: Integer = Field(default=900, ge=0)
    """Seconds a locked account stays locked; 0: until an admin unlocks it."""
    idle_signout: Integer = Field(default=1800, ge=0)
    """Seconds without calls or input after which the softphone signs the agent out;
    0: never."""
    store: str = Field(default="var/security.db", min_length=1)
    """SQLite file of the TOTP secrets, lockouts and the audit trail, relative to the
    working directory."""
    audit_retention_days: Integer = Field(default=365, ge=0)
    """Days an audit trail entry is kept; 0 keeps them all."""


class Security(_Section):
    """Protection against brute force, floods and resource exhaustion."""

    auth_failures: AuthFailures = Field(default_factory=AuthFailures)
    """Brute-force protection."""
    flood: Flood = Field(default_factory=Flood)
    """Flood protection."""
    max_transactions_per_source: Integer = Field(default=200, ge=1)
    """Open server transactions allowed per source address."""
    trusted_networks: tuple[Network, ...] = ()
    """Networks (CIDR) never banned, e.g. your SBC or the loopback for load tests."""
    nonce_ttl: Integer = Field(default=300, ge=1)
    """Seconds a digest nonce stays valid (RFC 7616 §3.3)."""
    digest_algorithms: tuple[Literal["SHA-256", "MD5"], ...] = Field(
        default=("SHA-256", "MD5"), min_length=1
    )
    """Digest algorithms offered, one challenge each, SHA-256 first (RFC 8760). Some UAs read
    only the first challenge and know only MD5 (SIPp among them): list just MD5 for them."""
    signin: Signin = Field(default_factory=Signin)
    """Agents' sign-in: TOTP, lockout, idle sign-out, audit trail."""


# --------------------------------------------------------------------------------------------
# vpn

_DEFAULT_VPN_NETWORK = ipaddress.IPv4Network("10.66.0.0/24")


class Vpn(_Section):
    """The WireGuard VPN of the home agents, kept by ``softswitch vpn add-agent`` and
    ``softswitch vpn revoke``. An agent with a peer may register only from their VPN
    address: their SIP user's ``allowed_networks`` becomes that address (``/32``) whenever
    the settings are loaded."""

    interface: str = "wg0"
    """The switch's WireGuard interface (as ``wg`` and ``wg-quick`` name it)."""
    network: Network = _DEFAULT_VPN_NETWORK
    """The VPN's network (CIDR): the switch and every agent get an address in it."""
    address: IPLiteral = "10.66.0.1"
    """The switch's address in the network (default: the network's first host address);
    the agents' phones register to it."""
    listen_port: Annotated[int, BeforeValidator(_integer), Field(ge=1, le=65535)] = 51820
    """The UDP port WireGuard listens on."""
    endpoint: Endpoint
    """Required: host:port the agents' WireGuard dials, a public name or address of the
    switch, e.g. "vpn.example.com:51820"."""
    server_config: str = Field(default="var/vpn/wg0.conf", min_length=1)
    """The switch's WireGuard configuration file (wg-quick format) the CLI writes, relative
    to the working directory; name it <interface>.conf for wg-quick. Its private key is
    kept beside it in <name>.key (mode 0600)."""
    peers: str = Field(default="var/vpn/peers.json", min_length=1)
    """The peers file (JSON) the CLI writes and the switch reads, relative to the working
    directory (run the CLI where the switch runs)."""
    keepalive: Integer = Field(default=25, ge=0, le=65535)
    """PersistentKeepalive of the agents' configurations, in seconds, to keep their NAT open
    for incoming calls; 0: none."""

    @field_validator("interface")
    @classmethod
    def _interface(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_=+.\-]{1,15}", value):
            raise ValueError(
                "expected an interface name: 1 to 15 letters, digits and _ = + . -, "
                f"got {_quoted(value)}"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _first_host(cls, data: Any) -> Any:
        if isinstance(data, dict) and "address" not in data and "network" in data:
            try:
                network = _network(data["network"])
            except (ValueError, PydanticKnownError):
                return data  # reported on the network
            first = next(iter(network.hosts()), None)
            if first is not None:
                return {**data, "address": str(first)}
        return data

    @model_validator(mode="after")
    def _address_in_network(self) -> Vpn:
        net = self.network
        if net.num_addresses < 4:
            raise rule_violation(
                (("network",), f"{net} is too small: at most /{net.max_prefixlen - 2}")
            )
        address = ipaddress.ip_address(self.address)
        blame = "address" if "address" in self.model_fields_set else "network"
        first = next(iter(net.hosts()))
        if address.version != net.version or address not in net:
            problem = f"{address} is not inside network {net}"
        elif address == net.network_address:
            problem = f"{address} is the network's own address (the first host is {first})"
        elif isinstance(net, IPv4Network) and address == net.broadcast_address:
            problem = f"{address} is the network's broadcast address"
        else:
            return self
        raise rule_violation(((blame,), problem))

    @property
    def switch_address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The switch's address as an address object."""
        return ipaddress.ip_address(self.address)


# --------------------------------------------------------------------------------------------
# The VPN peers file: written by ``softswitch vpn`` (softswitch.security.vpn), read here


@dataclass(frozen=True, slots=True)
class Peer:
    """One agent's WireGuard peer: who, which address, which public key, since when."""

    agent: str
    """The agent id (``acd.agents[].id``)."""
    user: str
    """The agent's SIP user when the peer was added."""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    """The agent's address in the VPN network."""
    public_key: str
    """The agent's WireGuard public key (base64)."""
    created: str
    """When the peer was added (ISO 8601, UTC)."""


class PeersFileError(ValueError):
    """A peers file that is not what :func:`render_peers` writes; ``line``/``col`` are
    1-based, ``path`` names the entry (``peers[2].address``) when known."""

    def __init__(self, message: str, line: int = 1, col: int = 1, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col
        self.path = path


_PEER_KEYS = ("agent", "user", "address", "public_key", "created")
# What a peer's agent id and SIP user may contain: the characters of an agent id and of a SIP
# user name in the settings; never white space, '#', '[' or '=', which could break a config.
_PEER_NAME = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]{1,64}")
# A WireGuard key: the base64 of 32 bytes (the last character carries 4 bits, then "=").
_WIREGUARD_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


def parse_peers(text: str) -> tuple[Peer, ...]:
    """The peers of a peers file: a JSON object ``{"peers": [{agent, user, address,
    public_key, created}, ...]}``. Agents and addresses are unique. Raises
    :class:`PeersFileError` for anything else."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PeersFileError(f"not JSON: {exc.msg}", exc.lineno, exc.colno) from None
    if not isinstance(data, dict) or not isinstance(data.get("peers"), list):
        raise PeersFileError('expected an object with a "peers" list')
    unknown = sorted(set(data) - {"peers"})
    if unknown:
        raise PeersFileError(f'unknown key "{unknown[0]}"', path=unknown[0])
    peers: list[Peer] = []
    agents: dict[str, int] = {}
    addresses: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, int] = {}
    for i, item in enumerate(data["peers"]):
        peer = _peer(item, f"peers[{i}]")
        if peer.agent in agents:
            raise PeersFileError(
                f'agent "{peer.agent}" has two peers (also peers[{agents[peer.agent]}])',
                path=f"peers[{i}].agent",
            )
        if peer.address in addresses:
            raise PeersFileError(
                f"address {peer.address} is given twice (also peers[{addresses[peer.address]}])",
                path=f"peers[{i}].address",
            )
        agents[peer.agent] = i
        addresses[peer.address] = i
        peers.append(peer)
    return tuple(peers)


def _peer(item: Any, where: str) -> Peer:
    if not isinstance(item, dict):
        raise PeersFileError("expected an object", path=where)
    for key in _PEER_KEYS:
        if not isinstance(item.get(key), str):
            raise PeersFileError(f'missing or not text: "{key}"', path=f"{where}.{key}")
    extra = sorted(set(item) - set(_PEER_KEYS))
    if extra:
        raise PeersFileError(f'unknown key "{extra[0]}"', path=f"{where}.{extra[0]}")
    for key in ("agent", "user"):
        if not _PEER_NAME.fullmatch(item[key]):
            raise PeersFileError(
                f"not an agent id or user name: {item[key]!r}", path=f"{where}.{key}"
            )
    try:
        address = ipaddress.ip_address(item["address"])
    except ValueError:
        raise PeersFileError(
            f"not an IP address: {item['address']!r}", path=f"{where}.address"
        ) from None
    if not _WIREGUARD_KEY.fullmatch(item["public_key"]):
        raise PeersFileError(
            "not a WireGuard key (the base64 of 32 bytes)", path=f"{where}.public_key"
        )
    if not item["created"] or "\n" in item["created"]:
        raise PeersFileError("not a time", path=f"{where}.created")
    return Peer(item["agent"], item["user"], address, item["public_key"], item["created"])


def render_peers(peers: Iterable[Peer]) -> str:
    """The text of a peers file (:func:`parse_peers` reads it back), peers by address."""
    entries = [
        {
            "agent": p.agent,
            "user": p.user,
            "address": str(p.address),
            "public_key": p.public_key,
            "created": p.created,
        }
        for p in sorted(peers, key=_by_address)
    ]
    return json.dumps({"peers": entries}, indent=2) + "\n"


def _by_address(peer: Peer) -> tuple[int, int]:
    return (peer.address.version, int(peer.address))


def host_network(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Network:
    """The network of one address: ``10.66.0.2/32`` (``/128`` for IPv6)."""
    return ipaddress.ip_network(f"{address}/{address.max_prefixlen}")


# --------------------------------------------------------------------------------------------
# calls and logging


#: The configs/ folder shipped with the project (demo prompts), for relative file names.
SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def resolve_file(relative: str, config_dir: Path | None) -> Path:
    path = Path(relative)
    if path.is_absolute():
        return path
    for base in (config_dir, SHIPPED_CONFIGS):
        if base is not None and (base / path).exists():
            return base / path
    return path


class Media(_Section):
    """RTP anchoring: every call's audio flows through the switch's own ports."""

    anchor: bool = True
    """Rewrite SDP so that RTP flows through the switch (needed for prompts, recording, DTMF,
    listening in, and audio to home agents behind NAT)."""
    rtp_port_min: Port = 16000
    """First port of the RTP range (RTP on even ports, RTCP on the next odd one)."""
    rtp_port_max: Port = 17999
    """Last port of the RTP range; each anchored call uses two pairs."""
    record_calls: bool = False
    """Record every anchored call to a WAV file in ``recordings`` (named by call id)."""
    recordings: str = Field(default="var/recordings", min_length=1)
    """Folder of the recordings, relative to the working directory."""
    record_layout: Literal["stereo", "mono"] = "stereo"
    """stereo: caller left, called party right; mono: both mixed."""
    talk_stats: bool = True
    """With recording on, measure each party's talk and silence time (voice activity
    detection, webrtcvad) and keep it in the call's detail record."""
    echo_test: Text | None = "9196"
    """Number of the echo test: the switch answers and plays back what the caller says
    (null: none). Handy to check a phone's audio path, for example a home agent's headset."""
    prompt_test: Text | None = "9197"
    """Number of the prompt test: the switch plays ``prompt_test_file``, then a DTMF tone for
    every digit the caller presses (RFC 4733), so both directions and DTMF are checked."""
    prompt_test_file: str = Field(default="prompts/prompt-test.wav", min_length=1)
    """WAV played by the prompt test, relative to the settings file's folder."""

    @field_validator("prompt_test_file")
    @classmethod
    def _prompt_exists(cls, value: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("config_dir")
        if base is not None and not resolve_file(value, Path(base)).is_file():
            raise ValueError(f'file "{value}" does not exist')
        return value

    music_on_hold: str | None = Field(default="moh", min_length=1)
    """Folder of WAV files that a party put on hold hears, played one after another in a
    loop, relative to the settings file's folder (null: the held party hears nothing)."""

    @field_validator("music_on_hold")
    @classmethod
    def _moh_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("config_dir")
        if value is not None and base is not None and not resolve_file(value, Path(base)).is_dir():
            raise ValueError(f'folder "{value}" does not exist')
        return value

    inband_dtmf: Literal["auto", "always", "never"] = "auto"
    """Listen for DTMF tones in a leg's audio: "auto" on legs whose SDP offered no
    telephone-event (RFC 4733), "always" on every leg, "never". Digits also arrive as RFC 4733
    events and SIP INFO (application/dtmf-relay)."""

    dead_peer_timeout: Integer = Field(default=60, ge=0)
    """Seconds a leg of an established call may send no RTP before the call is ended (a
    phone that lost its network); 0 turns the check off. Phones on hold must keep sending
    (RFC 3264 §8.4 keeps RTCP going; many phones send comfort noise)."""

    @model_validator(mode="after")
    def _range(self) -> Media:
        if self.rtp_port_max - self.rtp_port_min < 3:
            raise rule_violation(
                (("rtp_port_max",), "the RTP range must hold at least two port pairs")
            )
        return self


class Calls(_Section):
    """Call handling limits."""

    ring_timeout: Integer = Field(default=60, ge=1)
    """Seconds a (forked) INVITE rings before it is given up (408 / 480)."""
    shutdown_grace: Integer = Field(default=30, ge=0)
    """Seconds established calls may continue after SIGTERM before they are hung up."""
    max_calls: Integer = Field(default=10000, ge=1)
    """Most simultaneous calls; more are refused with 503."""
    record_retention_days: Integer = Field(default=365, ge=0)
    """Days a call detail record is kept (purged at start-up and daily); 0 keeps them all."""


class Logging(_Section):
    """Log output."""

    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    """Lowest level written."""
    format: Literal["text", "json"] = "text"
    """text for people, json (one object per line) for log collectors."""


# --------------------------------------------------------------------------------------------
# the whole file


class Supervision(_Section):
    """Feature codes with which a supervisor joins an extension's live call: the code, then
    the extension (``*511002``: listen to the call of 1002). During the call the supervisor
    presses 1 to listen, 2 to whisper (heard by the agent only), 3 to barge in."""

    listen: Text | None = "*51"
    """Listen: hears both parties, heard by neither (null: no such code)."""
    whisper: Text | None = "*52"
    """Whisper: hears both parties, heard by the agent (the extension dialled) only."""
    barge: Text | None = "*53"
    """Barge: hears and is heard by both parties."""
    supervisors: tuple[Text, ...] = ()
    """SIP users allowed to use the codes; empty: nobody."""

    @model_validator(mode="after")
    def _distinct(self) -> Supervision:
        seen: dict[str, str] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name in ("listen", "whisper", "barge"):
            code = getattr(self, name)
            if code is None:
                continue
            clash = next((other for c, other in seen.items() if code.startswith(c)), None)
            clash = clash or next((o for c, o in seen.items() if c.startswith(code)), None)
            if clash is not None:
                problems.append(((name,), f'"{code}" overlaps the {clash} code'))
            seen[code] = name
        if problems:
            raise rule_violation(*problems)
        return self

    def codes(self) -> dict[str, str]:
        """Feature code -> mode, for the codes in use."""
        return {
            code: name
            for name in ("listen", "whisper", "barge")
            if (code := getattr(self, name)) is not None
        }


class Dialplan(_Section):
    """The YAML dialplan that routes every call (checked with ``softswitch check`` and traced
    with ``softswitch route``); reloaded with SIGHUP or ``POST /api/reload``."""

    file: Text
    """The plan file (required), relative to this settings file's folder."""
    context: Text = "internal"
    """The context of calls from users that name none."""
    voicemail: Text = "var/voicemail"
    """Folder of the voicemail boxes (relative to the working directory)."""
    at: Text | None = None
    """Route every call as if it arrived at this moment (ISO 8601 with its offset, e.g.
    "2026-11-23T22:00+09:00"), to try the opening-hours and holiday rules live, as
    ``softswitch route --at`` does offline. Leave unset in production."""

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ValueError(
                f'expected a time with its offset, e.g. "2026-11-23T22:00+09:00", got "{value}"'
            )
        return value


# --------------------------------------------------------------------------------------------
# ACD: queues and agents

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
Name = Annotated[str, BeforeValidator(_text), Field(pattern=_NAME.pattern)]
Level = Annotated[int, BeforeValidator(_integer), Field(ge=0, le=100)]


class ExitTo(_Section):
    """Where a caller goes on leaving a queue other than to an agent."""

    action: Literal["hangup", "queue", "voicemail", "callback", "goto"] = "hangup"
    """hangup (after ``prompt``), queue (``target``: another queue; the call keeps its data
    class, priority and skills), voicemail (``target``: the mailbox), callback (offer to
    call the caller back, keeping the place), goto (``target``: an extension of the
    caller's context, e.g. an IVR branch)."""
    target: Text | None = None
    prompt: Text | None = None
    """Played first (a prompt name of the dialplan's prompts folder)."""

    @model_validator(mode="after")
    def _target(self) -> ExitTo:
        if self.action in ("queue", "voicemail", "goto") and not self.target:
            raise rule_violation((("target",), f'"{self.action}" needs a target'))
        return self


class RelaxStep(_Section):
    """After ``after`` seconds of waiting, required skill levels are lowered by ``by``."""

    after: Number = Field(gt=0)
    by: Level


class QueueSettings(_Section):
    """One queue of the ACD."""

    name: Name
    strategy: Literal[
        "ring_all", "longest_idle", "round_robin", "fewest_calls", "linear", "random", "skills"
    ] = "longest_idle"
    """How the agent is chosen: ring_all (all ready agents at once), longest_idle (the one
    whose last call ended longest ago), round_robin (the next after the last one offered),
    fewest_calls, linear (member order), random, skills (best skill match)."""
    ring_timeout: Number = Field(default=15, gt=0, le=300)
    """Seconds an agent rings before the offer counts as missed and the caller keeps the
    place."""
    retry: Number = Field(default=5, ge=0, le=300)
    """Seconds before a call is offered again to an agent who missed it."""
    wrap_up: Number | None = Field(default=None, ge=0, le=3600)
    """Wrap-up seconds after each call (none: each agent's own)."""
    skills: Mapping[Name, Level] = Field(default_factory=dict)
    """Skills (0-100) every call of this queue requires."""
    relax: tuple[RelaxStep, ...] = ()
    """Skill relaxation: lower the required levels as the caller waits."""
    max_length: Integer = Field(default=0, ge=0)
    """Most callers waiting (0: no limit); the next goes to ``on_full``."""
    max_wait: Number = Field(default=0, ge=0)
    """Longest wait in seconds (0: no limit), then ``on_timeout``."""
    on_timeout: ExitTo = Field(default_factory=ExitTo)
    on_full: ExitTo = Field(default_factory=ExitTo)
    on_empty: ExitTo = Field(default_factory=ExitTo)
    join_when: Literal["always", "logged_in", "available", "ready"] = "always"
    """Join only if an agent who may take the call is logged in (``logged_in``), logged in
    and not on a break (``available``: ready, ringing, on a call or in wrap-up), or ready
    now (``ready``); else ``on_empty`` at once."""
    stay_when: Literal["always", "logged_in", "available", "ready"] = "always"
    """The same test while waiting, when agents log out or go not ready."""
    personal_locations: tuple[Literal["onsite", "home"], ...] = ("onsite",)
    """Agent locations that may take calls tagged ``data_class: personal``."""
    service_level: Number = Field(default=20, gt=0)
    """Answer within this many seconds to count towards the service level."""
    announce_position: Number = Field(default=0, ge=0)
    """Seconds between announcements of the caller's position and estimated wait (0: none)."""
    announce_first: Number = Field(default=15, ge=0)
    """Seconds after joining of the first position announcement."""
    periodic_prompt: Text | None = None
    """A message repeated while the caller waits."""
    periodic_every: Number = Field(default=60, gt=0)
    exit_key: Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"] | None = None
    """A key that leaves the queue for ``exit_to``."""
    exit_to: Text | None = None
    """The extension (in the caller's context) the exit key goes to."""
    callback_key: Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"] | None = None
    """A key that asks for a callback, keeping the caller's place."""
    callback_first: Literal["caller", "agent"] = "caller"
    """When a callback reaches the front: call the caller first, or the agent first."""

    @model_validator(mode="after")
    def _keys(self) -> QueueSettings:
        if self.exit_key is not None and not self.exit_to:
            raise rule_violation((("exit_to",), "the exit key needs exit_to"))
        if self.exit_key is not None and self.exit_key == self.callback_key:
            raise rule_violation((("callback_key",), "the same key as exit_key"))
        return self


class AgentSettings(_Section):
    """A call-center agent (or supervisor)."""

    id: Name
    """The agent's id (login name in the agent API)."""
    name: Text
    """The agent's name, as supervisors see it."""
    user: Text
    """The SIP user whose phone rings for this agent; its password is the agent's login."""
    location: Literal["onsite", "home"] = "onsite"
    """Where the agent works: home agents never get calls tagged personal (unless a queue's
    ``personal_locations`` says otherwise)."""
    agent_class: Text = Field(default="inbound", alias="class")
    """The agent's class; classes listed in ``acd.outbound_only_classes`` take no inbound
    calls."""
    skills: Mapping[Name, Level] = Field(default_factory=dict)
    roles: tuple[Literal["agent", "supervisor"], ...] = ("agent",)
    queues: Mapping[Name, Annotated[int, BeforeValidator(_integer), Field(ge=0, le=1000)]] = Field(
        default_factory=dict
    )
    """The queues this agent serves, each with a penalty (lower is offered first)."""
    wrap_up: Number = Field(default=0, ge=0, le=3600)
    """Wrap-up seconds after a call, unless the queue sets its own."""
    max_misses: Integer = Field(default=3, ge=1, le=100)
    """Offers missed in a row before the agent is made not ready (reason missed)."""


class AcdSettings(_Section):
    """Queues, agents, reason codes and wrap-up codes of the ACD."""

    queues: tuple[QueueSettings, ...] = ()
    agents: tuple[AgentSettings, ...] = ()
    reasons: tuple[Name, ...] = ("break", "lunch", "training", "meeting")
    """Not-ready reasons agents choose from (missed, unreachable and supervisor are the
    switch's own)."""
    wrap_up_codes: tuple[Name, ...] = ()
    """Disposition codes an agent gives at the end of wrap-up (empty: any)."""
    outbound_only_classes: tuple[Text, ...] = ()
    """Agent classes never offered inbound calls."""
    announcements: Text = ""
    """The folder, within the dialplan's prompts folder, of the queue announcements the switch
    composes (``queue-position``, ``number-1`` ... ``number-20``, ``number-many``,
    ``queue-wait``, ``queue-wait-short``, ``queue-wait-long``, ``minutes``,
    ``queue-callback``); empty: the prompts folder itself."""

    @model_validator(mode="after")
    def _references(self) -> AcdSettings:
        problems: list[tuple[Loc, str]] = []
        queues: dict[str, int] = {}
        for i, q in enumerate(self.queues):
            if q.name in queues:
                problems.append(((("queues", i, "name")), f'duplicate queue "{q.name}"'))
            queues.setdefault(q.name, i)
        known = ", ".join(sorted(queues)) or "none"
        for i, q in enumerate(self.queues):
            for field_name in ("on_timeout", "on_full", "on_empty"):
                exit_to: ExitTo = getattr(q, field_name)
                if exit_to.action == "queue" and exit_to.target not in queues:
                    problems.append(
                        (
                            ("queues", i, field_name, "target"),
                            f'no queue "{exit_to.target}" (queues: {known})',
                        )
                    )
        ids: dict[str, int] = {}
        for i, a in enumerate(self.agents):
            if a.id in ids:
                problems.append((("agents", i, "id"), f'duplicate agent "{a.id}"'))
            ids.setdefault(a.id, i)
            for name in a.queues:
                if name not in queues:
                    problems.append(
                        (("agents", i, "queues", name), f'no queue "{name}" (queues: {known})')
                    )
        if problems:
            raise rule_violation(*problems)
        return self


class Settings(_Section):
    """Settings of one softswitch process."""

    _config_dir: Path | None = PrivateAttr(default=None)
    _source: Path | None = PrivateAttr(default=None)
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[str, ...]:
        """What loading found doubtful but not wrong (a VPN peer of an agent that is gone)."""
        return self._warnings

    @property
    def source(self) -> Path | None:
        """The file these settings were loaded from (None if made in code)."""
        return self._source

    def resolve(self, relative: str) -> Path:
        """A file named by the settings: relative to the settings file's folder, else to the
        project's shipped ``configs/`` (the demo prompts), else to the working directory."""
        return resolve_file(relative, self._config_dir)

    sip: Sip = Field(default_factory=Sip)
    """SIP listeners, identity and protocol limits."""
    http: Http = Field(default_factory=Http)
    """The HTTP and WebSocket API."""
    users: tuple[User, ...] = ()
    """SIP accounts."""
    registrar: Registrar = Field(default_factory=Registrar)
    """REGISTER handling."""
    security: Security = Field(default_factory=Security)
    """Bans and limits."""
    calls: Calls = Field(default_factory=Calls)
    """Call handling limits."""
    media: Media = Field(default_factory=Media)
    """RTP anchoring."""
    supervision: Supervision = Field(default_factory=Supervision)
    """Supervisors listening to, whispering into and barging in on live calls."""
    dialplan: Dialplan | None = None
    """The dialplan (none: calls go straight to the user dialled)."""
    acd: AcdSettings = Field(default_factory=AcdSettings)
    """Queues and agents."""
    vpn: Vpn | None = None
    """The home agents' WireGuard VPN (none: no VPN)."""
    logging: Logging = Field(default_factory=Logging)
    """Log output."""

    @field_validator("users", mode="wrap")
    @classmethod
    def _unique_usernames(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        first: dict[str, int] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, item in enumerate(value if isinstance(value, list | tuple) else ()):
            name = _raw_username(item)
            if name is None:
                continue
            j = first.setdefault(name, i)
            if j != i:
                problems.append(((i, "username"), f'duplicate username "{name}" (also users[{j}])'))
        return validate_with_rules(handler, value, problems)

    @model_validator(mode="after")
    def _known_supervisors(self) -> Settings:
        names = {user.username for user in self.users}
        problems: list[tuple[tuple[str | int, ...], str]] = [
            (("supervision", "supervisors", i), f'unknown user "{name}"')
            for i, name in enumerate(self.supervision.supervisors)
            if name not in names
        ]
        if problems:
            raise rule_violation(*problems)
        return self

    @model_validator(mode="after")
    def _agent_users(self) -> Settings:
        names = {user.username for user in self.users}
        problems: list[tuple[tuple[str | int, ...], str]] = [
            (("acd", "agents", i, "user"), f'unknown user "{agent.user}"')
            for i, agent in enumerate(self.acd.agents)
            if agent.user not in names
        ]
        if problems:
            raise rule_violation(*problems)
        return self

    @cached_property
    def users_by_name(self) -> Mapping[str, User]:
        """The users by username (case-sensitive, as SIP user parts are: RFC 3261 §19.1.4)."""
        return MappingProxyType({user.username: user for user in self.users})


def _raw_username(item: Any) -> str | None:
    """The username of a user entry before validation, as validation will normalise it."""
    if isinstance(item, User):
        return item.username
    name = item.get("username") if isinstance(item, dict) else None
    if isinstance(name, int) and not isinstance(name, bool):
        return str(name)
    return name if isinstance(name, str) else None


def load_settings(path: str | Path, *, vpn_peers: bool = True) -> Settings:
    """Load and validate a settings file; raises :class:`ConfigErrors` listing every mistake.

    With a ``vpn`` section (and ``vpn_peers``), each agent with a VPN peer in the peers file
    gets its SIP user's ``allowed_networks`` replaced by its VPN address (see
    :func:`with_vpn_peers`)."""
    config_dir = Path(path).resolve().parent
    settings = load_model(Settings, path, context={"config_dir": config_dir})
    settings._config_dir = config_dir
    settings._source = Path(path).resolve()
    if vpn_peers and settings.vpn is not None:
        return with_vpn_peers(settings, path)
    return settings


def read_vpn_peers(vpn: Vpn) -> tuple[Peer, ...]:
    """The peers in ``vpn.peers`` (none when the file does not exist); raises
    :class:`ConfigErrors` naming the file when it cannot be read or is malformed."""
    file = Path(vpn.peers)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        error = ConfigError(str(file), 1, 1, "", f"cannot read the VPN peers file: {reason}")
        raise ConfigErrors([error]) from None
    try:
        return parse_peers(text)
    except PeersFileError as exc:
        message = f"malformed VPN peers file: {exc.message}"
        raise ConfigErrors([ConfigError(str(file), exc.line, exc.col, exc.path, message)]) from None


def with_vpn_peers(settings: Settings, path: str | Path) -> Settings:
    """The settings with every VPN peer applied: the SIP user of each peer's agent may
    register and call only from the agent's VPN address (``allowed_networks`` becomes
    ``[<address>/32]``, or several such when agents share a user). A peer whose agent is no
    longer in ``acd.agents`` is ignored with a warning; a peer outside ``vpn.network`` is an
    error (the network changed: revoke and add the agent again)."""
    vpn = settings.vpn
    assert vpn is not None
    agents = {agent.id: agent for agent in settings.acd.agents}
    networks: dict[str, list[IPv4Network | IPv6Network]] = {}
    warnings: list[str] = []
    errors: list[ConfigError] = []
    for peer in read_vpn_peers(vpn):
        agent = agents.get(peer.agent)
        if agent is None:
            warnings.append(
                f'{vpn.peers}: the VPN peer of agent "{peer.agent}" ({peer.address}) names no '
                f"agent of {path}; remove it with: softswitch vpn revoke {peer.agent}"
            )
            continue
        if peer.address.version != vpn.network.version or peer.address not in vpn.network:
            file, line, col = load_yaml(path).position(("vpn", "network"))
            errors.append(
                ConfigError(
                    file,
                    line,
                    col,
                    "vpn.network",
                    f'the VPN address {peer.address} of agent "{peer.agent}" ({vpn.peers}) is '
                    f"outside {vpn.network}: revoke the agent and add it again",
                )
            )
            continue
        networks.setdefault(agent.user, []).append(host_network(peer.address))
    if errors:
        raise ConfigErrors(errors)
    users = tuple(
        user.model_copy(update={"allowed_networks": tuple(networks[user.username])})
        if user.username in networks
        else user
        for user in settings.users
    )
    updated = settings.model_copy(update={"users": users})
    updated.__dict__.pop("users_by_name", None)  # a cached view of the old users
    updated._warnings = settings.warnings + tuple(warnings)
    for warning in warnings:
        log.warning("%s", warning)
    return updated


def load_with_plan(path: str | Path) -> tuple[Settings, Plan | None]:
    """The settings and the dialplan they name (None without one), both checked, and every
    user's context found in the plan; raises :class:`ConfigErrors` listing every mistake."""
    from softswitch.routing.loader import load_plan

    settings = load_settings(path)
    if settings.dialplan is None:
        return settings, None
    plan_file = settings.resolve(settings.dialplan.file)
    try:
        plan = load_plan(plan_file)
    except OSError as exc:
        where = load_yaml(path).position(("dialplan", "file"))
        error = ConfigError(*where, "dialplan.file", f"{plan_file}: {exc.strerror}")
        raise ConfigErrors([error]) from None
    doc = load_yaml(path)
    errors = context_errors(settings, plan.contexts, doc) + prompt_errors(settings, plan, doc)
    if errors:
        raise ConfigErrors(errors)
    return settings, plan


#: the queue prompts the switch composes itself (in ``acd.announcements``)
ANNOUNCEMENTS = (
    "queue-position",
    *(f"number-{n}" for n in range(1, 21)),
    "number-many",
    "queue-wait",
    "queue-wait-short",
    "queue-wait-long",
    "minutes",
    "queue-callback",
)


def prompt_errors(settings: Settings, plan: Plan, doc: YamlDocument) -> list[ConfigError]:
    """Queue prompts (periodic message, exit prompts, the announcements the switch composes)
    missing from the dialplan's prompts folder."""
    wanted: list[tuple[Loc, str]] = []
    composes = False
    for i, q in enumerate(settings.acd.queues):
        if q.periodic_prompt:
            wanted.append((("acd", "queues", i, "periodic_prompt"), q.periodic_prompt))
        for name in ("on_timeout", "on_full", "on_empty"):
            exit_to: ExitTo = getattr(q, name)
            if exit_to.prompt:
                wanted.append((("acd", "queues", i, name, "prompt"), exit_to.prompt))
            composes = composes or exit_to.action == "callback"
        composes = composes or q.announce_position > 0 or q.callback_key is not None
    if composes:
        folder = settings.acd.announcements.strip("/")
        wanted += [
            (("acd", "announcements"), f"{folder}/{name}" if folder else name)
            for name in ANNOUNCEMENTS
        ]
    errors = []
    for loc, name in wanted:
        path = plan.prompt_path(name)
        if not path.is_file():
            file, line, col = doc.position(loc)
            message = f'no prompt "{name}" ({path})'
            errors.append(ConfigError(file, line, col, format_path(loc), message))
    return errors


def check(path: str | Path) -> list[ConfigError]:
    """Every mistake in a settings file and in the dialplan it names (an empty list when
    both are valid)."""
    try:
        load_with_plan(path)
    except ConfigErrors as exc:
        return exc.errors
    return []


def context_errors(
    settings: Settings, contexts: Collection[str], doc: YamlDocument | None = None
) -> list[ConfigError]:
    """Users (and the default) naming a context the plan does not have."""
    assert settings.dialplan is not None
    known = ", ".join(sorted(contexts))
    wanted: list[tuple[Loc, str]] = [(("dialplan", "context"), settings.dialplan.context)]
    wanted += [
        (("users", i, "context"), u.context) for i, u in enumerate(settings.users) if u.context
    ]
    errors = []
    for loc, name in wanted:
        if name not in contexts:
            file, line, col = doc.position(loc) if doc is not None else ("settings", 1, 1)
            message = f'no context "{name}" in the dialplan (it has {known})'
            errors.append(ConfigError(file, line, col, format_path(loc), message))
    return errors
