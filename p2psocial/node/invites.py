"""Invites on the node: make one from where this node listens, accept one (spec/invite.md).

:class:`Invites` is the part of the :class:`~p2psocial.node.node.Node` behind
the ``invite`` and ``accept_invite`` methods. Making an invite needs the
addresses a stranger can reach this node at; :func:`choose_hosts` is that rule,
as a pure function of the listen address and the host's interface addresses
(spec/invite.md §5). Accepting one follows the identity, dials the inviting
node's peer link and seeds the DHT from its DHT addresses, concurrently and
each under a deadline; a failure to connect is reported in the result, not
raised: the follow stands, and the feed is found later through the DHT.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Any, Protocol

import trio

from ..errors import NodeError
from ..protocol.errors import LocalUsageError
from ..protocol.identity import SigningKey, identity_from_text, identity_to_text
from ..protocol.invite import DEFAULT_LIMITS, Invite, decode_invite_untrusted, make_invite
from .config import NodeConfig
from .dht import DHTNode
from .publish import now_ms
from .replication import Replicator

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_EXPIRES_IN",
    "InviteHost",
    "Invites",
    "choose_hosts",
    "interface_addresses",
]

log = logging.getLogger("p2psocial.node.invites")

#: How long ``accept_invite`` tries the inviter's addresses (seconds, each of dial and DHT).
CONNECT_TIMEOUT = 10.0
#: The longest expiry an invite may be given: a year (seconds).
MAX_EXPIRES_IN = 366 * 86_400
# A documentation address (RFC 5737): "connecting" a UDP socket to it asks the
# kernel which local address would route there, and sends nothing.
_PROBE = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def choose_hosts(listen: str, interfaces: Iterable[str]) -> list[str]:
    """The hosts an invite names, for a node listening on ``listen`` (spec/invite.md §5).

    A specific listen address is itself the answer. The unspecified address
    (``0.0.0.0``, ``::``) means every interface: then the non-loopback,
    non-link-local ``interfaces`` of the listen family (both families for
    ``::``), in the order given, and loopback only when nothing else is left.

    Args:
        listen: the configured listen address.
        interfaces: this host's addresses, as text (unparseable ones are ignored).

    Returns:
        Distinct IP addresses as text, most preferred first.
    """
    try:
        bound = ipaddress.ip_address(listen)
    except ValueError:
        return []  # a host name: not ours to resolve for others
    if not bound.is_unspecified:
        return [str(bound)]
    families = {4, 6} if bound.version == 6 else {4}
    usable: list[str] = []
    loopback: list[str] = []
    for text in interfaces:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if ip.version not in families or ip.is_unspecified or ip.is_link_local:
            continue
        bucket = loopback if ip.is_loopback else usable
        if str(ip) not in bucket:
            bucket.append(str(ip))
    if usable:
        return usable
    return loopback or ["127.0.0.1"]


async def interface_addresses() -> list[str]:
    """This host's own addresses, as far as the standard library can tell.

    Those the host name resolves to, and the source address the kernel would
    use for an outside destination (a UDP ``connect``, which sends nothing).
    """
    found: list[str] = []
    try:
        infos = await trio.socket.getaddrinfo(socket.gethostname(), None)
        found += [str(info[4][0]) for info in infos]
    except OSError:
        pass
    for family, probe in _PROBE.items():
        try:
            with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
                await sock.connect((probe, 9))
                found.append(str(sock.getsockname()[0]))
        except OSError:
            continue  # no route in this family
    return found


def _identities(texts: Iterable[str]) -> list[bytes]:
    out = []
    for text in texts:
        if not isinstance(text, str):
            raise LocalUsageError("a recommended identity must be text", reason="bad_identity")
        out.append(identity_from_text(text))
    return out


class InviteHost(Protocol):
    """What :class:`Invites` uses of the node (the Node itself, in practice)."""

    config: NodeConfig
    identity: bytes
    peer_addr: tuple[str, int] | None
    dht_addr: tuple[str, int] | None
    dht: DHTNode | None
    replicator: Replicator | None

    async def follow(self, identity: str | bytes) -> dict[str, Any]: ...


class Invites:
    """Makes and accepts invites for one node.

    Args:
        node: the node (its addresses, DHT, replicator and ``follow``).
        identity_key: the key that signs this node's invites.
    """

    def __init__(self, node: InviteHost, identity_key: SigningKey) -> None:
        self._node = node
        self._key = identity_key
        self.stats: dict[str, int] = {"made": 0, "accepted": 0, "refused": 0, "connect_failed": 0}

    async def addresses(self) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(peer-link addresses, DHT addresses) a stranger can reach this node at."""
        node = self._node
        listen = node.config.listen
        need_interfaces = ipaddress.ip_address(listen).is_unspecified if _is_ip(listen) else False
        hosts = choose_hosts(listen, await interface_addresses() if need_interfaces else [])
        peers = [(h, node.peer_addr[1]) for h in hosts] if node.peer_addr else []
        dhts = [(h, node.dht_addr[1]) for h in hosts] if node.dht_addr else []
        # A node that accepts no peer links announces port 0 (spec/sync.md §3).
        peers = [a for a in peers if a[1]]
        limit = DEFAULT_LIMITS.max_addresses
        return peers[:limit], dhts[:limit]

    async def invite(
        self, expires_in: int | None = None, recommend: Iterable[str] = ()
    ) -> dict[str, Any]:
        """This node's invite: ``{"invite", "identity", "peer_addrs", "dht_addrs",
        "expires", "recommended"}`` (``expires`` in unix ms or None).

        Raises:
            LocalUsageError: ``bad_expiry`` (not 1 s to a year), ``self`` (recommending
                oneself), too many recommendations, or a malformed identity.
        """
        if expires_in is not None and (
            type(expires_in) is not int or not 0 < expires_in <= MAX_EXPIRES_IN
        ):
            raise LocalUsageError(
                f"expires_in must be 1 to {MAX_EXPIRES_IN} seconds", reason="bad_expiry"
            )
        recs = _identities(recommend)
        peers, dhts = await self.addresses()
        expires = None if expires_in is None else now_ms() + expires_in * 1000
        text = make_invite(
            self._key, peer_addrs=peers, dht_addrs=dhts, expires_ms=expires, recommended=recs
        )
        self.stats["made"] += 1
        return {
            "invite": text,
            "identity": identity_to_text(self._key.public_key),
            "peer_addrs": [_fmt(h, p) for h, p in peers],
            "dht_addrs": [_fmt(h, p) for h, p in dhts],
            "expires": expires,
            "recommended": [identity_to_text(r) for r in dict.fromkeys(recs)],
        }

    async def accept(self, text: str) -> dict[str, Any]:
        """Check an invite, follow its identity, dial its node and seed the DHT from it.

        Returns:
            ``{"identity", "followed", "connected", "connect_error", "dht_contacts",
            "recommended", "expires"}``: ``followed`` is False when the identity
            was already followed; ``connected`` the ``host:port`` of the peer
            link opened, or None with ``connect_error`` saying why.

        Raises:
            InviteError: a malformed or expired invite (``bad_invite``,
                ``bad_checksum``, ``unsupported_version``, ``expired``).
            InvalidSignature: ``bad_signature``.
            LocalUsageError: the invite is this node's own (``self``).
        """
        try:
            invite = decode_invite_untrusted(text, now_ms=now_ms())
        except Exception:
            self.stats["refused"] += 1
            raise
        node = self._node
        if invite.identity == node.identity:
            raise LocalUsageError("this invite is your own", reason="self")
        ident = identity_to_text(invite.identity)
        followed = True
        try:
            await node.follow(ident)
        except LocalUsageError as exc:
            if exc.reason != "already_following":
                raise
            followed = False
        result: dict[str, Any] = {
            "identity": ident,
            "followed": followed,
            "connected": None,
            "connect_error": None,
            "dht_contacts": 0,
            "recommended": [identity_to_text(r) for r in invite.recommended],
            "expires": invite.expires_ms,
        }
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._dial, invite, result)
            nursery.start_soon(self._seed_dht, invite, result)
        self.stats["accepted"] += 1
        if result["connected"] is None:
            self.stats["connect_failed"] += 1
        return result

    async def _dial(self, invite: Invite, result: dict[str, Any]) -> None:
        replicator = self._node.replicator
        if replicator is None:
            result["connect_error"] = "replication is not running"
            return
        if not invite.peer_addrs:
            result["connect_error"] = "the invite names no peer address"
            return
        tried = []
        with trio.move_on_after(CONNECT_TIMEOUT) as scope:
            for host, port in invite.peer_addrs:
                tried.append(_fmt(host, port))
                try:
                    if await replicator.connect(host, port):
                        result["connected"] = _fmt(host, port)
                        return
                except (OSError, NodeError) as exc:  # pragma: no cover - connect reports False
                    log.info("invite: dialling %s failed: %s", _fmt(host, port), exc)
        late = f" (gave up after {CONNECT_TIMEOUT:g} s)" if scope.cancelled_caught else ""
        result["connect_error"] = f"no answer from {', '.join(tried)}{late}"

    async def _seed_dht(self, invite: Invite, result: dict[str, Any]) -> None:
        dht = self._node.dht
        if dht is None or not invite.dht_addrs:
            return
        with trio.move_on_after(CONNECT_TIMEOUT):
            result["dht_contacts"] = await dht.bootstrap(list(invite.dht_addrs))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
