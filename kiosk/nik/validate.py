"""NIK (Nomor Induk Kependudukan) structure checks, before any lookup.

A NIK is 16 ASCII digits ``PPKKCC DDMMYY SSSS``:

- ``PP`` province, ``KK`` regency/city, ``CC`` district (kecamatan): Kemendagri
  region codes (not the BPS codes, which number Papua differently);
- ``DDMMYY`` birth date, with 40 added to the day for women (``DD`` 41..71);
- ``SSSS`` a serial among people of the same district and birth date, 0001..9999.

There is **no check digit**: a well-formed NIK can still be one nobody holds.
These checks only reject what cannot be a NIK, so a typo is answered with a
specific reason instead of a list lookup (which costs a KDF and a rate-limit token).

Two-digit years: the birth year is ``20YY`` when that date is not after the
validation date, else ``19YY``. A person over 100 years old therefore decodes a
century late; the date is never used to decide entry, only to reject
impossible dates, so that ambiguity is harmless. 29 February is checked in the
century chosen (2000 was a leap year, 1900 was not).

Province codes: the 38 provinces of Kepmendagri No. 100.1.1-6117 Tahun 2022
(kode wilayah), including the 2022 Papua splits (UU 14, 15, 16 and 29 of 2022):
93 Papua Selatan, 94 Papua Tengah, 95 Papua Pegunungan, 96 Papua Barat Daya.
NIKs are issued for life and are not renumbered when a region splits, so 91/92
stay valid for residents of the new provinces. Regency and district codes are
only checked non-zero: the full district table (~7,277 kecamatan) changes
yearly and a stale copy on a gate would reject real people.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

NIK_LENGTH = 16
_ASCII_DIGITS = frozenset("0123456789")

PROVINCES: dict[str, str] = {
    "11": "Aceh",
    "12": "Sumatera Utara",
    "13": "Sumatera Barat",
    "14": "Riau",
    "15": "Jambi",
    "16": "Sumatera Selatan",
    "17": "Bengkulu",
    "18": "Lampung",
    "19": "Kepulauan Bangka Belitung",
    "21": "Kepulauan Riau",
    "31": "DKI Jakarta",
    "32": "Jawa Barat",
    "33": "Jawa Tengah",
    "34": "DI Yogyakarta",
    "35": "Jawa Timur",
    "36": "Banten",
    "51": "Bali",
    "52": "Nusa Tenggara Barat",
    "53": "Nusa Tenggara Timur",
    "61": "Kalimantan Barat",
    "62": "Kalimantan Tengah",
    "63": "Kalimantan Selatan",
    "64": "Kalimantan Timur",
    "65": "Kalimantan Utara",
    "71": "Sulawesi Utara",
    "72": "Sulawesi Tengah",
    "73": "Sulawesi Selatan",
    "74": "Sulawesi Tenggara",
    "75": "Gorontalo",
    "76": "Sulawesi Barat",
    "81": "Maluku",
    "82": "Maluku Utara",
    "91": "Papua",
    "92": "Papua Barat",
    "93": "Papua Selatan",
    "94": "Papua Tengah",
    "95": "Papua Pegunungan",
    "96": "Papua Barat Daya",
}
"""Kemendagri province code → name (38 provinces, 2022)."""

FEMALE_DAY_OFFSET = 40


class NikProblem(enum.StrEnum):
    """Why a text is not a NIK. Stable strings: they go into ``Decision.detail``."""

    LENGTH = "length"  # not exactly 16 characters
    NOT_DIGITS = "not_digits"  # anything but ASCII 0-9 (unicode digits included)
    PROVINCE = "province"  # not one of the 38 province codes
    REGENCY = "regency"  # regency/city code 00
    DISTRICT = "district"  # district code 00
    BIRTH_DATE = "birth_date"  # day/month impossible (incl. 29 Feb of a common year)
    SERIAL = "serial"  # serial 0000


class Sex(enum.StrEnum):
    """Sex as encoded in the NIK's day field."""

    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True, slots=True)
class NikInfo:
    """What a valid NIK encodes. Personal data: show to the technician who typed it only."""

    province_code: str
    province_name: str
    regency_code: str
    district_code: str
    sex: Sex
    birth_date: date
    serial: str


@dataclass(frozen=True, slots=True)
class NikVerdict:
    """Result of :func:`validate_nik`: ``info`` when valid, else ``problem``."""

    info: NikInfo | None = None
    problem: NikProblem | None = None

    @property
    def valid(self) -> bool:
        """True when the text is a well-formed NIK."""
        return self.info is not None

    def to_json(self) -> dict[str, object]:
        """The verdict as printed by ``kiosk nik check`` (contains the decoded birth date)."""
        if self.info is None:
            return {"valid": False, "reason": str(self.problem)}
        info = self.info
        return {
            "valid": True,
            "reason": None,
            "province": {"code": info.province_code, "name": info.province_name},
            "regency_code": info.regency_code,
            "district_code": info.district_code,
            "sex": str(info.sex),
            "birth_date": info.birth_date.isoformat(),
        }


def is_ascii_digits(text: str, length: int | None = None) -> bool:
    """True if ``text`` is only ASCII 0-9 (``str.isdigit`` also accepts '３' and '٣')."""
    return (length is None or len(text) == length) and bool(text) and set(text) <= _ASCII_DIGITS


def validate_nik(text: str, today: date) -> NikVerdict:
    """Check the structure of ``text`` as a NIK, relative to the date ``today``.

    Never raises, whatever the input. Checks run in the order of the
    :class:`NikProblem` members, so each input gets the first problem found.
    """
    if len(text) != NIK_LENGTH:
        return NikVerdict(problem=NikProblem.LENGTH)
    if not is_ascii_digits(text):
        return NikVerdict(problem=NikProblem.NOT_DIGITS)
    province = text[0:2]
    if province not in PROVINCES:
        return NikVerdict(problem=NikProblem.PROVINCE)
    if text[2:4] == "00":
        return NikVerdict(problem=NikProblem.REGENCY)
    if text[4:6] == "00":
        return NikVerdict(problem=NikProblem.DISTRICT)
    born = _birth_date(int(text[6:8]), int(text[8:10]), int(text[10:12]), today)
    if born is None:
        return NikVerdict(problem=NikProblem.BIRTH_DATE)
    if text[12:16] == "0000":
        return NikVerdict(problem=NikProblem.SERIAL)
    female = int(text[6:8]) > FEMALE_DAY_OFFSET
    return NikVerdict(
        info=NikInfo(
            province_code=province,
            province_name=PROVINCES[province],
            regency_code=text[2:4],
            district_code=text[4:6],
            sex=Sex.FEMALE if female else Sex.MALE,
            birth_date=born,
            serial=text[12:16],
        )
    )


def _birth_date(dd: int, mm: int, yy: int, today: date) -> date | None:
    """The birth date of fields DD MM YY, or None when impossible.

    Day 1..31 (men) or 41..71 (women); 32..40, 0 and 72+ are impossible.
    """
    if dd > FEMALE_DAY_OFFSET:
        dd -= FEMALE_DAY_OFFSET
    if not 1 <= dd <= 31 or not 1 <= mm <= 12:
        return None
    for century in (2000, 1900):
        year = century + yy
        try:
            born = date(year, mm, dd)
        except ValueError:
            # Day out of range for the month (or 29 Feb of a common year) in this
            # century. Only the century the rule picks counts: 29-02-00 is 2000.
            if century == 2000 and _pick_2000(yy, mm, dd, today):
                return None
            continue
        if born <= today:
            return born
    return None


def _pick_2000(yy: int, mm: int, dd: int, today: date) -> bool:
    """True if (yy, mm, dd) falls on or before today within the 2000s (by field order)."""
    return (2000 + yy, mm, dd) <= (today.year, today.month, today.day)
