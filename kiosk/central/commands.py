"""``kiosk central ...``: the enrolment CA's command group (run in the centre, not on gates).

- ``kiosk central ca init --ca-dir DIR``: a new CA (``ca.key`` stays there, ``ca.crt`` goes out)
- ``kiosk central token SITE GATE``: a one-time enrolment token for that gate
- ``kiosk central enrol CSR --token T`` (alias ``sign``): the gate's certificate
- ``kiosk central broker-cert HOST...`` / ``service-cert fleet|homeassistant|operator``
- ``kiosk central operator keygen|certify`` and ``kiosk central command ACTION``: signed
  remote commands (:mod:`kiosk.central.remote`)

Heavy imports happen inside the handlers: the gate's own commands never load this side.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.errors import EnrolmentError

if TYPE_CHECKING:
    from kiosk.central.enrol import EnrolmentCA

DEFAULT_CA_DIR = Path(os.environ.get("KIOSK_CA_DIR", "/var/lib/kiosk-central/enrol"))


def main(argv: list[str]) -> int:
    """Parse ``kiosk central ARGV`` and run it (``kiosk.cli`` hands over to here)."""
    parser = argparse.ArgumentParser(prog="kiosk")
    register(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(["central", *argv])
    status: int = args.handler(args)
    return status


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``kiosk central`` and its subcommands to the ``kiosk`` parser."""
    central = commands.add_parser("central", help="central side: CA, operators, commands")
    sub = central.add_subparsers(required=True, metavar="COMMAND")

    ca = sub.add_parser("ca", help="the enrolment CA")
    ca_sub = ca.add_subparsers(required=True, metavar="COMMAND")
    init = ca_sub.add_parser("init", help="create a new CA in --ca-dir")
    _ca_dir(init)
    init.add_argument("--name", default="kiosk enrolment CA", help="the CA's common name")
    init.add_argument("--days", type=int, default=3650, help="CA validity (default 3650 days)")
    init.set_defaults(handler=_ca_init)

    token = sub.add_parser("token", help="issue a one-time enrolment token for SITE GATE")
    token.add_argument("site")
    token.add_argument("gate")
    token.add_argument("--valid-hours", type=float, default=72.0, help="default 72 h")
    _ca_dir(token)
    token.set_defaults(handler=_token)

    enrol = sub.add_parser(
        "enrol", aliases=["sign"], help="sign a gate's CSR with its one-time token"
    )
    enrol.add_argument("csr", type=Path, nargs="?", help="the CSR file carried from the gate")
    enrol.add_argument("--token", help="the gate's one-time enrolment token")
    enrol.add_argument(
        "--serve",
        metavar="HOST:PORT",
        help="instead: serve online enrolment over HTTPS (kiosk provision --enrol-url)",
    )
    enrol.add_argument("--tls-cert", type=Path, help="--serve: this server's certificate")
    enrol.add_argument("--tls-key", type=Path, help="--serve: its key")
    enrol.add_argument("--out", type=Path, help="certificate file (default: CSR name .crt)")
    enrol.add_argument("--days", type=int, default=90, help="validity (default 90 days)")
    _ca_dir(enrol)
    enrol.set_defaults(handler=_enrol)

    broker = sub.add_parser("broker-cert", help="a TLS certificate for a site or fleet broker")
    broker.add_argument("hosts", nargs="+", help="host names or IP addresses of the broker")
    broker.add_argument("--out-dir", type=Path, required=True)
    broker.add_argument("--days", type=int, default=365)
    _ca_dir(broker)
    broker.set_defaults(handler=_broker_cert)

    service = sub.add_parser("service-cert", help="a client certificate for a central service")
    service.add_argument("name", choices=("fleet", "homeassistant", "operator"))
    service.add_argument("--out-dir", type=Path, required=True)
    service.add_argument("--days", type=int, default=365)
    _ca_dir(service)
    service.set_defaults(handler=_service_cert)

    # Operator certificates and signed commands (docs/remote.md).
    from kiosk.central import publish, remote

    remote.register(sub)
    publish.register(sub)


def _ca_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-dir",
        type=Path,
        default=DEFAULT_CA_DIR,
        help=f"the CA folder (default $KIOSK_CA_DIR or {DEFAULT_CA_DIR})",
    )


def _ca_init(args: argparse.Namespace) -> int:
    from kiosk.central.enrol import EnrolmentCA

    ca = EnrolmentCA.create(args.ca_dir, args.name, days=args.days)
    print(f"CA created in {args.ca_dir}: give {args.ca_dir / 'ca.crt'} to brokers and gates;")
    print(
        f"{args.ca_dir / 'ca.key'} never leaves this machine. Valid until "
        f"{ca.cert.not_valid_after_utc:%Y-%m-%d}."
    )
    return 0


def _token(args: argparse.Namespace) -> int:
    from kiosk.central.enrol import EnrolmentCA

    ca = EnrolmentCA.open(args.ca_dir)
    token = ca.tokens.issue(args.site, args.gate, args.valid_hours)
    print(token)
    print(
        f"one-time token for {args.site}/{args.gate}, valid {args.valid_hours:g} h; "
        "give it to the technician",
        file=sys.stderr,
    )
    return 0


def _enrol(args: argparse.Namespace) -> int:
    from kiosk.central.enrol import EnrolmentCA
    from kiosk.central.enrol.ca import MAX_CSR_BYTES
    from kiosk.verify.atomic import atomic_write

    ca = EnrolmentCA.open(args.ca_dir)
    if args.serve is not None:
        return _serve(args, ca)
    if args.csr is None or args.token is None:
        raise EnrolmentError("kiosk central enrol: give CSR and --token (or --serve HOST:PORT)")
    with open(args.csr, "rb") as handle:
        csr = handle.read(MAX_CSR_BYTES + 1)
    issued = ca.enrol(csr, args.token, days=args.days)
    out = args.out or args.csr.with_suffix(".crt")
    atomic_write(out, issued.pem)
    ca_out = out.with_name("broker-ca.crt")
    atomic_write(ca_out, ca.cert_pem)
    print(
        f"{out}: certificate for {issued.subject}, serial {issued.serial}, valid "
        f"{issued.not_before:%Y-%m-%d} to {issued.not_after:%Y-%m-%d}; with {ca_out}"
    )
    return 0


def _serve(args: argparse.Namespace, ca: EnrolmentCA) -> int:
    from kiosk.central.enrol.serve import PATH, EnrolmentServer

    host, _, port = args.serve.rpartition(":")
    if not host or not port.isdigit() or args.tls_cert is None or args.tls_key is None:
        raise EnrolmentError("--serve HOST:PORT needs --tls-cert and --tls-key (broker-cert)")
    server = EnrolmentServer((host, int(port)), ca, args.tls_cert, args.tls_key)
    print(f"enrolment on https://{args.serve}{PATH} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _broker_cert(args: argparse.Namespace) -> int:
    from kiosk.central.enrol import EnrolmentCA
    from kiosk.verify.atomic import atomic_write

    ca = EnrolmentCA.open(args.ca_dir)
    key_pem, issued = ca.issue_server(args.hosts, days=args.days)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out_dir / "broker.key", key_pem, mode=0o600)
    atomic_write(args.out_dir / "broker.crt", issued.pem)
    atomic_write(args.out_dir / "ca.crt", ca.cert_pem)
    print(
        f"{args.out_dir}: broker.key, broker.crt ({', '.join(args.hosts)}, until "
        f"{issued.not_after:%Y-%m-%d}), ca.crt"
    )
    return 0


def _service_cert(args: argparse.Namespace) -> int:
    from kiosk.central.enrol import EnrolmentCA
    from kiosk.verify.atomic import atomic_write

    ca = EnrolmentCA.open(args.ca_dir)
    key_pem, issued = ca.issue_service(args.name, days=args.days)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out_dir / f"{args.name}.key", key_pem, mode=0o600)
    atomic_write(args.out_dir / f"{args.name}.crt", issued.pem)
    print(f"{args.out_dir}: {args.name}.key, {args.name}.crt (until {issued.not_after:%Y-%m-%d})")
    return 0
