"""The local API between a daemon and its clients, sans-IO.

What both ends of the Unix socket share, with no sockets in it: the frame
codec (:mod:`.protocol`), the method table and its parameter checks
(:mod:`.methods`), the ready line a daemon prints (:mod:`.ready`) and the
sentences both show to people (:mod:`.notes`). The server that serves a node
over the socket is node I/O and lives in :mod:`p2psocial.node.apiserver`; the
client is :mod:`p2psocial.client`. Nothing here imports either.

Each name is imported from its module on first use: a program that needs
only the method table (the CLI's ``--help``) does not load the frame codec
and what it imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol import lazy_exports

if TYPE_CHECKING:
    from .methods import METHODS, PAGE_LIMIT_MAX, ListOf, ParamSpec, check_params
    from .notes import fork_note
    from .protocol import (
        API_NAME,
        API_VERSION,
        MAX_FRAME,
        FrameBuffer,
        decode_frame_payload_untrusted,
        encode_frame,
    )
    from .ready import READY_PREFIX, format_ready_line, parse_ready_line

#: Public name -> the submodule that defines it (imported on first access).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "METHODS": ".methods",
        "PAGE_LIMIT_MAX": ".methods",
        "ListOf": ".methods",
        "ParamSpec": ".methods",
        "check_params": ".methods",
        "fork_note": ".notes",
        "API_NAME": ".protocol",
        "API_VERSION": ".protocol",
        "MAX_FRAME": ".protocol",
        "FrameBuffer": ".protocol",
        "decode_frame_payload_untrusted": ".protocol",
        "encode_frame": ".protocol",
        "READY_PREFIX": ".ready",
        "format_ready_line": ".ready",
        "parse_ready_line": ".ready",
    },
)


__all__ = [
    "API_NAME",
    "API_VERSION",
    "MAX_FRAME",
    "METHODS",
    "PAGE_LIMIT_MAX",
    "READY_PREFIX",
    "FrameBuffer",
    "ListOf",
    "ParamSpec",
    "check_params",
    "decode_frame_payload_untrusted",
    "encode_frame",
    "fork_note",
    "format_ready_line",
    "parse_ready_line",
]
