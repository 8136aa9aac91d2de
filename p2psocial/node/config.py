"""Node configuration: config.toml and the paths of the data dir's files.

The data-dir layout and the rules for finding it are in :mod:`p2psocial.paths`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

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

__all__ = [
    "NodeConfig",
    "Policy",
    "resolve_data_dir",
]


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

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
            for key in ("listen", "port", "dht_port", "bootstrap", "peers"):
                if key in node:
                    default = getattr(cfg, key)
                    value = node[key]
                    if type(value) is not type(default):
                        raise TypeError(f"[node] {key} must be {type(default).__name__}")
                    if key in ("port", "dht_port") and not 0 <= value <= 65535:
                        raise TypeError(f"[node] {key} must be 0..65535, not {value}")
                    setattr(cfg, key, value)
            pol = raw.get("policy", {})
            base = Policy()
            for f in fields(Policy):
                if f.name in pol:
                    value = pol[f.name]
                    if type(value) is not type(getattr(base, f.name)):
                        raise TypeError(
                            f"[policy] {f.name} must be {type(getattr(base, f.name)).__name__}"
                        )
                    if type(value) is int and not 0 <= value < 2**63:
                        raise TypeError(f"[policy] {f.name} must be 0 or more, not {value}")
                    setattr(cfg.policy, f.name, value)
        except TypeError as exc:
            raise NodeError(f"{path}: {exc}", reason="bad_config") from None
        return cfg

    def save(self) -> None:
        """Write config.toml (node settings and policy) atomically."""
        doc = {
            "node": {
                "listen": self.listen,
                "port": self.port,
                "dht_port": self.dht_port,
                "bootstrap": self.bootstrap,
                "peers": self.peers,
            },
            "policy": self.policy.to_dict(),
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".toml.tmp")
        tmp.write_text(tomli_w.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.config_path)
