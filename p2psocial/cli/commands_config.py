"""Node settings from the command line: ``config get|set|show`` and ``bootstrap add|list|rm``.

These commands edit config.toml in the data dir (through
:class:`p2psocial.node.config.NodeConfig`, imported lazily: the file's
comments and layout are kept) and check every value with the rules the
daemon applies when it loads the file. A policy setting goes through the
running daemon when there is one, so it applies at once; a new explicit peer
is dialled at once; the other node settings are read when the daemon starts,
and the command says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..client import DaemonNotRunning
from ..errors import APIError, P2PSocialError
from . import output
from .context import Ctx, fail, json_option, pass_ctx

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["COMMANDS"]

#: Policy settings changed only through block/unblock and mute/unmute, which
#: also purge, refetch and publish as needed.
_BY_COMMAND = {"policy.blocked": "block/unblock", "policy.muted": "mute/unmute"}

_RESTART = "restart the daemon to apply it"


# NodeConfig is typed Any here: the CLI reaches node/ only inside functions.
def _load(c: Ctx) -> Any:
    """The data dir's saved settings, a ``NodeConfig``."""
    from ..node.config import NodeConfig

    try:
        return NodeConfig.load(c.data_dir)
    except P2PSocialError as exc:
        fail(exc.message)


def _save(cfg: Any) -> None:
    try:
        cfg.save()
    except (OSError, P2PSocialError) as exc:
        fail(f"cannot write {cfg.config_path}: {getattr(exc, 'message', exc)}")


def _running(c: Ctx) -> Client | None:
    """The running daemon's client, or None when no daemon answers."""
    try:
        return c.client()
    except DaemonNotRunning:
        return None


def _parse(name: str, words: tuple[str, ...]) -> tuple[str, Any]:
    from ..node.config import parse_setting

    try:
        return parse_setting(name, words)
    except P2PSocialError as exc:
        fail(exc.message)


def _report(c: Ctx, name: str, value: Any, applied: str) -> None:
    """Print what a change did: ``applied`` is ``live``, ``restart`` or ``saved``."""
    notes = {
        "live": "saved and applied to the running daemon",
        "restart": f"saved; {_RESTART}",
        "saved": "saved; the daemon reads it when it starts",
    }
    record = {
        "key": name,
        "value": value,
        "applied": applied,
        "restart_needed": applied == "restart",
    }
    c.out().record(record, lambda r: f"{name} = {output.format_value(value)} ({notes[applied]})")


def _connect_new_peers(c: Ctx, client: Client, old: list[str], new: list[str]) -> None:
    for address in new:
        if address in old:
            continue
        host, _, port = address.rpartition(":")
        try:
            client.call("connect", host=host.strip("[]"), port=int(port))
        except APIError as exc:
            c.out().warn(f"could not link with {address} now: {exc.message}")


# --- config -------------------------------------------------------------------


@click.group("config")
def config_group() -> None:
    """Show and change this node's settings (config.toml in the data dir).

    \b
    Settings are named KEY or TABLE.KEY:
      node.listen node.port node.dht_port node.bootstrap node.peers
      policy.hops policy.max_payload_bytes policy.quota_entries_per_day
      policy.quota_bytes_per_day policy.hide_patterns policy.blocklists
      policy.accept_inbound policy.lan_discovery policy.relay_*
      (policy.blocked/muted: use block and mute)
    \b
    Ranges: ports 0..65535 (0: any free port), hops 1..2, the other numbers
    0 or more (a quota of 0 is no limit); flags take true or false.
    \b
    Comments and layout in config.toml are kept. Policy changes apply to the
    running daemon at once; node settings when the daemon next starts.
    """


@config_group.command("show")
@json_option
@pass_ctx
def config_show(c: Ctx) -> None:
    """Print every setting saved in config.toml (defaults for those not in it)."""
    from ..node.config import setting_names

    cfg = _load(c)
    settings = {name: cfg.get_setting(name) for name in setting_names()}
    c.out().record(settings, output.format_settings)


@config_group.command("get")
@click.argument("key")
@json_option
@pass_ctx
def config_get(c: Ctx, key: str) -> None:
    """Print the saved value of KEY (a list: one item per line)."""
    from ..node.config import setting_name

    try:
        name = setting_name(key)
    except P2PSocialError as exc:
        fail(exc.message)
    value = _load(c).get_setting(name)
    if c.json:
        c.out().record({"key": name, "value": value}, str)
    elif isinstance(value, list):
        for item in value:
            click.echo(item)
    else:
        click.echo(output.format_value(value))


@config_group.command("set")
@click.argument("key")
@click.argument("value", nargs=-1)
@json_option
@pass_ctx
def config_set(c: Ctx, key: str, value: tuple[str, ...]) -> None:
    """Set KEY to VALUE and save it in config.toml.

    \b
    A list takes several values, and none clears it:
      p2psocial config set port 4001
      p2psocial config set policy.hops 2
      p2psocial config set peers 192.0.2.7:4001 198.51.100.2:4001
      p2psocial config set hide_patterns          (clears the list)
    """
    name, parsed = _parse(key, value)
    if name in _BY_COMMAND:
        fail(f"{name} changes with p2psocial {_BY_COMMAND[name]}, which also purges or refetches")
    table, _, short = name.partition(".")
    client = _running(c)
    if table == "policy" and client is not None:
        # The daemon checks the value again and saves config.toml itself.
        client.call("set_policy", key=short, value=parsed)
        _report(c, name, parsed, "live")
        return
    cfg = _load(c)
    old = cfg.get_setting(name)
    try:
        cfg.set_setting(name, parsed)
    except P2PSocialError as exc:
        fail(exc.message)
    _save(cfg)
    if client is None:
        _report(c, name, parsed, "saved")
    elif name == "node.peers":
        _connect_new_peers(c, client, old, parsed)
        _report(c, name, parsed, "live")
    else:
        _report(c, name, parsed, "restart")


# --- bootstrap ----------------------------------------------------------------


@click.group()
def bootstrap() -> None:
    """List, add and remove the DHT addresses this node joins the network through.

    A bootstrap address is another node's DHT address (HOST:PORT, as its
    `p2psocial status` prints after "dht"). The daemon uses the list when it
    starts; a node that has run before also rejoins through the contacts it
    saved, so the list matters most for a new node.
    """


@bootstrap.command("list")
@json_option
@pass_ctx
def bootstrap_list(c: Ctx) -> None:
    """Print the bootstrap addresses, one per line."""
    printer = c.out()
    addresses = _load(c).bootstrap
    for address in addresses:
        printer.record({"address": address}, lambda r: r["address"])
    if not addresses:
        printer.note("no bootstrap addresses (add one: p2psocial bootstrap add HOST:PORT)")


@bootstrap.command("add")
@click.argument("address", metavar="HOST:PORT")
@json_option
@pass_ctx
def bootstrap_add(c: Ctx, address: str) -> None:
    """Add ADDRESS (HOST:PORT, port 1..65535) to the bootstrap list."""
    _, [checked] = _parse("node.bootstrap", (address,))
    cfg = _load(c)
    if checked in cfg.bootstrap:
        c.out().record(
            {"address": checked, "added": False}, lambda r: f"{checked} is already listed"
        )
        return
    cfg.bootstrap.append(checked)
    _save(cfg)
    _bootstrap_changed(c, checked, added=True)


@bootstrap.command("rm")
@click.argument("address", metavar="HOST:PORT")
@json_option
@pass_ctx
def bootstrap_rm(c: Ctx, address: str) -> None:
    """Remove ADDRESS from the bootstrap list."""
    cfg = _load(c)
    if address not in cfg.bootstrap:
        fail(f"{address} is not in the bootstrap list (see: p2psocial bootstrap list)")
    cfg.bootstrap.remove(address)
    _save(cfg)
    _bootstrap_changed(c, address, added=False)


def _bootstrap_changed(c: Ctx, address: str, *, added: bool) -> None:
    restart = _running(c) is not None
    verb = "added" if added else "removed"
    tail = f"; {_RESTART}" if restart else ""
    c.out().record(
        {"address": address, verb: True, "restart_needed": restart},
        lambda r: f"{verb} {address}{tail}",
    )


#: This module's commands, for the root group.
COMMANDS = [config_group, bootstrap]
