"""The local API's method table: names, parameters and their types.

One table serves the server (to validate requests before calling the Node),
the clients (to build their mirror methods) and spec/client-api.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["METHODS", "PAGE_LIMIT_MAX", "ListOf", "ParamSpec", "check_params"]


class ListOf:
    """A list parameter whose every element has type ``elem``."""

    __slots__ = ("elem",)
    __name__ = "list"

    def __init__(self, elem: type) -> None:
        self.elem = elem

    def check(self, value: Any) -> bool:
        return type(value) is list and all(
            isinstance(v, self.elem) and not (self.elem is int and isinstance(v, bool))
            for v in value
        )

    def describe(self) -> str:
        return f"list of {self.elem.__name__}"


Type = type | ListOf
# name -> (type or types, required)
ParamSpec = dict[str, tuple[Type | tuple[Type, ...], bool]]

_STRS = ListOf(str)

#: The largest page a daemon serves: a paged method's ``limit`` is 1 to this.
PAGE_LIMIT_MAX = 500

_PAGE: ParamSpec = {"limit": (int, False), "before": (str, False)}

#: method -> parameters. Every method's result is a map; see spec/client-api.md.
METHODS: dict[str, ParamSpec] = {
    "status": {},
    "statistics": {},
    "peers": {},
    "connect": {"host": (str, True), "port": (int, True)},
    # first timeline in seconds (issue 19.2): how far each feed has caught up
    "sync_progress": {"identity": (str, False)},
    "post": {
        "text": (str, True),
        "reply_to": (str, False),
        "mentions": (_STRS, False),
        "tags": (_STRS, False),
        "lang": (str, False),
    },
    "react": {"target": (str, True), "emoji": (str, True), "force": (bool, False)},
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
    "feed": {"identity": (str, False), "kinds": (_STRS, False), **_PAGE},
    "thread": {"id": (str, True)},
    "mentions": dict(_PAGE),
    "search": {"query": (str, True), "author": (str, False), **_PAGE},
    "profile": {"identity": (str, False)},
    "following": {"identity": (str, False)},
    "followers": {"identity": (str, False)},
    "policy": {},
    "set_policy": {"key": (str, True), "value": ((str, int, bool, _STRS), True)},
    "explain": {"id": (str, True)},
    # Petnames: local, private names for identities (issue 19.3).
    "set_petname": {"name": (str, True), "identity": (str, True)},
    "petnames": {},
    "remove_petname": {"name": (str, True)},
    # Notifications and finding people (issue 19.5, 19.6).
    "notifications": {"unread": (bool, False), **_PAGE},
    "mark_notifications_read": {"upto": (str, False)},
    "suggest": {"limit": (int, False)},
    "search_people": {"query": (str, True), **_PAGE},
    # Invites: first contact (issue 19.1, spec/invite.md).
    "invite": {"expires_in": (int, False), "recommend": (_STRS, False)},
    "accept_invite": {"invite": (str, True)},
    # Streams: the result is {"subscription": id}, then {"id": id, "event": ...}
    # frames follow until the client sends "unwatch" or closes.
    "watch": {"kinds": (_STRS, False), "authors": (_STRS, False), "mentions_me": (bool, False)},
    "unwatch": {"subscription": (int, True)},
}


def _fits(typ: Type, value: Any) -> bool:
    if isinstance(typ, ListOf):
        return typ.check(value)
    # bool is an int subclass; an int parameter must not accept True. And
    # msgpack ints beyond 64 bits cannot arrive, but Python ints can be huge.
    if typ is int:
        return type(value) is int and -(2**63) <= value < 2**64
    return isinstance(value, typ)


def _describe(typ: Type | tuple[Type, ...]) -> str:
    types = typ if isinstance(typ, tuple) else (typ,)
    return " or ".join(t.describe() if isinstance(t, ListOf) else t.__name__ for t in types)


def check_params(method: str, params: Any) -> str | None:
    """Return a description of what is wrong with ``params``, or None if they fit.

    Checks the shape only: names, types, and the types of list elements.
    Values (an identity's text form, a known kind) are checked by the node.
    """
    spec = METHODS[method]
    if type(params) is not dict:
        return "params must be a map"
    for key in params:
        if key not in spec:
            return f"unknown parameter {key!r} for {method}"
    for key, (typ, required) in spec.items():
        if key not in params or params[key] is None:
            if required:
                return f"missing parameter {key!r} for {method}"
            continue
        types = typ if isinstance(typ, tuple) else (typ,)
        if not any(_fits(t, params[key]) for t in types):
            return f"parameter {key!r} must be {_describe(typ)}"
    return None
