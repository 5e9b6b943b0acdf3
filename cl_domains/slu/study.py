"""The class-incremental study: every strategy of ``method.strategies`` for every seed of ``method.seeds``
on data prepared once, each training a :class:`~cl_domains.slu.task.CILTask` driven by the core
:class:`~cl_domains.core.train.Trainer` in ``strategies/<strategy>-seed<k>/``, then the side-by-side
table and plot."""

from __future__ import annotations

import dataclasses
import json
import os
import time

from ..core.errors import UserError
from ..core.recipe import PaperConfig, Recipe, paper_applies
from ..core.registry import method
from ..core.runs import STATE_MAX_BYTES, Run, atomic_write_text
from ..core.safefs import UnsafeFile, read_json, safe_rmtree
from ..core.task import Study
from ..core.train import Trainer
from .config import CoconutConfig
from .prepare import PreparedSpeech, prepare
from .report import METRICS, mean_std, plot_study, study_table
from .task import CILTask

__all__ = ["CILStudy"]


@method("slu", "coconut")
class CILStudy(Study):
    """Every strategy x seed of a recipe, then the side-by-side table and the per-task plot.

    ``data``: both splits already prepared in memory (what :class:`cl_domains.slu.COCONUT` passes for in-memory
    data), used instead of reading ``recipe.data``. The trained tasks stay in ``tasks`` (``{(strategy, seed): task}``).
    """

    config = CoconutConfig

    def __init__(self, recipe: Recipe, data_root, device=None, data: PreparedSpeech | None = None):
        self.recipe, self.data_root, self.data = recipe, data_root, data
        self.tasks: dict[tuple[str, int], CILTask] = {}

    def run(self, *, out, device, run: Run | None = None) -> Run:
        """Train every strategy x seed; with ``run`` (resume), finished trainings are kept and an
        unfinished one starts again (its rehearsal memory and teacher live in memory, not in checkpoints)."""
        recipe, cfg = self.recipe, self.recipe.method
        resume = run is not None
        early: list[str] = []  # data preparation messages before the run folder exists

        def log(message: str) -> None:
            run.log(message) if run is not None else (early.append(message), print(message, flush=True))

        data = self.data or prepare(recipe.data, self.data_root, log=log)
        run = run or Run.create(out, recipe)  # after the data is read: bad data leaves no empty run folder
        for message in early:
            run.log(message, echo=False)
        run.log(
            f"{'resuming' if resume else 'starting'} {recipe.name} (profile {recipe.profile}) in {run.dir} on {device}"
        )
        t0 = time.time()
        run.log(f"data: {json.dumps(data.info)}")
        if cfg.mm_weight and "coconut" in cfg.strategies and not data.has_text:
            run.log("the training manifest has no transcripts: COCONUT runs without its MM (audio-text) term")
        results: dict[str, list[dict]] = {}
        for strategy in cfg.strategies:
            for seed in cfg.seeds or [recipe.train.seed]:
                results.setdefault(strategy, []).append(self._train_one(run, data, strategy, seed, device))
        self._write(run, data, results, time.time() - t0)
        return run

    def _train_one(self, run: Run, data: PreparedSpeech, strategy: str, seed: int, device) -> dict:
        """One strategy x seed in ``strategies/<strategy>-seed<seed>`` (kept when it finished before)."""
        recipe, cfg = self.recipe, self.recipe.method
        t = time.time()
        sub_dir = run.dir / "strategies" / f"{strategy}-seed{seed}"
        done = sub_dir / "result.json"
        if os.path.lexists(done):
            try:
                result = read_json(done, STATE_MAX_BYTES, base=run.dir)
                if not isinstance(result, dict) or not {"seed", "acc_matrix", "seconds"} <= set(result):
                    raise UnsafeFile(f"{done} is not a strategy's result (seed, acc_matrix, seconds, metrics)")
                run.log(f"{strategy} seed {seed}: finished before, kept")
                return result
            except UnsafeFile as exc:
                run.log(f"{strategy} seed {seed}: its result is damaged ({exc}); training it again")
        task = CILTask(
            data, strategy, seed, cfg, recipe.model, recipe.train.batch_size, recipe.train.epochs,
            recipe.eval.batch_size, device,
        )  # fmt: skip
        train = recipe.train.model_copy(
            update={
                "seed": seed,
                "epochs": recipe.train.epochs * len(task.tasks),
                "eval_before": False,
                "keep_start": False,  # a class-incremental learner starts knowing no class: no candidate
                "eval_every": None,
                "patience": None,
            }
        )
        sub = dataclasses.replace(
            recipe,
            train=train,
            name=f"{recipe.name}/{strategy}-seed{seed}",
            paper=PaperConfig(source="see the study's report.md"),
        )
        # unfinished: its memory and teacher lived in memory, so it starts again (never through a link or outside)
        if os.path.lexists(sub_dir) and not safe_rmtree(sub_dir, run.dir):
            raise UserError(f"{sub_dir} is not a folder inside the run directory; move it away and resume again.")
        sub_run = Run.create(run.dir, sub, name=f"strategies/{strategy}-seed{seed}")
        task.recipe = sub
        Trainer(sub, task, sub_run, device=device).fit()
        self.tasks[(strategy, seed)] = task
        final = sub_run.metrics["final"]
        result = {"seed": seed, **final, "acc_matrix": task.acc.tolist(), "seconds": round(time.time() - t, 1)}
        atomic_write_text(done, json.dumps(result))
        run.log(
            f"{strategy} seed {seed}: " + ", ".join(f"{k} {final[k]:.2f}" for k in final) + f" [{time.time() - t:.0f}s]"
        )
        return result

    def _write(self, run: Run, data: PreparedSpeech, results: dict, seconds: float) -> None:
        from .continual import ordered_tasks
        from .task import examples_by_task

        recipe, cfg = self.recipe, self.recipe.method
        summary = {s: {k: mean_std([r[k] for r in rs]) for k in METRICS} for s, rs in results.items()}
        tasks = ordered_tasks(data.train.classes, cfg.n_tasks, cfg.task_sizes, cfg.class_order, cfg.class_order_seed)
        counts = [len(x) for x in examples_by_task(data.test.labels, tasks)]
        shown, note = paper_applies(recipe)
        run.metrics.update(
            {
                "recipe": recipe.name,
                "profile": recipe.profile,
                "paper": {**recipe.paper.model_dump(), "shown": shown, "note": note},
                "data": data.info,
                "tasks": [[data.train.classes[c] for c in t] for t in tasks],
                "final": {f"{s}/{k}": v[0] for s, m in summary.items() for k, v in m.items()},
                "std": {f"{s}/{k}": v[1] for s, m in summary.items() for k, v in m.items()},
                "runs": results,
                "test_counts": counts,
                "wall_seconds": round(seconds, 1),
            }
        )
        run.save_metrics()
        plot_study(run.dir / "curves.png", results, counts, title=f"{recipe.name} ({recipe.profile})")
        table = study_table(
            summary, recipe.paper, len(next(iter(results.values()))), recipe.paper.metrics if shown else {}
        )
        atomic_write_text(
            run.dir / "report.md",
            f"# {recipe.name} ({recipe.profile or 'default'})\n\n{table}\n\n"
            + (f"{note}.\n\n" if note else "")
            + f"Data: {json.dumps(data.info)}. Wall time {seconds:.0f}s.\n",
        )
        run.log("results:\n" + table)
