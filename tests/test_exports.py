"""The public names are deliberate: adding or removing one must show up here."""

from __future__ import annotations

import p2psocial
import p2psocial.protocol

PUBLIC = {
    "APIError",
    "AsyncClient",
    "ChainError",
    "Client",
    "DaemonNotRunning",
    "DecodeError",
    "ForkError",
    "InvalidSignature",
    "LocalUsageError",
    "Node",
    "NodeConfig",
    "NodeError",
    "P2PSocialError",
    "Policy",
    "ProtocolError",
    "SchemaError",
    "SigningKey",
    "StorageError",
    "WatchFilter",
    "__version__",
    "connect",
    "connect_async",
    "identity_from_text",
    "identity_to_text",
    "open_node",
}

NODE_METHODS = {
    "post",
    "react",
    "repost",
    "delete",
    "set_profile",
    "follow",
    "unfollow",
    "block",
    "unblock",
    "mute",
    "unmute",
    "timeline",
    "feed",
    "thread",
    "mentions",
    "search",
    "profile",
    "following",
    "followers",
    "peers",
    "connect",
    "status",
    "statistics",
    "watch",
    "policy",
    "set_policy",
    "explain",
}


def test_top_level_all_is_pinned() -> None:
    assert set(p2psocial.__all__) == PUBLIC
    for name in p2psocial.__all__:
        assert hasattr(p2psocial, name), name


def test_public_api_has_docstrings() -> None:
    for name in p2psocial.__all__:
        obj = getattr(p2psocial, name)
        if callable(obj):
            assert obj.__doc__, name
    for method in NODE_METHODS:
        assert getattr(p2psocial.Node, method).__doc__, method


def test_node_methods_cover_the_api_table() -> None:
    from p2psocial.api.methods import METHODS

    assert set(METHODS) - {"unwatch"} == NODE_METHODS


def test_protocol_all_names_exist() -> None:
    for name in p2psocial.protocol.__all__:
        assert hasattr(p2psocial.protocol, name), name
