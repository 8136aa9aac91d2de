"""Both clients against a real daemon: positional calls, typed pages that walk on, and
the async client under trio and under asyncio."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import p2psocial
from p2psocial.client import AsyncClient, DaemonNotRunning
from tests.daemons import Daemon, running_daemon

pytestmark = pytest.mark.slow

BACKENDS = ["trio", "asyncio"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("clients") / "node") as d:
        yield d


def test_blocking_calls_take_positional_arguments_as_the_node_does(daemon: Daemon) -> None:
    with p2psocial.connect(api=daemon.info["api"]) as c:
        posted = c.post("positional hello", tags=["pos"])
        c.react(posted["id"], "🎉")
        assert c.thread(posted["id"])["items"][0]["reactions"] == {"🎉": 1}
        assert c.search("positional")["items"][0]["id"] == posted["id"]
        assert c.profile(c.identity)["identity"] == c.identity


def test_blocking_pages_walk_on_and_still_behave_as_maps(daemon: Daemon) -> None:
    with p2psocial.connect(api=daemon.info["api"]) as c:
        ids = [c.post(f"paged {i}")["id"] for i in range(5)]
        page = c.feed(limit=2)
        raw = c.call("feed", limit=2)
        # The first page is the answer as sent: indexing, .get, equality, json.
        assert page == raw and json.dumps(page) == json.dumps(raw)
        assert len(page["items"]) == 2 and page.get("next") == raw["next"]
        assert page.entries == raw["items"] and page.next_cursor == raw["next"]
        # Iterating walks every page, newest first, each entry once.
        walked = [e["id"] for e in page]
        assert walked[:5] == ids[::-1] and len(walked) == len(set(walked))
        assert [e["id"] for e in c.timeline(limit=3)][:5] == ids[::-1]
        assert len(list(page.pages())) == -(-len(walked) // 2)


def test_async_client_under_both_backends(daemon: Daemon) -> None:
    api = daemon.info["api"]

    async def main() -> None:
        with anyio.fail_after(20):
            async with p2psocial.connect_async(api=api) as c:
                assert isinstance(c, AsyncClient)
                events = await c.watch(kinds=["post"])  # subscribed once this returns
                first = await c.post("async one")
                results: list[str] = []

                async def post(text: str) -> None:
                    results.append((await c.post(text))["id"])

                async with anyio.create_task_group() as tasks:  # concurrent calls
                    tasks.start_soon(post, "async two")
                    tasks.start_soon(post, "async three")
                seen = []
                async for event in events:
                    seen.append(event["id"])
                    if len(seen) == 3:
                        break
                assert seen[0] == first["id"] and set(seen[1:]) == set(results)
                page = await c.feed(limit=2)
                assert page["items"][0]["id"] in results and page.get("next")
                walked = [e["id"] async for e in page]
                assert set(seen) <= set(walked) and len(walked) == len(set(walked))
                assert (await c.status())["identity"] == c.identity

    for backend in BACKENDS:
        anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_client_names_the_command_when_no_daemon_runs(tmp_path: Path, backend: str) -> None:
    async def main() -> None:
        async with p2psocial.connect_async(tmp_path):
            pass

    with pytest.raises(DaemonNotRunning, match="p2psocial --data-dir"):
        anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_request_after_the_connection_ended_fails_instead_of_waiting(
    tmp_path: Path, backend: str
) -> None:
    """A daemon that answers the hello and then goes (stopped, or reset): a
    request made once the client's reader has seen the end raises the typed
    ``closed`` error at once, never a raw socket error, and never waits for a
    reply stream that nobody is left to close."""
    from p2psocial.api.protocol import API_NAME, API_VERSION, encode_frame
    from p2psocial.errors import APIError

    sock = tmp_path / "api.sock"

    async def main() -> None:
        async def serve(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await stream.receive()  # the client's hello
                hello = {"api": API_NAME, "version": API_VERSION, "identity": "p2ps1x"}
                await stream.send(encode_frame(hello))

        listener = await anyio.create_unix_listener(sock)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, serve)
            with anyio.fail_after(10):
                async with p2psocial.connect_async(api=sock) as client:
                    # The server has closed: let the client's reader see the end.
                    await anyio.wait_all_tasks_blocked()
                    with pytest.raises(APIError) as info:
                        await client.status()
                    assert info.value.code == "closed"
            tasks.cancel_scope.cancel()

    anyio.run(main, backend=backend)
