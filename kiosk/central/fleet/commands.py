"""``kiosk fleet serve`` (flags declared in :mod:`kiosk.cli`): the foreground run."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from kiosk.central.fleet.config import flag_overrides, load_fleet_config


def serve(args: argparse.Namespace) -> int:
    """Run the fleet service until SIGTERM or Ctrl-C."""
    from kiosk.central.fleet.service import build_service

    overrides = flag_overrides(
        broker=args.broker, listen=args.listen, database=args.database, token_file=args.token_file
    )
    config = load_fleet_config(args.config, overrides)
    if args.check_config:
        print(
            f"{args.config or '<defaults>'}: ok (broker {config.mqtt.host}:{config.mqtt.port}, "
            f"page {config.http.host}:{config.http.port})"
        )
        return 0
    logging.getLogger().setLevel(config.logging.level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with build_service(config) as service:
        print(f"fleet page: {service.url}", flush=True)
        if service.token is not None:
            print(f"access token (no --token-file given): {service.token}", flush=True)
        stop.wait()
    return 0
