"""A tiny embedding task for the training-loop scale tests (GradCache, torchrun): two noisy
views of fixed points through a small float64 MLP, InfoNCE over the (global) batch."""

from pathlib import Path

import torch
from safetensors.torch import save_model

from cl_domains.core.losses import info_nce
from cl_domains.core.recipe import PaperConfig, Recipe, TrainConfig
from cl_domains.core.task import StepContext, Task
from cl_domains.core.train import Callback

N, DIM = 48, 6
CTX = StepContext(step=0, epoch=0, index=0, seed=0, device=torch.device("cpu"))  # for direct loss() calls


class ToyTask(Task):
    dev_metric = "align"

    def __init__(self, batch_size: int, seed: int = 0, dropout: float = 0.0):
        g = torch.Generator().manual_seed(123)
        self.x1 = torch.randn(N, DIM, generator=g, dtype=torch.float64)
        self.x2 = self.x1 + 0.3 * torch.randn(N, DIM, generator=g, dtype=torch.float64)
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(DIM, 16), torch.nn.Tanh(), torch.nn.Dropout(dropout), torch.nn.Linear(16, 4)
        ).double()
        self.batch_size, self.seed = batch_size, seed

    def num_batches(self, epoch):
        return N // self.batch_size

    def batches(self, epoch):
        order = torch.randperm(N, generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        for i in range(self.num_batches(epoch)):
            yield order[i * self.batch_size : (i + 1) * self.batch_size]

    def embed_batch(self, batch, ctx=CTX):
        return self.model(self.x1[batch]), self.model(self.x2[batch])

    def loss_from_embeddings(self, embeddings, batch, ctx=CTX):
        a, b = embeddings
        return info_nce(a, b, 0.2)

    def loss(self, batch, ctx=CTX):
        return super().loss(batch, ctx)

    def evaluate(self, split):
        with torch.no_grad():
            a, b = self.embed_batch(torch.arange(N))
        return {"align": float(torch.nn.functional.cosine_similarity(a, b).mean())}

    def export(self, directory: Path):
        Path(directory).mkdir(parents=True, exist_ok=True)
        save_model(self.model, str(Path(directory) / "model.safetensors"))


class StopAfter(Callback):
    """Simulates a crash: raises KeyboardInterrupt once ``step`` optimiser steps are done."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer, ctx, loss):
        if trainer.state.step >= self.step:
            raise KeyboardInterrupt(f"simulated interruption after step {trainer.state.step}")


def recipe(**train) -> Recipe:
    cfg = TrainConfig(
        **{
            "batch_size": 8,
            "lr": 0.05,
            "epochs": 2,
            "eval_every": None,
            "checkpoint_every": 2,
            "eval_before": False,
            "log_every": 1,
            "seed": 0,
            "device": "cpu",
            **train,
        }
    )
    return Recipe(
        name="toy",
        domain="toy",
        description="",
        profile=None,
        model=None,
        data=None,
        method=None,
        train=cfg,
        eval=None,
        paper=PaperConfig(),
        resolved={"name": "toy", "train": cfg.model_dump()},
        source="tests/toy_task.py",
    )
