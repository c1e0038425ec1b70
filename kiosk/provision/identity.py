"""The gate's key, CSR and certificate in ``/etc/kiosk``.

- ``device.key``: EC P-256, generated on the gate, mode 0600, owned by ``kiosk``;
  never copied anywhere (only the CSR leaves the gate).
- ``device.key.new``: a key being rotated in; it replaces ``device.key`` only
  when a certificate for it is installed, so a gate never loses a working key.
- ``device.csr``: what the technician carries to the centre (``kiosk central enrol``).
- ``device.crt`` + ``broker-ca.crt``: what comes back, checked before installing.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiosk.config.ids import split_identity
from kiosk.errors import ProvisionError
from kiosk.verify.atomic import atomic_write

MAX_PEM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Installed:
    """What :meth:`DeviceIdentity.install` put in place."""

    identity: str
    serial: str
    not_after: datetime
    rotated: bool


class DeviceIdentity:
    """The identity files in ``folder`` (``/etc/kiosk`` on a gate).

    ``owner``: the user the key belongs to (``kiosk``); applied only when
    running as root and the user exists (a test or staging folder keeps the
    caller's). ``clock``: aware UTC now.
    """

    def __init__(
        self,
        folder: Path,
        *,
        owner: str = "kiosk",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.folder = folder
        self.owner = owner
        self._clock = clock
        self.key_path = folder / "device.key"
        self.pending_key_path = folder / "device.key.new"
        self.csr_path = folder / "device.csr"
        self.cert_path = folder / "device.crt"
        self.ca_path = folder / "broker-ca.crt"

    def prepare(self, identity: str, *, rotate: bool = False) -> Path:
        """Make sure a key exists (a new one with ``rotate``) and write its CSR; returns it.

        The first provisioning generates ``device.key``. Re-provisioning without
        ``rotate`` keeps it (a new certificate for the same key); a rotation
        generates a pending key that becomes ``device.key`` only on install.
        """
        split_identity(identity)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.key_path.exists():
            self._write_key(self.key_path, ec.generate_private_key(ec.SECP256R1()))
        elif rotate:
            self._write_key(self.pending_key_path, ec.generate_private_key(ec.SECP256R1()))
        key = self._load_key(self._csr_key_path())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kiosk"),
                        x509.NameAttribute(NameOID.COMMON_NAME, identity),
                    ]
                )
            )
            .sign(key, hashes.SHA256())
        )
        atomic_write(self.csr_path, csr.public_bytes(serialization.Encoding.PEM))
        return self.csr_path

    def install(self, cert_pem: bytes, ca_pem: bytes, identity: str) -> Installed:
        """Check and install a certificate and the broker CA; returns what was installed.

        Refused (:class:`ProvisionError`) unless the certificate is for this
        gate's key (current or pending), names ``identity``, is signed by the
        CA, is valid now and is for TLS client authentication.
        """
        cert = _load_cert(cert_pem, "certificate")
        ca = _load_cert(ca_pem, "broker CA")
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [n.value for n in names] != [identity]:
            shown = str(names[0].value)[:80] if names else "no name"
            raise ProvisionError(f"the certificate is for {shown!r}, this gate is {identity}")
        try:
            cert.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise ProvisionError(
                f"the certificate is not signed by that CA ({type(exc).__name__})"
            ) from None
        now = self._clock()
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            raise ProvisionError(
                f"the certificate is valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                f"{cert.not_valid_after_utc:%Y-%m-%d}, not now ({now:%Y-%m-%d}): check the clock"
            )
        try:
            usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
            raise ProvisionError("the certificate is not for TLS client authentication")
        rotated = False
        if self.pending_key_path.exists() and _same_key(
            cert, self._load_key(self.pending_key_path)
        ):
            os.replace(self.pending_key_path, self.key_path)
            rotated = True
        elif not (self.key_path.exists() and _same_key(cert, self._load_key(self.key_path))):
            raise ProvisionError("the certificate is for another key, not this gate's")
        atomic_write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        atomic_write(self.ca_path, ca.public_bytes(serialization.Encoding.PEM))
        self.csr_path.unlink(missing_ok=True)
        return Installed(identity, f"{cert.serial_number:x}", cert.not_valid_after_utc, rotated)

    def _csr_key_path(self) -> Path:
        return self.pending_key_path if self.pending_key_path.exists() else self.key_path

    def _write_key(self, path: Path, key: ec.EllipticCurvePrivateKey) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        atomic_write(path, pem, mode=0o600)
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(self.owner)
            except KeyError:
                return
            os.chown(path, user.pw_uid, user.pw_gid)

    def _load_key(self, path: Path) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProvisionError(f"{path}: not an EC private key")
        return key


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    if len(pem) > MAX_PEM_BYTES:
        raise ProvisionError(f"{what}: {len(pem)} bytes, at most {MAX_PEM_BYTES}")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ProvisionError(f"{what}: not a PEM certificate") from None


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
