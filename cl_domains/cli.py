"""``cl-domains run | list | show | matrix | eval | data | report``."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .core.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Contrastive representation learning beyond images: run recipes, evaluate, manage data.",
)
data_app = typer.Typer(no_args_is_help=True, help="Dataset cards: list, verify checksums, fetch.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a saved model.")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
out = Console()
_ARGV: list[str] = []  # this invocation's arguments (the matrix repeats them in its resume hint)

TRACK = typer.Option([], "--track", help="log to an experiment tracker: mlflow, tensorboard (repeatable or a,b)")
QUIET = typer.Option(False, "--quiet", "-q", help="no progress bar or log lines (errors are still shown)")
DATA_ROOT = typer.Option(None, "--data-root", help="data folder (default: $CL_DOMAINS_DATA, else the user cache)")


@app.command()
def run(
    recipe: str | None = typer.Argument(None, help="recipe YAML path or name (see `cl-domains list`)"),
    profile: str | None = typer.Option(None, "--profile", "-p", help="profile of the recipe (e.g. quick, paper)"),
    overrides: list[str] = typer.Option([], "--set", "-s", help="override a key: --set train.lr=1e-5 (repeatable)"),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="parent folder of the run directory"),
    data_root: Path | None = DATA_ROOT,
    resume: Path | None = typer.Option(None, "--resume", help="continue this run directory from its last checkpoint"),
    quiet: bool = QUIET,
    track: list[str] = TRACK,
) -> None:
    """Train and evaluate a recipe; writes runs/<recipe>-<time>/."""
    from .core.progress import quiet_output
    from .core.recipe import load_recipe
    from .core.runs import Run
    from .core.train import train_recipe

    if resume is not None:
        if recipe or profile or overrides:
            raise UserError(
                "--resume takes the run directory's saved config: give no recipe, --profile or --set with it."
            )
        if not resume.is_dir():
            raise UserError(f"--resume {resume}: no such run directory.")
    elif recipe is None:
        raise UserError("give a recipe (e.g. cl-domains run recipes/debcse_sts.yaml) or --resume RUN_DIR.")
    if track:
        if resume is not None:
            raise UserError("--track is a setting of a new run (train.track); --resume keeps the run's own settings.")
        overrides = [*overrides, f"train.track=[{','.join(_trackers(track))}]"]
    Run.latest_created = None
    try:
        with quiet_output(quiet):
            if resume is not None:
                train_recipe(resume=resume, data_root=data_root)
            else:
                train_recipe(load_recipe(recipe, profile, overrides), out=out_dir, data_root=data_root)
    except KeyboardInterrupt:
        raise Interrupted(resume or Run.latest_created) from None


@app.command()
def matrix(
    domains: str | None = typer.Option(
        None, "--domains", help="comma-separated domains (default: every recipe with the profile)"
    ),
    losses: str | None = typer.Option(
        None, "--losses", help="comma-separated losses (default: all of the objective slot)"
    ),
    temperatures: str | None = typer.Option(
        None,
        "--temperatures",
        help="comma-separated (default: the recipe's matrix.temperatures, else own/2, own, 2*own)",
    ),
    seeds: str = typer.Option("0,1,2", "--seeds", help="comma-separated seeds"),
    profile: str = typer.Option("matrix", "--profile", "-p", help="the recipes' profile that sizes one cell"),
    recipes: list[str] = typer.Option(
        [], "--recipes", help="recipe paths or names instead of the shipped ones (repeatable)"
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="cells trained at once (each in its own process)"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads per cell (default: CPUs / jobs)"),
    out_dir: Path = typer.Option(Path("runs/matrix"), "--out", help="the matrix folder (cells, matrix.csv/md/png)"),
    data_root: Path | None = DATA_ROOT,
    quiet: bool = QUIET,
    track: list[str] = TRACK,
) -> None:
    """The loss x domain matrix: every loss x temperature x seed of each recipe; resumable (finished cells kept)."""
    from .core.matrix import plan, run_matrix
    from .core.progress import quiet_output
    from .core.runs import Run

    Run.check_out(out_dir)  # a file named by --out is said before the recipes are read

    def split(text: str | None, kind=str) -> list | None:
        try:
            return [kind(x) for x in text.split(",") if x.strip()] if text else None
        except ValueError:
            raise UserError(f"cannot read {text!r} as a comma-separated list of {kind.__name__}s.") from None

    cells = plan(
        domains=split(domains),
        losses=split(losses),
        temperatures=split(temperatures, float),
        seeds=split(seeds, int) or [0],
        profile=profile,
        recipes=recipes,
    )
    todo = sum(c.status == "todo" for c in cells)
    say = (lambda m: None) if quiet else (lambda m: out.print(m, markup=False, highlight=False))
    say(f"matrix: {len(cells)} cells ({todo} to run or read back) in {out_dir}")
    try:
        with quiet_output(quiet), _tracked_matrix(_trackers(track), f"matrix {out_dir}"):
            run_matrix(
                cells, out_dir, jobs=jobs, threads=threads, data_root=str(data_root) if data_root else None, log=say
            )
    except KeyboardInterrupt:
        again = " ".join(_quote(a) for a in _ARGV) or "matrix ..."
        raise Interrupted(
            None,
            f"interrupted: the matrix in {out_dir} keeps its finished cells and the checkpoints of the interrupted "
            f"ones; continue with the same command:\n  cl-domains {again}",
        ) from None
    out.print(
        f"wrote {out_dir / 'matrix.csv'}, {out_dir / 'matrix.md'}, {out_dir / 'matrix.png'}",
        markup=False,
        highlight=False,
    )


def _shipped_recipes() -> dict[str, Path]:
    """Recipe file name -> path, first match over ``recipe_dirs()``."""
    from .core.recipe import recipe_dirs

    found: dict[str, Path] = {}
    for d in recipe_dirs():
        for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            found.setdefault(f.name, f)
    return found


def _dataset_of(r: dict) -> str:
    """The recipe's dataset: its card name (``stsb/test`` -> ``stsb``) or file name."""
    data = r.get("data") or {}
    ref = next((data[k] for k in ("dataset", "path", "sequences", "train") if isinstance(data.get(k), str)), "?")
    return ref.split("/")[0] if "/" in ref and not ref.startswith((".", "/")) else Path(ref).name


def _compact(names: list[str], keep: int = 2) -> str:
    return ", ".join(names[:keep]) + (f" +{len(names) - keep}" if len(names) > keep else "")


def _headline(metrics: list[tuple[str, float]], width: int) -> str:
    """The first paper metric as ``name value`` in ``width`` characters: the value whole, the name shortened."""
    if not metrics:
        return ""
    value = f"{metrics[0][1]:g}"
    return f"{_fit(metrics[0][0], width - len(value) - 1)} {value}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _recipe_yaml(f: Path) -> dict:
    """A recipe file's mapping (read as a user's file: UTF-8, size-limited, safe YAML), or a UserError naming it."""
    from .core.recipe import MAX_RECIPE_BYTES, parse_yaml, read_user_text

    r = parse_yaml(read_user_text(f, "recipe", MAX_RECIPE_BYTES), f"recipe {f}")
    if not isinstance(r, dict):
        raise UserError(f"recipe {f} must be a mapping of keys (name, domain, model, data, method, train, ...).")
    return r


@app.command("list")
def list_recipes(long: bool = typer.Option(False, "--long", "-l", help="every profile and paper metric")) -> None:
    """The recipes shipped with the project (80 columns; --long for every profile and paper metric)."""
    rows = []
    for f in _shipped_recipes().values():
        r = _recipe_yaml(f)
        metrics = list(((r.get("paper") or {}).get("metrics") or {}).items())
        profiles = list(r.get("profiles") or {})
        rows.append((f, r, metrics, profiles))
    if long:  # a block per recipe, wrapped at 80 columns
        import textwrap

        for f, r, metrics, profiles in rows:
            typer.echo(f"{f.stem}  ({f})")
            for text in (
                f"{r.get('domain', '?')} / {(r.get('method') or {}).get('name', '?')} / {_dataset_of(r)}; "
                f"profiles: {', '.join(profiles)}",
                "paper: " + (", ".join(f"{k} {v:g}" for k, v in metrics) or "-"),
            ):
                typer.echo(textwrap.fill(text, 80, initial_indent="  ", subsequent_indent="    "))
        return
    widths = (17, 10, 8, 13, 13, 14)  # 6 columns + 5 separating spaces: 80 columns
    header = ("recipe", "domain", "method", "dataset", "profiles", "paper")
    lines = [header]
    for f, r, metrics, profiles in rows:
        lines.append(
            (
                f.stem,
                str(r.get("domain", "?")),
                str((r.get("method") or {}).get("name", "?")),
                _dataset_of(r),
                _compact(profiles),
                _headline(metrics, widths[-1]),
            )
        )
    for cells in lines:
        typer.echo(" ".join(_fit(c, w).ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip())


@app.command()
def show(recipe: str = typer.Argument(..., help="recipe path or name (see `cl-domains list`)")) -> None:
    """A recipe's method, data, profiles and the paper's numbers."""
    from .core.recipe import MAX_RECIPE_BYTES, find_recipe, read_user_text

    path = find_recipe(recipe)
    text = read_user_text(path, "recipe", MAX_RECIPE_BYTES)
    typer.echo(f"# {path}")
    typer.echo(text)


def _json_or_parquet(path: Path) -> bool:
    """A table only our own-file reader reads (CSV/TSV files may be STS-B or SICK-R layouts)."""
    from .core.tables import table_format

    try:
        return table_format(path) in ("jsonl", "parquet")
    except UserError:
        return False


@eval_app.command("sts")
def eval_sts(
    model: Path = typer.Option(..., "--model", help="a saved encoder directory (a run's model/ folder)"),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="STS data: a file, or a folder with STS12-16 / STS-B / SICK-R; or your own scored pairs "
        "(CSV/TSV/JSONL/parquet) with --sentence1/--sentence2/--score naming its columns",
    ),
    sentence1: str | None = typer.Option(None, "--sentence1", help="column of the first sentences (own file)"),
    sentence2: str | None = typer.Option(None, "--sentence2", help="column of the second sentences (own file)"),
    score: str | None = typer.Option(None, "--score", help="column of the gold similarity scores (own file)"),
    pooling: str | None = typer.Option(
        None, "--pooling", help="override the saved pooling (cls, mean, first_last_avg)"
    ),
    data_root: Path | None = DATA_ROOT,
) -> None:
    """Per-task Spearman x100 (cosine similarity) and their average."""
    from .core import data as core_data
    from .sentences import SentenceEncoder, evaluate_sts, find_sts_tasks, read_scored_pairs, read_stsb

    columns = (sentence1, sentence2, score)
    named = any(c is not None for c in columns)
    if named and data is None:
        raise UserError(
            "--sentence1/--sentence2/--score name the columns of your own scored-pairs file: give that file with --data."
        )
    own = data is not None and (named or (data.is_file() and _json_or_parquet(data)))
    if not model.exists():
        raise UserError(f"model {model} does not exist.")
    _check_encoder_meta(model)  # a damaged model folder is said before any data is read
    if own:
        keys = ("--sentence1", "--sentence2", "--score")
        names = [c or k[2:] for c, k in zip(columns, keys, strict=False)]
        tasks = [read_scored_pairs(data, *names, keys=keys)]
    else:
        tasks = find_sts_tasks(data) if data else [read_stsb(core_data.resolve("stsb/test", data_root))]
    enc = _load_encoder(SentenceEncoder, model, pooling)
    scores = evaluate_sts(enc, tasks)
    table = Table("task", "pairs", "Spearman x100")
    sizes = {t.name: len(t) for t in tasks}
    for name, value in scores.items():
        table.add_row(name, str(sizes.get(name, "")), f"{value:.2f}")
    out.print(table)


def _check_encoder_meta(model: Path) -> None:
    from .core.safefs import KIB, read_json

    meta = model / "cl_domains_encoder.json"
    if os.path.lexists(meta) and not isinstance(read_json(meta, 64 * KIB), dict):
        raise UserError(f"{meta} is not a JSON object; the model folder {model} is damaged.")


def _load_encoder(cls, model: Path, pooling: str | None):
    """``cls.from_pretrained`` on a user's model folder: a damaged or refused file is a UserError naming it."""
    import pickle

    _check_encoder_meta(model)
    try:
        return cls.from_pretrained(str(model), pooling=pooling)
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise UserError(
            f"could not load the model {model}: {type(exc).__name__}: {_first_line(exc)}. Give a folder saved by "
            "cl-domains (a run's model/ folder); weights stored as pickles are not loaded."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no detail"


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


@data_app.command("list")
def data_list() -> None:
    """Known datasets and their licences."""
    from .core.data import cards

    table = Table("dataset", "domain", "files", "fetchable", "licence")
    for c in cards().values():
        table.add_row(c.name, c.domain, str(len(c.files)), "yes" if c.fetch else "no", c.license)
    out.print(table)


@data_app.command("verify")
def data_verify(
    name: str | None = typer.Argument(None, help="dataset (default: all)"), data_root: Path | None = DATA_ROOT
) -> None:
    """Check every file of a dataset against its card's sha256."""
    from .core.data import cards, verify
    from .core.data import data_root as root_of

    base, origin = root_of(data_root)
    out.print(f"data root: {base} (from {origin})")
    bad = 0
    table = Table("dataset", "file", "status", "path")
    for n in [name] if name else list(cards()):
        for key, path, status in verify(n, data_root):
            bad += status.startswith("corrupt") or (name is not None and status == "missing")
            table.add_row(n, key, status, str(path))
    out.print(table)
    if bad:
        raise UserError(
            f"{bad} file(s) missing or corrupt (see the table above); fetch them again with "
            f"`cl-domains data fetch {name or '<dataset>'}`, or place the files by hand."
        )


@data_app.command("fetch")
def data_fetch(name: str, data_root: Path | None = DATA_ROOT, force: bool = typer.Option(False, "--force")) -> None:
    """Download a dataset from its official source (needs a network), checking sha256."""
    import gzip
    import tarfile
    import zipfile
    import zlib

    from .core.data import fetch

    try:
        for p in fetch(name, data_root, force=force):
            out.print(f"wrote {p}")
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise UserError(
            f"the download of {name} is damaged and was not used ({type(exc).__name__}: {_first_line(exc)}); "
            f"fetch it again with `cl-domains data fetch {name} --force`."
        ) from None


@app.command()
def embed(
    model_dir: Path = typer.Argument(..., help="a saved model directory (est.save(dir), or a run's model/ folder)"),
    data: Path = typer.Option(..., "--data", help="the inputs, in a format the model's domain reads"),
    out_file: Path = typer.Option(
        ..., "--out", help="FILE.parquet (columns id, e0..e{d-1}) or FILE.npy (ids in FILE.ids.txt)"
    ),
    batch_size: int = typer.Option(1024, "--batch-size", min=1, help="inputs embedded at once"),
    quiet: bool = QUIET,
) -> None:
    """Embed a file of inputs with a saved model of any domain (float32, one row per input, in input order)."""
    from .core.embedding import embed_file
    from .core.progress import quiet_output

    with quiet_output(quiet):
        embed_file(model_dir, data, out_file, batch_size=batch_size)


def _trackers(track: list[str]) -> list[str]:
    from .core.tracking import TRACKERS, require_trackers

    names = [n.strip() for t in track for n in t.split(",") if n.strip()]
    for n in names:
        if n not in TRACKERS:
            raise UserError(f"--track {n!r}: the trackers are: {', '.join(TRACKERS)}.")
    require_trackers(names)  # said before any data is read
    return list(dict.fromkeys(names))


@contextlib.contextmanager
def _tracked_matrix(names: list[str], title: str):
    """The matrix's cells log to the trackers ``names``; with MLflow, as children of one parent run."""
    from .core.tracking import PARENT_ENV, TRACK_ENV, matrix_parent

    if not names:
        yield
        return
    parent = matrix_parent(names, title)
    saved = {k: os.environ.get(k) for k in (TRACK_ENV, PARENT_ENV)}
    os.environ[TRACK_ENV] = ",".join(names)
    if parent is not None:
        os.environ[PARENT_ENV] = parent[1]
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if parent is not None:
            parent[0].set_terminated(parent[1], status)


@app.command()
def export(
    model_dir: Path = typer.Argument(..., help="a saved model directory (est.save(dir), or a run's model/ folder)"),
    fmt: str = typer.Option("onnx", "--format", help="the export format: onnx"),
    out_file: Path | None = typer.Option(None, "--out", help="the file to write (default: MODEL_DIR/model.onnx)"),
) -> None:
    """Export a saved encoder as one ONNX graph, inputs to embedding (needs the `export` extra)."""
    from .core.export import FORMATS, export_onnx

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: the export formats are: {', '.join(FORMATS)}.")
    out.print(f"wrote {export_onnx(model_dir, out_file)}", markup=False, highlight=False)


@app.command()
def report(run_dir: Path) -> None:
    """Print a finished run's table of our numbers against the paper's."""
    from .core.safefs import MIB, read_text

    f = run_dir / "report.md"
    if not os.path.lexists(f):
        raise UserError(f"{run_dir} has no report.md (the run has not finished).")
    out.print(read_text(f, 16 * MIB), markup=False)


class Interrupted(Exception):
    """Ctrl-C during a run (carries the run directory, if one was created) or with ``message`` saying how to
    continue."""

    def __init__(self, run_dir: Path | None, message: str | None = None):
        super().__init__(str(run_dir))
        self.run_dir, self.message = run_dir, message


def _click_types(name: str) -> tuple[type, ...]:
    """``name`` from click and from the click typer bundles (typer >= 0.22 vendors its own copy)."""
    found = []
    for module in ("click.exceptions", "typer._click.exceptions", "typer.exceptions", "typer"):
        try:
            t = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(t, type) and issubclass(t, BaseException) and t not in found:
            found.append(t)
    return tuple(found)


_EXIT, _ABORT, _CLICK_ERROR = _click_types("Exit"), _click_types("Abort"), _click_types("ClickException")


def main(argv: list[str] | None = None) -> int:
    """Console entry point. Exit codes: 0 success, 2 user error (one paragraph on stderr, no
    traceback; usage errors too), 130 interrupted (with the ``--resume`` command), 1 internal error."""
    err = Console(stderr=True)
    _ARGV[:] = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        code = app(args=argv, standalone_mode=False, prog_name="cl-domains")
    except UserError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
        return 2
    except Interrupted as exc:
        if exc.message:
            err.print(exc.message, highlight=False, soft_wrap=True, markup=False)
        elif exc.run_dir is None:
            err.print("interrupted before a run directory was created: nothing to resume.", highlight=False)
        else:
            err.print(
                f"interrupted: run {exc.run_dir} keeps its last checkpoint; continue with:\n"
                f"  cl-domains run --resume {exc.run_dir}",
                highlight=False,
                soft_wrap=True,
            )
        return 130
    except _EXIT as exc:
        code = int(getattr(exc, "exit_code", 1) or 0)
        if code == 130:
            err.print("interrupted", highlight=False)
        return code
    except _CLICK_ERROR as exc:  # usage errors (unknown option or command, bad value): message + usage, code 2
        exc.show()
        return int(getattr(exc, "exit_code", 2))
    except (KeyboardInterrupt, *_ABORT) as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, EOFError) and not isinstance(exc, KeyboardInterrupt):  # click turns EOFError into Abort
            err.print(
                Text.assemble(("error: ", "bold red"), f"an input ended early ({_first_line(cause)})."),
                highlight=False,
                soft_wrap=True,
            )
            return 2
        err.print("interrupted", highlight=False)
        return 130
    except Exception:  # noqa: BLE001 - a bug: show it and say so
        traceback.print_exc()
        err.print(
            "internal error (a bug in cl-domains, not in your input): please report it with the traceback above.",
            highlight=False,
        )
        return 1
    if code == 130:  # typer turns Ctrl-C into a silent exit code 130
        err.print("interrupted", highlight=False)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
