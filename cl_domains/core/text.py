"""Text helpers shared by the core and the domains, with no imports from the package (any module may use them)."""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = ["short_repr"]

_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 80, 80, 6, 6, 3


def short_repr(value: Any) -> str:
    """``repr`` cut to about 80 characters per item and a few items per level, for error texts
    built from user input (a huge or deeply nested value must not make a huge message).

    Args:
        value: any object, typically a value read from a user's file.

    Returns:
        Its ``repr``, shortened.
    """
    return _SHORT.repr(value)
