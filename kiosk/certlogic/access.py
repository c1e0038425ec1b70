"""CertLogic data access (``var``): a path compiled into one subscription chain.

``var`` is most of what a rule does per scan, so the compiled lookup avoids a
type test per step: subscription itself raises ``KeyError`` (no such key),
``IndexError`` (past the end) or ``TypeError`` (``null``, a number, a key into
an array), all of which mean ``null``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kiosk.certlogic.dates import CertLogicError

# A compiled node: (data context, remaining reduce budget as a one-item list) -> value.
Node = Callable[[Any, list[int]], Any]
# A data access path: "" (the whole context) or non-empty fragments joined by dots.
_PATH = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")


class _Index(str):
    """A digit path fragment: a key for objects, an index for arrays (as JavaScript's ``acc[f]``).

    Being a ``str`` it finds the key ``"0"`` in a dict; its ``__index__`` makes
    it index a list. So one plain subscription chain serves both, without a
    type test per step (``var`` is most of a rule's work).
    """

    position: int

    def __new__(cls, fragment: str) -> _Index:
        self = super().__new__(cls, fragment)
        self.position = int(fragment, 10)  # int(self) would call __index__
        return self

    def __index__(self) -> int:
        return self.position


_MISSING = (KeyError, IndexError, TypeError)


def compile_var(path: Any) -> Node:
    """Compile ``{"var": path}``; :class:`CertLogicError` unless ``path`` is valid path text."""
    if type(path) is not str:
        raise CertLogicError('not of the form { "var": "<path>" }')
    if path == "":
        return lambda data, budget: data
    if _PATH.fullmatch(path) is None:
        raise CertLogicError(f"data access path doesn't have a valid format: {path:.40}")
    keys = tuple(_Index(f) if f.isdigit() else f for f in path.split("."))
    # Subscription raises KeyError (no such key), IndexError (past the end) or TypeError
    # (null, a number, a key into an array): all of them mean "null". Unrolled for the
    # usual lengths: a loop costs twice as much.
    if len(keys) == 1:
        (k0,) = keys

        def var1(data: Any, budget: list[int]) -> Any:
            try:
                return data[k0]
            except _MISSING:
                return None

        return var1
    if len(keys) == 2:
        k0, k1 = keys

        def var2(data: Any, budget: list[int]) -> Any:
            try:
                return data[k0][k1]
            except _MISSING:
                return None

        return var2
    if len(keys) == 3:
        k0, k1, k2 = keys

        def var3(data: Any, budget: list[int]) -> Any:
            try:
                return data[k0][k1][k2]
            except _MISSING:
                return None

        return var3
    if len(keys) == 4:
        k0, k1, k2, k3 = keys

        def var4(data: Any, budget: list[int]) -> Any:
            try:
                return data[k0][k1][k2][k3]
            except _MISSING:
                return None

        return var4

    def var_n(data: Any, budget: list[int]) -> Any:
        try:
            for key in keys:
                data = data[key]
        except _MISSING:
            return None
        return data

    return var_n
