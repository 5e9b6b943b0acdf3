"""Conformance cases of the hetgraph estimators: the 150-movie synthetic graph (3 genres, string labels), the
recipes' ``tiny`` profiles (2 epochs, one label rate, 2 probe repeats): seconds each."""

from __future__ import annotations

import torch
from test_hetgraph_own_data import movies

from cl_domains.hetgraph import MEOW, AdaMEOW
from conformance import Case

METAPATHS = [["movie", "actor", "movie"], ["movie", "director", "movie"]]
SMALL = {"model": {"nei_max": [20, 20]}, "eval": {"dev_repeats": 1}}


def _graph(ctx):
    if not hasattr(ctx, "graph"):
        ctx.graph = movies()
    return ctx.graph


def _graph_file(ctx):
    path = ctx.tmp / "movies.pt"
    torch.save(_graph(ctx), path)
    return path


CASES = {
    "meow": Case(
        make=lambda ctx: MEOW(profile="tiny", method={"clusters": [3, 6]}, **SMALL),
        fit_args=lambda ctx: (_graph(ctx), "movie", METAPATHS),
        inputs=_graph,
        n=150,
        eval_data=_graph,
        embed_file=_graph_file,
    ),
    "adameow": Case(
        make=lambda ctx: AdaMEOW(profile="tiny", **SMALL),
        fit_args=lambda ctx: (_graph(ctx), "movie", METAPATHS),
        inputs=_graph,
        n=150,
        eval_data=_graph,
    ),
}
