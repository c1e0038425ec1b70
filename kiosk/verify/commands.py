"""``kiosk`` subcommands of the verification area: conformance and trust.

``kiosk trust keygen | build | sign | inspect | install`` (docs/trust-bundle.md):
the first four run at the central authority, ``install`` on the gate.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from kiosk.errors import DocumentError

DEFAULT_CONFIG = Path("/etc/kiosk/kiosk.toml")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``kiosk`` parser."""
    conformance = commands.add_parser(
        "conformance", help="run EU DCC test-case JSON files through the verifier"
    )
    conformance.add_argument("dirs", type=Path, nargs="+", metavar="DIR")
    conformance.add_argument("--valuesets", type=Path, metavar="DIR",
                             help="value-set folder: the schema check also requires "
                             "value-set membership")
    conformance.set_defaults(handler=_conformance)

    trust = commands.add_parser("trust", help="signed trust bundles: build, sign, inspect, install")
    sub = trust.add_subparsers(required=True, metavar="ACTION")
    keygen = sub.add_parser("keygen", help="make the authority Ed25519 key pair (central side)")
    keygen.add_argument("--out-dir", type=Path, default=Path("."), help="where to write")
    keygen.add_argument("--name", default="authority", help="file stem (NAME.key, NAME.pem)")
    keygen.set_defaults(handler=_keygen)

    build = sub.add_parser("build", help="build an unsigned bundle body from DSCs + description")
    build.add_argument("dsc_dir", type=Path, help="folder of DSC files (PEM/DER/CRT)")
    build.add_argument("description", type=Path, help="TOML or JSON description")
    build.add_argument("--out", type=Path, required=True, help="unsigned body (.cbor)")
    build.add_argument("--gateway-json", type=Path, action="append", default=[],
                       metavar="FILE", help="EU DCC Gateway trust-list JSON to import (DSC "
                       "entries with their country; repeatable)")
    build.add_argument("--who-did", type=Path, action="append", default=[], metavar="FILE",
                       help="WHO GDHCN DID trust list (embedded did.json) to import: its DSC "
                       "entries; others are skipped and counted (repeatable)")
    build.add_argument("--valuesets", type=Path, metavar="DIR",
                       help="folder of EU DCC value-set files to include (bundle format 2)")
    build.add_argument("--complete-test-devices", action="store_true",
                       help="the value sets' test device list is complete: check a test's ma")
    build.add_argument("--rules", type=Path, metavar="RULES.json",
                       help="CertLogic rules (one EU DCC Gateway rule or a JSON list) to "
                       "include (bundle format 3); every rule must compile")
    build.add_argument("--format", type=int, choices=(1, 2, 3), default=None,
                       dest="body_format",
                       help="body format (default: the lowest that holds the content: 3 with "
                       "rules, else 2); 1 or 2 for gates not yet updated, refused when the "
                       "content needs a newer one")
    build.set_defaults(handler=_build)

    sign = sub.add_parser("sign", help="sign a bundle body with the authority private key")
    sign.add_argument("body", type=Path, help="unsigned body from 'trust build'")
    sign.add_argument("--key", type=Path, required=True, help="authority private key (PEM)")
    sign.add_argument("--out", type=Path, required=True, help="signed bundle (.cose)")
    sign.set_defaults(handler=_sign)

    inspect = sub.add_parser("inspect", help="summarise a signed or unsigned bundle")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--authority-keys", type=Path, help="check the signature with these")
    inspect.set_defaults(handler=_inspect)

    install = sub.add_parser("install", help="verify and atomically install a bundle (gate)")
    install.add_argument("bundle", type=Path)
    install.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file")
    install.set_defaults(handler=_install)


def _conformance(args: argparse.Namespace) -> int:
    from kiosk.conformance import main

    extra = [] if args.valuesets is None else ["--valuesets", str(args.valuesets)]
    return main([*map(str, args.dirs), *extra])


def _keygen(args: argparse.Namespace) -> int:
    from kiosk.signing import generate_authority_key, save_private_key, save_public_key

    private, public = args.out_dir / f"{args.name}.key", args.out_dir / f"{args.name}.pem"
    for path in (private, public):
        if path.exists():
            raise DocumentError(f"{path} exists; refusing to overwrite an authority key")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    key = generate_authority_key()
    save_private_key(key, private)
    save_public_key(key.public_key(), public)
    print(f"private key: {private} (keep it at the centre, never on a gate)")
    print(f"public key:  {public} (provision on each gate as verify.authority_keys)")
    return 0


def _build(args: argparse.Namespace) -> int:
    from kiosk.verify.build import build_bundle, read_rules
    from kiosk.verify.didtrust import read_who_did
    from kiosk.verify.trustlists import read_gateway_trustlist
    from kiosk.verify.valuesets import load_folder

    if args.valuesets is not None and args.body_format == 1:
        raise DocumentError("--valuesets needs --format 2 or 3: format 1 has no value sets")
    if args.rules is not None and args.body_format in (1, 2):
        raise DocumentError(f"--rules needs format 3: format {args.body_format} has no "
                            "CertLogic rules (a gate reading it would decide without them)")
    valuesets = None if args.valuesets is None else load_folder(
        args.valuesets, complete_test_devices=args.complete_test_devices)
    imported = [s for path in args.gateway_json for s in read_gateway_trustlist(path)]
    for path in args.who_did:
        found = read_who_did(path)
        print(found.summary(str(path)), file=sys.stderr)
        for warning in found.warnings:
            print(f"  skipped {warning}", file=sys.stderr)
        imported += found.signers
    rules = () if args.rules is None else read_rules(args.rules)
    bundle = build_bundle(args.dsc_dir, args.description, valuesets=valuesets,
                          imported=imported, rules=rules)
    body_format = bundle.needed_format if args.body_format is None else args.body_format
    try:
        body = bundle.to_cbor(body_format)
    except ValueError as exc:
        raise DocumentError(str(exc)) from None
    args.out.write_bytes(body)
    sets = len(bundle.valuesets.sets) if body_format >= 2 else 0
    print(f"{args.out}: unsigned bundle v{bundle.version} (format {body_format}), "
          f"{len(bundle.signers)} signers, {len(bundle.revocation)} revocation entries, "
          f"{sets} value sets, {len(bundle.certlogic)} CertLogic rules; "
          "sign it with 'kiosk trust sign'")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from kiosk.signing import TRUST_BUNDLE, load_private_key, sign_document
    from kiosk.verify.bundle import TrustBundle, is_signed

    body = args.body.read_bytes()
    if is_signed(body):
        raise DocumentError(f"{args.body} is already signed")
    bundle = TrustBundle.from_cbor(body)  # never sign what a gate would refuse
    args.out.write_bytes(sign_document(body, load_private_key(args.key),
                                       content_type=TRUST_BUNDLE))
    print(f"{args.out}: signed bundle v{bundle.version}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from kiosk.signing import load_public_keys, verify_document
    from kiosk.verify.bundle import TrustBundle, is_signed
    from kiosk.verify.cose import parse_sign1

    blob = _read_input(args.file)
    status = 0
    if is_signed(blob):
        body = parse_sign1(blob).payload
        if args.authority_keys is None:
            print("signed bundle (signature NOT checked: pass --authority-keys)")
        else:
            from kiosk.signing import TRUST_BUNDLE

            try:
                verify_document(blob, load_public_keys(args.authority_keys),
                                content_type=TRUST_BUNDLE)
                print("signed bundle, signature valid")
            except DocumentError as exc:
                print(f"signed bundle, SIGNATURE INVALID: {exc}")
                status = 1
    else:
        body = blob
        print("UNSIGNED bundle body (a gate will not install it; sign it first)")
    print(_summary(TrustBundle.from_cbor(body)))
    return status


def _read_input(path: Path) -> bytes:
    """A bundle file given on the command line, read with the bundle size cap.

    Raises DocumentError (one line) when it is unreadable or above the cap.
    """
    from kiosk.capped import FileTooLarge, read_capped
    from kiosk.verify.bundle import MAX_BYTES

    try:
        return read_capped(path, MAX_BYTES)
    except FileTooLarge:
        raise DocumentError(f"{path}: larger than the {MAX_BYTES}-byte bundle limit") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None


def _summary(bundle: object) -> str:
    from kiosk.verify.bundle import TrustBundle
    from kiosk.verify.trust import kid_of

    assert isinstance(bundle, TrustBundle)
    issued = bundle.issued_at
    lines = [
        f"version:    {bundle.version}",
        f"issued_at:  {issued.isoformat()}",
        f"fresh until {datetime.fromtimestamp(issued.timestamp() + bundle.max_age_s, UTC)}"
        f", stale until "
        f"{datetime.fromtimestamp(issued.timestamp() + bundle.max_age_s + bundle.grace_s, UTC)}",
        f"signers:    {len(bundle.signers)}",
    ]
    for entry in bundle.signers:
        types = ",".join(sorted(t.value for t in entry.types))
        lines.append(f"  kid {kid_of(entry.der).hex()} country {entry.country} types {types}")
    rev = bundle.revocation
    lines.append(f"revocation: uci {len(rev.uci)}, countrycodeuci {len(rev.countrycodeuci)}, "
                 f"signature {len(rev.signature)}, blocked kids {len(rev.kids)}")
    modes = ", ".join(f"{n}={'+'.join(m) or '(any)'}" for n, m in bundle.policy.modes.items())
    lines.append(f"policy:     default {bundle.policy.default_mode}; modes {modes}")
    sets = bundle.valuesets.sets
    lines.append("valuesets:  " + (", ".join(f"{k} {len(v)}" for k, v in sorted(sets.items()))
                                   or "none") + (" (test devices complete)"
                                                 if bundle.valuesets.complete_test_devices
                                                 else ""))
    lines.append(f"rules:      {len(bundle.certlogic) or 'none'}"
                 + (" (CertLogic; a gate applies the Acceptance rules of its policy.country)"
                    if bundle.certlogic else ""))
    from kiosk.verify.certrules import valid_span

    for rule in bundle.certlogic.rules:
        lines.append(f"  {rule.identifier} {rule.version_text} {rule.type} "
                     f"{rule.certificate_type} country {rule.country} valid {valid_span(rule)}")
    return "\n".join(lines)


def _install(args: argparse.Namespace) -> int:
    from kiosk.config import load_config
    from kiosk.signing import load_public_keys
    from kiosk.verify.bundlefile import install_bundle

    config = load_config(args.config)
    target = config.device.data_dir / config.verify.bundle_file
    keys = load_public_keys(config.verify.authority_keys)
    try:
        bundle = install_bundle(_read_input(args.bundle), target, keys)
    except DocumentError as exc:
        print(f"refused: {exc}; the installed bundle is unchanged", file=sys.stderr)
        return 1
    except OSError as exc:  # the data folder is full, read-only or missing
        print(f"refused: cannot write {target}: {exc.strerror or type(exc).__name__}; "
              "the installed bundle is unchanged", file=sys.stderr)
        return 1
    from kiosk.verify.factory import open_trusted_clock  # only once a bundle is installed

    # The issue time is evidence of the time: offered to the clock's high-water
    # mark now, bounded as the gate does at load (a far-future one waits).
    try:
        clock = open_trusted_clock(config.clock, wall_clock=lambda: datetime.now(UTC),
                                   state_dir=config.device.data_dir)
        issued = bundle.issued_at.timestamp()
        clock.offer_bundle(issued, issued + bundle.max_age_s + bundle.grace_s, bundle.version)
        clock.close()
    except OSError as exc:
        print(f"warning: trust bundle v{bundle.version} installed, but the clock mark was not "
              f"raised: {exc.strerror or type(exc).__name__}", file=sys.stderr)
    if config.verify.reload_interval_s > 0:
        when = (f"the running gate uses it within {config.verify.reload_interval_s:g} s "
                "(or at once on SIGHUP)")
    else:
        when = "restart the gate service to use it (verify.reload_interval_s = 0)"
    print(f"installed trust bundle v{bundle.version} at {target}; {when}")
    return 0
