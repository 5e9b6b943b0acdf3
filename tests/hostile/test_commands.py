"""Every command behind one error boundary: bad input is exit 2 with one paragraph (no traceback), Ctrl-C is
exit 130 with one "interrupted" line, and plugins that fail, exit or take over a name are named."""

from __future__ import annotations

import dataclasses
import gzip
import importlib.metadata
import json
import os
import types
import zipfile
import zlib
from pathlib import Path

import pytest
from harness import Result, assert_clean_exit

from cl_domains.cli import main
from cl_domains.core import registry
from cl_domains.core.errors import UserError

DATA = Path(os.environ.get("CL_DOMAINS_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
LATIN1 = "# caf\xe9\nname: x\n".encode("latin-1")


def cli(capsys, *args) -> Result:
    """The entry point in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err, tuple(map(str, args)))


def test_non_utf8_recipe_report_and_yaml(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(LATIN1)
    for args in (["show", bad], ["run", bad], ["matrix", "--recipes", bad, "--out", tmp_path / "m"]):
        assert_clean_exit(cli(capsys, *args), codes=(2,), contains="bad.yaml")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "zz_bad.yaml").write_bytes(LATIN1)
    monkeypatch.chdir(tmp_path)  # ./recipes is searched first
    assert_clean_exit(cli(capsys, "list"), codes=(2,), contains="zz_bad.yaml")
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.md").write_bytes(b"\xff\xfe| metric |")
    assert_clean_exit(cli(capsys, "report", run), codes=(2,), contains="report.md")
    (run / "report.md").unlink()
    (run / "report.md").symlink_to("/dev/zero")
    assert_clean_exit(cli(capsys, "report", run), codes=(2,), contains="report.md")


def test_matrix_bad_arguments_are_refused_before_work(tmp_path, capsys):
    assert_clean_exit(cli(capsys, "matrix", "--jobs", "-3"), codes=(2,))
    assert_clean_exit(cli(capsys, "matrix", "--threads", "0"), codes=(2,))
    f = tmp_path / "a_file"
    f.write_text("")
    args = ["matrix", "--recipes", "supremix_airfoil", "--losses", "info_nce", "--seeds", "0", "--out", f]
    assert_clean_exit(cli(capsys, *args), codes=(2,), contains="a_file")
    from cl_domains.core.matrix import run_matrix

    with pytest.raises(UserError, match="jobs"):
        run_matrix([], tmp_path / "m", jobs=-3)


def test_matrix_with_every_cell_not_applicable_says_so(tmp_path, capsys, monkeypatch):
    from cl_domains.core import matrix

    cells = matrix.plan(recipes=["supremix_airfoil"], losses=["info_nce"], seeds=[0], temperatures=[0.1])
    for c in cells:
        c.status, c.note = "not applicable", "this method has no labels for supcon"
    monkeypatch.setattr(matrix, "plan", lambda **kw: cells)
    result = cli(capsys, "matrix", "--out", tmp_path / "m")
    assert_clean_exit(result, codes=(2,), contains="not applicable")
    assert not (tmp_path / "m" / "matrix.png").exists()


@pytest.mark.parametrize(
    "exc",
    [
        zipfile.BadZipFile("File is not a zip file"),
        EOFError("Compressed file ended before the end-of-stream marker was reached"),
        zlib.error("Error -3 while decompressing data: invalid block type"),
        gzip.BadGzipFile("Not a gzipped file (b'PK')"),
    ],
    ids=["bad-zip", "truncated-gz", "corrupt-deflate", "not-gzip"],
)
def test_data_fetch_damaged_downloads_are_user_errors(monkeypatch, capsys, exc):
    from cl_domains.core import data

    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(data, "fetch", broken)
    assert_clean_exit(cli(capsys, "data", "fetch", "uci_airfoil"), codes=(2,), contains="uci_airfoil")


@pytest.mark.parametrize("command", [["data", "fetch", "uci_airfoil"], ["data", "list"], ["list"]])
def test_ctrl_c_anywhere_is_130_with_one_line(monkeypatch, capsys, command):
    from cl_domains.core import data

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "fetch", interrupted)
    monkeypatch.setattr(data, "cards", interrupted)
    monkeypatch.setattr("cl_domains.cli._shipped_recipes", interrupted)
    result = cli(capsys, *command)
    assert_clean_exit(result, codes=(130,))
    assert result.stderr.strip().splitlines() == ["interrupted"]


def test_corrupt_gzip_table_is_a_user_error(tmp_path):
    from cl_domains.core.tables import read_table

    f = tmp_path / "log.csv.gz"
    good = gzip.compress(b"a,b\n" + b"1,2\n" * 2000)
    f.write_bytes(good[:20] + bytes(b ^ 0x5A for b in good[20:60]) + good[60:])  # corrupt, not truncated
    with pytest.raises(UserError, match="log.csv.gz"):
        read_table(f)


def test_eval_sts_on_a_damaged_model_folder(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    args = ["eval", "sts", "--model", model, "--data-root", DATA]
    (model / "cl_domains_encoder.json").write_text("{not json")
    assert_clean_exit(cli(capsys, *args), codes=(2,), contains="cl_domains_encoder.json is not valid JSON")
    (model / "cl_domains_encoder.json").write_text("[1, 2]")
    assert_clean_exit(cli(capsys, *args), codes=(2,), contains="cl_domains_encoder.json is not a JSON object")
    (model / "cl_domains_encoder.json").unlink()
    (model / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04not a pickle at all")
    if not (DATA / "sentences").is_dir():
        pytest.skip(f"no STS data at {DATA}")
    assert_clean_exit(cli(capsys, *args), codes=(2,), contains=str(model))


# ------------------------------------------------------------------------------------------------- plugins
def _fake_plugin(monkeypatch, tmp_path, name: str, source: str):
    """A plugin package ``name`` with ``source`` as its module, declared as a cl_domains.plugins entry point."""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint(name=name, value=name, group=registry.PLUGIN_GROUP)
    monkeypatch.setattr(registry, "_plugin_entry_points", lambda: [ep])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.mark.parametrize("body", ["raise SystemExit(0)", "raise SystemExit('bye')", "raise RuntimeError('boom')"])
def test_a_plugin_that_fails_or_exits_on_import_is_named(monkeypatch, tmp_path, body):
    _fake_plugin(monkeypatch, tmp_path, "exiting_plugin", body + "\n")
    with pytest.raises(UserError, match="exiting_plugin"):
        registry.load_plugins()


def test_a_plugin_cannot_silently_replace_a_domain_or_method(monkeypatch, tmp_path):
    from cl_domains.core.recipe import StrictModel

    registry.domain("regression")  # the built-in is registered
    schemas = dict(model=StrictModel, data=StrictModel, eval=StrictModel)
    with pytest.raises(UserError, match="regression.*replace=True"):
        registry.register_domain("regression", **schemas)
    assert registry.domain("regression").model_schema is not StrictModel
    config = types.new_class("Cfg", (StrictModel,))
    cls = type("Mine", (), {"config": config})
    with pytest.raises(UserError, match="supremix.*replace=True"):
        registry.method("regression", "supremix")(cls)
    assert registry.method_spec("regression", "supremix").cls is not cls
    own = registry._REGISTRY["regression"]
    copy = dataclasses.replace(own, methods=dict(own.methods))
    monkeypatch.setattr(registry, "_REGISTRY", {**registry._REGISTRY, "regression": copy})
    registry.register_domain("regression", **schemas, replace=True)  # declared: allowed
    assert registry._REGISTRY["regression"].model_schema is StrictModel
    registry.method("regression", "supremix", replace=True)(cls)
    assert registry._REGISTRY["regression"].methods["supremix"].cls is cls


def test_a_plugin_registering_a_builtin_name_fails_to_load_with_the_reason(monkeypatch, tmp_path):
    _fake_plugin(
        monkeypatch,
        tmp_path,
        "greedy_plugin",
        "from cl_domains.core import StrictModel, register_domain\n"
        "register_domain('regression', model=StrictModel, data=StrictModel, eval=StrictModel)\n",
    )
    with pytest.raises(UserError, match="greedy_plugin.*regression"):
        registry.load_plugins()


def test_python_entry_points_raise_user_errors(tmp_path):
    from cl_domains.core.matrix import plan
    from cl_domains.core.train import train_recipe

    with pytest.raises(UserError):
        train_recipe()
    with pytest.raises(UserError):
        train_recipe(resume=tmp_path / "nope")
    with pytest.raises(UserError):
        plan(losses=["nope"], recipes=["supremix_airfoil"])
    assert Path(tmp_path).is_dir()


# -------------------------------------------------------------------------------------------------- matrix cells
def _one_cell_plan(monkeypatch):
    from cl_domains.core import matrix

    cells = matrix.plan(recipes=["supremix_airfoil"], losses=["info_nce"], seeds=[0], temperatures=[0.1])
    monkeypatch.setattr(matrix, "plan", lambda **kw: cells)
    return matrix, cells


def test_an_interrupted_cell_is_marked_interrupted_with_the_resume_command(tmp_path, capsys, monkeypatch):
    import csv
    import subprocess

    matrix, cells = _one_cell_plan(monkeypatch)
    stopped = subprocess.CompletedProcess([], 130, "", "interrupted\n")
    monkeypatch.setattr(matrix.subprocess, "run", lambda *a, **k: stopped)
    result = cli(capsys, "matrix", "--out", tmp_path / "m")
    assert_clean_exit(result, codes=(130,), contains=f"cl-domains matrix --out {tmp_path / 'm'}")
    assert "interrupted" in result.output and "FAILED" not in result.output
    rows = list(csv.DictReader((tmp_path / "m" / "matrix.csv").open()))
    assert [r["status"] for r in rows] == ["interrupted"]


def test_a_cell_held_by_another_process_is_left_alone(tmp_path, capsys, monkeypatch):
    from filelock import FileLock

    matrix, cells = _one_cell_plan(monkeypatch)
    monkeypatch.setattr(matrix.subprocess, "run", lambda *a, **k: pytest.fail("the busy cell was trained"))
    cell_dir = tmp_path / "m" / "cells" / cells[0].name / cells[0].key
    cell_dir.mkdir(parents=True)
    other = FileLock(str(cell_dir / ".lock"), timeout=0, thread_local=False)  # what another process holds
    other.acquire()
    try:
        result = cli(capsys, "matrix", "--out", tmp_path / "m")
    finally:
        other.release()
    assert_clean_exit(result, codes=(2,), contains="another process")
