"""The seqrec estimators: ``SASRec``, ``CL4SRec`` and ``MCLRec`` with the verbs of :mod:`cl_domains.core.estimator`.

::

    from cl_domains.seqrec import CL4SRec
    est = CL4SRec(train={"max_steps": 500}).fit(log)        # a DataFrame or file with user, item, time columns
    est.predict([["B00X", "B00Y"]], k=10)                   # top-10 next items, in the log's own item ids
    est.embed([["B00X", "B00Y"]])                           # float32 [1, hidden]: the sequence representation
    est.save("my_model"); CL4SRec.load("my_model")
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import UserError
from ..core.estimator import Estimator, estimator
from ..core.registry import method_spec
from .data import LeaveOneOut, Sequences, read_sequences
from .evaluate import evaluate_ranking
from .interactions import prepare_interactions, read_interactions
from .model import SASRecEncoder

__all__ = ["SeqRecEstimator", "SASRec", "CL4SRec", "MCLRec"]

_DATAFRAME = "<DataFrame>"


class _either:
    """A method that receives the instance when called on one, the class otherwise (``read_inputs``)."""

    def __init__(self, func):
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, obj, cls):
        return functools.partial(self.func, obj if obj is not None else cls)


def _is_table(path: Path) -> bool:
    from ..core.tables import table_format

    try:
        table_format(path)
    except UserError:
        return False
    return True


class SeqRecEstimator(Estimator):
    """A sequential recommender (SASRec encoder) trained by one of the seqrec methods.

    ``fit(log)`` trains on an interaction log: a pandas DataFrame or a CSV/TSV/JSONL/parquet/RecBole ``.inter`` file
    (optionally ``.gz``) with one row per event; its column names are ``data={"user": ..., "item": ..., "time": ...}``
    (default ``user_id``, ``item_id``, ``timestamp``; ``"time": None``: row order). A path to a one-user-per-line
    file (``user item item ...``) or ``fit()`` with no data trains on sequences (the recipe's: the shipped Beauty
    file). The log's raw item ids are kept with the model: ``predict`` and ``embed`` take and return them.

    Args:
        recipe, profile, out, model, data, method, train, eval: see :class:`cl_domains.core.estimator.Estimator`
            (default recipe: the method's Beauty recipe, profile ``quick``, seed 0).
    """

    default_recipe = ""

    # ------------------------------------------------------------------ fit
    def data_settings(self, data: Any = None) -> dict[str, Any]:
        """``data.interactions`` (a log) or ``data.sequences`` (a one-user-per-line file) for ``fit(data)``."""
        if data is None:
            return {}
        if hasattr(data, "columns"):
            return {"interactions": _DATAFRAME}
        if isinstance(data, (str, Path)):
            path = Path(data).expanduser()
            if not path.exists():
                raise UserError(f"{type(self).__name__}.fit: {data} does not exist.")
            key = "interactions" if _is_table(path) else "sequences"
            return {key: str(path.resolve())}
        raise UserError(
            f"{type(self).__name__}.fit() takes an interaction log (a pandas DataFrame or a file path) or a "
            f"one-user-per-line sequence file, not {type(data).__name__}."
        )

    def build_task(self, recipe, device, data: Any = None):
        """The method's registered task, on the in-memory log when ``data`` is a DataFrame."""
        frame = data if hasattr(data, "columns") else None
        return method_spec("seqrec", recipe.method.name).cls(recipe, None, device, frame=frame)

    def after_fit(self, task) -> None:
        """Keep the trained encoder (with the log's raw item ids) as ``model_``."""
        self.model_ = task.encoder

    # ------------------------------------------------------------------ inference
    def embed_tensor(self, histories: list[list]) -> torch.Tensor:
        """Sequence representations ``[n, hidden]`` of item histories (oldest first, the last ``model.max_len``
        used): the output of the last transformer block at each history's final position, the vector that is
        scored against the item embeddings to recommend. Items are the log's raw ids (internal ids ``1..n_items``
        for a model trained on a sequence file); an unknown item is a :class:`UserError`."""
        return self.model_.embed(histories)

    def embedding_dim(self) -> int:
        return int(self.model_.config["hidden"])

    def predict(self, histories: list, k: int = 10, *, exclude_seen: bool = True, unknown: str = "error") -> list:
        """Top-``k`` next items for each history (oldest item first): the recommendation head.

        Args:
            histories: a list of histories (one history, a flat list of ids, gives one answer).
            k: items per answer (at most the number of items).
            exclude_seen: leave a history's own items out of its answer.
            unknown: ``"error"``: an item the model does not know is a :class:`UserError`; ``"skip"``: ignored
                (a history with no known item gets the most popular items).

        Returns:
            ``list[list]`` of item ids (the log's raw ids, or internal ids for a model trained on sequences).
        """
        self._check_fitted()
        top = self.model_.recommend(histories, k=k, exclude_seen=exclude_seen, unknown=unknown)
        return top.tolist() if isinstance(top, torch.Tensor) else top

    recommend = predict

    def evaluate(self, data: Any = None) -> dict[str, float]:
        """Leave-one-out full-ranking metrics (``HR@k``, ``NDCG@k``, ``MRR@k``: the run report's keys).

        Args:
            data: ``None``: the test targets of the data trained on. Or a log (DataFrame/file, the columns of
                ``data=``) or a one-user-per-line file: each user's last item is the target, the items before it
                the history; items the model does not know are removed first (users left with fewer than 3 items
                are dropped).
        """
        self._check_fitted()
        if data is None:
            return super().evaluate()
        e, m = self.recipe_.eval, self.model_
        loo = LeaveOneOut(self._sequences(data), m.max_len)
        return evaluate_ranking(
            m, loo, "test", batch_size=e.batch_size, mask_history=e.mask_history, ks=tuple(e.ks), users=e.users
        )

    def _sequences(self, data: Any) -> Sequences:
        """``data`` as sequences in the model's internal ids."""
        settings = self.data_settings(data)
        m = self.model_
        if "sequences" in settings:
            if m.item_ids is not None:
                raise UserError(
                    f"this model was trained on an interaction log: evaluate it on a log (raw ids), not {data}."
                )
            return read_sequences(settings["sequences"], m.n_items)
        if m.item_ids is None:
            raise UserError("this model was trained on a sequence file (internal ids): evaluate it on such a file.")
        from ..core.tables import read_table, require_columns

        d, source, frame = self.recipe_.data, settings["interactions"], data
        if not hasattr(data, "columns"):  # a log file, read as read_interactions reads it (ids as text)
            text = {name: str for c in (d.user, d.item) for name in (c, f"{c}:token")}
            frame = read_table(source, what="interaction log", dtype=text)
        columns = {"data.user": d.user, "data.item": d.item, "data.time": d.time}
        require_columns(frame, source, columns, what="interaction log")
        known = frame[frame[d.item].astype(str).isin(set(m.item_ids))]
        prepared = prepare_interactions(known, user=d.user, item=d.item, time=d.time, path=source)
        index = {x: j + 1 for j, x in enumerate(m.item_ids)}
        remap = np.array([index[x] for x in prepared.item_ids], dtype=np.int64)
        s = prepared.sequences
        return Sequences(remap[s.items - 1], s.offsets, m.n_items, s.name)

    # ------------------------------------------------------------------ save / load
    def save_files(self, directory: Path):
        """``model.safetensors``, the encoder's architecture in the manifest and, for a log, ``items.json``
        (the raw item ids and their interaction counts)."""
        m = self.model_
        state = {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
        extras = {"items.json": {"items": m.item_ids, "counts": m.item_counts}} if m.item_ids is not None else {}
        return {"model.safetensors": state}, extras, {"encoder": dict(m.config)}

    def restore(self, model_dir) -> None:
        config = model_dir.manifest.get("encoder")
        if config is None:  # a run's model/ folder: the architecture is in SASRecEncoder.save's config.json
            config = {k: v for k, v in model_dir.json("config.json").items() if k != "architecture"}
        m = SASRecEncoder(**config)
        m.load_state_dict(model_dir.tensors())
        if "items.json" in model_dir.manifest["files"]:
            vocab = model_dir.json("items.json")
            m.set_vocabulary(vocab["items"], vocab.get("counts"))
        self.model_ = m.eval()

    # ------------------------------------------------------------------ own-data inputs
    @_either
    def read_inputs(self_or_cls, path: str | Path) -> tuple[list[str], list[list]]:
        """Histories to embed from a file: an interaction log (one history per user, oldest first, in raw ids; the
        model's column names when called on a fitted estimator) or a one-user-per-line file.

        Returns:
            ``(user ids, histories)``.
        """
        path = Path(path)
        recipe = getattr(self_or_cls, "recipe_", None)
        if _is_table(path):
            d = recipe.data if recipe is not None else None
            kw = dict(user=d.user, item=d.item, time=d.time) if d is not None else {}
            p = read_interactions(path, **kw)
            return [str(u) for u in p.user_ids], [p.history(u) for u in p.user_ids]
        s = read_sequences(path)
        users = [line.split()[0] for line in _lines(path)]
        return users, [s.user(u).tolist() for u in range(s.n_users)]


def _lines(path: Path) -> list[str]:
    from ..core.data import open_text

    with open_text(path) as f:
        return [line for line in f if line.strip()]


@estimator("seqrec", "sasrec")
class SASRec(SeqRecEstimator):
    """SASRec (Kang & McAuley, 2018): the transformer recommender trained on next-item prediction alone.
    See :class:`SeqRecEstimator` for the verbs; default recipe ``sasrec_beauty``."""

    default_recipe = "sasrec_beauty"


@estimator("seqrec", "cl4srec")
class CL4SRec(SeqRecEstimator):
    """CL4SRec (Xie et al., 2022): SASRec plus a contrastive term between two augmented views of each history.
    See :class:`SeqRecEstimator` for the verbs; default recipe ``cl4srec_beauty``."""

    default_recipe = "cl4srec_beauty"


@estimator("seqrec", "mclrec")
class MCLRec(SeqRecEstimator):
    """MCLRec (Qin et al., 2023): data- and learnable model-augmented views, meta-optimised.
    See :class:`SeqRecEstimator` for the verbs; default recipe ``mclrec_beauty``."""

    default_recipe = "mclrec_beauty"
