"""A small X.509 CA for gate and broker certificates (``cryptography``).

Folder layout (``kiosk central ca init --ca-dir DIR``):

- ``ca.key``  the CA's EC P-256 private key (0600; stays in the centre)
- ``ca.crt``  the CA certificate: the broker's ``cafile`` and every gate's ``mqtt.tls_ca``
- ``tokens.json`` one-time enrolment tokens (hashes only), ``issued.jsonl`` every issue

Validity is short and stated: device certificates 90 days by default
(re-enrol or rotate before then, docs/provisioning.md), broker certificates
365 days, the CA 10 years.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiosk.central.enrol.tokens import TokenBook
from kiosk.config.ids import split_identity
from kiosk.errors import EnrolmentError
from kiosk.verify.atomic import atomic_write

CA_VALIDITY_DAYS = 3650
DEVICE_VALIDITY_DAYS = 90
MAX_DEVICE_VALIDITY_DAYS = 397
SERVER_VALIDITY_DAYS = 365
MAX_CSR_BYTES = 16 * 1024
# Central services with their own broker identity (config/mosquitto/acl); none holds a '/'.
SERVICES = ("fleet", "homeassistant", "operator")
# Backdating absorbs small clock differences between the CA and the broker.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A certificate the CA issued: PEM, serial (hex) and validity."""

    pem: bytes
    serial: str
    subject: str
    not_before: datetime
    not_after: datetime


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kiosk"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


class EnrolmentCA:
    """The CA in one folder; build with :meth:`create` or :meth:`open`.

    ``clock`` is aware UTC now (tests pass a fixed or shifted one).
    """

    def __init__(
        self,
        folder: Path,
        key: ec.EllipticCurvePrivateKey,
        cert: x509.Certificate,
        clock: Callable[[], datetime],
    ) -> None:
        self.folder = folder
        self._key = key
        self.cert = cert
        self._clock = clock
        self.tokens = TokenBook(folder / "tokens.json", clock)

    @classmethod
    def create(
        cls,
        folder: Path,
        name: str = "kiosk enrolment CA",
        *,
        days: int = CA_VALIDITY_DAYS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> EnrolmentCA:
        """Create a new CA in ``folder``; refuses to overwrite an existing one."""
        if (folder / "ca.key").exists():
            raise EnrolmentError(f"{folder}/ca.key exists: this folder already holds a CA")
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        now = clock()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name[:64]))
            .issuer_name(_name(name[:64]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write(folder / "ca.key", key_pem, mode=0o600)
        atomic_write(folder / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
        return cls(folder, key, cert, clock)

    @classmethod
    def open(
        cls, folder: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> EnrolmentCA:
        """Open the CA in ``folder`` (made by :meth:`create`)."""
        try:
            key_pem = (folder / "ca.key").read_bytes()
            cert_pem = (folder / "ca.crt").read_bytes()
        except FileNotFoundError as exc:
            raise EnrolmentError(
                f"{exc.filename}: no CA here (kiosk central ca init --ca-dir {folder})"
            ) from None
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise EnrolmentError(f"{folder}/ca.key: not an EC key")
        return cls(folder, key, x509.load_pem_x509_certificate(cert_pem), clock)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate (PEM): what gates and the broker trust."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def enrol(self, csr_pem: bytes, token: str, *, days: int = DEVICE_VALIDITY_DAYS) -> Issued:
        """Sign a gate's CSR with a one-time ``token``; CN = the token's ``<site>/<gate>``.

        The CSR must be PEM, at most 16 KiB, self-signed by an EC P-256 key and
        name exactly the identity the token was issued for. The token is spent
        only when a certificate is issued.
        """
        if not 1 <= days <= MAX_DEVICE_VALIDITY_DAYS:
            raise EnrolmentError(f"validity {days} days: must be 1..{MAX_DEVICE_VALIDITY_DAYS}")
        csr = load_csr(csr_pem)
        identity = csr_identity(csr)
        expected = self.tokens.check(token)
        if identity != expected:
            raise EnrolmentError(f"the CSR names {identity}, the token is for {expected}")
        issued = self._issue(
            csr.public_key(), identity, days, ExtendedKeyUsageOID.CLIENT_AUTH, sans=()
        )
        self.tokens.redeem(token, identity)
        return issued

    def issue_server(
        self, hosts: Sequence[str], *, days: int = SERVER_VALIDITY_DAYS
    ) -> tuple[bytes, Issued]:
        """A broker certificate for ``hosts`` (DNS names or IP addresses): ``(key PEM, cert)``."""
        if not hosts:
            raise EnrolmentError("a broker certificate needs at least one host name or address")
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        issued = self._issue(
            key.public_key(), hosts[0], days, ExtendedKeyUsageOID.SERVER_AUTH, sans
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key_pem, issued

    def issue_service(self, name: str, *, days: int = SERVER_VALIDITY_DAYS) -> tuple[bytes, Issued]:
        """A client certificate for a central service (:data:`SERVICES`).

        Service names never hold ``/``, so no service can be mistaken for a gate
        (whose CN is ``<site>/<gate>``) in the broker's ACL.
        """
        if name not in SERVICES:
            raise EnrolmentError(f"service {name[:40]!r}: expected one of {', '.join(SERVICES)}")
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._issue(key.public_key(), name, days, ExtendedKeyUsageOID.CLIENT_AUTH, ())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key_pem, issued

    def _issue(
        self,
        public_key: object,
        common_name: str,
        days: int,
        usage: x509.ObjectIdentifier,
        sans: Sequence[x509.GeneralName],
    ) -> Issued:
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise EnrolmentError("only EC P-256 keys are signed")
        now = self._clock()
        start = now - BACKDATE
        end = min(start + BACKDATE + timedelta(days=days), self.cert.not_valid_after_utc)
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(
            cert.public_bytes(serialization.Encoding.PEM),
            f"{serial:x}",
            common_name,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )
        self._record(issued)
        return issued

    def _record(self, issued: Issued) -> None:
        line = json.dumps(
            {
                "serial": issued.serial,
                "subject": issued.subject,
                "not_before": issued.not_before.isoformat(),
                "not_after": issued.not_after.isoformat(),
                "issued": self._clock().isoformat(),
            }
        )
        with open(self.folder / "issued.jsonl", "a") as log:
            log.write(line + "\n")


def load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR, bounded in size, with a valid self-signature."""
    if len(csr_pem) > MAX_CSR_BYTES:
        raise EnrolmentError(f"CSR: {len(csr_pem)} bytes, at most {MAX_CSR_BYTES}")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise EnrolmentError("CSR: not a PEM certificate signing request") from None
    try:
        valid = csr.is_signature_valid
    except (InvalidSignature, ValueError):
        valid = False
    if not valid:
        raise EnrolmentError("CSR: its signature does not match its key")
    return csr


def csr_identity(csr: x509.CertificateSigningRequest) -> str:
    """The ``<site>/<gate>`` a CSR asks for (its only CN), checked against the id rule."""
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise EnrolmentError("CSR: expected exactly one common name <site>/<gate>")
    identity = names[0].value
    try:
        split_identity(identity)
    except ValueError as exc:
        raise EnrolmentError(f"CSR: {exc}") from None
    return identity
