"""User-facing text speaks to users: README, docs and docstrings name no issue numbers, no machine load and no
story of how the project was built (what a reader needs of the history is in CHANGELOG.md)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(
    r"issue [0-9]+|\bload [0-9]|load average|\bsession\b|not re-run|shared (2-core|machine|box|cores)|"
    r"\bthis box\b|box shared|before issue|machine time|quieter box",
    re.I,
)


def _files():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").rglob("*.md"))
    yield from sorted((ROOT / "cl_domains").rglob("*.py"))


def test_no_issue_numbers_load_or_build_history_in_user_facing_text():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}"
        for path in _files()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert not found, "user-facing text tells of issues, load or history:\n" + "\n".join(found)


def _tested_blocks(page: Path, blocks: list[tuple[int, str]], text: str) -> set[int]:
    """Indices of the ``python`` blocks of a page that a test runs (see the tests named)."""
    rel = page.relative_to(ROOT / "docs").as_posix()
    if rel == "using.md":  # tests/test_docs_using.py
        return set(range(len(blocks)))
    if rel in {"extend/loss.md", "extend/dataset.md", "extend/method.md", "extend/domain.md"}:  # test_docs_extend
        return {0}
    if "## Your own data" in text:  # conftest.readme_snippet: the domain's own-data tests
        start = text.index("## Your own data")
        return {next(i for i, (pos, _) in enumerate(blocks) if pos > start)}
    return set()


def test_every_python_block_runs_in_a_test_or_says_why_not():
    unmarked = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text()
        blocks = [(m.start(), m.group(1)) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]
        tested = _tested_blocks(page, blocks, text)
        for i, (pos, code) in enumerate(blocks):
            if i not in tested and "# not run by the tests: " not in code:
                unmarked.append(f"{page.relative_to(ROOT)}:{text[:pos].count(chr(10)) + 1}")
    assert not unmarked, (
        "python blocks neither run by a test nor marked '# not run by the tests: <why>':\n" + "\n".join(unmarked)
    )
