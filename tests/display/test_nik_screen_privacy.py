"""A typed NIK's screen does not tell whether its holder has just entered (issue 10)."""

from __future__ import annotations

from kiosk.decision import CertType, Decision, InputKind, Reason
from kiosk.display.messages import message_for
from kiosk.display.render import decision_view


def _texts(decision: Decision) -> list[str]:
    view = decision_view(decision)
    return [block.text for block in (*view.banner, *view.body)]


def test_typed_nik_already_admitted_looks_like_not_listed() -> None:
    inside = Decision(allowed=False, reason=Reason.ALREADY_ADMITTED, input=InputKind.NIK,
                      detail="anti-passback window")
    unknown = Decision.deny(Reason.NIK_NOT_LISTED, "list v3", InputKind.NIK)
    assert decision_view(inside) == decision_view(unknown)
    texts = " ".join(_texts(inside))
    assert "SUDAH DIPAKAI" not in texts and "ALREADY" not in texts
    assert "NOT ACCEPTED" in texts
    # The decision itself (what staff, logs and counts see) keeps the reason.
    assert inside.reason is Reason.ALREADY_ADMITTED


def test_qr_already_admitted_still_says_so() -> None:
    qr = Decision(allowed=False, reason=Reason.ALREADY_ADMITTED, input=InputKind.QR,
                  cert_type=CertType.VACCINATION)
    assert "ALREADY USED TO ENTER" in _texts(qr)


def test_other_nik_reasons_keep_their_own_texts() -> None:
    for reason in (Reason.NIK_INVALID, Reason.NIK_RATE_LIMITED, Reason.NIK_LIST_UNAVAILABLE,
                   Reason.NIK_STAFF_CHECK, Reason.NIK_DISABLED):
        assert message_for(reason, InputKind.NIK) == message_for(reason)
