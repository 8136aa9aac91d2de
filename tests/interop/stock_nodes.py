"""Run stock ``kademlia.network.Server`` nodes on asyncio, driven over stdin/stdout.

Used by test_kademlia_interop.py as a subprocess (the package is asyncio-only).
Protocol: one JSON command per line on stdin, one JSON reply per line on stdout.

    {"op": "start", "n": 10}                     -> {"ports": [...]}
    {"op": "bootstrap", "i": 0, "addrs": [[h, p]]} -> {"neighbors": n}
    {"op": "refresh"}                            -> {"neighbors": [n, ...]}
    {"op": "set", "i": 0, "key": k, "value": v}  -> {"ok": bool}
    {"op": "get", "i": 0, "key": k}              -> {"value": v or null}
    {"op": "holders", "key": k}                  -> {"count": nodes holding it}
    {"op": "hold", "i": 0, "key": k, "value": v} -> {"ok": true}   (straight into
        node i's storage, as a ``store`` from a non-stock node would put it: no size limit)
    {"op": "quit"}                               -> (exits)
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from kademlia.network import Server
from kademlia.utils import digest


async def main() -> None:
    logging.disable(logging.CRITICAL)
    loop = asyncio.get_running_loop()
    servers: list[Server] = []

    def reply(obj: object) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "start":
            for _ in range(cmd["n"]):
                s = Server()
                await s.listen(0, interface="127.0.0.1")
                servers.append(s)
            reply({"ports": [s.transport.get_extra_info("sockname")[1] for s in servers]})
        elif op == "bootstrap":
            s = servers[cmd["i"]]
            await s.bootstrap([tuple(a) for a in cmd["addrs"]])
            reply({"neighbors": len(s.bootstrappable_neighbors())})
        elif op == "refresh":
            await asyncio.gather(*(s.bootstrap(s.bootstrappable_neighbors()) for s in servers))
            reply({"neighbors": [len(s.bootstrappable_neighbors()) for s in servers]})
        elif op == "set":
            ok = await servers[cmd["i"]].set(cmd["key"], cmd["value"])
            reply({"ok": bool(ok)})
        elif op == "get":
            reply({"value": await servers[cmd["i"]].get(cmd["key"])})
        elif op == "holders":
            dkey = digest(cmd["key"])
            reply({"count": sum(1 for s in servers if s.storage.get(dkey) is not None)})
        elif op == "hold":
            servers[cmd["i"]].storage[digest(cmd["key"])] = cmd["value"]
            reply({"ok": True})
        elif op == "quit":
            break
    for s in servers:
        s.stop()


if __name__ == "__main__":
    asyncio.run(main())
