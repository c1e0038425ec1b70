"""``kiosk provision``: state the wiring, make the device key and CSR, install the certificate.

Two steps, because the certificate comes from the centre (offline enrolment)::

    sudo kiosk provision                 # asks site, gate, broker, what is wired; writes
                                         # /etc/kiosk/kiosk.toml, device.key (0600), device.csr
    # centre: kiosk central enrol device.csr --token TOKEN  -> device.crt, broker-ca.crt
    sudo kiosk provision --install-cert device.crt --ca broker-ca.crt [--authority-key KEY.pem]

Every question is also a flag (``--fire-alarm none``) or a key of ``--answers FILE``;
without a terminal, a missing answer is an error naming its flag.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from kiosk.errors import ProvisionError

DEFAULT_CONFIG = Path("/etc/kiosk/kiosk.toml")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``kiosk provision`` to the ``kiosk`` parser."""
    from kiosk.provision.answers import QUESTIONS

    prov = commands.add_parser(
        "provision", help="give this gate its identity, wiring and broker (docs/provisioning.md)"
    )
    prov.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the gate's config")
    prov.add_argument(
        "--identity-dir", type=Path, help="key and certificates (default: the config's folder)"
    )
    prov.add_argument("--answers", type=Path, help="provisioning file (TOML, the keys below)")
    for question in QUESTIONS:
        prov.add_argument(question.flag, dest=question.key, metavar="ANSWER", help=question.prompt)
    prov.add_argument("--rotate-key", action="store_true", help="new device key (re-provisioning)")
    prov.add_argument("--install-cert", type=Path, metavar="CRT", help="step 2: the certificate")
    prov.add_argument(
        "--ca", type=Path, help="step 2: the broker CA (default: beside --install-cert)"
    )
    prov.add_argument("--authority-key", type=Path, help="step 2: the trust authority's public key")
    prov.add_argument("--no-selftest", action="store_true", help="step 2: skip the self-test")
    prov.add_argument(
        "--enrol-url", help="online: https://CENTRE[:PORT] (kiosk central enrol --serve)"
    )
    prov.add_argument("--token", help="online: this gate's one-time enrolment token")
    prov.add_argument("--enrol-ca", type=Path, help="online: the CA the centre's server uses")
    prov.set_defaults(handler=_provision)


def _provision(args: argparse.Namespace) -> int:
    from kiosk.config.ids import device_identity
    from kiosk.provision.answers import QUESTIONS, read_answers_file, resolve
    from kiosk.provision.configfile import write_config
    from kiosk.provision.identity import DeviceIdentity

    folder = args.identity_dir or args.config.parent
    identity_files = DeviceIdentity(folder)
    if args.install_cert is not None:
        ca = args.ca or args.install_cert.with_name("broker-ca.crt")
        return _install(args, identity_files, _read(args.install_cert), _read(ca))

    given = read_answers_file(args.answers) if args.answers is not None else {}
    for question in QUESTIONS:
        flag = getattr(args, question.key)
        if flag is not None:
            given[question.key] = flag
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    settings = resolve(given, ask=(lambda p: input(f"{p}: ")) if interactive else None)
    identity = device_identity(str(settings["device.site"]), str(settings["device.gate"]))
    if settings.get("mqtt.enabled") is False:
        settings["mqtt.tls_ca"] = settings["mqtt.tls_cert"] = settings["mqtt.tls_key"] = None
    config = write_config(args.config, settings)
    csr = identity_files.prepare(identity, rotate=args.rotate_key)
    wired = [
        f"fire alarm {_pin_text(config.gate.fire_alarm_pin)}",
        f"passage BCM {config.gate.passage_pin}",
        f"exit button {_pin_text(config.gate.exit_button_pin)}",
        f"arm switch {_pin_text(config.gate.arm_feedback_pin)}",
        f"KTP reader {config.nik.input}",
        f"relay BCM {config.gate.relay_pin} "
        + ("active-high" if config.gate.relay_active_high else "active-low"),
    ]
    print(f"{args.config}: {identity}; " + ", ".join(wired))
    if args.enrol_url is not None:
        from kiosk.provision.online import enrol_online

        if not args.token:
            raise ProvisionError("--enrol-url needs --token (the one-time enrolment token)")
        cert_pem, ca_pem = enrol_online(
            args.enrol_url, args.token, csr.read_bytes(), ca_file=args.enrol_ca
        )
        print(f"enrolled online at {args.enrol_url}")
        return _install(args, identity_files, cert_pem, ca_pem)
    print(f"Carry {csr} to the centre (it holds no secret; the key stays here):")
    print(f"  kiosk central enrol {csr.name} --token TOKEN")
    print("Bring back the certificate and the broker CA, then:")
    print("  sudo kiosk provision --install-cert device.crt --ca broker-ca.crt")
    return 0


def _install(args: argparse.Namespace, identity_files: Any, cert_pem: bytes, ca_pem: bytes) -> int:
    """Step 2: check and install the certificate and CA, point the config at them, self-test."""
    from kiosk.config import load_config
    from kiosk.provision.configfile import write_config

    config = load_config(args.config)
    identity = config.device.device_id
    installed = identity_files.install(cert_pem, ca_pem, identity)
    settings: dict[str, str | int | float | bool | None] = {
        "mqtt.tls_ca": str(identity_files.ca_path),
        "mqtt.tls_cert": str(identity_files.cert_path),
        "mqtt.tls_key": str(identity_files.key_path),
        "mqtt.username": "",
    }
    if args.authority_key is not None:
        keys = config.verify.authority_keys
        keys.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.authority_key, keys / args.authority_key.name)
        settings["verify.trust_source"] = "bundle"
    write_config(args.config, settings)
    print(
        f"installed the certificate for {installed.identity} (serial {installed.serial}, "
        f"valid until {installed.not_after:%Y-%m-%d}"
        + (", new key in use" if installed.rotated else "")
        + f") and the broker CA in {identity_files.folder}"
    )
    if args.no_selftest:
        return 0
    from kiosk.sim.selftest import run_selftest

    print("self-test:")
    return run_selftest(args.config)


def _pin_text(pin: int | None) -> str:
    return "not wired" if pin is None else f"BCM {pin}"


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(64 * 1024 + 1)
    except OSError as exc:
        raise ProvisionError(f"{path}: {exc.strerror}") from None
