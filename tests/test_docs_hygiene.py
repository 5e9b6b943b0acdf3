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
