"""atheris (libFuzzer) target for the WHO DID trust-list import (``trust build --who-did``).

Usage::

    python fuzz/fuzz_didtrust.py --make-corpus fuzz/corpus-didtrust   # seeds
    python fuzz/fuzz_didtrust.py [libFuzzer flags] fuzz/corpus-didtrust

Each input is written as a file and read with :func:`kiosk.verify.didtrust.read_who_did`.
Invariants: it returns a DidImport or raises DocumentError, nothing else; a
refusal names the file and stays short (no unbounded echo); every imported
signer is a DSC a gate can use, with a 1-3 letter upper-case country; every
entry is either imported or counted as skipped; at most MAX_WARNINGS warnings,
each short.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

_FOLDER = Path(tempfile.mkdtemp(prefix="kiosk-fuzz-didtrust-"))
_FILE = _FOLDER / "did.json"
_BASE = "did:web:tng-cdn.who.int:v2:trustlist"


def check_one(data: bytes) -> None:
    """Read ``data`` as a DID trust list file and check the invariants (AssertionError on a bug)."""
    from kiosk.errors import DocumentError
    from kiosk.verify.didtrust import MAX_WARNINGS, read_who_did

    _FILE.write_bytes(data)
    try:
        found = read_who_did(_FILE)
    except DocumentError as exc:
        message = str(exc)
        assert str(_FILE) in message, message[:200]
        assert len(message) < 1000, message[:200]
        return
    for signer in found.signers:
        signer.signer()  # raises if a gate could not use it
        assert 1 <= len(signer.country) <= 3 and signer.country.isascii() \
            and signer.country.isalpha() and signer.country.isupper(), signer.country
    assert len({s.der for s in found.signers}) == len(found.signers)
    entries = json.loads(data)["verificationMethod"]
    assert len(found.signers) + sum(found.skipped.values()) == len(entries)
    assert len(found.warnings) <= MAX_WARNINGS
    assert all(len(w) < 400 for w in found.warnings)


def _method(der: bytes, usage: str) -> dict[str, object]:
    from kiosk.verify.trust import kid_of

    kid = base64.b64encode(kid_of(der)).decode()
    return {"id": f"{_BASE}:-:XXA:{usage}#{kid}", "type": "JsonWebKey2020",
            "controller": f"{_BASE}:-",
            "publicKeyJwk": {"kty": "EC", "kid": kid, "x5c": [base64.b64encode(der).decode()]}}


def seeds() -> list[bytes]:
    """Documents in the published shape (real generated DSCs) and small hostile ones."""
    from kiosk.verify.issuer import EKU_TEST, make_signer

    dsc, sca = make_signer("fuzz DSC")[1], make_signer("fuzz SCA")[1]
    tests_only = make_signer("fuzz tests", eku=[EKU_TEST])[1]
    good = {"@context": ["https://www.w3.org/ns/did/v1"], "id": f"{_BASE}:-:XXA",
            "controller": f"{_BASE}:-",
            "verificationMethod": [_method(dsc, "DSC"), _method(tests_only, "DSC"),
                                   _method(sca, "SCA"), f"{_BASE}:DCC:XXB:DSC"],
            "proof": {"type": "JsonWebSignature2020", "jws": "e30..c2ln"}}
    return [
        json.dumps(good).encode(),
        json.dumps(good | {"id": _BASE}).encode(),
        json.dumps({"id": f"{_BASE}:-:XXA:DSC", "verificationMethod": [
            {"id": "did:web:x#1", "publicKeyJwk": {"x5c": ["AAAA"], "kid": "AA=="}}]}).encode(),
        b'{"id": "did:web:x", "verificationMethod": [[[[[[[[[1]]]]]]]]]}',
        b"[" * 64,
        b'{"id": "did:web:x", "verificationMethod": "x"}',
    ]


def make_corpus(folder: Path) -> int:
    """Write the seeds into ``folder``; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    made = seeds()
    for i, seed in enumerate(made):
        (folder / f"seed-{i:03d}.json").write_bytes(seed)
    return len(made)


def main() -> None:
    """Make the corpus, or fuzz :func:`check_one`."""
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        print(f"{make_corpus(Path(sys.argv[2]))} seeds written")
        return
    import atheris  # type: ignore[import-untyped,unused-ignore]

    with atheris.instrument_imports(include=["kiosk.verify.didtrust"]):
        import kiosk.verify.didtrust  # noqa: F401
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
