"""Data preparation: read both splits, take the seeded subsets, synthesise speech when there are no
recordings, and compute (or load) the cached log-mel features."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from torch import Tensor

from ..core import data as core_data
from .config import SLUDataConfig
from .data import Utterances, read_fsc_csv, read_manifest, read_massive_jsonl, read_slurp_jsonl, tokenize
from .features import features_for
from .synth import assign_voices, manifest_digest, synthesize

__all__ = ["PreparedSpeech", "prepare"]


def _cache_root(cfg: SLUDataConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cl-domains")) / "slu"


def _read(cfg: SLUDataConfig, ref: str, data_root, classes: list[str] | None = None) -> Utterances:
    path = core_data.resolve(ref, data_root)
    if cfg.format == "fsc":
        return read_fsc_csv(path, cfg.audio_root)
    if cfg.format == "massive":
        return read_massive_jsonl(path)
    if cfg.format == "manifest":
        unset = {"speaker_column": "speaker", "text_column": "transcript"}
        return read_manifest(
            path,
            cfg.audio_root,
            audio_column=cfg.audio_column,
            label_column=cfg.label_column,
            speaker_column=cfg.speaker_column,
            text_column=cfg.text_column,
            optional=tuple(v for k, v in unset.items() if k not in cfg.model_fields_set),  # defaults may be absent
            classes=classes,
            allow_outside=cfg.allow_outside,
        )
    return read_slurp_jsonl(path, cfg.audio_root)


def _subset(u: Utterances, speakers: int | None, max_rows: int | None, rng: np.random.Generator) -> Utterances:
    keep = np.arange(len(u))
    if speakers is not None:
        names = sorted(set(u.speakers))
        if speakers < len(names):
            chosen = set(names[i] for i in rng.choice(len(names), speakers, replace=False))
            keep = np.array([i for i in keep if u.speakers[i] in chosen])
    if max_rows is not None and max_rows < len(keep):
        keep = np.sort(rng.choice(keep, max_rows, replace=False))
    return u.subset(keep.tolist()) if len(keep) < len(u) else u


@dataclasses.dataclass
class PreparedSpeech:
    """Both splits with their features (``[T_i, 40]`` fp16 per utterance)."""

    train: Utterances
    test: Utterances
    train_feats: list[Tensor]
    test_feats: list[Tensor]
    vocab: list[str]
    info: dict

    @property
    def has_text(self) -> bool:
        """Whether the training utterances have transcripts (the MM loss needs them)."""
        return any(t.strip() for t in self.train.texts)


def _where(u: Utterances, i: int, fmt: str) -> str:
    if u.lines:
        return f"{u.source}, line {u.lines[i]}"
    return f"{u.source}, row {i + 2}" if fmt == "fsc" else f"{u.source}, utterance {i + 1}"  # csv: header = row 1


def prepare(cfg: SLUDataConfig, data_root=None, log=print) -> PreparedSpeech:
    """Read the splits, take the subsets, synthesise speech if there are no recordings, and compute
    (or load) the cached log-mel features."""
    t0 = time.time()
    rng = np.random.default_rng(cfg.synth_seed)
    train = _read(cfg, cfg.train, data_root)
    test = _read(cfg, cfg.test, data_root, train.classes if cfg.format == "manifest" else None)
    train = _subset(train, cfg.train_speakers, cfg.max_train, rng)
    test = _subset(test, cfg.test_speakers, cfg.max_test, rng)
    info: dict = {"train_utterances": len(train), "test_utterances": len(test)}
    if train.audio is None:
        if cfg.format == "massive":  # no speaker ids: each record gets one of N synthetic voices
            for u, tag, n in ((train, "train", cfg.synth_voices[0]), (test, "eval", cfg.synth_voices[1])):
                u.speakers = [f"{tag}{k}" for k in rng.integers(0, n, len(u))]
        voices = assign_voices(train.speakers, test.speakers, cfg.synth_seed)
        spec = json.dumps(
            {
                "format": cfg.format,
                "seed": cfg.synth_seed,
                "rows": sorted(
                    {
                        (v.key, t)
                        for u in (train, test)
                        for t, s in zip(u.texts, u.speakers, strict=False)
                        for v in [voices[s]]
                    }
                ),
            }
        )
        folder = _cache_root(cfg) / f"synth-{cfg.format}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
        t = time.time()
        out = synthesize({"train": train, "test": test}, voices, folder, workers=cfg.workers, log=log)
        train, test = out["train"], out["test"]
        info.update(
            synth_dir=str(folder),
            synth_seconds=round(time.time() - t, 1),
            manifest_sha256=manifest_digest(folder),
            voices=len({voices[s] for s in train.speakers}),
            eval_voices=len({voices[s] for s in test.speakers}),
        )
    t = time.time()
    feats = []
    for u in (train, test):
        files = sorted(set(u.audio))
        where = {f: _where(u, i, cfg.format) for i, f in reversed(list(enumerate(u.audio)))}
        unique = features_for(files, _cache_root(cfg) / "features", [where[f] for f in files], log=log)
        pos = {f: i for i, f in enumerate(files)}
        feats.append([unique[pos[f]] for f in u.audio])
    info["feature_seconds"] = round(time.time() - t, 1)
    info["prepare_seconds"] = round(time.time() - t0, 1)
    vocab = ["<pad>", "<unk>", *sorted({w for u in (train, test) for x in u.texts for w in tokenize(x)})]
    return PreparedSpeech(train, test, feats[0], feats[1], vocab, info)
