"""Node configuration: config.toml and the paths of the data dir's files.

The data-dir layout and the rules for finding it are in :mod:`p2psocial.paths`.

config.toml has two tables, ``[node]`` (where the node listens and whom it
dials) and ``[policy]`` (:class:`Policy`). It is written with tomlkit into
the document already on disk, so the comments and layout a user gave it
survive every save (``p2psocial config set``, the daemon's own saves).
Settings are named ``KEY`` or ``TABLE.KEY`` (``port``, ``policy.hops``);
:func:`parse_setting` turns command-line words into a checked value with the
rules :meth:`NodeConfig.load` applies.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from ..errors import NodeError
from ..paths import (
    API_SOCKET,
    CONFIG_FILE,
    DB_FILE,
    IDENTITY_FILE,
    LOCK_FILE,
    NODE_KEY_FILE,
    resolve_data_dir,
)
from ..protocol.errors import DecodeError
from ..protocol.identity import identity_from_text

__all__ = [
    "NODE_KEYS",
    "POLICY_KEYS",
    "NodeConfig",
    "Policy",
    "parse_setting",
    "resolve_data_dir",
    "setting_name",
    "setting_names",
]

#: The ``[node]`` settings config.toml holds, in the order they are written.
NODE_KEYS = ("listen", "port", "dht_port", "bootstrap", "peers")

_MAX_INT = 2**63


@dataclass
class Policy:
    """What this node's owner lets it store, relay and show (DESIGN §9)."""

    #: Replicate followed feeds (1) or also the feeds they follow (2).
    hops: int = 1
    #: Largest payload accepted from others, in bytes (the protocol caps at 16 KiB).
    max_payload_bytes: int = 16 * 1024
    #: Per-author quota: entries per rolling day and payload bytes per day (0 = unlimited).
    quota_entries_per_day: int = 0
    quota_bytes_per_day: int = 0
    #: Identities (text form) whose payloads are never stored, relayed or shown.
    blocked: list[str] = field(default_factory=list)
    #: Identities stored and relayed but hidden from this owner's timelines.
    muted: list[str] = field(default_factory=list)
    #: Regular expressions; matching posts are hidden locally (display only).
    hide_patterns: list[str] = field(default_factory=list)
    #: Identities whose public block entries this node adopts as its own.
    blocklists: list[str] = field(default_factory=list)
    #: Keep replies and mentions from authors this node does not follow.
    accept_inbound: bool = True
    #: Relay links for nodes that cannot be dialled (spec/sync.md §11), within
    #: the limits below; a relay announces itself only while it is reachable.
    relay_service: bool = True
    #: Nodes holding a reservation here at once.
    relay_reservations: int = 16
    #: Relayed links at once (each up to relay_bytes_per_s each way).
    relay_max_links: int = 32
    relay_bytes_per_s: int = 64 * 1024
    #: A relayed link ends after this many bytes or seconds (its ends dial again).
    relay_link_bytes: int = 16 * 1024 * 1024
    relay_link_seconds: int = 600
    #: Announce this node on its links and meet the nodes announcing there,
    #: with no bootstrap address (spec/dht.md §12). Takes effect within a second.
    lan_discovery: bool = True
    #: Ask the home router (PCP or NAT-PMP) to forward the link and DHT ports
    #: while the node runs, and announce the mapped address (spec/portmap.md).
    port_mapping: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The settings as a map, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The ``[policy]`` settings, in declaration order.
POLICY_KEYS = tuple(f.name for f in fields(Policy))


def _check_node_value(key: str, value: Any, default: Any) -> None:
    if type(value) is not type(default):
        raise TypeError(f"[node] {key} must be {type(default).__name__}")
    if key in ("port", "dht_port") and not 0 <= value <= 65535:
        raise TypeError(f"[node] {key} must be 0..65535, not {value}")


def _check_policy_value(key: str, value: Any, default: Any) -> None:
    if type(value) is not type(default):
        raise TypeError(f"[policy] {key} must be {type(default).__name__}")
    if type(value) is int and not 0 <= value < _MAX_INT:
        raise TypeError(f"[policy] {key} must be 0 or more, not {value}")


@dataclass
class NodeConfig:
    """Everything needed to run a node. Unset ports mean "pick a free port"."""

    data_dir: Path
    listen: str = "0.0.0.0"
    port: int = 0
    dht_port: int = 0
    bootstrap: list[str] = field(default_factory=list)
    #: Explicit TCP peers to keep links with (host:port), besides DHT discovery.
    peers: list[str] = field(default_factory=list)
    api_socket: Path | None = None
    passphrase: bytes | None = None
    policy: Policy = field(default_factory=Policy)
    #: Run the local API server (the daemon does; embedded nodes may not need it).
    serve_api: bool = True
    #: The gateway port mapping asks: "" the default route's, "none" no
    #: mapping, or "HOST[:PORT]" (set per run, never saved; the default is
    #: ``P2PSOCIAL_PORTMAP_GATEWAY``'s, so a test environment can set "none"
    #: for every node it starts, embedded or not).
    portmap_gateway: str = field(
        default_factory=lambda: os.environ.get("P2PSOCIAL_PORTMAP_GATEWAY", "")
    )

    @property
    def identity_path(self) -> Path:
        return self.data_dir / IDENTITY_FILE

    @property
    def node_key_path(self) -> Path:
        return self.data_dir / NODE_KEY_FILE

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILE

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def lock_path(self) -> Path:
        return self.data_dir / LOCK_FILE

    @property
    def api_path(self) -> Path:
        return self.api_socket or (self.data_dir / API_SOCKET)

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str] | None = None) -> NodeConfig:
        """Read config.toml from the data dir (defaults when it is absent).

        Raises:
            NodeError: config.toml is not valid TOML or has a wrongly typed value.
        """
        d = resolve_data_dir(data_dir)
        cfg = cls(data_dir=d)
        path = cfg.config_path
        if not path.exists():
            return cfg
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise NodeError(f"cannot read {path}: {exc}", reason="bad_config") from None
        node = raw.get("node", {})
        try:
            for key in NODE_KEYS:
                if key in node:
                    _check_node_value(key, node[key], getattr(cfg, key))
                    setattr(cfg, key, node[key])
            pol = raw.get("policy", {})
            base = Policy()
            for key in POLICY_KEYS:
                if key in pol:
                    _check_policy_value(key, pol[key], getattr(base, key))
                    setattr(cfg.policy, key, pol[key])
        except TypeError as exc:
            raise NodeError(f"{path}: {exc}", reason="bad_config") from None
        return cfg

    def save(self) -> None:
        """Write config.toml (node settings and policy) atomically.

        The values go into the document on disk, so its comments, key order
        and any keys this version does not know are kept; a value that did not
        change is left exactly as written.
        """
        doc = self._document()
        node = _table(doc, "node")
        for key in NODE_KEYS:
            _put(node, key, getattr(self, key))
        policy = _table(doc, "policy")
        for key, value in self.policy.to_dict().items():
            _put(policy, key, value)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".toml.tmp")
        tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.config_path)

    def _document(self) -> TOMLDocument:
        try:
            return tomlkit.parse(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = tomlkit.document()
            doc.add(
                tomlkit.comment("p2psocial node settings; `p2psocial config --help` edits them.")
            )
            return doc
        except (OSError, tomlkit.exceptions.TOMLKitError) as exc:
            raise NodeError(f"cannot read {self.config_path}: {exc}", reason="bad_config") from None

    def get_setting(self, name: str) -> Any:
        """The value of the setting ``name`` (``KEY`` or ``TABLE.KEY``).

        Raises:
            NodeError: no such setting (reason ``bad_setting``).
        """
        table, key = _split_name(name)
        return getattr(self if table == "node" else self.policy, key)

    def set_setting(self, name: str, value: Any) -> None:
        """Set ``name`` to ``value`` in memory (call :meth:`save` to write it).

        Raises:
            NodeError: no such setting, or a value config.toml would refuse
                (reason ``bad_setting``).
        """
        table, key = _split_name(name)
        check = _check_node_value if table == "node" else _check_policy_value
        try:
            check(key, value, _default(table, key))
        except TypeError as exc:
            raise NodeError(str(exc), reason="bad_setting") from None
        setattr(self if table == "node" else self.policy, key, value)

    def pick_ports(self) -> None:
        """Choose a free UDP port for the DHT and a free TCP port for peer
        links on :attr:`listen`, for a new node to keep across restarts.

        Raises:
            OSError: no port can be bound on the listen address.
        """
        family = socket.AF_INET6 if ":" in self.listen else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((self.listen, 0))
            self.dht_port = int(udp.getsockname()[1])
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((self.listen, 0))
            self.port = int(tcp.getsockname()[1])


def _default(table: str, key: str) -> Any:
    return getattr(NodeConfig(data_dir=Path()) if table == "node" else Policy(), key)


def _table(doc: TOMLDocument, name: str) -> Table:
    table = doc.get(name)
    if not isinstance(table, Table):
        table = tomlkit.table()
        doc[name] = table
    return table


def _put(table: Table, key: str, value: Any) -> None:
    old = table.get(key)
    if old is not None and getattr(old, "unwrap", lambda: old)() == value:
        return
    table[key] = value


def setting_names() -> list[str]:
    """Every setting's full name (``node.port``, ``policy.hops``, ...)."""
    return [f"node.{k}" for k in NODE_KEYS] + [f"policy.{k}" for k in POLICY_KEYS]


def setting_name(name: str) -> str:
    """The full name (``TABLE.KEY``) of the setting ``name``.

    Raises:
        NodeError: no such setting (reason ``bad_setting``); the message lists them.
    """
    return ".".join(_split_name(name))


def _split_name(name: str) -> tuple[str, str]:
    table, _, key = name.rpartition(".")
    if table in ("", "node") and key in NODE_KEYS:
        return "node", key
    if table in ("", "policy") and key in POLICY_KEYS:
        return "policy", key
    raise NodeError(
        f"unknown setting {name!r}; known: {', '.join(setting_names())}", reason="bad_setting"
    )


def _bad(message: str) -> NodeError:
    return NodeError(message, reason="bad_setting")


def _parse_address(name: str, text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _bad(f"{name}: {text!r} is not HOST:PORT (port 1..65535)")
    return text


def _parse_one(name: str, key: str, default: Any, text: str) -> Any:
    if isinstance(default, bool):
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if text.lower() not in words:
            raise _bad(f"{name} takes true or false, not {text!r}")
        return words[text.lower()]
    if isinstance(default, int):
        low, high = (0, 65535) if key in ("port", "dht_port") else (0, _MAX_INT - 1)
        if key == "hops":
            low, high = 1, 2
        if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
            span = f"{low}..{high}" if high < _MAX_INT - 1 else f"{low} or more"
            raise _bad(f"{name} takes a whole number {span}, not {text!r}")
        return int(text)
    return text


def _parse_item(name: str, key: str, text: str) -> str:
    if key in ("bootstrap", "peers"):
        return _parse_address(name, text)
    if key == "hide_patterns":
        try:
            re.compile(text)
        except re.error as exc:
            raise _bad(f"{name}: {text!r} is not a valid regular expression: {exc}") from None
    if key in ("blocked", "muted", "blocklists"):
        try:
            identity_from_text(text)
        except DecodeError:
            raise _bad(f"{name}: {text!r} is not an identity (p2ps1...)") from None
    return text


def parse_setting(name: str, words: Sequence[str]) -> tuple[str, Any]:
    """Turn a setting's name and command-line words into ``(full name, value)``.

    A list setting takes any number of words (none clears it); every other
    setting takes exactly one: ``true``/``false`` for a flag, a whole number
    in the setting's range, or text.

    Raises:
        NodeError: an unknown name or a value out of range; the message names
            the setting and what it takes (reason ``bad_setting``).
    """
    table, key = _split_name(name)
    full = f"{table}.{key}"
    default = _default(table, key)
    if isinstance(default, list):
        return full, list(dict.fromkeys(_parse_item(full, key, w) for w in words))
    if len(words) != 1:
        raise _bad(f"{full} takes one value, not {len(words)}")
    return full, _parse_one(full, key, default, words[0])
