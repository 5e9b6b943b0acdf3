"""Measured figures in README.md and docs/ come from benchmarks/results/: each region between
``<!-- from: FILE [FILE ...] -->`` and ``<!-- end from -->`` may only show decimal figures that one of its files
holds (rounded to the page's decimals). Editing a results file, or a page, so that they differ fails."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGION = re.compile(r"<!-- from: (?P<files>[^>]*?) -->(?P<body>.*?)<!-- end from -->", re.S)
FIGURE = re.compile(r"(?<![\w.@/-])(\d*\.\d+)(?![\w.%])")  # a percentage is derived: not looked up
SOURCE_NUMBER = re.compile(r"-?\d*\.?\d+(?:[eE][-+]?\d+)?")


def _pages():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _figures(body: str):
    body = re.sub(r"`[^`\n]*`", " ", body)  # settings and commands, not measurements
    body = re.sub(r"\]\([^)]*\)", "]", body)  # link targets
    for match in FIGURE.finditer(body):
        yield match.group(1)


def _source_values(files: list[str]) -> list[float]:
    values = []
    for name in files:
        path = ROOT / name
        assert path.is_file(), f"the region names {name}, which does not exist"
        values += [float(tok) for tok in SOURCE_NUMBER.findall(path.read_text())]
    return values


def regions():
    found = []
    for page in _pages():
        text = page.read_text()
        for match in REGION.finditer(text):
            line = text[: match.start()].count("\n") + 1
            found.append(
                pytest.param(page, match.group("files").split(), match.group("body"), id=f"{page.name}:{line}")
            )
    return found


def test_the_readme_and_the_domain_pages_have_regions():
    pages = {param.values[0].name for param in regions()}
    assert {"README.md", "hetgraph.md", "seqrec.md", "slu.md", "regression.md", "timeseries.md"} <= pages


@pytest.mark.parametrize(("page", "files", "body"), regions())
def test_each_figure_is_in_its_results_file(page, files, body):
    values = _source_values(files)
    missing = []
    for fig in _figures(body):
        decimals = len(fig.split(".")[1])
        x = float(fig)
        if not any(abs(v - x) <= 0.5 * 10**-decimals + 1e-9 for v in values):  # v rounds to x (half up)
            missing.append(fig)
    assert not missing, f"{page.relative_to(ROOT)}: figures not in {', '.join(files)}: {', '.join(missing)}"
