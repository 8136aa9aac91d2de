"""The local API's method table: names, parameters and their types.

One table serves the server (to validate requests before calling the Node),
the clients (to build their mirror methods) and spec/client-api.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["METHODS", "ParamSpec", "check_params"]

# name -> (type, required)
ParamSpec = dict[str, tuple[type | tuple[type, ...], bool]]

_PAGE: ParamSpec = {"limit": (int, False), "before": (str, False)}

#: method -> parameters. Every method's result is a map; see spec/client-api.md.
METHODS: dict[str, ParamSpec] = {
    "status": {},
    "statistics": {},
    "peers": {},
    "connect": {"host": (str, True), "port": (int, True)},
    "post": {
        "text": (str, True),
        "reply_to": (str, False),
        "mentions": (list, False),
        "tags": (list, False),
        "lang": (str, False),
    },
    "react": {"target": (str, True), "emoji": (str, True)},
    "repost": {"target": (str, True)},
    "delete": {"target": (str, True)},
    "set_profile": {"name": (str, False), "bio": (str, False)},
    "follow": {"identity": (str, True)},
    "unfollow": {"identity": (str, True)},
    "block": {"identity": (str, True), "public": (bool, False), "reason": (str, False)},
    "unblock": {"identity": (str, True)},
    "mute": {"identity": (str, True)},
    "unmute": {"identity": (str, True)},
    "timeline": dict(_PAGE),
    "feed": {"identity": (str, False), "kinds": (list, False), **_PAGE},
    "thread": {"id": (str, True)},
    "mentions": dict(_PAGE),
    "search": {"query": (str, True), "author": (str, False), **_PAGE},
    "profile": {"identity": (str, False)},
    "following": {"identity": (str, False)},
    "followers": {"identity": (str, False)},
    "policy": {},
    "set_policy": {"key": (str, True), "value": ((str, int, bool, list), True)},
    "explain": {"id": (str, True)},
    # Streams: the result is {"subscription": id}, then {"id": id, "event": ...}
    # frames follow until the client sends "unwatch" or closes.
    "watch": {"kinds": (list, False), "authors": (list, False), "mentions_me": (bool, False)},
    "unwatch": {"subscription": (int, True)},
}


def check_params(method: str, params: Any) -> str | None:
    """Return a description of what is wrong with ``params``, or None if they fit."""
    spec = METHODS[method]
    if not isinstance(params, dict):
        return "params must be a map"
    for key in params:
        if key not in spec:
            return f"unknown parameter {key!r} for {method}"
    for key, (typ, required) in spec.items():
        if key not in params or params[key] is None:
            if required:
                return f"missing parameter {key!r} for {method}"
            continue
        value = params[key]
        # bool is an int subclass; an int parameter must not accept True.
        if typ is int and isinstance(value, bool):
            return f"parameter {key!r} must be int"
        if not isinstance(value, typ):
            name = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            return f"parameter {key!r} must be {name}"
    return None
