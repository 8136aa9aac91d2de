"""The public names are deliberate: adding or removing one must show up here."""

from __future__ import annotations

import p2psocial
import p2psocial.protocol

# fmt: off
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
    "embedded_config",
    "identity_from_text",
    "identity_to_text",
    "open_node",
    "run_embedded",
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
    "invite",
    "accept_invite",
    "sync_progress",
    "status",
    "statistics",
    "watch",
    "policy",
    "set_policy",
    "explain",
    "set_petname",
    "petnames",
    "remove_petname",
    "notifications",
    "mark_notifications_read",
    "suggest",
    "search_people",
}
# fmt: on


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


# fmt: off
PROTOCOL_PUBLIC = {
    "ChainError", "DecodeError", "ENTRY_TAG", "Entry", "ForkError", "ForkProof",
    "InvalidSignature", "KINDS", "Limits", "LocalUsageError", "MAX_PAYLOAD_SIZE",
    "MAX_TEXT_CHARS", "P2PSocialError", "ProtocolError", "SchemaError", "SigningKey",
    "check_link", "check_timestamp", "create_entry", "decode_entry_untrusted",
    "decode_fork_proof_untrusted", "decode_payload_untrusted", "decode_untrusted",
    "detect_fork", "encode", "encode_payload", "identity_from_text", "identity_to_text",
    "node_id_from_public_key", "verify_run", "verify_strict",
}
SUBPACKAGES = {
    "p2psocial.protocol.dht": {
        "AddOutcome", "AddResult", "Contact", "DisjointLookup", "Finished", "HEAD", "HELLO_TAG", "Lookup",
        "MAX_DATAGRAM", "PROFILE", "Query", "RecordRejected", "RecordStore", "Request",
        "Response", "RoutingTable", "SwarmStore", "TokenIssuer", "ValueStore", "Waiting",
        "decode_datagram_untrusted", "distance", "encode_profile_record", "encode_request",
        "encode_response", "head_key", "profile_key", "swarm_key", "validate_record",
    },
    "p2psocial.protocol.sync": {
        "Action", "Ahead", "Close", "Duplicate", "Head", "Ingest", "PeekDone", "Send", "Serve", "StoreForkProof",
        "SyncLimits", "SyncSession",
    },
    "p2psocial.api": {
        "API_NAME", "API_VERSION", "MAX_FRAME", "METHODS", "PAGE_LIMIT_MAX", "READY_PREFIX", "FrameBuffer",
        "ListOf", "ParamSpec", "check_params", "decode_frame_payload_untrusted",
        "encode_frame", "fork_note", "format_ready_line", "parse_ready_line",
    },
    "p2psocial.client": {
        "AsyncClient", "Client", "DaemonNotRunning", "DaemonProcess", "DaemonProcessError",
        "MAX_BIO_CHARS", "MAX_MENTIONS", "MAX_NAME_CHARS", "MAX_REASON_CHARS", "MAX_TAGS",
        "MAX_TAG_CHARS", "MAX_TEXT_CHARS", "PAGE_LIMIT_MAX", "cli_argv", "connect", "connect_async", "daemon_argv", "daemon_env",
        "socket_path", "spawn_daemon", "stop_daemons",
    },
    "p2psocial.cli": {"cli"},
    "p2psocial.node": {
        "APIServer", "Blocklists", "Node", "NodeConfig", "Policy", "PolicyGate",
        "WatchFilter", "create_keys", "daemon_lock", "load_keys", "open_node", "run_daemon",
    },
    "p2psocial.node.dht": {
        "DHTConfig", "DHTError", "DHTNode", "DatagramSocket", "open_udp_socket",
        "plain_key_digest",
    },
    "p2psocial.node.replication": {
        "FeedServer", "FramedStream", "Heads", "IngestPipeline", "Link", "LinkClosed",
        "LinkHandler", "LinkPool", "LinkSet", "PeerIdentity", "RecentCache",
        "ReplicationStore", "Replicator", "Senders", "SwarmDiscovery", "TCPFramedStream",
        "address_group", "handshake",
    },
    "p2psocial.node.relay": {
        "RelayAddress", "RelayClient", "RelayLimits", "RelayRefused", "RelayServer",
        "open_relayed",
    },
    "p2psocial.paths": {
        "API_SOCKET", "CONFIG_FILE", "DB_FILE", "IDENTITY_FILE", "IDENTITY_TEXT_FILE",
        "LOCK_FILE", "NODE_KEY_FILE", "resolve_data_dir", "socket_path",
    },
    "p2psocial.protocol.ratelimit": {"RateTable", "TokenBucket"},
    "p2psocial.protocol.senders": {"SenderChoice", "SenderPort"},
    "p2psocial.sim": {"GossipModel", "GossipSim", "LookupResult", "NetModel", "SimDHT", "SimNode", "sim_groups"},
    "p2psocial.storage": {
        "SCHEMA_VERSION", "AsyncStore", "EntryView", "Outcome", "Page", "PreparedBatch",
        "StorageError", "Store", "open_async_store", "open_store",
    },
    "p2psocial.tui": {"P2PSocialApp", "run"},
}
# fmt: on


def test_protocol_all_is_pinned() -> None:
    assert set(p2psocial.protocol.__all__) == PROTOCOL_PUBLIC
    for name in p2psocial.protocol.__all__:
        assert hasattr(p2psocial.protocol, name), name


def test_subpackage_all_is_pinned() -> None:
    import importlib

    for module_name, names in SUBPACKAGES.items():
        module = importlib.import_module(module_name)
        assert set(module.__all__) == names, module_name
        for name in names:
            assert hasattr(module, name), (module_name, name)


def test_every_package_declares_its_public_names() -> None:
    """Each package of p2psocial re-exports its public names with ``__all__``,
    and each of those is pinned above (or is the root / protocol package)."""
    import importlib
    from pathlib import Path

    root = Path(p2psocial.__file__).parent
    packages = {
        ".".join(("p2psocial", *init.parent.relative_to(root).parts))
        for init in root.rglob("__init__.py")
    }
    for name in packages:
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), name
    assert packages - {"p2psocial", "p2psocial.protocol"} <= set(SUBPACKAGES)
