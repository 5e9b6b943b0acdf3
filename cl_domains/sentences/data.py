"""Readers for the sentence domain's formats: STS pairs, unlabelled corpora, NLI triplets."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.data import open_text
from ..core.errors import UserError
from ..core.recipe import short_repr
from ..core.tables import read_table, require_columns
from ..core.validate import check_finite

__all__ = [
    "StsPairs",
    "read_stsb",
    "read_sts_year",
    "read_sick",
    "read_corpus",
    "read_triplets",
    "find_sts_tasks",
    "read_scored_pairs",
    "read_text_columns",
]


@dataclass
class StsPairs:
    """Sentence pairs with gold similarity scores."""

    name: str
    s1: list[str]
    s2: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _bad(path: Path, line: int, why: str) -> UserError:
    return UserError(f"{path}, line {line}: {why}")


def read_stsb(path: str | Path, name: str = "STSBenchmark") -> StsPairs:
    """STS-B in any of its three forms: the official tab-separated release (no header, no quoting,
    7+ columns), SentEval's copy (same columns), or a TSV with header ``... score sentence1 sentence2``."""
    path = Path(path)
    with open_text(path) as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if rows and rows[0][:1] == ["genre"]:
        header, rows, first = rows[0], rows[1:], 2
        try:
            i_score, i_a, i_b = header.index("score"), header.index("sentence1"), header.index("sentence2")
        except ValueError:
            raise _bad(path, 1, f"header {short_repr(header)} lacks score/sentence1/sentence2") from None
    else:
        i_score, i_a, i_b, first = 4, 5, 6, 1
    return _scored_pairs(name, path, rows, first, i_a, i_b, i_score, "score")


def _check_scores(y: list[float], path: Path, column: str, first: int = 1, row_name: str = "pair") -> np.ndarray:
    """Finite scores, not all equal when there are several (a Spearman correlation with constant gold scores
    is undefined)."""
    arr = check_finite(
        np.asarray(y, dtype=np.float64),
        what=f"the scores ({column})",
        file=path,
        first_row=first,
        row_name=row_name,
        fix="Give every pair a finite similarity score.",
    )
    if len(arr) > 1 and np.ptp(arr) == 0:
        raise UserError(
            f"{path}: every pair has the same score ({arr[0]:g} in column {column}), so the Spearman correlation "
            "it is scored with is undefined. Check the score column; the file needs pairs of different similarity."
        )
    return arr


def _scored_pairs(
    name: str, path: Path, rows: list[list[str]], first: int, i_a: int, i_b: int, i_score: int, score_name: str
) -> StsPairs:
    """Rows (file lines ``first``, ``first + 1``, ...) -> pairs from columns ``i_a``, ``i_b`` with the score in ``i_score``."""
    s1, s2, y = [], [], []
    for n, row in enumerate(rows, first):
        if len(row) <= max(i_score, i_a, i_b):
            raise _bad(path, n, f"expected at least {max(i_score, i_a, i_b) + 1} tab-separated columns, got {len(row)}")
        try:
            y.append(float(row[i_score]))
        except ValueError:
            raise _bad(path, n, f"{score_name} {short_repr(row[i_score])} is not a number") from None
        s1.append(row[i_a].strip())
        s2.append(row[i_b].strip())
    if not y:
        raise UserError(f"{path} holds no sentence pairs.")
    return StsPairs(name, s1, s2, _check_scores(y, path, score_name, first, "line"))


def read_sts_year(directory: str | Path) -> StsPairs:
    """STS12-16 in SentEval's layout (``STS.input.<subset>.txt`` + ``STS.gs.<subset>.txt``), all
    subsets concatenated: the "all" setting scores them with a single Spearman (SimCSE's protocol).
    Pairs without a gold score are skipped, as SentEval does."""
    directory = Path(directory)
    inputs = sorted(directory.glob("STS.input.*.txt"))
    if not inputs:
        raise UserError(f"{directory} has no STS.input.*.txt files (SentEval layout expected).")
    s1, s2, y = [], [], []
    for inp in inputs:
        subset = inp.name[len("STS.input.") : -len(".txt")]
        gold = directory / f"STS.gs.{subset}.txt"
        if not gold.is_file():
            raise UserError(f"{inp} has no gold-score file {gold.name} beside it.")
        with open_text(inp) as f:
            pairs = f.read().splitlines()
        with open_text(gold) as f:
            scores = f.read().splitlines()
        if len(pairs) != len(scores):
            raise UserError(f"{inp} has {len(pairs)} lines but {gold.name} has {len(scores)}.")
        for n, (p, g) in enumerate(zip(pairs, scores, strict=False), 1):
            if not g.strip():
                continue
            cols = p.split("\t")
            if len(cols) < 2:
                raise _bad(inp, n, "expected two tab-separated sentences")
            try:
                y.append(float(g))
            except ValueError:
                raise _bad(gold, n, f"score {short_repr(g)} is not a number") from None
            s1.append(cols[0].strip())
            s2.append(cols[1].strip())
    name = re.sub(r"-en-test$", "", directory.name)
    return StsPairs(name, s1, s2, _check_scores(y, directory, "gold scores", 1, "scored pair"))


def read_sick(path: str | Path) -> StsPairs:
    """SICK-R: ``SICK_test_annotated.txt`` (tab-separated with header pair_ID, sentence_A,
    sentence_B, relatedness_score, ...)."""
    path = Path(path)
    with open_text(path) as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0] if rows else []
    try:
        ia, ib, iy = header.index("sentence_A"), header.index("sentence_B"), header.index("relatedness_score")
    except ValueError:
        raise _bad(path, 1, f"header {short_repr(header)} lacks sentence_A/sentence_B/relatedness_score") from None
    return _scored_pairs("SICKRelatedness", path, rows[1:], 2, ia, ib, iy, "relatedness_score")


def find_sts_tasks(root: str | Path) -> list[StsPairs]:
    """Every STS evaluation set found under ``root`` (a file or a folder): STS12-16 year folders,
    STS-B test files and SICK-R test files, in the usual reporting order."""
    root = Path(root)
    if root.is_file():
        return [read_sick(root) if "SICK" in root.name else read_stsb(root)]
    if not root.is_dir():
        raise UserError(f"STS data path {root} does not exist.")
    tasks = [read_sts_year(d) for d in sorted(root.rglob("STS1[2-6]-en-test")) if d.is_dir()]
    stsb = sorted(p for p in root.rglob("sts-test.*") if p.suffix in (".csv", ".tsv") and ".senteval" not in p.name)
    if stsb:
        tasks.append(read_stsb(stsb[0]))
    sick = sorted(root.rglob("SICK_test_annotated.txt"))
    if sick:
        tasks.append(read_sick(sick[0]))
    if not tasks:
        raise UserError(
            f"no STS evaluation data under {root}: expected STS12-16 folders (STS1X-en-test/), "
            "sts-test.csv/.tsv (STS-B) or SICK_test_annotated.txt."
        )
    return tasks


def read_corpus(path: str | Path) -> list[str]:
    """One sentence per line (``.txt`` or ``.txt.gz``); blank lines are dropped."""
    with open_text(Path(path)) as f:
        lines = [line.strip() for line in f]
    lines = [line for line in lines if line]
    if not lines:
        raise UserError(f"corpus {path} holds no sentence.")
    return lines


def read_triplets(path: str | Path) -> list[tuple[str, str, str]]:
    """NLI triplets CSV with columns ``sent0,sent1,hard_neg`` (SimCSE's supervised layout)."""
    path = Path(path)
    with open_text(path) as f:
        reader = csv.DictReader(f)
        need = {"sent0", "sent1", "hard_neg"}
        if not need <= set(reader.fieldnames or []):
            raise _bad(
                path,
                1,
                f"columns {short_repr(reader.fieldnames)} must include {sorted(need)}, "
                "or set data.columns (anchor, positive, negative) to name your own columns",
            )
        rows = []
        for r in reader:
            if any(r[k] is None for k in need):
                raise _bad(path, reader.line_num, f"expected {len(reader.fieldnames)} comma-separated columns")
            rows.append((r["sent0"], r["sent1"], r["hard_neg"]))
    if not rows:
        raise UserError(f"{path} holds no triplet.")
    return rows


def _text_column(df, path: Path, column: str, key: str, what: str) -> list[str]:
    """The column as stripped strings; a missing or blank value is an error naming its row."""
    values = df[column]
    for i, v in enumerate(values.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)) or not str(v).strip():
            raise UserError(
                f"the {what} {path}, data row {i + 1}: column {column!r} (named by {key}) is empty. "
                "Fill it in or drop that row."
            )
    return [str(v).strip() for v in values.tolist()]


def read_text_columns(
    path: str | Path, columns: dict[str, str], *, what: str = "training file"
) -> list[tuple[str, ...]]:
    """Rows of the named text columns of a CSV/TSV/JSONL/parquet file (``core.tables.read_table``), as
    tuples in the order of ``columns`` (recipe key -> column name, e.g. ``{"data.columns.anchor": "question"}``)."""
    path = Path(path)
    df = read_table(path, what=what)
    require_columns(df, path, columns, what=what)
    cols = [_text_column(df, path, col, key, what) for key, col in columns.items()]
    return list(zip(*cols, strict=False))


def read_scored_pairs(
    path: str | Path,
    sentence1: str = "sentence1",
    sentence2: str = "sentence2",
    score: str = "score",
    *,
    name: str | None = None,
    keys: tuple[str, str, str] = ("sentence1", "sentence2", "score"),
) -> StsPairs:
    """Scored sentence pairs from any CSV/TSV/JSONL/parquet file with the three named columns; ``keys`` are
    the recipe keys (or CLI options) that name them, quoted in errors. ``name`` defaults to the file's stem."""
    path = Path(path)
    what = "scored sentence-pair file"
    df = read_table(path, what=what)
    require_columns(df, path, dict(zip(keys, (sentence1, sentence2, score), strict=False)), what=what)
    s1 = _text_column(df, path, sentence1, keys[0], what)
    s2 = _text_column(df, path, sentence2, keys[1], what)
    y = []
    for i, v in enumerate(df[score].tolist()):
        try:
            y.append(float(v))
        except (TypeError, ValueError):
            y.append(float("nan"))
        if not np.isfinite(y[-1]):
            raise UserError(
                f"the {what} {path}, data row {i + 1}: {score} {short_repr(v)} (column named by {keys[2]}) "
                "is not a number. Give every pair a numeric similarity score."
            )
    return StsPairs(name or path.name.split(".")[0], s1, s2, _check_scores(y, path, repr(score), 1, "data row"))
