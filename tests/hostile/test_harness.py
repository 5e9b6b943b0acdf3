"""The harness itself: the bounds hold on the child and the checks can fail."""

import pytest

from .harness import Result, assert_clean_exit, run_cli, run_many


def test_children_end_cleanly_and_bounds_apply(sentinel):
    ok, user_error = run_many([["--help"], ["run", "no_such_recipe"]])
    assert_clean_exit(ok, codes=(0,))
    assert_clean_exit(user_error, codes=(2,), contains="recipe not found")
    starved = run_cli("list", memory=32 * 2**20)  # the address-space limit reaches the child
    assert starved.code not in (0, 2)


def test_the_checks_can_fail():
    with pytest.raises(AssertionError):
        assert_clean_exit(Result(1, "", "Traceback (most recent call last):\n  boom"))
    with pytest.raises(AssertionError):
        assert_clean_exit(Result(2, "", "error: first paragraph\n\nsecond paragraph"))
    with pytest.raises(AssertionError):
        assert_clean_exit(Result(2, "", "no error line"))
    assert_clean_exit(Result(2, "", "log line\nerror: one paragraph\n  cl-domains run --resume x"))
