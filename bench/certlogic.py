"""Benchmark: what a CertLogic rule set adds to a scan, against full verification alone.

Usage: ``python bench/certlogic.py [--seconds 6] [--rounds 12] [--revoked 1000000]
[--rules docs/examples/certlogic-rules.json] [--valuesets ../shared/testdata/valuesets]``.
Runs on one core (pinned when the OS allows) and prints one JSON object::

    {"rules": 20, "rules_us_per_scan": ..., "verify_us_per_scan": ..., "ratio": ..., ...}

Baseline, measured in the same run: ``Verifier.verify`` of bench/verify.py's
device set-up (the realistic ES256 certificate, trusted clock, revocation
against ``--revoked`` hashes per list, default policy). The other side does
the same verification and then what a gate would add per scan: the external
parameters (validation clock, value sets, country, iat, exp) and
``RuleSet.failures`` over the rule set (20 EU-style rules, compiled once
before timing). ``ratio`` is scans per second with rules over scans per second
without; ``rules_us_per_scan`` is the rules' own cost timed alone, and
``added_us_per_scan`` the difference of the two scan times. The rules see the
certificate's payload with the vaccination dated 21 days before the clock, so
that every rule passes (the allow path, where every applicable rule runs).

Rates are CPU time of this process, best of ``--rounds`` interleaved rounds
for every side alike, as in bench/verify.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from kiosk.certlogic.rules import compile_rule_set
from kiosk.certlogic.valuesets import load_value_sets
from kiosk.verify.issuer import sample_vaccination

REPO_ROOT = Path(__file__).resolve().parents[1]
BUDGET_US = 100.0  # issue 11: a 20-rule set adds at most this per scan


def _verify_bench() -> ModuleType:
    """bench/verify.py as a module (its set-up is this benchmark's baseline)."""
    spec = importlib.util.spec_from_file_location("bench_verify", Path(__file__).with_name(
        "verify.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    """Run the benchmark and print the JSON result; 2 when an input is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="CPU seconds per side, split over the rounds")
    parser.add_argument("--rounds", type=int, default=12,
                        help="interleaved rounds per side; each side's best round counts")
    parser.add_argument("--revoked", type=int, default=1_000_000,
                        help="entries per revocation hash list of the baseline verifier")
    parser.add_argument("--rules", type=Path,
                        default=REPO_ROOT / "docs" / "examples" / "certlogic-rules.json")
    parser.add_argument("--valuesets", type=Path,
                        default=REPO_ROOT.parent / "shared" / "testdata" / "valuesets")
    args = parser.parse_args()
    if not args.valuesets.is_dir():
        print(f"value sets not found at {args.valuesets} (pass --valuesets DIR)", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    bench = _verify_bench()
    verifier, qr = bench.build_certificate(args.revoked)
    assert verifier.verify(qr).allowed, "benchmark certificate must verify"
    rules = compile_rule_set(json.loads(args.rules.read_text()), load_value_sets(args.valuesets))
    now = bench.NOW
    payload = sample_vaccination(fn="Musterfrau-Gößinger", gn="Erika Dörte", dob="1964-08-12",
                                 dt=(now - timedelta(days=21)).date().isoformat())
    iat, exp = now - timedelta(days=2), now + timedelta(days=365)

    def rules_alone() -> object:
        external = rules.external(now, country="ID", iat=iat, exp=exp)
        return rules.failures(payload, external)

    def verify() -> object:
        return verifier.verify(qr)

    def verify_and_rules() -> object:
        verifier.verify(qr)
        return rules_alone()

    failures = rules_alone()
    assert failures == [], f"every rule must pass the benchmark payload: {failures}"
    evaluated = sum(1 for o in rules.evaluate(payload, rules.external(now)) if o.passed is not None)

    rates: dict[str, list[float]] = {"verify": [], "both": [], "rules": []}
    share = args.seconds / args.rounds
    for _ in range(args.rounds):
        rates["verify"].append(bench._rate(verify, share))
        rates["both"].append(bench._rate(verify_and_rules, share))
        rates["rules"].append(bench._rate(rules_alone, share))
    verify_per_s, both_per_s, rules_per_s = (max(rates[k]) for k in ("verify", "both", "rules"))
    rules_us = 1e6 / rules_per_s
    print(json.dumps({
        "rules": len(rules.identifiers),
        "rules_applicable": evaluated,
        "rules_us_per_scan": round(rules_us, 1),
        "added_us_per_scan": round(1e6 / both_per_s - 1e6 / verify_per_s, 1),
        "verify_us_per_scan": round(1e6 / verify_per_s, 1),
        "verify_per_s": round(verify_per_s, 1),
        "verify_and_rules_per_s": round(both_per_s, 1),
        "ratio": round(both_per_s / verify_per_s, 3),
        "budget_us": BUDGET_US,
        "within_budget": rules_us <= BUDGET_US,
        "revoked_per_list": args.revoked,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
