"""What every command shares: the global options, the client, failing, and the --json options."""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..paths import resolve_data_dir

if TYPE_CHECKING:
    from ..client import Client
    from . import output

__all__ = [
    "Ctx",
    "add_trailing_globals",
    "fail",
    "json_option",
    "page_options",
    "pass_ctx",
    "published",
]


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
            # Imported on first use: --help and the commands that need no
            # daemon never load the client and its frame codec.
            from ..client import connect

            self._client = connect(self.data_dir, api=self.api, wait=self.wait)
        return self._client

    def call(self, method: str, **params: Any) -> Any:
        """Call an API method, leaving out the parameters that are None."""
        params = {k: v for k, v in params.items() if v is not None}
        return self.client().call(method, **params)

    def out(self) -> output.Printer:
        """A printer for this invocation's output mode."""
        # Imported here, not at the top: ``p2psocial --help`` prints nothing
        # through it, and the root group loads this module.
        from . import output

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
    from ..api.methods import PAGE_LIMIT_MAX

    f = click.option(
        "--before",
        metavar="CURSOR",
        help="Show the page after this cursor. The previous page printed it: as a "
        '"more: --before CURSOR" hint on stderr, or with --json as its last line, '
        '{"next": CURSOR}.',
    )(f)
    f = click.option(
        "--limit",
        type=click.IntRange(1, PAGE_LIMIT_MAX),
        default=20,
        show_default=True,
        help=f"Entries per page, 1 to {PAGE_LIMIT_MAX}.",
    )(f)
    return json_option(f)


def _set_global(attr: str) -> Any:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        c = ctx.find_object(Ctx)
        if c is None or value in (None, False, 0):
            return  # not given after the command: the root group's value stands
        if attr == "data_dir":
            c.data_dir = resolve_data_dir(value)
        elif attr == "color":
            c.color = False
        elif attr == "verbose":
            c.verbose += value
        else:
            setattr(c, attr, value)

    return callback


@functools.cache
def _trailing_globals() -> tuple[click.Option, ...]:
    # Made once and shared by every command: an Option holds no per-command
    # state, and building ~300 of them cost the start-up of every command.
    def opt(decls: list[str], attr: str, **kw: Any) -> click.Option:
        return click.Option(
            decls,
            hidden=True,
            expose_value=False,
            allow_from_autoenv=False,
            callback=_set_global(attr),
            **kw,
        )

    return (
        opt(["--data-dir", "_g_data_dir"], "data_dir", type=click.Path(file_okay=False)),
        opt(["--api", "_g_api"], "api"),
        opt(["--json", "_g_json"], "json", is_flag=True),
        opt(["--no-color", "_g_no_color"], "color", is_flag=True),
        opt(["-v", "--verbose", "_g_verbose"], "verbose", count=True),
        opt(["--wait", "_g_wait"], "wait", type=float),
    )


def add_trailing_globals(command: click.Command) -> None:
    """Let the root group's options also follow ``command`` and its subcommands.

    ``p2psocial timeline --data-dir x`` then means ``p2psocial --data-dir x
    timeline``; an option given in both places takes the later value. The
    copies are hidden from the command's --help (the root's --help lists them).
    """
    taken = {o for p in command.params for o in p.opts + p.secondary_opts}
    command.params.extend(p for p in _trailing_globals() if not taken.intersection(p.opts))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_trailing_globals(sub)


def published(c: Ctx, result: dict[str, Any], what: str) -> None:
    """Print the result of a command that published an entry."""
    c.out().record(result, lambda r: f"{what} {r['id']} (seq {r['seq']})")
