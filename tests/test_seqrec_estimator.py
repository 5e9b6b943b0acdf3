"""The seqrec estimators: fit == cl-domains run for the same recipe and seed, a log as a DataFrame or a file,
evaluate on a loaded model, and the names that moved."""

import json

import numpy as np
import pandas as pd
import pytest
from conformance.seqrec import HISTORIES, TINY, log

import cl_domains
from cl_domains.cli import main
from cl_domains.core.errors import UserError
from cl_domains.seqrec import SASRec, fit_interactions


def _sets(prefix: str, d: dict) -> list[str]:
    return [f"{prefix}.{k}={json.dumps(v)}" for k, v in d.items()]


def test_fit_equals_cli_run_of_the_same_recipe_and_seed(tmp_path):
    path = tmp_path / "log.csv"
    log().to_csv(path, index=False)
    settings = {"recipe": "sasrec_beauty", "profile": "tiny", "model": TINY["model"], "train": {"seed": 3}}
    est = SASRec(out=tmp_path / "py", **settings).fit(path)
    # the CLI: the log given by --set replaces the recipe's data.sequences
    sets = [*_sets("model", TINY["model"]), "train.seed=3", f"data.interactions={path}"]
    args = ["run", "sasrec_beauty", "--profile", "tiny", "--out", str(tmp_path / "cli")]
    assert main([*args, *[a for s in sets for a in ("--set", s)]]) == 0
    (run_dir,) = (tmp_path / "cli").iterdir()
    cli = json.loads((run_dir / "metrics.json").read_text())
    assert est.metrics_ == cli["final"] and est.baselines_ == cli["baselines"]
    assert est.run_dir_.parent == tmp_path / "py" and (est.run_dir_ / "report.md").is_file()
    run_model = cl_domains.load(run_dir / "model")  # the run's model folder is the same model
    assert type(run_model) is SASRec and np.array_equal(run_model.embed(HISTORIES), est.embed(HISTORIES))
    assert run_model.predict(HISTORIES) == est.predict(HISTORIES)
    # the same log as a DataFrame trains the same model
    frame = SASRec(**settings).fit(log())
    assert frame.metrics_ == est.metrics_ and np.array_equal(frame.embed(HISTORIES), est.embed(HISTORIES))
    assert frame.run_dir_ is None  # out=None: the run directory was temporary


def test_loaded_model_predicts_and_evaluates_in_raw_ids(tmp_path):
    est = SASRec(**TINY).fit(log())
    top = est.predict(HISTORIES, k=4)
    assert len(top) == 3 and all(len(t) == 4 and not set(t) & set(h) for t, h in zip(top, HISTORIES, strict=False))
    assert est.recommend(["i001"], k=2) == est.predict([["i001"]], k=2)[0]  # one history, one answer
    again = cl_domains.load(est.save(tmp_path / "m"))
    assert again.predict(HISTORIES, k=4) == top and again.evaluate(log()) == est.evaluate() == est.metrics_
    assert json.loads((tmp_path / "m" / "items.json").read_text())["items"][:2] == ["i000", "i001"]
    with pytest.raises(UserError, match=r"item 'nope' is not one of the model's 25 items"):
        again.embed([["nope"]])
    with pytest.raises(UserError, match="a loaded model has none"):
        again.evaluate()
    # another log: items the model does not know are removed first; a file reads like the DataFrame
    unseen = pd.DataFrame({"user_id": ["u0", "u1"], "item_id": ["new-item", "i003"], "timestamp": [100, 100]})
    more = pd.concat([log(), unseen], ignore_index=True)
    more.to_csv(tmp_path / "more.csv", index=False)
    assert again.evaluate(tmp_path / "more.csv") == again.evaluate(more) != est.metrics_
    assert again.evaluate(more[more.item_id != "new-item"]) == again.evaluate(more)


def test_the_estimators_data_section_replaces_the_recipes_sequences(tmp_path):
    recipe = SASRec(data={"interactions": "log.csv", "k_core": 2}).build_recipe()
    assert (recipe.data.interactions, recipe.data.sequences, recipe.data.k_core) == ("log.csv", None, 2)
    assert recipe.train.seed == 0 and recipe.profile == "quick"  # the Python defaults
    with pytest.raises(UserError, match="exactly one of data.sequences"):
        SASRec(data={"interactions": "log.csv", "sequences": "s.txt"}).build_recipe()


def test_old_entry_points_name_the_new_ones():
    with pytest.raises(UserError, match=r"replaced by the seqrec estimators: SASRec\("):
        fit_interactions(log(), max_steps=3)
    with pytest.raises(UserError, match=r"'max_steps' is not accepted; write train=\{'max_steps': N\}"):
        SASRec(max_steps=3)
    with pytest.raises(UserError, match="not int"):
        SASRec(**TINY).fit(3)


def test_prepared_data_have_distinct_names():
    import cl_domains.seqrec as seqrec
    import cl_domains.slu as slu

    assert seqrec.PreparedLog is not slu.PreparedSpeech
    assert "Prepared" not in seqrec.__all__ and "Prepared" not in slu.__all__
    for module, new in ((seqrec, "PreparedLog"), (slu, "PreparedSpeech")):
        with pytest.raises(AttributeError, match=f"is now {new}"):
            module.Prepared  # noqa: B018


@pytest.mark.parametrize("domain", ["seqrec", "slu"])
def test_public_classes_have_docstrings(domain):
    import importlib
    import inspect
    import pkgutil

    package = importlib.import_module(f"cl_domains.{domain}")
    modules = [package] + [
        importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)
    ]
    missing = [
        f"{module.__name__}.{name}"
        for module in modules
        for name in getattr(module, "__all__", [])
        if inspect.isclass(obj := getattr(module, name)) and not (obj.__dict__.get("__doc__") or "").strip()
    ]
    assert not missing, f"public classes without a docstring: {missing}"


def test_a_sequence_file_trains_in_internal_ids(tmp_path):
    g = np.random.default_rng(1)
    lines = [f"{u} " + " ".join(str(i) for i in g.integers(1, 21, 5)) for u in range(1, 21)]
    (tmp_path / "seqs.txt").write_text("\n".join(lines) + "\n")
    est = SASRec(**TINY).fit(tmp_path / "seqs.txt")
    assert est.recipe_.data.sequences == str(tmp_path / "seqs.txt") and est.recipe_.data.interactions is None
    users, histories = est.read_inputs(tmp_path / "seqs.txt")
    assert users[:2] == ["1", "2"] and histories[0] == [int(x) for x in lines[0].split()[1:]]
    top = est.predict(histories[:2], k=3)
    assert all(len(t) == 3 and all(isinstance(i, int) and 1 <= i <= 20 for i in t) for t in top)
    assert cl_domains.load(est.save(tmp_path / "m")).evaluate(tmp_path / "seqs.txt") == est.metrics_
