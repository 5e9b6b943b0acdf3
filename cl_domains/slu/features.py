"""Log-mel features with ``torch.stft`` and a mel filterbank (no torchaudio / librosa).

Defaults as in the COCONUT / FSC continual-SLU setup: 16 kHz, 40 mel bins, 25 ms Hann window
(400 samples, FFT size 400), 10 ms hop (160 samples), power spectrum, Slaney mel scale with
area-normalised triangles (librosa's defaults), ``log(mel + 1e-6)``. Features are computed once
per audio file list and cached as one ``.pt`` file keyed by the files' paths and settings.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..core.errors import UserError
from .data import SAMPLE_RATE, read_wav

__all__ = ["hz_to_mel", "mel_to_hz", "mel_filterbank", "log_mel", "features_for", "N_MELS"]

N_MELS, WIN, HOP = 40, 400, 160
_F_SP, _MIN_LOG_HZ = 200.0 / 3, 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(f):
    """Slaney's mel scale: linear below 1 kHz (3 bins per 200 Hz), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    return np.where(f >= _MIN_LOG_HZ, _MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP, f / _F_SP)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), m * _F_SP)


def mel_filterbank(
    n_mels: int = N_MELS, n_fft: int = WIN, sr: int = SAMPLE_RATE, fmin: float = 0.0, fmax: float | None = None
) -> Tensor:
    """``[n_mels, n_fft // 2 + 1]`` triangles between ``n_mels + 2`` mel-spaced edges, each scaled
    by ``2 / (f_right - f_left)`` (unit area)."""
    fmax = sr / 2 if fmax is None else fmax
    fft_hz = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (fft_hz[None] - left) / (centre - left)
    down = (right - fft_hz[None]) / (right - centre)
    tri = np.maximum(0.0, np.minimum(up, down))
    return torch.as_tensor(tri * (2.0 / (right - left)), dtype=torch.float32)


_BANK: dict[tuple, Tensor] = {}


def log_mel(wave: Tensor | np.ndarray, n_mels: int = N_MELS) -> Tensor:
    """``[frames, n_mels]`` log-mel of a mono 16 kHz waveform (centred frames, reflect padding)."""
    x = torch.as_tensor(wave, dtype=torch.float32)
    if x.numel() < WIN // 2 + 1:  # reflect padding needs more samples than half a window
        x = torch.nn.functional.pad(x, (0, WIN // 2 + 1 - x.numel()))
    key = (n_mels,)
    if key not in _BANK:
        _BANK[key] = mel_filterbank(n_mels)
    spec = torch.stft(x, WIN, HOP, WIN, torch.hann_window(WIN), center=True, pad_mode="reflect", return_complex=True)
    power = spec.abs().pow(2)  # [freq, frames]
    return torch.log(_BANK[key] @ power + 1e-6).transpose(0, 1).contiguous()


def features_for(
    files: list[Path], cache_dir: str | Path | None, where: list[str] | None = None, log=print
) -> list[Tensor]:
    """Log-mel of every file (fp16 in memory), cached in ``cache_dir/logmel-<hash>.safetensors`` (tensors
    only: a cache file cannot carry code)."""
    digest = hashlib.sha256(("\n".join(map(str, files)) + f"|{N_MELS}|{WIN}|{HOP}").encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"logmel-{digest}.safetensors" if cache_dir else None
    if cache is not None and cache.is_file():
        return _load_cache(cache, len(files))
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # one small STFT per file: extra threads only wait on each other (16k files: 7 s vs > 9 min
    try:  # with 2 threads on a busy 2-core box)
        out = [log_mel(read_wav(f, where=where[i] if where else "")).half() for i, f in enumerate(files)]
    finally:
        torch.set_num_threads(threads)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".part{os.getpid()}")
        save_file({str(i): t for i, t in enumerate(out)}, str(tmp))
        os.replace(tmp, cache)
        log(f"log-mel features of {len(files)} files cached in {cache}")
    return out


def _load_cache(cache: Path, n: int) -> list[Tensor]:
    try:
        tensors = load_file(str(cache))
        return [tensors[str(i)] for i in range(n)]
    except (SafetensorError, OSError, KeyError) as exc:
        raise UserError(
            f"feature cache {cache} is damaged or not written by cl-domains ({type(exc).__name__}: "
            f"{str(exc)[:200]}); delete it and run again to recompute the features."
        ) from None
