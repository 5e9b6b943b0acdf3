"""Large batches in the shared Trainer: GradCache gives the gradients of a direct large-batch
step, and 2 torchrun processes (gloo) give the loss curve of 1 process on the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy_task import CTX, ToyTask, recipe

from cl_domains.core.errors import UserError
from cl_domains.core.runs import Run
from cl_domains.core.task import Task
from cl_domains.core.train import Trainer, train_task


def trainer(tmp_path, task, **train):
    return Trainer(recipe(**train), task, Run(tmp_path), device=torch.device("cpu"))


def grads_of(task):
    return [p.grad.clone() for p in task.model.parameters()]


@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_grad_cache_gives_the_gradients_of_a_direct_large_batch_step(tmp_path, chunk):
    batch = torch.arange(16)
    direct = ToyTask(16)
    direct.loss(batch).backward()
    cached = ToyTask(16)
    loss, _ = trainer(tmp_path, cached, batch_size=16, grad_cache_chunk=chunk)._backward(batch, CTX)
    torch.testing.assert_close(loss, direct.loss(batch).detach(), rtol=1e-12, atol=0)
    for g, e in zip(grads_of(cached), grads_of(direct), strict=False):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


def test_grad_cache_replays_dropout_masks(tmp_path):
    """With dropout, the cached step must equal a step whose sub-batches are embedded with a graph
    under the same RNG stream (otherwise the cached embedding gradients would belong to other masks)."""
    batch = torch.arange(12)
    reference = ToyTask(12, dropout=0.5)
    torch.manual_seed(7)
    parts = [reference.embed_batch(batch[s : s + 4]) for s in range(0, 12, 4)]
    loss = reference.loss_from_embeddings(tuple(torch.cat(c) for c in zip(*parts, strict=False)), batch)
    loss.backward()
    cached = ToyTask(12, dropout=0.5)
    torch.manual_seed(7)
    got, _ = trainer(tmp_path, cached, batch_size=12, grad_cache_chunk=4)._backward(batch, CTX)
    torch.testing.assert_close(got, loss.detach(), rtol=1e-12, atol=0)
    for g, e in zip(grads_of(cached), grads_of(reference), strict=False):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
    assert not torch.equal(grads_of(cached)[0], grads_of(ToyTaskNoDrop(tmp_path))[0])  # dropout did act


def ToyTaskNoDrop(tmp_path):
    t = ToyTask(12)
    t.loss(torch.arange(12)).backward()
    return t


def test_grad_cache_needs_an_embedding_task(tmp_path):
    class LossOnly(Task):
        model = torch.nn.Linear(2, 2)
        dev_metric = "x"

        def num_batches(self, epoch):
            return 1

    with pytest.raises(UserError, match="grad_cache_chunk = 4 needs a task with embed_batch"):
        trainer(tmp_path, LossOnly(), grad_cache_chunk=4)


def torchrun(tmp_path: Path, *args, **train) -> dict:
    worker = Path(__file__).with_name("ddp_train_worker.py")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(worker),
        *map(str, args),
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOY_TRAIN": json.dumps(train),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = Path(args[0]).parent / "done.json" if args[1] == "resume" else Path(args[0]) / "done.json"
    return json.loads(done.read_text()) if done.is_file() else {}


@pytest.mark.distributed
def test_two_processes_give_the_one_process_loss_curve_and_resume(tmp_path):
    one = train_task(recipe(), ToyTask(8), out=tmp_path / "one").metrics
    losses_1 = [v for _, v in one["history"]["loss"]]
    assert len(losses_1) == 12 and losses_1[0] != losses_1[-1]  # 48 points / batch 8 x 2 epochs

    # 2 processes, interrupted after step 5 (last checkpoint: step 4), resumed with GradCache inside
    # each process: the whole curve (steps 1-4 from the checkpoint) equals the 1-process curve.
    torchrun(tmp_path / "two", tmp_path / "two", "new", 5)
    (run,) = [p for p in (tmp_path / "two").iterdir() if p.is_dir()]
    assert (run / "checkpoints" / "latest").read_text() == "step-0000004"
    two = torchrun(tmp_path / "two", run, "resume", grad_cache_chunk=2)
    losses_2 = [v for _, v in two["history"]["loss"]]
    torch.testing.assert_close(torch.tensor(losses_2), torch.tensor(losses_1), rtol=1e-9, atol=1e-12)
    assert two["final"]["align"] == pytest.approx(one["final"]["align"], rel=1e-9)
    log = (run / "train.log").read_text()  # rank 0 alone writes
    assert log.count("starting toy") == 1 and log.count("resuming toy") == 1 and "x 2 processes" in log


def test_batch_not_divisible_by_processes_is_a_clear_error(tmp_path, monkeypatch):
    from cl_domains.core import distributed as D

    monkeypatch.setattr(D, "world_size", lambda: 3)
    monkeypatch.setattr(D, "rank", lambda: 0)
    t = trainer(tmp_path, ToyTask(8))
    with pytest.raises(UserError, match="cannot be split over 3 processes"):
        t._backward(torch.arange(8), CTX)
