"""The SLU model: a compact speech encoder (conv subsampling + transformer blocks, mean-pooled),
an intent/scenario classifier head, and a small transcript encoder for the audio-text
contrastive term. ``SLUModel.save(dir)`` / ``SLUModel.load(dir)`` is the exported format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from ..core.modes import eval_mode
from .data import tokenize
from .features import N_MELS, log_mel

__all__ = ["SpeechEncoder", "TextEncoder", "SLUModel"]


def _sinusoid(length: int, dim: int, device) -> Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


class SpeechEncoder(nn.Module):
    """Log-mel ``[B, T, n_mels]`` -> utterance vector ``[B, dim]``: two stride-2 convolutions (T/4),
    sinusoidal positions, ``layers`` pre-norm transformer blocks, masked mean pooling."""

    def __init__(
        self, n_mels: int = N_MELS, dim: int = 96, layers: int = 2, heads: int = 4, ff: int = 192, dropout: float = 0.1
    ):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(n_mels, dim, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(dim, dim, 3, stride=2, padding=1),
            nn.GELU(),
        )
        block = nn.TransformerEncoderLayer(
            dim, heads, ff, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dim = dim

    def forward(self, feats: Tensor, lengths: Tensor) -> Tensor:
        valid = (torch.arange(feats.shape[1], device=feats.device)[None] < lengths[:, None])[..., None]
        n = lengths.clamp_min(1)[:, None, None].to(feats.dtype)
        mean = (feats * valid).sum(1, keepdim=True) / n  # per-utterance mean/variance normalisation (CMVN)
        std = (((feats - mean) * valid).pow(2).sum(1, keepdim=True) / n).sqrt()
        feats = ((feats - mean) / (std + 1e-5)) * valid
        h = self.conv(feats.transpose(1, 2)).transpose(1, 2)  # [B, T', dim]
        out_len = ((lengths - 1) // 2 + 1 - 1) // 2 + 1
        pad = torch.arange(h.shape[1], device=h.device)[None] >= out_len[:, None]
        h = self.blocks(h + _sinusoid(h.shape[1], self.dim, h.device), src_key_padding_mask=pad)
        h = self.norm(h).masked_fill(pad[..., None], 0.0)
        return h.sum(1) / out_len.clamp_min(1)[:, None].to(h.dtype)


class TextEncoder(nn.Module):
    """Transcript tokens -> ``[B, dim]``: word embeddings, mean-pooled, and a 2-layer MLP."""

    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab, dim, mode="mean", padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.mlp(self.embed(tokens))


class SLUModel(nn.Module):
    """Speech encoder + classifier; ``project`` (contrastive head) and ``text`` serve the
    contrastive terms during training."""

    def __init__(
        self,
        classes: list[str],
        vocab: list[str],
        dim: int = 96,
        layers: int = 2,
        heads: int = 4,
        ff: int = 192,
        dropout: float = 0.1,
        proj_dim: int = 64,
    ):
        super().__init__()
        self.config = {
            "classes": list(classes),
            "vocab": list(vocab),
            "dim": dim,
            "layers": layers,
            "heads": heads,
            "ff": ff,
            "dropout": dropout,
            "proj_dim": proj_dim,
        }
        self.encoder = SpeechEncoder(N_MELS, dim, layers, heads, ff, dropout)
        self.classifier = nn.Linear(dim, len(classes))
        self.project = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, proj_dim))
        self.text = TextEncoder(len(vocab), proj_dim)
        self.word_ids = {w: i for i, w in enumerate(vocab)}

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(utterance vectors ``[B, dim]``, class logits ``[B, classes]``)."""
        h = self.encoder(feats, lengths)
        return h, self.classifier(h)

    def encode_text(self, texts: list[str]) -> Tensor:
        ids = [[self.word_ids.get(w, 1) for w in tokenize(t)] or [1] for t in texts]
        width = max(map(len, ids))
        tokens = torch.tensor([x + [0] * (width - len(x)) for x in ids], device=self.classifier.weight.device)
        return self.text(tokens)

    def predict(self, waves: list) -> list[str]:
        """Class names for 16 kHz mono waveforms (numpy or tensors); the model's mode is kept."""
        feats = [log_mel(w) for w in waves]
        x, lengths = pad_features(feats)
        with eval_mode(self):
            _, logits = self(x.to(self.classifier.weight.device), lengths.to(self.classifier.weight.device))
        return [self.config["classes"][i] for i in logits.argmax(-1).tolist()]

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(self.config, indent=1))
        save_model(self, str(d / "model.safetensors"))

    @classmethod
    def load(cls, directory: str | Path) -> SLUModel:
        d = Path(directory)
        model = cls(**json.loads((d / "config.json").read_text()))
        load_model(model, str(d / "model.safetensors"))
        return model.eval()


def pad_features(feats: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad ``[T_i, n_mels]`` features to ``[B, T_max, n_mels]`` (float32) and their lengths."""
    lengths = torch.tensor([f.shape[0] for f in feats])
    x = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for i, f in enumerate(feats):
        x[i, : f.shape[0]] = f.float()
    return x, lengths
