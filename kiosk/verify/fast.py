"""The straight allow path of :class:`kiosk.verify.hc1.Verifier`.

:func:`straight_allow` runs the checks of the step pipeline
(:data:`kiosk.verify.hc1.STEP_NAMES`, same order, same step functions where
they are cheap) as straight-line code without the pipeline's bookkeeping.  It
only ever returns an allow: on any failure it raises, and the verifier runs
the text through the step pipeline, which names the failing step of the deny.
So it may be stricter than the pipeline -- it demands exact types and hands
unusual shapes over with :class:`Unusual` -- but never more lenient; and, as
in the pipeline, the CWT claims are decoded only after the signature check.
The bundle's CertLogic rules run here too, through the same function as the
pipeline's ``rules`` step (:meth:`kiosk.verify.certrules.GateRules.check`),
so no allow skips them.
Measured costs are in docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ec

from kiosk import cborsafe
from kiosk.decision import CertType, Decision, mask_name, qr_allow
from kiosk.verify import base45, steps
from kiosk.verify.cose import (
    es256_verify,
    header_kid_alg,
    parse_sign1,
    sig_structure,
    split_sign1_tbs,
    verify_signature,
)
from kiosk.verify.identity import hc1_identity
from kiosk.verify.material import TrustMaterial
from kiosk.verify.schema import plain_type
from kiosk.verify.steps import (
    _CLAIM_EXP,
    _CLAIM_HCERT,
    _CLAIM_IAT,
    _CLAIM_ISS,
    _GROUP_KEY,
    CLAIMS_LIMITS,
    MAX_TEXT,
    PREFIX,
)
from kiosk.verify.trust import ALG_ES256

__all__ = ["Unusual", "holder_masked", "straight_allow"]

_CI = itemgetter("ci")


class Unusual(Exception):
    """Raised for anything the straight path leaves to the step pipeline."""


def straight_allow(text: str, material: TrustMaterial,
                   now_and_flag: Callable[[TrustMaterial], tuple[float, str]]) -> Decision:
    """The allow for ``text`` under ``material``; raises on anything else.

    ``now_and_flag`` is the verifier's clock-and-freshness step (raises
    VerificationError); any exception means "ask the step pipeline".
    """
    if len(text) > MAX_TEXT or not text.startswith(PREFIX):
        raise Unusual
    data = steps.inflate(base45.decode(text[4:]))
    parts = split_sign1_tbs(data)
    if parts is None:  # not the usual envelope: the general parser
        cose = parse_sign1(data)
        payload, signature = cose.payload, cose.signature
        kid, alg = cose.kid, cose.alg
        tbs = sig_structure(cose.protected_raw, payload)
    else:
        protected_raw, payload, signature, _, tbs = parts
        kid, alg = header_kid_alg(protected_raw)
    now_ts, flag = now_and_flag(material)
    signer = material.store.lookup(kid) if kid is not None else None
    if signer is None:
        raise Unusual
    if alg == ALG_ES256 == signer.algorithm and len(signature) == 64:
        es256_verify(cast(ec.EllipticCurvePublicKey, signer.public_key), tbs, signature)
    else:
        verify_signature(signer, alg, tbs, signature)
    # steps.parse_claims + check_times_ts, with exact types: nb <= iat <= now <= exp
    # <= na also keeps iat/exp inside the datetime range (the DSC dates are).
    claims = cborsafe.loads(payload, CLAIMS_LIMITS)
    if type(claims) is not dict:
        raise Unusual
    container = claims.get(_CLAIM_HCERT)
    hcert = container.get(1) if type(container) is dict else None
    iat, exp = claims.get(_CLAIM_IAT), claims.get(_CLAIM_EXP)
    if type(hcert) is not dict or (type(iat) is not int and type(iat) is not float) \
            or (type(exp) is not int and type(exp) is not float) \
            or not signer.not_before_ts <= iat <= now_ts <= exp <= signer.not_after_ts:
        raise Unusual
    cert_type = plain_type(hcert)  # check_structure's common case; None: ask the pipeline
    issuer = claims.get(_CLAIM_ISS)
    if type(issuer) is not str:
        issuer = None
    if cert_type is None or cert_type not in signer.may_sign \
            or not steps.issuer_matches(signer, issuer):
        raise Unusual
    entries = hcert[_GROUP_KEY[cert_type]]
    valuesets = material.valuesets
    if valuesets.enabled and not valuesets.known(entries, cert_type):
        raise Unusual
    revocation = material.revocation
    if signer.kid in revocation.kids:
        raise Unusual
    # plain_type guarantees a list of maps, each with a str "ci".
    uvcis = list(map(_CI, entries))
    if revocation.has_hashes and revocation.revoked_by(
            signature, signer.algorithm == ALG_ES256, uvcis, issuer):
        raise Unusual
    if cert_type is CertType.TEST:
        steps.check_test_result(hcert, cert_type)
    mode = material.mode
    if mode.rules and not mode.accepts_timeless(hcert, cert_type):
        mode.check(hcert, cert_type, datetime.fromtimestamp(now_ts, UTC))
    rules = material.rules
    if rules is not None:
        # The pipeline's own "rules" step function: a failure raises, and the
        # step pipeline then decides the deny (rule_failed, its Identifier, its text).
        rules.check(hcert, now_ts, iat, exp)
    return qr_allow(cert_type, holder_masked(hcert), flag,
                    hc1_identity(issuer or signer.country, uvcis, payload))


def holder_masked(hcert: dict[str, Any]) -> str | None:
    """The holder's name (gn fn, else the ICAO gnt fnt) masked like ``mask_name``.

    None when the hcert holds no name at all.
    """
    nam = hcert.get("nam")
    if not isinstance(nam, dict):
        return None
    gn, fn = nam.get("gn"), nam.get("fn")
    if type(gn) is str:
        native = gn + " " + fn if type(fn) is str else gn
    else:
        native = fn if type(fn) is str else ""
    words = native.split()
    if words:
        # Same result as decision.mask_name (tested), without a generator per scan.
        return " ".join([w[0].ljust(len(w), "*") for w in words])
    # Fall back to the ICAO transliteration, where "<" separates words.
    icao = " ".join(
        v.replace("<", " ") for v in (nam.get("gnt"), nam.get("fnt")) if isinstance(v, str)
    )
    return mask_name(icao) or None
