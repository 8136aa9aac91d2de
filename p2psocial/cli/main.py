"""The ``p2psocial`` command: run a daemon, and post and read through it.

Every command except ``init``, ``daemon``, ``id`` and ``demo`` talks to a
running daemon through the local API (``p2psocial.client``). Read commands
accept ``--json`` and then print one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from .. import __version__
from ..client import Client, DaemonNotRunning, connect
from ..errors import APIError, NodeError, P2PSocialError
from ..node.config import NodeConfig, resolve_data_dir
from ..protocol.identity import SigningKey, identity_to_text
from ..protocol.kinds import MAX_TEXT_CHARS
from . import output

__all__ = ["cli", "main"]

IDENTITY_PUBLIC_FILE = "identity.txt"


class Ctx:
    """Global options, shared by every command."""

    def __init__(
        self,
        data_dir: str | None,
        api: str | None,
        json_out: bool,
        color: bool,
        verbose: int,
        wait: float,
    ) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self.api = api
        self.json = json_out
        self.color = color
        self.verbose = verbose
        self.wait = wait
        self._client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            self._client = connect(self.data_dir, api=self.api, wait=self.wait)
        return self._client

    def call(self, method: str, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        return self.client().call(method, **params)

    def out(self) -> output.Printer:
        return output.Printer(json_mode=self.json, color=self.color)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"p2psocial: {message}", err=True)
    sys.exit(code)


pass_ctx = click.make_pass_decorator(Ctx)


def json_option(f: Any) -> Any:
    """A per-command --json, equivalent to the global one."""

    def set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(Ctx).json = True

    return click.option(
        "--json",
        "json_",
        is_flag=True,
        expose_value=False,
        callback=set_json,
        help="Print JSON, one object per line.",
    )(f)


def page_options(f: Any) -> Any:
    f = click.option(
        "--before",
        metavar="CURSOR",
        help="Show the page after this cursor (printed by the previous page).",
    )(f)
    f = click.option(
        "--limit",
        type=click.IntRange(1, 500),
        default=20,
        show_default=True,
        help="Entries per page.",
    )(f)
    return json_option(f)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "P2PSOCIAL"}
)
@click.version_option(__version__, prog_name="p2psocial")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar="P2PSOCIAL_HOME",
    help="Node data directory [env: P2PSOCIAL_HOME; default: the platform's user data dir].",
)
@click.option(
    "--api",
    metavar="SOCKET",
    help="Talk to the daemon on this socket instead of DATA_DIR/api.sock.",
)
@click.option(
    "--json", "json_out", is_flag=True, help="Machine-readable output: one JSON object per line."
)
@click.option("--no-color", is_flag=True, help="Plain output without colour.")
@click.option("-v", "--verbose", count=True, help="More log output (daemon, demo).")
@click.option(
    "--wait",
    type=float,
    default=0.0,
    metavar="SECS",
    help="Wait up to SECS for the daemon to come up before failing.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    data_dir: str | None,
    api: str | None,
    json_out: bool,
    no_color: bool,
    verbose: int,
    wait: float,
) -> None:
    """p2psocial: a peer-to-peer social network node and its terminal client.

    \b
    Start here:
      p2psocial init              create your identity
      p2psocial daemon            run your node (foreground)
      p2psocial post "hello"      publish, in another terminal
      p2psocial demo              watch a real 4-node network on this machine
    """
    color = not no_color and "NO_COLOR" not in os.environ
    ctx.obj = Ctx(data_dir, api, json_out, color, verbose, wait)


# --- identity and daemon -------------------------------------------------------


def _read_passphrase(passphrase_file: str | None, *, confirm: bool) -> bytes | None:
    env = os.environ.get("P2PSOCIAL_PASSPHRASE")
    if passphrase_file:
        try:
            return Path(passphrase_file).read_bytes().rstrip(b"\r\n") or None
        except OSError as exc:
            fail(f"cannot read passphrase file: {exc}")
    if env is not None:
        return env.encode() or None
    if sys.stdin.isatty():
        text = click.prompt(
            "Passphrase for your identity key (empty for none)",
            default="",
            hide_input=True,
            confirmation_prompt=confirm,
            show_default=False,
        )
        return text.encode() or None
    return None


@cli.command()
@click.option("--force", is_flag=True, help="Replace an existing identity (the old key is lost).")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    help="Read the key passphrase from this file.",
)
@pass_ctx
def init(c: Ctx, force: bool, passphrase_file: str | None) -> None:
    """Create an identity, a node key and config.toml in the data dir.

    Interactive on a terminal (asks for an optional passphrase); otherwise the
    passphrase comes from --passphrase-file or P2PSOCIAL_PASSPHRASE, or there is none.
    """
    from ..storage.keyfile import write_key_file

    cfg = NodeConfig(data_dir=c.data_dir)
    if cfg.identity_path.exists() and not force:
        fail(
            f"{cfg.identity_path} already exists; pass --force to replace it (the old identity is lost)"
        )
    passphrase = _read_passphrase(passphrase_file, confirm=True)
    c.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(c.data_dir, 0o700)
    identity = SigningKey.generate()
    node_key = SigningKey.generate()
    write_key_file(cfg.identity_path, identity, passphrase, overwrite=force)
    write_key_file(cfg.node_key_path, node_key, None, overwrite=force)
    (c.data_dir / IDENTITY_PUBLIC_FILE).write_text(identity_to_text(identity.public_key) + "\n")
    if not cfg.config_path.exists():
        cfg.save()
    text = identity_to_text(identity.public_key)
    if c.json:
        click.echo(json.dumps({"identity": text, "data_dir": str(c.data_dir)}))
        return
    click.echo(f"Created identity {text}")
    click.echo(
        f"Data dir: {c.data_dir}" + (" (key encrypted with your passphrase)" if passphrase else "")
    )
    click.echo(f"Next: p2psocial --data-dir {c.data_dir} daemon")


@cli.command()
@click.option(
    "--listen",
    default=None,
    metavar="HOST",
    help="Address to listen on [default: config.toml's, else 0.0.0.0, every interface].",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port for peer links (0: any free port) [default: config.toml's; on the "
    "first start a free port, kept in config.toml for the next].",
)
@click.option(
    "--dht-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="UDP port for the DHT (0: any free port) [default: as for --port].",
)
@click.option(
    "--bootstrap",
    multiple=True,
    metavar="HOST:PORT",
    help="Another node's DHT address (repeatable).",
)
@click.option(
    "--peer",
    multiple=True,
    metavar="HOST:PORT",
    help="A peer's TCP address to link with directly (repeatable).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    help="Read the key passphrase from this file.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Log verbosity [default: info; debug with the global -v].",
)
@pass_ctx
def daemon(
    c: Ctx,
    listen: str | None,
    port: int | None,
    dht_port: int | None,
    bootstrap: tuple[str, ...],
    peer: tuple[str, ...],
    passphrase_file: str | None,
    log_level: str | None,
) -> None:
    """Run this data dir's node in the foreground until Ctrl-C (logs on stderr)."""
    from ..node.daemon import run_daemon

    level = log_level or ("debug" if c.verbose else "info")
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = NodeConfig.load(c.data_dir)
    except NodeError as exc:
        fail(exc.message)
    if not cfg.identity_path.exists():
        fail(
            f"no identity in {c.data_dir}; create one with: p2psocial --data-dir {c.data_dir} init"
        )
    # Ports chosen by the OS on a first start are kept for the next one, so
    # the address others saved for this node stays valid across restarts.
    # An explicit --port/--dht-port (0 included) is used for this run only.
    remember_ports = port is None and dht_port is None and cfg.port == 0 and cfg.dht_port == 0
    if listen is not None:
        cfg.listen = listen
    if port is not None:
        cfg.port = port
    if dht_port is not None:
        cfg.dht_port = dht_port
    cfg.bootstrap = list(dict.fromkeys([*cfg.bootstrap, *bootstrap]))
    cfg.peers = list(dict.fromkeys([*cfg.peers, *peer]))
    if c.api:
        cfg.api_socket = Path(c.api)
    cfg.passphrase = (
        _read_passphrase(passphrase_file, confirm=False) if _key_encrypted(cfg) else None
    )
    try:
        run_daemon(cfg, remember_ports=remember_ports)
    except P2PSocialError as exc:
        fail(exc.message)


def _key_encrypted(cfg: NodeConfig) -> bool:
    try:
        return b"ENCRYPTED" in cfg.identity_path.read_bytes()[:64]
    except OSError:
        return False


@cli.command("id")
@json_option
@pass_ctx
def id_(c: Ctx) -> None:
    """Print this data dir's identity."""
    path = c.data_dir / IDENTITY_PUBLIC_FILE
    try:
        text = path.read_text().strip()
    except OSError:
        try:
            text = c.client().identity
        except DaemonNotRunning:
            fail(
                f"no identity in {c.data_dir}; create one with: p2psocial --data-dir {c.data_dir} init"
            )
    c.out().record({"identity": text}, lambda r: r["identity"])


@cli.command()
@json_option
@pass_ctx
def status(c: Ctx) -> None:
    """Show the daemon's identity, addresses, peers and feeds, and list forked feeds."""
    st = c.call("status")
    c.out().record(st, output.format_status)


# --- publishing ------------------------------------------------------------------


def _text_arg(text: str | None, edit: bool) -> str:
    if edit:
        edited = click.edit("")
        if not edited or not edited.strip():
            fail("empty post; nothing published")
        return edited.strip()
    if text is None:
        fail("give the text to post, '-' to read it from stdin, or --edit")
    if text == "-":
        text = sys.stdin.read().strip()
    if not text:
        fail("empty post; nothing published")
    if len(text) > MAX_TEXT_CHARS:
        fail(f"post is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return text


def _published(c: Ctx, result: dict[str, Any], what: str) -> None:
    c.out().record(result, lambda r: f"{what} {r['id']} (seq {r['seq']})")


@cli.command()
@click.argument("text", required=False)
@click.option("--edit", is_flag=True, help="Write the post in $EDITOR.")
@click.option(
    "--mention",
    "mentions",
    multiple=True,
    metavar="IDENTITY",
    help="Mention an identity (repeatable).",
)
@click.option("--tag", "tags", multiple=True, help="Add a tag (repeatable).")
@json_option
@pass_ctx
def post(
    c: Ctx, text: str | None, edit: bool, mentions: tuple[str, ...], tags: tuple[str, ...]
) -> None:
    """Publish a post. TEXT '-' reads it from stdin."""
    body = _text_arg(text, edit)
    _published(
        c,
        c.call("post", text=body, mentions=list(mentions) or None, tags=list(tags) or None),
        "posted",
    )


@cli.command()
@click.argument("id")
@click.argument("text", required=False)
@click.option("--edit", is_flag=True, help="Write the reply in $EDITOR.")
@json_option
@pass_ctx
def reply(c: Ctx, id: str, text: str | None, edit: bool) -> None:
    """Reply to the entry ID."""
    body = _text_arg(text, edit)
    _published(c, c.call("post", text=body, reply_to=id), "replied")


@cli.command()
@click.argument("id")
@click.argument("emoji")
@json_option
@pass_ctx
def react(c: Ctx, id: str, emoji: str) -> None:
    """React to the entry ID with an EMOJI."""
    _published(c, c.call("react", target=id, emoji=emoji), "reacted")


@cli.command()
@click.argument("id")
@json_option
@pass_ctx
def repost(c: Ctx, id: str) -> None:
    """Repost the entry ID to your followers."""
    _published(c, c.call("repost", target=id), "reposted")


@cli.command()
@click.argument("id")
@json_option
@pass_ctx
def delete(c: Ctx, id: str) -> None:
    """Delete your entry ID everywhere (its payload is purged; the feed still verifies)."""
    _published(c, c.call("delete", target=id), "deleted")


# --- reading ---------------------------------------------------------------------


def _print_page(c: Ctx, page: dict[str, Any]) -> None:
    printer = c.out()
    printer.entries(page.get("items", []))
    if page.get("next") and not c.json:
        printer.note(f"more: --before {page['next']}")


@cli.command()
@page_options
@pass_ctx
def timeline(c: Ctx, limit: int, before: str | None) -> None:
    """Your home timeline: you and everyone you follow, newest first."""
    _print_page(c, c.call("timeline", limit=limit, before=before))


@cli.command()
@click.argument("identity", required=False)
@click.option(
    "--kind", "kinds", multiple=True, help="Only these kinds (repeatable; default post and repost)."
)
@click.option(
    "--all", "all_kinds", is_flag=True, help="Every kind: follows, reactions, profile updates, ..."
)
@page_options
@pass_ctx
def feed(
    c: Ctx,
    identity: str | None,
    kinds: tuple[str, ...],
    all_kinds: bool,
    limit: int,
    before: str | None,
) -> None:
    """One identity's feed (yours by default); peeks at the network when not followed.

    A forked feed (its author signed two different entries at one seq) gets a
    warning on stderr; with --json each entry says so (author_forked).
    """
    wanted = ["*"] if all_kinds else (list(kinds) or None)
    page = c.call("feed", identity=identity, kinds=wanted, limit=limit, before=before)
    if page.get("forked"):
        # In --json every record says so too (author_forked, author_fork_seq).
        shown = identity or c.call("status")["identity"]
        c.out().warn(output.fork_warning(shown, page["fork_seq"]))
    _print_page(c, page)


@cli.command()
@click.argument("id")
@json_option
@pass_ctx
def thread(c: Ctx, id: str) -> None:
    """A post and its replies, as a tree."""
    c.out().entries(c.call("thread", id=id)["items"], tree=True)


@cli.command()
@page_options
@pass_ctx
def mentions(c: Ctx, limit: int, before: str | None) -> None:
    """Replies to your posts and posts that mention you."""
    _print_page(c, c.call("mentions", limit=limit, before=before))


@cli.command()
@click.argument("query")
@click.option("--author", metavar="IDENTITY", help="Only posts by this identity.")
@page_options
@pass_ctx
def search(c: Ctx, query: str, author: str | None, limit: int, before: str | None) -> None:
    """Full-text search over the posts this node holds (words, "exact phrases")."""
    _print_page(c, c.call("search", query=query, author=author, limit=limit, before=before))


# --- social graph ------------------------------------------------------------------


@cli.command()
@click.argument("identity")
@json_option
@pass_ctx
def follow(c: Ctx, identity: str) -> None:
    """Follow IDENTITY: replicate its feed and show it in your timeline."""
    _published(c, c.call("follow", identity=identity), f"following {identity}:")


@cli.command()
@click.argument("identity")
@json_option
@pass_ctx
def unfollow(c: Ctx, identity: str) -> None:
    """Stop following IDENTITY."""
    _published(c, c.call("unfollow", identity=identity), f"unfollowed {identity}:")


def _identities(c: Ctx, result: dict[str, Any]) -> None:
    printer = c.out()
    for ident in result["items"]:
        printer.record({"identity": ident}, lambda r: r["identity"])


@cli.command()
@click.argument("identity", required=False)
@json_option
@pass_ctx
def following(c: Ctx, identity: str | None) -> None:
    """Identities that IDENTITY (you by default) follows."""
    _identities(c, c.call("following", identity=identity))


@cli.command()
@click.argument("identity", required=False)
@json_option
@pass_ctx
def followers(c: Ctx, identity: str | None) -> None:
    """Identities seen following IDENTITY (you by default)."""
    _identities(c, c.call("followers", identity=identity))


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("words", nargs=-1, metavar="[IDENTITY] | set")
@click.option("--name", help="With 'set': display name.")
@click.option("--bio", help="With 'set': a short bio.")
@json_option
@pass_ctx
def profile(c: Ctx, words: tuple[str, ...], name: str | None, bio: str | None) -> None:
    """Show a profile, or change yours.

    \b
      p2psocial profile                    your profile
      p2psocial profile p2ps1...           someone else's
      p2psocial profile set --name Ada --bio "runs her own node"
    """
    if words[:1] == ("set",):
        if len(words) > 1:
            fail("'profile set' takes only --name and --bio")
        if name is None and bio is None:
            fail("give --name and/or --bio")
        _published(c, c.call("set_profile", name=name, bio=bio), "profile updated:")
        return
    if name is not None or bio is not None:
        fail("to change your profile: p2psocial profile set --name ... --bio ...")
    if len(words) > 1:
        fail("give at most one identity")
    identity = words[0] if words else None
    c.out().record(c.call("profile", identity=identity), output.format_profile)


# --- moderation ---------------------------------------------------------------------


@cli.command()
@click.argument("identity")
@click.option(
    "--private", is_flag=True, help="Keep the block in local policy only (no public block entry)."
)
@click.option("--reason", help="Why (published with a public block).")
@json_option
@pass_ctx
def block(c: Ctx, identity: str, private: bool, reason: str | None) -> None:
    """Block IDENTITY: its payloads are purged, refused and never relayed by this node."""
    result = c.call("block", identity=identity, public=not private, reason=reason)
    c.out().record(
        result,
        lambda r: f"blocked {r['blocked']}" + (" (public)" if r.get("public") else " (private)"),
    )


@cli.command()
@click.argument("identity")
@json_option
@pass_ctx
def unblock(c: Ctx, identity: str) -> None:
    """Lift a block."""
    c.out().record(c.call("unblock", identity=identity), lambda r: f"unblocked {r['unblocked']}")


@cli.command()
@click.argument("identity")
@click.option("--undo", is_flag=True, help="Unmute instead.")
@json_option
@pass_ctx
def mute(c: Ctx, identity: str, undo: bool) -> None:
    """Hide IDENTITY from your timelines (still stored and relayed)."""
    if undo:
        c.out().record(c.call("unmute", identity=identity), lambda r: f"unmuted {r['unmuted']}")
    else:
        c.out().record(c.call("mute", identity=identity), lambda r: f"muted {r['muted']}")


@cli.group()
def policy() -> None:
    """Show or change what this node stores, relays and shows."""


@policy.command("show")
@json_option
@pass_ctx
def policy_show(c: Ctx) -> None:
    """Print the moderation policy."""
    c.out().record(c.call("policy"), lambda r: "\n".join(f"{k:<22} {v}" for k, v in r.items()))


@policy.command("set")
@click.argument("key")
@click.argument("value", nargs=-1, required=True)
@json_option
@pass_ctx
def policy_set(c: Ctx, key: str, value: tuple[str, ...]) -> None:
    """Set KEY to VALUE (lists take several values; 'true'/'false' for flags).

    \b
    Examples:
      p2psocial policy set hops 2
      p2psocial policy set blocklists p2ps1... p2ps1...
      p2psocial policy set hide_patterns 'crypto ?scam'
    """
    current = c.call("policy")
    if key not in current:
        fail(f"unknown policy setting {key!r}; known: {', '.join(sorted(current))}")
    old = current[key]
    parsed: Any
    if isinstance(old, bool):
        if value[0].lower() not in ("true", "false", "yes", "no", "1", "0"):
            fail(f"{key} takes true or false")
        parsed = value[0].lower() in ("true", "yes", "1")
    elif isinstance(old, int):
        if not value[0].lstrip("-").isdigit():
            fail(f"{key} takes a whole number")
        parsed = int(value[0])
    elif isinstance(old, list):
        parsed = [] if value == ("",) else list(value)
    else:
        parsed = value[0]
    c.out().record(c.call("set_policy", key=key, value=parsed), lambda r: f"{key} = {r[key]}")


@cli.command()
@click.argument("id")
@json_option
@pass_ctx
def explain(c: Ctx, id: str) -> None:
    """Say why this node holds, hides or refused the entry ID."""
    c.out().record(
        c.call("explain", id=id), lambda r: "\n".join([r["id"], *("  " + w for w in r["why"])])
    )


# --- network -----------------------------------------------------------------------------


@cli.command()
@json_option
@pass_ctx
def peers(c: Ctx) -> None:
    """Peers this node is linked with."""
    printer = c.out()
    items = c.call("peers")["items"]
    for p in items:
        printer.record(p, output.format_peer)
    if not items and not c.json:
        printer.note("no peers connected")


@cli.command("connect")
@click.argument("address", metavar="HOST:PORT")
@json_option
@pass_ctx
def connect_cmd(c: Ctx, address: str) -> None:
    """Link with a peer at HOST:PORT (its peer address) right now."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        fail(f"{address!r} is not HOST:PORT")
    c.out().record(
        c.call("connect", host=host, port=int(port)), lambda r: f"connected {r['connected']}"
    )


@cli.command()
@click.option(
    "--nodes", type=click.IntRange(2, 12), default=4, show_default=True, help="Daemons to start."
)
@click.option("--keep", is_flag=True, help="Keep the temporary data dirs (their path is printed).")
@pass_ctx
def demo(c: Ctx, nodes: int, keep: bool) -> None:
    """Start a real network of daemons on 127.0.0.1 and watch posts propagate."""
    from .demo import run_demo

    sys.exit(run_demo(nodes=nodes, keep=keep, color=c.color, verbose=c.verbose))


def main() -> None:
    """Console-script entry point: every failure is one line on stderr."""
    try:
        cli(standalone_mode=True)
    except DaemonNotRunning as exc:
        fail(exc.message)
    except APIError as exc:
        fail(exc.message)
    except P2PSocialError as exc:
        fail(exc.message)
    except BrokenPipeError:
        sys.exit(1)
