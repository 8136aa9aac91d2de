"""The node's SQLite store: ingest, derived social state, queries, deletion.

:class:`Store` is the synchronous core; :class:`AsyncStore` (from
:func:`open_store` / :func:`open_async_store`) runs it on a trio worker thread.
"""

from ..errors import StorageError
from .aio import AsyncStore, open_async_store, open_store
from .ingest import PreparedBatch
from .model import EntryView, Outcome, Page
from .schema import SCHEMA_VERSION
from .store import Store

__all__ = [
    "SCHEMA_VERSION",
    "AsyncStore",
    "EntryView",
    "Outcome",
    "Page",
    "PreparedBatch",
    "StorageError",
    "Store",
    "open_async_store",
    "open_store",
]
