"""COSE_Sign1 (RFC 9052) parsing and signature checking for HC1 certificates.

Accepted envelopes: CBOR tag 18, tag 18 inside CWT tag 61, or an untagged
4-element array.  Header lookups follow the DCC rule: kid (label 4) and alg
(label 1) come from the protected header, and from the unprotected header
only when the protected header lacks that label.  Trusting an unprotected alg
is safe here because each signer key verifies with exactly one algorithm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kiosk import cborsafe
from kiosk.decision import Reason
from kiosk.errors import VerificationError
from kiosk.verify.trust import ALG_ES256, ALG_PS256, Signer

__all__ = [
    "CoseSign1",
    "es256_verify",
    "header_kid_alg",
    "parse_sign1",
    "sig_structure",
    "split_sign1",
    "verify_signature",
]

TAG_SIGN1 = 18
TAG_CWT = 61
#: The envelope: signed documents from the centre are at most 64 MiB (an HC1
#: envelope is already capped at 64 KiB by the inflate step).  Depth and item
#: bounds leave room for an unprotected header of a few labels (x5chain included).
ENVELOPE_LIMITS = cborsafe.Limits(max_bytes=64 * 1024 * 1024, max_depth=6, max_items=256)
#: The protected header: a map of a few labels; DCC ones are 10-20 bytes.
HEADER_LIMITS = cborsafe.Limits(max_bytes=4096, max_depth=4, max_items=64)
_TOP_TAGS = frozenset({TAG_SIGN1, TAG_CWT})
_LABEL_ALG = 1
_LABEL_KID = 4

_ECDSA = ec.ECDSA(hashes.SHA256())
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
_SHA256 = hashes.SHA256()
# Sig_structure prefix: array(4), tstr "Signature1".
_TBS_HEAD = b"\x84\x6aSignature1"


class CoseSign1(NamedTuple):
    """A parsed (not yet verified) COSE_Sign1 message (immutable).

    A NamedTuple rather than a frozen dataclass: it is built on every scan and
    a tuple costs a fraction of a frozen dataclass's ``object.__setattr__`` calls.

    Attributes:
        protected_raw: the serialized protected header, exactly as signed.
        protected / unprotected: the decoded header maps.
        payload: the signed payload bytes (the CWT claims).
        signature: raw signature bytes.
        tag: 18, 61 (tag 61 wrapping tag 18) or None when untagged.
    """

    protected_raw: bytes
    protected: dict[Any, Any]
    unprotected: dict[Any, Any]
    payload: bytes
    signature: bytes
    tag: int | None

    def __repr__(self) -> str:
        # Never the payload: it holds personal data.
        return f"CoseSign1(protected={self.protected!r}, tag={self.tag})"

    def header(self, label: int) -> Any:
        """Header ``label`` from the protected map, else the unprotected one, else None."""
        if label in self.protected:
            return self.protected[label]
        return self.unprotected.get(label)

    @property
    def kid(self) -> bytes | None:
        """The kid per the DCC rule (protected first), or None if absent or not bytes."""
        kid = self.header(_LABEL_KID)
        return kid if isinstance(kid, bytes) else None

    @property
    def alg(self) -> int | None:
        """The COSE algorithm id per the DCC rule (protected first), or None."""
        alg = self.header(_LABEL_ALG)
        return alg if type(alg) is int else None

    def to_be_signed(self) -> bytes:
        """The Sig_structure ``["Signature1", protected, h'', payload]`` as CBOR.

        Built by concatenation instead of ``cbor2.dumps`` (no re-encoding of
        the payload on the hot path).
        """
        return sig_structure(self.protected_raw, self.payload)


def sig_structure(protected_raw: bytes, payload: bytes) -> bytes:
    """The COSE_Sign1 Sig_structure over ``protected_raw`` and ``payload`` (empty external AAD)."""
    return b"".join((_TBS_HEAD, _bstr_head(len(protected_raw)), protected_raw,
                     b"\x40", _bstr_head(len(payload)), payload))


def _bstr_head(n: int) -> bytes:
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    return b"\x5a" + n.to_bytes(4, "big")


def _der_int(value: bytes) -> bytes:
    value = value.lstrip(b"\x00")
    if not value or value[0] & 0x80:  # zero, or a set sign bit: DER needs a 0x00 first
        value = b"\x00" + value
    return b"\x02" + bytes((len(value),)) + value


def _der(signature: bytes) -> bytes:
    """ES256 ``r || s`` (2 x 32 bytes) as the DER ``ECDSA-Sig-Value`` OpenSSL verifies.

    Same bytes as ``encode_dss_signature`` (tested) without two big-int conversions.
    """
    r, s = signature[:32], signature[32:]
    if r[0] and s[0]:  # no leading zero byte to strip (127 times in 128): plain concatenation
        body = _INT32_HEAD[r[0] >> 7] + r + _INT32_HEAD[s[0] >> 7] + s
    else:
        body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes((len(body),)) + body


# DER INTEGER head of a 32-byte value without a leading zero, by its top bit:
# a set top bit needs a 0x00 first to stay positive.
_INT32_HEAD = (b"\x02\x20", b"\x02\x21\x00")


def _invalid(detail: str) -> VerificationError:
    return VerificationError(Reason.COSE_INVALID, detail)


def _bstr_at(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, stop) of the definite-length byte string whose head is at ``pos``, else (-1, -1)."""
    if pos >= end:
        return -1, -1
    head = data[pos]
    if 0x40 <= head < 0x58:
        start, size = pos + 1, head - 0x40
    elif 0x58 <= head <= 0x5B:  # 1, 2, 4 or 8 length bytes follow
        start = pos + 1 + (1 << (head - 0x58))
        if start > end:
            return -1, -1
        size = int.from_bytes(data[pos + 1 : start], "big")
    else:  # not a byte string, or indefinite length
        return -1, -1
    stop = start + size
    return (start, stop) if stop <= end else (-1, -1)


def split_sign1(data: bytes) -> tuple[bytes, bytes, bytes, int | None] | None:
    """``(protected_raw, payload, signature, tag)`` of the usual COSE_Sign1 shape, else None.

    A bounded hand parser of what HC1 issuers emit: tag 18, tag 61 around tag
    18, or no tag; the array(4) head; a definite-length protected bstr; an
    empty unprotected map; definite-length payload and signature bstrs; and
    nothing after.  It reads four item heads and copies three slices -- no
    CBOR decoder, no allocation beyond the input's own size.  Anything else
    (a non-empty unprotected header, indefinite lengths, other tags, trailing
    bytes, truncation) gives None and :func:`parse_sign1` asks the general
    reader (:mod:`kiosk.cborsafe`), so both
    routes give the same answer on every input.
    """
    if data.startswith(b"\xd2\x84"):
        pos, tag = 2, TAG_SIGN1
    elif data.startswith(b"\x84"):
        pos, tag = 1, None
    elif data.startswith(b"\xd8\x3d\xd2\x84"):
        pos, tag = 4, TAG_CWT
    else:
        return None
    end = len(data)
    head = data[pos] if pos < end else 0
    if 0x40 <= head < 0x58:  # the usual short protected header, read inline
        p0, p1 = pos + 1, pos + 1 + head - 0x40
    else:
        p0, p1 = _bstr_at(data, pos, end)
    if p0 < 0 or p1 >= end or data[p1] != 0xA0:  # 0xA0: the empty map
        return None
    y0, y1 = _bstr_at(data, p1 + 1, end)
    if y0 < 0:
        return None
    if end - y1 == 66 and data[y1] == 0x58 and data[y1 + 1] == 64:  # the ES256 signature
        return data[p0:p1], data[y0:y1], data[y1 + 2 :], tag
    s0, s1 = _bstr_at(data, y1, end)
    if s0 < 0 or s1 != end:
        return None
    return data[p0:p1], data[y0:y1], data[s0:s1], tag


def split_sign1_python(data: bytes) -> tuple[bytes, bytes, bytes, int | None, bytes] | None:
    """:func:`split_sign1` and the :func:`sig_structure` of its parts, else None.

    The reference of the per-scan call :data:`split_sign1_tbs`.
    """
    parts = split_sign1(data)
    if parts is None:
        return None
    protected_raw, payload, signature, tag = parts
    return protected_raw, payload, signature, tag, sig_structure(protected_raw, payload)


#: ``(protected_raw, payload, signature, tag, Sig_structure)`` of the usual shape, else
#: None: the compiled one (kiosk/_cbor.c) when built -- the same result as
#: :func:`split_sign1_python` on every input, in one pass (~1 µs less per scan).
split_sign1_tbs: Callable[[bytes], tuple[bytes, bytes, bytes, int | None, bytes] | None]
try:
    from kiosk._cbor import split_sign1_tbs
except ImportError:  # not built (no compiler at install time): the reference
    split_sign1_tbs = split_sign1_python


def parse_sign1(data: bytes) -> CoseSign1:
    """Parse COSE_Sign1 bytes (the inflated HC1 payload).

    The usual shape goes through :func:`split_sign1`; everything else through
    :func:`kiosk.cborsafe.loads_tagged` (:data:`ENVELOPE_LIMITS`: tag 18 or
    61(18(...)) in front only, no other tag, no duplicate header label).

    Raises:
        VerificationError(COSE_INVALID): not CBOR, out of bounds, wrong tag,
            wrong shape, detached payload, or a protected header that is not a
            CBOR map within :data:`HEADER_LIMITS`.
    """
    parts = split_sign1(data) if type(data) is bytes else None
    if parts is not None:
        protected_raw, payload, signature, tag = parts
        return CoseSign1(protected_raw, dict(_header_entry(protected_raw)[0]), {}, payload,
                         signature, tag)
    try:
        tags, obj = cborsafe.loads_tagged(data, ENVELOPE_LIMITS, top_tags=_TOP_TAGS)
    except cborsafe.CborError as exc:
        raise _invalid(f"envelope refused: {exc}") from None
    if tags not in ((), (TAG_SIGN1,), (TAG_CWT, TAG_SIGN1)):
        raise _invalid(f"unexpected CBOR tag {tags[-1]}")
    tag = tags[0] if tags else None
    # cbor2 >= 6 hands out the content of a tag as a tuple, older versions as a list.
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise _invalid("not a 4-element COSE_Sign1 array")
    protected_raw, unprotected, payload, signature = obj
    # Inside a tag cbor2 >= 6 also hands out maps as immutable mappings.
    if not isinstance(protected_raw, bytes) or not isinstance(unprotected, Mapping):
        raise _invalid("bad header types")
    if not isinstance(payload, bytes):
        raise _invalid("missing or detached payload")
    if not isinstance(signature, bytes):
        raise _invalid("signature is not a byte string")
    protected = dict(_header_entry(protected_raw)[0])
    if type(unprotected) is not dict:
        unprotected = dict(unprotected)
    return CoseSign1(protected_raw, protected, unprotected, payload, signature, tag)


# Protected headers repeat per signer ({1: alg, 4: kid}); remembering a few
# hundred decoded ones saves a CBOR decode per scan.  Bounded: cleared when full.
# Each entry: (the decoded map, never handed out itself, only copies; its kid; its alg).
_HeaderEntry = tuple[dict[Any, Any], bytes | None, int | None]
_HEADER_CACHE: dict[bytes, _HeaderEntry] = {}
_HEADER_CACHE_MAX = 256
_HEADER_CACHE_KEY_MAX = 64  # bytes; larger headers are decoded every time


def _header_entry(raw: bytes) -> _HeaderEntry:
    cached = _HEADER_CACHE.get(raw)
    if cached is not None:
        return cached
    header: Any = {}
    if raw:
        try:
            header = cborsafe.loads(raw, HEADER_LIMITS)
        except cborsafe.CborError as exc:
            raise _invalid(f"protected header refused: {exc}") from None
        if not isinstance(header, dict):
            raise _invalid("protected header is not a map")
    kid, alg = header.get(_LABEL_KID), header.get(_LABEL_ALG)
    entry = (header, kid if isinstance(kid, bytes) else None, alg if type(alg) is int else None)
    if len(raw) <= _HEADER_CACHE_KEY_MAX:
        if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[raw] = entry
    return entry


def header_kid_alg(protected_raw: bytes) -> tuple[bytes | None, int | None]:
    """kid and alg of a message whose unprotected header is empty (as :attr:`CoseSign1.kid`).

    Raises VerificationError(COSE_INVALID) when the protected header is not a CBOR map.
    """
    _, kid, alg = _header_entry(protected_raw)
    return kid, alg


def verify_signature(signer: Signer, alg: int | None, tbs: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``tbs`` with ``signer``'s key.

    Raises:
        VerificationError(ALG_UNSUPPORTED): alg missing, unknown, or not the
            algorithm of the signer's key type.
        VerificationError(SIGNATURE_INVALID): wrong length or bad signature.
    """
    if alg not in (ALG_ES256, ALG_PS256):
        raise VerificationError(Reason.ALG_UNSUPPORTED, f"alg {alg!r}")
    if alg != signer.algorithm:
        raise VerificationError(Reason.ALG_UNSUPPORTED, f"alg {alg} does not match the DSC key")
    key = signer.public_key
    try:
        if alg == ALG_ES256:  # == signer.algorithm: an EC P-256 key
            if len(signature) != 64:
                raise VerificationError(Reason.SIGNATURE_INVALID, "ES256 signature is not 64 bytes")
            es256_verify(cast(ec.EllipticCurvePublicKey, key), tbs, signature)
        else:
            if len(signature) != (key.key_size + 7) // 8:
                raise VerificationError(Reason.SIGNATURE_INVALID, "PS256 signature length")
            cast(rsa.RSAPublicKey, key).verify(signature, tbs, _PSS, _SHA256)
    except InvalidSignature:
        raise VerificationError(Reason.SIGNATURE_INVALID, "signature does not verify") from None


def es256_verify(key: ec.EllipticCurvePublicKey, tbs: bytes, signature: bytes) -> None:
    """Check a 64-byte ES256 ``r || s`` signature over ``tbs``.

    Raises cryptography's InvalidSignature (the caller maps it to a deny).
    """
    key.verify(_der(signature), tbs, _ECDSA)
