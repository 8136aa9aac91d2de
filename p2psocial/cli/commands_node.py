"""Commands about this node: create it, run it, and ask how it is doing.

``init`` and ``daemon`` work on the data dir without a daemon (they import
the node, lazily, to do so); ``id`` reads identity.txt and asks the daemon
only when that file is missing; ``demo`` starts daemons of its own. The other
commands here ask the running daemon.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ..client import DaemonNotRunning
from ..errors import NodeError, P2PSocialError
from ..paths import IDENTITY_TEXT_FILE
from . import output
from .context import Ctx, fail, json_option, pass_ctx

__all__ = ["COMMANDS"]

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


@click.command()
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

    The node's DHT (UDP) and peer (TCP) ports are picked here, free ones, and
    saved in config.toml, so the node keeps its address across restarts
    (change them with: p2psocial config set port|dht_port N).
    """
    from ..node.config import NodeConfig
    from ..node.keys import create_keys

    try:
        cfg = NodeConfig.load(c.data_dir)
    except NodeError as exc:
        fail(exc.message)
    if cfg.identity_path.exists() and not force:
        fail(
            f"{cfg.identity_path} already exists; pass --force to replace it (the old identity is lost)"
        )
    passphrase = _read_passphrase(passphrase_file, confirm=True)
    text = create_keys(cfg, passphrase, overwrite=force)
    if cfg.port == 0 and cfg.dht_port == 0:
        try:
            cfg.pick_ports()
        except OSError as exc:
            fail(f"cannot pick free ports on {cfg.listen}: {exc}")
    cfg.save()
    if c.json:
        record = {"identity": text, "data_dir": str(c.data_dir)}
        click.echo(json.dumps({**record, "port": cfg.port, "dht_port": cfg.dht_port}))
        return
    click.echo(f"Created identity {text}")
    click.echo(
        f"Ports: dht {cfg.dht_port} (udp), peers {cfg.port} (tcp), kept in {cfg.config_path}"
    )
    click.echo(
        f"Data dir: {c.data_dir}" + (" (key encrypted with your passphrase)" if passphrase else "")
    )
    click.echo(f"Next: p2psocial --data-dir {c.data_dir} daemon")


@click.command()
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
    "--portmap-gateway",
    default="",
    metavar="HOST[:PORT]",
    envvar="P2PSOCIAL_PORTMAP_GATEWAY",
    help="Gateway to ask for port mappings, or 'none' [default: the default route's].",
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
    portmap_gateway: str,
    log_level: str | None,
) -> None:
    """Run this data dir's node in the foreground until Ctrl-C (logs on stderr)."""
    import logging

    from ..node.config import NodeConfig
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
    cfg.portmap_gateway = portmap_gateway
    cfg.passphrase = (
        _read_passphrase(passphrase_file, confirm=False)
        if _key_encrypted(cfg.identity_path)
        else None
    )
    try:
        run_daemon(cfg, remember_ports=remember_ports)
    except P2PSocialError as exc:
        fail(exc.message)


def _key_encrypted(identity_path: Path) -> bool:
    try:
        return b"ENCRYPTED" in identity_path.read_bytes()[:64]
    except OSError:
        return False


@click.command("id")
@json_option
@pass_ctx
def id_(c: Ctx) -> None:
    """Print this data dir's identity."""
    path = c.data_dir / IDENTITY_TEXT_FILE
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


@click.command()
@json_option
@pass_ctx
def status(c: Ctx) -> None:
    """Show the daemon's identity, addresses, peers and feeds, and list forked feeds."""
    st = c.call("status")
    c.out().record(st, output.format_status)


@click.command()
@json_option
@pass_ctx
def statistics(c: Ctx) -> None:
    """Show the daemon's counters: DHT, replication, local API and store.

    Drops and refusals are counted by reason (for example ``dropped``,
    ``links_dropped``, ``internal_errors``). The output is JSON either way;
    --json prints it on one line.
    """
    stats = c.call("statistics")
    c.out().record(stats, lambda s: json.dumps(s, indent=2, sort_keys=True, ensure_ascii=False))


# --- network -----------------------------------------------------------------------------


@click.command()
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


@click.command("connect")
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


@click.command()
@click.option(
    "--nodes", type=click.IntRange(2, 12), default=4, show_default=True, help="Daemons to start."
)
@click.option("--keep", is_flag=True, help="Keep the temporary data dirs (their path is printed).")
@pass_ctx
def demo(c: Ctx, nodes: int, keep: bool) -> None:
    """Start a real network of daemons on 127.0.0.1 and watch posts propagate."""
    from .demo import run_demo

    sys.exit(run_demo(nodes=nodes, keep=keep, color=c.color, verbose=c.verbose))


#: This module's commands, for the root group.
COMMANDS = [init, daemon, id_, status, statistics, peers, connect_cmd, demo]
