"""WireGuard provisioning: keys, address allocation, the peers file, rendered configurations."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from softswitch.security.vpn import (
    InvalidKeyError,
    Peer,
    PeersFileError,
    allocate_address,
    clamp,
    decode_key,
    encode_key,
    generate_key_pair,
    generate_private_key,
    host_network,
    parse_peers,
    public_key,
    render_agent_config,
    render_peers,
    render_server_config,
)

WG = shutil.which("wg")
WG_QUICK = shutil.which("wg-quick")

# RFC 7748 §6.1: Alice's and Bob's X25519 key pairs.
RFC7748_PAIRS = [
    (
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    ),
    (
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    ),
]


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def peer(agent: str, address: str, user: str = "1001") -> Peer:
    return Peer(agent, user, ip(address), generate_key_pair().public, "2026-01-02T03:04:05+00:00")


# --------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(("private", "public"), RFC7748_PAIRS)
def test_public_key_is_x25519_of_the_base_point(private: str, public: str) -> None:
    assert public_key(encode_key(bytes.fromhex(private))) == encode_key(bytes.fromhex(public))


def test_clamping_sets_the_bits_rfc7748_names_and_keeps_the_public_key() -> None:
    raw = bytes(range(1, 33))
    clamped = clamp(raw)
    assert clamped[0] == raw[0] & 0b11111000
    assert clamped[31] & 0b10000000 == 0 and clamped[31] & 0b01000000
    assert clamped[1:31] == raw[1:31]
    # X25519 clamps the scalar itself: the public key does not change
    assert public_key(encode_key(clamped)) == public_key(encode_key(raw))
    all_ones = clamp(b"\xff" * 32)
    assert (all_ones[0], all_ones[31]) == (0xF8, 0x7F)


def test_generated_keys_are_clamped_and_come_from_the_given_randomness() -> None:
    asked: list[int] = []

    def fixed(n: int) -> bytes:
        asked.append(n)
        return b"\xff" * n

    key = generate_private_key(fixed)
    assert asked == [32]
    raw = decode_key(key)
    assert raw == clamp(b"\xff" * 32)
    assert len(key) == 44 and key.endswith("=")
    pairs = {generate_key_pair().public for _ in range(20)}
    assert len(pairs) == 20


def test_key_pair_does_not_show_its_private_half() -> None:
    pair = generate_key_pair()
    assert pair.private not in repr(pair)
    assert pair.public in repr(pair)


@pytest.mark.parametrize(
    "text",
    ["", "not base64!", "AAAA", encode_key(b"\0" * 32)[:-1], "A" * 43 + "=" + "A", " " * 44],
)
def test_decode_key_refuses_what_is_not_a_key(text: str) -> None:
    with pytest.raises(InvalidKeyError):
        decode_key(text)


def test_encode_key_needs_32_bytes() -> None:
    with pytest.raises(InvalidKeyError):
        encode_key(b"\0" * 31)


@pytest.mark.skipif(WG is None, reason="wg (wireguard-tools) is not installed")
def test_public_keys_match_wg_pubkey() -> None:
    assert WG is not None
    ours = [generate_private_key() for _ in range(5)]
    theirs = [
        subprocess.run(
            [WG, "genkey"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        for _ in range(3)
    ]
    for private in ours + theirs:
        result = subprocess.run(
            [WG, "pubkey"], input=private + "\n", capture_output=True, text=True, timeout=10
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == public_key(private)
    # wg genkey's keys are clamped as ours are
    assert all(clamp(decode_key(k)) == decode_key(k) for k in theirs)


# --------------------------------------------------------------------------------------------
# Addresses


def test_allocation_takes_the_lowest_free_host_and_skips_the_switch() -> None:
    network = net("10.66.0.0/24")
    assert allocate_address(network, ip("10.66.0.1"), []) == ip("10.66.0.2")
    assert allocate_address(network, ip("10.66.0.1"), [ip("10.66.0.2")]) == ip("10.66.0.3")
    # the switch elsewhere: the first host is free
    assert allocate_address(network, ip("10.66.0.9"), []) == ip("10.66.0.1")


def test_allocation_reuses_a_revoked_address() -> None:
    network = net("10.66.0.0/24")
    used = [ip(f"10.66.0.{n}") for n in (2, 4, 5)]  # .3 was revoked
    assert allocate_address(network, ip("10.66.0.1"), used) == ip("10.66.0.3")


def test_allocation_returns_none_when_full_and_never_the_broadcast() -> None:
    network = net("10.66.0.0/29")  # hosts .1 ... .6
    used: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    while (address := allocate_address(network, ip("10.66.0.1"), used)) is not None:
        used.append(address)
        assert len(used) < 10
    assert used == [ip(f"10.66.0.{n}") for n in range(2, 7)]


def test_allocation_in_ipv6() -> None:
    network = net("fd00:66::/64")
    assert allocate_address(network, ip("fd00:66::1"), [ip("fd00:66::2")]) == ip("fd00:66::3")
    assert str(host_network(ip("fd00:66::3"))) == "fd00:66::3/128"
    assert str(host_network(ip("10.66.0.3"))) == "10.66.0.3/32"


# --------------------------------------------------------------------------------------------
# The peers file


def test_peers_round_trip_in_address_order() -> None:
    peers = [peer("bob", "10.66.0.10", "1002"), peer("alice", "10.66.0.2")]
    text = render_peers(peers)
    parsed = parse_peers(text)
    assert parsed == (peers[1], peers[0])
    assert json.loads(text)["peers"][0]["agent"] == "alice"
    assert parse_peers(render_peers([])) == ()


def test_malformed_json_gives_its_position() -> None:
    with pytest.raises(PeersFileError) as caught:
        parse_peers('{\n  "peers": [\n    {"agent": }\n  ]\n}')
    assert (caught.value.line, caught.value.col) == (3, 15)
    assert caught.value.message.startswith("not JSON")


def good_entry(**changes: object) -> dict[str, object]:
    entry: dict[str, object] = json.loads(render_peers([peer("alice", "10.66.0.2")]))["peers"][0]
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ([], "", 'expected an object with a "peers" list'),
        ({"peers": {}}, "", 'expected an object with a "peers" list'),
        ({"peers": [], "extra": 1}, "extra", 'unknown key "extra"'),
        ({"peers": ["alice"]}, "peers[0]", "expected an object"),
        ({"peers": [good_entry(agent=None)]}, "peers[0].agent", 'missing or not text: "agent"'),
        ({"peers": [good_entry(user=1001)]}, "peers[0].user", 'missing or not text: "user"'),
        ({"peers": [good_entry(note="x")]}, "peers[0].note", 'unknown key "note"'),
        ({"peers": [good_entry(address="10.66.0")]}, "peers[0].address", "not an IP address"),
        ({"peers": [good_entry(public_key="abc")]}, "peers[0].public_key", "not a WireGuard"),
        ({"peers": [good_entry(agent="a\n[Peer]")]}, "peers[0].agent", "not an agent id"),
        ({"peers": [good_entry(created="")]}, "peers[0].created", "not a time"),
        (
            {"peers": [good_entry(), good_entry(address="10.66.0.3")]},
            "peers[1].agent",
            'agent "alice" has two peers (also peers[0])',
        ),
        (
            {"peers": [good_entry(), good_entry(agent="bob")]},
            "peers[1].address",
            "address 10.66.0.2 is given twice (also peers[0])",
        ),
    ],
)
def test_malformed_peers_are_refused(document: object, path: str, message: str) -> None:
    with pytest.raises(PeersFileError) as caught:
        parse_peers(json.dumps(document))
    assert caught.value.path == path
    assert caught.value.message.startswith(message)


# --------------------------------------------------------------------------------------------
# Configuration files


def sections(text: str) -> list[tuple[str, dict[str, str], list[str]]]:
    """The sections of a wg-quick file: name, key = value pairs, the comments before it."""
    out: list[tuple[str, dict[str, str], list[str]]] = []
    comments: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif line.startswith("["):
            out.append((line.strip("[]"), {}, comments))
            comments = []
        elif line.strip():
            key, _, value = line.partition("=")
            out[-1][1][key.strip()] = value.strip()
    return out


def test_server_config_lists_each_agent_with_its_own_address_only() -> None:
    server = generate_key_pair()
    peers = [peer("bob", "10.66.0.3", "1002"), peer("alice", "10.66.0.2")]
    text = render_server_config(
        private_key=server.private,
        address=ip("10.66.0.1"),
        network=net("10.66.0.0/24"),
        listen_port=51820,
        peers=peers,
    )
    [(name, interface, _), *rest] = sections(text)
    assert name == "Interface"
    assert interface == {
        "PrivateKey": server.private,
        "Address": "10.66.0.1/24",
        "ListenPort": "51820",
    }
    assert [(n, values, comments[-1]) for n, values, comments in rest] == [
        (
            "Peer",
            {"PublicKey": peers[1].public_key, "AllowedIPs": "10.66.0.2/32"},
            "# agent alice (user 1001), added 2026-01-02T03:04:05+00:00",
        ),
        (
            "Peer",
            {"PublicKey": peers[0].public_key, "AllowedIPs": "10.66.0.3/32"},
            "# agent bob (user 1002), added 2026-01-02T03:04:05+00:00",
        ),
    ]


def test_agent_config_tunnels_only_the_switch() -> None:
    agent, server = generate_key_pair(), generate_key_pair()
    text = render_agent_config(
        agent="alice",
        private_key=agent.private,
        address=ip("10.66.0.2"),
        server_public_key=server.public,
        endpoint="vpn.example.com:51820",
        switch_address=ip("10.66.0.1"),
        keepalive=25,
    )
    assert [(name, values) for name, values, _ in sections(text)] == [
        ("Interface", {"PrivateKey": agent.private, "Address": "10.66.0.2/32"}),
        (
            "Peer",
            {
                "PublicKey": server.public,
                "Endpoint": "vpn.example.com:51820",
                "AllowedIPs": "10.66.0.1/32",
                "PersistentKeepalive": "25",
            },
        ),
    ]
    assert "alice" in text.splitlines()[0]
    quiet = render_agent_config(
        agent="alice",
        private_key=agent.private,
        address=ip("10.66.0.2"),
        server_public_key=server.public,
        endpoint="[2001:db8::1]:51820",
        switch_address=ip("10.66.0.1"),
        keepalive=0,
    )
    assert "PersistentKeepalive" not in quiet
    assert "Endpoint = [2001:db8::1]:51820" in quiet


@pytest.mark.skipif(WG_QUICK is None, reason="wg-quick (wireguard-tools) is not installed")
def test_wg_quick_strips_the_rendered_configs_to_what_wg_setconf_reads(tmp_path: Path) -> None:
    """wg-quick parses both files: its own keys (Address) go, wg's keys and values stay."""
    assert WG_QUICK is not None
    server, agent = generate_key_pair(), generate_key_pair()
    texts = {
        "wgs0.conf": render_server_config(
            private_key=server.private,
            address=ip("10.66.0.1"),
            network=net("10.66.0.0/24"),
            listen_port=51820,
            peers=[Peer("alice", "1001", ip("10.66.0.2"), agent.public, "2026-01-02T03:04")],
        ),
        "wga0.conf": render_agent_config(
            agent="alice",
            private_key=agent.private,
            address=ip("10.66.0.2"),
            server_public_key=server.public,
            endpoint="127.0.0.1:51820",
            switch_address=ip("10.66.0.1"),
            keepalive=25,
        ),
    }
    for name, text in texts.items():
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o600)
        result = subprocess.run(
            [WG_QUICK, "strip", str(path)], capture_output=True, text=True, timeout=10
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        stripped = [line for line in result.stdout.splitlines() if line and line[0] != "#"]
        kept = [line for line in text.splitlines() if line and line[0] != "#"]
        assert stripped == [line for line in kept if not line.startswith("Address")]
        assert any(line.startswith("Address") for line in kept)
