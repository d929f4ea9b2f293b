"""WireGuard provisioning for home agents: keys, addresses, the peers state, config files.

Home agents reach the switch through a WireGuard tunnel (https://www.wireguard.com/); each
agent is one peer of the switch's interface with its own address in ``vpn.network``, and that
agent's SIP user may then register only from that address (``softswitch.config`` turns the
peers file into the users' ``allowed_networks``). ``softswitch vpn add-agent`` and ``revoke``
(:mod:`softswitch.admin.vpn_cli`) maintain the files; this module is their pure part:

* keys as WireGuard writes them: Curve25519 (RFC 7748) private keys, clamped as
  ``wg genkey`` does (RFC 7748 §5, decodeScalar25519), and the X25519 public key of each,
  both as the base64 text of their 32 raw bytes;
* address allocation: the lowest free host address of the network, never the switch's own;
  a revoked agent's address is free again;
* the peers state (agent, user, address, public key, creation time) as JSON: defined in
  :mod:`softswitch.config`, which reads it with the settings (the settings sit below every
  layer; this package may not be imported from there), and re-exported here;
* the server's configuration (``wg-quick`` format: ``[Interface]`` plus one ``[Peer]`` per
  agent, AllowedIPs the agent's address only) and the agent's (split tunnel: AllowedIPs is
  the switch's address only, so nothing but the switch is reached through the VPN).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from softswitch.config import Peer, PeersFileError, host_network, parse_peers, render_peers

__all__ = [
    "InvalidKeyError",
    "KeyPair",
    "Peer",
    "PeersFileError",
    "allocate_address",
    "clamp",
    "decode_key",
    "encode_key",
    "generate_key_pair",
    "generate_private_key",
    "host_network",
    "parse_peers",
    "public_key",
    "render_agent_config",
    "render_peers",
    "render_server_config",
]

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

KEY_BYTES = 32
"""Length of a Curve25519 key (RFC 7748 §5)."""


# --------------------------------------------------------------------------------------------
# Keys


class InvalidKeyError(ValueError):
    """Text that is not a WireGuard key (the base64 of 32 bytes)."""


def encode_key(raw: bytes) -> str:
    """The base64 text WireGuard uses for a 32-byte key (44 characters, one ``=``)."""
    if len(raw) != KEY_BYTES:
        raise InvalidKeyError(f"a key has {KEY_BYTES} bytes, got {len(raw)}")
    return base64.b64encode(raw).decode("ascii")


def decode_key(text: str) -> bytes:
    """The 32 raw bytes of a key written as base64 (``wg genkey`` / ``wg pubkey`` output)."""
    stripped = text.strip()
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKeyError("not base64 text") from None
    if len(raw) != KEY_BYTES or len(stripped) != 44:
        raise InvalidKeyError(f"a key is the base64 of {KEY_BYTES} bytes (44 characters)")
    return raw


def clamp(raw: bytes) -> bytes:
    """A Curve25519 private scalar as RFC 7748 §5 (decodeScalar25519) and ``wg genkey`` set
    it: the three low bits cleared, the top bit cleared, the second-highest bit set."""
    if len(raw) != KEY_BYTES:
        raise InvalidKeyError(f"a key has {KEY_BYTES} bytes, got {len(raw)}")
    scalar = bytearray(raw)
    scalar[0] &= 248
    scalar[31] = (scalar[31] & 127) | 64
    return bytes(scalar)


def generate_private_key(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A new private key: 32 random bytes, clamped, as base64 (what ``wg genkey`` prints)."""
    return encode_key(clamp(random_bytes(KEY_BYTES)))


def public_key(private_key: str) -> str:
    """The X25519 public key of a private key (RFC 7748 §6.1: X25519(k, 9)), as base64: what
    ``wg pubkey`` prints for it."""
    private = X25519PrivateKey.from_private_bytes(decode_key(private_key))
    return encode_key(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A WireGuard key pair, both halves as base64 text."""

    private: str = field(repr=False)
    public: str


def generate_key_pair(random_bytes: Callable[[int], bytes] = os.urandom) -> KeyPair:
    """A new key pair (``wg genkey | tee private | wg pubkey``)."""
    private = generate_private_key(random_bytes)
    return KeyPair(private, public_key(private))


# --------------------------------------------------------------------------------------------
# Addresses


def allocate_address(network: Network, switch: Address, used: Iterable[Address]) -> Address | None:
    """The lowest host address of ``network`` that is neither the switch's nor in ``used``;
    None when the network is full. Host addresses exclude the network address (and for IPv4
    the broadcast address), as :meth:`ipaddress.IPv4Network.hosts` does."""
    taken = {*used, switch}
    for host in network.hosts():
        if host not in taken:
            return host
    return None


def _by_address(peer: Peer) -> tuple[int, int]:
    return (peer.address.version, int(peer.address))


# --------------------------------------------------------------------------------------------
# Configuration files (wg-quick format: wg(8) CONFIGURATION FILE FORMAT, plus Address)

_GENERATED = "# Written by `softswitch vpn`; edits are lost at the next add-agent or revoke."


def render_server_config(
    *,
    private_key: str,
    address: Address,
    network: Network,
    listen_port: int,
    peers: Iterable[Peer],
) -> str:
    """The switch's WireGuard configuration: its key, its address with the network's prefix
    (so ``wg-quick`` routes the whole VPN network to the interface), the port it listens on,
    and each agent as a ``[Peer]`` that may send from its own address only (AllowedIPs
    ``address/32``), after a comment naming the agent."""
    lines = [
        _GENERATED,
        "[Interface]",
        f"PrivateKey = {private_key}",
        f"Address = {address}/{network.prefixlen}",
        f"ListenPort = {listen_port}",
    ]
    for peer in sorted(peers, key=_by_address):
        lines += [
            "",
            f"# agent {peer.agent} (user {peer.user}), added {peer.created}",
            "[Peer]",
            f"PublicKey = {peer.public_key}",
            f"AllowedIPs = {host_network(peer.address)}",
        ]
    return "\n".join(lines) + "\n"


def render_agent_config(
    *,
    agent: str,
    private_key: str,
    address: Address,
    server_public_key: str,
    endpoint: str,
    switch_address: Address,
    keepalive: int,
) -> str:
    """An agent's WireGuard configuration (import it into the WireGuard app): the agent's
    key and address, and the switch as the one peer, reached at ``endpoint``. AllowedIPs is
    the switch's VPN address only: a split tunnel, the rest of the agent's traffic does not
    go through the VPN. PersistentKeepalive keeps the agent's NAT mapping open so that the
    switch can reach it for incoming calls (none when ``keepalive`` is 0)."""
    lines = [
        f"# WireGuard configuration of agent {agent}: only the switch ({switch_address}) is",
        "# reached through this tunnel.",
        "[Interface]",
        f"PrivateKey = {private_key}",
        f"Address = {host_network(address)}",
        "",
        "[Peer]",
        f"PublicKey = {server_public_key}",
        f"Endpoint = {endpoint}",
        f"AllowedIPs = {host_network(switch_address)}",
    ]
    if keepalive > 0:
        lines.append(f"PersistentKeepalive = {keepalive}")
    return "\n".join(lines) + "\n"
