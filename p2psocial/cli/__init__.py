"""The ``p2psocial`` command line (the console script is ``p2psocial.cli.main:main``).

``cli`` is the click group, for embedding or for ``click.testing.CliRunner``.
The entry point ``main`` is not re-exported here: a package attribute named
``main`` would hide the submodule ``p2psocial.cli.main`` from attribute
lookups such as ``import p2psocial.cli.main as m``.
"""

from __future__ import annotations

from .main import cli

__all__ = ["cli"]
