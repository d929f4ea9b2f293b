"""Source address access lists for the request pipeline (ARCHITECTURE.md, "The request pipeline").

A :class:`NetworkAcl` is built once from the CIDR strings of the configuration and then asked,
for every request that reaches the authentication and source-ACL step, whether the source
address is inside one of its networks. IPv4 and IPv6 networks may be mixed. An IPv4-mapped
IPv6 address (``::ffff:192.0.2.1``, RFC 4291 §2.5.5.2, what a dual-stack socket reports for an
IPv4 peer) is judged as the IPv4 address it carries, and a network written in mapped form
(``::ffff:10.0.0.0/104``) is the IPv4 network it denotes, so both spellings of an address get
the same verdict. Consequently an IPv6 network shorter than /96 (``::/0``) covers IPv6 peers
only, never an IPv4 peer in mapped form.

Lookups cost one dictionary probe per distinct prefix length in the list (not one comparison per
network), and the verdicts for recently seen addresses are kept in a small LRU cache, so the
receive path pays a single dictionary hit for a source it has already judged.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["NetworkAcl"]

_IPV4_BITS = 32
_IPV6_BITS = 128
# ::ffff:0:0/96, the IPv4-mapped block (RFC 4291 §2.5.5.2).
_MAPPED_PREFIX = int(ipaddress.IPv6Address("::ffff:0.0.0.0"))
_MAPPED_PREFIXLEN = 96

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _as_ipv4_network(net: ipaddress.IPv6Network) -> ipaddress.IPv4Network | None:
    """The IPv4 network a ``::ffff:a.b.c.d/n`` network (n >= 96) denotes, else ``None``."""
    if net.prefixlen < _MAPPED_PREFIXLEN:
        return None
    if int(net.network_address) >> (_IPV6_BITS - _MAPPED_PREFIXLEN) != (
        _MAPPED_PREFIX >> (_IPV6_BITS - _MAPPED_PREFIXLEN)
    ):
        return None
    v4 = ipaddress.IPv4Address(int(net.network_address) & 0xFFFFFFFF)
    return ipaddress.IPv4Network((v4, net.prefixlen - _MAPPED_PREFIXLEN))


class _PrefixIndex:
    """Networks of one address family, grouped by prefix length.

    ``contains(n)`` shifts the address right by ``bits - prefixlen`` for each distinct prefix
    length and probes a set of network numbers, longest prefix first.
    """

    __slots__ = ("_bits", "_by_len")

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._by_len: list[tuple[int, frozenset[int]]] = []

    def build(self, networks: Iterable[tuple[int, int]]) -> None:
        groups: dict[int, set[int]] = {}
        for network_int, prefixlen in networks:
            groups.setdefault(prefixlen, set()).add(network_int >> (self._bits - prefixlen))
        self._by_len = [
            (self._bits - plen, frozenset(nums))
            for plen, nums in sorted(groups.items(), reverse=True)
        ]

    def contains(self, address: int) -> bool:
        return any((address >> shift) in numbers for shift, numbers in self._by_len)

    def __bool__(self) -> bool:
        return bool(self._by_len)


class NetworkAcl:
    """An allow list of IPv4/IPv6 networks.

    ``NetworkAcl([])`` allows every source (:meth:`allows`), but contains none
    (:meth:`contains`): the first reading suits "which sources may send requests", the second
    "which sources are trusted". Invalid CIDR strings raise :class:`ValueError` naming the entry,
    so the configuration loader can report it with its position. Host bits set in an entry
    (``10.0.0.1/8``) are tolerated and cleared.
    """

    __slots__ = ("_cache", "_cache_size", "_networks", "_v4", "_v6")

    def __init__(self, cidrs: Iterable[str], *, cache_size: int = 4096) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        if isinstance(cidrs, str):
            cidrs = [cidrs]  # a lone CIDR, not a sequence of one-character entries
        networks: list[Network] = []
        for entry in cidrs:
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ValueError(f"invalid network {entry!r}: {exc}") from None
        self._networks: tuple[Network, ...] = tuple(networks)
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for net in networks:
            if isinstance(net, ipaddress.IPv4Network):
                v4.append((int(net.network_address), net.prefixlen))
            else:
                as_v4 = _as_ipv4_network(net)
                if as_v4 is not None:
                    v4.append((int(as_v4.network_address), as_v4.prefixlen))
                else:
                    v6.append((int(net.network_address), net.prefixlen))
        self._v4 = _PrefixIndex(_IPV4_BITS)
        self._v4.build(v4)
        self._v6 = _PrefixIndex(_IPV6_BITS)
        self._v6.build(v6)
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._cache_size = cache_size

    @property
    def networks(self) -> tuple[Network, ...]:
        """The networks as configured (host bits cleared), in configuration order."""
        return self._networks

    def __len__(self) -> int:
        return len(self._networks)

    def __repr__(self) -> str:
        return f"NetworkAcl({[str(n) for n in self._networks]!r})"

    def allows(self, ip: str) -> bool:
        """Whether a request from ``ip`` passes: an empty list allows all, else :meth:`contains`."""
        if not self._networks:
            return True
        return self.contains(ip)

    def contains(self, ip: str) -> bool:
        """Whether ``ip`` lies inside one of the networks (never true for an empty list).

        ``ip`` is the textual address the transport reports; brackets around an IPv6 address and
        a zone index (``fe80::1%eth0``) are accepted. A string that is no address is outside
        every network (it never raises: this runs on the receive path).
        """
        cache = self._cache
        verdict = cache.get(ip)
        if verdict is not None:
            cache.move_to_end(ip)
            return verdict
        verdict = self._match(ip)
        if self._cache_size:
            cache[ip] = verdict
            if len(cache) > self._cache_size:
                cache.popitem(last=False)
        return verdict

    def _match(self, ip: str) -> bool:
        text = ip.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        text = text.partition("%")[0]
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv4Address):
            return self._v4.contains(int(address))
        mapped = address.ipv4_mapped
        if mapped is not None:
            return self._v4.contains(int(mapped))
        return self._v6.contains(int(address))
