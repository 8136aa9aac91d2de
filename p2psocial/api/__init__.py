"""The local API between a daemon and its clients, sans-IO.

What both ends of the Unix socket share, with no sockets in it: the frame
codec (:mod:`.protocol`), the method table and its parameter checks
(:mod:`.methods`), the ready line a daemon prints (:mod:`.ready`) and the
sentences both show to people (:mod:`.notes`). The server that serves a node
over the socket is node I/O and lives in :mod:`p2psocial.node.apiserver`; the
client is :mod:`p2psocial.client`. Nothing here imports either.
"""

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
