"""Benchmark regression: each sentence recipe's quick profile end to end, against the untrained
backbone on the same splits and against its stored result.

Stored results: ``benchmarks/results/sentences-quick.json`` (written by
``benchmarks/sentences_quick.py``; the quick profile's seed is 42). The stored runs train
[CLS] pooling (``model.pooling=cls_mlp``; the quick profiles now default to the backbone's own pooling) and score below the backbone's native mean pooling (STS-B test 82.03), see
``sentences-quick.md``; so the baseline each test must beat is the backbone with the recipe's
pooling (73.50), and the band around the stored result guards the method's own level.
Selected with ``-m integration`` (or ``-m benchmark``); the default run (CI) has those not marked ``slow``.
"""

import json
from pathlib import Path

import pytest
import torch

from cl_domains.core import registry
from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import seed_everything, train_task

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "sentences-quick.json"
RECIPE_POOLING = "backbone, cls pooling (recipe)"
NATIVE = "backbone, mean pooling (native)"


def stored(recipe: str) -> dict[str, float]:
    """STS-B test per seed of the recipe's plain quick profile."""
    seeds = json.loads(RESULTS.read_text())[recipe]["seeds"]
    return {s: r["test"] for s, r in seeds.items()}


# Margins and bands, from the measured seed spread (sentences-quick.md, seeds 42 and 1):
# - gains over the recipe-pooling baseline are 4.5-5.5 points with seed-to-seed differences below
#   0.5, so each method must clear that baseline by 4 points (MultiCSR 3.5: one seed measured, 4.5 gain);
# - a run lands within BAND of its stored seed-42 result: seed-to-seed differences are at most 0.4 and a
#   rerun of the same seed differs only by thread-count rounding, so 1.0 flags a real change;
# - DebCSE: its gain over unsup SimCSE at the same budget is 0.79 / 0.34 (seeds 42 / 1); it must beat
#   SimCSE's stored seed-42 result by 0.3, the part of that gain above seed noise.
CASES = {
    "simcse_unsup_sts": {"margin": 4.0, "band": 1.0},
    "debcse_sts": {"margin": 4.0, "band": 1.0, "beats": ("simcse_unsup_sts", 0.3)},
    "simcse_sup_sts": {"margin": 4.0, "band": 1.0},
    "multicsr_sts": {"margin": 3.5, "band": 1.0},
}


@pytest.mark.integration
@pytest.mark.benchmark
@pytest.mark.parametrize(
    "recipe",
    [
        # The sentence quick profiles take 10-12 min each on 2 CPU cores: all are selected with `-m slow` /
        # `-m benchmark` (CI trains sentences end to end in the own-data, objective and resume tests instead),
        # so that CI stays well under 30 minutes (measured: 31.4 min from scratch with DebCSE's 700 s in it).
        pytest.param("simcse_unsup_sts", marks=pytest.mark.slow),
        pytest.param("debcse_sts", marks=pytest.mark.slow),
        pytest.param("simcse_sup_sts", marks=pytest.mark.slow),
        # stages 1-2 on 50 seeds with the local LLM (~8 min, cached after the first run) + stage 3; the profile's
        # method.min_generated = 10 stops the run when the generator keeps fewer (13 measured): a dead generator
        # fails this test instead of passing on the human pairs alone
        pytest.param("multicsr_sts", marks=pytest.mark.slow),
    ],
)
def test_quick_profile_beats_the_backbone_and_matches_its_stored_result(recipe, tmp_path, data_root):
    from sentence_transformers import SentenceTransformer

    case = CASES[recipe]
    # the stored results train from [CLS] + head; the quick profile's default pooling is now the backbone's own (mean)
    r = load_recipe(f"recipes/{recipe}.yaml", "quick", ["model.pooling=cls_mlp"])
    _, builder = registry.domain("sentences").methods[r.method.name]
    seed_everything(r.train.seed)  # as train_recipe: the MLP head is initialised while the task is built
    task = builder(r, data_root, torch.device("cpu"))
    base = task.baselines("test")
    run = train_task(r, task, out=tmp_path)
    m = run.metrics
    final = m["final"]["stsb_test"]
    # the baselines are on the run's own test split: the recipe-pooling one is the run's untrained score
    assert base[RECIPE_POOLING]["stsb_test"] == pytest.approx(m["before"]["stsb_test"], abs=1e-6)
    assert base[NATIVE]["stsb_test"] == pytest.approx(82.03, abs=0.01)  # the published all-MiniLM-L6-v2 figure
    floor = base[RECIPE_POOLING]["stsb_test"] + case["margin"]
    assert final >= floor, f"{recipe}: {final:.2f} < backbone ({RECIPE_POOLING}) + {case['margin']} = {floor:.2f}"
    ref = stored(recipe)["42"]
    assert abs(final - ref) <= case["band"], f"{recipe}: {final:.2f} is not within {case['band']} of stored {ref:.2f}"
    if "beats" in case:
        other, margin = case["beats"]
        assert final >= stored(other)["42"] + margin, (
            f"{recipe}: {final:.2f} lost its gain over {other} ({stored(other)['42']:.2f} + {margin})"
        )
    if recipe == "multicsr_sts":
        assert task.stats["kept"] >= 10
    # The exported encoder embeds as the run's encoder does (so it reproduces the run's scores).
    sents = task.test.s1[:64] + task.test.s2[:64]
    st = SentenceTransformer(str(run.dir / "model"), device="cpu")
    ours = task.encoder.encode(sents, batch_size=64, normalize=True)
    theirs = torch.nn.functional.normalize(torch.as_tensor(st.encode(sents, batch_size=64)), dim=-1)
    assert torch.allclose(ours, theirs, atol=1e-4)
