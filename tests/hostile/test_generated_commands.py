"""Every command once through a real child process (under the harness's memory, CPU and wall bounds) on hostile
input: each ends with exit 0/2/130, one paragraph, no traceback, and leaves the sentinel folder unchanged."""

from __future__ import annotations

import os
import random

from harness import assert_clean_exit, run_many


def _hostile_tree(tmp, sentinel):
    """Hostile inputs for the sample: FIFOs, links out, non-UTF-8 text, a damaged model folder, a file as --out."""
    rng = random.Random(31)
    (tmp / "fifo_run").mkdir()
    os.mkfifo(tmp / "fifo_run" / "config.yaml")
    (tmp / "link_run").mkdir()
    (tmp / "link_run" / "config.yaml").write_text("name: x\n")
    (tmp / "link_run" / "checkpoints").symlink_to(sentinel)
    os.mkfifo(tmp / "fifo_run" / "report.md")
    (tmp / "bad.yaml").write_bytes(bytes(rng.randrange(128, 256) for _ in range(200)))
    os.mkfifo(tmp / "fifo.yaml")
    (tmp / "model").mkdir()
    (tmp / "model" / "cl_domains_encoder.json").write_bytes(b"\xff" * 40)
    (tmp / "a_file").write_text("")
    (tmp / "recipes").mkdir()
    (tmp / "recipes" / "zz.yaml").write_bytes(b"name: [unclosed\n")


def test_every_command_on_hostile_input_through_a_child(tmp_path, sentinel):
    _hostile_tree(tmp_path, sentinel)
    cases = [
        (["run", "--resume", tmp_path / "fifo_run"], "config.yaml"),
        (["run", "--resume", tmp_path / "link_run"], "link_run"),
        (["run", tmp_path / "fifo.yaml"], "fifo.yaml"),
        (["show", tmp_path / "bad.yaml"], "bad.yaml"),
        (["report", tmp_path / "fifo_run"], "report.md"),
        (["matrix", "--jobs", "-3"], "--jobs"),
        (["matrix", "--recipes", "supremix_airfoil", "--out", tmp_path / "a_file"], "a_file"),
        (["eval", "sts", "--model", tmp_path / "model"], "cl_domains_encoder.json"),
        (["data", "fetch", "no_such_dataset", "--data-root", tmp_path / "data"], "no_such_dataset"),
        (["data", "verify", "uci_airfoil", "--data-root", tmp_path / "a_file"], "a_file"),
        (["embed", tmp_path / "model", "--data", tmp_path / "fifo.yaml", "--out", tmp_path / "e.npy"], None),
    ]
    results = run_many([args for args, _ in cases], cwd=tmp_path)
    for (_args, needle), result in zip(cases, results, strict=False):
        assert_clean_exit(result, codes=(2,), contains=needle)
    listing = run_many([["list"]], cwd=tmp_path)[0]  # ./recipes/zz.yaml is broken YAML
    assert_clean_exit(listing, codes=(2,), contains="zz.yaml")
