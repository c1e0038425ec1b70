"""Benchmark: full HC1 verifications per second vs raw ECDSA P-256 verifies per second.

Usage: ``python bench/verify.py [--seconds 6] [--rounds 12] [--revoked 1000000]
[--rules 0] [--minimal] [--base45 auto|python] [--cbor auto|python] [--profile]``.
Runs on one core (pinned when the OS allows) and prints one JSON object::

    {"verify_per_s": ..., "raw_ecdsa_per_s": ..., "ratio": ..., ...}

The raw number verifies the very same signature over the very same
Sig_structure with the very same public key object, so ``ratio`` is the share
of the crypto floor that the whole pipeline keeps: Base45, zlib, COSE, the
trusted clock (with its synchronisation probe), bundle freshness, ES256, CWT,
content and EKU checks, the EU value sets of a format-2 bundle (when
``../shared/testdata/valuesets`` exists), revocation against ``--revoked`` UCI hashes plus as
many SIGNATURE hashes, a tenth as many COUNTRYCODEUCI hashes and a kid
blocklist, the DSC's listed country against ``iss``, the positive-test check
and the default policy's 3G scan mode -- the device configuration.
``--rules N`` also measures the same device set-up with N CertLogic rules of
a format-3 bundle (variants of the 20 EU-style rules of
docs/examples/certlogic-rules.json, 15 of every 20 applying to a vaccination;
compiled once, as a gate does at bundle load) applied by ``Verifier.verify``,
and reports ``certlogic_us_per_scan``: the added CPU time per scan against the
run without rules, measured in the same interleaved rounds (issue 11's budget:
20 rules add at most 100 us).  The certificate's vaccination is 21 days old,
so that every rule passes (the allow path, where every applicable rule runs).
``--minimal`` measures the first cut's set-up (bare trust store, plain clock,
no revocation, no rules) for comparison;
``--base45 python`` the pure-Python Base45 decoder a device runs when the
install could not compile ``kiosk/verify/_base45.c``; ``--cbor python`` the
CBOR readers of such a device (cbor2 and the Python envelope split, without
``kiosk/_cbor.c``).  The
JSON says which decoders ran (``"base45"``, ``"cbor"``: ``"c"`` or ``"python"``).

Rates are CPU time of this process (``time.process_time``), best of
``--rounds`` interleaved rounds for both sides alike, so other load on a shared machine
does not skew the ratio.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kiosk import cborsafe
from kiosk.verify import TrustMaterial, TrustStore, Verifier, base45, fast
from kiosk.verify.certrules import BundleRules, GateRules
from kiosk.verify.clock import FixedProbe, TrustedClock
from kiosk.verify.cose import parse_sign1, split_sign1_python
from kiosk.verify.issuer import EKU_VACCINATION, issue_hc1, make_signer, sample_vaccination
from kiosk.verify.revocation import HashList, Revocation
from kiosk.verify.rules import DEFAULT_POLICY
from kiosk.verify.steps import inflate
from kiosk.verify.trust import Signer
from kiosk.verify.valuesets import ValueSets, load_folder

NOW = datetime(2021, 6, 10, 12, 0, tzinfo=UTC)


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per CPU second of ``fn`` over roughly ``seconds`` (after a short warm-up)."""
    for _ in range(200):
        fn()
    calls, start = 0, time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        calls += 100
        now = time.process_time()
        if now >= deadline:
            return calls / (now - start)


def _hashes(n: int) -> HashList:
    raw = os.urandom(16 * n)
    return HashList(b"".join(sorted(raw[i : i + 16] for i in range(0, len(raw), 16))))


VALUESETS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "valuesets"
EXAMPLE_RULES = Path(__file__).resolve().parents[1] / "docs" / "examples" / "certlogic-rules.json"


def _valuesets() -> ValueSets:
    """The EU value sets as a format-2 bundle carries them (none when the folder is absent)."""
    return load_folder(VALUESETS) if VALUESETS.is_dir() else ValueSets()


def certlogic_rules(count: int) -> list[dict[str, Any]]:
    """``count`` Gateway rules for country ID: the 20 example rules, then numbered variants."""
    examples: list[dict[str, Any]] = json.loads(EXAMPLE_RULES.read_text(encoding="utf-8"))
    rules = []
    for number in range(count):
        rule = dict(examples[number % len(examples)])
        if number >= len(examples):  # a variant: same logic under its own Identifier
            rule["Identifier"] = f"{rule['Identifier'][:6]}{1000 + number:04d}"
        rules.append(rule)
    return rules


def with_rules(verifier: Verifier, count: int) -> Verifier:
    """A verifier like ``verifier`` (same material and clock) that also applies ``count`` rules.

    The rules go through the bundle's section (:class:`BundleRules`: parsed and
    compiled once) and are selected for country ID as a gate's
    ``policy.country`` does.
    """
    material = verifier.material
    section = BundleRules.from_bytes(BundleRules.from_rules(certlogic_rules(count)).to_bytes())
    rules = GateRules.for_gate(section, "ID", material.valuesets.as_external())
    return Verifier(replace(material, rules=rules), verifier._clock)  # type: ignore[arg-type]


def build_certificate(revoked: int = 0, state_dir: Path | None = None,
                      minimal: bool = False) -> tuple[Verifier, str]:
    """A realistic ES256 vaccination certificate (~620 characters) and its device verifier.

    ``revoked``: size of each revocation hash list; ``state_dir``: where the
    trusted clock keeps its mark (a fresh temporary folder when None);
    ``minimal``: the first cut's set-up instead (a bare TrustStore, a plain
    clock, no revocation, no rules) for comparison with earlier figures.
    """
    key, der = make_signer("DSC bench", "ec", [EKU_VACCINATION])
    # 21 days old: inside every EU-style rule's window (14..270 days) for --rules.
    hcert = sample_vaccination(fn="Musterfrau-Gößinger", gn="Erika Dörte", dob="1964-08-12",
                               dt=(NOW - timedelta(days=21)).date().isoformat())
    hcert["v"][0]["is"] = "Bundesministerium fur Gesundheit"
    qr = issue_hc1(hcert, key, der, NOW - timedelta(days=2), NOW + timedelta(days=365),
                   issuer="DE")
    if minimal:
        return Verifier(TrustStore.from_certificates([der]), lambda: NOW), qr
    revocation = Revocation(
        uci=_hashes(revoked), countrycodeuci=_hashes(revoked // 10),
        signature=_hashes(revoked), kids=frozenset(os.urandom(8) for _ in range(100)),
    )
    material = TrustMaterial(
        valuesets=_valuesets(),
        # Listed for its country, as in a trust bundle: the issuer-country rule runs.
        store=TrustStore([replace(Signer.from_der(der), country="DE")]), revocation=revocation,
        mode=DEFAULT_POLICY.mode("3G"), version=1, issued_at=NOW - timedelta(days=1),
        max_age_s=7 * 86400, grace_s=14 * 86400,
    )
    folder = state_dir or Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    clock = TrustedClock(lambda: NOW, FixedProbe(True), folder / "clock.json")
    return Verifier(material, clock), qr


def main() -> None:
    """Run the benchmark and print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="CPU seconds per side, split over the rounds")
    parser.add_argument("--rounds", type=int, default=12,
                        help="interleaved rounds per side; each side's best round counts")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of verify()")
    parser.add_argument("--revoked", type=int, default=1_000_000,
                        help="entries per revocation hash list (default 1,000,000)")
    parser.add_argument("--rules", type=int, default=0, metavar="N",
                        help="also measure N CertLogic rules (default 0: not measured)")
    parser.add_argument("--minimal", action="store_true",
                        help="the first cut's set-up: no clock, revocation or rules")
    parser.add_argument("--base45", choices=("auto", "python"), default="auto",
                        help="python: the pure-Python decoder even when the compiled one is built")
    parser.add_argument("--cbor", choices=("auto", "python"), default="auto",
                        help="python: cbor2 alone even when kiosk/_cbor.c is built")
    args = parser.parse_args()
    implementation = base45.IMPLEMENTATION
    if args.base45 == "python":
        base45.decode = base45.decode_python  # read per call by the verifier
        implementation = "python"
    cbor_implementation = cborsafe.IMPLEMENTATION
    if args.cbor == "python":
        cborsafe._cbor = None  # read per call by cborsafe.loads
        fast.split_sign1_tbs = split_sign1_python  # the straight path's envelope split
        cbor_implementation = "python"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    verifier, qr = build_certificate(args.revoked, minimal=args.minimal)
    assert verifier.verify(qr).allowed, "benchmark certificate must verify"
    if args.rules and args.minimal:
        parser.error("--rules needs the device set-up (not --minimal)")
    ruled = with_rules(verifier, args.rules) if args.rules else None
    if ruled is not None:
        decision = ruled.verify(qr)
        assert decision.allowed, f"every rule must pass the benchmark certificate: {decision}"
    cose = parse_sign1(inflate(base45.decode(qr[4:])))
    signer = verifier._trust.lookup(cose.kid or b"")  # the very key object verify() uses
    assert signer is not None and isinstance(signer.public_key, ec.EllipticCurvePublicKey)
    public_key = signer.public_key
    der_sig = encode_dss_signature(
        int.from_bytes(cose.signature[:32], "big"), int.from_bytes(cose.signature[32:], "big")
    )
    tbs = cose.to_be_signed()
    algorithm = ec.ECDSA(hashes.SHA256())

    def raw() -> None:
        public_key.verify(der_sig, tbs, algorithm)

    def full() -> None:
        verifier.verify(qr)

    def full_with_rules() -> None:
        assert ruled is not None
        ruled.verify(qr)

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [verifier.verify(qr) for _ in range(5000)])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)

    # Interleave to spread frequency/noise effects evenly over both numbers.
    raw_rates, full_rates, ruled_rates = [], [], []
    for _ in range(args.rounds):
        raw_rates.append(_rate(raw, args.seconds / args.rounds))
        full_rates.append(_rate(full, args.seconds / args.rounds))
        if ruled is not None:
            ruled_rates.append(_rate(full_with_rules, args.seconds / args.rounds))
    raw_per_s, full_per_s = max(raw_rates), max(full_rates)
    certlogic: dict[str, object] = {"rules": args.rules}
    if ruled is not None:
        ruled_per_s = max(ruled_rates)
        assert ruled.material.rules is not None
        certlogic |= {
            "rules_applied": len(ruled.material.rules),
            "verify_with_rules_per_s": round(ruled_per_s, 1),
            "ratio_with_rules": round(ruled_per_s / raw_per_s, 3),
            "certlogic_us_per_scan": round(1e6 / ruled_per_s - 1e6 / full_per_s, 1),
        }
    print(
        json.dumps(
            {
                "verify_per_s": round(full_per_s, 1),
                "raw_ecdsa_per_s": round(raw_per_s, 1),
                "ratio": round(full_per_s / raw_per_s, 3),
                "qr_chars": len(qr),
                "setup": "minimal" if args.minimal else "device",
                "revoked_per_list": 0 if args.minimal else args.revoked,
                "valuesets": 0 if args.minimal else len(verifier.material.valuesets.sets),
                "base45": implementation,
                "cbor": cbor_implementation,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "processor": platform.processor() or platform.platform(),
                **certlogic,
            }
        )
    )


if __name__ == "__main__":
    main()
