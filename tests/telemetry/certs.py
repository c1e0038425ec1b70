"""A throw-away test PKI made with ``cryptography``: a CA, a broker and gate certificates."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_cert: Path  # signed by a CA the broker does not trust
    other_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    cn: str,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer if not ca else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(key if ca else issuer_key, hashes.SHA256()), key


def make_pki(folder: Path) -> Pki:
    """Write a CA, a server certificate for 127.0.0.1 and client certificates to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _issue(
        "kiosk test CA", _name("x"), ec.generate_private_key(ec.SECP256R1()), ca=True
    )
    rogue_cert, rogue_key = _issue(
        "rogue CA", _name("x"), ec.generate_private_key(ec.SECP256R1()), ca=True
    )
    server_cert, server_key = _issue("broker", ca_cert.subject, ca_key, server=True)
    client_cert, client_key = _issue("site-a/gate-01", ca_cert.subject, ca_key)
    other_cert, other_key = _issue("site-a/gate-01", rogue_cert.subject, rogue_key)
    pem = serialization.Encoding.PEM
    files = {
        "ca.pem": ca_cert.public_bytes(pem),
        "server.pem": server_cert.public_bytes(pem),
        "client.pem": client_cert.public_bytes(pem),
        "other.pem": other_cert.public_bytes(pem),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    for name, key in (
        ("server.key", server_key),
        ("client.key", client_key),
        ("other.key", other_key),
    ):
        _write_key(key, folder / name)
    return Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_cert=folder / "other.pem",
        other_key=folder / "other.key",
    )
