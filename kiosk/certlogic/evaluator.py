"""A strict CertLogic evaluator that compiles an expression once into nested closures.

CertLogic (specification 1.3.3, ``../shared/testdata/certlogic/SPECIFICATION.md``)
is the EU DCC's restricted subset of JsonLogic. :func:`compile_expression`
validates an expression completely (operators, operand counts, literal
operands, ``var`` paths) and returns a :class:`Program`; running it on a data
context only evaluates, so a rule set is checked and compiled once per trust
bundle, not once per scan.

Bounds, so that a hostile expression or data context costs bounded time and
never a ``RecursionError``: nesting depth (:data:`MAX_DEPTH`), node count
(:data:`MAX_NODES`), and a work budget for ``reduce`` (:data:`MAX_STEPS` node
evaluations inside lambdas per run). Every failure is a :class:`CertLogicError`.

Deliberate strictness beyond the specification's letter (all documented in
docs/certlogic.md): date-times are neither truthy nor falsy; ``===`` and ``in``
compare without coercion also between booleans and integers (Python's
``True == 1`` does not leak through); a path fragment indexes an array only
when it is all digits (``var`` on a string by index gives that character, as
in JavaScript's reference implementation).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kiosk.certlogic.access import Node, compile_var
from kiosk.certlogic.dates import (
    TIME_UNITS,
    CertLogicError,
    Instant,
    date_of_birth,
    parse_date_time,
    plus_time,
)

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_STEPS", "CertLogicError", "Program",
           "compile_expression", "evaluate", "validate"]

MAX_DEPTH = 64  # nesting of expressions; the EU's published rules stay below 20
MAX_NODES = 10_000  # expression nodes per compiled expression
MAX_STEPS = 100_000  # node evaluations inside reduce lambdas per run
MAX_COMPARE_DEPTH = 64  # nesting of values compared by === and in
_UVCI_PREFIX = "URN:UVCI:"
_UVCI_SEPARATORS = re.compile(r"[/#:]")
_COMPARISONS = {"<": "<", ">": ">", "<=": "<=", ">=": ">=",
                "before": "<", "after": ">", "not-after": "<=", "not-before": ">="}



class Program:
    """A compiled CertLogic expression; call :meth:`run` with a data context."""

    __slots__ = ("node", "nodes")

    def __init__(self, node: Node, nodes: int) -> None:
        """``node``: the compiled root, called as ``node(data, [budget])``; ``nodes``: its size."""
        self.node = node
        self.nodes = nodes

    def run(self, data: Any, max_steps: int = MAX_STEPS) -> Any:
        """Evaluate on ``data`` (JSON values); raises :class:`CertLogicError` on any failure."""
        return self.node(data, [max_steps])


def compile_expression(expr: Any, *, max_depth: int = MAX_DEPTH,
                       max_nodes: int = MAX_NODES) -> Program:
    """Validate ``expr`` (a parsed JSON value) and compile it.

    Raises :class:`CertLogicError` naming the first problem found, with the
    messages of the official validation suite where it has one.
    """
    compiler = _Compiler(max_depth, max_nodes)
    return Program(compiler.compile(expr, 0), compiler.nodes)


def validate(expr: Any) -> list[str]:
    """The validation issues of ``expr``: empty when it is valid CertLogic (first issue only)."""
    try:
        compile_expression(expr)
    except CertLogicError as exc:
        return [str(exc)]
    return []


def evaluate(expr: Any, data: Any) -> Any:
    """Compile and run ``expr`` on ``data`` once (for tests and one-off checks)."""
    return compile_expression(expr).run(data)


def truthy(value: Any) -> bool:
    """True for truthy, False for falsy; :class:`CertLogicError` for values that are neither."""
    if value is True:
        return True
    if value is False or value is None:
        return False
    kind = type(value)
    if kind is str or kind is list or kind is dict:
        return len(value) > 0
    if kind is int or (kind is float and value.is_integer()):
        return bool(value != 0)
    raise CertLogicError("value is neither truthy nor falsy")


def _is_int(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and value.is_integer())


def strict_equal(left: Any, right: Any, depth: int = 0) -> bool:
    """Equality without type coercion (``===``); numbers compare by value, bools are not numbers."""
    if depth > MAX_COMPARE_DEPTH:
        raise CertLogicError("values nested too deeply to compare")
    lkind, rkind = type(left), type(right)
    if lkind is bool or rkind is bool or left is None or right is None:
        return left is right
    if lkind in (int, float) and rkind in (int, float):
        return bool(left == right)
    if lkind is not rkind:
        return False
    if lkind is list:
        return len(left) == len(right) and all(
            strict_equal(a, b, depth + 1) for a, b in zip(left, right, strict=True))
    if lkind is dict:
        return left.keys() == right.keys() and all(
            strict_equal(value, right[key], depth + 1) for key, value in left.items())
    return bool(left == right)  # str, Instant


def contains(item: Any, items: list[Any]) -> bool:
    """``in``: strict membership."""
    if item is None or type(item) is str:
        return item in items  # None and str equal only their own kind: Python's `in` is strict
    return any(strict_equal(item, candidate) for candidate in items)


class _Compiler:
    def __init__(self, max_depth: int, max_nodes: int) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.nodes = 0

    def compile(self, expr: Any, depth: int) -> Node:
        if depth > self.max_depth:
            raise CertLogicError(f"expression nested deeper than {self.max_depth}")
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise CertLogicError(f"expression has more than {self.max_nodes} nodes")
        kind = type(expr)
        if kind is str or kind is bool or kind is int:
            return _constant(expr)
        if kind is float:
            if not expr.is_integer():
                raise CertLogicError(f"{expr!r:.40} is a non-integer number")
            return _constant(int(expr))
        if kind is list:
            items = [self.compile(item, depth + 1) for item in expr]
            return lambda data, budget: [item(data, budget) for item in items]
        if kind is not dict:
            raise CertLogicError("invalid CertLogic expression")
        if len(expr) != 1:
            raise CertLogicError(
                f"expression object must have exactly one key, but it has {len(expr)}")
        ((operator, values),) = expr.items()
        if operator == "var":
            return compile_var(values)
        if type(values) is not list:
            raise CertLogicError('operation not of the form { "<operator>": [ <values...> ] }')
        method = _OPERATIONS.get(operator)
        if method is None:
            raise CertLogicError(f"unrecognised operator: {_quote(operator)}")
        result: Node = method(self, operator, values, depth + 1)
        return result

    def _operands(self, values: list[Any], depth: int) -> list[Node]:
        return [self.compile(value, depth) for value in values]

    def _if(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 3, 3)
        guard, then, otherwise = self._operands(values, depth)

        def node(data: Any, budget: list[int]) -> Any:
            value = guard(data, budget)
            # The usual guards (a present entry, a boolean) decided without a call.
            if value is True or (type(value) is dict and value):
                return then(data, budget)
            if value is False or value is None:
                return otherwise(data, budget)
            return then(data, budget) if truthy(value) else otherwise(data, budget)

        return node

    def _not(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 1, 1)
        operand = self.compile(values[0], depth)
        return lambda data, budget: not truthy(operand(data, budget))

    def _and(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 2, None)
        *first, last = self._operands(values, depth)

        def node(data: Any, budget: list[int]) -> Any:
            for operand in first:
                value = operand(data, budget)
                if not truthy(value):
                    return value
            return last(data, budget)

        return node

    def _equal(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 2, 2)
        left, right = self._operands(values, depth)
        return lambda data, budget: strict_equal(left(data, budget), right(data, budget))

    def _in(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 2, 2)
        left, right = self._operands(values, depth)

        def node(data: Any, budget: list[int]) -> bool:
            item, items = left(data, budget), right(data, budget)
            if type(items) is not list:
                raise CertLogicError('right-hand side of an "in" operation must be an array')
            return contains(item, items)

        return node

    def _plus(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 2, 2)
        left, right = self._operands(values, depth)

        def node(data: Any, budget: list[int]) -> int:
            a, b = left(data, budget), right(data, budget)
            if not (_is_int(a) and _is_int(b)):
                raise CertLogicError('operands of a "+" operation must both be integers')
            return int(a) + int(b)

        return node

    def _compare(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 2, 3)
        operands = self._operands(values, depth)
        on_dates = operator not in ("<", ">", "<=", ">=")
        test = _comparator(_COMPARISONS[operator])

        def node(data: Any, budget: list[int]) -> bool:
            args = [operand(data, budget) for operand in operands]
            if on_dates:
                if not all(type(arg) is Instant for arg in args):
                    raise CertLogicError(f"all operands of {_quote(operator)} must be date-times")
                keys = [arg.ms for arg in args]
            else:
                if not all(_is_int(arg) for arg in args):
                    raise CertLogicError(f"all operands of {_quote(operator)} must be integers")
                keys = args
            if len(keys) == 2:
                return test(keys[0], keys[1])
            return test(keys[0], keys[1]) and test(keys[1], keys[2])

        return node

    def _plus_time(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 3, 3)
        operand = self.compile(values[0], depth)
        amount, unit = values[1], values[2]
        if not _is_int(amount):
            raise CertLogicError('"amount" argument (#2) of "plusTime" must be an integer')
        if type(unit) is not str or unit not in TIME_UNITS:
            raise CertLogicError('"unit" argument (#3) of "plusTime" must be a string equal to '
                                 f"one of {', '.join(TIME_UNITS)}")
        amount = int(amount)

        def node(data: Any, budget: list[int]) -> Instant:
            text = operand(data, budget)
            if type(text) is not str:
                raise CertLogicError('date argument of "plusTime" must be a string')
            start = parse_date_time(text)
            return plus_time(start, amount, unit) if amount else start

        return node

    def _date_of_birth(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 1, 1)
        operand = self.compile(values[0], depth)

        def node(data: Any, budget: list[int]) -> Instant:
            text = operand(data, budget)
            if type(text) is not str:
                raise CertLogicError('operand of "dccDateOfBirth" must be a string')
            return date_of_birth(text)

        return node

    def _reduce(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 3, 3)
        operand = self.compile(values[0], depth)
        before = self.nodes
        lambda_ = self.compile(values[1], depth)
        cost = self.nodes - before  # what one lambda call evaluates at most, nested reduces aside
        initial = self.compile(values[2], depth)

        def node(data: Any, budget: list[int]) -> Any:
            items = operand(data, budget)
            if items is None:
                return initial(data, budget)
            if type(items) is not list:
                raise CertLogicError('operand of "reduce" must be an array or null')
            budget[0] -= cost * len(items)
            if budget[0] < 0:
                raise CertLogicError("reduce exceeds the evaluation budget")
            accumulator = initial(data, budget)
            for current in items:
                accumulator = lambda_({"current": current, "accumulator": accumulator}, budget)
            return accumulator

        return node

    def _extract_from_uvci(self, operator: str, values: list[Any], depth: int) -> Node:
        _arity(operator, values, 2, 2)
        operand = self.compile(values[0], depth)
        if not _is_int(values[1]):
            raise CertLogicError('"index" argument (#2) of "extractFromUVCI" must be an integer')
        index = int(values[1])

        def node(data: Any, budget: list[int]) -> str | None:
            uvci = operand(data, budget)
            if uvci is None:
                return None
            if type(uvci) is not str:
                raise CertLogicError('"UVCI" argument (#1) of "extractFromUVCI" must be '
                                     "either a string or null")
            return extract_from_uvci(uvci, index)

        return node


def extract_from_uvci(uvci: str, index: int) -> str | None:
    """Fragment ``index`` of a UCI split on ``/``, ``#`` and ``:`` (``URN:UVCI:`` ignored)."""
    if index < 0:
        return None
    if uvci.startswith(_UVCI_PREFIX):
        uvci = uvci[len(_UVCI_PREFIX):]
    fragments = _UVCI_SEPARATORS.split(uvci, maxsplit=index + 1)
    return fragments[index] if index < len(fragments) else None


_OPERATIONS: dict[str, Callable[[_Compiler, str, list[Any], int], Node]] = {
    "if": _Compiler._if,
    "!": _Compiler._not,
    "and": _Compiler._and,
    "===": _Compiler._equal,
    "in": _Compiler._in,
    "+": _Compiler._plus,
    "plusTime": _Compiler._plus_time,
    "dccDateOfBirth": _Compiler._date_of_birth,
    "reduce": _Compiler._reduce,
    "extractFromUVCI": _Compiler._extract_from_uvci,
    **{operator: _Compiler._compare for operator in _COMPARISONS},
}


def _arity(operator: str, values: list[Any], least: int, most: int | None) -> None:
    if len(values) < least or (most is not None and len(values) > most):
        expected = (f"{least}" if least == most else
                    f"at least {least}" if most is None else f"{least} or {most}")
        raise CertLogicError(f"an operation with operator {_quote(operator)} must have "
                             f"{expected} operands, but it has {len(values)}")


def _quote(text: str) -> str:
    """A bounded, quoted echo of an operator name (never more than 40 characters)."""
    return '"' + (text if len(text) <= 40 else text[:37] + "...") + '"'


def _comparator(symbol: str) -> Callable[[Any, Any], bool]:
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: a < b, ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
    }
    return tests[symbol]


def _constant(value: Any) -> Node:
    return lambda data, budget: value
