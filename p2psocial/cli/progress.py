"""Progress of a feed's first catch-up, as ``follow`` shows it.

:func:`wait_for_recent` polls the daemon's ``sync_progress`` for one feed
until its recent part (the latest 50 entries, spec/sync.md 5.6) is held, or
a time limit passes. On a terminal it draws a rich progress bar on stderr;
under ``--json`` it prints one line per change on stdout,
``{"sync_progress": {...}}``; otherwise one line at the end, on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["RECENT_TIMEOUT", "UNKNOWN_TIMEOUT", "wait_for_recent"]

#: How long ``follow`` waits for the recent part, in seconds, by default.
RECENT_TIMEOUT = 30.0

#: How long it waits while no peer is known to hold anything of the feed.
UNKNOWN_TIMEOUT = 10.0

#: The fields of a progress line, in order (the rest of the row is left out).
_FIELDS = ("identity", "held", "head", "recent", "recent_held", "recent_complete", "complete")


def _row(call: Callable[..., Any], identity: str) -> dict[str, Any] | None:
    result = call("sync_progress", identity=identity)
    items = result.get("items") if isinstance(result, dict) else None
    return items[0] if items else None


def _line(row: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {**{k: row.get(k) for k in _FIELDS}, "elapsed_s": round(elapsed, 2)}


def _summary(row: dict[str, Any] | None, elapsed: float) -> str:
    if row is None or not row.get("head"):
        return (
            "no peer has sent this feed yet: it arrives once a node that holds it is "
            "reachable (p2psocial peers; p2psocial connect HOST:PORT)"
        )
    if row.get("recent_complete"):
        return (
            f"latest {row['recent']} entries here in {elapsed:.1f} s "
            f"({row['held']:,} of {row['head']:,} held; the rest follows in the background)"
        )
    return (
        f"still catching up after {elapsed:.0f} s: {row['recent_held']} of the latest "
        f"{row['recent']} held ({row['held']:,} of {row['head']:,}); it goes on in the background"
    )


def wait_for_recent(
    call: Callable[..., Any],
    identity: str,
    *,
    json_mode: bool,
    color: bool = True,
    timeout: float = RECENT_TIMEOUT,
    unknown_timeout: float = UNKNOWN_TIMEOUT,
    interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> dict[str, Any] | None:
    """Show how far ``identity``'s feed has caught up; return once its recent part is held.

    Args:
        call: ``Ctx.call`` (or ``Client.call``): ``call(method, **params)``.
        identity: the feed, as ``sync_progress`` takes it (text form or petname).
        json_mode: one JSON line per change on stdout instead of a bar.
        timeout: seconds to wait at most; the catch-up itself goes on in the daemon.
        unknown_timeout: seconds to wait at most while nothing of the feed is
            known (no linked peer holds it yet): then it says why and returns.
        interval: seconds between polls.
        clock, sleep, stdout, stderr: for tests.

    Returns:
        The last progress row (``recent_complete`` says whether it got there
        in time), or None if the daemon reports nothing for the feed.

    Raises:
        Whatever ``call`` raises (the daemon went away, an unknown petname).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    start = clock()
    deadline = start + timeout
    bar: Any = None
    task: Any = None
    if not json_mode and err.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        bar = Progress(
            TextColumn("catching up"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=Console(file=err, no_color=not color),
            transient=True,
        )
        bar.start()
        task = bar.add_task("latest entries", total=None)
    row: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    try:
        while True:
            row = _row(call, identity)
            now = clock()
            if row is not None:
                line = _line(row, now - start)
                if json_mode and {k: line[k] for k in _FIELDS} != last:
                    print(json.dumps({"sync_progress": line}), file=out, flush=True)
                    last = {k: line[k] for k in _FIELDS}
                if bar is not None and row.get("head"):
                    bar.update(
                        task,
                        total=row["recent"],
                        completed=row["recent_held"],
                        description=f"latest entries ({row['held']:,} of {row['head']:,} held)",
                    )
                if row.get("recent_complete"):
                    break
            unknown = row is None or not row.get("head")
            if now >= deadline or (unknown and now - start >= unknown_timeout):
                break
            sleep(min(interval, max(0.0, deadline - now)))
    finally:
        if bar is not None:
            bar.stop()
    if not json_mode:
        print(_summary(row, clock() - start), file=err)
    return row
