"""The EU DCC conformance runner: clock parsing, output contract, and the real suite."""

from __future__ import annotations

import base64
import io
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.conformance import evaluate_case, find_cases, main, run
from kiosk.verify import base45
from kiosk.verify.casecheck import parse_clock
from kiosk.verify.issuer import sample_test
from tests.conftest import SHARED_DCC, shared_dcc_suite

from .conftest import IAT, NOW, Signer, issue

SUITE = SHARED_DCC
DISAGREEMENTS = Path(__file__).with_name("conformance_disagreements.txt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2021-05-03T18:00:00Z", datetime(2021, 5, 3, 18, tzinfo=UTC)),
     ("2021-05-03T20:00:00+02:00", datetime(2021, 5, 3, 18, tzinfo=UTC)),
     ("2021-05-03T20:00:00+0200", datetime(2021, 5, 3, 18, tzinfo=UTC)),
     ("2021-05-03T18:00:00", datetime(2021, 5, 3, 18, tzinfo=UTC)),
     ("2021-06-08T20:17:27.9906293Z", datetime(2021, 6, 8, 20, 17, 27, 990629, tzinfo=UTC)),
     ("2021-06-16T15:33:59.7342+0000", datetime(2021, 6, 16, 15, 33, 59, 734200, tzinfo=UTC)),
     ("2021-05-30T13:38:49.", datetime(2021, 5, 30, 13, 38, 49, tzinfo=UTC))],
)
def test_parse_clock(text: str, expected: datetime) -> None:
    assert parse_clock(text) == expected


def test_parse_clock_rejects_junk() -> None:
    with pytest.raises(ValueError):
        parse_clock("yesterday")


def _write_case(folder: Path, name: str, signer: Signer, flags: dict[str, bool]) -> Path:
    qr = issue(signer, sample_test())
    compressed = base45.decode(qr[4:])
    case = {
        "PREFIX": qr, "BASE45": qr[4:], "COMPRESSED": compressed.hex(),
        "COSE": zlib.decompress(compressed).hex(),
        "TESTCTX": {"CERTIFICATE": base64.b64encode(signer[1]).decode(),
                    "VALIDATIONCLOCK": NOW.isoformat()},
        "EXPECTEDRESULTS": flags,
    }
    raw = folder / "XX" / "2DCode" / "Raw"
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / name
    path.write_text(json.dumps(case))
    return path


def test_runner_output_contract(tmp_path: Path, ec_signer: Signer) -> None:
    _write_case(tmp_path, "good.json", ec_signer, {"EXPECTEDUNPREFIX": True,
                                                   "EXPECTEDB45DECODE": True})
    bad = _write_case(tmp_path, "bad.json", ec_signer, {"EXPECTEDUNPREFIX": False,
                                                        "EXPECTEDVALIDOBJECT": True})
    (tmp_path / "XX" / "README.json").write_text("{}")  # not in a raw folder: ignored
    out = io.StringIO()
    assert run([tmp_path], out) == 1
    lines = out.getvalue().splitlines()
    assert lines[-1] == "1 passed, 1 failed"
    assert len(lines) == 2 and str(bad) in lines[0] and "EXPECTEDUNPREFIX" in lines[0]


def test_runner_all_pass_and_alias(tmp_path: Path, ec_signer: Signer,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    # The BG misspelling is read as the expiration check it means.
    _write_case(tmp_path, "bg.json", ec_signer, {"EXPTECTEDEXPIRED": True})
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"


def test_expiration_alias_really_checks(tmp_path: Path, ec_signer: Signer) -> None:
    path = _write_case(tmp_path, "bg.json", ec_signer, {"EXPTECTEDEXPIRED": False})
    result = evaluate_case(path)
    assert not result.passed
    assert result.flags[0].flag == "EXPECTEDEXPIRATIONCHECK" and result.flags[0].actual is True
    assert IAT < NOW


def test_missing_folder_is_exit_2(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run([tmp_path / "nope"], out) == 2


def test_public_suite_matches_except_documented_disagreements() -> None:
    shared_dcc_suite()
    expected = {
        line.strip() for line in DISAGREEMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    actual = set()
    passed = 0
    for path in find_cases([SUITE]):
        result = evaluate_case(path)
        passed += result.passed
        for flag in result.flags:
            if not flag.matches:
                rel = path.relative_to(SUITE).as_posix()
                actual.add(f"{rel} {flag.flag} expected={str(flag.expected).lower()}")
    assert actual == expected, (
        f"new mismatches: {sorted(actual - expected)}; fixed: {sorted(expected - actual)}"
    )
    assert passed >= 359
