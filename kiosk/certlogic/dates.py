"""CertLogic date-times: parsing, ``plusTime`` offsets and ``dccDateOfBirth``.

A date-time is an :class:`Instant`: whole milliseconds since 1970-01-01T00:00Z,
as a JavaScript ``Date`` holds it, so that ``plusTime`` can follow the
specification's reference semantics exactly (``setUTCMonth`` and friends: a
day past the end of the month rolls over, 2020-02-29 plus one year is
2021-03-01). Calendar arithmetic is done on plain integers (proleptic
Gregorian, any year), never through :mod:`datetime`, whose range (years
1..9999) is narrower than JavaScript's and would raise on hostile amounts.
Results outside JavaScript's range (±8.64e15 ms) are errors, where JavaScript
would make an "Invalid Date".
"""

from __future__ import annotations

import re
from functools import lru_cache

from kiosk.errors import KioskError

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
# ECMAScript's time value range: 100,000,000 days either side of the epoch.
MAX_TIME_MS = 8_640_000_000_000_000
TIME_UNITS = ("year", "month", "day", "hour")
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# [0-9], not \d: \d also matches other scripts' digits, which no date here may use.
_YEAR = re.compile(r"([0-9]{4})")
_YEAR_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|([+-])([0-9]{1,2})(?::?([0-9]{2}))?)?"
)
# Longest accepted text: a date-time with a fraction; a little slack for long fractions.
MAX_DATE_TEXT = 64


class CertLogicError(KioskError, ValueError):
    """A CertLogic expression is invalid, or its evaluation failed.

    Evaluating a rule that raises this counts as a failed rule. Messages never
    quote data values (which may be personal data), only the expression's shape.
    """


class Instant:
    """A CertLogic date-time: integer milliseconds since the Unix epoch, UTC."""

    __slots__ = ("ms",)

    def __init__(self, ms: int) -> None:
        """Wrap ``ms``; raises :class:`CertLogicError` outside JavaScript's date range."""
        if not -MAX_TIME_MS <= ms <= MAX_TIME_MS:
            raise CertLogicError("date-time out of range")
        self.ms = ms

    def __eq__(self, other: object) -> bool:
        return type(other) is Instant and other.ms == self.ms

    def __hash__(self) -> int:
        return hash(self.ms)

    def __repr__(self) -> str:
        return f"Instant({self.isoformat()!r})"

    def isoformat(self) -> str:
        """``YYYY-MM-DDThh:mm:ss.sssZ``, as JavaScript's ``toISOString`` (4-digit years)."""
        days, ms = divmod(self.ms, MS_PER_DAY)
        year, month, day = civil_from_days(days)
        seconds, millis = divmod(ms, 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return (f"{year:04d}-{month:02d}-{day:02d}"
                f"T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z")


def is_leap(year: int) -> bool:
    """Gregorian leap year."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    """Days of ``month`` (1..12) in ``year``."""
    return 29 if month == 2 and is_leap(year) else _DAYS_IN_MONTH[month - 1]


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date; ``day`` may overflow the month.

    Overflowing days roll into the following months, as ECMAScript's MakeDay does.
    """
    # H. Hinnant's days_from_civil, exact for every integer year.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468 + (day - 1)


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of ``days`` since 1970-01-01."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _checked_date(year: int, month: int, day: int) -> int:
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month(year, month):
        raise CertLogicError("not a valid calendar date")
    return days_from_civil(year, month, day)


@lru_cache(maxsize=1024)
def parse_date_time(text: str) -> Instant:
    """An :class:`Instant` from one of the date(-time) formats ``plusTime`` accepts.

    ``YYYY`` and ``YYYY-MM`` are partial dates read as ``dccDateOfBirth`` reads
    them (the last day they can mean); a missing time is midnight, a missing
    offset is ``Z``; fractions are truncated to milliseconds. Dates that do not
    exist (2021-02-30) and times past 23:59:59 are errors: the specification
    leaves them undefined. Cached: every rule of a scan reads the same clock.
    """
    if len(text) > MAX_DATE_TEXT:
        raise CertLogicError("date-time text too long")
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        return Instant(_date_days(text) * MS_PER_DAY)
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if hour > 23 or minute > 59 or second > 59:
        raise CertLogicError("not a valid time of day")
    fraction = match.group(7) or ""
    millis = int((fraction + "000")[:3])
    offset_min = 0
    if match.group(9):
        offset_h, offset_m = int(match.group(10)), int(match.group(11) or 0)
        if offset_h > 23 or offset_m > 59:
            raise CertLogicError("not a valid time-zone offset")
        offset_min = (offset_h * 60 + offset_m) * (1 if match.group(9) == "+" else -1)
    days = _checked_date(year, month, day)
    ms = days * MS_PER_DAY + ((hour * 60 + minute - offset_min) * 60 + second) * 1000 + millis
    return Instant(ms)


def _date_days(text: str) -> int:
    """Days of a date or partial date (its last day); raises on any other text."""
    if match := _DATE.fullmatch(text):
        return _checked_date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    if match := _YEAR_MONTH.fullmatch(text):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise CertLogicError("not a valid calendar date")
        return days_from_civil(year, month, days_in_month(year, month))
    if match := _YEAR.fullmatch(text):
        return days_from_civil(int(match.group(1)), 12, 31)
    raise CertLogicError("not an allowed date or date-time format")


def date_of_birth(text: str) -> Instant:
    """``dccDateOfBirth``: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` as its last possible day."""
    if len(text) > 10:
        raise CertLogicError("not a DCC date of birth")
    return Instant(_date_days(text) * MS_PER_DAY)


def plus_time(instant: Instant, amount: int, unit: str) -> Instant:
    """``instant`` offset by ``amount`` ``unit`` s with ECMAScript ``setUTC*`` semantics."""
    if unit == "hour":
        return Instant(instant.ms + amount * MS_PER_HOUR)
    if unit == "day":
        return Instant(instant.ms + amount * MS_PER_DAY)
    if abs(amount) > 400_000_000:  # beyond the date range whatever the start
        raise CertLogicError("date-time out of range")
    days, time_ms = divmod(instant.ms, MS_PER_DAY)
    year, month, day = civil_from_days(days)
    if unit == "year":
        year += amount
    elif unit == "month":
        year, month0 = divmod(year * 12 + month - 1 + amount, 12)
        month = month0 + 1
    else:
        raise CertLogicError("unknown time unit")
    return Instant(days_from_civil(year, month, day) * MS_PER_DAY + time_ms)
