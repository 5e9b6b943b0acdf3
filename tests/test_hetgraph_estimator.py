"""The hetgraph estimators beyond the shared conformance test: ``fit`` equals ``cl-domains run`` of the same recipe
and seed (in memory and from the saved file), ``evaluate`` reproduces the run's metrics, the graph forms ``fit``
reads, the recipe's per-meta-path settings, and the errors of the Python entry points."""

import json

import numpy as np
import pytest
import torch
import yaml
from test_hetgraph_own_data import movies, write_folder

from cl_domains.core.errors import UserError
from cl_domains.hetgraph import MEOW, AdaMEOW, load_encoder, load_graph, load_heco, read_graph

METAPATHS = [["movie", "actor", "movie"], ["movie", "director", "movie"]]


def movies_recipe(tmp_path):
    """The movies graph saved as .pt and a recipe training MEOW on it, with a ``tiny`` profile and seed 3."""
    torch.save(movies(), tmp_path / "movies.pt")
    recipe = {
        "name": "meow_movies",
        "domain": "hetgraph",
        "description": "MEOW on the synthetic movies graph",
        "model": {"nei_max": [20, 20]},
        "data": {"path": str(tmp_path / "movies.pt"), "target": "movie", "metapaths": METAPATHS},
        "method": {"name": "meow", "clusters": [3, 6]},
        "train": {"seed": 3, "epochs": 10, "eval_every": 5, "threads": 1},
        "eval": {"rates": [10]},
        "profiles": {
            "tiny": {
                "train": {"epochs": 2, "eval_every": 2, "checkpoint_every": 2},
                "eval": {"repeats": 2, "steps": 30, "cluster_runs": 1, "dev_repeats": 1},
            }
        },
    }
    path = tmp_path / "meow_movies.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_fit_equals_the_cli_run_of_the_recipe(tmp_path):
    """Same recipe, profile and seed: ``cl-domains run``, ``fit`` on the graph in memory and ``fit`` on its file give
    the same final metrics and embeddings; ``evaluate`` on the graph trained on gives them again."""
    from cl_domains.cli import main

    recipe = movies_recipe(tmp_path)
    assert main(["run", str(recipe), "--profile", "tiny", "--out", str(tmp_path / "cli")]) == 0
    (run_dir,) = (tmp_path / "cli").iterdir()
    cli = json.loads((run_dir / "metrics.json").read_text())["final"]

    graph = load_graph(tmp_path / "movies.pt")
    m = MEOW(recipe=recipe, profile="tiny").fit(graph)
    assert m.recipe_.train.seed == 3 and m.run_dir_ is None
    assert m.metrics_ == cli and set(cli) >= {"macro_f1_10", "micro_f1_10", "auc_10", "nmi", "ari"}
    assert m.evaluate(graph) == cli and m.evaluate() == cli
    z = m.embed(graph)
    assert np.array_equal(MEOW.load(run_dir / "model").embed(graph), z)  # the run's model/ is a model directory

    from_file = MEOW(recipe=recipe, profile="tiny").fit(tmp_path / "movies.pt")
    assert from_file.metrics_ == cli and np.array_equal(from_file.embed(), z)


def test_save_load_keeps_what_embedding_needs(tmp_path):
    m = AdaMEOW(profile="tiny", model={"nei_max": [20, 20]}, eval={"rates": [10], "dev_repeats": 1})
    m.fit(movies(), target="movie", metapaths=METAPATHS)
    saved = m.save(tmp_path / "model")
    settings = json.loads((saved / "encoder.json").read_text())
    assert settings["target"] == "movie"
    assert settings["metapaths"] == {"movie-actor-movie": METAPATHS[0], "movie-director-movie": METAPATHS[1]}
    assert settings["feat_dims"] == {"movie": 8, "actor": 60, "director": 15}
    assert settings["node_types"] == ["movie", "actor", "director"]
    again = AdaMEOW.load(saved)
    other = movies(seed=1)  # another graph of the same schema
    assert np.array_equal(again.embed(other), m.embed(other))
    assert again.evaluate(other) == m.evaluate(other)
    assert torch.equal(load_encoder(saved).embed(other), m.embed(other, as_tensor=True))
    assert set(again.modules_) == {"encoder", "objective", "weights"}  # AdaMEOW's pair weights are saved too
    # an encoder exported by cl-domains 0.1.0 (config.json + encoder.safetensors) still loads
    from safetensors.torch import save_model

    (tmp_path / "old").mkdir()
    save_model(m.encoder_, str(tmp_path / "old" / "encoder.safetensors"))
    (tmp_path / "old" / "config.json").write_text(json.dumps(m.encoder_.config))
    assert torch.equal(load_encoder(tmp_path / "old").embed(other), m.embed(other, as_tensor=True))
    with pytest.raises(UserError, match="give the graph"):
        again.embed()
    with pytest.raises(UserError, match="no prediction head"):
        again.predict(other)
    with pytest.raises(UserError, match=r"holds a hetgraph AdaMEOW model, not a MEOW"):
        MEOW.load(saved)

    wrong = movies()
    wrong["movie"].x = torch.randn(150, 5)
    with pytest.raises(UserError, match=r"node type 'movie' has 5 features; .* trained on width 8"):
        again.embed(wrong)
    wrong = movies()
    del wrong["director"]
    with pytest.raises(UserError, match=r"no node type 'director'"):
        again.embed(wrong)


def test_graph_forms_and_the_recipe_settings(tmp_path):
    """What ``fit`` reads (no training): a schema folder, a .pt path, a shipped name; the recipe's per-meta-path
    lists kept for its own meta-paths only; old keywords refused with the new form."""
    schema = write_folder(tmp_path)
    assert torch.equal(read_graph(schema.parent)["movie"].x, load_heco(schema)["movie"].x)
    est = MEOW()
    assert est.data_settings(schema.parent) == {"dataset": None, "path": str(schema)}
    assert est.data_settings("dblp") == {"dataset": "dblp", "path": None}
    assert est.build_recipe(est.data_settings(None)).model.nei_max == [110, 700]  # meow_acm's, for ACM
    assert est.build_recipe(est.data_settings("acm")).model.nei_max == [110, 700]
    dblp = movies()
    dblp.dataset = "dblp"  # what load_heco("dblp") sets: its schema's 3 meta-paths, not meow_acm's 2
    assert est.build_recipe(est.data_settings(dblp)).model.nei_max is None
    own = est.build_recipe(est.data_settings(movies(), "movie", METAPATHS))
    assert own.model.nei_max is None and own.model.adj_mask is None  # 50 / 0.2 per meta-path
    assert own.data.metapaths == METAPATHS and own.data.dataset is None and own.profile == "quick"
    given = MEOW(model={"nei_max": [5, 6]}).build_recipe(est.data_settings(movies(), "movie", METAPATHS))
    assert given.model.nei_max == [5, 6] and given.model.adj_mask is None

    with pytest.raises(UserError, match=r"'epochs' is not accepted; write train=\{'epochs': E\}"):
        MEOW(epochs=5)
    with pytest.raises(UserError, match=r"'nei_max' is not accepted; write model=\{'nei_max': \.\.\.\}"):
        MEOW(nei_max=[30])
    with pytest.raises(UserError, match=r"fit\(\): unknown keyword 'out'; write MEOW\(out=\.\.\.\)"):
        MEOW().fit(movies(), "movie", METAPATHS, out="runs")
    with pytest.raises(UserError, match=r"the graph given to fit: give target= and metapaths= to fit \(target: a node"):
        MEOW(train={"epochs": 1}).fit(movies())
    with pytest.raises(UserError, match="not fitted"):
        MEOW().embed(movies())
    with pytest.raises(UserError, match=r"expected a torch_geometric HeteroData or the path of one .*, not int"):
        read_graph(3)
