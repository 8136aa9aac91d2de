"""Dial-back (spec/dht.md 4.5): can other nodes open a peer link to us?

Observed addresses (``observed.py``) say which address our datagrams leave
from; they do not say whether a connection *to* that address gets through a
router or firewall. So a node asks a few proven contacts, in different /24s,
to dial its peer-link port back, and tallies their answers.

The responder dials only the source IP of the request, never an address the
requester names, and only once the requester has shown (with an announce
token, spec/dht.md 6) that it receives datagrams at that source: otherwise a
forged source address would turn every node into a free port scanner aimed at
a victim. The dial is the link's first two flights (spec/sync.md 10): the
preamble and Noise message 1 out, the preamble and message 2 back, whose
node proof must name the requester's node id. Then the responder closes
without sending message 3, so no link is made. Dials are bounded: a few at
once, one per requester IP, and a rate per requester IP and in all.
"""

from __future__ import annotations

import contextlib
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import trio

from ...protocol.dht import Contact, RecordRejected
from ...protocol.dht.wire import encode_response, parse_dial_back_reply
from ...protocol.errors import ProtocolError
from ...protocol.identity import SigningKey
from ...protocol.noise import generate_private
from ...protocol.ratelimit import RateTable
from ...protocol.securelink import SecureLink
from .common import Addr, DHTError, Stores, log
from .contacts import Contacts
from .engine import Caller
from .observed import keep_latest, proven_contacts, spread_by_network, support_counter

__all__ = ["DialBack", "DialBackResponder", "DialBackResults", "probe_link"]

YES = "yes"
NO = "no"
UNKNOWN = "unknown"
#: Seconds a responder's dial may take, connection included (spec/dht.md 4.5).
DIAL_TIMEOUT = 3.0
#: Seconds a requester waits for the answer to a dial, however short its
#: retransmission timeout: the dial's bound and a margin for the path.
ANSWER_WAIT = DIAL_TIMEOUT + 1.5
#: The most a probe reads: the preamble (6), a u16 length and message 2 (at most 512).
_MAX_READ = 6 + 2 + 512


async def probe_link(host: str, port: int, expected: bytes, node_key: SigningKey) -> str:
    """Open a TCP connection to ``host``:``port`` and run the first two
    flights of a link handshake; the caller bounds the time (a timeout is
    the caller's ``"timeout"``).

    Args:
        host: an IP literal (never a name: nothing is resolved).
        port: the peer-link port to try.
        expected: the node id message 2's node proof must carry.
        node_key: our node key (the link state needs one; message 3, which
            would carry its proof, is never sent).

    Returns:
        ``"ok"`` when a link responder there proved ``expected``; otherwise
        ``"refused"`` (nothing listens, or a router resets the connection),
        ``"unreachable"`` (no route), ``"not_p2psocial"`` (the other end
        closed or spoke something else before a valid message 2) or
        ``"wrong_node"`` (a link responder of another node).
    """
    link = SecureLink(
        initiator=True,
        node_key=node_key,
        static_private=generate_private(),
        expected_node_id=expected,
    )
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    try:
        # One address, one attempt: open_tcp_stream would fold the errno away.
        await sock.connect((host, port))
    except ConnectionRefusedError:
        sock.close()
        return "refused"
    except OSError:
        sock.close()
        return "unreachable"
    except BaseException:
        sock.close()
        raise
    async with trio.SocketStream(sock) as stream:
        try:
            await stream.send_all(link.data_to_send())
            received = 0
            while link.peer_key is None:
                if received >= _MAX_READ:  # more than a preamble and message 2 can be
                    return "not_p2psocial"
                data = await stream.receive_some(_MAX_READ - received)
                if not data:
                    return "not_p2psocial"
                received += len(data)
                link.receive_data(data)
        except (trio.BrokenResourceError, OSError):
            return "not_p2psocial"
        except ProtocolError as exc:
            return "wrong_node" if exc.reason == "wrong_node" else "not_p2psocial"
    return "ok"


class _Job(NamedTuple):
    addr: Addr
    msg_id: bytes


class DialBackResponder:
    """Answers ``dial_back`` requests: the handler calls :meth:`request`, and
    the dials run in this object's nursery (:meth:`run`).

    Args:
        send: sends one datagram (the engine's ``send``).
        stores: for the announce tokens that prove the requester's address.
        node_key: our node key, for the link state of a probe.
        max_active: dials at once, in all.
        per_ip_burst, per_ip_rate: dials per requester IP (token bucket, per s).
        burst, rate: dials in all (token bucket, per s).
        dial_timeout: seconds a dial may take, connect included; below the
            requester's ANSWER_WAIT, so the answer arrives.
        probe: the dial itself (tests inject one).
    """

    def __init__(
        self,
        send: Callable[[bytes, Addr], Awaitable[None]],
        stores: Stores,
        node_key: SigningKey,
        *,
        max_active: int = 4,
        per_ip_burst: float = 2.0,
        per_ip_rate: float = 1 / 30,
        burst: float = 8.0,
        rate: float = 0.5,
        dial_timeout: float = DIAL_TIMEOUT,
        probe: Callable[[str, int, bytes, SigningKey], Awaitable[str]] = probe_link,
    ) -> None:
        self._send = send
        self._stores = stores
        self._key = node_key
        self._max_active = max_active
        self._per_ip = RateTable(per_ip_burst, per_ip_rate, max_keys=1024)
        self._all = RateTable(burst, rate, max_keys=1)
        self._timeout = dial_timeout
        self._probe = probe
        self._active: set[_Job] = set()
        #: Answers already sent, for retransmitted requests (bounded, 10 s).
        self._done: OrderedDict[_Job, tuple[bytes, float]] = OrderedDict()
        self._nursery: trio.Nursery | None = None
        self._stats: Counter[str] = Counter()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the dials that :meth:`request` starts, until cancelled."""
        async with trio.open_nursery() as nursery:
            self.start(nursery)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self.stop()

    def start(self, nursery: trio.Nursery) -> None:
        """Run the dials that :meth:`request` starts in ``nursery`` (a node's,
        which needs no task of ours for it) from now on, until :meth:`stop`."""
        self._nursery = nursery

    def stop(self) -> None:
        """Start no more dials (the nursery is closing); requests are answered busy."""
        self._nursery = None

    def request(
        self, msg_id: bytes, addr: Addr, sender: bytes, port: int, token: bytes
    ) -> bytes | None:
        """Handle one ``dial_back`` request from ``addr``; returns the answer
        to send now, or None when the answer will follow the dial (or the
        request is a retransmission of one being dialled)."""
        now = trio.current_time()
        job = _Job(addr, msg_id)
        while self._done and next(iter(self._done.values()))[1] < now - 10.0:
            self._done.popitem(last=False)
        if job in self._done:
            return self._done[job][0]
        if job in self._active:
            return None
        try:
            self._stores.tokens.check(token, addr[0], addr[1])
        except RecordRejected:
            self._stats["dial_back_tokens_given"] += 1
            return encode_response(msg_id, {"token": self._stores.tokens.issue(addr[0], addr[1])})
        if (
            self._nursery is None
            or len(self._active) >= self._max_active
            or any(j.addr[0] == addr[0] for j in self._active)
            or not self._per_ip.take(addr[0], now)
            or not self._all.take("all", now)
        ):
            self._stats["dial_back_busy"] += 1
            return encode_response(msg_id, {"busy": True})
        self._active.add(job)
        self._nursery.start_soon(self._dial, job, sender, port)
        return None

    async def _dial(self, job: _Job, sender: bytes, port: int) -> None:
        result = "timeout"
        try:
            with trio.move_on_after(self._timeout):
                result = await self._probe(job.addr[0], port, sender, self._key)
        except Exception:  # a bug in one dial ends that dial only
            self._stats["internal_errors"] += 1
            log.exception("dial-back to %s:%s failed", job.addr[0], port)
            result = "error"
        finally:
            self._active.discard(job)
        self._stats[f"dial_back_{result}"] += 1
        answer = encode_response(job.msg_id, {"dialled": result})
        self._done[job] = (answer, trio.current_time())
        while len(self._done) > 64:
            self._done.popitem(last=False)
        with contextlib.suppress(DHTError):
            await self._send(answer, job.addr)

    def statistics(self) -> dict[str, int]:
        """Counters: tokens given, dials by result, requests refused as busy."""
        return dict(self._stats)


class _Result(NamedTuple):
    ok: bool
    reason: str
    at: float


class DialBackResults:
    """The latest dial-back result per responder IP, bounded as observed
    addresses are (4 per /24, ``max_reports`` in all, ``ttl`` seconds each).

    ``reachable`` is ``yes`` when responders the belief rule counts as two
    (spec/dht.md 4.4) dialled us; ``no`` when fewer than that did and two
    failed; ``unknown`` otherwise. One liar can therefore not make a node
    believe it is reachable, nor unreachable.
    """

    def __init__(self, max_reports: int = 16, ttl: float = 1800.0) -> None:
        self._max = max_reports
        self._ttl = ttl
        self._results: OrderedDict[str, _Result] = OrderedDict()

    def __len__(self) -> int:
        return len(self._results)

    def __contains__(self, ip: object) -> bool:
        return ip in self._results

    def add(self, responder_ip: str, result: str, now: float) -> None:
        """Record what ``responder_ip`` answered (``"ok"`` or a failure reason)."""
        keep_latest(self._results, responder_ip, _Result(result == "ok", result, now), self._max)

    def summary(self, now: float) -> dict[str, Any]:
        """``reachable`` (yes/no/unknown), ``dialback_ok`` and ``dialback_failed`` (counts)."""
        for ip in [ip for ip, r in self._results.items() if now - r.at > self._ttl]:
            del self._results[ip]
        support = support_counter(self._results)
        ok = {ip for ip, r in self._results.items() if r.ok}
        failed = set(self._results) - ok
        verdict = UNKNOWN
        if support(ok) >= 2:
            verdict = YES
        elif support(failed) >= 2:
            verdict = NO
        return {"reachable": verdict, "dialback_ok": len(ok), "dialback_failed": len(failed)}


class DialBack:
    """Asks proven contacts to dial our peer-link port back, and keeps the results.

    Nothing is asked until :meth:`enable` gives the port. Rounds ask at most
    ``per_round`` contacts (different /24s first; while the verdict is
    unknown, only those that have not answered yet), quickly (``first_delay``, doubling up to 16 s) while the verdict
    is unknown, then every ``interval`` seconds. While no contact is proven,
    a round asks no one and the next comes ``first_delay`` later.

    Args:
        caller: sends requests.
        contacts: the routing table and who proved their key.
    """

    def __init__(
        self,
        caller: Caller,
        contacts: Contacts,
        *,
        per_round: int = 3,
        first_delay: float = 1.0,
        interval: float = 1800.0,
    ) -> None:
        self._caller = caller
        self._contacts = contacts
        self._per_round = per_round
        self._first_delay = first_delay
        self._interval = interval
        self.port: int | None = None
        self._enabled = trio.Event()
        self._wake = trio.Event()
        self.results = DialBackResults()
        #: Contacts the last round asked.
        self._asked = 0
        self._stats: Counter[str] = Counter()

    def enable(self, port: int) -> None:
        """Start asking for dials to TCP ``port`` (our peer-link listener)."""
        self.port = port
        self._enabled.set()

    def recheck(self, port: int) -> None:
        """Forget the verdict and learn it again for TCP ``port`` now (a port
        mapping at the router appeared, changed or went, spec/portmap.md)."""
        self.port = port
        self.results = DialBackResults()
        self._stats["dial_back_rechecks"] += 1
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ask rounds of contacts once enabled, until cancelled."""
        task_status.started()
        await self._enabled.wait()
        delay = self._first_delay
        while True:
            if self._wake.is_set():  # recheck(): start learning again
                self._wake = trio.Event()
                delay = self._first_delay
            await self.round()
            if self.summary()["reachable"] != UNKNOWN:
                wait = delay = self._interval
            elif not self._asked:  # no proven contact yet: look again soon
                wait = delay = self._first_delay
            else:  # still learning: at most per_round contacts per 16 s
                wait, delay = delay, min(delay * 2, 16.0)
            with trio.move_on_after(wait):
                await self._wake.wait()

    def _targets(self) -> list[Contact]:
        proven = proven_contacts(self._contacts)
        if self.summary()["reachable"] == UNKNOWN:
            # Still learning: an answer counts for 30 minutes, so ask only
            # those that have not answered (a responder dials an IP at most
            # twice, then once per 30 s: asking again would only meet busy).
            proven = [c for c in proven if c.host not in self.results]
        return spread_by_network(proven, self._per_round)

    async def round(self) -> int:
        """Ask one round of contacts; returns how many dialled (ok or not)."""
        port = self.port
        if port is None:
            return 0
        answered = 0
        before = self.summary()["reachable"]

        async def ask(c: Contact) -> None:
            nonlocal answered
            result = await self._ask(c, port)
            if result is not None:
                self.results.add(c.host, result, trio.current_time())
                answered += 1

        targets = self._targets()
        self._asked = len(targets)
        async with trio.open_nursery() as nursery:
            for c in targets:
                nursery.start_soon(ask, c)
        after = self.summary()
        if after["reachable"] != before:
            log.info(
                "dial-back: reachable %s (%d of %d nodes could open a link to port %d)",
                after["reachable"],
                after["dialback_ok"],
                after["dialback_ok"] + after["dialback_failed"],
                port,
            )
        return answered

    async def _ask(self, c: Contact, port: int) -> str | None:
        """One contact's dial result, or None (busy, silent, or a bad reply)."""
        me = self._contacts.node_id
        token = b""
        try:
            for _ in range(2):  # first a token for our address, then the dial
                # With a token the answer follows the dial: wait for it.
                wait = ANSWER_WAIT if token else 0.0
                kind, value = parse_dial_back_reply(
                    await self._caller.call(c.addr, "dial_back", [me, port, token], min_wait=wait)
                )
                if kind == "dialled":
                    self._stats["dial_back_answers"] += 1
                    return str(value)
                if kind == "busy":
                    self._stats["dial_back_busy_replies"] += 1
                    return None
                token = value
        except (DHTError, ProtocolError) as exc:
            self._stats[f"dial_back_failed_{getattr(exc, 'reason', 'error')}"] += 1
            return None
        self._stats["dial_back_failed_token_loop"] += 1
        return None

    def summary(self) -> dict[str, Any]:
        """As :meth:`DialBackResults.summary`, now."""
        return self.results.summary(trio.current_time())

    def statistics(self) -> dict[str, int]:
        """Counters: answers, busy replies, failures by reason."""
        return dict(self._stats)
