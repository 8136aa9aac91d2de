"""Memory of a daemon while thousands of silent TCP connections hit its peer port.

One real ``p2psocial daemon`` on 127.0.0.1. The bench opens ``--connections``
(default 5,000) TCP connections to its peer port, in bursts, from many
loopback source addresses (127.0.n.m, so the per-address caps are exercised
as a hostile host farm would), and never sends a byte on any of them. It
keeps each open until the daemon closes it or ``--hold`` seconds pass, then
closes the rest.

Figures: the daemon's RSS before (idle, the reference, same run), at its
peak while the connections are open (sampled every 50 ms), and after they
are gone; how many connections the daemon closed by itself during the hold
(refused at once, or timed out in the handshake) and how many it still held
at the end. Reads /proc, so Linux only.

Prints progress on stderr and one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from p2psocial.client import DaemonProcessError, cli_argv, daemon_env, spawn_daemon


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the daemon has closed (or reset) this connection."""
    try:
        data = sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument(
        "--sources", type=int, default=250, help="distinct 127.0.n.m source addresses"
    )
    parser.add_argument(
        "--hold", type=float, default=15.0, help="seconds to keep them open at most"
    )
    args = parser.parse_args()
    if not 1 <= args.connections <= 20000 or not 1 <= args.sources <= 60000:
        raise SystemExit("--connections must be 1..20000 and --sources 1..60000")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 256
    if soft < need:
        if hard < need:
            raise SystemExit(f"needs {need} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    with tempfile.TemporaryDirectory(prefix="p2ps-bench-silent-") as tmp:
        data_dir = Path(tmp) / "victim"
        log = Path(tmp) / "victim.log"
        subprocess.run(
            cli_argv("init", data_dir=data_dir), env=daemon_env(), check=True, capture_output=True
        )
        try:
            daemon = spawn_daemon(
                data_dir, log_level="warning", log=log, port=0, dht_port=0, ready_timeout=60
            )
        except DaemonProcessError as exc:
            raise SystemExit(f"{exc.message}:\n{log.read_text(errors='replace')}") from None
        with daemon:
            host, _, port_text = daemon.addr("peer").rpartition(":")
            port = int(port_text)
            pid = daemon.proc.pid
            time.sleep(1.0)
            idle = rss_kib(pid)
            print(f"idle RSS {idle / 1024:.1f} MiB; opening {args.connections}", file=sys.stderr)

            socks: list[socket.socket] = []
            failed_connects = 0
            peak = idle
            start = time.monotonic()
            for i in range(args.connections):
                src = f"127.0.{1 + (i % args.sources) // 250}.{1 + (i % args.sources) % 250}"
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.bind((src, 0))
                    s.settimeout(2.0)
                    s.connect((host, port))
                except OSError:
                    failed_connects += 1
                    s.close()
                    continue
                socks.append(s)
                if i % 100 == 99:
                    peak = max(peak, rss_kib(pid))
            opened = time.monotonic() - start
            print(f"opened {len(socks)} in {opened:.1f} s", file=sys.stderr)

            deadline = time.monotonic() + args.hold
            while time.monotonic() < deadline:
                peak = max(peak, rss_kib(pid))
                if all(closed_by_peer(s) for s in socks[:: max(1, len(socks) // 200)]):
                    break  # a sample of them is closed: the daemon has shed them
                time.sleep(0.05)
            closed = sum(closed_by_peer(s) for s in socks)
            held = len(socks) - closed
            for s in socks:
                s.close()
            time.sleep(2.0)
            after = rss_kib(pid)

    result = {
        "bench": "silent",
        "connections": args.connections,
        "sources": args.sources,
        "connected": len(socks),
        "connect_failed": failed_connects,
        "closed_by_daemon": closed,
        "still_held_at_end": held,
        "hold_s": args.hold,
        "idle_rss_mib": round(idle / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "after_rss_mib": round(after / 1024, 1),
        "reference": "idle_rss_mib, the same daemon before the connections",
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
