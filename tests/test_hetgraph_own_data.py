"""MEOW / AdaMEOW on the user's own HeteroData: in memory from Python, from a recipe pointing at a torch.save'd
graph or at a HeCo-format folder described by a schema file; meta-path validation, label encoding, seeded
splits, graphs without labels, the memory estimate check, and the ACM card path against the generic path."""

import numpy as np
import pytest
import torch
import yaml
from conftest import readme_snippet, skip_or_fail

from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe
from cl_domains.core.train import train_recipe
from cl_domains.hetgraph import MEOW, AdaMEOW, load_encoder, load_heco, metapath_counts, resolve_metapath
from cl_domains.hetgraph.data import encode_labels, make_splits

TINY = {"repeats": 2, "steps": 30, "rates": [10], "cluster_runs": 1, "dev_repeats": 1}


def movies(labels=True, seed=0):
    """150 movies in 3 genres (50 each, string labels), 60 actors (20 per genre, no features), 15 directors
    (5 per genre, no features): every movie has 3 actors and 1 director of its genre, so the MAM and MDM meta-paths
    join movies of one genre."""
    from torch_geometric.data import HeteroData

    g = torch.Generator().manual_seed(seed)
    genre = torch.arange(3).repeat_interleave(50)
    data = HeteroData()
    data["movie"].x = torch.randn(150, 8, generator=g)
    data["actor"].num_nodes, data["director"].num_nodes = 60, 15
    acts = torch.stack([torch.arange(150).repeat(3), (genre * 20).repeat(3) + torch.randint(20, (450,), generator=g)])
    directs = torch.stack([genre * 5 + torch.randint(5, (150,), generator=g), torch.arange(150)])
    data["movie", "has", "actor"].edge_index = acts
    data["director", "directs", "movie"].edge_index = directs
    if labels:
        data["movie"].y = np.array(["action", "comedy", "drama"])[genre.numpy()].tolist()
    return data


FIT = dict(
    out=None,
    train={"epochs": 6, "eval_every": 3, "threads": 1},
    method={"clusters": [3, 6]},
    model={"nei_max": [20, 20]},
    eval=TINY,
)


def test_meow_fits_an_in_memory_heterodata(tmp_path):
    data = movies()
    m = MEOW(**{**FIT, "out": tmp_path}).fit(
        data, target="movie", metapaths=[["movie", "actor", "movie"], ["movie", "director", "movie"]]
    )
    z = m.embed(data)
    assert z.shape == (150, 64) and z.dtype == np.float32 and np.isfinite(z).all()
    final = m.metrics_
    assert final["macro_f1_10"] > 90, final  # a genre is a connected block of both meta-path graphs
    assert set(m.baselines_) == {"untrained encoder", "raw features"}
    assert m.baselines_["raw features"]["macro_f1_10"] < 60  # the features are noise
    # the run's exported model gives the same embeddings, as an estimator and as the torch encoder
    assert np.array_equal(MEOW.load(m.run_dir_ / "model").embed(data), z)
    assert np.array_equal(load_encoder(m.run_dir_ / "model").embed(data).detach().numpy(), z)
    assert m.task_.classes == ["action", "comedy", "drama"]


def test_adameow_with_edge_type_metapaths_and_no_labels(tmp_path):
    """Edge-type meta-paths; no labels: trained and selected on the views' InfoNCE, embeddings only."""
    data = movies(labels=False)
    data["actor", "in", "movie"].edge_index = data["movie", "has", "actor"].edge_index.flip(0)
    broken = [[("movie", "has", "actor"), ("movie", "has", "actor")]]
    with pytest.raises(UserError, match=r"\('movie', 'has', 'actor'\) ends at 'actor' but"):
        AdaMEOW(train={"epochs": 1}).fit(data, target="movie", metapaths=broken)
    m = AdaMEOW(train={"epochs": 2, "eval_every": 2, "threads": 1}, eval=TINY)
    m.fit(data, target="movie", metapaths=[[("movie", "has", "actor"), ("actor", "in", "movie")]])
    assert m.task_.dev_metric == "neg_nce" and set(m.metrics_) == {"nce"}
    assert not m.baselines_
    assert m.embed(data).shape == (150, 64)
    assert m.evaluate(data) == m.metrics_  # the views' InfoNCE of the selected model


def test_metapath_validation_errors():
    data = movies()
    with pytest.raises(UserError, match=r"movie-writer-movie: node type 'writer' is not in the graph"):
        resolve_metapath(data, ["movie", "writer", "movie"], "movie")
    with pytest.raises(UserError, match=r"edge type \('movie', 'wrote', 'actor'\) is not in the graph"):
        resolve_metapath(data, [("movie", "wrote", "actor"), ("actor", "rev", "movie")], "movie")
    with pytest.raises(UserError, match=r"no edge type between 'actor' and 'director'"):
        resolve_metapath(data, ["movie", "actor", "director", "movie"], "movie")
    with pytest.raises(UserError, match=r"goes from 'movie' to 'actor': a meta-path must start and end at the target"):
        resolve_metapath(data, ["movie", "actor"], "movie")
    with pytest.raises(UserError, match=r"goes from 'actor' to 'actor'.*target node type 'movie'"):
        resolve_metapath(data, ["actor", "movie", "actor"], "movie")
    # reversed hops walk a stored edge type backwards
    hops = resolve_metapath(data, ["movie", "director", "movie"], "movie")
    assert hops == ((("director", "directs", "movie"), True), (("director", "directs", "movie"), False))


def test_metapath_counts_by_hand():
    """Counts of movie-actor-movie on a 3-movie graph: M = A A^T with duplicated edges counted once."""
    from torch_geometric.data import HeteroData

    d = HeteroData()
    d["movie"].num_nodes, d["actor"].num_nodes = 3, 2
    # movie 0: actors 0, 1; movie 1: actor 0 (listed twice); movie 2: actor 1
    d["movie", "has", "actor"].edge_index = torch.tensor([[0, 0, 1, 1, 2], [0, 1, 0, 0, 1]])
    m = metapath_counts(d, ["movie", "actor", "movie"]).toarray()
    np.testing.assert_array_equal(m, [[2, 1, 1], [1, 1, 0], [1, 0, 1]])


def test_labels_are_encoded_and_splits_are_stratified():
    y, classes = encode_labels(["b", "a", "b", "c"], "t")
    assert y.tolist() == [1, 0, 1, 2] and classes == ["a", "b", "c"]
    y, classes = encode_labels(torch.tensor([1, 3, 2, 3]), "t")  # 1-based
    assert y.tolist() == [0, 2, 1, 2] and classes == [1, 2, 3]
    with pytest.raises(UserError, match=r"labels t: class labels must be integers or strings"):
        encode_labels(np.array([0.5, 1.0]), "t")
    y = torch.arange(3).repeat_interleave(40)
    train, val, test = make_splits(y, 10, seed=0)
    assert torch.bincount(y[train]).tolist() == [10, 10, 10]
    assert len(val) == len(test) == 45 and len(set(torch.cat([train, val, test]).tolist())) == 120
    assert torch.equal(make_splits(y, 10, seed=0)[0], train) and not torch.equal(make_splits(y, 10, seed=1)[0], train)
    with pytest.raises(UserError, match=r"class 0 has 40 labelled nodes, not more than 40.*eval.rates"):
        make_splits(y, 40, seed=0)


def write_folder(tmp_path, n_labels=150):
    """The movies graph as a HeCo-format folder with a schema file: 1-based labels, no split files."""
    data, d = movies(), tmp_path / "movies"
    d.mkdir()
    np.save(d / "m_feat.npy", data["movie"].x.numpy())
    np.savetxt(d / "ma.txt", data["movie", "has", "actor"].edge_index.T.numpy(), fmt="%d")
    np.savetxt(d / "dm.txt", data["director", "directs", "movie"].edge_index.T.numpy(), fmt="%d")
    genre = np.repeat(np.arange(1, 4), 50)[:n_labels]
    (d / "labels.txt").write_text("\n".join(map(str, genre)) + "\n")
    schema = {
        "name": "movies",
        "target": "movie",
        "nodes": {"movie": {"features": "m_feat"}, "actor": {"count": 60}, "director": {"count": 15}},
        "edges": {"ma": ["movie", "actor"], "dm": ["director", "movie"]},
        "labels": "labels.txt",
        "metapaths": {"mam": ["movie", "actor", "movie"], "mdm": ["movie", "director", "movie"]},
    }
    (d / "schema.yaml").write_text(yaml.safe_dump(schema))
    return d / "schema.yaml"


def test_heco_folder_with_schema_file(tmp_path):
    data = load_heco(write_folder(tmp_path))
    assert data["movie"].x.shape == (150, 8) and data["actor"].x.shape == (60, 60)
    assert data["movie"].y.tolist() == [0] * 50 + [1] * 50 + [2] * 50 and data["movie"].classes == [1, 2, 3]
    assert data["director", "to", "movie"].edge_index.shape == (2, 150)


def test_label_file_of_the_wrong_length_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"labels .*labels.txt has 149 entries but the graph has 150 movie nodes"):
        load_heco(write_folder(tmp_path, n_labels=149))


def recipe(tmp_path, *overrides):
    return load_recipe(
        "recipes/meow_acm.yaml",
        "quick",
        ["train.epochs=2", "train.eval_every=2", "eval.repeats=2", "eval.steps=30", "eval.cluster_runs=1"]
        + ["eval.rates=[20]", "method.clusters=[10, 20]", *overrides],
    )


def test_recipe_on_a_schema_folder_and_the_memory_check(tmp_path):
    schema = write_folder(tmp_path)
    over = ["data.dataset=null", f"data.path={schema}", "model.nei_max=[20, 20]", "eval.rates=[10]"]
    with pytest.raises(UserError, match=r"150 movie nodes need an estimated 0\.0\d* GiB .*over model.memory_limit_gib"):
        train_recipe(recipe(tmp_path, *over, "model.memory_limit_gib=1e-6"), out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    run = train_recipe(recipe(tmp_path, *over), out=tmp_path / "runs")
    assert run.metrics["final"]["macro_f1_10"] > 90


@pytest.fixture(scope="module")
def acm(data_root):
    if not (data_root / "hetgraph").is_dir():
        skip_or_fail(f"hetgraph data not found under {data_root}")
    return load_heco("acm", data_root)


def test_saved_heterodata_recipe_equals_the_acm_card(acm, tmp_path, data_root):
    """The ACM card (schema, fixed splits) and a torch.save'd copy with edge-type meta-paths given in the recipe:
    same seed, same embeddings and scores."""
    torch.set_num_threads(1)
    path = tmp_path / "acm.pt"
    torch.save(acm, path)
    card = train_recipe(recipe(tmp_path), out=tmp_path / "a", data_root=data_root)
    mp = "[[[paper, to, author], [author, rev_to, paper]], [[paper, to, subject], [subject, rev_to, paper]]]"
    own = train_recipe(
        recipe(tmp_path, "data.dataset=null", f"data.path={path}", "data.target=paper", f"data.metapaths={mp}"),
        out=tmp_path / "b",
    )
    z_card, z_own = (MEOW.load(r.dir / "model").embed(acm) for r in (card, own))
    assert np.array_equal(z_card, z_own)
    assert own.metrics["final"] == card.metrics["final"]


def test_readme_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = readme_snippet("hetgraph")
    ns: dict = {}
    exec(compile(code, "README hetgraph snippet", "exec"), ns)
    assert ns["z"].shape == (300, 64) and ns["z"].dtype == np.float32 and np.isfinite(ns["z"]).all()
    assert np.array_equal(ns["z2"], ns["z"]) and (tmp_path / "meow-movies" / "cl_domains.json").is_file()


def test_memory_estimate_by_hand():
    """150 targets, top-20 of two meta-paths: 3000 non-zeros > 1% of 150^2, so the 4 normalised graphs and their
    mean are dense (5 x 4 x 150^2 bytes), plus 8 N x N float32 step arrays."""
    from cl_domains.hetgraph.encoder import DENSE_PER_STEP, estimate_memory

    data = movies()
    hops = [resolve_metapath(data, p, "movie") for p in (["movie", "actor", "movie"], ["movie", "director", "movie"])]
    est = estimate_memory(data, "movie", hops, [20, 20])
    assert DENSE_PER_STEP == 8 and est["train"] == 8 * 4 * 150**2 + 5 * 4 * 150**2
    # movie-director-movie: 15 directors of 10 movies each (on average): sum of squared degrees
    directors = torch.bincount(data["director", "directs", "movie"].edge_index[0], minlength=15).double()
    actors = torch.bincount(data["movie", "has", "actor"].edge_index[1], minlength=60).double()
    pairs = min(float((actors**2).sum()), 150.0**2) + min(float((directors**2).sum()), 150.0**2)
    assert est["prepare"] == pytest.approx(12 * pairs + 512 * 150 * 28)
    assert est["total"] == max(est["train"], est["prepare"])


class _Payload:
    """Unpickling this runs ``touch(marker)``: what a hostile .pt file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_saved_graph_loads_safely_and_unpickles_only_when_trusted(tmp_path):
    """PyG's storages load with weights_only=True; numpy arrays or arbitrary objects need data.trust_pickle, and a
    hostile object is never run by the default load."""
    from cl_domains.hetgraph.data import load_graph
    from cl_domains.hetgraph.task import HetGraphDataConfig, load_data

    data = movies()  # string labels (a list), tensors, num_nodes
    torch.save(data, tmp_path / "plain.pt")
    back = load_graph(tmp_path / "plain.pt")
    assert torch.equal(back["movie"].x, data["movie"].x) and back["movie"].y == data["movie"].y
    assert back["actor"].num_nodes == 60 and torch.equal(
        back["director", "directs", "movie"].edge_index, data["director", "directs", "movie"].edge_index
    )

    data["movie"].y = np.repeat(np.arange(3), 50)  # a numpy array: not loadable with weights_only=True
    torch.save(data, tmp_path / "numpy.pt")
    cfg = {"path": str(tmp_path / "numpy.pt"), "target": "movie", "metapaths": [["movie", "actor", "movie"]]}
    with pytest.raises(UserError, match=r"numpy\.pt holds .*numpy\.ndarray.*set data\.trust_pickle: true"):
        load_data(HetGraphDataConfig(**cfg), None)
    g, target, paths = load_data(HetGraphDataConfig(**cfg, trust_pickle=True), None)
    assert target == "movie" and g["movie"].y.tolist() == [0] * 50 + [1] * 50 + [2] * 50

    marker = tmp_path / "pwned"
    data["movie"].payload = _Payload(marker)
    torch.save(data, tmp_path / "hostile.pt")
    with pytest.raises(UserError, match=r"hostile\.pt holds io\.open.*data\.trust_pickle"):
        load_graph(tmp_path / "hostile.pt")
    assert not marker.exists()
    load_graph(tmp_path / "hostile.pt", trust_pickle=True)
    assert marker.exists()  # what trust_pickle means: the file's code ran
