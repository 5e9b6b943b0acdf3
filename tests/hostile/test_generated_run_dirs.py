"""Generated hostile cases over every file of a run directory (seeded, so every CI run tries the same cases).

In-process: each case must end in a result or a ``UserError`` (never another exception), read nothing outside
the run directory and delete nothing there. The child-process sample is in ``test_generated_commands.py``."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from toyruns import resume_copy

from cl_domains.core.errors import UserError
from cl_domains.core.matrix import _read_done
from cl_domains.core.runs import LOCK_INFO, LOCK_NAME, Run
from cl_domains.core.train import InvalidState, TrainState

SEED = 31
FIELDS = ("step", "epoch", "batch", "best", "best_step", "stale")


def hostile_values(rng: random.Random, n: int) -> list:
    """JSON values a damaged or hand-edited state file may hold."""
    fixed = [None, True, False, "", "abc", "7", -1, -(10**6), 10**18, 2**63, 1.5, 0.0, float("nan"), float("inf")]
    fixed += [[], {}, [1], {"a": 1}, "\x00", "é" * 50, 10**400]
    out = list(fixed)
    while len(out) < n:
        kind = rng.randrange(5)
        out.append(
            rng.randint(-(10**12), 10**12)
            if kind == 0
            else rng.uniform(-1e300, 1e300)
            if kind == 1
            else "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(8)))
            if kind == 2
            else [rng.randint(-5, 5)] * rng.randrange(3)
            if kind == 3
            else rng.randint(0, 40)
        )
    return out[:n]


def hostile_documents(rng: random.Random, valid: bytes, n: int) -> list[bytes]:
    """Whole-file damage: truncation, flipped bytes, other encodings, deep nesting, other JSON types."""
    docs = [b"", b"null", b"[]", b"42", b'"state"', b"\xff\xfe{}", b"[" * 100_000, b"{" * 50_000, b"NaN"]
    docs += [valid[: len(valid) // 2], valid.decode().encode("utf-16"), valid + b"garbage", b" " * 70_000]
    while len(docs) < n:
        b = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        docs.append(bytes(b))
    return docs[:n]


# ------------------------------------------------------------------------------------------ trainer.json fields
STATE_CASES = [(f, v) for f in FIELDS for v in hostile_values(random.Random(f"{SEED}{f}"), 30)]


def test_trainer_state_fields_are_validated_or_refused_by_name():
    """180 generated (field, value) pairs: a valid state within the run's bounds, or InvalidState naming the field."""
    accepted = 0
    for field, value in STATE_CASES:
        data = {"step": 6, "epoch": 1, "batch": 0, "best": None, "best_step": None, "stale": 0, field: value}
        try:
            state = TrainState.from_json(data, max_steps=12, max_epochs=2)
        except InvalidState as exc:
            assert isinstance(exc, UserError) and field in str(exc), (field, value, exc)
            continue
        accepted += 1
        assert 0 <= state.step <= 12 and 0 <= state.epoch <= 2 and state.stale >= 0, (field, value)
        assert all(isinstance(getattr(state, k), int) and not isinstance(getattr(state, k), bool) for k in FIELDS[:3])
    assert 0 < accepted < len(STATE_CASES)


# --------------------------------------------------------------------------------------- whole run directories
TRAINER_DOCS = 24


@pytest.mark.parametrize("which", ["newest", "both"])
def test_generated_trainer_json_documents(toy_run, tmp_path, which):
    """24 damaged trainer.json documents, in the newest checkpoint (resume falls back to the older one) or in
    both (a UserError naming the checkpoints)."""
    valid = (toy_run / "checkpoints" / "step-0000006" / "trainer.json").read_bytes()
    docs = hostile_documents(random.Random(SEED), valid, TRAINER_DOCS)
    for i, doc in enumerate(docs):

        def damage(d: Path, doc: bytes = doc) -> None:
            for ckpt in ["step-0000006"] + (["step-0000004"] if which == "both" else []):
                (d / "checkpoints" / ckpt / "trainer.json").write_bytes(doc)

        result, run_dir = resume_copy(toy_run, tmp_path / f"r{i}", damage)
        if isinstance(result, UserError):
            assert which == "both" or doc == valid, (i, doc[:80], result)
            assert "step-0000006" in str(result) and "\n\n" not in str(result)
        else:
            assert result["steps"] == 12, (i, doc[:80])


OUTSIDE_KINDS = ("fifo", "link-out", "link-devzero", "folder", "empty")


def _replace(path: Path, kind: str, outside: Path) -> None:
    if os.path.lexists(path):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link-out":
        path.symlink_to(outside)
    elif kind == "link-devzero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"")


RUN_FILES = [
    "run.json",
    "metrics.json",
    "train.log",
    "config.yaml",
    LOCK_NAME,
    LOCK_INFO,
    "checkpoints",
    "checkpoints/latest",
    "checkpoints/step-0000006",
    "checkpoints/step-0000006/trainer.json",
    "checkpoints/step-0000006/trainer.pt",
    "checkpoints/step-0000006/model.safetensors",
    "best",
]


@pytest.mark.parametrize("name", RUN_FILES)
def test_every_run_file_as_fifo_link_folder_or_empty(toy_run, tmp_path, sentinel, name):
    """13 entries x 5 kinds: the resume ends (no hang), in a result or a UserError, and the sentinel folder (the
    links' target) is unchanged."""
    target = sentinel / ("step-0000001" if "step" in name or name == "checkpoints" else "notes.txt")
    for kind in OUTSIDE_KINDS:
        result, run_dir = resume_copy(toy_run, tmp_path / kind, lambda d, kind=kind: _replace(d / name, kind, target))
        if not isinstance(result, UserError):
            assert result["steps"] == 12, (name, kind)


# -------------------------------------------------------------------------------------------- run.json, cell.json
def test_generated_run_json_and_metrics_json(tmp_path):
    """40 documents each: Run.info is a dict or a UserError naming run.json; Run() a UserError naming metrics.json."""
    valid = json.dumps({"recipe": "x", "profile": "tiny", "started": "1", "python": "3", "host": "h"}).encode()
    for i, doc in enumerate(hostile_documents(random.Random(SEED + 1), valid, 40)):
        d = tmp_path / f"r{i}"
        d.mkdir()
        (d / "run.json").write_bytes(doc)
        try:
            info = Run(d).info
            assert isinstance(info, dict) and all(isinstance(v, str) for k, v in info.items() if k != "extra")
        except UserError as exc:
            assert "run.json" in str(exc)
        (d / "metrics.json").write_bytes(doc)
        try:
            assert isinstance(Run(d).metrics, dict)
        except UserError as exc:
            assert "metrics.json" in str(exc)


def test_generated_cell_json_is_read_or_reported_damaged(tmp_path):
    """60 documents: a validated result, or None with one log line (the matrix then reads the run again)."""
    valid = json.dumps({"value": 0.5, "wall_s": 1.0, "peak_mb": 100.0, "run": "x"}).encode()
    rng = random.Random(SEED + 2)
    docs = hostile_documents(rng, valid, 40)
    docs += [
        json.dumps({"value": v, "wall_s": 1.0, "peak_mb": 1.0, "run": "x"}).encode() for v in hostile_values(rng, 20)
    ]
    for i, doc in enumerate(docs):
        d = tmp_path / "cells" / "r" / f"c{i}"
        d.mkdir(parents=True)
        (d / "cell.json").write_bytes(doc)
        logs: list[str] = []
        done = _read_done(d, logs.append)
        if done is None:
            assert len(logs) == 1 and "cell.json" in logs[0], (doc[:80], logs)
        else:
            assert isinstance(done["value"], float) and done["value"] == done["value"] and not logs
    os.mkfifo(tmp_path / "cells" / "r" / "c0" / "fifo")
    (tmp_path / "cells" / "r" / "c0" / "cell.json").unlink()
    os.rename(tmp_path / "cells" / "r" / "c0" / "fifo", tmp_path / "cells" / "r" / "c0" / "cell.json")
    assert _read_done(tmp_path / "cells" / "r" / "c0") is None  # a FIFO: refused, not opened


def test_lock_info_garbage_still_names_a_holder(tmp_path):
    """12 damaged lock info files (and a FIFO): the refusal still says who holds the directory, as well as it can."""
    docs = hostile_documents(random.Random(SEED + 3), b'{"pid": 1, "host": "h", "since": "t"}', 12)
    for doc in docs:
        (tmp_path / LOCK_INFO).write_bytes(doc)
        assert Run(tmp_path)._holder().startswith(("pid ", "another process"))
    (tmp_path / LOCK_INFO).unlink()
    os.mkfifo(tmp_path / LOCK_INFO)
    assert Run(tmp_path)._holder().startswith("another process")
