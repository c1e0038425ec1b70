"""``kiosk rules check`` driven as a user would: real files, real argv, stdout lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kiosk.cli import main
from kiosk.verify.issuer import sample_test, sample_vaccination
from tests.certlogic.suites import evaluation_assertions, shared_dir, validation_cases
from tests.certlogic.test_rules import EXAMPLE_RULES, make_rule
from tests.conftest import REPO_ROOT


def _write(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def _check(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, list[Any], str]:
    status = main(["rules", "check", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


def test_example_rules_on_three_payloads(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    invented = sample_vaccination()
    invented["v"][0]["mp"] = "NOT-A-VACCINE"
    payloads = _write(tmp_path / "p.json", [sample_vaccination(), sample_test(), invented])
    status, lines, err = _check(
        capsys, EXAMPLE_RULES, payloads, "--at", "2021-06-20T12:00:00Z",
        "--valuesets", shared_dir("valuesets"), "--country", "ID",
        "--iat", "2021-06-02T00:00:00+00:00", "--exp", "2022-06-01T00:00:00Z")
    assert status == 0, err
    assert len(lines) == 3 and all(len(line) == 20 for line in lines)
    assert list(lines[0]) == [rule["Identifier"] for rule in json.loads(EXAMPLE_RULES.read_text())]
    assert all(v is True for k, v in lines[0].items() if k[0] in "GV")
    assert all(v is None for k, v in lines[0].items() if k[0] in "TR")
    assert lines[1]["TR-ID-0001"] is True and lines[1]["VR-ID-0003"] is None
    assert lines[1]["TR-ID-0003"] is False  # sampled 2021-06-01: more than 48 h before --at
    assert {k for k, v in lines[2].items() if v is False} == {"VR-ID-0003", "VR-ID-0005"}


def test_without_value_sets_value_set_rules_fail(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    payloads = _write(tmp_path / "p.json", sample_vaccination())  # one object: one line
    status, lines, _ = _check(capsys, EXAMPLE_RULES, payloads, "--at", "2021-06-20T12:00")
    assert status == 0 and len(lines) == 1
    assert lines[0]["VR-ID-0003"] is False and lines[0]["VR-ID-0005"] is True
    assert lines[0]["GR-ID-0002"] is True  # no --exp: the rule's guard lets it pass


def test_at_outside_validity_and_versions(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rules = _write(tmp_path / "r.json", [
        make_rule(Version="1.0.0", Logic=True),
        make_rule(Version="2.0.0", Logic=False, ValidFrom="2022-01-01T00:00:00Z")])
    payloads = _write(tmp_path / "p.json", [sample_vaccination()])
    for at, expected in (("2021-05-01T00:00:00Z", None), ("2021-12-31T23:59:59Z", True),
                         ("2022-01-01T00:00:00Z", False), ("2031-01-01T00:00:00Z", None)):
        status, lines, _ = _check(capsys, rules, payloads, "--at", at)
        assert status == 0 and lines == [{"VR-ID-0001": expected}], at


@pytest.mark.parametrize(("expr", "issues"),
                         [pytest.param(e, i, id=case_id) for case_id, e, i in validation_cases()])
def test_validation_suite_through_the_cli(expr: Any, issues: list[str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rules = _write(tmp_path / "r.json", make_rule(Logic=expr))
    payloads = _write(tmp_path / "p.json", sample_vaccination())
    status, lines, err = _check(capsys, rules, payloads, "--at", "2021-06-20T12:00:00Z")
    if issues:
        assert status == 2 and lines == []
        assert f"rule #1 (VR-ID-0001): Logic: {issues[0]}" in err
    else:
        assert status == 0 and lines == [{"VR-ID-0001": expr is True}]


CLOCKED = [(case_id, expr, assertion) for case_id, expr, assertion, skipped
           in evaluation_assertions()
           if not skipped and isinstance(assertion["data"], dict)
           and set(assertion["data"]) == {"payload", "external"}
           and set(assertion["data"]["external"]) == {"validationClock"}]


@pytest.mark.parametrize(("expr", "assertion"),
                         [pytest.param(e, a, id=case_id) for case_id, e, a in CLOCKED])
def test_evaluation_suite_cases_with_a_clock_through_the_cli(
        expr: Any, assertion: dict[str, Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    rules = _write(tmp_path / "r.json", make_rule(Logic=expr, CertificateType="General",
                                                  ValidFrom="2000-01-01T00:00:00Z"))
    payloads = _write(tmp_path / "p.json", assertion["data"]["payload"])
    clock = assertion["data"]["external"]["validationClock"]
    status, lines, _ = _check(capsys, rules, payloads, "--at", clock)
    assert status == 0 and lines == [{"VR-ID-0001": assertion["expected"] is True}]


def test_suite_cases_with_a_clock_exist() -> None:
    shared_dir("certlogic")
    assert len(CLOCKED) >= 25


@pytest.mark.parametrize(("content", "message"), [
    (b"{" * 200_000, "not JSON"),
    (b'{"a": NaN}', "not JSON"),
    (b"\xff\xfe", "not JSON"),
])
def test_hostile_rule_files_are_refused(content: bytes, message: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.json").write_bytes(content)
    payloads = _write(tmp_path / "p.json", sample_vaccination())
    status, lines, err = _check(capsys, tmp_path / "r.json", payloads, "--at", "2021-06-20")
    assert status == 2 and lines == [] and message in err and "r.json" in err
    assert len(err) < 300


def test_size_bounds_and_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = _write(tmp_path / "r.json", make_rule())
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"{}," * (6 << 20) + b"{}]")
    status, _, err = _check(capsys, rules, big, "--at", "2021-06-20")
    assert status == 2 and "larger than" in err
    numbers = _write(tmp_path / "p.json", [1, 2])
    status, _, err = _check(capsys, rules, numbers, "--at", "2021-06-20")
    assert status == 2 and "expected one payload object" in err
    status, _, err = _check(capsys, rules, tmp_path / "missing.json", "--at", "2021-06-20")
    assert status == 2 and "missing.json" in err


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    rules = _write(tmp_path / "r.json", make_rule())
    for argv in (["--at", "yesterday"], ["--at", "2021-06-20", "--country", "idn"], []):
        with pytest.raises(SystemExit) as caught:
            main(["rules", "check", str(rules), str(rules), *argv])
        assert caught.value.code == 2


def test_console_entry_point(tmp_path: Path) -> None:
    payloads = _write(tmp_path / "p.json", [sample_vaccination(), sample_test()])
    result = subprocess.run(
        [sys.executable, "-m", "kiosk", "rules", "check", str(EXAMPLE_RULES), str(payloads),
         "--at", "2021-06-20T12:00:00Z", "--valuesets", str(shared_dir("valuesets"))],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["VR-ID-0001"] for line in lines] == [True, None]
