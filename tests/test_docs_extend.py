"""docs/extend/*.md: each page opens with a complete example, and the example runs (in a fresh folder that sees
the repository's ``examples/``)."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["loss", "dataset", "method", "domain"]


@pytest.mark.parametrize("page", PAGES)
def test_the_page_opens_with_an_example_that_runs(page, tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "extend" / f"{page}.md").read_text()
    first = re.search(r"^## |```python\n(.*?)```", text, re.S | re.M)
    assert first is not None and first.group(1), f"docs/extend/{page}.md does not open with a python example"
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = dict(os.environ)  # the dataset example names its cards folder in the environment
    try:
        exec(compile(first.group(1), f"docs/extend/{page}.md", "exec"), {"__name__": f"extend_{page}"})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert capsys.readouterr().out.strip()
