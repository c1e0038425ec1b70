"""Central-side tools: build a trust bundle body from a DSC folder and a description.

The description is TOML (``.toml``) or JSON (anything else); every key is
optional (docs/trust-bundle.md shows a full example)::

    version = 7                        # required: strictly increasing per release
    issued_at = "2026-11-26T00:00:00Z" # default: now
    max_age_s = 604800                 # fresh for 7 days (default)
    grace_s = 1209600                  # then stale for 14 days (default)
    [signers."de-dsc-1.der"]           # per DSC file; default country = subject C,
    country = "DE"                     # types = all three
    types = ["v", "t", "r"]
    [revocation]
    uci = ["<32 hex digits>"]          # 16-byte hashes; also countrycodeuci, signature
    uci_file = "uci.txt"               # one hex hash per line (also *_file for the others)
    uvci = ["URN:UVCI:01:DE:..."]      # plain UVCIs, hashed here as UCI
    kids = ["<16 hex digits>"]         # blocked signer keys
    [policy]                           # kiosk.verify.rules wire form; default policy if absent
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from kiosk.decision import CertType
from kiosk.errors import DocumentError
from kiosk.verify.bundle import BundleSigner, TrustBundle
from kiosk.verify.certrules import MAX_SECTION_BYTES, BundleRules
from kiosk.verify.revocation import HASH_TYPES, HashList, Revocation, uci_hash
from kiosk.verify.rules import Policy
from kiosk.verify.trust import _file_ders
from kiosk.verify.valuesets import ValueSets

__all__ = ["DEFAULT_GRACE_S", "DEFAULT_MAX_AGE_S", "build_bundle", "read_description",
           "read_rules"]

DEFAULT_MAX_AGE_S = 7 * 86400
DEFAULT_GRACE_S = 14 * 86400
_SUFFIXES = (".pem", ".der", ".crt")


def read_description(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON description. Raises DocumentError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise DocumentError(f"{path}: cannot read description: {exc}") from exc
    if not isinstance(data, dict):
        raise DocumentError(f"{path}: description is not a table/object")
    return data


def read_rules(path: Path) -> list[Any]:
    """One EU DCC Gateway rule or a JSON list of them, read bounded (as ``kiosk rules check``).

    Raises DocumentError naming the file (unreadable, too large, not JSON).
    """
    from kiosk.certlogic.commands import read_json
    from kiosk.certlogic.dates import CertLogicError

    try:
        raw = read_json(path, MAX_SECTION_BYTES)
    except CertLogicError as exc:
        raise DocumentError(f"rules: {exc}") from None
    return raw if type(raw) is list else [raw]


def _hex_list(values: Any, width: int, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise DocumentError(f"{what} must be a list of hex strings")
    out = []
    for value in values:
        try:
            raw = bytes.fromhex(str(value).strip())
        except ValueError:
            raise DocumentError(f"{what}: {value!r} is not hex") from None
        if len(raw) != width:
            raise DocumentError(f"{what}: {value!r} is not {width} bytes")
        out.append(raw)
    return out


def _revocation(obj: Any, base: Path) -> Revocation:
    if obj is None:
        return Revocation()
    if not isinstance(obj, dict):
        raise DocumentError("revocation must be a table")
    lists: dict[str, HashList] = {}
    for name in HASH_TYPES:
        hashes = _hex_list(obj.get(name, []), 16, f"revocation.{name}")
        if f"{name}_file" in obj:
            lines = (base / str(obj[f"{name}_file"])).read_text().split()
            hashes += _hex_list(lines, 16, f"revocation.{name}_file")
        if name == "uci":
            hashes += [uci_hash(str(u)) for u in obj.get("uvci", [])]
        lists[name] = HashList.from_hashes(hashes)
    kids = frozenset(_hex_list(obj.get("kids", []), 8, "revocation.kids"))
    return Revocation(kids=kids, **lists)


def _country(der: bytes) -> str | None:
    attrs = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COUNTRY_NAME)
    return str(attrs[0].value) if attrs else None


def build_bundle(dsc_dir: Path, description: Path, *, now: datetime | None = None,
                 valuesets: ValueSets | None = None,
                 imported: Sequence[BundleSigner] = (),
                 rules: Sequence[Any] = ()) -> TrustBundle:
    """Build (and self-check) a bundle from ``dsc_dir`` and ``description``.

    ``valuesets`` (:func:`kiosk.verify.valuesets.load_folder`) go into the
    bundle (format 2).  ``imported`` adds signers read from trust lists
    (:func:`kiosk.verify.trustlists.read_gateway_trustlist`,
    :func:`kiosk.verify.didtrust.read_who_did`), after the
    folder's; a DSC already in the folder is not listed twice.  ``rules``
    (Gateway-format CertLogic rules, :func:`read_rules`) go into the bundle
    (format 3); each must parse and compile.

    Raises:
        DocumentError: a missing version, an unreadable DSC, a DSC without a
            country, a bad hash, a rule that does not parse or compile (named by
            its number and Identifier), or a policy/body that would not parse on a gate.
    """
    desc = read_description(description)
    version = desc.get("version")
    if type(version) is not int or version < 1:
        raise DocumentError("description: version must be an integer >= 1")
    issued = desc.get("issued_at")
    if issued is None:
        issued_at = now or datetime.now(UTC)
    else:
        try:
            issued_at = datetime.fromisoformat(str(issued).replace("Z", "+00:00"))
        except ValueError:
            raise DocumentError(f"description: issued_at {issued!r} is not ISO 8601") from None
        if issued_at.tzinfo is None:
            issued_at = issued_at.replace(tzinfo=UTC)
    per_file = desc.get("signers", {})
    signers = []
    for file in sorted(p for p in dsc_dir.iterdir() if p.suffix.lower() in _SUFFIXES):
        spec = per_file.get(file.name, {})
        try:
            ders = _file_ders(file)
            for der in ders:
                country = spec.get("country") or _country(der)
                if not country:
                    raise DocumentError(f"{file.name}: no country (set signers.{file.name})")
                types = spec.get("types", [t.value for t in CertType])
                signers.append(BundleSigner(der, country, frozenset(CertType(t) for t in types)))
        except (OSError, ValueError) as exc:
            raise DocumentError(f"{file.name}: {exc}") from exc
    try:
        policy = Policy.from_obj(desc.get("policy"))
    except ValueError as exc:
        raise DocumentError(f"description: policy: {exc}") from exc
    try:
        certlogic = BundleRules.from_rules(rules)
    except ValueError as exc:
        raise DocumentError(f"rules: {exc}") from None
    in_folder = {s.der for s in signers}
    bundle = TrustBundle(
        version=version,
        issued_at=issued_at.replace(microsecond=0),
        max_age_s=int(desc.get("max_age_s", DEFAULT_MAX_AGE_S)),
        grace_s=int(desc.get("grace_s", DEFAULT_GRACE_S)),
        signers=tuple(signers) + tuple(s for s in imported if s.der not in in_folder),
        revocation=_revocation(desc.get("revocation"), description.parent),
        policy=policy,
        valuesets=valuesets or ValueSets(),
        certlogic=certlogic,
    )
    TrustBundle.from_cbor(bundle.to_cbor())  # what a gate would refuse, refuse here
    for entry in bundle.signers:
        entry.signer()  # every DSC must be usable on a gate
    return bundle
