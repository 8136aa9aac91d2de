"""The local API against real daemon processes, driven only through clients."""

from __future__ import annotations

import os
import random
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import trio

import p2psocial
from p2psocial.api.methods import METHODS, ListOf
from p2psocial.client import DaemonNotRunning
from p2psocial.errors import APIError
from tests.daemons import Daemon, run_cli, running_daemon, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("api") / "node") as d:
        yield d


def api_path(d: Daemon) -> str:
    return d.info["api"]


def test_socket_is_owner_only(daemon: Daemon) -> None:
    mode = stat.S_IMODE(os.stat(api_path(daemon)).st_mode)
    assert mode == 0o600


def _raw_connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def _send(s: socket.socket, obj: object) -> None:
    body = msgpack.packb(obj, use_bin_type=True)
    s.sendall(struct.pack(">I", len(body)) + body)


def _recv(s: socket.socket) -> dict:
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return msgpack.unpackb(body, raw=False)


def test_wrong_version_is_refused_clearly(daemon: Daemon) -> None:
    s = _raw_connect(api_path(daemon))
    _send(s, {"api": "p2psocial", "version": 99})
    reply = _recv(s)
    assert reply["error"]["code"] == "version_mismatch"
    assert "version 1" in reply["error"]["message"] and "99" in reply["error"]["message"]
    with pytest.raises(EOFError):
        _recv(s)
    s.close()


def test_a_client_that_resets_its_connection_is_no_internal_error(daemon: Daemon) -> None:
    """A client gone mid-conversation (its socket closed with a reply unread,
    which resets the connection) ends that connection quietly: no traceback
    in the log and no internal error counted; the daemon serves on."""
    import select

    path = api_path(daemon)
    before = p2psocial.connect(api=path).statistics()["api"]["internal_errors"]
    for _ in range(5):
        s = _raw_connect(path)
        _send(s, {"api": "p2psocial", "version": 1})
        _send(s, {"id": 1, "method": "status", "params": {}})
        # Wait until the daemon's answers are in our buffer, then leave unread.
        assert select.select([s], [], [], 10)[0]
        time.sleep(0.05)
        s.close()
    with p2psocial.connect(api=path) as client:
        assert client.status()["identity"]
        assert client.statistics()["api"]["internal_errors"] == before
    assert "API connection failed" not in daemon.log()


def test_every_api_method(daemon: Daemon, tmp_path: Path) -> None:
    called: set[str] = set()
    c = p2psocial.connect(api=api_path(daemon))

    def call(method: str, **params: object) -> dict:
        called.add(method)
        return c.call(method, **params)

    other = p2psocial.SigningKey.generate()
    other_text = p2psocial.identity_to_text(other.public_key)
    me = c.identity

    st = call("status")
    assert {"identity", "node_id", "dht_addr", "peer_addr", "api", "peers", "feeds"} <= set(st)
    assert st["identity"] == me and st["api"] == api_path(daemon)
    assert "store" in call("statistics")
    assert call("peers")["items"] == []

    p1 = call("post", text="hello #world from the api", tags=["world"])
    assert p1["seq"] >= 1 and len(p1["id"]) == 64
    r1 = call("post", text="a reply to myself", reply_to=p1["id"], mentions=[other_text])
    assert r1["seq"] == p1["seq"] + 1
    call("react", target=p1["id"], emoji="🎉")
    call("repost", target=p1["id"])
    call("set_profile", name="Api Tester", bio="testing")
    call("follow", identity=other_text)
    assert other_text in call("following")["items"]
    call("unfollow", identity=other_text)
    assert other_text not in call("following")["items"]
    assert call("followers", identity=other_text)["items"] == []
    prof = call("profile")
    prog = call("sync_progress", identity=me)["items"][0]
    assert prog["identity"] == me and prog["complete"] and prog["held"] >= 1
    assert prof["name"] == "Api Tester" and prof["bio"] == "testing"

    tl = call("timeline", limit=50)
    ids = [e["id"] for e in tl["items"]]
    assert p1["id"] in ids and r1["id"] in ids
    post = next(e for e in tl["items"] if e["id"] == p1["id"])
    assert post["reactions"] == {"🎉": 1} and post["text"] == "hello #world from the api"
    reply = next(e for e in tl["items"] if e["id"] == r1["id"])
    assert reply["reply_to"] == p1["id"]
    page1 = call("feed", limit=2)
    assert len(page1["items"]) == 2 and page1["next"]
    page2 = call("feed", limit=2, before=page1["next"])
    assert not {e["id"] for e in page1["items"]} & {e["id"] for e in page2["items"]}
    th = call("thread", id=p1["id"])["items"]
    assert [e["id"] for e in th] == [p1["id"], r1["id"]] and th[1]["depth"] == 1
    assert call("search", query="world")["items"][0]["id"] == p1["id"]
    assert call("search", query='"reply to myself"', author=me)["items"][0]["id"] == r1["id"]
    assert call("mentions")["items"] == []  # our own reply does not notify us

    assert call("set_petname", name="other", identity=other_text)["previous"] is None
    assert call("petnames")["items"][0]["identity"] == other_text
    assert call("profile", identity="other")["petname"] == "other"
    assert call("remove_petname", name="other")["removed"] == "other"
    blocked = call("block", identity=other_text, reason="spam")
    assert blocked["public"] is True and "id" in blocked
    assert call("profile", identity=other_text)["blocked"] is True
    call("unblock", identity=other_text)
    call("mute", identity=other_text)
    assert call("profile", identity=other_text)["muted"] is True
    call("unmute", identity=other_text)

    pol = call("policy")
    assert pol["hops"] == 1
    assert call("set_policy", key="hide_patterns", value=["forbidden"])["hide_patterns"] == [
        "forbidden"
    ]
    call("post", text="this is forbidden text")
    assert all("forbidden" not in (e["text"] or "") for e in call("timeline")["items"])
    call("set_policy", key="hide_patterns", value=[])
    why = call("explain", id=p1["id"])
    assert why["held"] is True and why["why"]

    d = call("delete", target=p1["id"])
    assert d["seq"] > p1["seq"]
    gone = next(e for e in call("feed", limit=50)["items"] if e["id"] == p1["id"])
    assert gone["deleted"] is True and gone["text"] is None

    # connect: to our own peer port is refused or harmless; to a closed port errors cleanly
    with pytest.raises(APIError):
        call("connect", host="127.0.0.1", port=1)

    # invite / accept_invite: our own invite is made, and refused as our own
    made = call("invite", expires_in=60, recommend=[other_text])
    assert made["invite"].startswith("p2psinv1") and made["identity"] == me
    assert made["recommended"] == [other_text] and made["expires"] > 0
    with pytest.raises(APIError) as refused:
        call("accept_invite", invite=made["invite"])
    assert refused.value.reason == "self"
    with pytest.raises(APIError) as refused:
        call("accept_invite", invite=made["invite"][:-2])
    assert refused.value.reason == "bad_checksum"

    n = call("notifications", limit=10)
    assert {"items", "next", "unread", "mark"} <= set(n)
    assert call("mark_notifications_read")["unread"] == 0
    assert "items" in call("suggest")
    assert call("search_people", query="zz")["items"] == []

    # watch / unwatch over a second connection
    with p2psocial.connect(api=api_path(daemon)) as w:
        events = w.watch(kinds=["post"], idle_timeout=10)
        called.add("watch")
        posted = c.post(text="watched post")
        ev = next(events)
        assert ev["id"] == posted["id"] and ev["text"] == "watched post"
    called.add("unwatch")
    assert c.call("unwatch", subscription=12345) == {"unwatched": False}
    assert called == set(METHODS), set(METHODS) - called


def test_typed_errors(daemon: Daemon) -> None:
    c = p2psocial.connect(api=api_path(daemon))
    cases = [
        (("nope",), {}, "unknown_method"),
        (("post",), {}, "invalid_params"),
        (("post",), {"text": 5}, "invalid_params"),
        (("post",), {"text": "x" * 2001}, "invalid_argument"),
        (("follow",), {"identity": "p2ps1qqqq"}, "invalid_argument"),
        (("thread",), {"id": "zz"}, "invalid_argument"),
        (("timeline",), {"limit": 0}, "invalid_argument"),
        (("timeline",), {"before": "garbage!"}, "invalid_argument"),
        (("search",), {"query": 'unbalanced "quote'}, "invalid_argument"),
    ]
    for (method,), params, code in cases:
        with pytest.raises(APIError) as info:
            c.call(method, **params)
        assert info.value.code == code, (method, params, info.value)
    with pytest.raises(APIError) as info:
        c.call("post", text="x" * 2001)
    assert "2000" in info.value.message


def test_malformed_frames_never_hurt_the_daemon(daemon: Daemon) -> None:
    rng = random.Random(1234)
    path = api_path(daemon)
    for i in range(60):
        s = _raw_connect(path)
        kind = i % 6
        try:
            if kind == 0:
                s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 300))))
            elif kind == 1:
                s.sendall(struct.pack(">I", 0xFFFFFFFF) + b"xx")
            elif kind == 2:
                _send(s, [1, 2, 3])  # not a map
            elif kind == 3:
                _send(s, {"api": "p2psocial", "version": 1})
                _recv(s)
                body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 100)))
                s.sendall(struct.pack(">I", len(body)) + body)
            elif kind == 4:
                _send(s, {"api": "p2psocial", "version": 1})
                _recv(s)
                _send(s, {"id": "x", "method": 5, "params": []})
                _send(s, {"id": 1, "method": "post", "params": [1]})
                _send(s, {"id": 2, "method": "post", "params": {"text": {"a": b"b"}}})
            else:
                s.sendall(struct.pack(">I", 10) + b"abc")  # truncated, then hang up
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            while s.recv(65536):
                pass
        except OSError:
            pass
        finally:
            s.close()
    assert daemon.proc is not None and daemon.proc.poll() is None
    c = p2psocial.connect(api=path)
    assert c.status()["identity"] == c.identity
    assert c.statistics()["node"] is not None


def test_connections_are_bounded(daemon: Daemon) -> None:
    from p2psocial.node.apiserver import MAX_CONNECTIONS

    held: list[socket.socket] = []
    served = refused = 0
    try:
        # A refused connection is told so at once; a served one waits for
        # our handshake. Earlier tests' connections may still be closing.
        for _ in range(MAX_CONNECTIONS + 5):
            s = _raw_connect(api_path(daemon))
            held.append(s)
            s.settimeout(0.1)
            try:
                reply = _recv(s)
            except TimeoutError:
                s.settimeout(10)
                try:
                    _send(s, {"api": "p2psocial", "version": 1})
                    reply = _recv(s)
                except (BrokenPipeError, ConnectionResetError, EOFError):
                    # A refusal slower than 0.1 s raced our handshake.
                    reply = {"error": {"code": "too_many_connections"}}
            if "error" in reply:
                assert reply["error"]["code"] == "too_many_connections"
                refused += 1
            else:
                assert reply["version"] == 1
                served += 1
        assert MAX_CONNECTIONS - 5 <= served <= MAX_CONNECTIONS and refused >= 5
    finally:
        for s in held:
            s.close()

    def serves_again() -> bool:  # the daemon notices the closed sockets shortly
        try:
            with p2psocial.connect(api=api_path(daemon)) as c:
                return c.status()["identity"] == c.identity
        except APIError as exc:
            assert exc.code == "too_many_connections"
            return False

    wait_for(serves_again, timeout=10, what="a free connection slot")


def test_trio_client_mirrors_methods(daemon: Daemon) -> None:
    async def main() -> None:
        with trio.fail_after(20):
            async with p2psocial.connect_async(api=api_path(daemon)) as c:
                st, posted = await c.status(), await c.post(text="from trio")
                assert st["identity"] == c.identity
                feed = await c.feed(limit=5)
                assert feed["items"][0]["id"] == posted["id"]
                events = await c.watch(kinds=["post"])  # subscribed once this returns
                again = await c.post(text="watched from trio")
                async for event in events:
                    assert event["id"] == again["id"]
                    break

    trio.run(main)


def test_client_names_socket_and_command_when_daemon_is_down(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning) as info:
        p2psocial.connect(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "api.sock") in msg and "p2psocial --data-dir" in msg and "daemon" in msg


def test_lifecycle_kill9_restart_shutdown_and_lock(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "node")
    d.init()
    with d:
        d.start()
        # A second daemon on the same data dir is refused with a clear message.
        second = run_cli(
            d.data_dir,
            "daemon",
            "--listen",
            "127.0.0.1",
            "--port",
            "0",
            "--dht-port",
            "0",
            check=False,
        )
        assert second.returncode != 0 and "already running" in second.stderr

        # kill -9 while posting: every acknowledged post survives.
        acked: list[str] = []
        c = p2psocial.connect(api=d.info["api"])
        deadline = time.monotonic() + 1.0
        killer_at = time.monotonic() + 0.5
        try:
            while time.monotonic() < deadline:
                acked.append(c.post(text=f"post {len(acked)}")["id"])
                if time.monotonic() >= killer_at and d.proc is not None and d.proc.poll() is None:
                    d.proc.kill()
        except (APIError, OSError):
            pass
        d.kill()
        assert len(acked) > 5
        d.start()  # stale socket and lock from the killed daemon must not matter
        c = p2psocial.connect(api=d.info["api"])
        # Every page: on a quiet machine more than one page's worth is acked.
        held = {e["id"] for e in c.feed(limit=500)}
        assert set(acked) <= held, f"{len(set(acked) - held)} of {len(acked)} acked posts lost"
        c.close()

        # Graceful shutdown within 2 s leaves neither socket nor lock behind.
        took = d.stop(signal.SIGTERM)
        assert took < 2.0
        assert d.proc is not None and d.proc.returncode == 0
        assert not (d.data_dir / "api.sock").exists()
        assert not (d.data_dir / "daemon.lock").exists()


def test_missing_identity_names_init(tmp_path: Path) -> None:
    proc = run_cli(tmp_path / "empty", "daemon", check=False)
    assert proc.returncode != 0 and "p2psocial --data-dir" in proc.stderr and "init" in proc.stderr


def test_example_bot_answers_replies(tmp_path: Path) -> None:
    a, b = Daemon(tmp_path / "a"), Daemon(tmp_path / "b")
    a.init()
    b.init()
    with a, b:
        a.start()
        b.bootstrap = [a.info["dht"]]
        b.peers = [a.info["peer"]]
        b.start()
        ca, cb = p2psocial.connect(api=a.info["api"]), p2psocial.connect(api=b.info["api"])
        bot = subprocess.Popen(
            [sys.executable, "examples/reply_bot.py", "--api", a.info["api"], "--max-replies", "1"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            assert bot.stdout is not None
            assert "answering replies" in bot.stdout.readline()
            cb.follow(identity=ca.identity)
            ca.follow(identity=cb.identity)
            first = ca.post(text="ask me anything")
            wait_for(
                lambda: any(e["id"] == first["id"] for e in cb.timeline()["items"]),
                what="post on b",
            )
            question = cb.post(text="what is p2p?", reply_to=first["id"])
            assert bot.wait(timeout=20) == 0
            answer = wait_for(
                lambda: [
                    e for e in cb.thread(id=first["id"])["items"] if e["reply_to"] == question["id"]
                ],
                what="the bot's answer on b",
            )
            assert answer[0]["author"] == ca.identity and "what is p2p?" in answer[0]["text"]
        finally:
            if bot.poll() is None:
                bot.kill()


def _bad_values(typ: object) -> list[object]:
    """Values of the wrong type (or with wrongly typed elements) for a parameter."""
    candidates: list[object] = [["x"], [[1]], {"a": 1}, [{"a": 1}], b"raw", 1.5, True, 7, "s"]
    types = typ if isinstance(typ, tuple) else (typ,)

    def fits(v: object, t: object) -> bool:
        if isinstance(t, ListOf):  # the only list parameters: lists of strings
            return type(v) is list and all(type(e) is str for e in v)
        if t is int:
            return type(v) is int
        return isinstance(t, type) and isinstance(v, t)

    return [v for v in candidates if not any(fits(v, t) for t in types)]


def test_every_parameter_is_type_checked_at_the_edge(daemon: Daemon) -> None:
    """Wrongly typed parameters of every method get invalid_params, never
    'internal', and nothing a client sends ends the daemon (a list as the
    method name used to kill it)."""
    path = api_path(daemon)
    s = _raw_connect(path)
    _send(s, {"api": "p2psocial", "version": 1})
    _recv(s)
    req = 0
    codes: dict[str, str] = {}
    for bad_method in (["x"], {"m": 1}, 5, None, b"post"):
        req += 1
        _send(s, {"id": req, "method": bad_method})
        reply = _recv(s)
        assert reply["id"] == req and reply["error"]["code"] in (
            "invalid_request",
            "unknown_method",
        )
    for method, spec in METHODS.items():
        for name, (typ, _required) in spec.items():
            for value in _bad_values(typ):
                req += 1
                _send(s, {"id": req, "method": method, "params": {name: value}})
                reply = _recv(s)
                assert reply["id"] == req
                codes[f"{method}.{name}={value!r}"] = reply["error"]["code"]
    wrong = {k: v for k, v in codes.items() if v != "invalid_params"}
    assert not wrong, wrong
    # The two reproduced cases by name, with otherwise valid requests.
    for method, params in (
        ("feed", {"kinds": [[1]]}),
        ("post", {"text": "hi", "tags": [[1]]}),
        ("post", {"text": "hi", "mentions": [{"a": 1}]}),
        ("watch", {"authors": [5]}),
        ("set_policy", {"key": "blocked", "value": [[1]]}),
    ):
        req += 1
        _send(s, {"id": req, "method": method, "params": params})
        assert _recv(s)["error"]["code"] == "invalid_params", (method, params)
    s.close()
    assert daemon.proc is not None and daemon.proc.poll() is None
    c = p2psocial.connect(api=path)
    assert c.status()["identity"] == c.identity


def test_well_typed_nonsense_gets_a_typed_error_not_internal(daemon: Daemon) -> None:
    """Every parameter well typed but meaningless ("zz", ["zz"], -1, huge):
    the node answers with a typed error or a result, never 'internal'."""
    path = api_path(daemon)
    s = _raw_connect(path)
    _send(s, {"api": "p2psocial", "version": 1})
    _recv(s)
    samples: dict[object, list[object]] = {str: ["zz", "", "p2ps1" + "q" * 58]}
    samples[int] = [-1, 0, 2**63 - 1]
    samples[bool] = [True]
    internal = {}
    req = 0
    for method, spec in METHODS.items():
        if method in ("watch", "unwatch", "connect"):
            continue  # streams, and a dial that waits for its timeout
        for name, (typ, _required) in spec.items():
            types = typ if isinstance(typ, tuple) else (typ,)
            for t in types:
                values = samples.get(t, [["zz"], [""]])
                for value in values:
                    params = {k: "p2ps1zz" for k, (tt, req_) in spec.items() if req_ and k != name}
                    params[name] = value
                    req += 1
                    _send(s, {"id": req, "method": method, "params": params})
                    reply = _recv(s)
                    if "error" in reply and reply["error"]["code"] == "internal":
                        internal[f"{method}({params})"] = reply["error"]
    s.close()
    assert not internal, internal
    assert "Traceback" not in daemon.log()
    assert p2psocial.connect(api=path).statistics()["api"]["internal_errors"] == 0


def test_connect_with_an_out_of_range_port_is_refused_and_harmless(daemon: Daemon) -> None:
    """connect with port 2**63 answered 'internal', then the background redial
    raised OverflowError in the replicator's nursery and the daemon exited."""
    c = p2psocial.connect(api=api_path(daemon))
    for port in (2**63, 2**64 - 1, 70000, 0, -1):
        with pytest.raises(APIError) as info:
            c.connect(host="127.0.0.1", port=port)
        assert info.value.code in ("invalid_argument", "invalid_params"), (port, info.value)
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert c.status()["identity"] == c.identity


def test_a_watch_id_cannot_be_reused_to_escape_the_limit(daemon: Daemon) -> None:
    """20 watches with id 7 made 20 subscriptions (the limit is 8), and
    unwatch 7 could end only one of them."""
    s = _raw_connect(api_path(daemon))
    _send(s, {"api": "p2psocial", "version": 1})
    _recv(s)
    _send(s, {"id": 7, "method": "watch", "params": {}})
    assert _recv(s)["result"] == {"subscription": 7}
    for _ in range(3):
        _send(s, {"id": 7, "method": "watch", "params": {}})
        assert _recv(s)["error"]["code"] == "invalid_request"
    _send(s, {"id": 8, "method": "unwatch", "params": {"subscription": 7}})
    assert _recv(s)["result"] == {"unwatched": True}
    _send(s, {"id": 9, "method": "unwatch", "params": {"subscription": 7}})
    assert _recv(s)["result"] == {"unwatched": False}
    s.close()
