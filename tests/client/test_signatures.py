"""The Node, the blocking Client and the AsyncClient against the one API method table.

Every API method is a method of all three, with the same parameter names,
order, kinds and defaults, and the same summary line; none has a method the
table lacks. So the three cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from p2psocial.api.methods import METHODS
from p2psocial.client import AsyncClient, Client
from p2psocial.node.node import Node
from p2psocial.node.views import WatchFilter

#: Methods of the clients that are not API methods.
CLIENT_ONLY = {"call", "close"}
#: Parameters of a client's ``watch`` beyond the API's filters.
WATCH_EXTRAS = {Client: ["idle_timeout"], AsyncClient: []}
API = sorted(set(METHODS) - {"unwatch"})  # unwatch is the clients' own business


def params(func: Any) -> list[inspect.Parameter]:
    return list(inspect.signature(func).parameters.values())[1:]  # without self


def public_methods(cls: type) -> set[str]:
    return {name for name, v in vars(cls).items() if callable(v) and not name.startswith("_")}


@pytest.mark.parametrize("method", API)
def test_node_matches_the_table(method: str) -> None:
    if method == "watch":
        # The Node takes the filters as one WatchFilter; its fields are the table's.
        assert [f.name for f in dataclasses.fields(WatchFilter)] == list(METHODS["watch"])
        return
    plist = params(getattr(Node, method))
    assert {p.name for p in plist} == set(METHODS[method])
    for p in plist:
        required = METHODS[method][p.name][1]
        assert (p.default is inspect.Parameter.empty) == required, (method, p.name)


@pytest.mark.parametrize("cls", [Client, AsyncClient])
@pytest.mark.parametrize("method", API)
def test_clients_match_the_node(cls: type, method: str) -> None:
    func = getattr(cls, method)
    assert inspect.iscoroutinefunction(func) == (cls is AsyncClient)
    shape = [(p.name, p.kind, p.default) for p in params(func)]
    if method == "watch":
        expected = [
            (name, inspect.Parameter.KEYWORD_ONLY, None if name != "mentions_me" else False)
            for name in [*METHODS["watch"], *WATCH_EXTRAS[cls]]
        ]
    else:
        expected = [(p.name, p.kind, p.default) for p in params(getattr(Node, method))]
    assert shape == expected
    doc, node_doc = func.__doc__, getattr(Node, method).__doc__
    assert doc and node_doc
    if method != "watch":
        assert doc.splitlines()[0] == node_doc.splitlines()[0]


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_clients_have_no_extra_methods(cls: type) -> None:
    assert public_methods(cls) - CLIENT_ONLY == set(API)
