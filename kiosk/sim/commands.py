"""``kiosk`` subcommands of the sim area: ``simulate`` and ``selftest``."""

from __future__ import annotations

import argparse
from pathlib import Path

from kiosk.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/kiosk/kiosk.toml")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``kiosk`` parser."""
    sim = commands.add_parser(
        "simulate",
        help="run a scenario file through the real gate on a virtual clock (docs/simulate.md)",
    )
    sim.add_argument("scenario", type=Path, nargs="?", help="scenario TOML file")
    sim.add_argument("--log", type=Path, help="write the JSON-lines event log here")
    sim.add_argument("--state", type=Path, help="data_dir to use (default: a fresh temp folder)")
    sim.add_argument("--screens", type=Path, metavar="DIR", help="save a PNG of every screen")
    sim.add_argument(
        "--make-samples",
        type=Path,
        metavar="DIR",
        help="write sample trust material, QR images and a config into DIR, then exit",
    )
    sim.set_defaults(handler=_simulate)

    test = commands.add_parser(
        "selftest", help="technician check: relay, LEDs, buzzer, sensors, camera, screen"
    )
    test.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file")
    test.add_argument(
        "--sim",
        action="store_true",
        help="simulated hardware (mock GPIO, file frames, dummy screen)",
    )
    test.add_argument("--json", action="store_true", help="one JSON document for machines")
    test.set_defaults(handler=_selftest)


def _simulate(args: argparse.Namespace) -> int:
    if args.make_samples is not None:
        from kiosk.sim.samples import make_samples

        for path in make_samples(args.make_samples):
            print(path)
        return 0
    if args.scenario is None:
        raise ConfigError("kiosk simulate: give a SCENARIO.toml (or --make-samples DIR)")
    from kiosk.sim.runner import run_scenario

    result = run_scenario(args.scenario, args.log, args.state, args.screens)
    decisions = [e for e in result.events if e["event"] == "decision"]
    allowed = sum(e["result"] == "allow" for e in decisions)
    denied = sum(e["result"] == "deny" for e in decisions)  # "pending" waits for staff
    print(
        f"{args.scenario}: {len(result.events)} events, {allowed} allowed, "
        f"{denied} denied" + (f"; log {args.log}" if args.log else "")
    )
    return 0


def _selftest(args: argparse.Namespace) -> int:
    from kiosk.sim.selftest import run_selftest

    config = None if args.sim else args.config
    return run_selftest(config, sim=args.sim, json_out=args.json)
