"""The sentence estimators: :class:`SimCSE`, :class:`SupSimCSE`, :class:`DebCSE` and :class:`MultiCSR`.

::

    from cl_domains.sentences import SimCSE

    model = SimCSE(train={"max_steps": 100, "batch_size": 32}).fit(sentences)   # list[str]
    vectors = model.embed(["a cat sits", "a dog runs"])                          # numpy float32 [2, 384]
    model.save("my-encoder")             # SentenceTransformer("my-encoder") loads it too

``fit(data)`` takes sentences (``list[str]``: SimCSE, DebCSE), (anchor, positive[, negative]) tuples (SupSimCSE;
MultiCSR needs the negative), or a path that ``data.train`` accepts (a corpus or a table with ``data.columns``).
The recipe's ``data.dev`` / ``data.test`` (STS-B by default) select and score the model; ``data={"dev": None,
"test": None}`` trains on your sentences alone (the last step is kept, ``metrics_`` is empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..core.errors import UserError
from ..core.estimator import Estimator, estimator
from ..core.tables import table_format
from .data import read_corpus, read_stsb, read_text_columns
from .encoder import SentenceEncoder

__all__ = ["SentenceEstimator", "SimCSE", "SupSimCSE", "DebCSE", "MultiCSR"]

IN_MEMORY = "<in memory>"  # data.train of a fit on Python data (recorded in the run's config.yaml)


class SentenceEstimator(Estimator):
    """Shared by the sentence estimators: in-memory sentences or tuples, ``embed`` (alias ``encode``) through the
    trained :class:`SentenceEncoder`, and a saved folder that ``sentence_transformers.SentenceTransformer`` loads.

    The constructor's keywords are :class:`cl_domains.core.estimator.Estimator`'s.
    """

    domain: ClassVar[str] = "sentences"
    widths: ClassVar[tuple[int, ...]] = (1,)  # 1: sentences (str); 2, 3: (anchor, positive[, negative]) tuples
    variant: ClassVar[str | None] = None  # SimCSE's method.variant this estimator trains
    chunked_inference: ClassVar[bool] = False  # encode sorts by length: one call, its own progress bar

    # ------------------------------------------------------------------ fit
    def _examples(self, data: Sequence) -> list:
        name = type(self).__name__
        data = list(data)
        if not data:
            raise UserError(f"{name}.fit(): data is empty.")
        if all(isinstance(x, str) for x in data):
            width = 1
        else:
            widths = {len(x) if isinstance(x, (tuple, list)) else -1 for x in data}
            ok = len(widths) == 1 and next(iter(widths)) in (2, 3)
            if not ok or not all(isinstance(s, str) for x in data for s in x):
                raise UserError(
                    f"{name}.fit(): data must be all sentences (str) or all (anchor, positive) or all "
                    "(anchor, positive, negative) tuples of str."
                )
            width = next(iter(widths))
        if width not in self.widths:
            want = {1: "single sentences (a list of str)", 2: "(anchor, positive) pairs"}
            wanted = " or ".join(want.get(w, "(anchor, positive, negative) triplets") for w in self.widths)
            hint = " (use SupSimCSE for pairs)" if type(self) is SimCSE else ""
            raise UserError(f"{name}.fit() trains on {wanted}{hint}.")
        return data if width == 1 else [tuple(x) for x in data]

    def data_settings(self, data: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``data.train``: the path given, or a marker for in-memory data."""
        if args or kwargs:
            raise UserError(f"{type(self).__name__}.fit(data) takes only the data.")
        if data is None:
            return {}
        if isinstance(data, (str, Path)):
            return {"train": str(data)}
        if isinstance(data, Sequence):
            self._examples(data)  # checked before any model is loaded
            return {"train": IN_MEMORY}
        raise UserError(f"{type(self).__name__}.fit(): data must be a list of sentences or tuples, or a path.")

    def build_recipe(self, data_settings: dict[str, Any] | None = None):
        recipe = super().build_recipe(data_settings)
        if self.variant is not None and recipe.method.variant != self.variant:
            other = "SupSimCSE" if self.variant == "unsup" else "SimCSE"
            raise UserError(
                f"{type(self).__name__} trains SimCSE's {self.variant!r} variant, not method.variant = "
                f"{recipe.method.variant!r}: use {other}."
            )
        return recipe

    def build_task(self, recipe, device, data: Any, *args: Any, **kwargs: Any):
        from ..core import registry

        cls = registry.method_spec("sentences", recipe.method.name).cls
        if data is None or isinstance(data, (str, Path)):
            return cls(recipe, None, device)
        return cls(recipe, None, device, examples=self._examples(data))

    def after_fit(self, task) -> None:
        self.encoder_ = task.encoder

    # ------------------------------------------------------------------ inference
    def embed_tensor(self, x: Any):
        if isinstance(x, str):
            x = [x]
        x, size = list(x), self.recipe_.eval.batch_size
        return self.encoder_.encode(x, batch_size=size, progress="embedding" if len(x) > 8 * size else None)

    def encode(self, sentences: Sequence[str] | str, *, as_tensor: bool = False):
        """Alias of :meth:`embed` (the sentence-transformers habit)."""
        return self.embed(sentences, as_tensor=as_tensor)

    def onnx_graph(self):
        """The encoder as one ONNX graph, inputs to embedding (``cl-domains export``)."""
        self._check_fitted()
        from .onnx_graph import onnx_graph

        return onnx_graph(self.encoder_)

    def embedding_dim(self) -> int:
        return self.encoder_.dim

    def evaluate(self, data: Any = None) -> dict[str, float]:
        """The run report's final metrics (``stsb_test``, then the recipe's ``eval.extra``/``eval.sts`` tasks).

        Args:
            data: ``None``: the recipe's test data; or an STS-B file (a path or ``"stsb/test"``) scored as
                ``stsb_test`` in its place.

        Returns:
            ``{metric: Spearman x 100}``.
        """
        from ..core import data as core_data
        from .task import eval_sets, final_metrics

        self._check_fitted()
        _, test, extra = eval_sets(self.recipe_, None)
        if data is not None:
            test = read_stsb(core_data.resolve(str(data)), "stsb_test")
        tasks = [t for t in (test, *extra) if t is not None]
        return final_metrics(self.encoder_, tasks, self.recipe_.eval.batch_size)

    # ------------------------------------------------------------------ save / load
    def save_files(self, directory: Path):
        """A sentence-transformers folder (``SentenceTransformer(dir)`` loads it) plus the pooling/head files."""
        self.encoder_.save(directory)
        files = {p.name: "sentence-transformers" for p in sorted(directory.iterdir()) if p.is_file()}
        files = {k: v for k, v in files.items() if k not in ("cl_domains.json", "README.md")}
        return {}, {}, {"files": files}

    def restore(self, model_dir) -> None:
        self.encoder_ = SentenceEncoder.from_pretrained(str(model_dir.path))
        self.encoder_.eval()

    @classmethod
    def read_inputs(cls, path: str | Path) -> tuple[list, list[str]]:
        """Sentences to embed: a text file (one per line, blank lines skipped; ids are the 1-based line numbers) or a
        CSV/TSV/JSONL/parquet table with a ``text`` column (ids from an ``id`` column, else the row numbers).

        Returns:
            ``(ids, sentences)``.
        """
        path = Path(path)
        try:
            table_format(path)
        except UserError:
            from ..core.data import open_text

            read_corpus(path)  # the corpus reader's checks (readable text, at least one sentence)
            with open_text(path) as f:
                rows = [(i, line.strip()) for i, line in enumerate(f, 1) if line.strip()]
            return [i for i, _ in rows], [s for _, s in rows]
        from ..core.tables import read_table

        df = read_table(path, what="sentences file")
        sentences = [row[0] for row in read_text_columns(path, {"text": "text"}, what="sentences file")]
        ids = [str(v) for v in df["id"]] if "id" in df.columns else list(range(len(sentences)))
        return ids, sentences


@estimator("sentences", "simcse")
class SimCSE(SentenceEstimator):
    """Unsupervised SimCSE (Gao et al., 2021): two dropout views of each sentence are the positive pair.

    ``fit(sentences)`` with a list of str (or a corpus path). Default recipe: ``simcse_unsup_sts``.
    """

    default_recipe = "simcse_unsup_sts"
    variant = "unsup"


@estimator("sentences", "simcse_sup", method="simcse")
class SupSimCSE(SentenceEstimator):
    """Supervised SimCSE (Gao et al., 2021): (anchor, positive) pairs, the optional third column a hard negative.

    ``fit(pairs)`` with (anchor, positive[, negative]) tuples (or a path). Default recipe: ``simcse_sup_sts``.
    """

    default_recipe = "simcse_sup_sts"
    widths = (2, 3)
    variant = "sup"


@estimator("sentences", "debcse")
class DebCSE(SentenceEstimator):
    """DebCSE: IPW-sampled neighbour positives and IPW-weighted negatives of unlabelled sentences.

    ``fit(sentences)`` with a list of str (or a corpus path). Default recipe: ``debcse_sts``.
    """

    default_recipe = "debcse_sts"


@estimator("sentences", "multicsr")
class MultiCSR(SentenceEstimator):
    """MultiCSR (Wang et al., 2024): supervised SimCSE on (anchor, positive, negative) triplets, generated by an LLM
    and self-curated (``method.generation``) and/or given (``method.human_pairs``), with the false negatives a
    reference encoder flags removed.

    ``fit(triplets)`` with (anchor, positive, negative) tuples (or a path). Default recipe: ``multicsr_sts``
    (its ``quick`` profile generates with a small local LLM; ``method={"generation": None}`` trains on the given
    triplets alone).
    """

    default_recipe = "multicsr_sts"
    widths = (3,)
