"""Mixed precision in the training loop: losses in float32 under autocast, the GradCache and chunked paths give the
reference gradients under bf16 autocast, fp16 scales the loss, and a bf16 run of each domain's tiny case stays near
its fp32 run (CPU autocast)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from toy_task import CTX, ToyTask, recipe

from cl_domains.core.losses import info_nce, nt_xent
from cl_domains.core.recipe import recipe_from_dict
from cl_domains.core.runs import Run
from cl_domains.core.train import Trainer

BF16 = torch.autocast("cpu", dtype=torch.bfloat16)


def _toy(**train):
    task = ToyTask(16)
    task.model.float()
    task.x1, task.x2 = task.x1.float(), task.x2.float()
    return task


def _grads(tmp_path, precision, **train):
    task = _toy()
    tr = Trainer(recipe(batch_size=16, precision=precision, **train), task, Run(tmp_path), device=torch.device("cpu"))
    with tr.amp():
        loss, _ = tr._backward(torch.arange(16), CTX)
    return float(loss.detach()), [p.grad.clone() for p in task.model.parameters()]


def _rel(a, b) -> float:
    """Relative difference of two gradients, in norm."""
    return float((a - b).norm() / b.norm())


def test_losses_are_float32_under_autocast():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g)
    want = info_nce(a, b, 0.05)
    with BF16:
        got = info_nce(a, b, 0.05)
        assert torch.matmul(a, b.T).dtype == torch.bfloat16  # autocast is on: plain matmuls would be bf16
    assert got.dtype == torch.float32 and torch.equal(got, want)


@pytest.mark.parametrize("chunk", [3, 16])
def test_grad_cache_under_bf16_gives_the_direct_step_gradients(tmp_path, chunk):
    loss, direct = _grads(tmp_path / "d", "bf16")
    loss_c, cached = _grads(tmp_path / "c", "bf16", grad_cache_chunk=chunk)
    _, fp32 = _grads(tmp_path / "f", "fp32")
    assert math.isclose(loss, loss_c, rel_tol=1e-6)
    for c, d, f in zip(cached, direct, fp32, strict=False):
        # the same bf16 forward: equal up to bf16 rounding of each sub-batch's weight gradient (8-bit mantissa)
        assert _rel(c, d) <= 1e-2
        assert _rel(c, f) <= 3e-2 and _rel(d, f) <= 3e-2  # and near the float32 gradients


def test_chunked_loss_under_bf16_gives_the_dense_gradients():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 32)
    x = torch.randn(40, 16)
    grads = []
    for chunked in (False, True):
        lin.zero_grad()
        with BF16:
            z1, z2 = lin(x), lin(x + 0.1)
            assert z1.dtype == torch.bfloat16
            loss = nt_xent(z1, z2, 0.1, chunked=chunked, chunk_size=7)
        loss.backward()
        grads.append((float(loss), lin.weight.grad.clone()))
    assert math.isclose(grads[0][0], grads[1][0], rel_tol=1e-5)
    assert _rel(grads[1][1], grads[0][1]) <= 1e-3


def test_fp16_scales_the_loss_and_steps(tmp_path):
    task = _toy()
    tr = Trainer(recipe(batch_size=16, precision="fp16"), task, Run(tmp_path), device=torch.device("cpu"))
    assert tr.scaler.is_enabled() and tr.scaler.get_scale() > 1
    before = [p.detach().clone() for p in task.model.parameters()]
    _, fp32 = _grads(tmp_path / "f", "fp32")
    for _ in range(3):  # the scaler skips steps with overflowing gradients and halves its scale
        scale = tr.scaler.get_scale()
        with tr.amp():
            loss, extras = tr._backward(torch.arange(16), CTX)
        assert math.isfinite(float(loss))
        scaled = task.model[0].weight.grad.clone()
        tr._apply(extras)
        stepped = any(not torch.equal(a, p) for a, p in zip(before, task.model.parameters(), strict=False))
        assert stepped == (tr.scaler.get_scale() == scale)
        if stepped:
            break
    assert stepped
    assert _rel(scaled / scale, fp32[0]) <= 3e-2  # backward ran on the scaled loss, the step on the true gradients


def test_unknown_precision_is_refused():
    from cl_domains.core.errors import UserError

    with pytest.raises((UserError, ValueError), match="precision"):
        recipe_from_dict(
            {"name": "x", "domain": "sentences", "method": {"name": "simcse"}, "train": {"precision": "fp8"}}
        )


# bf16 against fp32 on each domain's tiny case (2 optimiser steps): the first step's loss (same weights, same batch)
# within LOSS_RTOL, each final test metric within METRIC_TOL of max(1, |fp32 value|) (points on a 0-100 scale:
# within 2 points; MAE-like metrics: within 2%).
LOSS_RTOL, METRIC_TOL = 0.02, 0.02
SCALE = {"sentences": 100.0, "hetgraph": 100.0, "slu": 100.0}  # metrics in points (x 100)
DOMAIN_CASES = [
    ("sentences", "simcse"),
    ("timeseries", "ts2vec"),
    ("seqrec", "sasrec"),
    ("regression", "supremix"),
    ("hetgraph", "meow"),
    ("slu", "coconut"),
]


def _run(domain, name, precision, request, tmp_path):
    import importlib
    import json

    case = importlib.import_module(f"conformance.{domain}").CASES[name]
    ctx = SimpleNamespace(tmp=tmp_path, **{f: request.getfixturevalue(f) for f in case.fixtures})
    est = case.make(ctx)
    est.set_params(out=tmp_path / precision, train={**(est.train or {}), "precision": precision})
    est.fit(*case.fit_args(ctx))
    # the run's loss curve (slu: its studies' first sub-run)
    runs = [json.loads(f.read_text()) for f in sorted(est.run_dir_.rglob("metrics.json"))]
    history = next(m["history"]["loss"] for m in runs if m.get("history", {}).get("loss"))
    return history[0][1], est.metrics_


@pytest.mark.parametrize("domain,name", DOMAIN_CASES)
def test_bf16_run_stays_near_fp32(domain, name, request, tmp_path):
    loss32, m32 = _run(domain, name, "fp32", request, tmp_path)
    loss16, m16 = _run(domain, name, "bf16", request, tmp_path)
    assert loss16 != loss32  # autocast did run
    assert math.isclose(loss16, loss32, rel_tol=LOSS_RTOL), (loss16, loss32)
    assert m16.keys() == m32.keys() and m32
    for k in m32:
        assert abs(m16[k] - m32[k]) <= METRIC_TOL * max(SCALE.get(domain, 1.0), abs(m32[k])), (k, m16[k], m32[k])


def test_compile_compiles_the_model_in_place(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    task = _toy()
    Trainer(recipe(compile=True), task, Run(tmp_path), device=torch.device("cpu"))
    assert compiled == [task.model]
    Trainer(recipe(), _toy(), Run(tmp_path / "b"), device=torch.device("cpu"))
    assert len(compiled) == 1
