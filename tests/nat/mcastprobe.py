"""A multicast listener the LAN tests run inside the lab's namespaces.

    listen --group G --port P --iface ADDR [--seconds S] [--max N]

joins group G on the interface with address ADDR, binds port P and prints one
JSON line per datagram, flushed: ``{"from": "ip:port", "dst": ip, "ttl": n,
"data": hex}`` (``dst`` is the datagram's IP destination, the group or our own
address; ``ttl`` its IP TTL as received). It prints ``{"ready": true}`` once
listening, and exits after N datagrams (at most 1,000), after S seconds, or
on a unicast datagram reading ``stop``, printing ``{"done": reason}``.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

MAX_DATAGRAMS = 1000
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_TTL = getattr(socket, "IP_TTL", 2)


def _emit(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def listen(args: argparse.Namespace) -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    s.bind(("0.0.0.0", args.port))
    mreq = socket.inet_aton(args.group) + socket.inet_aton(args.iface)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    _emit(ready=True)
    deadline = time.monotonic() + args.seconds
    for _ in range(min(args.max, MAX_DATAGRAMS)):
        left = deadline - time.monotonic()
        if left <= 0:
            return "seconds"
        s.settimeout(left)
        try:
            data, anc, _flags, src = s.recvmsg(2048, 256)
        except TimeoutError:
            return "seconds"
        dst, ttl = None, None
        for level, kind, body in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                dst = socket.inet_ntoa(body[8:12])
            elif level == socket.IPPROTO_IP and kind == IP_TTL:
                ttl = struct.unpack("i", body[:4])[0] if len(body) >= 4 else body[0]
        _emit(**{"from": f"{src[0]}:{src[1]}", "dst": dst, "ttl": ttl, "data": data.hex()})
        if data == b"stop" and dst != args.group:
            return "stop"
    return "max"


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("listen")
    c.add_argument("--group", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--iface", required=True)
    c.add_argument("--seconds", type=float, default=30.0)
    c.add_argument("--max", type=int, default=100)
    args = parser.parse_args()
    _emit(done=listen(args))


if __name__ == "__main__":
    main()
