"""view_json: an entry as the API shows it, held to EntryView.to_json (spec/client-api.md §5)."""

from __future__ import annotations

import pytest

from p2psocial.node.render import view_json
from p2psocial.storage.model import EntryView
from tests.storage.test_view_json import CASES, E2


@pytest.mark.parametrize("fork_seq", [None, 7])
@pytest.mark.parametrize("view", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_view_json_is_to_json_and_the_api_fields(view: EntryView, fork_seq: int | None) -> None:
    got = view_json(view, fork_seq=fork_seq)
    base = view.to_json()
    want = {
        **base,
        "reply_to": base["reply_parent"],
        "author_forked": fork_seq is not None,
        "author_fork_seq": fork_seq,
    }
    assert got == want
    assert list(got) == list(want)


def test_view_json_copies_what_it_shows() -> None:
    view = EntryView(
        id=E2,
        author=E2,
        seq=1,
        kind="post",
        timestamp=1,
        tags=["a"],
        reactions={"+": 1},
        payload={"text": "x", "tags": ["a"]},
    )
    js = view_json(view, fork_seq=None)
    js["tags"].append("b")
    js["reactions"]["-"] = 1
    js["payload"]["text"] = "y"
    assert view.tags == ["a"] and view.reactions == {"+": 1} and view.payload["text"] == "x"
