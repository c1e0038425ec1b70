"""A small HC1 issuer for tests, benchmarks and the demo -- never for production.

It makes real signatures with ``cryptography``: a self-signed document signer
certificate (:func:`make_signer`) and HC1 QR texts (:func:`issue_hc1`) with
knobs for the edge cases a verifier must handle (kid placement, CBOR tag,
algorithm, PSS salt length).  Payload builders produce plausible DCC 1.3.0
content for the three certificate types.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from kiosk.verify import base45
from kiosk.verify.trust import ALG_ES256, ALG_PS256, kid_of

__all__ = [
    "EKU_RECOVERY",
    "EKU_TEST",
    "EKU_VACCINATION",
    "PrivateKey",
    "encode_hc1",
    "issue_hc1",
    "make_signer",
    "malleate_es256",
    "sample_recovery",
    "sample_test",
    "sample_vaccination",
    "sign1",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

EKU_TEST = "1.3.6.1.4.1.1847.2021.1.1"
EKU_VACCINATION = "1.3.6.1.4.1.1847.2021.1.2"
EKU_RECOVERY = "1.3.6.1.4.1.1847.2021.1.3"

KeyType = Literal["ec", "rsa2048", "rsa3072"]
KidPlacement = Literal["protected", "unprotected", "none"]


def make_signer(
    common_name: str,
    key_type: KeyType = "ec",
    eku: Iterable[str] | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> tuple[PrivateKey, bytes]:
    """Create a key pair and a self-signed DSC; returns ``(private_key, certificate_der)``.

    ``eku`` lists EKU OIDs (dotted strings); None or empty omits the extension
    (no restriction).  Validity defaults to 2021-01-01 .. 2031-01-01 UTC.
    """
    key: PrivateKey
    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type in ("rsa2048", "rsa3072"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    else:
        raise ValueError(f"unknown key_type {key_type!r}")
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
    ])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or datetime(2021, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after or datetime(2031, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
    )
    oids = list(eku or ())
    if oids:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in oids]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    return key, cert.public_bytes(Encoding.DER)


def _sign(key: PrivateKey, alg: int, data: bytes, pss_salt: int | None) -> bytes:
    if alg == ALG_ES256:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("ES256 needs an EC key")
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("PS256 needs an RSA key")
    salt = padding.PSS.DIGEST_LENGTH if pss_salt is None else pss_salt
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
    return key.sign(data, pss, hashes.SHA256())


def sign1(
    payload: bytes,
    key: PrivateKey,
    protected: Mapping[int, Any],
    unprotected: Mapping[int, Any],
    *,
    alg: int,
    tag: int | None = 18,
    pss_salt: int | None = None,
) -> bytes:
    """Serialize a signed COSE_Sign1; ``tag`` is 18, 61 (wrapping 18) or None (untagged)."""
    protected_raw = cbor2.dumps(dict(protected)) if protected else b""
    tbs = cbor2.dumps(["Signature1", protected_raw, b"", payload])
    signature = _sign(key, alg, tbs, pss_salt)
    message: Any = [protected_raw, dict(unprotected), payload, signature]
    if tag in (18, 61):
        message = cbor2.CBORTag(18, message)
        if tag == 61:
            message = cbor2.CBORTag(61, message)
    elif tag is not None:
        raise ValueError(f"unsupported tag {tag}")
    return cbor2.dumps(message)


def encode_hc1(cose: bytes, *, compress: bool = True) -> str:
    """zlib-compress (level 9) and Base45-encode COSE bytes, prefixed with ``HC1:``."""
    return "HC1:" + base45.encode(zlib.compress(cose, 9) if compress else cose)


def issue_hc1(
    hcert: dict[str, Any],
    private_key: PrivateKey,
    cert_der: bytes,
    iat: datetime,
    exp: datetime,
    *,
    alg: int | None = None,
    kid_in: KidPlacement = "protected",
    tag: int | None = 18,
    kid: bytes | None = None,
    extra_unprotected: Mapping[int, Any] | None = None,
    issuer: str | None = "XX",
    pss_salt: int | None = None,
) -> str:
    """Sign ``hcert`` as an HC1 QR text (``"HC1:..."``).

    ``alg`` defaults to ES256 for EC keys and PS256 for RSA keys.  ``kid``
    defaults to :func:`kid_of` ``(cert_der)`` and is placed per ``kid_in``;
    ``extra_unprotected`` adds/overrides unprotected header labels (e.g. a
    second kid).  ``pss_salt`` overrides the PSS salt length (default 32).
    ``issuer`` is the CWT ``iss`` claim (the issuing country); None leaves it out.
    """
    if alg is None:
        alg = ALG_ES256 if isinstance(private_key, ec.EllipticCurvePrivateKey) else ALG_PS256
    the_kid = kid_of(cert_der) if kid is None else kid
    protected: dict[int, Any] = {1: alg}
    unprotected: dict[int, Any] = {}
    if kid_in == "protected":
        protected[4] = the_kid
    elif kid_in == "unprotected":
        unprotected[4] = the_kid
    unprotected.update(extra_unprotected or {})
    claims: dict[int, Any] = {
        4: int(exp.timestamp()),
        6: int(iat.timestamp()),
        -260: {1: hcert},
    }
    if issuer is not None:
        claims[1] = issuer
    cose = sign1(cbor2.dumps(claims), private_key, protected, unprotected,
                 alg=alg, tag=tag, pss_salt=pss_salt)
    return encode_hc1(cose)


def tamper_signature(hc1: str) -> str:
    """Return ``hc1`` with one bit of its COSE signature flipped (for demos and tests).

    The result still decodes through every layer; only the signature check fails.
    """
    message = cbor2.loads(zlib.decompress(base45.decode(hc1.removeprefix("HC1:"))))
    tags: list[int] = []
    while isinstance(message, cbor2.CBORTag):
        tags.append(message.tag)
        message = message.value
    parts = list(message)
    parts[3] = bytes([parts[3][0] ^ 0x01]) + parts[3][1:]
    rebuilt: Any = parts
    for tag in reversed(tags):
        rebuilt = cbor2.CBORTag(tag, rebuilt)
    return encode_hc1(cbor2.dumps(rebuilt))


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def malleate_es256(hc1: str) -> str:
    """``hc1`` with its ES256 signature ``(r, s)`` replaced by ``(r, n - s)`` (tests, demos).

    Both are valid ECDSA signatures of the same message: anyone holding a
    certificate can make this copy, so nothing may trust the signature bytes
    as the certificate's identity (:mod:`kiosk.verify.identity`).
    """
    message = cbor2.loads(zlib.decompress(base45.decode(hc1.removeprefix("HC1:"))))
    tags: list[int] = []
    while isinstance(message, cbor2.CBORTag):
        tags.append(message.tag)
        message = message.value
    parts = list(message)
    signature = bytes(parts[3])
    if len(signature) != 64:
        raise ValueError("not an ES256 signature")
    s = int.from_bytes(signature[32:], "big")
    parts[3] = signature[:32] + (P256_ORDER - s).to_bytes(32, "big")
    rebuilt: Any = parts
    for tag in reversed(tags):
        rebuilt = cbor2.CBORTag(tag, rebuilt)
    return encode_hc1(cbor2.dumps(rebuilt))


def _name(fn: str, gn: str, fnt: str | None, gnt: str | None) -> dict[str, str]:
    return {
        "fn": fn,
        "fnt": fnt or fn.upper().replace(" ", "<").replace("-", "<"),
        "gn": gn,
        "gnt": gnt or gn.upper().replace(" ", "<").replace("-", "<"),
    }


def _uvci(country: str, serial: str) -> str:
    return f"URN:UVCI:01:{country}:{serial}#0"


def sample_vaccination(
    fn: str = "Musterfrau", gn: str = "Erika", dob: str = "1964-08-12", *,
    fnt: str | None = None, gnt: str | None = None,
    dt: str = "2021-06-01", dn: int = 2, sd: int = 2, co: str = "DE",
) -> dict[str, Any]:
    """A DCC 1.3.0 vaccination payload (Comirnaty, 2 of 2 by default)."""
    return {
        "ver": "1.3.0", "nam": _name(fn, gn, fnt, gnt), "dob": dob,
        "v": [{
            "tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528", "ma": "ORG-100030215",
            "dn": dn, "sd": sd, "dt": dt, "co": co, "is": "Robert Koch-Institut",
            "ci": _uvci(co, "84V8KMA1X0B2KSWNQJ6P6AJ64K1DRA"),
        }],
    }


def sample_test(
    fn: str = "Musterfrau", gn: str = "Erika", dob: str = "1964-08-12", *,
    fnt: str | None = None, gnt: str | None = None,
    sc: str = "2021-06-01T10:00:00Z", tr: str = "260415000", co: str = "DE",
) -> dict[str, Any]:
    """A DCC 1.3.0 rapid antigen test payload ("not detected" by default)."""
    return {
        "ver": "1.3.0", "nam": _name(fn, gn, fnt, gnt), "dob": dob,
        "t": [{
            "tg": "840539006", "tt": "LP217198-3", "ma": "1232", "sc": sc, "tr": tr,
            "tc": "Testzentrum Berlin", "co": co, "is": "Robert Koch-Institut",
            "ci": _uvci(co, "T4ST3R1X0B2KSWNQJ6P6AJ64K1DRA"),
        }],
    }


def sample_recovery(
    fn: str = "Musterfrau", gn: str = "Erika", dob: str = "1964-08-12", *,
    fnt: str | None = None, gnt: str | None = None,
    fr: str = "2021-05-01", df: str = "2021-05-12", du: str = "2021-10-28", co: str = "DE",
) -> dict[str, Any]:
    """A DCC 1.3.0 recovery payload."""
    return {
        "ver": "1.3.0", "nam": _name(fn, gn, fnt, gnt), "dob": dob,
        "r": [{
            "tg": "840539006", "fr": fr, "co": co, "is": "Robert Koch-Institut",
            "df": df, "du": du, "ci": _uvci(co, "R3C0V3RY1X0B2KSWNQJ6P6AJ64K1D"),
        }],
    }


