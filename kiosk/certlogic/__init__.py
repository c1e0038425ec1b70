"""CertLogic: the EU DCC's business-rule language, compiled once and evaluated per scan.

:mod:`kiosk.certlogic.evaluator` compiles one expression; :mod:`kiosk.certlogic.rules`
turns EU DCC Gateway rules into a :class:`~kiosk.certlogic.rules.RuleSet`;
``kiosk rules check`` (:mod:`kiosk.certlogic.commands`) runs a rule set on
payloads before the central side signs it into a bundle. See docs/certlogic.md.
"""

from kiosk.certlogic.dates import CertLogicError, Instant
from kiosk.certlogic.evaluator import Program, compile_expression, evaluate, validate

__all__ = ["CertLogicError", "Instant", "Program", "compile_expression", "evaluate", "validate"]
