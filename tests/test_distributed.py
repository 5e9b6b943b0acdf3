"""2 CPU processes (gloo) with gathered negatives give the 1-process loss and gradients."""

import subprocess
import sys
from pathlib import Path

import dist_worker
import pytest
import torch

from cl_domains.core.losses import info_nce


def run_torchrun(tmp_path: Path, mode: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(Path(dist_worker.__file__)),
        str(tmp_path),
        mode,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(tmp_path / f"result-{mode}.pt")


@pytest.mark.distributed
def test_two_process_gather_matches_one_process(tmp_path):
    model, x1, x2 = dist_worker.setup()
    loss = info_nce(model(x1), model(x2), 0.2)
    loss.backward()
    expected = [p.grad for p in model.parameters()]

    got = run_torchrun(tmp_path, "grad")
    torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
    for g, e in zip(got["grads"], expected, strict=False):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)

    plain = run_torchrun(tmp_path, "plain")  # without gradient through the gather: wrong gradients
    torch.testing.assert_close(plain["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
    off = max(float((g - e).abs().max() / e.abs().max()) for g, e in zip(plain["grads"], expected, strict=False))
    assert off > 0.05, f"plain all_gather should give wrong gradients, relative error only {off:.3g}"
