"""Conformance cases of the sentence estimators: the tiny 2-layer BERT, 2 steps of 8, STS-B test cut to 40 pairs."""

from pathlib import Path

from cl_domains.sentences import DebCSE, MultiCSR, SimCSE, SupSimCSE
from conformance import Case

FIXTURES = ("tiny_backbone", "tiny_data")
INPUTS = ["a man plays a guitar", "a cat sits on the mat", "stocks fell sharply", "rain is expected", "hello"]


def _settings(ctx, **method):
    return {
        "model": {"backbone": ctx.tiny_backbone, "max_len": 16, "eval_max_len": 32},
        "data": {"dev": None, "test": ctx.tiny_data["test"]},
        "train": {"max_steps": 2, "batch_size": 8, "eval_every": None, "checkpoint_every": 2, "eval_before": False},
        "eval": {"batch_size": 64},
        **({"method": method} if method else {}),
    }


def _sentences(ctx) -> list[str]:
    lines = Path(ctx.tiny_data["train"]).read_text().splitlines()
    return [s.strip() for s in lines if s.strip()][:32]


def _pairs(ctx) -> list[tuple[str, str]]:
    s = _sentences(ctx)
    return list(zip(s, s[1:] + s[:1], strict=False))


def _triplets(ctx) -> list[tuple[str, str, str]]:
    s = _sentences(ctx)
    return list(zip(s, s[1:] + s[:1], s[2:] + s[:2], strict=False))


def _text_file(ctx) -> Path:
    path = ctx.tmp / "sentences.txt"
    path.write_text("\n".join(INPUTS) + "\n")
    return path


CASES = {
    "simcse": Case(
        make=lambda ctx: SimCSE(**_settings(ctx)),
        fit_args=lambda ctx: (_sentences(ctx),),
        inputs=lambda ctx: INPUTS,
        n=len(INPUTS),
        embed_file=_text_file,
        fixtures=FIXTURES,
    ),
    "simcse_sup": Case(
        make=lambda ctx: SupSimCSE(**_settings(ctx)),
        fit_args=lambda ctx: (_pairs(ctx),),
        inputs=lambda ctx: INPUTS,
        n=len(INPUTS),
        fixtures=FIXTURES,
    ),
    "debcse": Case(
        make=lambda ctx: DebCSE(**_settings(ctx, neighbours=2)),
        fit_args=lambda ctx: (_sentences(ctx),),
        inputs=lambda ctx: INPUTS,
        n=len(INPUTS),
        fixtures=FIXTURES,
    ),
    "multicsr": Case(
        make=lambda ctx: MultiCSR(
            **_settings(ctx, generation=None, human_pairs=True, reference=ctx.tiny_backbone, reference_pooling="mean")
        ),
        fit_args=lambda ctx: (_triplets(ctx),),
        inputs=lambda ctx: INPUTS,
        n=len(INPUTS),
        fixtures=FIXTURES,
    ),
}
