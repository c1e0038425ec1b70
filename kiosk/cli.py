"""The ``kiosk`` command line: run, demo, check-config, conformance."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk import __version__
from kiosk.certlogic import commands as certlogic_commands
from kiosk.config import KioskConfig, load_config
from kiosk.decode import commands as decode_commands
from kiosk.errors import ConfigError, KioskError
from kiosk.nik import commands as nik_commands
from kiosk.provision import commands as provision_commands
from kiosk.sim import commands as sim_commands
from kiosk.verify import commands as verify_commands

if TYPE_CHECKING:  # the gate's parts load only when a command needs them
    from kiosk.scanloop import ScanLoop, Turn

DEFAULT_CONFIG = Path("/etc/kiosk/kiosk.toml")
# Each feature area owns its subcommands in <area>/commands.py.
FEATURE_COMMANDS = (
    verify_commands.register,
    sim_commands.register,
    nik_commands.register,
    certlogic_commands.register,
    decode_commands.register,
    provision_commands.register,
)
log = logging.getLogger("kiosk")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kiosk`` console script. Returns the process exit status."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_central_stub_args(argv))
    # The demo prints its own one-line-per-decision story; library logs only with -v.
    quiet = logging.WARNING if args.handler is _demo else logging.INFO
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else quiet,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        status: int = args.handler(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KioskError as exc:
        log.error("%s", exc)
        return 1
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiosk", description="Offline-first entry-gate firmware (see README.md)."
    )
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the gate (the device service)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file")
    run.set_defaults(handler=_run)

    demo = commands.add_parser(
        "demo", help="the gate in simulation: sample certificates through the real pipeline"
    )
    demo.add_argument("--once", action="store_true", help="play the samples once and exit")
    demo.add_argument(
        "--workdir", type=Path, default=Path(".kiosk-demo"), help="demo keys, QR images, counts"
    )
    demo.add_argument(
        "--mqtt",
        default="127.0.0.1:1883",
        metavar="HOST:PORT",
        help="broker to publish to when it answers (default 127.0.0.1:1883)",
    )
    demo.add_argument("--no-mqtt", action="store_true", help="do not publish to a broker")
    demo.add_argument(
        "--no-fleet", action="store_true", help="do not start the fleet page beside the demo"
    )
    demo.add_argument("--headless", action="store_true", help="no window, terminal output only")
    demo.add_argument("--fast", action="store_true", help="do not pace frames at the camera rate")
    demo.set_defaults(handler=_demo)

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", type=Path, nargs="?", default=DEFAULT_CONFIG)
    check.set_defaults(handler=_check_config)

    for register in FEATURE_COMMANDS:
        register(commands)
    _register_fleet(commands)
    _register_central(commands)
    return parser


def _register_central(commands: argparse._SubParsersAction) -> None:
    # Only a stub here: the central side's own parser is built when its command runs,
    # so a gate's process never imports kiosk.central.
    central = commands.add_parser(
        "central",
        help="central side: enrolment CA, operators, commands (not on gates)",
        add_help=False,
    )
    central.add_argument("arguments", nargs=argparse.REMAINDER)
    central.set_defaults(handler=_central)


def _central_stub_args(argv: list[str]) -> list[str]:
    """``kiosk central ...`` with its arguments kept away from the stub's own parsing.

    argparse would read ``kiosk central --help`` as the stub's option; a ``--``
    makes everything after ``central`` the central parser's business.
    """
    for index, word in enumerate(argv):
        if word == "central":
            return [*argv[: index + 1], "--", *argv[index + 1 :]]
        if not word.startswith("-"):
            break
    return argv


def _central(args: argparse.Namespace) -> int:
    from kiosk.central.commands import main as central_main

    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    return central_main(arguments)


def _register_fleet(commands: argparse._SubParsersAction) -> None:
    # The central side is imported only when its command runs: device code never loads it.
    fleet = commands.add_parser("fleet", help="central side: the operators' fleet view")
    sub = fleet.add_subparsers(required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="consume the gates' MQTT topics; serve page, API, metrics")
    serve.add_argument("--config", type=Path, default=None,
                       help="fleet config file (TOML); default: embedded defaults")
    serve.add_argument("--broker", metavar="mqtt://HOST:PORT",
                       help="broker URL, mqtt:// or mqtts:// (default mqtt://127.0.0.1:1883)")
    serve.add_argument("--listen", metavar="HOST:PORT", help="page address (127.0.0.1:8080)")
    serve.add_argument("--database", metavar="URL",
                       help="sqlite:///PATH (default sqlite:///fleet.sqlite) or postgresql://...")
    serve.add_argument("--token-file", metavar="FILE",
                       help="access tokens, one per line (default: one made at start)")
    serve.add_argument("--check-config", action="store_true",
                       help="validate the configuration and exit")
    serve.set_defaults(handler=_fleet_serve)


def _fleet_serve(args: argparse.Namespace) -> int:
    from kiosk.central.fleet.commands import serve

    return serve(args)


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"{args.file}: ok (site {config.device.site}, gate {config.device.gate})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from kiosk.app import build_app

    config = load_config(args.config)
    logging.getLogger().setLevel(config.logging.level)
    stop = threading.Event()
    # systemd stops the service with SIGTERM and a person with Ctrl-C: both end the
    # loop, so the relay goes to its safe state and the outbox drains.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from kiosk.service import Heartbeat, Notifier

    # systemd (Type=notify): READY after the first loop turn, WATCHDOG while it makes progress.
    with Notifier.from_env() as notifier:
        heartbeat = Heartbeat(notifier)
        with build_app(config, heartbeat=heartbeat) as app:
            _watch_health(config, app.loop)
            try:
                app.loop.run(stop)
            finally:
                heartbeat.stopping()  # before the wind-down: relay safe, outbox drains
            # A ``restart`` command ends the loop with a status; systemd starts it again.
            return app.loop.exit_status or 0


def _watch_health(config: KioskConfig, loop: ScanLoop) -> None:
    """With software updates on, a release on probation commits itself once healthy."""
    if not config.remote.updates:
        return
    from kiosk.remote.update import HealthWatch, Updater

    watch = HealthWatch(Updater(config.remote.install_root, []))
    fed = loop.on_turn

    def on_turn(turn: Turn) -> None:
        if fed is not None:
            fed(turn)
        watch.turn(turn.progress)

    loop.on_turn = on_turn


def _demo(args: argparse.Namespace) -> int:
    from kiosk.demo import run_demo

    host, _, port = args.mqtt.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--mqtt {args.mqtt!r}: expected HOST:PORT")
    broker = None if args.no_mqtt else (host, int(port))
    if broker is None or args.once or args.no_fleet:
        return run_demo(
            args.workdir, once=args.once, broker=broker, headless=args.headless, fast=args.fast
        )
    # The central side, only for this command: the demo gate's fleet page, live.
    from kiosk.central.fleet.demo import demo_fleet

    with demo_fleet(args.workdir, broker) as fleet:
        if fleet is None:
            print("fleet page: not started (no MQTT broker and no mosquitto to start)")
        else:
            print(f"fleet page: {fleet.url}  (token: {fleet.token}, kept in {fleet.token_file})")
            broker = fleet.broker
        return run_demo(
            args.workdir, once=False, broker=broker, headless=args.headless, fast=args.fast
        )


if __name__ == "__main__":
    raise SystemExit(main())
