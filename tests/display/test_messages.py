"""Every reason has bilingual texts; the fixed texts say what the brief says."""

from __future__ import annotations

import pytest

from kiosk.decision import CertType, InputKind, Reason
from kiosk.display import IDLE, Message, message_for
from kiosk.display.messages import MESSAGES, credential_label


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_both_languages(reason: Reason) -> None:
    msg = message_for(reason)
    assert isinstance(msg, Message)
    for text in (msg.title_id, msg.title_en, msg.hint_id, msg.hint_en):
        assert text.strip() == text
        assert text
    assert msg.title_id == msg.title_id.upper()  # titles are capitals, read from afar
    assert msg.title_en == msg.title_en.upper()
    assert msg.title_id != msg.title_en  # actually translated
    assert msg.hint_id != msg.hint_en


def test_table_is_complete_and_read_only() -> None:
    assert set(MESSAGES) == set(Reason)
    with pytest.raises(TypeError):
        MESSAGES[Reason.OK] = IDLE  # type: ignore[index]


def test_allowed_and_idle_texts() -> None:
    ok = message_for(Reason.OK)
    assert (ok.title_id, ok.title_en) == ("SILAKAN MASUK", "PLEASE ENTER")
    assert IDLE.title_id == "Pindai kode QR sertifikat Anda"
    assert IDLE.title_en == "Scan your certificate QR code"
    assert IDLE.hint_id
    assert IDLE.hint_en


def test_denied_reasons_do_not_reuse_the_allowed_title() -> None:
    for reason in Reason:
        if reason is not Reason.OK:
            assert message_for(reason).title_id != "SILAKAN MASUK"


def test_positive_test_is_not_announced_to_the_queue() -> None:
    msg = message_for(Reason.TEST_POSITIVE)
    assert "POSITI" not in msg.title_id + msg.title_en


@pytest.mark.parametrize("cert_type", list(CertType))
def test_credential_labels(cert_type: CertType) -> None:
    label = credential_label(cert_type, InputKind.QR)
    assert label is not None
    assert all(label)
    assert label[0] != label[1]


def test_credential_label_for_nik_and_unknown() -> None:
    assert credential_label(None, InputKind.NIK) is not None
    assert credential_label(None, InputKind.QR) is None
