"""The slu estimators: ``COCONUT`` and its baselines ``ExperienceReplay``, ``FineTuning`` and ``JointTraining``, with
the verbs of :mod:`cl_domains.core.estimator`.

Each trains ONE model class-incrementally (the classes arrive task after task) through the same study as
``cl-domains run`` (:class:`cl_domains.slu.CILStudy`), restricted to its strategy and one seed::

    from cl_domains.slu import COCONUT
    est = COCONUT(method={"n_tasks": 2}).fit("my_commands/train.csv", test="my_commands/test.csv")
    est.predict(["turn_on.wav"])      # class names
    est.embed(["turn_on.wav"])        # float32 [1, model.dim] utterance vectors
    est.evaluate("my_commands/test.csv")  # {"coconut/avg_acc": ..., "coconut/last_acc": ..., "coconut/forgetting": ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..core.errors import UserError
from ..core.estimator import Estimator, estimator
from ..core.modes import eval_mode
from .continual import cl_metrics
from .data import Utterances, read_manifest, read_wav, tokenize
from .features import log_mel
from .model import SLUModel, pad_features
from .prepare import PreparedSpeech
from .study import CILStudy
from .task import examples_by_task

__all__ = ["SLUEstimator", "COCONUT", "ExperienceReplay", "FineTuning", "JointTraining"]

_MEMORY = "<in memory>"


def _features(audio: list) -> list[Tensor]:
    """Log-mel features (fp16, as training stores them) of waveforms (16 kHz mono arrays) or audio file paths."""
    out = []
    for i, a in enumerate(audio):
        wave = read_wav(a, where=f"input {i + 1}") if isinstance(a, (str, Path)) else np.asarray(a, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise UserError(f"input {i + 1}: a waveform must be a non-empty 1-D array (16 kHz mono), not {wave.shape}.")
        out.append(log_mel(wave).half())
    return out


def _pairs(items: Any, what: str) -> list[tuple[Any, str, str]]:
    """``(audio, label, transcript)`` rows from a list of ``(audio, label)`` or ``(audio, label, transcript)``."""
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3) or not isinstance(item[1], str):
            raise UserError(
                f"{what}, item {i + 1}: expected (audio, label) or (audio, label, transcript) with a text label, "
                f"got {type(item).__name__}."
            )
        rows.append((item[0], item[1], item[2] if len(item) == 3 else ""))
    return rows


class SLUEstimator(Estimator):
    """A class-incremental speech classifier (intents or scenarios) trained by one continual strategy.

    ``fit(train, test=...)`` takes the training and evaluation data as manifest files (CSV/TSV/JSONL/parquet:
    ``path``, ``label``, optional ``speaker`` and ``transcript``; other column names via ``data=``), as pandas
    DataFrames of the same columns (relative paths start from ``data={"audio_root": ...}``, default the working
    folder), or as Python lists: ``train`` a list of TASKS, each a list of ``(audio, label)`` or
    ``(audio, label, transcript)`` (audio: a 16 kHz mono waveform or a WAV path), which fixes the classes of each
    task and their order; ``test`` a flat list of the same pairs. ``fit()`` with no data trains on the recipe's
    data. Training goes through :class:`cl_domains.slu.CILStudy` (the ``cl-domains run`` path) with
    ``method.strategies`` set to this estimator's strategy and ``method.seeds`` to ``null`` (``train.seed``).

    ``embed`` gives the speech encoder's pooled utterance vectors (the classifier's input), ``predict`` the class
    names; both take waveforms or audio file paths.

    Args:
        recipe, profile, out, model, data, method, train, eval: see :class:`cl_domains.core.estimator.Estimator`
            (default recipe ``coconut_manifest``, profile ``quick``, seed 0).
    """

    default_recipe = "coconut_manifest"
    strategy: ClassVar[str] = "coconut"
    chunked_inference = False  # embed batches by eval.batch_size itself (one batching, the same numbers)

    # ------------------------------------------------------------------ fit
    def data_settings(self, data: Any = None, test: Any = None) -> dict[str, Any]:
        """The data section for ``fit(data, test)``: manifest paths, or ``<in memory>`` for DataFrames and lists
        (their tasks also set ``method.class_order`` and ``method.task_sizes``)."""
        self._fit_method: dict[str, Any] = {}
        if data is None:
            if test is not None:
                raise UserError(f"{type(self).__name__}.fit(test=...) needs the training data too.")
            return {}
        if test is None:
            raise UserError(
                f"{type(self).__name__}.fit(train, test=...): give the evaluation data too (a manifest, a DataFrame "
                "or a list of (audio, label)); the continual metrics are measured on it after every task."
            )
        if isinstance(data, (str, Path)):
            if not isinstance(test, (str, Path)):
                raise UserError(f"{type(self).__name__}.fit: a training manifest path needs a test manifest path.")
            return {"format": "manifest", "train": str(Path(data).expanduser()), "test": str(Path(test).expanduser())}
        if hasattr(data, "columns") or isinstance(data, (list, tuple)):
            if isinstance(data, (list, tuple)):
                tasks = [
                    sorted({label for _, label, _ in _pairs(t, f"train task {k + 1}")}) for k, t in enumerate(data)
                ]
                order = [c for t in tasks for c in dict.fromkeys(t)]
                if len(order) != len(set(order)):
                    raise UserError("fit(train=[task, ...]): a class appears in two tasks; each class has one task.")
                self._fit_method = {"class_order": order, "task_sizes": [len(t) for t in tasks], "n_tasks": len(tasks)}
            return {"format": "manifest", "train": _MEMORY, "test": _MEMORY}
        raise UserError(
            f"{type(self).__name__}.fit() takes manifest paths, DataFrames or lists of (audio, label), "
            f"not {type(data).__name__}."
        )

    def build_recipe(self, data_settings: dict[str, Any] | None = None):
        """The recipe with this estimator's strategy and one seed (see the class docstring)."""
        user = {"name": self.method} if isinstance(self.method, str) else dict(self.method or {})
        fixed = {"strategies": [self.strategy], "seeds": None, **getattr(self, "_fit_method", {})}
        saved, self.method = self.method, {**fixed, **user}
        try:
            recipe = super().build_recipe(data_settings)
        finally:
            self.method = saved
        if recipe.method.strategies != [self.strategy] or len(recipe.method.seeds or [0]) != 1:
            raise UserError(
                f"{type(self).__name__} trains one model: method.strategies must be [{self.strategy!r}] and "
                "method.seeds null or one seed (for several, run the recipe with cl-domains run)."
            )
        return recipe

    def build_task(self, recipe, device, data: Any = None, test: Any = None):
        """The study of the recipe, on ``data``/``test`` prepared in memory when they are not files."""
        if data is None or isinstance(data, (str, Path)):
            return CILStudy(recipe, None, device)
        return CILStudy(recipe, None, device, data=self._prepare(recipe, data, test))

    def _prepare(self, recipe, data: Any, test: Any) -> PreparedSpeech:
        d = recipe.data
        root = Path(d.audio_root).expanduser() if d.audio_root else Path.cwd()

        def rows(x, what: str, flat: bool):
            if isinstance(x, (str, Path)):  # a manifest file (e.g. the test split beside in-memory tasks)
                u = read_manifest(x, d.audio_root, audio_column=d.audio_column, label_column=d.label_column,
                                  speaker_column=None, text_column=None)  # fmt: skip
                return [(a, u.classes[y], "") for a, y in zip(u.audio, u.labels, strict=False)]
            if hasattr(x, "columns"):
                for key, col in (("audio_column", d.audio_column), ("label_column", d.label_column)):
                    if col not in x.columns:
                        raise UserError(f"the {what} DataFrame has no column {col!r} (data.{key}).")
                text = d.text_column if d.text_column in x.columns else None
                return [
                    (
                        root / str(a) if not Path(str(a)).is_absolute() else Path(str(a)),
                        str(y),
                        t if isinstance(t, str) else "",
                    )
                    for a, y, t in zip(
                        x[d.audio_column], x[d.label_column], x[text] if text else [""] * len(x), strict=False
                    )
                ]
            items = x if flat else [p for task in x for p in task]
            return _pairs(items, what)

        train = rows(data, "training", flat=False)
        test_rows = rows(test, "test", flat=True)
        classes = sorted({y for _, y, _ in train})
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({y for _, y, _ in test_rows} - set(classes))
        if unknown:
            raise UserError(f"test labels {unknown[:5]} do not occur in the training data (classes: {classes[:20]}).")

        def split(r, name):
            u = Utterances(
                [t for _, _, t in r], [index[y] for _, y, _ in r], [""] * len(r), classes, source=f"{name} {_MEMORY}"
            )
            return u, _features([a for a, _, _ in r])

        (tr, ftr), (te, fte) = split(train, "train"), split(test_rows, "test")
        vocab = ["<pad>", "<unk>", *sorted({w for u in (tr, te) for x in u.texts for w in tokenize(x)})]
        return PreparedSpeech(tr, te, ftr, fte, vocab, {"train_utterances": len(tr), "test_utterances": len(te)})

    def after_fit(self, study: CILStudy) -> None:
        """Keep the trained model, its model after each task (for :meth:`evaluate`) and the task split."""
        (task,) = study.tasks.values()
        self.model_ = self._bare(task.model)
        self.phase_weights_ = [self._strip(w) for w in task.phase_weights]
        self.tasks_ = [list(t) for t in task.tasks]

    @staticmethod
    def _strip(state: dict) -> dict:
        return {k: v.detach().cpu().clone() for k, v in state.items() if not k.startswith("objectives.")}

    def _bare(self, model: SLUModel) -> SLUModel:
        """A CPU copy without the training-only modules (a learnable temperature)."""
        bare = SLUModel(**model.config)
        bare.load_state_dict(self._strip(model.state_dict()))
        return bare.eval()

    # ------------------------------------------------------------------ inference
    def _forward(self, audio: list, model: SLUModel | None = None) -> tuple[Tensor, Tensor]:
        if not isinstance(audio, (list, tuple)) or not audio:
            raise UserError("give a non-empty list of waveforms (16 kHz mono arrays) or audio file paths.")
        model = model or self.model_
        hs, logits = [], []
        batch = self.recipe_.eval.batch_size
        feats = _features(list(audio))
        with eval_mode(model):
            for s in range(0, len(feats), batch):
                x, lengths = pad_features(feats[s : s + batch])
                h, z = model(x, lengths)
                hs.append(h)
                logits.append(z)
        return torch.cat(hs), torch.cat(logits)

    def embed_tensor(self, audio: list) -> Tensor:
        """Utterance vectors ``[n, model.dim]``: the speech encoder's masked mean over time (the classifier's input)."""
        return self._forward(audio)[0]

    def embedding_dim(self) -> int:
        return int(self.model_.config["dim"])

    def predict(self, audio: list) -> list[str]:
        """Class names for waveforms (16 kHz mono arrays) or audio file paths, over every class learnt.

        Returns:
            One class name per input.
        """
        self._check_fitted()
        with torch.no_grad():
            logits = self._forward(audio)[1]
        return [self.model_.config["classes"][i] for i in logits.argmax(-1).tolist()]

    def evaluate(self, data: Any = None) -> dict[str, float]:
        """The continual metrics of the run report (``<strategy>/avg_acc``, ``/last_acc``, ``/forgetting``).

        Args:
            data: ``None``: those measured on the test split while training. Or test data (a manifest path, a
                DataFrame or a list of ``(audio, label)``): the model after each task is scored on it, as the
                study scores its test split.
        """
        self._check_fitted()
        if data is None:
            if getattr(self, "task_", None) is None:
                raise UserError(
                    f"{type(self).__name__}.evaluate() scores the test split with the trained task; a loaded model "
                    "has none: give test data (a manifest, a DataFrame or a list of (audio, label))."
                )
            return dict(self.metrics_)
        classes = self.model_.config["classes"]
        if isinstance(data, (str, Path)):
            d = self.recipe_.data
            u = read_manifest(data, d.audio_root, audio_column=d.audio_column, label_column=d.label_column,
                              speaker_column=None, text_column=None, classes=classes)  # fmt: skip
            audio, labels = [str(a) for a in u.audio], u.labels
        else:
            rows = self._rows(data)
            index = {c: i for i, c in enumerate(classes)}
            bad = sorted({y for _, y in rows} - set(index))
            if bad:
                raise UserError(f"test labels {bad[:5]} are not among the model's classes ({classes[:20]}).")
            audio, labels = [a for a, _ in rows], [index[y] for _, y in rows]
        by_task = examples_by_task(labels, self.tasks_)
        labels_t = torch.tensor(labels)
        acc = np.full((len(self.tasks_), len(self.tasks_)), np.nan)
        model = SLUModel(**self.model_.config)
        for p, weights in enumerate(self.phase_weights_):
            model.load_state_dict(weights)
            seen = torch.zeros(len(classes), dtype=torch.bool)
            seen[[c for t in self.tasks_[: p + 1] for c in t]] = True
            with torch.no_grad():
                logits = self._forward(audio, model)[1].masked_fill(~seen, float("-inf"))
            pred = logits.argmax(-1)
            for j in range(p + 1):
                idx = by_task[j]
                acc[p, j] = float((pred[idx] == labels_t[idx]).float().mean() * 100) if idx else float("nan")
        metrics = cl_metrics(acc, [len(x) for x in by_task])
        return {f"{self.strategy}/{k}": v for k, v in metrics.items()}

    def _rows(self, data: Any) -> list[tuple[Any, str]]:
        if hasattr(data, "columns"):
            d = self.recipe_.data
            root = Path(d.audio_root).expanduser() if d.audio_root else Path.cwd()
            return [(root / str(a), str(y)) for a, y in zip(data[d.audio_column], data[d.label_column], strict=False)]
        return [(a, y) for a, y, _ in _pairs(data, "test")]

    # ------------------------------------------------------------------ save / load
    def save_files(self, directory: Path):
        """``model.safetensors`` (the final model), ``phases.safetensors`` (the model after each task, for
        :meth:`evaluate`), and the classes, vocabulary, task split and architecture in the manifest."""
        state = self._strip(self.model_.state_dict())
        phases = {f"{p}.{k}": v for p, w in enumerate(self.phase_weights_) for k, v in w.items()}
        fields = {"slu_model": dict(self.model_.config), "tasks": self.tasks_, "strategy": self.strategy}
        return {"model.safetensors": state, "phases.safetensors": phases}, {}, fields

    def restore(self, model_dir) -> None:
        m = model_dir.manifest
        self.model_ = SLUModel(**m["slu_model"])
        self.model_.load_state_dict(self._strip(model_dir.tensors()))
        self.model_.eval()
        self.tasks_ = [list(t) for t in m["tasks"]]
        phases = model_dir.tensors("phases.safetensors")
        self.phase_weights_ = [
            {k.split(".", 1)[1]: v for k, v in phases.items() if k.split(".", 1)[0] == str(p)}
            for p in range(len(self.tasks_))
        ]

    # ------------------------------------------------------------------ own-data inputs
    @classmethod
    def read_inputs(cls, path: str | Path) -> tuple[list[str], list[str]]:
        """Audio files to embed, listed in a manifest (column ``path``; relative paths start from the manifest's
        folder; a ``label`` column is allowed and not used).

        Returns:
            ``(the manifest's path column, the audio file paths)``.
        """
        from ..core.tables import read_table

        labelled = "label" in read_table(Path(path), what="audio manifest").columns
        u = read_manifest(path, label_column="label" if labelled else "path", speaker_column=None, text_column=None)
        return list(u.ids), [str(a) for a in u.audio]


def _registered() -> dict:
    from ..core.estimator import estimators

    return estimators("slu")


@estimator("slu", "coconut")
class COCONUT(SLUEstimator):
    """COCONUT (Cappellazzo et al., 2024): experience replay plus the NSPT (rehearsal, against the previous task's
    model) and MM (audio-transcript) contrastive terms. See :class:`SLUEstimator` for the verbs."""

    strategy = "coconut"


@estimator("slu", "replay", method="coconut")
class ExperienceReplay(SLUEstimator):
    """Experience replay: each task's data plus rehearsal examples of the earlier tasks in every batch (COCONUT's
    baseline). See :class:`SLUEstimator`."""

    strategy = "replay"


@estimator("slu", "finetune", method="coconut")
class FineTuning(SLUEstimator):
    """Fine-tuning on each task's data alone (the lower bound of class-incremental learning). See
    :class:`SLUEstimator`."""

    strategy = "finetune"


@estimator("slu", "joint", method="coconut")
class JointTraining(SLUEstimator):
    """Joint training on the data of every task seen so far (the upper bound). See :class:`SLUEstimator`."""

    strategy = "joint"
