"""``softswitch vpn``: the home agents' WireGuard peers (add-agent, revoke, list).

``add-agent NAME`` gives agent NAME (an id of ``acd.agents``) a key pair and the lowest free
address of ``vpn.network``, records the peer in the peers file (``vpn.peers``), rewrites the
switch's WireGuard configuration (``vpn.server_config``) and prints the agent's configuration
with a QR code for the WireGuard app. Once the switch reloads its settings, the agent's SIP
user may register only from that address (:func:`softswitch.config.with_vpn_peers`).
``revoke NAME`` removes the peer again; ``list`` shows them.

Files are replaced atomically (a temporary file in the same folder, then a rename), so the
switch never reads half a file; the ones holding private keys are created with mode 0600. The
agent's private key is printed (or written to ``--out``) and kept nowhere else. Admin
mistakes (unknown agent, no ``vpn:`` section, broken settings) exit with status 2 and a
message, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import segno

from softswitch.config import Settings, Vpn, load_settings, read_vpn_peers
from softswitch.security.vpn import (
    InvalidKeyError,
    Peer,
    allocate_address,
    decode_key,
    generate_key_pair,
    generate_private_key,
    public_key,
    render_agent_config,
    render_peers,
    render_server_config,
)
from softswitch.yaml_loader import ConfigErrors

__all__ = ["add_vpn_commands", "cmd_vpn"]

DEFAULT_CONFIG = Path("configs/default.yaml")
PRIVATE = 0o600
PUBLIC = 0o644


class VpnCommandError(Exception):
    """An admin's mistake or a state the command cannot work with: printed, exit status 2."""


def add_vpn_commands(subparsers: Any) -> None:
    """Add ``vpn add-agent``, ``vpn revoke`` and ``vpn list`` to the ``softswitch`` parser's
    subcommands (``subparsers`` is what ``add_subparsers()`` returned)."""
    vpn = subparsers.add_parser(
        "vpn",
        help="WireGuard VPN peers of the home agents",
        description="Keep the WireGuard peers of the home agents: each agent gets a key pair "
        "and an address in vpn.network, and may register only from that address.",
    )
    sub = vpn.add_subparsers(dest="vpn_command", required=True, metavar="COMMAND")

    def config_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-c",
            "--config",
            type=Path,
            default=DEFAULT_CONFIG,
            help="settings file (default: %(default)s)",
        )

    add = sub.add_parser(
        "add-agent",
        help="give an agent a WireGuard peer and print the agent's configuration",
    )
    add.add_argument("name", metavar="NAME", help="the agent's id (acd.agents[].id)")
    config_option(add)
    add.add_argument(
        "--qr",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="print the agent's configuration as a QR code too (default: yes)",
    )
    add.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the agent's configuration to FILE (mode 0600) instead of printing it",
    )
    revoke = sub.add_parser("revoke", help="remove an agent's WireGuard peer")
    revoke.add_argument("name", metavar="NAME", help="the agent's id")
    config_option(revoke)
    listing = sub.add_parser("list", help="list the agents' WireGuard peers")
    config_option(listing)


def cmd_vpn(args: argparse.Namespace) -> int:
    """Run a ``softswitch vpn`` subcommand: 0 when done, 2 for an admin's mistake."""
    handlers = {"add-agent": add_agent, "revoke": revoke, "list": list_peers}
    try:
        return handlers[args.vpn_command](args)
    except VpnCommandError as exc:
        print(f"softswitch vpn {args.vpn_command}: {exc}", file=sys.stderr)
        return 2
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{args.config}: {len(exc.errors)} error(s); nothing was changed", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------------------------
# Subcommands


def add_agent(args: argparse.Namespace) -> int:
    """``softswitch vpn add-agent NAME``."""
    settings, vpn = _load(args.config)
    agent = next((a for a in settings.acd.agents if a.id == args.name), None)
    if agent is None:
        known = ", ".join(a.id for a in settings.acd.agents) or "none"
        raise VpnCommandError(f'no agent "{args.name}" in {args.config} (agents: {known})')
    peers = list(read_vpn_peers(vpn))
    existing = next((p for p in peers if p.agent == agent.id), None)
    if existing is not None:
        raise VpnCommandError(
            f'agent "{agent.id}" already has a VPN peer ({existing.address}, added '
            f"{existing.created}); to give them a new one, revoke it first: "
            f"softswitch vpn revoke {agent.id} -c {args.config}"
        )
    address = allocate_address(vpn.network, vpn.switch_address, (p.address for p in peers))
    if address is None:
        raise VpnCommandError(
            f"no free address left in {vpn.network} ({len(peers)} agent(s) and the switch); "
            "revoke unused peers or make vpn.network larger"
        )
    server_key = _server_key(vpn, peers)
    pair = generate_key_pair()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    peer = Peer(agent.id, agent.user, address, pair.public, created)
    text = render_agent_config(
        agent=agent.id,
        private_key=pair.private,
        address=address,
        server_public_key=public_key(server_key),
        endpoint=vpn.endpoint,
        switch_address=vpn.switch_address,
        keepalive=vpn.keepalive,
    )
    if args.out is not None:
        _write(args.out, text, PRIVATE)  # first: if it fails, nothing else has changed
    _save(vpn, server_key, [*peers, peer])

    if args.out is None:
        print(text)
    else:
        print(f"Wrote the WireGuard configuration of agent {agent.id} to {args.out}.")
    if args.qr:
        print("The same configuration as a QR code (WireGuard app: add a tunnel, scan):")
        segno.make(text, error="l", micro=False).terminal(out=sys.stdout, compact=True)
    print(
        f"Agent {agent.id} (user {agent.user}) has the VPN address {address}.\n"
        "Next:\n"
        f"  1. Give the agent this configuration over a safe channel: it holds the agent's\n"
        f"     private key, which is kept nowhere else.\n"
        f"{_apply_server_config(vpn)}"
        f"{_reload_switch(settings)}"
        f"     From then on user {agent.user} may register only from {address}."
    )
    return 0


def revoke(args: argparse.Namespace) -> int:
    """``softswitch vpn revoke NAME``."""
    settings, vpn = _load(args.config)
    peers = list(read_vpn_peers(vpn))
    gone = next((p for p in peers if p.agent == args.name), None)
    if gone is None:
        known = ", ".join(p.agent for p in peers) or "none"
        raise VpnCommandError(f'agent "{args.name}" has no VPN peer (peers: {known})')
    remaining = [p for p in peers if p is not gone]
    _save(vpn, _server_key(vpn, remaining), remaining)
    user = settings.users_by_name.get(gone.user)
    fallback = (
        ", ".join(str(n) for n in user.allowed_networks) or "anywhere"
        if user is not None
        else "its settings"
    )
    print(
        f"Revoked the VPN peer of agent {gone.agent} ({gone.address}).\n"
        "Next:\n"
        f"{_apply_server_config(vpn, first=1)}"
        f"{_reload_switch(settings, first=2)}"
        f"     User {gone.user} then falls back to the allowed_networks of {args.config} "
        f"({fallback})."
    )
    return 0


def list_peers(args: argparse.Namespace) -> int:
    """``softswitch vpn list``."""
    settings, vpn = _load(args.config)
    peers = read_vpn_peers(vpn)
    if not peers:
        print(f"No VPN peers ({vpn.peers}).")
        return 0
    agents = {a.id for a in settings.acd.agents}
    rows = [("AGENT", "USER", "ADDRESS", "ADDED", "PUBLIC KEY")]
    for p in peers:
        note = "" if p.agent in agents else "  (no such agent: revoke it)"
        rows.append((p.agent, p.user, str(p.address), p.created, p.public_key + note))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4])
    return 0


# --------------------------------------------------------------------------------------------
# Settings, keys and files


def _load(config: Path) -> tuple[Settings, Vpn]:
    """The settings (peers not applied: the peers file is what this command edits) and
    their ``vpn`` section."""
    try:
        settings = load_settings(config, vpn_peers=False)
    except OSError as exc:
        raise VpnCommandError(f"{config}: {exc.strerror}") from None
    if settings.vpn is None:
        raise VpnCommandError(
            f"{config} has no vpn: section; add one with at least the endpoint agents dial, "
            "e.g.\n  vpn:\n    endpoint: vpn.example.com:51820\n"
            "(see configs/default.yaml for the other keys)"
        )
    return settings, settings.vpn


def key_file(vpn: Vpn) -> Path:
    """Where the switch's WireGuard private key is kept: beside the server configuration,
    ``<name>.key``."""
    return Path(vpn.server_config).with_suffix(".key")


def _server_key(vpn: Vpn, peers: list[Peer]) -> str:
    """The switch's private key, made on first use. Once agents have peers, a lost key is an
    error, not a new key: every agent's configuration names the old one."""
    path = key_file(vpn)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        if peers:
            raise VpnCommandError(
                f"the switch's WireGuard key {path} is missing, but {len(peers)} agent(s) "
                "have configurations made with it; restore it, or revoke every agent and add "
                "them again"
            ) from None
        key = generate_private_key()
        _write(path, key + "\n", PRIVATE)
        return key
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a key"
        raise VpnCommandError(f"{path}: {reason}") from None
    try:
        decode_key(text)
    except InvalidKeyError as exc:
        raise VpnCommandError(f"{path} is not a WireGuard private key: {exc}") from None
    return text.strip()


def _save(vpn: Vpn, server_key: str, peers: list[Peer]) -> None:
    """Write the peers file, then the server configuration made from it."""
    _write(Path(vpn.peers), render_peers(peers), PUBLIC)
    config = render_server_config(
        private_key=server_key,
        address=vpn.switch_address,
        network=vpn.network,
        listen_port=vpn.listen_port,
        peers=peers,
    )
    _write(Path(vpn.server_config), config, PRIVATE)


def _write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` atomically with ``text``: a temporary file in the same folder, made
    with ``mode`` from the start, flushed to disk, then renamed over the old file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise VpnCommandError(f"{path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise VpnCommandError(f"{path}: {exc.strerror}") from None


# --------------------------------------------------------------------------------------------
# What to do next


def _apply_server_config(vpn: Vpn, first: int = 2) -> str:
    wg = vpn.interface
    return (
        f"  {first}. Apply the switch's WireGuard configuration {vpn.server_config}:\n"
        f"       sudo install -m 600 {vpn.server_config} /etc/wireguard/{wg}.conf\n"
        f"       first time:  sudo wg-quick up {wg}\n"
        f"       afterwards:  sudo bash -c 'wg syncconf {wg} <(wg-quick strip {wg})'\n"
    )


def _reload_switch(settings: Settings, first: int = 3) -> str:
    http = settings.http
    host = f"[{http.address}]" if ":" in http.address else http.address
    token = ' -H "Authorization: Bearer $TOKEN"' if http.api_token else ""
    return (
        f"  {first}. Reload the switch's settings:\n"
        f"       kill -HUP <pid of softswitch>   or   "
        f"curl -X POST{token} http://{host}:{http.port}/api/reload\n"
    )
