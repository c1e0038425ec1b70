"""NIK structure validation at every boundary, plus properties."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.nik.validate import PROVINCES, NikProblem, Sex, validate_nik
from tests.nik.conftest import TODAY


def nik(dd: str = "01", mm: str = "01", yy: str = "90", serial: str = "0001") -> str:
    return f"317101{dd}{mm}{yy}{serial}"


def problem(text: str, today: date = TODAY) -> NikProblem | None:
    return validate_nik(text, today).problem


def test_a_valid_nik_decodes() -> None:
    verdict = validate_nik("3171014506990001", TODAY)
    assert verdict.valid and verdict.info is not None
    assert verdict.info.province_code == "31"
    assert verdict.info.province_name == "DKI Jakarta"
    assert verdict.info.sex is Sex.FEMALE
    assert verdict.info.birth_date == date(1999, 6, 5)
    assert verdict.to_json() == {
        "valid": True,
        "reason": None,
        "province": {"code": "31", "name": "DKI Jakarta"},
        "regency_code": "71",
        "district_code": "01",
        "sex": "female",
        "birth_date": "1999-06-05",
    }


def test_province_set_is_the_38_kemendagri_codes() -> None:
    expected = (
        [str(c) for c in range(11, 20)]
        + ["21"]
        + [str(c) for c in range(31, 37)]
        + ["51", "52", "53"]
        + [str(c) for c in range(61, 66)]
        + [str(c) for c in range(71, 77)]
        + ["81", "82"]
        + [str(c) for c in range(91, 97)]
    )
    assert sorted(PROVINCES) == expected
    assert len(PROVINCES) == 38
    assert PROVINCES["93"] == "Papua Selatan"
    assert PROVINCES["96"] == "Papua Barat Daya"


@pytest.mark.parametrize("code", sorted(PROVINCES))
def test_every_province_is_accepted(code: str) -> None:
    verdict = validate_nik(code + nik()[2:], TODAY)
    assert verdict.info is not None
    assert verdict.info.province_name == PROVINCES[code]


@pytest.mark.parametrize("code", ["00", "10", "20", "22", "30", "37", "54", "83", "90", "97", "99"])
def test_bad_province(code: str) -> None:
    assert problem(code + nik()[2:]) is NikProblem.PROVINCE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3100010101900001", NikProblem.REGENCY),
        ("3171000101900001", NikProblem.DISTRICT),
        (nik(serial="0000"), NikProblem.SERIAL),
        (nik(serial="0001"), None),
        (nik(serial="9999"), None),
    ],
)
def test_zero_regency_district_serial(text: str, expected: NikProblem | None) -> None:
    assert problem(text) is expected


@pytest.mark.parametrize(
    ("dd", "mm", "yy", "expected"),
    [
        ("01", "01", "90", date(1990, 1, 1)),
        ("31", "01", "90", date(1990, 1, 31)),
        ("32", "01", "90", None),
        ("40", "01", "90", None),
        ("41", "01", "90", date(1990, 1, 1)),  # woman: day + 40
        ("71", "01", "90", date(1990, 1, 31)),
        ("72", "01", "90", None),
        ("00", "01", "90", None),
        ("99", "01", "90", None),
        ("01", "00", "90", None),
        ("01", "13", "90", None),
        ("31", "04", "90", None),  # 31 April
        ("71", "04", "90", None),
        ("30", "04", "90", date(1990, 4, 30)),
        ("29", "02", "00", date(2000, 2, 29)),  # 2000 is a leap year
        ("69", "02", "00", date(2000, 2, 29)),
        ("29", "02", "24", date(2024, 2, 29)),
        ("29", "02", "23", None),
        ("69", "02", "23", None),
        ("29", "02", "96", date(1996, 2, 29)),
        ("29", "02", "97", None),
        ("28", "02", "97", date(1997, 2, 28)),
    ],
)
def test_birth_date_boundaries(dd: str, mm: str, yy: str, expected: date | None) -> None:
    verdict = validate_nik(nik(dd, mm, yy), TODAY)
    if expected is None:
        assert verdict.problem is NikProblem.BIRTH_DATE
    else:
        assert verdict.info is not None
        assert verdict.info.birth_date == expected
        assert verdict.info.sex is (Sex.FEMALE if int(dd) > 40 else Sex.MALE)


def test_two_digit_year_is_relative_to_the_validation_date() -> None:
    # Today (2026-11-26) and earlier this year: 2026. Tomorrow's date: 1926.
    assert validate_nik(nik("26", "11", "26"), TODAY).info.birth_date == date(2026, 11, 26)  # type: ignore[union-attr]
    assert validate_nik(nik("27", "11", "26"), TODAY).info.birth_date == date(1926, 11, 27)  # type: ignore[union-attr]
    assert validate_nik(nik("01", "01", "27"), TODAY).info.birth_date == date(1927, 1, 1)  # type: ignore[union-attr]
    # The same NIK validated a year later is a 2027 baby.
    later = TODAY + timedelta(days=366)
    assert validate_nik(nik("01", "01", "27"), later).info.birth_date == date(2027, 1, 1)  # type: ignore[union-attr]


def test_29_february_of_a_future_leap_year_falls_back_a_century() -> None:
    # 29-02-28: 2028 is in the future and 1928 was a leap year.
    assert validate_nik(nik("29", "02", "28"), TODAY).info.birth_date == date(1928, 2, 29)  # type: ignore[union-attr]
    # 29-02-00 validated in 1999 would be 1900, which was not a leap year.
    assert problem(nik("29", "02", "00"), date(1999, 6, 1)) is NikProblem.BIRTH_DATE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", NikProblem.LENGTH),
        ("317101010190000", NikProblem.LENGTH),  # 15
        ("31710101019000011", NikProblem.LENGTH),  # 17
        (" 317101010190001", NikProblem.NOT_DIGITS),
        ("317101010190000a", NikProblem.NOT_DIGITS),
        ("3171-01010190001", NikProblem.NOT_DIGITS),
        ("３171010101900001", NikProblem.NOT_DIGITS),  # fullwidth 3
        ("٣١٧١٠١٠١٠١٩٠٠٠٠١", NikProblem.NOT_DIGITS),  # Arabic-Indic digits
        ("۳۱۷۱۰۱۰۱۰۱۹۰۰۰۰۱", NikProblem.NOT_DIGITS),  # Extended Arabic-Indic
        ("३१७१०१०१०१९००००१", NikProblem.NOT_DIGITS),  # Devanagari
        ("31710101019000¹1", NikProblem.NOT_DIGITS),  # superscript one: isdigit() is True
        ("+317101010190001", NikProblem.NOT_DIGITS),
        ("3171010101900001\n"[:16], None),
    ],
)
def test_length_and_characters(text: str, expected: NikProblem | None) -> None:
    assert problem(text) is expected


@given(st.text(max_size=40))
def test_never_raises(text: str) -> None:
    verdict = validate_nik(text, TODAY)
    assert verdict.valid == (verdict.problem is None)
    if verdict.valid:
        assert text.isascii() and text.isdigit() and len(text) == 16


@st.composite
def valid_niks(draw: st.DrawFn) -> tuple[str, str, Sex, date]:
    province = draw(st.sampled_from(sorted(PROVINCES)))
    regency = draw(st.integers(1, 99))
    district = draw(st.integers(1, 99))
    # Within the last 100 years the two-digit year is unambiguous.
    born = draw(
        st.dates(min_value=TODAY.replace(year=TODAY.year - 100) + timedelta(1), max_value=TODAY)
    )
    sex = draw(st.sampled_from(Sex))
    serial = draw(st.integers(1, 9999))
    day = born.day + (40 if sex is Sex.FEMALE else 0)
    text = (
        f"{province}{regency:02d}{district:02d}{day:02d}{born.month:02d}{born.year % 100:02d}"
        f"{serial:04d}"
    )
    return text, province, sex, born


@given(valid_niks())
def test_valid_niks_round_trip(case: tuple[str, str, Sex, date]) -> None:
    text, province, sex, born = case
    verdict = validate_nik(text, TODAY)
    assert verdict.info is not None, verdict.problem
    assert verdict.info.province_code == province
    assert verdict.info.sex is sex
    assert verdict.info.birth_date == born
    assert verdict.info.serial == text[12:]
