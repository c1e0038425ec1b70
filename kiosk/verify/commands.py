"""``kiosk`` subcommands of the verification area: conformance."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``kiosk`` parser."""
    conformance = commands.add_parser(
        "conformance", help="run EU DCC test-case JSON files through the verifier"
    )
    conformance.add_argument("dirs", type=Path, nargs="+", metavar="DIR")
    conformance.set_defaults(handler=_conformance)


def _conformance(args: argparse.Namespace) -> int:
    from kiosk.conformance import run

    return run(args.dirs)
