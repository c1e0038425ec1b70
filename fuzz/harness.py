"""The fuzz harness: the whole verification chain, QR text in, Decision out (docs/fuzzing.md).

``fuzz/fuzz_verify.py`` runs :func:`check_one` under atheris (libFuzzer)::

    python fuzz/fuzz_verify.py -runs=100000 fuzz/corpus      # seeds: --make-corpus DIR

Each input's first byte picks how the rest reaches the verifier, so the fuzzer
gets past the checksummed outer layers:

* ``0`` text: the bytes as QR text (Latin-1) -- prefix, Base45, zlib, COSE;
* ``1`` COSE: the bytes zlib-compressed and Base45-encoded -- COSE and headers;
* ``2`` claims: the bytes as CWT claims, *signed with the trusted fuzz key* --
  claims, times, content, EKU, revocation, positive tests and 3G rules.

Invariants checked on every input: the compiled and the pure-Python Base45
decoders give the same bytes or the same error; ``verify`` returns a :class:`Decision`
and never raises; a deny has a specific reason; an allow is only ever given
to a COSE payload that the trusted fuzz key (or a test-data DSC) signed --
for text/COSE inputs, one of the seed payloads.  Without atheris,
:func:`run_hypothesis` drives the same :func:`check_one` (tests use it).
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from kiosk.decision import Decision, Reason  # noqa: E402
from kiosk.verify import TrustMaterial, TrustStore, Verifier, base45, issuer, kid_of, steps  # noqa: E402
from kiosk.verify.cose import parse_sign1  # noqa: E402
from kiosk.verify.issuer import sign1  # noqa: E402
from kiosk.verify.revocation import HashList, Revocation  # noqa: E402
from kiosk.verify.rules import DEFAULT_POLICY  # noqa: E402
from kiosk.verify.trust import Signer  # noqa: E402

SHARED_DCC = REPO.parent / "shared" / "testdata" / "dcc"
NOW = datetime(2021, 6, 15, 12, 0, tzinfo=UTC)
MAX_INPUT = 8192


class _Target:
    """The verifier under test and the seed material (built once per process)."""

    def __init__(self) -> None:
        self.key, self.der = issuer.make_signer("Fuzz DSC")
        signers = [Signer.from_der(self.der)]
        self.texts: list[str] = []
        for case in sorted(SHARED_DCC.glob("*/2DCode/[rR]aw/*.json")):
            try:
                data = json.loads(case.read_text())
                if isinstance(data.get("PREFIX"), str):
                    self.texts.append(data["PREFIX"])
                cert = (data.get("TESTCTX") or {}).get("CERTIFICATE")
                if cert:
                    signers.append(Signer.from_der(base64.b64decode(cert)))
            except (ValueError, TypeError, AttributeError):
                continue  # a test-data DSC we cannot use is simply not trusted
        iat, exp = NOW - timedelta(days=1), NOW + timedelta(days=30)
        samples = [issuer.sample_vaccination(), issuer.sample_recovery(fr="2021-05-01"),
                   issuer.sample_test(sc="2021-06-15T08:00:00Z"),
                   issuer.sample_test(sc="2021-06-15T08:00:00Z", tr="260373001")]
        self.claims = [cbor2.dumps({1: "XX", 4: int(exp.timestamp()), 6: int(iat.timestamp()),
                                    -260: {1: h}}) for h in samples]
        self.texts += [issuer.issue_hc1(h, self.key, self.der, iat, exp) for h in samples]
        self.texts.append(issuer.tamper_signature(self.texts[-1]))
        revoked = HashList.from_hashes(bytes([i]) * 16 for i in range(8))
        material = TrustMaterial(
            TrustStore(signers), Revocation(uci=revoked, countrycodeuci=revoked,
                                            signature=revoked, kids=frozenset({b"\x00" * 8})),
            mode=DEFAULT_POLICY.mode("3G"))
        self.verifier = Verifier(material, lambda: NOW)
        # Payloads that may be allowed: the seeds' signed payloads.
        self.signed_payloads = set()
        for text in self.texts:
            try:
                cose = parse_sign1(steps.inflate(base45.decode(text[4:])))
                self.signed_payloads.add(cose.payload)
            except Exception:  # a seed that does not decode cannot be allowed anyway
                continue

    def seeds(self) -> list[bytes]:
        """Initial corpus: every mode with real material."""
        out = [b"\x00" + t.encode("latin-1", "replace") for t in self.texts]
        for text in self.texts[-5:]:
            try:
                out.append(b"\x01" + steps.inflate(base45.decode(text[4:])))
            except Exception:  # keep only the seeds that decode
                continue
        out += [b"\x02" + c for c in self.claims]
        return out

    def text_for(self, data: bytes) -> tuple[str, bytes | None]:
        """The QR text for a fuzz input, and the payload it signed (claims mode) or None."""
        mode, body = (data[0] % 3, data[1:]) if data else (0, b"")
        if mode == 0:
            return body.decode("latin-1"), None
        if mode == 1:
            return "HC1:" + base45.encode(zlib.compress(body)), None
        cose = sign1(body, self.key, {1: -7, 4: kid_of(self.der)}, {}, alg=-7)
        return "HC1:" + base45.encode(zlib.compress(cose)), body


_TARGET: _Target | None = None


def target() -> _Target:
    """The process-wide target (built on first use)."""
    global _TARGET
    if _TARGET is None:
        _TARGET = _Target()
    return _TARGET


def check_one(data: bytes) -> None:
    """Run one input through the verifier and assert the invariants (raises AssertionError)."""
    t = target()
    if len(data) > MAX_INPUT:
        return
    text, signed = t.text_for(data)
    assert _base45_outcome(base45.decode, text[4:]) == \
        _base45_outcome(base45.decode_python, text[4:]), "Base45 decoders disagree"
    decision = t.verifier.verify(text)
    assert isinstance(decision, Decision), type(decision)
    assert isinstance(decision.reason, Reason)
    assert decision.allowed == (decision.reason is Reason.OK)
    if decision.allowed:
        payload = parse_sign1(steps.inflate(base45.decode(text[4:]))).payload
        assert signed == payload or payload in t.signed_payloads, "forged payload allowed"
    assert decision.reason is not Reason.INTERNAL_ERROR, decision.detail


def _base45_outcome(decode: Callable[[str], bytes], text: str) -> tuple[bool, bytes | str]:
    try:
        return True, decode(text)
    except base45.Base45Error as exc:
        return False, str(exc)


def run_hypothesis(examples: int = 500) -> int:
    """The atheris-less fallback: hypothesis-driven inputs through :func:`check_one`.

    Returns the number of inputs run (seeds included).
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seeds = target().seeds()
    for seed in seeds:
        check_one(seed)

    mutations = st.builds(
        lambda seed, pos, byte: seed[:pos % max(len(seed), 1)] + bytes([byte])
        + seed[pos % max(len(seed), 1) + 1:],
        st.sampled_from(seeds), st.integers(0, 4096), st.integers(0, 255))

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=600) | mutations)
    def fuzz(data: bytes) -> None:
        check_one(data)

    fuzz()
    return len(seeds) + examples


def make_corpus(folder: Path) -> int:
    """Write the seeds as one file each into ``folder``; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = target().seeds()
    for index, seed in enumerate(seeds):
        (folder / f"seed-{index:04d}").write_bytes(seed)
    return len(seeds)
