"""The documented extension surface (docs/design.md): a toy method and a toy plugin domain written only
against ``cl_domains.core``, each run end to end; the Task base, registry, callbacks, rng and eval_mode."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
import torch
from pydantic import Field
from toy_task import StopAfter

from cl_domains.core import Callback, StrictModel, Task, eval_mode, generator, info_nce, method, registry
from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe
from cl_domains.core.rng import derive_seed
from cl_domains.core.train import TrainState, train_recipe

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "toy_plugin"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toyline():
    """The plugin's domain, imported in-process (the CLI test below installs it for real)."""
    sys.path.insert(0, str(PLUGIN))
    try:
        import cl_domains_toy

        yield cl_domains_toy
    finally:
        sys.path.remove(str(PLUGIN))


def toy_recipe(tmp_path, **method):
    text = (PLUGIN / "cl_domains_toy" / "toyline.yaml").read_text()
    if method:
        text = re.sub(r"method: \{.*\}", "method: " + json.dumps(method), text)
    path = tmp_path / "toyline.yaml"
    path.write_text(text)
    return load_recipe(path)


def test_a_new_method_on_an_existing_domain_runs_end_to_end(tmp_path, toyline):
    """docs/design.md, "Add a method": a config with ``name``, a Task subclass with ``config``, ``@method``."""

    class CentroidConfig(StrictModel):
        name: Literal["centroid"] = "centroid"
        objective: toyline.PairsObjective = Field(default_factory=toyline.PairsObjective)

    @method("toyline", "centroid")
    class Centroid(toyline.Pairs):
        """The views' mean as the positive (a different objective, same data and evaluation)."""

        config = CentroidConfig

        def loss(self, batch, ctx):
            a, b = (self.net(v[batch]) for v in self.views)
            return self.objective(a, (a + b).detach() / 2) + info_nce(a, b, 1.0)

    recipe = toy_recipe(tmp_path, name="centroid", objective={"loss": "info_nce", "temperature": 0.5})
    assert isinstance(recipe.method, CentroidConfig)
    run = train_recipe(recipe, out=tmp_path / "runs")
    m = run.metrics
    assert m["steps"] == 32 and m["final"]["top1"] > m["before"]["top1"] and m["final"]["top1"] >= 0.3
    assert (run.dir / "metrics.json").is_file() and (run.dir / "model" / "model.safetensors").is_file()


def test_the_plugin_domain_installs_and_runs_from_the_cli(tmp_path, toy_plugin_site):
    """docs/design.md, "Add a domain": a separate package declares the entry point ``cl_domains.plugins``;
    ``pip install`` it (here into a target folder) and ``cl-domains run`` finds the domain."""
    site = toy_plugin_site
    assert list(site.glob("cl_domains_toy-*.dist-info/entry_points.txt"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "OMP_NUM_THREADS": "1"}
    recipe = site / "cl_domains_toy" / "toyline.yaml"
    out = tmp_path / "runs"
    cli = [sys.executable, "-m", "cl_domains.cli", "run", str(recipe), "--out", str(out)]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (metrics,) = out.glob("*/metrics.json")
    final = json.loads(metrics.read_text())["final"]
    assert final["top1"] >= 0.3
    bad = subprocess.run(
        [*cli[:-3], str(recipe), "--set", "method.name=nope", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "not a toyline method; choose one of: pairs" in bad.stdout + bad.stderr


def test_registry_errors_are_clear():
    with pytest.raises(UserError, match=r"domain 'nope' is not one of: .*hetgraph.*sentences"):
        registry.domain("nope")
    assert {"sentences", "seqrec", "hetgraph", "timeseries", "regression", "slu"} <= set(registry.builtin_domains())
    with pytest.raises(TypeError, match="needs a `config` class attribute"):

        @method("toyline", "noconfig")
        class NoConfig(Task):
            pass


def test_renamed_keys_are_refused_with_the_new_name(tmp_path):
    text = (REPO / "recipes" / "mclrec_beauty.yaml").read_text().replace("cl1_weight:", "lmd:")
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(UserError, match=r"method: the key 'lmd' was renamed to 'cl1_weight': write cl1_weight: 0.0"):
        load_recipe(tmp_path / "r.yaml")


def test_every_optional_hook_has_a_default_and_a_docstring():
    required = {"num_batches", "batches", "evaluate"}
    hooks = [n for n, f in vars(Task).items() if callable(f) and not n.startswith("_")]
    assert {"loss", "embed_batch", "train_step", "optimizers", "on_step_end", "on_epoch_start", "on_evaluate"} <= set(
        hooks
    )
    for name in hooks:
        assert (getattr(Task, name).__doc__ or "").strip(), f"Task.{name} has no docstring"
    t = Task()
    assert t.optimizers() == {} and t.baselines() == {} and t.train_stats() == {}
    assert t.train_step(None, None, None) is None
    for name in required:
        with pytest.raises(NotImplementedError):
            getattr(t, name)(0) if name != "evaluate" else t.evaluate("dev")


def test_the_core_loop_looks_nothing_up_with_hasattr():
    core = REPO / "cl_domains" / "core"
    assert not [
        p.name for p in core.glob("*.py") if "hasattr(task" in p.read_text() or "hasattr(self.task" in p.read_text()
    ]


def test_callbacks_see_every_step_and_evaluation_and_hooks_run_in_order(tmp_path, toyline):
    events = []

    class Spy(Callback):
        def on_step_end(self, trainer, ctx, loss):
            events.append(("step", ctx.step, ctx.epoch, ctx.index))

        def on_evaluate(self, trainer, split, metrics):
            events.append(("eval", split))

        def on_fit_end(self, trainer, metrics):
            events.append(("end", metrics["steps"]))

    class Hooked(toyline.Pairs):
        def on_epoch_start(self, epoch):
            events.append(("epoch", epoch))

        def on_step_end(self, ctx):
            events.append(("task-step", ctx.step))

    from cl_domains.core.train import train_task

    recipe = toy_recipe(tmp_path)
    recipe.train.epochs, recipe.train.eval_every = 2, None
    train_task(recipe, Hooked(recipe, None, torch.device("cpu")), out=tmp_path / "r", callbacks=[Spy()])
    assert events[:2] == [("eval", "test"), ("eval", "dev")]  # eval_before, then the start as a dev candidate
    assert events[2:5] == [("epoch", 0), ("task-step", 0), ("step", 0, 0, 0)]
    assert ("epoch", 1) in events and ("step", 7, 1, 3) in events
    assert events[-3:] == [("eval", "dev"), ("eval", "test"), ("end", 8)]


def test_stop_callback_and_resume_reproduce_the_uninterrupted_run(tmp_path, toyline):
    recipe = toy_recipe(tmp_path)
    recipe.train.checkpoint_every = 3
    full = train_recipe(recipe, out=tmp_path / "full").metrics
    with pytest.raises(KeyboardInterrupt):
        train_recipe(recipe, out=tmp_path / "cut", callbacks=[StopAfter(10)])
    (cut,) = (tmp_path / "cut").iterdir()
    state = json.loads((cut / "checkpoints" / "step-0000009" / "trainer.json").read_text())["state"]
    assert TrainState.from_json(state).step == 9
    resumed = train_recipe(resume=cut).metrics
    assert resumed["history"]["loss"] == full["history"]["loss"] and resumed["final"] == full["final"]
    with pytest.raises(TypeError, match="not a training state"):
        TrainState.from_json({**state, "surprise": 1})


def test_rng_streams_are_independent_and_reproducible():
    assert derive_seed(1, "shuffle", 2) == derive_seed(1, "shuffle", 2)
    seeds = {derive_seed(s, tag, e) for s in range(3) for tag in ("shuffle", "positives") for e in range(50)}
    assert len(seeds) == 3 * 2 * 50  # the old `seed * 1000 + epoch` style collides across purposes; these do not
    a = torch.rand(4, generator=generator(0, "shuffle", 1))
    assert torch.equal(a, torch.rand(4, generator=generator(0, "shuffle", 1)))
    assert not torch.equal(a, torch.rand(4, generator=generator(0, "positives", 1)))


def test_eval_mode_restores_each_module_even_after_an_error():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    model.train()
    model[2].eval()  # a frozen sub-module must stay frozen
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not any(m.training for m in model.modules()) and not torch.is_grad_enabled()
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == [True, True, True, False] and torch.is_grad_enabled()
    with eval_mode(model, no_grad=False):
        assert torch.is_grad_enabled()


def test_a_new_dataset_card_is_found_verified_and_refused_when_corrupt(tmp_path, monkeypatch):
    """docs/design.md, "Add a dataset": a card with the file's sha256 in a cards folder."""
    from cl_domains.core import data

    (tmp_path / "data" / "mine").mkdir(parents=True)
    table = tmp_path / "data" / "mine" / "table.csv"
    table.write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "my_table.yaml").write_text(
        "name: my_table\ndomain: regression\ntitle: two rows\nlicense: CC0\nsource: made in a test\n"
        f"files:\n  table: {{path: mine/table.csv, rows: 2, sha256: {data.sha256sum(table)}}}\n"
    )
    monkeypatch.setenv(data.CARDS_ENV, str(tmp_path / "cards"))
    assert data.resolve("my_table/table", tmp_path / "data") == table
    assert [s for _, _, s in data.verify("my_table", tmp_path / "data")] == ["ok"]
    table.write_text("x,y\n1,2\n3,5\n")
    with pytest.raises(UserError, match=r"dataset 'my_table': file .*table.csv is corrupt .*refusing to use it"):
        data.resolve("my_table/table", tmp_path / "data")


def test_a_task_without_dev_metrics_keeps_its_last_step(tmp_path, toyline):
    from cl_domains.core.train import train_task

    class NoDev(toyline.Pairs):
        def evaluate(self, split):
            return {} if split == "dev" else super().evaluate(split)

    recipe = toy_recipe(tmp_path)
    run = train_task(recipe, NoDev(recipe, None, torch.device("cpu")), out=tmp_path / "r")
    assert run.metrics["no_dev"] and run.metrics["history"]["dev"] == [] and run.metrics["best_step"] is None
    assert run.metrics["steps"] == 32 and not (run.dir / "best").exists() and (run.dir / "curves.png").is_file()
    assert "the model of the last step is kept" in (run.dir / "train.log").read_text()


def test_recipe_from_dict_validates_like_a_file(tmp_path, toyline):
    import yaml

    from cl_domains.core.recipe import recipe_from_dict

    path = PLUGIN / "cl_domains_toy" / "toyline.yaml"
    raw = yaml.safe_load(path.read_text())
    a, b = load_recipe(path, "tiny", ["train.seed=3"]), recipe_from_dict(raw, "tiny", ["train.seed=3"], source="fit()")
    assert a.resolved == b.resolved and b.source == "fit()" and b.train.seed == 3 and raw["train"]["seed"] == 0
    with pytest.raises(UserError, match=r"recipe fit\(\): unknown key 'data.pointz' \(did you mean 'points'\?\)"):
        recipe_from_dict({**raw, "data": {"pointz": 3}}, source="fit()")


def test_a_study_names_its_sub_runs(tmp_path, toyline):
    from cl_domains.core.runs import Run

    recipe = toy_recipe(tmp_path)
    sub = Run.create(tmp_path / "study", recipe, name="strategies/pairs-seed0")
    assert sub.dir == tmp_path / "study" / "strategies" / "pairs-seed0" and (sub.dir / "config.yaml").is_file()
    with pytest.raises(UserError, match="exists already"):
        Run.create(tmp_path / "study", recipe, name="strategies/pairs-seed0")


def test_a_learnable_temperature_has_no_weight_decay(tmp_path, toyline):
    from cl_domains.core.runs import Run
    from cl_domains.core.train import Trainer

    recipe = toy_recipe(
        tmp_path, name="pairs", objective={"loss": "dcl", "temperature": 0.2, "learnable_temperature": True}
    )
    recipe.train.weight_decay = 0.5
    task = toyline.Pairs(recipe, None, torch.device("cpu"))
    groups = Trainer(recipe, task, Run(tmp_path), device=torch.device("cpu")).optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.5, 0.0]
    assert groups[1]["params"] == [task.objective.temperature.log_scale]
