"""A tiny UDP tool the NAT tests run inside the testbed's namespaces.

Every command is bounded in datagrams and seconds, and prints one JSON line per
event (flushed), so the test can read them as they happen:

    serve --bind IP:PORT [--seconds S] [--max N]
        answer each datagram with {"seen": "ip:port"} (where it came from);
        prints {"from": "ip:port"} per datagram.
    probe --bind IP:PORT --to IP:PORT ... [--seconds S] [--expect N]
        send "probe" to each --to (up to 3 times until it answers), then answer
        whatever comes in as serve does; prints {"from", "data"} per datagram;
        exits after N datagrams or S seconds.
    knock --bind IP:PORT --to IP:PORT [--seconds S]
        send "knock" from a connected socket (up to 3 times) and print one line:
        {"result": "reply", "data": ...}, {"result": "refused"} (an ICMP error
        came back: nothing took the datagram), {"result": "unreachable"} (a
        router on the way has no route) or {"result": "timeout"}.
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any

MAX_DATAGRAMS = 1000
ATTEMPTS = 3


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _fmt(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


def _emit(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _socket(bind: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(_addr(bind))
    return s


def _answer_loop(s: socket.socket, deadline: float, limit: int, targets: set[str]) -> None:
    got = 0
    while got < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        s.settimeout(left)
        try:
            data, addr = s.recvfrom(2048)
        except TimeoutError:
            return
        except ConnectionRefusedError:
            continue
        got += 1
        _emit(**{"from": _fmt(addr), "data": data.decode(errors="replace")})
        if _fmt(addr) not in targets:  # answer strangers, never loop with a server
            s.sendto(json.dumps({"seen": _fmt(addr)}).encode(), addr)


def serve(args: argparse.Namespace) -> None:
    s = _socket(args.bind)
    _emit(ready=_fmt(s.getsockname()))
    _answer_loop(s, time.monotonic() + args.seconds, min(args.max, MAX_DATAGRAMS), set())


def probe(args: argparse.Namespace) -> None:
    s = _socket(args.bind)
    deadline = time.monotonic() + args.seconds
    targets = {t for t in args.to}
    answered: set[str] = set()
    for _ in range(ATTEMPTS):
        for t in sorted(targets - answered):
            s.sendto(b"probe", _addr(t))
        s.settimeout(0.3)
        try:
            while answered != targets:
                data, addr = s.recvfrom(2048)
                if _fmt(addr) in targets and _fmt(addr) not in answered:
                    answered.add(_fmt(addr))
                    _emit(**{"from": _fmt(addr), "data": data.decode(errors="replace")})
        except (TimeoutError, ConnectionRefusedError):
            pass
        if answered == targets:
            break
    _emit(probed=sorted(answered))
    limit = min(args.expect, MAX_DATAGRAMS)
    if limit > 0:
        _answer_loop(s, deadline, limit, targets)


def _datagrams(s: socket.socket, seconds: float, limit: int) -> Iterator[tuple[bytes, Any]]:
    """Yield (data, addr) for each datagram within ``seconds``, at most ``limit``."""
    deadline = time.monotonic() + seconds
    for _ in range(min(limit, MAX_DATAGRAMS)):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        s.settimeout(left)
        try:
            yield s.recvfrom(2048)
        except TimeoutError:
            return
        except ConnectionRefusedError:
            continue


def sink(args: argparse.Namespace) -> None:
    s = _socket(args.bind)
    _emit(ready=_fmt(s.getsockname()))
    for data, addr in _datagrams(s, args.seconds, args.max):
        _emit(**{"from": _fmt(addr), "hex": data.hex()})


def stun(args: argparse.Namespace) -> None:
    s = _socket(args.bind)
    _emit(ready=_fmt(s.getsockname()))
    for data, (ip, port) in _datagrams(s, args.seconds, args.max):
        if len(data) < 20 or data[:2] != b"\x00\x01":  # not a binding request
            continue
        mapped = struct.pack("!HHBBH4s", 0x0001, 8, 0, 1, port, socket.inet_aton(ip))
        s.sendto(struct.pack("!HH", 0x0101, len(mapped)) + data[4:20] + mapped, (ip, port))
        _emit(answered=f"{ip}:{port}")


def knock(args: argparse.Namespace) -> None:
    s = _socket(args.bind)
    # Report every ICMP error (not only "port unreachable") to this socket.
    s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)
    s.connect(_addr(args.to))
    per_try = args.seconds / ATTEMPTS
    for _ in range(ATTEMPTS):
        s.send(b"knock")
        s.settimeout(per_try)
        try:
            data = s.recv(2048)
        except TimeoutError:
            continue
        except ConnectionRefusedError:
            _emit(result="refused")
            return
        except OSError as exc:  # an ICMP "no route" from a router on the way
            _emit(result="unreachable", error=errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        _emit(result="reply", data=data.decode(errors="replace"))
        return
    _emit(result="timeout")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("serve", "probe", "knock", "sink", "stun"):
        c = sub.add_parser(name)
        c.add_argument("--bind", required=True)
        c.add_argument("--seconds", type=float, default=5.0)
        if name in ("serve", "sink", "stun"):
            c.add_argument("--max", type=int, default=100)
        if name == "probe":
            c.add_argument("--to", action="append", required=True)
            c.add_argument("--expect", type=int, default=0)
        if name == "knock":
            c.add_argument("--to", required=True)
    args = p.parse_args()
    {"serve": serve, "probe": probe, "knock": knock, "sink": sink, "stun": stun}[args.cmd](args)


if __name__ == "__main__":
    main()
