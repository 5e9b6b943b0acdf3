"""Recipe validation, profiles, overrides, and the one-paragraph CLI errors for bad input."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cl_domains.cli import main
from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
@pytest.mark.parametrize("profile", ["paper", "quick", "tiny"])
def test_shipped_recipes_validate(path, profile):
    """Every shipped recipe has the same profile names: paper, quick and tiny (a smoke run of seconds to minutes)."""
    r = load_recipe(path, profile)
    assert r.profile == profile and r.description
    assert r.paper.source  # where the numbers come from (or why there are none)
    if profile == "tiny":
        assert r.train.max_steps or r.train.epochs <= 5
    if r.domain == "sentences":  # quick = the offline backbone, a step budget; paper = BERT-base as published
        if profile in ("quick", "tiny"):
            assert r.model.backbone.startswith("pkg:") and r.train.max_steps
        else:
            assert r.model.backbone == "bert-base-uncased" and r.train.max_steps is None


def test_default_profile_is_quick():
    assert load_recipe(REPO / "recipes/debcse_sts.yaml").profile == "quick"


def test_overrides_and_profile_merge():
    r = load_recipe(
        REPO / "recipes/simcse_unsup_sts.yaml",
        "quick",
        ["train.lr=1e-5", "method.objective.temperature=0.1", "data.max_train=640"],
    )
    assert r.train.lr == 1e-5 and r.method.objective.temperature == 0.1 and r.data.max_train == 640
    assert r.train.eval_every == 50  # from the quick profile
    assert r.resolved["train"]["lr"] == 1e-5


def edited(tmp_path, change, name="bad.yaml"):
    raw = yaml.safe_load((REPO / "recipes/debcse_sts.yaml").read_text())
    change(raw)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(raw))
    return p


def test_misspelt_key_names_the_path_and_the_choices(tmp_path):
    p = edited(tmp_path, lambda r: r["train"].update(lrr=1e-5))
    with pytest.raises(UserError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert "unknown key 'train.lrr'" in msg and "did you mean 'lr'" in msg and "batch_size" in msg and str(p) in msg


def test_misspelt_nested_domain_key(tmp_path):
    p = edited(tmp_path, lambda r: r["model"].update(poolin="cls"))
    with pytest.raises(UserError, match=r"unknown key 'model.poolin' \(did you mean 'pooling'\?\)"):
        load_recipe(p)


def test_wrong_type_and_bad_choice(tmp_path):
    p = edited(tmp_path, lambda r: r["train"].update(batch_size="sixty-four"))
    with pytest.raises(
        UserError, match=r"'train.batch_size' = 'sixty-four' is invalid: Input should be a valid integer"
    ):
        load_recipe(p)
    p = edited(tmp_path, lambda r: r["model"].update(pooling="max"))
    with pytest.raises(
        UserError,
        match=r"'model.pooling' = 'max' is invalid: Input should be 'auto', 'cls', 'cls_mlp', 'mean' or 'first_last_avg'",
    ):
        load_recipe(p)
    p = edited(tmp_path, lambda r: r["method"].update(name="debcs"))
    with pytest.raises(
        UserError, match=r"'method.name' = 'debcs' is not a sentences method; choose one of: debcse, multicsr, simcse"
    ):
        load_recipe(p)


def test_bad_profile_and_override(tmp_path):
    with pytest.raises(UserError, match="unknown profile 'fast'; choose one of: paper, quick"):
        load_recipe(REPO / "recipes/debcse_sts.yaml", "fast")
    with pytest.raises(UserError, match=r"with --set overrides: unknown key 'train.learning_rate'"):
        load_recipe(REPO / "recipes/debcse_sts.yaml", "quick", ["train.learning_rate=1"])
    with pytest.raises(UserError, match="KEY.PATH=VALUE"):
        load_recipe(REPO / "recipes/debcse_sts.yaml", "quick", ["train.lr"])
    with pytest.raises(UserError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_cli_bad_recipe_is_one_paragraph_without_traceback(tmp_path):
    p = edited(tmp_path, lambda r: r["train"].update(lrr=1e-5))
    proc = subprocess.run(
        [sys.executable, "-m", "cl_domains.cli", "run", str(p)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown key 'train.lrr'" in proc.stderr
    assert proc.stderr.strip().startswith("error:") and proc.stderr.strip().count("\n\n") == 0


def test_cli_missing_data_file(tmp_path, capsys):
    code = main(
        ["run", str(REPO / "recipes/debcse_sts.yaml"), "--data-root", str(tmp_path), "--out", str(tmp_path / "runs")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert (
        "dataset 'stsb'" in err
        and "sts-dev.csv is missing" in err
        and str(tmp_path) in err
        and "cl-domains data fetch stsb" in err
    )
    assert not (tmp_path / "runs").exists()  # nothing half-made


def test_cli_corrupt_data_file(tmp_path, capsys, data_root):
    for split in ("dev", "test"):
        dst = tmp_path / f"sentences/stsb/original/sts-{split}.csv"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_root / f"sentences/stsb/original/sts-{split}.csv", dst)
    bad = tmp_path / "sentences/stsb/original/sts-test.csv"
    bad.write_bytes(bad.read_bytes().replace(b"\t", b" ", 1))
    code = main(
        ["run", str(REPO / "recipes/debcse_sts.yaml"), "--data-root", str(tmp_path), "--out", str(tmp_path / "runs")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "sts-test.csv is corrupt (sha256" in err and "refusing to use it" in err
