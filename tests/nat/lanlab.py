"""A one-link lab for LAN discovery (spec/dht.md §12), in network namespaces.

::

    a 192.0.2.10 ─┐
    b 192.0.2.11 ─┤ br0 (namespace "sw")
    c 192.0.2.20 ─┤
    r 192.0.2.1  ─┘ r: a router ── 198.51.100.1 ── 198.51.100.2 far

``a`` and ``b`` run the daemons: one address on the link each and no route at
all beyond it (no default route, no bootstrap). ``c`` is a probe host on the
link with a route to ``far`` through ``r``, for the positive control that the
link's unicast traffic does reach ``far``. ``r`` forwards IPv4 (no multicast
routing). Names come from :class:`netlab.Lab` (``p2pnat-<pid>-<random>-``), so
runs at the same time never clash, and it cleans up the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import netlab

__all__ = ["MCAST_PROBE", "LanLab"]

MCAST_PROBE = str(Path(__file__).with_name("mcastprobe.py"))


class LanLab(netlab.Lab):
    """The lab above. ``hosts[role]`` is (namespace, address) for a, b, c, r and far."""

    def __init__(self) -> None:
        super().__init__(kinds=("full_cone",))  # not built: _build is replaced
        self.hosts: dict[str, tuple[str, str]] = {}

    def _build(self) -> None:
        sw = self._ns("sw")
        self.run(sw, "ip", "link", "add", "br0", "type", "bridge")
        self.run(sw, "ip", "link", "set", "br0", "up")
        for role, addr in (
            ("a", "192.0.2.10"),
            ("b", "192.0.2.11"),
            ("c", "192.0.2.20"),
            ("r", "192.0.2.1"),
        ):
            ns = self._ns(role)
            port = f"p-{role}"
            self.run(
                sw, "ip", "link", "add", port, "type", "veth", "peer", "name", "lan0", "netns", ns
            )
            self.run(sw, "ip", "link", "set", port, "master", "br0", "up")
            self.run(ns, "ip", "addr", "add", f"{addr}/24", "dev", "lan0")
            self.run(ns, "ip", "link", "set", "lan0", "up")
            self.hosts[role] = (ns, addr)
        r = self.hosts["r"][0]
        far = self._ns("far")
        self._link(r, "wan0", "198.51.100.1/24", far, "wan0", "198.51.100.2/24")
        self._forwarding(r)
        self.run(far, "ip", "route", "add", "192.0.2.0/24", "via", "198.51.100.1")
        self.run(self.hosts["c"][0], "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.1")
        self.hosts["far"] = (far, "198.51.100.2")

    def mcast_argv(self, *args: str) -> list[str]:
        """``python mcastprobe.py ARGS`` with this interpreter."""
        return [sys.executable, MCAST_PROBE, *args]
