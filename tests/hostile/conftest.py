import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from .harness import make_sentinel, tree_digest  # noqa: E402


@pytest.fixture
def sentinel(tmp_path):
    """A folder outside every run/output folder of the case; the test fails if the case changed it."""
    folder = make_sentinel(tmp_path / "sentinel")
    before = tree_digest(folder)
    yield folder
    assert tree_digest(folder) == before, "a hostile case changed a folder outside its run/output folder"
