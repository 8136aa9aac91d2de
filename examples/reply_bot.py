"""A bot that answers every reply to its posts.

Start a daemon, then run the bot against it (the bot posts as that daemon's
identity; ``--data-dir`` and ``P2PSOCIAL_HOME`` choose the daemon as they do
for ``p2psocial``):

    p2psocial daemon &
    python examples/reply_bot.py

With no daemon running it stops at once and says how to start one.

It uses the blocking client: one connection watches for new entries that
mention the bot (a reply names the parent's author in its mentions), another
makes the calls.
"""

from __future__ import annotations

import argparse
import sys

import p2psocial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", help="the daemon's data dir (default: P2PSOCIAL_HOME or the platform default)"
    )
    parser.add_argument("--api", help="the daemon's API socket, instead of the data dir's")
    parser.add_argument(
        "--max-replies", type=int, default=0, help="exit after answering this many (0: run forever)"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for a daemon that is starting (default: fail at once if none runs)",
    )
    args = parser.parse_args(argv)

    try:
        calls = p2psocial.connect(args.data_dir, api=args.api, wait=args.wait)
        events = p2psocial.connect(args.data_dir, api=args.api, wait=args.wait)
    except p2psocial.APIError as exc:
        print(f"reply_bot: {exc}", file=sys.stderr)
        return 1
    me = calls.identity
    answered = 0
    print(f"reply_bot: answering replies to {me}", flush=True)
    with calls, events:
        for event in events.watch(kinds=["post"], mentions_me=True):
            parent_id = event.get("reply_to")
            if event["author"] == me or not parent_id:
                continue
            thread = calls.thread(parent_id)["items"]
            parent = next((e for e in thread if e["id"] == parent_id), None)
            if parent is None or parent["author"] != me:
                continue  # a reply to somebody else's post that happens to mention us
            text = event.get("text") or ""
            result = calls.post(
                f"Thanks for your reply! You said: {text[:100]}", reply_to=event["id"]
            )
            answered += 1
            print(f"reply_bot: answered {event['id'][:12]} with {result['id'][:12]}", flush=True)
            if args.max_replies and answered >= args.max_replies:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
