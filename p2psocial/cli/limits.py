"""The limits a daemon applies, as the commands' --help states them.

Every number comes from the client package, which re-exports it from the
code that enforces it.
"""

from __future__ import annotations

from .. import client

__all__ = [
    "MAX_BIO_CHARS",
    "MAX_MENTIONS",
    "MAX_NAME_CHARS",
    "MAX_REASON_CHARS",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "MAX_TEXT_CHARS",
    "PAGE_LIMIT_MAX",
]

#: Characters in a post or reply.
MAX_TEXT_CHARS: int = client.MAX_TEXT_CHARS
#: Characters in a profile's display name and bio.
MAX_NAME_CHARS: int = client.MAX_NAME_CHARS
MAX_BIO_CHARS: int = client.MAX_BIO_CHARS
#: Mentions and tags per post, and characters per tag.
MAX_MENTIONS: int = client.MAX_MENTIONS
MAX_TAGS: int = client.MAX_TAGS
MAX_TAG_CHARS: int = client.MAX_TAG_CHARS
#: Characters in a public block's reason.
MAX_REASON_CHARS: int = client.MAX_REASON_CHARS
#: The largest page a daemon serves (``--limit`` is 1 to this).
PAGE_LIMIT_MAX: int = client.PAGE_LIMIT_MAX
