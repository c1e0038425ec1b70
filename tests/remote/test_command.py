"""Signed remote commands: every way a command can be forged or replayed is refused."""

from __future__ import annotations

import os
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.remote.command import (
    COMMAND,
    MAX_COMMAND_BYTES,
    Command,
    CommandRefused,
    Refusal,
    certify_operator,
    check_command,
    encode_command,
    sign_command,
)
from kiosk.remote.replay import AcceptedCommands
from kiosk.signing import sign_document

NOW = 1_800_000_000
AUTHORITY = Ed25519PrivateKey.generate()
OPERATOR = Ed25519PrivateKey.generate()


def certificate(
    key: Ed25519PrivateKey = OPERATOR,
    *,
    authority: Ed25519PrivateKey = AUTHORITY,
    actions: tuple[str, ...] = ("open-once", "reload"),
    sites: tuple[str, ...] = ("mall",),
    not_before: int = NOW - 3600,
    not_after: int = NOW + 3600,
) -> bytes:
    return certify_operator(
        authority,
        key.public_key(),
        name="Ops Desk",
        role="supervisor",
        actions=actions,
        sites=sites,
        not_before=not_before,
        not_after=not_after,
    )


def message(
    *,
    action: str = "open-once",
    site: str = "mall",
    gate: str = "g1",
    issued_at: int = NOW,
    lifetime_s: int = 60,
    key: Ed25519PrivateKey | None = None,
    cert: bytes | None = None,
    command_id: bytes | None = None,
) -> bytes:
    signer = key or OPERATOR
    command = sign_command(
        signer,
        action=action,
        site=site,
        gate=gate,
        issued_at=issued_at,
        lifetime_s=lifetime_s,
        command_id=command_id,
    )
    return encode_command(cert if cert is not None else certificate(), command)


def check(blob: bytes, *, now: float = NOW, retained: bool = False, gate: str = "g1") -> Command:
    return check_command(
        blob,
        authorities=[AUTHORITY.public_key()],
        site="mall",
        gate=gate,
        now=now,
        retained=retained,
    )


def refusal(blob: bytes, **kwargs: object) -> Refusal:
    with pytest.raises(CommandRefused) as caught:
        check(blob, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_a_valid_command_is_accepted_with_its_operator() -> None:
    command = check(message())
    assert command.action == "open-once"
    assert (command.site, command.gate) == ("mall", "g1")
    assert command.operator.role == "supervisor"
    assert len(command.id_hex) == 32


def test_unsigned_and_garbage_messages_are_malformed() -> None:
    assert refusal(b"") is Refusal.MALFORMED
    assert refusal(b"open-once") is Refusal.MALFORMED
    assert refusal(cbor2.dumps({"action": "open-once", "gate": "g1"})) is Refusal.MALFORMED
    assert refusal(cbor2.dumps([b"x", b"y"]) + b"\x00") is Refusal.MALFORMED


def test_operator_certified_by_another_authority_is_untrusted() -> None:
    rogue = Ed25519PrivateKey.generate()
    assert refusal(message(cert=certificate(authority=rogue))) is Refusal.OPERATOR_UNTRUSTED


def test_a_command_signed_by_a_key_other_than_the_certified_one_is_refused() -> None:
    thief = Ed25519PrivateKey.generate()
    assert refusal(message(key=thief)) is Refusal.BAD_SIGNATURE


def test_a_certificate_replayed_as_a_command_is_refused() -> None:
    cert = certificate()
    # Same signer, wrong content type: the content type is inside the signature.
    assert refusal(encode_command(cert, cert)) is Refusal.BAD_SIGNATURE


def test_a_tampered_command_fails_its_signature() -> None:
    blob = bytearray(message())
    blob[-70] ^= 0x01
    assert refusal(bytes(blob)) in (Refusal.BAD_SIGNATURE, Refusal.MALFORMED)


def test_expired_and_future_commands_are_refused() -> None:
    assert refusal(message(issued_at=NOW - 120, lifetime_s=60)) is Refusal.EXPIRED
    assert refusal(message(issued_at=NOW + 600)) is Refusal.NOT_YET_VALID


def test_an_operator_certificate_outside_its_validity_is_refused() -> None:
    expired = certificate(not_before=NOW - 7200, not_after=NOW - 3600)
    assert refusal(message(cert=expired)) is Refusal.OPERATOR_NOT_VALID


def test_a_lifetime_longer_than_five_minutes_is_refused() -> None:
    command = cbor2.dumps(
        {
            "v": 1,
            "id": os.urandom(16),
            "action": "open-once",
            "site": "mall",
            "gate": "g1",
            "iat": NOW,
            "exp": NOW + 3600,
        }
    )
    blob = encode_command(certificate(), sign_document(command, OPERATOR, content_type=COMMAND))
    assert refusal(blob) is Refusal.LIFETIME_TOO_LONG


def test_other_gate_retained_uncertified_action_and_site_are_refused() -> None:
    assert refusal(message(gate="g2")) is Refusal.OTHER_GATE
    assert refusal(message(), retained=True) is Refusal.RETAINED
    assert refusal(message(action="emergency-on")) is Refusal.ACTION_NOT_ALLOWED
    assert refusal(message(site="port", cert=certificate())) in (
        Refusal.OTHER_GATE,
        Refusal.SITE_NOT_ALLOWED,
    )
    other_site_cert = certificate(sites=("port",))
    assert refusal(message(cert=other_site_cert)) is Refusal.SITE_NOT_ALLOWED
    assert check(message(cert=certificate(sites=("*",)))).action == "open-once"


def test_an_oversized_message_is_refused_before_parsing() -> None:
    assert refusal(b"\x82" + b"\x00" * MAX_COMMAND_BYTES) is Refusal.TOO_LARGE


def test_replays_are_refused_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "commands.json"
    command = check(message())
    memory = AcceptedCommands(path, now=NOW)
    memory.accept(command, now=NOW)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(CommandRefused) as again:
        AcceptedCommands(path, now=NOW + 1).accept(command, now=NOW + 1)
    assert again.value.reason is Refusal.REPLAYED


def test_a_command_issued_well_before_the_newest_accepted_is_superseded(tmp_path: Path) -> None:
    memory = AcceptedCommands(tmp_path / "commands.json", now=NOW)
    memory.accept(check(message(issued_at=NOW)), now=NOW)
    older = check(message(issued_at=NOW - 100, lifetime_s=300), now=NOW)
    with pytest.raises(CommandRefused) as caught:
        memory.accept(older, now=NOW)
    assert caught.value.reason is Refusal.SUPERSEDED
    # Within the skew, two operators' commands may arrive out of order.
    memory.accept(check(message(issued_at=NOW - 10)), now=NOW)


def test_expired_ids_are_forgotten(tmp_path: Path) -> None:
    memory = AcceptedCommands(tmp_path / "commands.json", now=NOW)
    memory.accept(check(message(issued_at=NOW, lifetime_s=30)), now=NOW)
    memory.accept(check(message(issued_at=NOW + 40), now=NOW + 40), now=NOW + 40)
    assert len(memory) == 1


def test_a_lost_memory_accepts_only_commands_issued_after_start(tmp_path: Path) -> None:
    path = tmp_path / "commands.json"
    path.write_text("{torn")
    memory = AcceptedCommands(path, now=NOW)
    with pytest.raises(CommandRefused) as caught:
        memory.accept(check(message(issued_at=NOW - 5), now=NOW), now=NOW)
    assert caught.value.reason is Refusal.SUPERSEDED
    memory.accept(check(message(issued_at=NOW + 1), now=NOW + 1), now=NOW + 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_never_crash(blob: bytes) -> None:
    with pytest.raises(CommandRefused):
        check(blob)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=4))
def test_any_byte_flip_of_a_valid_command_is_refused_or_identical(
    position: int, xor: bytes
) -> None:
    blob = bytearray(message(command_id=b"\x01" * 16))
    index = position % len(blob)
    flipped = blob[index] ^ (xor[0] or 1)
    blob[index] = flipped
    try:
        command = check(bytes(blob))
    except CommandRefused:
        return
    # A flip that still verifies can only be in an unsigned part (the unprotected header).
    assert command.id == b"\x01" * 16 and command.action == "open-once"
