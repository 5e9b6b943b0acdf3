import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import make_sentinel, tree_digest  # noqa: E402
from toyruns import make_toy_run  # noqa: E402

from cl_domains.core.runs import Run  # noqa: E402


@pytest.fixture
def sentinel(tmp_path):
    """A folder outside every run/output folder of the case; the test fails if the case changed it."""
    folder = make_sentinel(tmp_path / "sentinel")
    before = tree_digest(folder)
    yield folder
    assert tree_digest(folder) == before, "a hostile case changed a folder outside its run/output folder"


@pytest.fixture(autouse=True)
def _no_hang():
    """An in-process case that blocks (a FIFO opened by mistake) fails after 120 s instead of hanging CI."""

    def hung(signum, frame):
        raise TimeoutError("a hostile case ran for more than 120 s (blocked on a FIFO?)")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch):
    """The curves are not what these cases test; drawing them is most of a short resume's time."""
    monkeypatch.setattr(Run, "plot", lambda self: self.dir / "curves.png")


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """See :func:`toyruns.make_toy_run`."""
    return make_toy_run(tmp_path_factory.mktemp("toy"))
