"""The model directory: one layout for every domain's saved model (``Estimator.save`` and a run's ``model/``).

::

    cl_domains.json     the manifest: format, domain, method, estimator, library version, resolved recipe, seed,
                        embedding_dim, files, metrics / baselines / paper numbers, domain extras
    model.safetensors   weights (a sentence model keeps sentence-transformers' own files instead)
    *.json, *.safetensors   what inference needs besides the weights (scalers, id maps, vocabularies, schemas)
    README.md           a model card in the Hugging Face convention (YAML front matter, then the description)

Nothing is pickled; a manifest names files by role, never a class or module path to import.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._version import __version__
from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from .recipe import Recipe

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "CARD",
    "Manifest",
    "ModelDir",
    "make_manifest",
    "write_model_dir",
    "read_model_dir",
    "write_card",
    "model_card",
    "write_run_model",
]

FORMAT = "cl-domains-model"
FORMAT_VERSION = 1
MANIFEST = "cl_domains.json"
CARD = "README.md"


class Manifest(BaseModel):
    """The schema of ``cl_domains.json`` (domain extras are allowed beside these keys)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    format: str = Field(..., pattern=f"^{FORMAT}$")
    format_version: int = Field(..., ge=1, le=FORMAT_VERSION)
    domain: str
    method: str
    estimator: str | None = None
    library_version: str
    recipe: dict[str, Any]
    seed: int
    embedding_dim: int | None = None
    files: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = Field(default_factory=dict)
    paper: dict[str, float] = Field(default_factory=dict)
    kept_start: bool = False  # training did not improve dev, so these are the starting model's weights


@dataclass
class ModelDir:
    """A read model directory: its path and validated manifest; files are read on demand."""

    path: Path
    manifest: dict[str, Any]

    def file(self, name: str) -> Path:
        """The path of ``name`` inside the directory; a missing file is a :class:`UserError` naming it."""
        p = self.path / name
        if not p.is_file():
            raise UserError(f"the model directory {self.path} lacks {name} (is it complete?).")
        return p

    def tensors(self, name: str = "model.safetensors") -> dict[str, Any]:
        """The tensors of a safetensors file (CPU)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(self.file(name)), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"{self.path / name} is not a readable safetensors file ({exc}).") from None

    def json(self, name: str) -> Any:
        """A JSON file of the directory."""
        return _read_json(self.file(name))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); the model directory is damaged.") from None


def _finite(d: Any) -> dict[str, float]:
    """The finite numbers of a metrics dict (anything else, e.g. a note, is left out)."""
    if not isinstance(d, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in d.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }


def make_manifest(
    recipe: Recipe,
    *,
    estimator: str | None = None,
    embedding_dim: int | None = None,
    metrics: dict[str, Any] | None = None,
    baselines: dict[str, dict[str, Any]] | None = None,
    paper: dict[str, Any] | None = None,
    **extras: Any,
) -> dict[str, Any]:
    """The manifest of a model trained with ``recipe``.

    Args:
        recipe: the resolved :class:`cl_domains.core.recipe.Recipe`.
        estimator: the registered estimator name (default: the method name).
        embedding_dim: the width of the embeddings.
        metrics: the run's final test metrics.
        baselines: its simple baselines' test metrics, per baseline.
        paper: the paper's numbers.
        **extras: domain fields (JSON-serialisable).

    Returns:
        A dict valid for :class:`Manifest` (``files`` is filled by :func:`write_model_dir`).
    """

    method = getattr(recipe.method, "name", None) or "unknown"  # a hand-built task's recipe may have no method
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "domain": recipe.domain,
        "method": method,
        "estimator": estimator or method,
        "library_version": __version__,
        "recipe": recipe.resolved,
        "seed": recipe.train.seed,
        "embedding_dim": embedding_dim,
        "files": {},
        "metrics": _finite(metrics or {}),
        "baselines": {str(k): _finite(v) for k, v in (baselines or {}).items() if isinstance(v, dict)},
        "paper": _finite(paper or {}),
        **extras,
    }


def write_model_dir(
    directory: str | Path,
    manifest: dict[str, Any],
    tensors: dict[str, dict[str, Any]] | None = None,
    extras: dict[str, Any] | None = None,
    card: str | None = None,
) -> Path:
    """Write a model directory.

    Args:
        directory: created if needed (files already there, e.g. written by sentence-transformers, are kept).
        manifest: from :func:`make_manifest`; its ``files`` gains the files written here.
        tensors: ``{file name: {tensor name: tensor}}``, each written as safetensors.
        extras: ``{file name: JSON-serialisable object}``.
        card: the model card text (default: :func:`model_card` of the manifest).

    Returns:
        The directory.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = dict(manifest.get("files", {}))
    for name, state in (tensors or {}).items():
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(directory / name))
        files.setdefault(name, "tensors")
    for name, obj in (extras or {}).items():
        (directory / name).write_text(json.dumps(obj, indent=1), encoding="utf-8")
        files.setdefault(name, "json")
    manifest = {**manifest, "files": files}
    _validate(manifest, directory / MANIFEST)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
    write_card(directory, manifest, card)
    return directory


def _validate(manifest: Any, where: Path) -> dict[str, Any]:
    try:
        return Manifest.model_validate(manifest).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "the top level"
        raise UserError(f"{where}: not a cl-domains model manifest ({key}: {first['msg']}).") from None


def read_model_dir(directory: str | Path) -> ModelDir:
    """Read and validate a model directory's manifest.

    Args:
        directory: a folder written by :func:`write_model_dir`.

    Returns:
        A :class:`ModelDir`.

    Raises:
        UserError: the folder, its manifest or a file it lists is missing or damaged.
    """
    path = Path(directory)
    if not path.is_dir():
        raise UserError(f"model directory {path} does not exist (or is not a folder).")
    if not (path / MANIFEST).is_file():
        raise UserError(
            f"{path} is not a cl-domains model directory: it has no {MANIFEST} (save one with est.save(dir); "
            "a run keeps its model in <run dir>/model)."
        )
    manifest = _read_json(path / MANIFEST)
    if (
        isinstance(manifest, dict)
        and isinstance(manifest.get("format_version"), int)
        and manifest["format_version"] > FORMAT_VERSION
    ):
        raise UserError(
            f"{path / MANIFEST} has format_version {manifest['format_version']}, newer than this cl-domains "
            f"reads ({FORMAT_VERSION}): upgrade cl-domains."
        )
    _validate(manifest, path / MANIFEST)
    missing = [f for f in manifest.get("files", {}) if not (path / f).exists()]
    if missing:
        raise UserError(f"the model directory {path} lacks {', '.join(missing)} (listed in its {MANIFEST}).")
    return ModelDir(path, manifest)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))


def model_card(manifest: dict[str, Any]) -> str:
    """A model card (Hugging Face convention) from a manifest: YAML front matter, then method, recipe and seed,
    data, the metrics beside the run's baselines and the paper's numbers, and how to load the model.

    Returns:
        The ``README.md`` text.
    """
    recipe = manifest.get("recipe", {})
    domain, method = manifest["domain"], manifest["method"]
    metrics, baselines, paper = manifest.get("metrics", {}), manifest.get("baselines", {}), manifest.get("paper", {})
    data = recipe.get("data", {}) if isinstance(recipe.get("data"), dict) else {}
    datasets = sorted(
        {
            str(v).split("/")[0] or Path(str(v)).stem  # a shipped name, or an absolute file's stem
            for k, v in data.items()
            if isinstance(v, str) and k in ("train", "path", "dataset", "name", "interactions", "sequences")
        }
    )
    name = recipe.get("name", f"{method}")
    front = {
        "library_name": "cl-domains",
        "tags": ["cl-domains", "contrastive-learning", domain, method],
        "datasets": datasets,
        "metrics": list(metrics),
        "model-index": [
            {
                "name": f"{name} ({manifest.get('estimator') or method})",
                "results": [
                    {
                        "task": {"type": domain},
                        "dataset": {
                            "name": datasets[0] if datasets else "own data",
                            "type": datasets[0] if datasets else "own",
                        },
                        "metrics": [{"type": k, "value": round(v, 6)} for k, v in metrics.items()],
                    }
                ],
            }
        ],
    }
    cols = [("ours", metrics), *baselines.items(), ("paper", paper)]
    cols = [(n, c) for n, c in cols if c]
    names = list(dict.fromkeys(k for _, c in cols for k in c))
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {name}: {method} ({domain})",
        "",
        f"A {domain} encoder trained with **{method}** by cl-domains {manifest.get('library_version', '')}.",
        "",
        f"- recipe: `{name}`, seed {manifest.get('seed')}",
        f"- data: {', '.join(f'{k} = {v}' for k, v in data.items() if v is not None) or 'in-memory data'}",
        f"- embedding dimension: {manifest.get('embedding_dim')}",
        *(
            ["- training did not improve dev; the starting model was kept (these are its weights)"]
            if manifest.get("kept_start")
            else []
        ),
        "",
        "## Test metrics",
        "",
    ]
    if names:
        lines.append("| metric | " + " | ".join(n for n, _ in cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        lines += [f"| {m} | " + " | ".join(_fmt(c.get(m)) for _, c in cols) + " |" for m in names]
    else:
        lines.append("No test metrics (the training data had no test split).")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import cl_domains",
        "model = cl_domains.load('path/to/this/folder')",
        "vectors = model.embed(inputs)  # numpy float32, one row per input",
        "```",
        "",
        f"The full resolved recipe is in `{MANIFEST}` (`recipe`).",
        "",
    ]
    return "\n".join(lines)


def write_card(directory: str | Path, manifest: dict[str, Any], card: str | None = None) -> Path:
    """Write the model card ``README.md`` of a model directory.

    Args:
        directory: the model directory.
        manifest: its manifest (the card is generated from it unless ``card`` is given).
        card: the text to write instead.

    Returns:
        The card's path.
    """
    path = Path(directory) / CARD
    path.write_text(card if card is not None else model_card(manifest), encoding="utf-8")
    return path


def write_run_model(directory: str | Path, recipe: Recipe, metrics: dict[str, Any]) -> Path | None:
    """Complete a run's ``model/`` folder (what ``Task.export`` wrote) into a model directory: the manifest and the
    model card from the run's recipe, final metrics, baselines and paper numbers. A manifest the export wrote itself
    (with its domain fields) is kept and gets the run's metrics.

    Args:
        directory: the run's ``model/`` folder.
        recipe: the run's resolved recipe.
        metrics: the run's ``metrics.json`` content (``final``, ``baselines``, ``paper``).

    Returns:
        The directory, or ``None`` when the export wrote nothing there.
    """
    from .runs import shown_paper

    directory = Path(directory)
    if not directory.is_dir():
        return None
    run_fields = make_manifest(
        recipe,
        metrics=metrics.get("final"),
        baselines=metrics.get("baselines"),
        paper=shown_paper(metrics),
        kept_start=bool(metrics.get("kept_start")),
    )
    if (directory / MANIFEST).is_file():
        own = _read_json(directory / MANIFEST)
        keep = {
            k: v
            for k, v in run_fields.items()
            if k in ("metrics", "baselines", "paper", "recipe", "seed", "kept_start")
        }
        manifest = {**own, **keep}
    else:
        files = {p.name: "file" for p in sorted(directory.iterdir()) if p.is_file() and p.name not in (MANIFEST, CARD)}
        manifest = {**run_fields, "files": files}
    return write_model_dir(directory, manifest)
