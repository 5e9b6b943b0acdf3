"""Hostile input to the readers, one named case each: paths that leave their folder, sizes refused before
allocation, non-finite and degenerate values, and the API promises of recommend() and regression.fit()."""

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cl_domains.core import data as core_data
from cl_domains.core.errors import UserError
from cl_domains.core.paths import inside, stays_within
from cl_domains.core.validate import NonFiniteMetric, check_finite, check_metrics

REPO = Path(__file__).resolve().parents[1]
SECRET = "SECRET-FIRST-LINE do not print"


def outside_file(tmp_path: Path) -> Path:
    """A file outside every folder the tests' readers are pointed at, whose first line must never be printed."""
    p = tmp_path / "outside.txt"
    p.write_text(SECRET + "\n1 2\n")
    return p


# ------------------------------------------------------------------------------------------------ paths
def test_inside_helpers():
    assert stays_within("a/b.txt", "/base") and stays_within("a/../b", "/base") and not stays_within("../x", "/base")
    assert not stays_within("a/../../x", "/base") and not stays_within("/etc/passwd", "/base")
    assert inside("a/../b.wav", "/base", file="m.csv", key="line 2") == Path("/base/b.wav")
    with pytest.raises(UserError, match=r"m.csv: line 2 = '/etc/passwd' is an absolute path"):
        inside("/etc/passwd", "/base", file="m.csv", key="line 2", option="data.allow_outside")
    assert inside("/etc/passwd", "/base", file="m.csv", key="line 2", allow_outside=True) == Path("/etc/passwd")


def _graph_folder(tmp_path: Path, **schema_over) -> Path:
    d = tmp_path / "graph"
    d.mkdir(parents=True)
    np.save(d / "feat.npy", np.eye(4, dtype=np.float32))
    (d / "e.txt").write_text("0 1\n1 2\n2 3\n")
    schema = {"name": "g", "target": "a", "nodes": {"a": {"features": "feat"}}, "edges": {"e.txt": ["a", "a"]}}
    schema.update(schema_over)
    (d / "schema.yaml").write_text(yaml.safe_dump(schema))
    return d / "schema.yaml"


def test_hetgraph_schema_path_escape_is_refused_without_echoing_the_file(tmp_path):
    from cl_domains.hetgraph.data import load_heco, read_schema

    outside_file(tmp_path)
    schema = _graph_folder(tmp_path, edges={"../outside.txt": ["a", "a"]})
    with pytest.raises(UserError) as err:
        load_heco(str(schema))
    msg = str(err.value)
    assert "schema.yaml" in msg and "'../outside.txt'" in msg and "leaves its folder" in msg
    assert SECRET not in msg
    absolute = _graph_folder(tmp_path / "abs", folder=str(tmp_path))
    with pytest.raises(UserError, match=r"schema.yaml: folder = .* is an absolute path.*allow_outside"):
        read_schema(absolute)
    climbing = _graph_folder(tmp_path / "up", folder="../..")
    with pytest.raises(UserError, match=r"folder = '\.\./\.\.' leaves its folder"):
        read_schema(climbing)
    # the documented opt-in: an absolute folder is accepted, file names still stay inside it
    ok = _graph_folder(tmp_path / "opt", folder=str(tmp_path / "graph"), allow_outside=True)
    assert load_heco(str(ok))["a"].x.shape == (4, 4)


def test_hetgraph_edge_file_error_does_not_echo_its_content(tmp_path):
    from cl_domains.hetgraph.data import load_heco

    schema = _graph_folder(tmp_path)
    (schema.parent / "e.txt").write_text(SECRET + "\n")
    with pytest.raises(UserError) as err:
        load_heco(str(schema))
    assert "every line must be two integer node ids" in str(err.value) and SECRET not in str(err.value)


def _manifest(tmp_path: Path, rel: str) -> Path:
    from cl_domains.slu.data import write_wav

    (tmp_path / "audio").mkdir(parents=True, exist_ok=True)
    write_wav(tmp_path / "x.wav", np.zeros(400))
    write_wav(tmp_path / "audio" / "in.wav", np.zeros(400))
    m = tmp_path / "audio" / "m.csv"
    m.write_text(f"path,label\nin.wav,a\n{rel},b\n")
    return m


@pytest.mark.parametrize("rel", ["../x.wav", "ABS"])
def test_slu_manifest_row_path_escape_is_refused(tmp_path, rel):
    from cl_domains.slu.data import read_manifest

    rel = str(tmp_path / "x.wav") if rel == "ABS" else rel
    m = _manifest(tmp_path, rel)
    with pytest.raises(UserError) as err:
        read_manifest(m)
    msg = str(err.value)
    assert "m.csv: line 3, column 'path'" in msg and repr(rel) in msg and "data.allow_outside" in msg
    u = read_manifest(m, allow_outside=True)  # the documented opt-in
    assert u.audio[1].resolve() == (tmp_path / "x.wav").resolve()


def _card(tmp_path: Path, path: str = "demo/f.txt", url: str = "https://example.org/f.txt") -> Path:
    d = tmp_path / "cards"
    d.mkdir(exist_ok=True)
    card = {
        "name": "hostile",
        "domain": "sentences",
        "title": "t",
        "license": "x",
        "source": "x",
        "files": {"f": {"path": path}},
        "fetch": [{"url": url}],
    }
    (d / "hostile.yaml").write_text(yaml.safe_dump(card))
    return d


@pytest.mark.parametrize(
    "path, url, match",
    [
        ("../../../escape.txt", "https://example.org/f", "must be relative to the data root and stay inside it"),
        ("/etc/escape.txt", "https://example.org/f", "must be relative to the data root"),
        ("demo/f.txt", "file:///etc/passwd", "is not an http\\(s\\) URL"),
        ("demo/f.txt", "ftp://example.org/f", "is not an http\\(s\\) URL"),
    ],
)
def test_dataset_card_path_escape_and_non_http_urls_are_refused(tmp_path, monkeypatch, path, url, match):
    monkeypatch.setenv(core_data.CARDS_ENV, str(_card(tmp_path, path, url)))
    with pytest.raises(UserError, match=match):
        core_data.fetch("hostile", tmp_path / "root")
    assert not (tmp_path / "escape.txt").exists()


def _tar(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, str):  # a symlink to content
                info.type, info.linkname = tarfile.SYMTYPE, content
                t.addfile(info)
            else:
                info.size = len(content)
                t.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_fetch_extraction_refuses_links_escapes_and_damaged_archives(tmp_path):
    blob = tmp_path / "download"
    blob.write_bytes(_tar({"ok.txt": b"ok", "link": "/etc/passwd", "../up.txt": b"x"}))
    assert core_data._extract(blob, "tar.gz", "ok.txt") == b"ok"
    with pytest.raises(UserError, match="link|refused"):
        core_data._extract(blob, "tar.gz", "link")
    with pytest.raises(UserError, match="leaves the archive's folder"):
        core_data._extract(blob, "tar.gz", "../up.txt")
    with pytest.raises(UserError, match="'gone.txt' is not in the download"):
        core_data._extract(blob, "tar.gz", "gone.txt")
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("a/ok.txt", b"zip ok")
    blob.write_bytes(z.getvalue())
    assert core_data._extract(blob, "zip", "a/ok.txt") == b"zip ok"
    with pytest.raises(UserError, match="is not in the download"):
        core_data._extract(blob, "zip", "missing.txt")
    blob.write_bytes(z.getvalue()[:30])
    with pytest.raises(UserError, match="not a valid zip archive"):
        core_data._extract(blob, "zip", "a/ok.txt", "https://example.org/x.zip")
    good = gzip.compress(b"hello" * 1000)
    for damaged in (good[:40], good[:20] + bytes(b ^ 0x55 for b in good[20:])):
        blob.write_bytes(damaged)
        with pytest.raises(UserError, match="not a valid gz archive"):
            core_data._extract(blob, "gz", None, "https://example.org/x.gz")


def test_corrupt_gzip_table_is_a_user_error(tmp_path):
    from cl_domains.core.tables import read_table

    good = gzip.compress(b"a,b\n" + b"1,2\n" * 5000)
    p = tmp_path / "t.csv.gz"
    p.write_bytes(good[:20] + bytes(b ^ 0x55 for b in good[20:]))
    with pytest.raises(UserError, match="t.csv.gz"):
        read_table(p)


# ------------------------------------------------------------------------------------------------ sizes
CHILD = """
import resource, sys
limit = 1536 * 2**20  # 1.5 GiB of address space: the reader must refuse long before
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from cl_domains.core.errors import UserError
from cl_domains.seqrec.interactions import read_interactions
try:
    read_interactions(sys.argv[1])
except UserError as exc:
    print("REFUSED", exc)
    sys.exit(0)
print("READ")
sys.exit(1)
"""


def test_200mb_item_id_is_refused_before_allocation(tmp_path):
    """One 200 MB item id once drove the interaction-log reader to 22 GB; now it is refused in a child under a
    1.5 GiB address-space limit, naming the file and the line."""
    p = tmp_path / "log.csv"
    with open(p, "w") as f:
        f.write("user_id,item_id,timestamp\n" + "".join(f"u{u},i{t},{t}\n" for u in range(3) for t in range(3)))
        f.write("u0,")
        chunk = "x" * 2**20
        for _ in range(200):
            f.write(chunk)
        f.write(",9\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(p)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "REFUSED" in out.stdout and "log.csv" in out.stdout and "line 11" in out.stdout


def test_long_id_in_a_dataframe_is_refused_with_the_estimate():
    import pandas as pd

    from cl_domains.seqrec.interactions import MAX_ID_CHARS, prepare_interactions

    df = pd.DataFrame(
        {"user_id": ["u"] * 4, "item_id": ["a", "b", "c", "x" * (MAX_ID_CHARS + 1)], "timestamp": range(4)}
    )
    with pytest.raises(UserError, match=r"data.item at data row 4 is 1,025 characters long, over the limit"):
        prepare_interactions(df)


def test_hetgraph_edge_id_beyond_node_count_is_refused_before_sizing(tmp_path):
    from torch_geometric.data import HeteroData

    from cl_domains.hetgraph.data import check_graph, load_graph

    data = HeteroData()
    data["a"].x = torch.randn(10, 3)
    data["b"].num_nodes = 5
    data["a", "to", "b"].edge_index = torch.tensor([[0, 1, 2], [1, 10**9, 3]])
    with pytest.raises(UserError, match=r"edge 1 of \('a', 'to', 'b'\) names b node 1,000,000,000, outside 0..4"):
        check_graph(data)
    torch.save(data, tmp_path / "g.pt")
    with pytest.raises(UserError, match=r"g.pt: edge 1"):
        load_graph(tmp_path / "g.pt")
    del data["b"].num_nodes
    with pytest.raises(UserError, match="node type 'b' .* has neither x nor num_nodes"):
        check_graph(data)


def test_unequal_ts_padding_is_checked_against_the_budget(tmp_path, monkeypatch):
    from cl_domains.timeseries.ts_format import read_ts

    lines = ["@problemName p", "@univariate true", "@equalLength false", "@classLabel true a b", "@data"]
    lines += [",".join(["1"] * 5) + ":a"] * 30 + [",".join(["2"] * 20000) + ":b"]
    p = tmp_path / "x.ts"
    p.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("CL_DOMAINS_MAX_ARRAY_GB", "0.001")
    with pytest.raises(UserError, match=r"x.ts: padding all 31 series to the longest one \(20,000 steps, case 31"):
        read_ts(p)
    monkeypatch.setenv("CL_DOMAINS_MAX_ARRAY_GB", "1")
    assert read_ts(p)[0].shape == (31, 20000, 1)


def test_huge_table_cell_is_refused(tmp_path):
    from cl_domains.core.tables import read_table

    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"a": 1, "b": "x" * 2000}) + "\n")
    with pytest.raises(UserError, match=r"t.jsonl: a line near line 1 is longer than 1,000 bytes"):
        read_table(p, max_cell=1000)


# ------------------------------------------------------------------------------------------------ values
def test_check_finite_names_file_column_and_row():
    x = np.array([[1.0, 2.0], [3.0, np.inf], [np.nan, 1.0]])
    with pytest.raises(UserError, match=r"f.csv: features: a infinite value in line 3, column 'b' \(2 lines"):
        check_finite(x, what="features", file="f.csv", columns=["a", "b"], first_row=2, row_name="line")
    with pytest.raises(UserError, match=r"too large \(1e\+300\) value in row 1"):
        check_finite(np.array([1e300]), what="targets")
    check_finite(np.array([np.nan, 1.0]), what="v", allow_nan=True)


def test_nan_node_features_are_refused(tmp_path):
    from cl_domains.hetgraph.data import load_heco

    schema = _graph_folder(tmp_path)
    feats = np.eye(4, dtype=np.float32)
    feats[2, 1] = np.nan
    np.save(schema.parent / "feat.npy", feats)
    with pytest.raises(UserError, match=r"feat.npy: a NaN or infinite value in row 2"):
        load_heco(str(schema))


def test_inf_in_a_long_table_and_non_finite_tser_targets_are_refused(tmp_path):
    from cl_domains.timeseries.data import read_long
    from cl_domains.timeseries.ts_format import read_ts

    p = tmp_path / "long.csv"
    p.write_text("series,time,value\na,0,1\na,1,inf\nb,0,2\n")
    with pytest.raises(UserError, match=r"long.csv: series values: a infinite value in data row 2, column 'value'"):
        read_long(p, path=p)
    p.write_text("series,time,value\na,0,1\na,inf,1\nb,0,2\n")
    with pytest.raises(UserError, match=r"the time column 'time'"):
        read_long(p, path=p)
    for bad in ("nan", "inf"):
        ts = tmp_path / "r.ts"
        ts.write_text(f"@problemName r\n@univariate true\n@targetLabel true\n@data\n1,2,3:1.5\n1,2,4:{bad}\n")
        with pytest.raises(UserError, match=r"r.ts: the targets .* value in case 2"):
            read_ts(ts)


def test_regression_targets_whose_square_overflows_are_refused():
    from cl_domains.regression.data import from_arrays

    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(
        UserError, match=r"target 'target' has NaN/inf values at rows .*1e\+150 counts too: its squared error overflows"
    ):
        from_arrays(x, np.full(20, 1e300) * np.arange(20))
    with pytest.raises(UserError, match=r"feature 'x1' has NaN/inf"):
        from_arrays(np.where(np.arange(40).reshape(20, 2) == 7, np.inf, x), np.arange(20.0))


def test_inf_timestamps_are_refused():
    import pandas as pd

    from cl_domains.seqrec.interactions import prepare_interactions

    df = pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "b", "c"], "timestamp": [1.0, float("inf"), 3.0]})
    with pytest.raises(UserError, match=r"the time column 'timestamp' \(data.time\): a infinite value in data row 2"):
        prepare_interactions(df)


def test_constant_scores_are_refused(tmp_path):
    from cl_domains.sentences.data import read_scored_pairs

    p = tmp_path / "pairs.csv"
    p.write_text("sentence1,sentence2,score\na,b,3\nc,d,3\ne,f,3\n")
    with pytest.raises(UserError, match=r"pairs.csv: every pair has the same score \(3 .*Spearman"):
        read_scored_pairs(p)


def test_more_clusters_than_target_nodes_is_refused_before_kmeans(tmp_path):
    from test_hetgraph_own_data import TINY, movies

    from cl_domains.hetgraph import MEOW

    m = MEOW(train={"epochs": 1, "threads": 1}, method={"clusters": [3, 500]}, eval=TINY, out=tmp_path)
    with pytest.raises(UserError, match=r"method.clusters \[3, 500\] asks k-means for 500 clusters, .* only 150 movie"):
        m.fit(movies(), target="movie", metapaths=[["movie", "actor", "movie"]])


def test_non_finite_final_metrics_fail_the_run(tmp_path):
    from toy_task import ToyTask, recipe

    from cl_domains.core.train import train_task

    class Overflowing(ToyTask):
        def evaluate(self, split):
            return {**super().evaluate(split), **({"mae": float("inf")} if split == "test" else {})}

    with pytest.raises(NonFiniteMetric, match=r"toy: test: the final metrics are not finite \(mae = inf\)"):
        train_task(recipe(epochs=1), Overflowing(8), out=tmp_path)
    check_metrics({"a": 1.0, "b": "text", "c": {"nested": float("nan")}})


# ------------------------------------------------------------------------------------------------ API
def test_recommend_refuses_bad_k_and_never_returns_seen_items():
    from cl_domains.seqrec.model import SASRecEncoder

    torch.manual_seed(0)
    model = SASRecEncoder(6, max_len=5, hidden=8, heads=2, inner=16).eval()
    for k in (-3, 0, 2.5, True):
        with pytest.raises(UserError, match=r"recommend\(k=.*positive integer"):
            model.recommend([1, 2], k=k)
    top = model.recommend([1, 2, 3, 4], k=10)
    assert sorted(top.tolist()) == [5, 6]  # only the two unseen items, fewer than k
    both = model.recommend([[1, 2, 3, 4, 5], [1]], k=6)
    assert both.shape == (2, 1) and both[0].tolist() == [6] and 1 not in both[1].tolist()
    assert model.recommend([1, 2, 3, 4, 5, 6], k=3).numel() == 0
    assert model.recommend([1, 2], k=10, exclude_seen=False).numel() == 6


def test_regression_fit_names_the_row_and_column_of_a_string():
    from cl_domains.regression import api

    x = [[1.0, 2.0], [3.0, "abc"], [5.0, 6.0]]
    with pytest.raises(UserError, match=r"fit\(X, y\): X row 1, column 1 holds 'abc', not a number"):
        api.fit(x, [1.0, 2.0, 3.0])
    with pytest.raises(UserError, match="ragged"):
        api.fit([[1.0], [1.0, 2.0]], [1.0, 2.0])
