"""Source ACL: IPv4/IPv6 networks, mapped addresses, the empty list, the verdict cache."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softswitch.security.acl import NetworkAcl


def test_empty_list_allows_everything_but_contains_nothing() -> None:
    acl = NetworkAcl([])
    assert acl.allows("192.0.2.1")
    assert acl.allows("2001:db8::1")
    assert acl.allows("not an address")
    assert not acl.contains("192.0.2.1")
    assert len(acl) == 0


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.0.0.1", True),
        ("10.255.255.255", True),
        ("11.0.0.0", False),
        ("192.168.1.77", True),
        ("192.168.2.1", False),
        ("203.0.113.5", True),
        ("203.0.113.6", False),
        ("2001:db8::1", True),
        ("2001:db8:ffff::1", True),
        ("2001:db9::1", False),
        ("::1", False),
    ],
)
def test_mixed_families(ip: str, expected: bool) -> None:
    acl = NetworkAcl(["10.0.0.0/8", "192.168.1.0/24", "203.0.113.5/32", "2001:db8::/32"])
    assert acl.allows(ip) is expected
    # Second call answers from the cache and must agree.
    assert acl.allows(ip) is expected


def test_ipv4_mapped_address_is_judged_as_ipv4() -> None:
    acl = NetworkAcl(["10.0.0.0/8"])
    assert acl.allows("::ffff:10.1.2.3")
    assert acl.allows("::FFFF:10.1.2.3")
    assert not acl.allows("::ffff:11.1.2.3")


def test_network_in_mapped_form_matches_plain_ipv4() -> None:
    acl = NetworkAcl(["::ffff:192.168.0.0/112"])
    assert acl.allows("192.168.7.8")
    assert acl.allows("::ffff:192.168.7.8")
    assert not acl.allows("192.169.0.1")


def test_ipv6_wildcard_does_not_cover_ipv4_peers() -> None:
    acl = NetworkAcl(["::/0"])
    assert acl.allows("2001:db8::5")
    assert not acl.allows("192.0.2.1")
    assert not acl.allows("::ffff:192.0.2.1")


def test_ipv4_wildcard() -> None:
    acl = NetworkAcl(["0.0.0.0/0"])
    assert acl.allows("198.51.100.200")
    assert acl.allows("::ffff:198.51.100.200")
    assert not acl.allows("2001:db8::1")


def test_brackets_zone_and_garbage() -> None:
    acl = NetworkAcl(["fe80::/10", "2001:db8::/32"])
    assert acl.allows("[2001:db8::9]")
    assert acl.allows("fe80::1%eth0")
    assert not acl.allows("")
    assert not acl.allows("example.com")
    assert not acl.allows("10.0.0.999")


def test_host_bits_are_cleared_and_networks_reported() -> None:
    acl = NetworkAcl([" 10.1.2.3/8 ", "2001:db8::1/64"])
    assert [str(n) for n in acl.networks] == ["10.0.0.0/8", "2001:db8::/64"]
    assert acl.allows("10.200.0.1")


def test_invalid_entry_names_itself() -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        NetworkAcl(["10.0.0.0/8", "10.0.0.0/33"])
    with pytest.raises(ValueError, match="'office'"):
        NetworkAcl(["office"])


def test_cache_is_bounded_and_keeps_verdicts_right() -> None:
    acl = NetworkAcl(["10.0.0.0/8"], cache_size=8)
    for i in range(100):
        assert acl.allows(f"10.0.0.{i}")
        assert not acl.allows(f"11.0.0.{i}")
    assert len(acl._cache) <= 8
    # Recently used entries survive, evicted ones are recomputed correctly.
    assert acl.allows("10.0.0.0")
    assert not acl.allows("11.0.0.0")


def test_single_cidr_string() -> None:
    acl = NetworkAcl("192.0.2.0/24")
    assert len(acl) == 1
    assert acl.allows("192.0.2.77")
    assert not acl.allows("198.51.100.1")


def test_cache_disabled() -> None:
    acl = NetworkAcl(["10.0.0.0/8"], cache_size=0)
    assert acl.allows("10.1.1.1")
    assert not acl.allows("9.1.1.1")
    assert len(acl._cache) == 0


cidr4 = st.builds(
    lambda addr, plen: f"{ipaddress.IPv4Address(addr)}/{plen}",
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
cidr6 = st.builds(
    lambda addr, plen: f"{ipaddress.IPv6Address(addr)}/{plen}",
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)
address = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
)


def _reference(cidrs: list[str], ip: str) -> bool:
    """Linear scan with the stdlib, mapped addresses and networks unwrapped to IPv4."""
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for cidr in cidrs:
        net: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.ip_network(
            cidr, strict=False
        )
        mapped_block = ipaddress.IPv6Network("::ffff:0:0/96")
        if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(mapped_block):
            base = net.network_address.ipv4_mapped
            assert base is not None
            net = ipaddress.ip_network(f"{base}/{net.prefixlen - 96}")
        if addr.version == net.version and addr in net:
            return True
    return False


@given(st.lists(st.one_of(cidr4, cidr6), min_size=1, max_size=12), st.lists(address, max_size=20))
def test_matches_linear_reference(cidrs: list[str], ips: list[str]) -> None:
    acl = NetworkAcl(cidrs)
    for ip in ips:
        assert acl.allows(ip) is _reference(cidrs, ip)


@given(st.lists(cidr4, min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_every_network_address_inside_is_allowed(cidrs: list[str], offset: int) -> None:
    acl = NetworkAcl(cidrs)
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        inside = net.network_address + (offset % net.num_addresses)
        assert acl.allows(str(inside))
        assert acl.allows(f"::ffff:{inside}")
