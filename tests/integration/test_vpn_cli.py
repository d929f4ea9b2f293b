"""``softswitch vpn add-agent / revoke / list`` on real files, and the settings that follow.

Each test works in its own folder with a copy of ``configs/default.yaml`` plus a ``vpn:``
section; the peers file and the WireGuard files are written there (paths relative to the
working directory). The last test gives the generated configurations to WireGuard itself:
two userspace interfaces (wireguard-go) in a fresh network namespace, the agent's dialling
the switch's over that namespace's loopback, until they complete a handshake.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from softswitch.admin.vpn_cli import add_vpn_commands, cmd_vpn
from softswitch.config import check, load_settings
from softswitch.security.vpn import decode_key, parse_peers, public_key

ROOT = Path(__file__).resolve().parents[2]
VPN_SECTION = "\nvpn:\n  endpoint: vpn.example.com:51820\n"


def run(*argv: str) -> int:
    """``softswitch vpn ...`` as the command line runs it."""
    parser = argparse.ArgumentParser(prog="softswitch")
    add_vpn_commands(parser.add_subparsers(dest="command", required=True))
    return cmd_vpn(parser.parse_args(["vpn", *argv]))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the demo settings and a vpn section: the settings file."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "switch.yaml"
    # the demo's relative names (dialplan, prompts, music) fall back to the shipped configs/
    text = (ROOT / "configs" / "default.yaml").read_text(encoding="utf-8")
    config.write_text(text + VPN_SECTION)
    return config


def networks(config: Path, user: str) -> list[str]:
    return [str(n) for n in load_settings(config).users_by_name[user].allowed_networks]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_agent_restricts_the_user_to_its_vpn_address_and_revoke_undoes_it(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert networks(site, "1001") == ["127.0.0.0/8", "::1/128"]
    assert run("add-agent", "alice", "-c", str(site)) == 0
    out = capsys.readouterr().out
    # the agent's configuration, the QR code of it, and what to do next
    assert "[Interface]" in out and "Address = 10.66.0.2/32" in out
    assert "AllowedIPs = 10.66.0.1/32" in out and "Endpoint = vpn.example.com:51820" in out
    assert "\u2580" in out or "\u2584" in out  # half blocks of the compact QR code
    assert "kill -HUP" in out and "/api/reload" in out and "wg syncconf wg0" in out
    agent_key = next(ln.split(" = ")[1] for ln in out.splitlines() if ln.startswith("PrivateKey"))

    [peer] = parse_peers(Path("var/vpn/peers.json").read_text())
    assert (peer.agent, peer.user, str(peer.address)) == ("alice", "1001", "10.66.0.2")
    assert peer.public_key == public_key(agent_key)
    server_key = Path("var/vpn/wg0.key").read_text().strip()
    decode_key(server_key)
    assert f"PublicKey = {public_key(server_key)}" in out
    server = Path("var/vpn/wg0.conf").read_text()
    assert f"PrivateKey = {server_key}" in server
    assert "# agent alice (user 1001)" in server and "AllowedIPs = 10.66.0.2/32" in server
    assert mode(Path("var/vpn/wg0.key")) == mode(Path("var/vpn/wg0.conf")) == 0o600
    assert agent_key not in Path("var/vpn/peers.json").read_text() + server

    # the switch (load, reload and check all load the same way) sees the VPN address
    assert networks(site, "1001") == ["10.66.0.2/32"]
    assert networks(site, "1002") == ["127.0.0.0/8", "::1/128"]
    assert check(site) == []

    assert run("add-agent", "bob", "-c", str(site), "--no-qr") == 0
    assert "\u2580" not in capsys.readouterr().out
    assert networks(site, "1002") == ["10.66.0.3/32"]
    assert run("list", "-c", str(site)) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in listing[1:]] == [
        ["alice", "1001", "10.66.0.2"],
        ["bob", "1002", "10.66.0.3"],
    ]

    assert run("revoke", "alice", "-c", str(site)) == 0
    out = capsys.readouterr().out
    assert "10.66.0.2" in out and "127.0.0.0/8, ::1/128" in out and "reload" in out
    assert networks(site, "1001") == ["127.0.0.0/8", "::1/128"]
    assert networks(site, "1002") == ["10.66.0.3/32"]
    server = Path("var/vpn/wg0.conf").read_text()
    assert "alice" not in server and "10.66.0.2" not in server and "agent bob" in server
    assert Path("var/vpn/wg0.key").read_text().strip() == server_key  # the switch keeps its key

    # the revoked address is the next one given
    assert run("add-agent", "dave", "-c", str(site), "--no-qr") == 0
    capsys.readouterr()
    assert networks(site, "1004") == ["10.66.0.2/32"]
    assert sorted(p.agent for p in parse_peers(Path("var/vpn/peers.json").read_text())) == [
        "bob",
        "dave",
    ]


def test_out_writes_the_agents_configuration_privately(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = Path("alice-wg.conf")
    assert run("add-agent", "alice", "-c", str(site), "--out", str(out_file), "--no-qr") == 0
    printed = capsys.readouterr().out
    assert mode(out_file) == 0o600
    text = out_file.read_text()
    private = next(ln.split(" = ")[1] for ln in text.splitlines() if ln.startswith("PrivateKey"))
    assert private not in printed
    assert str(out_file) in printed
    [peer] = parse_peers(Path("var/vpn/peers.json").read_text())
    assert peer.public_key == public_key(private)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add-agent", "mallory"], 'no agent "mallory" in switch.yaml (agents: alice, bob, dave)'),
        (["revoke", "alice"], 'agent "alice" has no VPN peer (peers: none)'),
    ],
)
def test_unknown_names_are_refused(
    site: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(*argv, "-c", "switch.yaml") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not Path("var/vpn/peers.json").exists()


def test_an_agent_with_a_peer_must_be_revoked_first(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("add-agent", "alice", "-c", str(site), "--no-qr") == 0
    before = Path("var/vpn/peers.json").read_text(), Path("var/vpn/wg0.conf").read_text()
    capsys.readouterr()
    assert run("add-agent", "alice", "-c", str(site)) == 2
    err = capsys.readouterr().err
    assert 'agent "alice" already has a VPN peer (10.66.0.2' in err
    assert "softswitch vpn revoke alice" in err
    assert (Path("var/vpn/peers.json").read_text(), Path("var/vpn/wg0.conf").read_text()) == before


def test_a_full_network_is_refused(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site.write_text(site.read_text() + "  network: 10.66.0.0/30\n")  # the switch and one agent
    assert run("add-agent", "alice", "-c", str(site), "--no-qr") == 0
    assert run("add-agent", "bob", "-c", str(site), "--no-qr") == 2
    err = capsys.readouterr().err
    assert "no free address left in 10.66.0.0/30" in err
    assert networks(site, "1002") == ["127.0.0.0/8", "::1/128"]


def test_settings_without_vpn_or_with_mistakes_exit_2_with_a_message(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_text(site.read_text().replace(VPN_SECTION, "\n"))
    assert run("add-agent", "alice", "-c", str(site)) == 2
    err = capsys.readouterr().err
    assert "has no vpn: section" in err and "endpoint" in err
    assert run("list", "-c", "no-such.yaml") == 2
    assert "no-such.yaml:1:1: cannot read file: No such file" in capsys.readouterr().err
    site.write_text(site.read_text() + "vpn:\n  endpoint: vpn.example.com\n")
    line = len(site.read_text().splitlines())
    assert run("add-agent", "alice", "-c", str(site)) == 2
    err = capsys.readouterr().err
    assert f"{site}:{line}:13: vpn.endpoint: expected host:port" in err
    assert "Traceback" not in err
    assert not Path("var").exists()


def test_a_lost_server_key_is_not_silently_replaced(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("add-agent", "alice", "-c", str(site), "--no-qr") == 0
    Path("var/vpn/wg0.key").unlink()
    assert run("add-agent", "bob", "-c", str(site), "--no-qr") == 2
    assert "var/vpn/wg0.key is missing, but 1 agent(s)" in capsys.readouterr().err
    # with no agent left, a new key is made
    Path("var/vpn/wg0.key").write_text("not a key\n")
    assert run("revoke", "alice", "-c", str(site)) == 2
    assert "is not a WireGuard private key" in capsys.readouterr().err
    Path("var/vpn/wg0.key").unlink()
    assert run("revoke", "alice", "-c", str(site)) == 0
    assert decode_key(Path("var/vpn/wg0.key").read_text())


def test_a_peer_of_a_removed_agent_is_listed_and_can_be_revoked(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("add-agent", "bob", "-c", str(site), "--no-qr") == 0
    text = site.read_text()
    start = text.index("    - id: bob")
    site.write_text(text[:start] + text[text.index("    - id: dave") :])
    settings = load_settings(site)
    assert settings.warnings and "bob" in settings.warnings[0]
    capsys.readouterr()
    assert run("list", "-c", str(site)) == 0
    assert "(no such agent: revoke it)" in capsys.readouterr().out
    assert run("revoke", "bob", "-c", str(site)) == 0
    assert load_settings(site).warnings == ()


# --------------------------------------------------------------------------------------------
# WireGuard itself reads the files


TOOLS = {name: shutil.which(name) for name in ("wg", "wg-quick", "wireguard-go", "ip")}


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh network namespace with its loopback up, deleted afterwards."""
    missing = [name for name, path in TOOLS.items() if path is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"sstest{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    try:
        subprocess.run(
            ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True, timeout=10
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


def in_ns(ns: str, *argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], input=stdin, capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


def test_wireguard_accepts_both_configurations_and_they_shake_hands(
    site: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    suffix = str(os.getpid() % 100000)
    server_if, agent_if = f"sss{suffix}", f"ssa{suffix}"
    site.write_text(
        site.read_text().replace("vpn.example.com:51820", "127.0.0.1:51820")
        + f"  interface: {server_if}\n  server_config: var/vpn/{server_if}.conf\n"
    )
    agent_file = Path(f"{agent_if}.conf")  # wg-quick names the interface after the file
    assert run("add-agent", "alice", "-c", str(site), "--out", str(agent_file), "--no-qr") == 0
    capsys.readouterr()
    server_file = Path(f"var/vpn/{server_if}.conf")
    server_key = Path(f"var/vpn/{server_if}.key").read_text().strip()
    [peer] = parse_peers(Path("var/vpn/peers.json").read_text())

    daemons: list[subprocess.Popen[bytes]] = []
    try:
        for interface in (server_if, agent_if):
            daemons.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", namespace, "wireguard-go", "-f", interface],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for interface in (server_if, agent_if):
            socket_file = Path(f"/var/run/wireguard/{interface}.sock")
            deadline = time.monotonic() + 10
            while not socket_file.exists():
                assert time.monotonic() < deadline, f"wireguard-go made no {socket_file}"
                time.sleep(0.05)
        for interface, file in ((server_if, server_file), (agent_if, agent_file)):
            stripped = subprocess.run(
                ["wg-quick", "strip", str(file.resolve())],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            in_ns(namespace, "wg", "setconf", interface, "/dev/stdin", stdin=stripped)

        assert in_ns(namespace, "wg", "show", server_if, "public-key").strip() == public_key(
            server_key
        )
        assert in_ns(namespace, "wg", "show", server_if, "listen-port").strip() == "51820"
        assert in_ns(namespace, "wg", "show", server_if, "allowed-ips").split() == [
            peer.public_key,
            "10.66.0.2/32",
        ]
        assert in_ns(namespace, "wg", "show", agent_if, "public-key").strip() == peer.public_key
        assert in_ns(namespace, "wg", "show", agent_if, "allowed-ips").split() == [
            public_key(server_key),
            "10.66.0.1/32",
        ]
        # PersistentKeepalive makes the agent's interface start a handshake at once
        deadline = time.monotonic() + 15
        while True:
            shakes = in_ns(namespace, "wg", "show", server_if, "latest-handshakes").split()
            if shakes[1] != "0":
                break
            assert time.monotonic() < deadline, "no handshake between the two interfaces"
            time.sleep(0.1)
        assert shakes[0] == peer.public_key
        [address] = (
            ipaddress.ip_address(ep.rsplit(":", 1)[0])
            for ep in in_ns(namespace, "wg", "show", server_if, "endpoints").split()[1:]
        )
        assert address.is_loopback
    finally:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(timeout=5)
        for interface in (server_if, agent_if):
            Path(f"/var/run/wireguard/{interface}.sock").unlink(missing_ok=True)
