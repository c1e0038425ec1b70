"""Hostile CBOR for the signed-file surfaces: what an attacker hands ``kiosk trust/nik``.

Every builder returns raw bytes (never via ``cbor2.dumps`` of a shared
structure: the point is bytes a lenient decoder turns into something huge).
"""

from __future__ import annotations

import cbor2

from kiosk.signing import NIK_LIST, TRUST_BUNDLE


def shared_ref_bomb(levels: int = 60) -> bytes:
    """A CBOR array of ``levels + 1`` items with shared references (tags 28/29).

    Item 0 is ``28("x")``; item k is ``28([29(k-1), 29(k-1)])``.  Decoded it is
    a small object graph, but its printed (or hashed) tree form holds 2^k
    copies of item 0: 60 levels are 2^60 leaves from ~650 bytes.
    """
    items = [b"\xd8\x1c\x61x"]
    for k in range(1, levels + 1):
        ref = b"\xd8\x1d" + cbor2.dumps(k - 1)
        items.append(b"\xd8\x1c\x82" + ref + ref)
    head = cbor2.dumps([0] * len(items))[: -len(items)]  # the array head alone
    return head + b"".join(items)


def _bstr(data: bytes) -> bytes:
    return cbor2.dumps(data)


def envelope(protected: bytes, payload: bytes, *, unprotected: bytes = b"\xa0") -> bytes:
    """A tag-18 COSE_Sign1 from raw parts and a zero (invalid) Ed25519 signature."""
    return b"\xd2\x84" + _bstr(protected) + unprotected + _bstr(payload) + _bstr(bytes(64))


def _text(value: str) -> bytes:
    return cbor2.dumps(value)


def protected_with_bomb_alg(content_type: str) -> bytes:
    """A protected header ``{1: <bomb>, 3: content_type}`` (alg is formatted on refusal)."""
    return b"\xa2\x01" + shared_ref_bomb() + b"\x03" + _text(content_type)


def honest_protected(content_type: str) -> bytes:
    """A well-formed protected header ``{1: -8, 3: content_type, 4: 8 zero bytes}``."""
    return cbor2.dumps({1: -8, 3: content_type, 4: bytes(8)})


def trust_install_bomb() -> bytes:
    """For ``kiosk trust install``: the bomb as the protected alg."""
    return envelope(protected_with_bomb_alg(TRUST_BUNDLE), b"\xa0")


def nik_install_bomb() -> bytes:
    """For ``kiosk nik install``: the bomb as the protected alg."""
    return envelope(protected_with_bomb_alg(NIK_LIST), b"\xa0")


def trust_inspect_bomb() -> bytes:
    """For ``kiosk trust inspect`` without keys: a body ``{"format": <bomb>}``."""
    body = b"\xa1" + _text("format") + shared_ref_bomb()
    return envelope(honest_protected(TRUST_BUNDLE), body)


def nik_inspect_bomb() -> bytes:
    """For ``kiosk nik inspect`` without keys: a manifest whose ``kdf.alg`` is the bomb."""
    body = b"\xa2" + _text("format") + b"\x01" + _text("kdf") + b"\xa1" + _text("alg") \
        + shared_ref_bomb()
    return envelope(honest_protected(NIK_LIST), body)


def unprotected_bomb(content_type: str) -> bytes:
    """The bomb as an unprotected header value (outside the signature)."""
    return envelope(honest_protected(content_type), b"\xa0",
                    unprotected=b"\xa1\x05" + shared_ref_bomb())
