"""A minimal DER walker, just enough to read a certificate's Extended Key Usage.

``cryptography`` refuses some real-world DSCs outright when their extensions
are read (an *empty* EKU SEQUENCE, which RFC 5280 forbids, is one such case:
conformance case common/CO15).  Rather than dropping the signer, the trust
store falls back to this walker to read the EKU OIDs itself.  It only follows
definite-length DER and raises :class:`Asn1Error` on anything unexpected.
"""

from __future__ import annotations

__all__ = ["EKU_OID", "Asn1Error", "extended_key_usage"]

EKU_OID = "2.5.29.37"

_SEQUENCE = 0x30
_OID = 0x06
_BOOLEAN = 0x01
_OCTET_STRING = 0x04
_EXTENSIONS = 0xA3  # [3] EXPLICIT inside TBSCertificate


class Asn1Error(ValueError):
    """The DER bytes are malformed or not shaped like an X.509 certificate."""


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one TLV at ``pos``; return (tag, value_start, value_end)."""
    if pos + 2 > end:
        raise Asn1Error("truncated TLV header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise Asn1Error("high tag numbers are not used in certificates")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise Asn1Error("bad length encoding")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise Asn1Error("value runs past its container")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, vs, ve = _tlv(data, pos, end)
        out.append((tag, vs, ve))
        pos = ve
    return out


def _oid(value: bytes) -> str:
    if not value:
        raise Asn1Error("empty OID")
    arcs: list[int] = []
    acc = 0
    for byte in value:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    if value[-1] & 0x80:
        raise Asn1Error("truncated OID arc")
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def extended_key_usage(der: bytes) -> tuple[str, ...] | None:
    """Return the EKU OIDs (dotted strings) of certificate ``der``.

    Returns None when the certificate has no EKU extension, and an empty tuple
    for a present-but-empty EKU.  Raises :class:`Asn1Error` on malformed DER.
    """
    tag, cs, ce = _tlv(der, 0, len(der))
    if tag != _SEQUENCE:
        raise Asn1Error("certificate is not a SEQUENCE")
    tag, ts, te = _tlv(der, cs, ce)
    if tag != _SEQUENCE:
        raise Asn1Error("tbsCertificate is not a SEQUENCE")
    for tag, vs, ve in _children(der, ts, te):
        if tag != _EXTENSIONS:
            continue
        seq_tag, ss, se = _tlv(der, vs, ve)
        if seq_tag != _SEQUENCE:
            raise Asn1Error("extensions are not a SEQUENCE")
        for ext_tag, es, ee in _children(der, ss, se):
            if ext_tag != _SEQUENCE:
                raise Asn1Error("extension is not a SEQUENCE")
            parts = _children(der, es, ee)
            if not parts or parts[0][0] != _OID or _oid(der[parts[0][1] : parts[0][2]]) != EKU_OID:
                continue
            octets = parts[-1]
            if octets[0] != _OCTET_STRING:
                raise Asn1Error("EKU value is not an OCTET STRING")
            inner_tag, is_, ie = _tlv(der, octets[1], octets[2])
            if inner_tag != _SEQUENCE:
                raise Asn1Error("EKU is not a SEQUENCE")
            oids = []
            for oid_tag, os_, oe in _children(der, is_, ie):
                if oid_tag != _OID:
                    raise Asn1Error("EKU member is not an OID")
                oids.append(_oid(der[os_:oe]))
            return tuple(oids)
        return None
    return None
