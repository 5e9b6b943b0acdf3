"""The CLI for a person: `--help` without torch, `list` in 80 columns, `show`."""

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cl_domains.cli import app

RECIPES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_cli_import_does_not_load_torch():
    # `cl-domains --help` stays fast (0.26 s of CPU measured) because importing the CLI loads neither torch nor a domain
    code = (
        "import sys, cl_domains.cli; print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_list_fits_80_columns_and_names_every_recipe():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["recipe", "domain", "method", "dataset", "profiles", "paper"]
    assert sorted(line.split()[0] for line in lines[1:]) == RECIPES
    meow = next(line for line in lines if line.startswith("meow_acm "))
    assert meow.split()[1:4] == ["hetgraph", "meow", "acm"] and meow.endswith(" 88.56")


def test_list_long_and_show():
    long = CliRunner().invoke(app, ["list", "--long"])
    assert long.exit_code == 0 and max(map(len, long.output.splitlines())) <= 80
    assert "paper: macro_f1_20 88.56, macro_f1_40 87.61" in long.output and "multivariate" in long.output
    shown = CliRunner().invoke(app, ["show", "meow_acm"])
    assert shown.exit_code == 0 and "name: meow_acm" in shown.output
