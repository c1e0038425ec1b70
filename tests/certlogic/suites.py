"""Where the official CertLogic suites and the EU value sets live (``../shared/testdata``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"


def shared_dir(name: str) -> Path:
    """``../shared/testdata/<name>``; skips locally, fails on CI when it is missing.

    CI always lays ``shared/`` beside the clone (as tests/conftest.py's
    shared_dcc_suite() relies on), so a missing folder there is a broken set-up.
    """
    path = SHARED_TESTDATA / name
    if not path.is_dir():
        message = f"shared test data not found at {path}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def evaluation_assertions() -> Iterator[tuple[str, Any, dict[str, Any], bool]]:
    """(id, expression, assertion, skipped-by-directive) for every evaluation-suite assertion."""
    folder = SHARED_TESTDATA / "certlogic" / "testSuite"
    for file in sorted(folder.glob("*.json")):
        suite = json.loads(file.read_text())
        for case in suite["cases"]:
            for number, assertion in enumerate(case["assertions"]):
                expr = assertion.get("certLogicExpression", case.get("certLogicExpression"))
                skipped = "skip" in (suite.get("directive"), case.get("directive"),
                                     assertion.get("directive"))
                yield f"{file.stem}:{case['name']}:{number}", expr, assertion, skipped


def validation_cases() -> Iterator[tuple[str, Any, list[str]]]:
    """(id, expression, expected issue messages) for every validation-suite case."""
    folder = SHARED_TESTDATA / "certlogic" / "validation-testSuite"
    for file in sorted(folder.glob("*.json")):
        for number, case in enumerate(json.loads(file.read_text())["cases"]):
            yield (f"{file.stem}:{number}", case["certLogicExpression"],
                   [issue["message"] for issue in case["issues"]])
