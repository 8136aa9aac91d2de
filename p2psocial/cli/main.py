"""The ``p2psocial`` command."""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="p2psocial")
def cli() -> None:
    """p2psocial: a peer-to-peer social network node and its terminal client."""


def main() -> None:
    """Console-script entry point."""
    cli()
