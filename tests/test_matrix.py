"""``cl-domains matrix`` on the toy plugin domain: cells, outputs, refusal of inapplicable losses, resume."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from toy_task import StopAfter

from cl_domains.core import registry
from cl_domains.core.matrix import lower_is_better, plan, run_matrix

RECIPE = "cl_domains_toy/toyline.yaml"


@pytest.fixture
def plugin(toy_plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(toy_plugin_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(toy_plugin_site), str(Path(__file__).resolve().parents[1])]))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    return toy_plugin_site / RECIPE


def test_the_matrix_writes_its_three_outputs_and_refuses_supcon_without_labels(tmp_path, plugin):
    cli = [sys.executable, "-m", "cl_domains.cli", "matrix", "--recipes", str(plugin), "--profile", "tiny"]
    cli += ["--losses", "info_nce,dcl,supcon", "--seeds", "0,1", "--threads", "1", "--out", str(tmp_path / "m")]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "m" / "matrix.csv").open()))
    assert [(r["loss"], r["seed"], r["status"]) for r in rows] == [
        ("info_nce", "0", "done"),
        ("info_nce", "1", "done"),
        ("dcl", "0", "done"),
        ("dcl", "1", "done"),
        ("supcon", "0", "not applicable"),
        ("supcon", "1", "not applicable"),
    ]
    done = [r for r in rows if r["status"] == "done"]
    assert all(0 <= float(r["value"]) <= 1 and float(r["wall_s"]) > 0 and float(r["peak_mb"]) > 50 for r in done)
    assert "needs labels" in rows[-1]["note"]
    md = (tmp_path / "m" / "matrix.md").read_text()
    assert "| info_nce (own) | 0.2 | 2 |" in md and "| dcl | 0.2 | 2 |" in md and "ttest_rel" in md
    assert md.count("| **") == 1  # one best mean in bold
    assert (tmp_path / "m" / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    run_dir = Path(
        json.loads((tmp_path / "m" / "cells" / "toyline_pairs" / "dcl-t0.2-s0" / "cell.json").read_text())["run"]
    )
    assert (run_dir / "metrics.json").is_file() and (run_dir / "report.md").is_file()  # an ordinary run directory


def test_an_interrupted_matrix_resumes_without_rerunning_finished_cells(tmp_path, plugin):
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    out = tmp_path / "m"
    first = plan(losses=["info_nce"], seeds=[0], profile="tiny", recipes=[str(plugin)])
    run_matrix(first, out, log=lambda m: None)
    cell_json = out / "cells" / "toyline_pairs" / "info_nce-t0.2-s0" / "cell.json"
    stamp = cell_json.stat().st_mtime_ns
    # a cell killed after its checkpoint at step 4 (of 8): the next invocation resumes it
    killed = out / "cells" / "toyline_pairs" / "dcl-t0.2-s0"
    recipe = load_recipe(
        plugin, "tiny", ["method.objective.loss=dcl", "method.objective.temperature=0.2", "train.seed=0"]
    )
    recipe.train.checkpoint_every = 4
    with pytest.raises(KeyboardInterrupt):
        train_recipe(recipe, out=killed, callbacks=[StopAfter(5)])
    logs = []
    cells = plan(losses=["info_nce", "dcl"], seeds=[0], profile="tiny", recipes=[str(plugin)])
    run_matrix(cells, out, log=logs.append)
    assert "toyline_pairs info_nce-t0.2-s0: finished before, kept" in logs
    assert any(m.startswith("toyline_pairs dcl-t0.2-s0: resuming") for m in logs)
    assert cell_json.stat().st_mtime_ns == stamp and [c.status for c in cells] == ["done", "done"]
    (run,) = [p for p in killed.iterdir() if p.is_dir()]
    assert json.loads((run / "metrics.json").read_text())["steps"] == 8


def test_metric_direction():
    assert lower_is_better("mae") and lower_is_better("test_MSE@96") and lower_is_better("forgetting")
    assert not lower_is_better("stsb_spearman") and not lower_is_better("NDCG@10")


def test_shipped_matrix_recipes_are_listed_once():
    cells = plan(domains=["timeseries"], losses=["info_nce"], temperatures=[1.0], seeds=[0])
    assert [(c.name, c.loss) for c in cells] == [("autotcl_ett", "info_nce")]


@pytest.mark.integration
def test_the_shipped_sentences_and_seqrec_matrix_tiny_profile(tmp_path, data_root):
    """Issue 16's CI check: ``cl-domains matrix --domains sentences,seqrec --losses info_nce,dcl --seeds 0
    --profile tiny`` on the real data (each recipe's two temperatures: 8 cells, about 100 s on 2 cores)."""
    out = tmp_path / "m"
    cli = [sys.executable, "-m", "cl_domains.cli", "matrix", "--domains", "sentences,seqrec"]
    cli += ["--losses", "info_nce,dcl", "--seeds", "0", "--profile", "tiny", "--jobs", "2", "--threads", "1"]
    cli += ["--out", str(out), "--data-root", str(data_root)]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader((out / "matrix.csv").open()))
    assert sorted({(r["domain"], r["loss"]) for r in rows}) == [
        ("sentences", "dcl"),
        ("sentences", "info_nce"),
        ("seqrec", "dcl"),
        ("seqrec", "info_nce"),
    ]
    assert len(rows) == 8 and all(r["status"] == "done" for r in rows), rows
    sts = [float(r["value"]) for r in rows if r["domain"] == "sentences"]
    assert all(60 < v < 90 for v in sts), sts  # all-MiniLM-L6-v2 after 4 tiny steps: still ~74 Spearman x 100
    assert all(0 <= float(r["value"]) <= 1 for r in rows if r["domain"] == "seqrec")
    md = (out / "matrix.md").read_text()
    assert "## sentences: simcse_unsup_sts (stsb_test" in md and "## seqrec: cl4srec_beauty (NDCG@10" in md
    assert (out / "matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_gain_in_percent_follows_the_metric_direction_and_the_paired_test(tmp_path):
    from cl_domains.core.matrix import Cell, summarize, write_outputs

    def cells(metric, own, other):
        out = []
        for seed, (a, b) in enumerate(zip(own, other, strict=False)):
            common = dict(domain="d", recipe="r.yaml", name=f"r_{metric}", profile="matrix", temperature=0.1, seed=seed)
            out.append(Cell(loss="info_nce", own=True, metric=metric, status="done", value=a, **common))
            out.append(Cell(loss="dcl", own=False, metric=metric, status="done", value=b, **common))
        return out

    mae = cells("mae", [2.0, 2.2, 1.8], [1.5, 1.8, 1.2])  # dcl lowers the error by 0.5 on average: 25% better
    acc = cells("acc", [50.0, 52.0, 48.0], [45.0, 48.0, 45.0])  # dcl loses 4 points of 50: -8%
    rows = {(r["recipe"], r["loss"]): r for r in summarize(mae + acc)}
    assert rows[("r_mae", "dcl")]["gain_pct"] == pytest.approx(25.0)
    assert rows[("r_mae", "dcl")]["delta"] == pytest.approx(-0.5)
    assert rows[("r_mae", "dcl")]["p"] == pytest.approx(0.0131, abs=1e-3)  # paired t over diffs -0.5, -0.4, -0.6
    assert rows[("r_acc", "dcl")]["gain_pct"] == pytest.approx(-8.0)
    assert rows[("r_acc", "dcl")]["p"] == pytest.approx(0.0202, abs=1e-3)  # paired t over diffs -5, -4, -3
    assert math.isnan(rows[("r_acc", "info_nce")]["p"]) and rows[("r_acc", "info_nce")]["gain_pct"] == 0.0
    write_outputs(mae + acc, tmp_path)
    md = (tmp_path / "matrix.md").read_text()
    assert "| dcl | 0.1 | 3 | **1.5000 ± 0.3000** | -0.5000 | 0.013 | yes |" in md  # the lower MAE is the best
    assert "| dcl | 0.1 | 3 | 46.0000 ± 1.7321 | -4.0000 | 0.020 | yes |" in md
    assert (tmp_path / "matrix.png").read_bytes()[:4] == b"\x89PNG"
