"""``cl-domains run | list | eval | data | report``."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .core.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Contrastive representation learning beyond images: run recipes, evaluate, manage data.")
data_app = typer.Typer(no_args_is_help=True, help="Dataset cards: list, verify checksums, fetch.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a saved model.")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
out = Console()

DATA_ROOT = typer.Option(None, "--data-root", help="data folder (default: $CL_DOMAINS_DATA, else the user cache)")


@app.command()
def run(
    recipe: Optional[str] = typer.Argument(None, help="recipe YAML path or name (see `cl-domains list`)"),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="profile of the recipe (e.g. quick, paper)"),
    overrides: List[str] = typer.Option([], "--set", "-s", help="override a key: --set train.lr=1e-5 (repeatable)"),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="parent folder of the run directory"),
    data_root: Optional[Path] = DATA_ROOT,
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run directory from its last checkpoint"),
) -> None:
    """Train and evaluate a recipe; writes runs/<recipe>-<time>/."""
    from .core.recipe import load_recipe
    from .core.train import train_recipe

    if resume is not None:
        if recipe or profile or overrides:
            raise UserError("--resume takes the run directory's saved config: give no recipe, --profile or --set with it.")
        train_recipe(resume=resume, data_root=data_root)
        return
    if recipe is None:
        raise UserError("give a recipe (e.g. cl-domains run recipes/debcse_sts.yaml) or --resume RUN_DIR.")
    train_recipe(load_recipe(recipe, profile, overrides), out=out_dir, data_root=data_root)


@app.command("list")
def list_recipes() -> None:
    """The recipes shipped with the project."""
    import yaml

    from .core.recipe import recipe_dirs

    table = Table("recipe", "domain", "method", "profiles", "paper")
    seen = set()
    for d in recipe_dirs():
        for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            if f.name in seen:
                continue
            seen.add(f.name)
            r = yaml.safe_load(f.read_text())
            paper = ", ".join(f"{k} {v}" for k, v in (r.get("paper", {}).get("metrics") or {}).items())
            table.add_row(f"{f.parent.name}/{f.name}", r.get("domain", "?"), str(r.get("method", {}).get("name", "?")),
                          ", ".join(r.get("profiles", {})), paper)
    out.print(table)


@eval_app.command("sts")
def eval_sts(
    model: Path = typer.Option(..., "--model", help="a saved encoder directory (a run's model/ folder)"),
    data: Optional[Path] = typer.Option(None, "--data", help="STS data: a file, or a folder with STS12-16 / STS-B / SICK-R"),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="override the saved pooling (cls, mean, first_last_avg)"),
    data_root: Optional[Path] = DATA_ROOT,
) -> None:
    """Per-task Spearman x100 (cosine similarity) and their average."""
    from .core import data as core_data
    from .sentences import SentenceEncoder, evaluate_sts, find_sts_tasks, read_stsb

    if not model.exists():
        raise UserError(f"model {model} does not exist.")
    enc = SentenceEncoder.from_pretrained(str(model), pooling=pooling)
    tasks = find_sts_tasks(data) if data else [read_stsb(core_data.resolve("stsb/test", data_root))]
    scores = evaluate_sts(enc, tasks)
    table = Table("task", "pairs", "Spearman x100")
    sizes = {t.name: len(t) for t in tasks}
    for name, value in scores.items():
        table.add_row(name, str(sizes.get(name, "")), f"{value:.2f}")
    out.print(table)


@data_app.command("list")
def data_list() -> None:
    """Known datasets and their licences."""
    from .core.data import cards

    table = Table("dataset", "domain", "files", "fetchable", "licence")
    for c in cards().values():
        table.add_row(c.name, c.domain, str(len(c.files)), "yes" if c.fetch else "no", c.license)
    out.print(table)


@data_app.command("verify")
def data_verify(name: Optional[str] = typer.Argument(None, help="dataset (default: all)"), data_root: Optional[Path] = DATA_ROOT) -> None:
    """Check every file of a dataset against its card's sha256."""
    from .core.data import cards, data_root as root_of, verify

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
        raise typer.Exit(1)


@data_app.command("fetch")
def data_fetch(name: str, data_root: Optional[Path] = DATA_ROOT, force: bool = typer.Option(False, "--force")) -> None:
    """Download a dataset from its official source (needs a network), checking sha256."""
    from .core.data import fetch

    for p in fetch(name, data_root, force=force):
        out.print(f"wrote {p}")


@app.command()
def report(run_dir: Path) -> None:
    """Print a finished run's table of our numbers against the paper's."""
    f = run_dir / "report.md"
    if not f.is_file():
        raise UserError(f"{run_dir} has no report.md (the run has not finished).")
    out.print(f.read_text(), markup=False)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors become one paragraph on stderr and exit code 2."""
    err = Console(stderr=True)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("interrupted")
        return 130
    except KeyboardInterrupt:
        err.print("interrupted: continue with `cl-domains run --resume <run dir>`")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
