"""IP-diversity groups for the routing table (spec/dht.md §7.1).

Addresses are cheap in blocks: whoever holds one /24 (or one IPv6 /48) can
answer under 256 (or 2**80) addresses. The routing table therefore counts its
contacts per address *group* and takes at most a few from each. Every contact
has two groups: a narrow one, limited per bucket, and a wide one, limited
table-wide.

| address | bucket group | table group |
|---|---|---|
| public IPv4 | /24 | /16 |
| public IPv6 | /48 (a site) | /32 (an ISP's allocation) |
| 127.0.0.1 and ::1 | none (one host: only its ports differ) | none |
| the rest of 127.0.0.0/8 | /24 | /16 (tests emulate networks there) |
| private, shared, link-local (10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16, fc00::/7, fe80::/10) | none | none |

Private and link-local addresses are not limited: a contact can only have
one if it is on a network we are on ourselves (replies to it could not reach
it from anywhere else), so they are the operator's or the LAN's own nodes,
not a remote block; and simulated and home networks often put every node on
one such address, told apart by port.

IPv4-mapped IPv6 addresses count as their IPv4 address. A host string that is
not an IP literal gets no group (contacts are kept as IP literals, so only a
caller's mistake gets there).
"""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["Groups", "address_groups"]

#: (bucket group, table group); None means "not limited".
Groups = tuple[str | None, str | None]

_V4_PRIVATE = tuple(
    ipaddress.IPv4Network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
)
_V6_PRIVATE = tuple(ipaddress.IPv6Network(n) for n in ("fc00::/7", "fe80::/10"))
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})


def _prefix(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, bits: int) -> str:
    net = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
    return str(net)


@functools.lru_cache(maxsize=8192)
def address_groups(host: str) -> Groups:
    """The (bucket group, table group) of ``host`` (see the module docstring).

    Groups are strings such as ``"198.51.100.0/24"``; None means no limit.
    Never raises. Results are cached (the last 8,192 hosts).
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (None, None)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if str(ip) in _LOOPBACK_HOSTS:
        return (None, None)
    if isinstance(ip, ipaddress.IPv4Address):
        if any(ip in n for n in _V4_PRIVATE):
            return (None, None)
        return (_prefix(ip, 24), _prefix(ip, 16))
    if any(ip in n for n in _V6_PRIVATE):
        return (None, None)
    return (_prefix(ip, 48), _prefix(ip, 32))
