"""The sentence estimators train what ``cl-domains run`` trains: same recipe, profile and seed -> same metrics."""

import json

import numpy as np

import cl_domains
from cl_domains.cli import main
from cl_domains.sentences import SimCSE, read_corpus


def test_fit_equals_the_cli_run_of_the_recipe(tmp_path, tiny_backbone, tiny_data):
    settings = {
        "model.backbone": tiny_backbone,
        "data.train": tiny_data["train"],
        "data.test": tiny_data["test"],
        "data.max_train": 48,
        "train.max_steps": 3,
    }
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    assert main(["run", "simcse_unsup_sts", "--profile", "tiny", *sets, "--out", str(tmp_path / "cli")]) == 0
    (run_dir,) = (tmp_path / "cli").iterdir()
    cli = json.loads((run_dir / "metrics.json").read_text())
    assert set(cli["final"]) == {"stsb_test"}

    sections: dict = {}
    for key, value in settings.items():
        section, name = key.split(".")
        if key != "data.train":
            sections.setdefault(section, {})[name] = value
    by_path = SimCSE(recipe="simcse_unsup_sts", profile="tiny", out=tmp_path / "py", **sections).fit(tiny_data["train"])
    assert by_path.recipe_.train.seed == 42  # an explicit recipe keeps its own seed
    assert by_path.metrics_ == cli["final"] and by_path.baselines_ == cli["baselines"]
    assert by_path.run_dir_.parent == tmp_path / "py" and (by_path.run_dir_ / "model" / "cl_domains.json").is_file()

    in_memory = SimCSE(recipe="simcse_unsup_sts", profile="tiny", **sections).fit(read_corpus(tiny_data["train"]))
    assert in_memory.run_dir_ is None and in_memory.metrics_ == cli["final"]

    # the CLI run's model/ folder is a model directory: it loads as the estimator and embeds as the fitted one
    x = ["a man plays a guitar", "stocks fell sharply today"]
    from_run = cl_domains.load(run_dir / "model")
    assert isinstance(from_run, SimCSE) and from_run.metrics_ == cli["final"]
    assert np.array_equal(from_run.embed(x), in_memory.embed(x))
    assert from_run.evaluate() == cli["final"] == in_memory.evaluate(tiny_data["test"])  # without the trained task


def test_saved_folder_loads_in_sentence_transformers(tmp_path, tiny_backbone, tiny_data):
    from sentence_transformers import SentenceTransformer

    model = SimCSE(
        model={"backbone": tiny_backbone, "max_len": 16},
        data={"dev": None, "test": None},
        train={"max_steps": 2, "batch_size": 8},
    ).fit(read_corpus(tiny_data["train"])[:16])
    x = ["a man plays a guitar", "stocks fell sharply today"]
    folder = model.save(tmp_path / "m")
    assert {"cl_domains.json", "README.md", "modules.json", "config.json"} <= {p.name for p in folder.iterdir()}
    st = SentenceTransformer(str(folder), device="cpu").encode(x, convert_to_numpy=True)
    assert np.allclose(st, model.encode(x), atol=1e-5)
    assert np.array_equal(cl_domains.load(folder).encode(x), model.embed(x))
