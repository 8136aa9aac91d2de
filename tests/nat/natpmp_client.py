"""Run the node's port mapper alone inside a testbed namespace, with one
protocol, against the namespace's default gateway (tests/nat/test_nat_portmap.py).

    natpmp_client.py --protocol natpmp --port 40000 --hold 2

Prints one JSON line with the mapper's status once the port is mapped (or
the round failed), holds the mapping ``--hold`` seconds, stops (removing it)
and prints a line with its statistics. Bounded: the mapper's own limits, and
30 s in all.
"""

from __future__ import annotations

import argparse
import json
import sys

import trio

from p2psocial.node.portmap import PortMapper, parse_gateway
from p2psocial.protocol.portmap import PROTO_TCP


async def main(protocol: str, port: int, hold: float) -> None:
    gateway = parse_gateway("")
    if gateway is None:
        raise SystemExit("no default gateway")
    mapper = PortMapper(gateway, [(PROTO_TCP, port)], protocols=(protocol,))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(mapper.run)
            while mapper.state == "starting":  # noqa: ASYNC110
                await trio.sleep(0.02)
            print(json.dumps(mapper.status()), flush=True)
            await trio.sleep(hold)
            nursery.cancel_scope.cancel()
    print(json.dumps({"stopped": mapper.state, **mapper.statistics()}), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--protocol", choices=("pcp", "natpmp", "igd"), required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hold", type=float, default=2.0)
    a = p.parse_args()
    trio.run(main, a.protocol, a.port, a.hold)
    sys.exit(0)
