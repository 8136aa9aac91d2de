"""A small internet in Linux network namespaces, with home routers doing NAT.

::

    pub1 198.51.100.18 ─┐                 ┌─ h1r (NAT) ── h1 192.0.2.18
    pub2 203.0.113.18 ───┤ inet (router) ─┤─ h2r (NAT) ── h2 192.0.2.34
    pub3 198.51.100.34 ─┘                 └─ h4c (carrier NAT) ── 100.64.4.0/24 ── h4r (NAT) ── h4

``inet`` routes between the public hosts and the homes' WAN links
(203.0.113.(64+4k)/30); it has no route to any home LAN (192.0.2.(16k)/28)
or to the carrier network (100.64.k.0/24), and nothing here is linked to the
root namespace, so no packet can leave the testbed. Only the documentation
ranges and 100.64.0.0/10 are used.

NAT kinds (nftables in the home router's namespace):

* ``port_restricted``: masquerade (a mapping per local ip:port, filtered per
  remote ip:port: Linux conntrack's behaviour);
* ``symmetric``: masquerade fully-random (a new public port per destination);
* ``full_cone``: every port of the WAN address forwarded to the host (a static
  mapping) and its traffic sent from the WAN address, ports kept;
* ``cgnat``: a carrier's masquerade in front of a home's masquerade, with
  100.64.k.0/24 between them;
* ``upnp``: port-restricted (masquerade) with a real gateway daemon,
  miniupnpd, answering NAT-PMP and PCP on the LAN. miniupnpd refuses to map
  on a reserved WAN address (all of the testbed's are), unless a STUN server
  tells it the address is public: ``udpprobe.py stun`` on the internet router
  does. Not in ``KINDS`` (it needs the miniupnpd package): ask for it with
  ``Lab(kinds=("upnp", ...))``;
* ``igd``: the same, but miniupnpd answers UPnP-IGD only (SSDP and SOAP,
  no NAT-PMP or PCP), as many home routers do.

Every NAT router (each home's but the full cone's, and the carrier's) drops
an unsolicited SYN that arrives on its WAN side, without answering, as RFC
5382 (REQ-4) asks of a NAT so that TCP simultaneous open can work. Linux's
masquerade alone answers such a SYN with a reset, which closes the sender's
fresh mapping too: at the testbed's sub-millisecond round trips a punch then
succeeds only when two SYNs happen to cross, in about a third to a half of its
3 s windows (measured; spec/sync.md §12.4).

Every namespace's name starts with ``p2pnat-<pid>-<random>-``; :class:`Lab`
removes them all on exit (and at interpreter exit, should the ``with`` block
never finish), and :func:`sweep_stale` removes those of dead processes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXTRA_KINDS",
    "KINDS",
    "MINIUPNPD",
    "PREFIX",
    "Home",
    "Lab",
    "sweep_stale",
    "unavailable_reason",
]

PREFIX = "p2pnat-"
KINDS = ("port_restricted", "symmetric", "full_cone", "cgnat")
#: Kinds a Lab can build besides KINDS.
EXTRA_KINDS = ("upnp", "igd")
MINIUPNPD = "/usr/sbin/miniupnpd"
STUN_PORT = 3478
PROBE = str(Path(__file__).with_name("udpprobe.py"))
#: The public hosts: (name, address, gateway, prefix length).
PUBLIC = (
    ("pub1", "198.51.100.18", "198.51.100.17", 28),
    ("pub2", "203.0.113.18", "203.0.113.17", 28),
    ("pub3", "198.51.100.34", "198.51.100.33", 28),
)
_STALE = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=check, timeout=30)


def unavailable_reason() -> str | None:
    """Why the testbed cannot run here, or None when it can."""
    if sys.platform != "linux":
        return "the NAT testbed needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the NAT testbed needs root (ip netns, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"the NAT testbed needs the {tool!r} command (iproute2, nftables)"
    name = f"{PREFIX}{os.getpid()}-check"
    try:
        made = _ip("netns", "add", name, check=False)
        if made.returncode != 0:
            return f"cannot create a network namespace: {made.stderr.strip()}"
        nft = subprocess.run(
            ["ip", "netns", "exec", name, "nft", "-f", "-"],
            input=_nat_rules("", ""),
            capture_output=True,
            text=True,
            timeout=30,
        )
        if nft.returncode != 0:
            return f"nftables NAT does not work in a namespace: {nft.stderr.strip()}"
    finally:
        _ip("netns", "del", name, check=False)
    return None


#: RFC 5382 REQ-4: a NAT does not answer an unsolicited inbound SYN (it drops
#: it), so that the other end of a simultaneous open can still get through.
FIREWALL_RULES = """table ip p2pfw {
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "wan" tcp flags & (syn | ack) == syn drop
  }
}
"""


def _nat_rules(post: str, pre: str) -> str:
    """An nftables ``ip nat`` table with one postrouting and one prerouting rule (or none)."""
    return (
        "table ip nat {\n"
        "  chain post {\n    type nat hook postrouting priority 100;\n"
        f"    {post}\n  }}\n"
        "  chain pre {\n    type nat hook prerouting priority -100;\n"
        f"    {pre}\n  }}\n"
        "}\n"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _delete(ns: str) -> None:
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", ns, check=False)


def sweep_stale() -> list[str]:
    """Remove testbed namespaces left by processes that are gone; returns them."""
    gone = []
    for ns in _namespaces():
        m = _STALE.match(ns)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _delete(ns)
            gone.append(ns)
    return gone


@dataclass(frozen=True, slots=True)
class Home:
    """A home: a host behind a router of one NAT kind."""

    kind: str
    host_ns: str
    host_ip: str
    router_ns: str
    #: The address the internet sees this home's traffic come from.
    public_ip: str
    #: The carrier's namespace and its inner address (cgnat only).
    carrier_ns: str | None = None
    carrier_inner_ip: str | None = None


class Lab:
    """The testbed; use as a context manager. ``public[name]`` is (ns, ip).

    Args:
        kinds: the NAT kind of each home, in order (default: one of each).
            ``homes`` is keyed by kind; a kind's second home is ``KIND_2``,
            its third ``KIND_3`` and so on.
    """

    def __init__(self, kinds: tuple[str, ...] = KINDS) -> None:
        unknown = set(kinds) - set(KINDS) - set(EXTRA_KINDS)
        if unknown or not 0 < len(kinds) <= 15:
            raise ValueError(f"kinds must be 1..15 of {KINDS + EXTRA_KINDS}, not {kinds}")
        self.kinds = kinds
        self.tag = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}-"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[str]] = []
        self.public: dict[str, tuple[str, str]] = {}
        self.homes: dict[str, Home] = {}
        self._closed = False
        #: Where the gateway daemons' configuration and logs go (upnp homes).
        self.workdir: Path | None = None

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> Lab:
        sweep_stale()
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process started here and delete every namespace (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for p in self.processes:
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        for ns in reversed(self.namespaces):
            _delete(ns)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.close)

    def leftovers(self) -> list[str]:
        """Namespaces of this lab that still exist (empty after :meth:`close`)."""
        return [ns for ns in _namespaces() if ns.startswith(self.tag)]

    # -- running things ----------------------------------------------------------

    def exec_argv(self, ns: str, *argv: str) -> list[str]:
        """The argv that runs ``argv`` inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns, *argv]

    def run(self, ns: str, *argv: str, timeout: float = 30) -> str:
        """Run a command in ``ns``; returns its stdout. Raises on failure."""
        done = subprocess.run(
            self.exec_argv(ns, *argv), capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"in {ns}: {' '.join(argv)}: {done.stderr.strip()}")
        return done.stdout

    def popen(self, ns: str, *argv: str) -> subprocess.Popen[str]:
        """Start a command in ``ns`` (killed by :meth:`close`), stdout piped."""
        p = subprocess.Popen(
            self.exec_argv(ns, *argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(p)
        return p

    def probe_argv(self, *args: str) -> list[str]:
        """``python udpprobe.py ARGS`` with this interpreter."""
        return [sys.executable, PROBE, *args]

    # -- building ----------------------------------------------------------------

    def _ns(self, role: str) -> str:
        name = self.tag + role
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def _link(self, a: str, a_if: str, a_ip: str, b: str, b_if: str, b_ip: str) -> None:
        """A veth pair between namespaces ``a`` and ``b``, addressed and up."""
        _ip("-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b)
        for ns, ifname, addr in ((a, a_if, a_ip), (b, b_if, b_ip)):
            _ip("-n", ns, "addr", "add", addr, "dev", ifname)
            _ip("-n", ns, "link", "set", ifname, "up")

    def _forwarding(self, ns: str) -> None:
        # A router; its ICMP errors are what the tests observe, so none is rate-limited.
        self.run(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0")

    def _nat(self, ns: str, rules: str) -> None:
        done = subprocess.run(
            self.exec_argv(ns, "nft", "-f", "-"),
            input=rules,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft in {ns}: {done.stderr.strip()}")

    def _build(self) -> None:
        inet = self._ns("inet")
        self._forwarding(inet)
        for i, (name, addr, gw, plen) in enumerate(PUBLIC):
            ns = self._ns(name)
            self._link(inet, f"p{i}", f"{gw}/{plen}", ns, "eth0", f"{addr}/{plen}")
            _ip("-n", ns, "route", "add", "default", "via", gw)
            self.public[name] = (ns, addr)
        for k, kind in enumerate(self.kinds, start=1):
            n = self.kinds[:k].count(kind)
            self.homes[kind if n == 1 else f"{kind}_{n}"] = self._home(inet, k, kind)

    def _home(self, inet: str, k: int, kind: str) -> Home:
        wan_inet = f"203.0.113.{64 + 4 * k + 1}"
        wan = f"203.0.113.{64 + 4 * k + 2}"
        lan_gw, host_ip = f"192.0.2.{16 * k + 1}", f"192.0.2.{16 * k + 2}"
        router = self._ns(f"h{k}r")
        host = self._ns(f"h{k}")
        carrier = inner = None
        if kind == "cgnat":
            carrier = self._ns(f"h{k}c")
            inner = f"100.64.{k}.1"
            self._link(inet, f"h{k}", f"{wan_inet}/30", carrier, "wan", f"{wan}/30")
            _ip("-n", carrier, "route", "add", "default", "via", wan_inet)
            self._forwarding(carrier)
            self._nat(carrier, _nat_rules('oifname "wan" masquerade', ""))
            self._nat(carrier, FIREWALL_RULES)
            self._link(carrier, "lan", f"{inner}/24", router, "wan", f"100.64.{k}.2/24")
            _ip("-n", router, "route", "add", "default", "via", inner)
        else:
            self._link(inet, f"h{k}", f"{wan_inet}/30", router, "wan", f"{wan}/30")
            _ip("-n", router, "route", "add", "default", "via", wan_inet)
        self._link(router, "lan", f"{lan_gw}/28", host, "eth0", f"{host_ip}/28")
        _ip("-n", host, "route", "add", "default", "via", lan_gw)
        self._forwarding(router)
        if kind in ("upnp", "igd"):
            self._upnp(inet, router, wan_inet, lan_gw, f"192.0.2.{16 * k}/28", igd=kind == "igd")
            self._nat(router, FIREWALL_RULES)
            return Home(kind, host, host_ip, router, wan)
        if kind == "symmetric":
            post = 'oifname "wan" masquerade fully-random'
        elif kind == "full_cone":
            post = f'oifname "wan" ip saddr {host_ip} snat to {wan}'
        else:
            post = 'oifname "wan" masquerade'
        pre = f'iifname "wan" dnat to {host_ip}' if kind == "full_cone" else ""
        self._nat(router, _nat_rules(post, pre))
        if kind != "full_cone":
            self._nat(router, FIREWALL_RULES)
        return Home(kind, host, host_ip, router, wan, carrier, inner)

    # -- a home router with a gateway daemon ---------------------------------------

    def _upnp(
        self, inet: str, router: str, stun_ip: str, lan_gw: str, lan: str, *, igd: bool
    ) -> None:
        """Masquerade plus miniupnpd in ``router``: NAT-PMP and PCP, or with
        ``igd`` UPnP-IGD alone.

        miniupnpd adds its forwards to the chains named in its configuration;
        they are made here, in one ``inet`` table, with the home's masquerade.
        """
        if not os.access(MINIUPNPD, os.X_OK):
            raise RuntimeError(
                f"the upnp home needs {MINIUPNPD} (apt-get install miniupnpd-nftables)"
            )
        self._nat(router, _UPNP_RULES)
        stun = self.popen(
            inet, *self.probe_argv("stun", "--bind", f"{stun_ip}:{STUN_PORT}", "--seconds", "3600")
        )
        assert stun.stdout is not None
        if "ready" not in stun.stdout.readline():
            raise RuntimeError(f"the STUN server did not start: {stun.stderr}")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=self.tag))
        conf = self.workdir / f"{router}.conf"
        conf.write_text(_miniupnpd_conf(stun_ip, lan, igd=igd), encoding="ascii")
        log = self.workdir / f"{router}.log"
        with log.open("wb") as out:
            p = subprocess.Popen(
                self.exec_argv(
                    router,
                    MINIUPNPD,
                    "-d",
                    "-f",
                    str(conf),
                    "-P",
                    str(self.workdir / f"{router}.pid"),
                ),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                text=True,
            )
        self.processes.append(p)
        deadline = time.monotonic() + 20
        ready = "HTTP listening on port" if igd else "Listening for NAT-PMP/PCP traffic"
        while ready not in log.read_text(errors="replace"):
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"miniupnpd did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        if "Port forwarding is now enabled" not in log.read_text(errors="replace"):
            raise RuntimeError(f"miniupnpd will not forward:\n{log.read_text(errors='replace')}")

    def mappings(self, home: Home) -> str:
        """The forwards miniupnpd holds in ``home``'s router (nft rules, one a line)."""
        return self.run(
            home.router_ns, "nft", "list", "chain", "inet", "p2pupnp", "prerouting_upnp"
        )


#: The upnp home router's nftables: the home's masquerade and miniupnpd's chains.
_UPNP_RULES = """table inet p2pupnp {
  chain forward {
    type filter hook forward priority 0; policy accept;
    jump forward_upnp
  }
  chain forward_upnp {
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_upnp
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_upnp
    oifname "wan" masquerade
  }
  chain prerouting_upnp {
  }
  chain postrouting_upnp {
  }
}
"""


def _miniupnpd_conf(stun_ip: str, lan: str, *, igd: bool) -> str:
    """miniupnpd's configuration for ``lan``: NAT-PMP and PCP, or (``igd``)
    UPnP-IGD alone, its HTTP server on port 5000."""
    return (
        "ext_ifname=wan\n"
        "listening_ip=lan\n"
        f"enable_natpmp={'no' if igd else 'yes'}\n"
        f"enable_upnp={'yes' if igd else 'no'}\n"
        "http_port=5000\n"
        "secure_mode=yes\n"
        "ext_perform_stun=yes\n"
        f"ext_stun_host={stun_ip}\n"
        f"ext_stun_port={STUN_PORT}\n"
        "upnp_table_name=p2pupnp\n"
        "upnp_nat_table_name=p2pupnp\n"
        "upnp_forward_chain=forward_upnp\n"
        "upnp_nat_chain=prerouting_upnp\n"
        "upnp_nat_postrouting_chain=postrouting_upnp\n"
        "min_lifetime=120\n"
        "max_lifetime=86400\n"
        "uuid=3e1f1f00-0000-4000-8000-000000000016\n"
        f"allow 1024-65535 {lan} 1024-65535\n"
        "deny 0-65535 0.0.0.0/0 0-65535\n"
    )
