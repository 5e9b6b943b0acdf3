"""tsai backbones (the optional ``tsai`` extra) in place of TS2Vec's dilated convolutions.

``model.backbone: {name: tsai, arch: InceptionTime, kwargs: {...}}`` builds ``tsai.models.<arch>.<arch>``
with ``c_in = model.hidden`` (after TS2Vec's input projection and timestamp masking), keeps its
feature extractor (the layers before global pooling and the head) and projects it to
``model.output_dims`` with a 1x1 convolution. The TS2Vec / AutoTCL losses need one representation
per timestamp for inputs of any length (random crops), so the extractor must map ``[B, C, T]`` to
``[B, D, T]``: checked at build time on two lengths. tsai is imported here, lazily, only then.
"""

from __future__ import annotations

import importlib
import importlib.util

import torch
from torch import Tensor, nn

from ..core.errors import UserError
from ..core.modes import eval_mode

__all__ = ["FEATURES", "REFUSED", "TsaiFeatures", "tsai_features"]

# arch -> its feature-extractor children, in order; other archs: their ``backbone`` child (tsai's *Plus models).
FEATURES = {
    "InceptionTime": ("inceptionblock",),
    "FCN": ("convblock1", "convblock2", "convblock3"),
    "ResCNN": ("block1", "block2", "block3", "block4"),
    "ResNet": ("resblock1", "resblock2", "resblock3"),
    "XceptionTime": ("block",),
}
REFUSED = {
    "PatchTST": "it encodes fixed-length inputs (seq_len) into one vector per patch and channel, not per timestamp",
    "TST": "its learned positional encoding fixes the input length (seq_len)",
    "TSTPlus": "its learned positional encoding fixes the input length (seq_len)",
}
INSTALL = (
    "install the extra: pip install torch==2.13.0 && pip install 'cl-domains[tsai]' torch==2.13.0 "
    "(docs/timeseries.md, 'tsai backbones')"
)
_PROBE_LENGTHS = (13, 48)


class TsaiFeatures(nn.Module):
    """``[B, C, T]`` -> ``[B, out, T]``: a tsai feature extractor then a 1x1 projection."""

    def __init__(self, features: nn.Module, dim: int, out: int):
        super().__init__()
        self.body, self.proj = features, nn.Conv1d(dim, out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.body(x))


def _installed() -> bool:
    return importlib.util.find_spec("tsai") is not None


def _import_arch(arch: str) -> type:
    if not _installed():
        raise UserError(
            f"model.backbone: name 'tsai' (arch {arch!r}) needs the tsai package, which is not installed; {INSTALL}."
        )
    try:
        module = importlib.import_module(f"tsai.models.{arch}")
    except ModuleNotFoundError as exc:
        if exc.name == f"tsai.models.{arch}":
            raise UserError(
                f"model.backbone.arch: {arch!r} is not a tsai model (no module tsai.models.{arch}); "
                f"per-timestamp archs: {', '.join(FEATURES)}."
            ) from None
        raise UserError(
            f"model.backbone.arch {arch!r}: importing tsai.models.{arch} failed ({exc}); {INSTALL}."
        ) from None
    except Exception as exc:  # tsai modules that import fastai.vision need a torchvision matching torch
        raise UserError(
            f"model.backbone.arch {arch!r}: importing tsai.models.{arch} failed ({type(exc).__name__}: {exc}). "
            "With the CPU torch 2.13 the torchvision that fastai pulls in cannot be loaded, so only tsai "
            "models that do not import fastai.vision work (docs/timeseries.md, 'tsai backbones'): e.g. "
            "InceptionTime, FCN, ResCNN, FCNPlus."
        ) from None
    cls = getattr(module, arch, None)
    if not isinstance(cls, type):
        raise UserError(f"model.backbone.arch: tsai.models.{arch} has no class {arch!r}.")
    return cls


def _per_timestamp_dim(features: nn.Module, arch: str, c_in: int) -> int:
    """Run ``features`` on zeros of two lengths; return D if the output is ``[B, D, T]`` for both, else refuse."""
    dims = set()
    with eval_mode(features):
        for t in _PROBE_LENGTHS:
            try:
                y = features(torch.zeros(2, c_in, t))
            except Exception as exc:
                raise UserError(
                    f"model.backbone.arch {arch!r}: its feature extractor fails on an input of length {t} "
                    f"({type(exc).__name__}: {exc}); the TS2Vec/AutoTCL losses need inputs of any "
                    "length (random crops)."
                ) from None
            if not isinstance(y, Tensor) or y.ndim != 3 or y.shape[0] != 2 or y.shape[2] != t:
                shape = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise UserError(
                    f"model.backbone.arch {arch!r}: its feature extractor maps [2, {c_in}, {t}] to "
                    f"{shape}, not one vector per timestamp [2, D, {t}], which the TS2Vec/AutoTCL "
                    f"losses need; per-timestamp archs: {', '.join(FEATURES)}."
                )
            dims.add(int(y.shape[1]))
    return dims.pop()


def tsai_features(arch: str, kwargs: dict, c_in: int, out: int) -> TsaiFeatures:
    """The per-timestamp feature extractor of ``tsai.models.<arch>`` (built with ``c_in`` channels), projected to ``out``."""
    if arch in REFUSED:
        raise UserError(
            f"model.backbone.arch {arch!r} cannot serve as a TS2Vec/AutoTCL encoder: {REFUSED[arch]}, "
            f"while the losses need one vector per timestamp for inputs of any length; "
            f"per-timestamp archs: {', '.join(FEATURES)}."
        )
    cls = _import_arch(arch)
    try:
        model = cls(c_in, out, **kwargs)
    except TypeError as exc:
        raise UserError(f"model.backbone.kwargs {kwargs}: {arch}({c_in}, {out}, **kwargs) failed ({exc}).") from None
    names = FEATURES.get(arch) or (("backbone",) if isinstance(getattr(model, "backbone", None), nn.Module) else None)
    if names is None:
        raise UserError(
            f"model.backbone.arch {arch!r}: no known feature extractor (neither listed nor a 'backbone' "
            f"attribute); per-timestamp archs: {', '.join(FEATURES)}, or a tsai *Plus model."
        )
    features = nn.Sequential(*[getattr(model, n) for n in names])
    return TsaiFeatures(features, _per_timestamp_dim(features, arch, c_in), out)
