"""``kiosk`` subcommands of the sim area."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``kiosk`` parser."""
