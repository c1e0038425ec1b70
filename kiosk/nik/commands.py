"""``kiosk nik`` subcommands: check, build-list, inspect, install.

There is deliberately no ``lookup``: "is this NIK on the list?" is the exact
oracle the list's design protects (docs/nik-privacy.md). A technician who
needs it uses the gate itself, which is rate-limited and counts every attempt.
``check`` only validates structure; it prints what the NIK encodes because
the technician typed it, and nothing is logged. Pass ``-`` to read the NIK from
stdin so it stays out of shell history and the process list.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from kiosk.errors import DocumentError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``kiosk`` parser."""
    nik = commands.add_parser("nik", help="KTP number (NIK): validate, build/install lists")
    sub = nik.add_subparsers(required=True, metavar="NIK_COMMAND")

    check = sub.add_parser("check", help="validate a NIK; prints a JSON verdict")
    check.add_argument("nik", help="the 16-digit NIK, or - to read it from stdin")
    check.add_argument("--today", type=date.fromisoformat, help="validation date (YYYY-MM-DD)")
    check.set_defaults(handler=_check)

    build = sub.add_parser("build-list", help="central side: build and sign a status list")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--niks", type=Path, help="file of NIKs, one per line")
    source.add_argument("--synthetic", type=int, metavar="N", help="N random valid NIKs")
    build.add_argument("--seed", type=int, default=0, help="seed for --synthetic")
    build.add_argument("--key", type=Path, required=True, help="authority private key (PEM)")
    build.add_argument("--version", type=int, required=True, help="list version (increasing)")
    build.add_argument("--out", type=Path, required=True, help="output folder")
    build.add_argument("--lifetime-days", type=float, default=7.0, help="validity (default 7)")
    build.add_argument("--scrypt-n", type=int, default=None, help="scrypt N (default 2^16)")
    build.add_argument("--scrypt-r", type=int, default=None, help="scrypt r (default 8)")
    build.add_argument("--scrypt-p", type=int, default=None, help="scrypt p (default 1)")
    build.add_argument("--width", type=int, default=None, help="bytes per entry (default 8)")
    build.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    build.add_argument("--quiet", action="store_true", help="no progress line")
    build.set_defaults(handler=_build)

    inspect = sub.add_parser("inspect", help="summary of a signed list manifest (never entries)")
    inspect.add_argument("manifest", type=Path)
    inspect.add_argument("--keys", type=Path, help="authority public key(s) to check it against")
    inspect.set_defaults(handler=_inspect)

    install = sub.add_parser("install", help="verify and install a list on this gate")
    install.add_argument("manifest", type=Path)
    install.add_argument("data", type=Path)
    install.add_argument("--config", type=Path, default=Path("/etc/kiosk/kiosk.toml"))
    install.add_argument("--list-dir", type=Path, help="override nik.list_dir")
    install.add_argument("--keys", type=Path, help="override verify.authority_keys")
    install.set_defaults(handler=_install)


def _check(args: argparse.Namespace) -> int:
    from kiosk.nik.validate import validate_nik

    nik = sys.stdin.readline().strip() if args.nik == "-" else args.nik
    verdict = validate_nik(nik, args.today or datetime.now(UTC).date())
    print(json.dumps(verdict.to_json(), ensure_ascii=False))
    return 0 if verdict.valid else 1


def _build(args: argparse.Namespace) -> int:
    from kiosk.nik.build import build_list, default_workers, stderr_progress, synthetic_niks
    from kiosk.nik.kdf import DEFAULT_KDF, DEFAULT_WIDTH, KdfParams
    from kiosk.signing import load_private_key

    try:
        kdf = KdfParams(
            args.scrypt_n or DEFAULT_KDF.n, args.scrypt_r or DEFAULT_KDF.r, args.scrypt_p or 1
        )
    except ValueError as exc:
        raise DocumentError(str(exc)) from None
    issued_at = datetime.now(UTC)
    key = load_private_key(args.key)
    with contextlib.ExitStack() as stack:
        niks: Iterable[str]
        if args.synthetic is not None:
            total = args.synthetic
            niks = synthetic_niks(args.synthetic, args.seed, issued_at.date())
        else:
            try:
                with args.niks.open("rb") as counting:
                    total = sum(1 for _ in counting)
                niks = stack.enter_context(args.niks.open(encoding="ascii", errors="replace"))
            except OSError as exc:
                raise DocumentError(f"{args.niks}: {exc.strerror}") from None
        try:
            result = build_list(
                niks,
                args.out,
                key,
                version=args.version,
                issued_at=issued_at,
                lifetime=timedelta(days=args.lifetime_days),
                kdf=kdf,
                width=args.width or DEFAULT_WIDTH,
                workers=args.workers or default_workers(),
                progress=None if args.quiet else stderr_progress(total),
            )
        except ValueError as exc:
            raise DocumentError(f"cannot build the list: {exc}") from None
    summary = result.manifest.summary() | {
        "manifest": str(result.manifest_path),
        "data": str(result.data_path),
        "valid_lines": result.accepted,
        "invalid_lines": result.invalid,
    }
    print(json.dumps(summary, indent=2))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from kiosk.nik.listfile import MANIFEST_MAX_BYTES, Manifest, read_manifest
    from kiosk.nik.store import read_capped
    from kiosk.signing import load_public_keys
    from kiosk.verify.cose import parse_sign1

    try:
        blob = read_capped(args.manifest, MANIFEST_MAX_BYTES)
    except FileNotFoundError:
        raise DocumentError(f"{args.manifest}: no such file") from None
    if args.keys is not None:
        manifest = read_manifest(blob, load_public_keys(args.keys))
        signature = "valid"
    else:
        try:
            manifest = Manifest.from_cbor(parse_sign1(blob).payload)
        except Exception as exc:
            raise DocumentError(f"{args.manifest}: not a NIK list manifest: {exc}") from None
        signature = "not checked (pass --keys)"
    now = datetime.now(UTC)
    print(
        json.dumps(
            manifest.summary() | {"signature": signature, "expired": manifest.expired(now)},
            indent=2,
        )
    )
    return 0


def _install(args: argparse.Namespace) -> int:
    from kiosk.config import load_config
    from kiosk.nik.store import install_list
    from kiosk.signing import load_public_keys

    config = load_config(args.config if args.config.exists() else None)
    list_dir = args.list_dir or config.nik.list_dir
    # Lists share the trust bundle's trust root.
    keys = load_public_keys(args.keys or config.verify.authority_keys)
    manifest = install_list(args.manifest, args.data, list_dir, keys, datetime.now(UTC))
    print(json.dumps(manifest.summary() | {"installed_in": str(list_dir)}, indent=2))
    return 0
