"""``kiosk conformance DIR...``: run the EU DCC conformance test cases.

Walks every ``*.json`` whose folder is named ``raw`` (any case) under the
given folders -- the dgc-testdata layout ``<COUNTRY>/2DCode/raw/<n>.json``.
For each case, the case's ``TESTCTX.CERTIFICATE`` is the only trusted signer
and ``TESTCTX.VALIDATIONCLOCK`` is "now".  Every EXPECTED* flag present is
checked (see :mod:`kiosk.verify.casecheck`); a case passes when all of them
match.  Prints one line per failing case naming the file and the flag(s), and
ends with exactly ``N passed, N failed``.  Exit status: 0 all passed, 1 any
case failed, 2 a folder could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from kiosk.errors import DocumentError
from kiosk.verify.casecheck import CHECKS, FLAG_ALIASES, IGNORED_FLAGS, run_check
from kiosk.verify.valuesets import ValueSets, load_folder

__all__ = ["CaseResult", "FlagResult", "evaluate_case", "find_cases", "main", "run"]


@dataclass(frozen=True, slots=True)
class FlagResult:
    """One checked flag: what the case expects and what our code did (None: not evaluable)."""

    flag: str
    expected: bool
    actual: bool | None
    detail: str = ""

    @property
    def matches(self) -> bool:
        """True when the flag agrees, or could not be evaluated for lack of input fields."""
        return self.actual is None or self.actual == self.expected


@dataclass(frozen=True, slots=True)
class CaseResult:
    """All flag results of one case file."""

    path: Path
    flags: tuple[FlagResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every present flag matches."""
        return all(f.matches for f in self.flags)


def find_cases(dirs: Iterable[Path]) -> Iterator[Path]:
    """Yield case files (``*.json`` inside a folder named ``raw``, any case), sorted per folder.

    Raises NotADirectoryError for a path that is not a folder.
    """
    for folder in dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise NotADirectoryError(str(folder))
        candidates = [folder.rglob("*.json")] if folder.name.lower() != "raw" else [
            folder.glob("*.json")]
        for found in candidates:
            yield from sorted(p for p in found if p.parent.name.lower() == "raw")


def evaluate_case(path: Path, valuesets: ValueSets | None = None) -> CaseResult:
    """Load one case file and check each of its EXPECTED* flags. Never raises.

    ``valuesets``: when given, the schema check also requires value-set membership.
    """
    try:
        case: Any = json.loads(path.read_text(encoding="utf-8"))
        expected = case["EXPECTEDRESULTS"]
        if not isinstance(expected, dict):
            raise TypeError("EXPECTEDRESULTS is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return CaseResult(path, (FlagResult("<file>", True, False, type(exc).__name__),))
    results: list[FlagResult] = []
    notes: list[str] = []
    for raw_flag, want in expected.items():
        flag = FLAG_ALIASES.get(raw_flag, raw_flag)
        if flag in IGNORED_FLAGS:
            continue
        if flag not in CHECKS or not isinstance(want, bool):
            notes.append(f"unknown or malformed flag {raw_flag} ignored")
            continue
        actual, detail = run_check(flag, case, valuesets)
        results.append(FlagResult(flag, want, actual, detail))
    return CaseResult(path, tuple(results), tuple(notes))


def _describe(result: CaseResult) -> str:
    bad = [
        f"{f.flag} expected {str(f.expected).lower()}, got {str(f.actual).lower()}"
        + (f" ({f.detail})" if f.detail else "")
        for f in result.flags
        if not f.matches
    ]
    return f"FAIL {result.path}: " + "; ".join(bad)


def run(dirs: Iterable[Path], out: TextIO | None = None,
        valuesets: ValueSets | None = None) -> int:
    """Run every case under ``dirs``; print failures and the summary line to ``out``.

    Returns the exit status: 0 when all cases pass, 1 when any fails, 2 when a
    folder is missing.
    """
    stream = out if out is not None else sys.stdout
    passed = failed = 0
    try:
        paths = list(find_cases(dirs))
    except NotADirectoryError as exc:
        print(f"error: not a folder: {exc}", file=stream)
        return 2
    for path in paths:
        result = evaluate_case(path, valuesets)
        for note in result.notes:
            print(f"note {path}: {note}", file=stream)
        if result.passed:
            passed += 1
        else:
            failed += 1
            print(_describe(result), file=stream)
    print(f"{passed} passed, {failed} failed", file=stream)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry: ``kiosk conformance DIR [DIR...]``; returns the exit status of :func:`run`."""
    parser = argparse.ArgumentParser(
        prog="kiosk conformance", description="Run EU DCC conformance test cases."
    )
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="folder(s) holding <country>/2DCode/raw/*.json")
    parser.add_argument("--valuesets", type=Path, metavar="DIR",
                        help="folder of EU DCC value-set files: the schema check then also "
                        "requires value-set membership")
    args = parser.parse_args(argv)
    valuesets = None
    if args.valuesets is not None:
        try:
            valuesets = load_folder(args.valuesets)
        except DocumentError as exc:
            print(f"error: {exc}", file=sys.stdout)
            return 2
    return run(args.dirs, valuesets=valuesets)


if __name__ == "__main__":
    sys.exit(main())
