"""Signed remote commands: the wire format and the gate's checks.

A command actuates a gate (``open-once``, ``emergency-on`` ...), so the broker's
credentials are never enough: a compromised broker, a wrong ACL or anyone who
can publish must not open a gate. Each command is therefore signed end to end:

* the **authority** (the same Ed25519 trust root that signs trust bundles and
  NIK lists) certifies an **operator** in a small signed document: name, role,
  the actions the operator may issue, the sites they may act on, the operator's
  own Ed25519 public key and a validity window;
* the operator signs each **command** with that key: one action for one gate,
  a random 16-byte id, an issue time and a short expiry.

On the wire a command is the CBOR array ``[operator_certificate, command]`` of
two :mod:`kiosk.signing` documents (COSE_Sign1, content type inside the
signature, so neither can be replayed as a bundle or the other way round).

The gate checks, in this order and before acting: size, shape, the authority's
signature on the certificate and its validity, the operator's signature on the
command, that the certificate allows the action on this site, that the command
names this gate, its time window (issued not in the future beyond a small skew,
not expired, lifetime at most :data:`MAX_LIFETIME_S`), that its id was never
accepted (:class:`kiosk.remote.replay.AcceptedCommands`, persisted until the id
expires) and that it was not issued before the newest accepted command by more
than the skew. Every refusal names its reason; nothing from the message is
echoed beyond a bounded, validated field.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk import cborsafe
from kiosk.cborsafe import CborError, Limits
from kiosk.config.ids import is_valid_id
from kiosk.errors import DocumentError, KioskError
from kiosk.signing import key_id, sign_document, verify_document

__all__ = [
    "ACTIONS",
    "COMMAND",
    "MAX_COMMAND_BYTES",
    "MAX_LIFETIME_S",
    "OPERATOR_CERTIFICATE",
    "Command",
    "CommandRefused",
    "OperatorCertificate",
    "Refusal",
    "certify_operator",
    "check_command",
    "encode_command",
    "sign_command",
]

OPERATOR_CERTIFICATE = "application/vnd.kiosk.operator-certificate+cbor"
COMMAND = "application/vnd.kiosk.command+cbor"

#: What a gate can be told to do. ``diagnostics`` runs only the non-actuating
#: self-test checks inside the running gate.
ACTIONS = frozenset(
    {"open-once", "emergency-on", "emergency-off", "reload", "restart", "diagnostics"}
)
#: A whole wire message (certificate + command) is a few hundred bytes; 8 KiB
#: leaves room for long operator names without letting a message grow.
MAX_COMMAND_BYTES = 8 * 1024
#: A command is meant for now, not for later: at most five minutes between
#: issue and expiry keeps the replay memory small and a leaked command useless.
MAX_LIFETIME_S = 300
#: Gate clocks and the operator's clock differ a little.
CLOCK_SKEW_S = 30

_TEXT_MAX = 64


class Refusal(enum.StrEnum):
    """Why a gate refused a command (sent in the command's outcome event)."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    RETAINED = "retained"
    OPERATOR_UNTRUSTED = "operator_untrusted"
    OPERATOR_NOT_VALID = "operator_not_valid"
    BAD_SIGNATURE = "bad_signature"
    ACTION_NOT_ALLOWED = "action_not_allowed"
    SITE_NOT_ALLOWED = "site_not_allowed"
    OTHER_GATE = "other_gate"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    REPLAYED = "replayed"
    SUPERSEDED = "superseded"


class CommandRefused(KioskError):
    """A command failed a check; ``reason`` says which, ``detail`` is bounded text."""

    def __init__(self, reason: Refusal, detail: str = "", command_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail
        #: Hex id of the command when it was readable and signed, for the event.
        self.command_id = command_id


@dataclass(frozen=True, slots=True)
class OperatorCertificate:
    """An operator the authority has certified to issue some actions."""

    name: str
    role: str
    actions: frozenset[str]
    sites: frozenset[str]  # {"*"} means every site
    public_key: Ed25519PublicKey
    not_before: int
    not_after: int

    @property
    def key_id(self) -> str:
        """Hex id of the operator's key: what events name instead of the person."""
        return key_id(self.public_key).hex()

    def allows_site(self, site: str) -> bool:
        """Whether this operator may act on gates of ``site``."""
        return "*" in self.sites or site in self.sites


@dataclass(frozen=True, slots=True)
class Command:
    """A verified command for this gate."""

    id: bytes
    action: str
    site: str
    gate: str
    issued_at: int
    expires_at: int
    operator: OperatorCertificate

    @property
    def id_hex(self) -> str:
        """The command id as hex text (events, the fleet page)."""
        return self.id.hex()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def certify_operator(
    authority_key: Ed25519PrivateKey,
    operator_public: Ed25519PublicKey,
    *,
    name: str,
    role: str,
    actions: Iterable[str],
    sites: Iterable[str],
    not_before: int,
    not_after: int,
) -> bytes:
    """The authority's signed certificate for an operator key (central side)."""
    action_list = sorted(set(actions))
    unknown = set(action_list) - ACTIONS
    if unknown:
        raise ValueError(f"unknown actions: {', '.join(sorted(unknown))}")
    site_list = sorted(set(sites))
    for site in site_list:
        if site != "*" and not is_valid_id(site):
            raise ValueError(f"site {site[:_TEXT_MAX]!r} is not a valid site id")
    if not (0 < len(name) <= _TEXT_MAX and 0 < len(role) <= _TEXT_MAX):
        raise ValueError(f"name and role must be 1..{_TEXT_MAX} characters")
    if not_after <= not_before:
        raise ValueError("not_after must be later than not_before")
    payload = cbor2.dumps(
        {
            "v": 1,
            "name": name,
            "role": role,
            "actions": action_list,
            "sites": site_list,
            "key": _raw_public(operator_public),
            "nbf": not_before,
            "exp": not_after,
        }
    )
    return sign_document(payload, authority_key, content_type=OPERATOR_CERTIFICATE)


def sign_command(
    operator_key: Ed25519PrivateKey,
    *,
    action: str,
    site: str,
    gate: str,
    issued_at: int,
    lifetime_s: int = 60,
    command_id: bytes | None = None,
) -> bytes:
    """An operator's signed command for one gate (central side)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action[:_TEXT_MAX]!r}")
    if not (is_valid_id(site) and is_valid_id(gate)):
        raise ValueError("site and gate must be valid ids")
    if not 0 < lifetime_s <= MAX_LIFETIME_S:
        raise ValueError(f"lifetime must be 1..{MAX_LIFETIME_S} s")
    payload = cbor2.dumps(
        {
            "v": 1,
            "id": command_id if command_id is not None else secrets.token_bytes(16),
            "action": action,
            "site": site,
            "gate": gate,
            "iat": issued_at,
            "exp": issued_at + lifetime_s,
        }
    )
    return sign_document(payload, operator_key, content_type=COMMAND)


def encode_command(operator_certificate: bytes, command: bytes) -> bytes:
    """The wire message: CBOR array of the certificate and the command documents."""
    return cbor2.dumps([operator_certificate, command])


def _split(message: bytes) -> tuple[bytes, bytes]:
    """Read ``[bstr, bstr]`` by hand: no general CBOR decoder sees unsigned input."""
    if len(message) < 3 or message[0] != 0x82:
        raise CommandRefused(Refusal.MALFORMED, "not a two-element array")
    parts: list[bytes] = []
    pos = 1
    for _ in range(2):
        if pos >= len(message):
            raise CommandRefused(Refusal.MALFORMED, "truncated")
        head = message[pos]
        if head >> 5 != 2:
            raise CommandRefused(Refusal.MALFORMED, "element is not a byte string")
        info = head & 0x1F
        pos += 1
        if info < 24:
            length = info
        elif info in (24, 25):
            size = 1 if info == 24 else 2
            if pos + size > len(message):
                raise CommandRefused(Refusal.MALFORMED, "truncated")
            length = int.from_bytes(message[pos : pos + size], "big")
            pos += size
        else:
            # 4- and 8-byte lengths cannot fit in MAX_COMMAND_BYTES; indefinite is not allowed.
            raise CommandRefused(Refusal.MALFORMED, "unsupported byte-string length")
        if pos + length > len(message):
            raise CommandRefused(Refusal.MALFORMED, "truncated")
        parts.append(message[pos : pos + length])
        pos += length
    if pos != len(message):
        raise CommandRefused(Refusal.MALFORMED, "trailing bytes")
    return parts[0], parts[1]


#: A certificate or command payload: one flat map of a few short fields.
_PAYLOAD_LIMITS = Limits(max_bytes=MAX_COMMAND_BYTES, max_depth=3, max_items=128, text_keys=True)


def _signed_map(payload: bytes) -> Mapping[str, Any]:
    # Signed, but by an operator key: still read with the bounded reader.
    try:
        value = cborsafe.loads(payload, _PAYLOAD_LIMITS)
    except CborError:
        raise CommandRefused(Refusal.MALFORMED, "signed payload is not plain CBOR") from None
    if not isinstance(value, dict) or value.get("v") != 1:
        raise CommandRefused(Refusal.MALFORMED, "signed payload is not a version-1 map")
    return value


def _field(doc: Mapping[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CommandRefused(Refusal.MALFORMED, f"field {key!r} missing or not {kind.__name__}")
    if isinstance(value, str) and len(value) > _TEXT_MAX:
        raise CommandRefused(Refusal.MALFORMED, f"field {key!r} longer than {_TEXT_MAX}")
    if isinstance(value, int) and not 0 <= value < 2**40:
        raise CommandRefused(Refusal.MALFORMED, f"field {key!r} out of range")
    return value


def _text_list(doc: Mapping[str, Any], key: str) -> frozenset[str]:
    value = doc.get(key)
    if not isinstance(value, list) or len(value) > 32:
        raise CommandRefused(Refusal.MALFORMED, f"field {key!r} is not a short list")
    if not all(isinstance(item, str) and len(item) <= _TEXT_MAX for item in value):
        raise CommandRefused(Refusal.MALFORMED, f"field {key!r} holds a non-text item")
    return frozenset(value)


def _operator(blob: bytes, authorities: list[Ed25519PublicKey], now: float) -> OperatorCertificate:
    try:
        payload = verify_document(
            blob, authorities, content_type=OPERATOR_CERTIFICATE, max_bytes=MAX_COMMAND_BYTES
        )
    except DocumentError as exc:
        raise CommandRefused(Refusal.OPERATOR_UNTRUSTED, str(exc)[:120]) from None
    doc = _signed_map(payload)
    raw_key = _field(doc, "key", bytes)
    if len(raw_key) != 32:
        raise CommandRefused(Refusal.MALFORMED, "operator key is not 32 bytes")
    certificate = OperatorCertificate(
        name=_field(doc, "name", str),
        role=_field(doc, "role", str),
        actions=_text_list(doc, "actions"),
        sites=_text_list(doc, "sites"),
        public_key=Ed25519PublicKey.from_public_bytes(raw_key),
        not_before=_field(doc, "nbf", int),
        not_after=_field(doc, "exp", int),
    )
    if not certificate.not_before <= now < certificate.not_after:
        raise CommandRefused(
            Refusal.OPERATOR_NOT_VALID, "operator certificate outside its validity"
        )
    return certificate


def check_command(
    message: bytes,
    *,
    authorities: list[Ed25519PublicKey],
    site: str,
    gate: str,
    now: float,
    retained: bool = False,
) -> Command:
    """Verify a wire message as a command for gate ``site``/``gate`` at ``now``.

    Replay and ordering checks need the gate's memory and are done by
    :meth:`kiosk.remote.replay.AcceptedCommands.accept`, after this.

    Raises:
        CommandRefused: the first failed check.
    """
    if retained:
        # A retained command would be re-delivered to every (re)connecting gate.
        raise CommandRefused(Refusal.RETAINED, "retained messages are never commands")
    if len(message) > MAX_COMMAND_BYTES:
        raise CommandRefused(Refusal.TOO_LARGE, f"{len(message)} bytes, limit {MAX_COMMAND_BYTES}")
    cert_blob, command_blob = _split(message)
    operator = _operator(cert_blob, authorities, now)
    try:
        payload = verify_document(
            command_blob,
            [operator.public_key],
            content_type=COMMAND,
            max_bytes=MAX_COMMAND_BYTES,
        )
    except DocumentError as exc:
        raise CommandRefused(Refusal.BAD_SIGNATURE, str(exc)[:120]) from None
    doc = _signed_map(payload)
    command_id = _field(doc, "id", bytes)
    if len(command_id) != 16:
        raise CommandRefused(Refusal.MALFORMED, "command id is not 16 bytes")
    id_hex = command_id.hex()
    command = Command(
        id=command_id,
        action=_field(doc, "action", str),
        site=_field(doc, "site", str),
        gate=_field(doc, "gate", str),
        issued_at=_field(doc, "iat", int),
        expires_at=_field(doc, "exp", int),
        operator=operator,
    )
    if command.action not in ACTIONS or command.action not in operator.actions:
        raise CommandRefused(Refusal.ACTION_NOT_ALLOWED, "action not certified", id_hex)
    if not operator.allows_site(site):
        raise CommandRefused(Refusal.SITE_NOT_ALLOWED, "operator not certified here", id_hex)
    if (command.site, command.gate) != (site, gate):
        raise CommandRefused(Refusal.OTHER_GATE, "command names another gate", id_hex)
    if command.expires_at - command.issued_at > MAX_LIFETIME_S:
        raise CommandRefused(Refusal.LIFETIME_TOO_LONG, f"above {MAX_LIFETIME_S} s", id_hex)
    if command.issued_at > now + CLOCK_SKEW_S:
        raise CommandRefused(Refusal.NOT_YET_VALID, "issued in the future", id_hex)
    if now >= command.expires_at:
        raise CommandRefused(Refusal.EXPIRED, "command expired", id_hex)
    return command
