"""Bilingual screen texts: Bahasa Indonesia first, then English.

One :class:`Message` per :class:`kiosk.decision.Reason`; the table is checked
complete at import so a new reason code cannot ship without its texts. Titles
are short capitals, read from 1.5 m; hints say what the traveller should do
next. Texts never reveal more than needed in a queue: a positive test is shown
as "not accepted", not as "positive"; a typed NIK that is not on the list and
one whose holder has just entered get the same "not accepted" screen
(:func:`message_for` with the input kind), so whoever knows a NIK cannot learn
from the screen whether that person is inside.  Staff, logs and counts keep
the real reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from kiosk.decision import CertType, InputKind, Reason


@dataclass(frozen=True)
class Message:
    """A screen text in two languages.

    Attributes:
        title_id: headline in Bahasa Indonesia (capitals).
        title_en: headline in English (capitals).
        hint_id: what to do next, in Bahasa Indonesia.
        hint_en: what to do next, in English.
    """

    title_id: str
    title_en: str
    hint_id: str
    hint_en: str


_ASK_STAFF = ("Silakan minta bantuan petugas", "Please ask staff for help")
_SHOW_ORIGINAL = (
    "Tunjukkan kode QR asli atau minta bantuan petugas",
    "Show the original QR code or ask staff for help",
)


def _m(title_id: str, title_en: str, hint: tuple[str, str]) -> Message:
    return Message(title_id, title_en, hint[0], hint[1])


IDLE = Message(
    "Pindai kode QR sertifikat Anda",
    "Scan your certificate QR code",
    "Arahkan kode QR ke kamera",
    "Hold the QR code up to the camera",
)

_MESSAGES: dict[Reason, Message] = {
    Reason.OK: _m(
        "SILAKAN MASUK",
        "PLEASE ENTER",
        ("Silakan lewati gerbang", "Please walk through the gate"),
    ),
    Reason.NOT_HC1: _m(
        "KODE QR TIDAK DIKENALI",
        "QR CODE NOT RECOGNISED",
        ("Tunjukkan kode QR sertifikat kesehatan", "Show the QR code of your health certificate"),
    ),
    Reason.BASE45_INVALID: _m("KODE QR RUSAK", "QR CODE DAMAGED", _SHOW_ORIGINAL),
    Reason.ZLIB_INVALID: _m("KODE QR RUSAK", "QR CODE DAMAGED", _SHOW_ORIGINAL),
    Reason.PAYLOAD_TOO_LARGE: _m("KODE QR TIDAK VALID", "INVALID QR CODE", _ASK_STAFF),
    Reason.COSE_INVALID: _m("KODE QR TIDAK VALID", "INVALID QR CODE", _SHOW_ORIGINAL),
    Reason.CBOR_INVALID: _m("KODE QR TIDAK VALID", "INVALID QR CODE", _SHOW_ORIGINAL),
    Reason.KID_MISSING: _m("PENERBIT TIDAK DIKENAL", "UNKNOWN ISSUER", _ASK_STAFF),
    Reason.UNKNOWN_SIGNER: _m("PENERBIT TIDAK DIKENAL", "UNKNOWN ISSUER", _ASK_STAFF),
    Reason.ALG_UNSUPPORTED: _m(
        "TANDA TANGAN TIDAK DIDUKUNG", "SIGNATURE NOT SUPPORTED", _ASK_STAFF
    ),
    Reason.SIGNATURE_INVALID: _m("TANDA TANGAN TIDAK SAH", "INVALID SIGNATURE", _ASK_STAFF),
    Reason.SIGNER_NOT_VALID: _m("PENERBIT TIDAK BERLAKU", "ISSUER NOT VALID", _ASK_STAFF),
    Reason.WRONG_CERT_TYPE: _m("JENIS SERTIFIKAT DITOLAK", "CERTIFICATE TYPE REJECTED", _ASK_STAFF),
    Reason.ISSUER_MISMATCH: _m("PENERBIT TIDAK SESUAI", "ISSUER MISMATCH", _ASK_STAFF),
    Reason.SCHEMA_INVALID: _m(
        "ISI SERTIFIKAT TIDAK VALID", "INVALID CERTIFICATE CONTENT", _ASK_STAFF
    ),
    Reason.NOT_YET_VALID: _m(
        "SERTIFIKAT BELUM BERLAKU",
        "CERTIFICATE NOT YET VALID",
        ("Coba lagi setelah sertifikat berlaku", "Try again once the certificate is valid"),
    ),
    Reason.EXPIRED: _m(
        "SERTIFIKAT KEDALUWARSA",
        "CERTIFICATE EXPIRED",
        ("Tunjukkan sertifikat yang masih berlaku", "Show a certificate that is still valid"),
    ),
    Reason.REVOKED: _m("SERTIFIKAT DICABUT", "CERTIFICATE REVOKED", _ASK_STAFF),
    Reason.TEST_POSITIVE: _m("HASIL TES TIDAK DITERIMA", "TEST RESULT NOT ACCEPTED", _ASK_STAFF),
    Reason.POLICY_NOT_MET: _m(
        "SYARAT MASUK TIDAK TERPENUHI",
        "ENTRY RULES NOT MET",
        ("Tanyakan syarat masuk kepada petugas", "Ask staff about the entry rules"),
    ),
    Reason.TRUST_EXPIRED: _m(
        "GERBANG PERLU DIPERBARUI",
        "GATE NEEDS AN UPDATE",
        ("Silakan minta bantuan petugas", "Please ask staff for help"),
    ),
    Reason.UNKNOWN_DISEASE: _m("PENYAKIT TIDAK DIKENAL", "UNKNOWN DISEASE", _ASK_STAFF),
    Reason.UNKNOWN_VACCINE: _m("JENIS VAKSIN TIDAK DIKENAL", "UNKNOWN VACCINE TYPE", _ASK_STAFF),
    Reason.UNKNOWN_PRODUCT: _m(
        "PRODUK VAKSIN TIDAK DIKENAL",
        "UNKNOWN VACCINE PRODUCT",
        ("Vaksin ini tidak ada dalam daftar; minta bantuan petugas",
         "This vaccine is not on the list; please ask staff for help"),
    ),
    Reason.UNKNOWN_MANUFACTURER: _m("PRODUSEN TIDAK DIKENAL", "UNKNOWN MANUFACTURER", _ASK_STAFF),
    Reason.UNKNOWN_TEST_TYPE: _m("JENIS TES TIDAK DIKENAL", "UNKNOWN TEST TYPE", _ASK_STAFF),
    Reason.UNKNOWN_TEST_RESULT: _m("HASIL TES TIDAK DIKENAL", "UNKNOWN TEST RESULT", _ASK_STAFF),
    Reason.UNKNOWN_COUNTRY: _m("NEGARA TIDAK DIKENAL", "UNKNOWN COUNTRY", _ASK_STAFF),
    # The hint is replaced by the failed rule's own description (Decision.note) when given.
    Reason.RULE_FAILED: _m(
        "SYARAT MASUK TIDAK TERPENUHI",
        "ENTRY RULES NOT MET",
        ("Tanyakan syarat masuk kepada petugas", "Ask staff about the entry rules"),
    ),
    Reason.ALREADY_ADMITTED: _m(
        "SERTIFIKAT SUDAH DIPAKAI",
        "ALREADY USED TO ENTER",
        (
            "Sertifikat ini baru saja dipakai masuk di sini; satu sertifikat untuk satu orang",
            "This certificate was just used to enter here; one certificate per person",
        ),
    ),
    Reason.NIK_INVALID: _m(
        "NIK TIDAK VALID",
        "INVALID ID NUMBER (NIK)",
        ("Periksa 16 digit NIK lalu coba lagi", "Check the 16-digit NIK and try again"),
    ),
    Reason.NIK_NOT_LISTED: _m("NIK TIDAK DITERIMA", "ID NUMBER NOT ACCEPTED", _ASK_STAFF),
    Reason.NIK_DISABLED: _m("NIK TIDAK AKTIF", "ID NUMBER NOT ACTIVE", _ASK_STAFF),
    Reason.NIK_RATE_LIMITED: _m(
        "TERLALU BANYAK PERCOBAAN",
        "TOO MANY ATTEMPTS",
        ("Tunggu sebentar atau minta bantuan petugas", "Wait a moment or ask staff for help"),
    ),
    Reason.NIK_LIST_UNAVAILABLE: _m(
        "CEK NIK TIDAK TERSEDIA", "ID NUMBER CHECK UNAVAILABLE", _ASK_STAFF
    ),
    Reason.NIK_STAFF_CHECK: _m(
        "TUNGGU PETUGAS",
        "PLEASE WAIT FOR STAFF",
        ("Tunjukkan KTP Anda kepada petugas", "Show your KTP (ID card) to the staff"),
    ),
    Reason.NIK_STAFF_REFUSED: _m("KTP TIDAK DITERIMA", "ID CARD NOT ACCEPTED", _ASK_STAFF),
    Reason.INTERNAL_ERROR: _m(
        "TERJADI KESALAHAN",
        "SOMETHING WENT WRONG",
        ("Coba lagi atau minta bantuan petugas", "Try again or ask staff for help"),
    ),
    Reason.CLOCK_UNTRUSTED: _m(
        "JAM GERBANG BELUM SINKRON",
        "GATE CLOCK NOT SYNCHRONISED",
        ("Silakan minta bantuan petugas", "Please ask staff for help"),
    ),
}

_missing = set(Reason) - set(_MESSAGES)
if _missing:  # pragma: no cover - a programming error caught by the first import
    raise RuntimeError(f"no screen text for reasons: {sorted(_missing)}")

MESSAGES = MappingProxyType(_MESSAGES)
"""Read-only view of every reason's message."""

_CERT_TYPE_LABELS: dict[CertType, tuple[str, str]] = {
    CertType.VACCINATION: ("Sertifikat vaksinasi", "Vaccination certificate"),
    CertType.TEST: ("Hasil tes", "Test result"),
    CertType.RECOVERY: ("Sertifikat kesembuhan", "Recovery certificate"),
}
_NIK_LABEL = ("NIK terdaftar", "Registered ID number (NIK)")


# Typed-NIK refusals that concern the holder, not the input: one screen for all
# of them (the anti-passback one would tell a NIK's knower that its holder is inside).
_NIK_HOLDER_REASONS = frozenset({Reason.NIK_NOT_LISTED, Reason.ALREADY_ADMITTED})


def message_for(reason: Reason, input: InputKind = InputKind.QR) -> Message:
    """The bilingual traveller message for ``reason``; every :class:`Reason` has one.

    For a typed NIK (``input`` NIK) the refusals about its holder --
    not listed, or already admitted within the anti-passback window -- share
    the not-listed screen.  A QR holder already holds the certificate, so the
    QR screen keeps saying "already used".
    """
    if input is InputKind.NIK and reason in _NIK_HOLDER_REASONS:
        return _MESSAGES[Reason.NIK_NOT_LISTED]
    return _MESSAGES[reason]


def credential_label(cert_type: CertType | None, input: InputKind) -> tuple[str, str] | None:
    """What the traveller showed, as ``(indonesian, english)``; None when unknown.

    A certificate type wins; a KTP/NIK entry without one is labelled as such.
    """
    if cert_type is not None:
        return _CERT_TYPE_LABELS[cert_type]
    if input is InputKind.NIK:
        return _NIK_LABEL
    return None
