"""CertLogic: the EU DCC's business-rule language, compiled once and evaluated per scan.

:mod:`kiosk.certlogic.evaluator` compiles one expression; :mod:`kiosk.certlogic.rules`
turns EU DCC Gateway rules into a :class:`~kiosk.certlogic.rules.RuleSet`;
``kiosk rules check`` (:mod:`kiosk.certlogic.commands`) runs a rule set on
payloads before the central side signs it into a bundle. See docs/certlogic.md.

The names below load on first use: the ``kiosk`` command line imports
:mod:`kiosk.certlogic.commands` at start-up for every command, and should not
pay for the evaluator unless ``kiosk rules`` runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.certlogic.dates import CertLogicError, Instant
    from kiosk.certlogic.evaluator import Program, compile_expression, evaluate, validate

__all__ = ["CertLogicError", "Instant", "Program", "compile_expression", "evaluate", "validate"]
_HOMES = {"CertLogicError": "dates", "Instant": "dates", "Program": "evaluator",
          "compile_expression": "evaluator", "evaluate": "evaluator", "validate": "evaluator"}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
