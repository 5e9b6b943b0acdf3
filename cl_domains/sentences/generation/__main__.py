"""Run MultiCSR stages 1-2 alone (no training) for a recipe:

    python -m cl_domains.sentences.generation recipes/multicsr_sts.yaml [--profile quick] [--set k=v ...]

prints the counts and where the cached pairs are (``pairs.csv``, ``stats.json``)."""

from __future__ import annotations

import argparse
import sys

from ...core.data import resolve
from ...core.errors import UserError
from ...core.recipe import load_recipe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cl_domains.sentences.generation", description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--profile")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--data-root")
    args = ap.parse_args(argv)
    from ..multicsr import read_seeds
    from .pipeline import build_pairs

    try:
        recipe = load_recipe(args.recipe, args.profile, args.overrides)
        g = recipe.method.generation
        if recipe.train.threads:
            import torch

            torch.set_num_threads(recipe.train.threads)
        if recipe.method.name != "multicsr" or g is None:
            raise UserError(f"{args.recipe}: method is not multicsr with a 'generation' section.")
        build_pairs(read_seeds(g, resolve(recipe.data.train, args.data_root), args.data_root), g)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
