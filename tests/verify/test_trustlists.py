"""EU DCC Gateway trust-list import: country and key usage kept, tampering refused."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from kiosk.cli import main
from kiosk.decision import CertType
from kiosk.errors import DocumentError
from kiosk.verify.issuer import EKU_TEST, make_signer
from kiosk.verify.trustlists import read_gateway_trustlist

from .bundles import assert_country_and_usage_kept, sign_install_open

DE = make_signer("Gateway DSC DE")
AT_TESTS = make_signer("Gateway DSC AT tests", eku=[EKU_TEST])


def _entry(der: bytes, country: str, kind: str = "DSC") -> dict[str, Any]:
    digest = hashlib.sha256(der).digest()
    return {"kid": base64.b64encode(digest[:8]).decode(), "timestamp": "2021-06-01T00:00:00Z",
            "country": country, "certificateType": kind, "thumbprint": digest.hex(),
            "signature": "MEUCIQ==", "rawData": base64.b64encode(der).decode()}


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_reads_dsc_entries_with_their_country(tmp_path: Path) -> None:
    listed = _write(tmp_path / "tl.json", [
        _entry(DE[1], "DE"), _entry(AT_TESTS[1], "at"), _entry(b"\x30\x03csca", "DE", "CSCA"),
        _entry(DE[1], "DE"),  # listed twice: imported once
    ])
    signers = read_gateway_trustlist(listed)
    assert [(s.country, s.der) for s in signers] == [("DE", DE[1]), ("AT", AT_TESTS[1])]
    # Key usage: the DSC's own EKU narrows the types on the gate.
    assert signers[1].signer().allowed_types == frozenset({CertType.TEST})
    wrapped = _write(tmp_path / "w.json", {"certificates": [_entry(DE[1], "DE")]})
    assert len(read_gateway_trustlist(wrapped)) == 1


@pytest.mark.parametrize(("change", "match"), [
    ({"kid": base64.b64encode(b"\x00" * 8).decode()}, "kid does not match"),
    ({"thumbprint": "00" * 32}, "thumbprint does not match"),
    ({"rawData": "not base64!"}, "rawData is not base64"),
    ({"country": "D3"}, "country"),
    ({"country": None}, "country"),
])
def test_tampered_or_malformed_entries_are_refused(tmp_path: Path, change: dict[str, Any],
                                                   match: str) -> None:
    entry = _entry(DE[1], "DE") | change
    path = _write(tmp_path / "tl.json", [_entry(AT_TESTS[1], "AT"), entry])
    with pytest.raises(DocumentError, match=f"entry #1: {match}"):
        read_gateway_trustlist(path)


@pytest.mark.parametrize("data", [{"x": 1}, "text", [1]])
def test_not_a_trust_list(tmp_path: Path, data: Any) -> None:
    with pytest.raises(DocumentError):
        read_gateway_trustlist(_write(tmp_path / "tl.json", data))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DocumentError, match="not JSON"):
        read_gateway_trustlist(tmp_path / "bad.json")


def test_build_from_a_gateway_list_then_the_gate_decides(tmp_path: Path) -> None:
    (tmp_path / "dsc").mkdir()  # no folder DSCs: everything comes from the list
    listed = _write(tmp_path / "tl.json", [_entry(DE[1], "DE"), _entry(AT_TESTS[1], "AT")])
    (tmp_path / "desc.toml").write_text('version = 2\nissued_at = "2021-06-10T11:00:00Z"\n'
                                        '[policy]\ndefault_mode = "any"\n'
                                        '[policy.modes]\nany = []\n')
    keys = tmp_path / "keys"
    body = tmp_path / "b.cbor"
    assert main(["trust", "keygen", "--out-dir", str(keys)]) == 0
    assert main(["trust", "build", str(tmp_path / "dsc"), str(tmp_path / "desc.toml"),
                 "--gateway-json", str(listed), "--out", str(body)]) == 0
    gate = sign_install_open(tmp_path, body, keys)
    # The gate keeps each DSC's country and key usage (the AT DSC signs tests only).
    assert_country_and_usage_kept(gate, DE, "DE", AT_TESTS, "AT")
    gate.close()
