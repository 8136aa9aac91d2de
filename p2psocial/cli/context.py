"""What every command shares: the global options, the client, failing, and the --json options."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from ..client import Client, connect
from ..paths import resolve_data_dir
from . import output

__all__ = ["Ctx", "fail", "json_option", "page_options", "pass_ctx", "published"]


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
        """The daemon's client, connected on first use.

        Raises:
            DaemonNotRunning: no daemon answers (within ``--wait``).
        """
        if self._client is None:
            self._client = connect(self.data_dir, api=self.api, wait=self.wait)
        return self._client

    def call(self, method: str, **params: Any) -> Any:
        """Call an API method, leaving out the parameters that are None."""
        params = {k: v for k, v in params.items() if v is not None}
        return self.client().call(method, **params)

    def out(self) -> output.Printer:
        """A printer for this invocation's output mode."""
        return output.Printer(json_mode=self.json, color=self.color)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``p2psocial: MESSAGE`` on stderr and exit with ``code``."""
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
    """--before, --limit and --json, for the commands that print a page of entries."""
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


def published(c: Ctx, result: dict[str, Any], what: str) -> None:
    """Print the result of a command that published an entry."""
    c.out().record(result, lambda r: f"{what} {r['id']} (seq {r['seq']})")
