"""The estimator contract, table-driven over every registered estimator of every domain (cases in
``tests/conformance/<domain>.py``), plus the generic parts of the base class and the model directory."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conformance import Case, Ctx

from cl_domains.core import registry
from cl_domains.core.errors import UserError
from cl_domains.core.estimator import Estimator, estimators
from cl_domains.core.modeldir import MANIFEST, make_manifest, model_card, read_model_dir, write_model_dir

CONFORMANCE = Path(__file__).parent / "conformance"


def _domains() -> list[str]:
    return registry.builtin_domains()


def _registered() -> list:
    params = []
    for domain in _domains():
        try:
            found = estimators(domain)
        except UserError as exc:  # a domain whose optional dependencies are not installed
            params.append(pytest.param(domain, None, id=f"{domain}-unavailable", marks=pytest.mark.skip(str(exc))))
            continue
        params += [pytest.param(domain, name, id=f"{domain}-{name}") for (_, name) in sorted(found)]
    return params


def _case(domain: str, name: str) -> Case:
    path = CONFORMANCE / f"{domain}.py"
    if not path.is_file():
        pytest.fail(f"tests/conformance/{domain}.py is missing: every domain supplies CASES for its estimators")
    cases = importlib.import_module(f"conformance.{domain}").CASES
    if name not in cases:
        pytest.fail(f"tests/conformance/{domain}.py has no case for the registered estimator {name!r}")
    return cases[name]


@pytest.mark.parametrize("domain", _domains())
def test_every_registered_method_has_an_estimator(domain):
    try:
        methods = set(registry.domain(domain).methods)
        have = {cls.method_name for cls in estimators(domain).values()}
    except UserError as exc:
        pytest.skip(str(exc))
    assert (CONFORMANCE / f"{domain}.py").is_file(), f"tests/conformance/{domain}.py is missing"
    assert methods <= have, f"{domain} methods without an estimator: {sorted(methods - have)}"


@pytest.mark.parametrize("domain,name", _registered())
def test_estimator_conformance(domain, name, tmp_path, request):
    """fit on tiny data; embed's type, shape and dtype; save -> load -> identical embeddings (and predictions);
    evaluate's keys == the run report's final metric keys; the model card holds the metrics; cl-domains embed on
    the saved model == embed in Python (cases with ``embed_file``)."""
    case = _case(domain, name)
    ctx = Ctx(tmp=tmp_path, **{f: request.getfixturevalue(f) for f in case.fixtures})
    est = case.make(ctx)
    assert isinstance(est, Estimator) and (est.domain, est.estimator_name) == (domain, name)
    assert est.fit(*case.fit_args(ctx)) is est
    assert est.run_dir_ is None or est.run_dir_.is_dir()

    x = case.inputs(ctx)
    z = est.embed(x)
    assert isinstance(z, np.ndarray) and z.dtype == np.float32 and z.ndim == 2 and z.shape[0] == case.n
    assert np.isfinite(z).all()
    t = est.embed(x, as_tensor=True)
    assert isinstance(t, torch.Tensor) and t.device.type == "cpu" and np.array_equal(t.numpy(), z)

    metrics = est.evaluate(case.eval_data(ctx) if case.eval_data else None)
    assert set(metrics) == set(est.metrics_), "evaluate() keys differ from the run report's final metrics"

    saved = est.save(tmp_path / "model")
    manifest = json.loads((saved / MANIFEST).read_text())
    assert (manifest["domain"], manifest["estimator"]) == (domain, name)
    assert manifest["embedding_dim"] in (None, z.shape[1])
    card = (saved / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: cl-domains")
    for key in est.metrics_:
        assert key in card

    import cl_domains

    again = cl_domains.load(saved)
    assert type(again) is type(est)
    z2 = again.embed(x)
    assert z2.dtype == z.dtype and np.array_equal(z2, z), "load(dir).embed(x) differs from the saved model's"
    if case.predict:
        p1, p2 = np.asarray(est.predict(x)), np.asarray(again.predict(x))
        assert np.array_equal(p1, p2)

    if case.embed_file:
        from cl_domains.cli import main

        src = case.embed_file(ctx)
        ids, inputs = type(est).read_inputs(src)
        expected = est.embed(inputs)
        assert main(["embed", str(saved), "--data", str(src), "--out", str(tmp_path / "z.npy")]) == 0
        assert np.array_equal(np.load(tmp_path / "z.npy"), expected)
        assert (tmp_path / "z.ids.txt").read_text().split("\n")[: len(ids)] == [str(i) for i in ids]
        import pandas as pd

        assert main(["embed", str(saved), "--data", str(src), "--out", str(tmp_path / "z.parquet")]) == 0
        table = pd.read_parquet(tmp_path / "z.parquet")
        assert list(table.columns) == ["id", *(f"e{j}" for j in range(expected.shape[1]))]
        assert table["id"].tolist() == [str(i) for i in ids]
        assert np.array_equal(table.drop(columns="id").to_numpy(np.float32), expected)


def test_embed_command_user_errors_exit_2(tmp_path, capsys):
    from cl_domains.cli import main

    src = tmp_path / "x.txt"
    src.write_text("a sentence\n")
    assert main(["embed", str(tmp_path), "--data", str(src), "--out", str(tmp_path / "z.csv")]) == 2
    assert "write .parquet or .npy" in capsys.readouterr().err
    assert main(["embed", str(tmp_path), "--data", str(src), "--out", str(tmp_path / "z.npy")]) == 2
    assert "no cl_domains.json" in capsys.readouterr().err
    assert main(["embed", str(tmp_path), "--data", str(tmp_path / "none.txt"), "--out", str(tmp_path / "z.npy")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_embed_file_chunks_only_where_the_estimator_allows(tmp_path, monkeypatch):
    from cl_domains.core import embedding
    from cl_domains.core import estimator as estimator_module

    class Fake:
        chunked_inference = True

        def __init__(self):
            self.calls = []

        def read_inputs(self, path):
            return [f"r{i}" for i in range(10)], np.arange(20, dtype=np.float32).reshape(10, 2)

        def embed(self, x):
            self.calls.append(len(x))
            return x * 2

    fake = Fake()
    monkeypatch.setattr(estimator_module, "load", lambda directory: fake)
    (tmp_path / "in.txt").write_text("x\n")
    z = embedding.embed_file(tmp_path, tmp_path / "in.txt", tmp_path / "z.npy", batch_size=4)
    assert fake.calls == [4, 4, 2] and np.array_equal(np.load(tmp_path / "z.npy"), z) and z[9, 1] == 38
    assert (tmp_path / "z.ids.txt").read_text().split() == [f"r{i}" for i in range(10)]
    fake.calls, fake.chunked_inference = [], False
    embedding.embed_file(tmp_path, tmp_path / "in.txt", tmp_path / "z.npy", batch_size=4)
    assert fake.calls == [10]


# ---------------------------------------------------------------------- the base class, without a domain
class _Plain(Estimator):
    default_recipe = "simcse_unsup_sts"


def test_constructor_stores_and_refuses_old_keywords():
    est = _Plain(train={"max_steps": 3}, method="simcse")
    assert est.get_params() == {
        "recipe": None,
        "profile": None,
        "out": None,
        "model": None,
        "data": None,
        "method": "simcse",
        "train": {"max_steps": 3},
        "eval": None,
    }
    assert est.set_params(profile="tiny") is est and est.profile == "tiny"
    with pytest.raises(UserError, match=r"'steps' is not accepted; write train=\{'max_steps': N\}"):
        _Plain(steps=10)
    with pytest.raises(UserError, match=r"method=\{\.\.\.\}"):
        _Plain(method_options={"a": 1})
    with pytest.raises(UserError, match="did you mean 'train'"):
        _Plain(trian={})
    with pytest.raises(UserError, match="'n_iters' is not accepted"):
        est.set_params(n_iters=5)
    with pytest.raises(
        UserError, match=r"_Plain.fit\(\): the keyword 'epochs' is not accepted; write train=\{'epochs'"
    ):
        est.fit(["a"], epochs=3)


def test_build_recipe_merges_sections_with_the_recipe_validation(data_root):
    recipe = _Plain(train={"max_steps": 3}, model={"max_len": 8}).build_recipe({"max_train": 10})
    assert recipe.profile == "quick" and recipe.train.max_steps == 3 and recipe.model.max_len == 8
    assert recipe.data.max_train == 10 and recipe.train.seed == 0  # the Python default seed
    explicit = _Plain(recipe="simcse_unsup_sts", profile="tiny").build_recipe()
    assert explicit.profile == "tiny" and explicit.train.seed == 42  # the recipe's own seed
    with pytest.raises(UserError, match=r"unknown key 'train.max_step' \(did you mean 'max_steps'\?\)"):
        _Plain(train={"max_step": 3}).build_recipe()
    with pytest.raises(UserError, match="must be a dict"):
        _Plain(train=3).build_recipe()
    with pytest.raises(UserError, match="not fitted"):
        _Plain().embed(["a"])


def test_model_dir_round_trip_and_damage(tmp_path, data_root):
    recipe = _Plain(train={"max_steps": 3}).build_recipe()
    manifest = make_manifest(recipe, embedding_dim=2, metrics={"stsb_test": 0.5}, baselines={"b": {"stsb_test": 0.4}})
    write_model_dir(tmp_path / "m", manifest, {"model.safetensors": {"w": torch.ones(2)}}, {"vocab.json": ["a"]})
    md = read_model_dir(tmp_path / "m")
    assert md.manifest["files"] == {"model.safetensors": "tensors", "vocab.json": "json"}
    assert torch.equal(md.tensors()["w"], torch.ones(2)) and md.json("vocab.json") == ["a"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert "library_name: cl-domains" in card and "| stsb_test | 0.5000 | 0.4000 |" in card
    assert card == model_card(md.manifest)

    (tmp_path / "m" / "vocab.json").unlink()
    with pytest.raises(UserError, match="lacks vocab.json"):
        read_model_dir(tmp_path / "m")
    (tmp_path / "m" / MANIFEST).write_text("{not json")
    with pytest.raises(UserError, match=f"{MANIFEST} is not valid JSON"):
        read_model_dir(tmp_path / "m")
    (tmp_path / "m" / MANIFEST).write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(UserError, match="not a cl-domains model manifest"):
        read_model_dir(tmp_path / "m")
    with pytest.raises(UserError, match="no cl_domains.json"):
        read_model_dir(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        Estimator.load(tmp_path / "nowhere")
