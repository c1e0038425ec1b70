"""Revocation: each DCC hash type, the kid blocklist, and a million-entry list."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
import zlib

import cbor2
import pytest

from kiosk.decision import Reason
from kiosk.verify import TrustMaterial, TrustStore, Verifier, base45, kid_of
from kiosk.verify.issuer import make_signer, sample_test, sample_vaccination
from kiosk.verify.revocation import (
    HashList,
    Revocation,
    countrycodeuci_hash,
    signature_hash,
    uci_hash,
)

from .conftest import NOW, Signer, issue


def _verifier(der: bytes, revocation: Revocation) -> Verifier:
    store = TrustStore.from_certificates([der])
    return Verifier(TrustMaterial(store, revocation=revocation), lambda: NOW)


def _signature(qr: str) -> bytes:
    message = cbor2.loads(zlib.decompress(base45.decode(qr[4:])))
    return bytes(message.value[3])


def test_hash_definitions() -> None:
    uvci = "URN:UVCI:01:DE:84V8KMA1X0B2KSWNQJ6P6AJ64K1DRA#0"
    assert uci_hash(uvci) == hashlib.sha256(uvci.encode()).digest()[:16]
    assert countrycodeuci_hash("DE", uvci) == hashlib.sha256(b"DE" + uvci.encode()).digest()[:16]
    sig = bytes(range(64))
    assert signature_hash(sig, ecdsa=True) == hashlib.sha256(sig[:32]).digest()[:16]
    assert signature_hash(sig, ecdsa=False) == hashlib.sha256(sig).digest()[:16]


def test_not_revoked_is_allowed(ec_signer: Signer) -> None:
    other = HashList.from_hashes([b"\x01" * 16])
    v = _verifier(ec_signer[1], Revocation(uci=other, countrycodeuci=other, signature=other))
    assert v.verify(issue(ec_signer, sample_vaccination())).allowed


def test_uci_revoked(ec_signer: Signer) -> None:
    hcert = sample_vaccination()
    revoked = HashList.from_hashes([uci_hash(hcert["v"][0]["ci"])])
    decision = _verifier(ec_signer[1], Revocation(uci=revoked)).verify(issue(ec_signer, hcert))
    assert decision.reason is Reason.REVOKED and "UCI" in decision.detail
    assert hcert["v"][0]["ci"] not in decision.detail


def test_countrycodeuci_revoked_only_for_that_issuer(ec_signer: Signer) -> None:
    hcert = sample_test()
    revoked = HashList.from_hashes([countrycodeuci_hash("XX", hcert["t"][0]["ci"])])
    v = _verifier(ec_signer[1], Revocation(countrycodeuci=revoked))
    decision = v.verify(issue(ec_signer, hcert))  # issued with iss = "XX"
    assert decision.reason is Reason.REVOKED and "COUNTRYCODEUCI" in decision.detail
    assert v.verify(issue(ec_signer, hcert, issuer="DE")).allowed


def test_signature_revoked_es256_hashes_r_only(ec_signer: Signer) -> None:
    qr = issue(ec_signer, sample_vaccination())
    sig = _signature(qr)
    v = _verifier(ec_signer[1], Revocation(signature=HashList.from_hashes(
        [hashlib.sha256(sig[:32]).digest()[:16]])))
    assert v.verify(qr).reason is Reason.REVOKED
    whole = _verifier(ec_signer[1], Revocation(signature=HashList.from_hashes(
        [hashlib.sha256(sig).digest()[:16]])))
    assert whole.verify(qr).allowed  # ES256: the whole signature is not the revocation key


def test_signature_revoked_ps256_hashes_whole_signature(rsa2048_signer: Signer) -> None:
    qr = issue(rsa2048_signer, sample_vaccination())
    sig = _signature(qr)
    revoked = HashList.from_hashes([hashlib.sha256(sig).digest()[:16]])
    v = _verifier(rsa2048_signer[1], Revocation(signature=revoked))
    assert v.verify(qr).reason is Reason.REVOKED


def test_blocked_kid(ec_signer: Signer) -> None:
    v = _verifier(ec_signer[1], Revocation(kids=frozenset({kid_of(ec_signer[1])})))
    decision = v.verify(issue(ec_signer, sample_vaccination()))
    assert decision.reason is Reason.REVOKED and "blocked" in decision.detail
    other = make_signer("Other")
    assert _verifier(other[1], Revocation(kids=frozenset({kid_of(ec_signer[1])}))).verify(
        issue(other, sample_vaccination())).allowed


def test_hash_list_order_and_width() -> None:
    with pytest.raises(ValueError):
        HashList(b"\x00" * 17)
    with pytest.raises(ValueError):
        HashList(b"\x01" * 16 + b"\x01" * 16)  # duplicate
    with pytest.raises(ValueError):
        HashList.from_hashes([b"short"])
    hl = HashList.from_hashes([b"\x05" * 16, b"\x01" * 16, b"\x05" * 16])
    assert len(hl) == 2 and b"\x05" * 16 in hl and b"\x03" * 16 not in hl
    assert "x" not in hl and b"\x05" * 15 not in hl
    # Records that differ only in the low 64 bits keep their order.
    a, b = b"\x00" * 8 + b"\x00" * 7 + b"\x01", b"\x00" * 8 + b"\x00" * 7 + b"\x02"
    assert b in HashList(a + b) and a in HashList(a + b)
    with pytest.raises(ValueError):
        HashList(b + a)


def test_million_entries_memory_and_lookup_time() -> None:
    """1M revocation hashes: 16 MB, sub-10 µs lookups (figures in the report)."""
    n = 1_000_000
    raw = os.urandom(16 * n)
    records = sorted(raw[i : i + 16] for i in range(0, len(raw), 16))
    data = b"".join(records)
    del records, raw
    tracemalloc.start()
    hl = HashList(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(hl) == n
    assert peak < 40 * 1024 * 1024  # the order check's temporaries; the list itself is 16 MB
    probes = [data[i * 16 : i * 16 + 16] for i in range(0, n, n // 500)]
    misses = [os.urandom(16) for _ in range(500)]
    start = time.perf_counter()
    assert all(p in hl for p in probes)
    assert not any(m in hl for m in misses)
    per_lookup = (time.perf_counter() - start) / (len(probes) + len(misses))
    assert per_lookup < 50e-6, f"{per_lookup * 1e6:.1f} µs per lookup"
