"""``python -m p2psocial`` is the ``p2psocial`` command."""

from .cli.main import main

main()
