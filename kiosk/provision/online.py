"""Online enrolment from the gate: send the CSR and token over HTTPS, get the certificate.

The counterpart of ``kiosk central enrol --serve`` (:mod:`kiosk.central.enrol.serve`;
this module does not import it: the wire is JSON over HTTPS). The server is
checked against ``ca_file`` (the enrolment CA the technician carries) or,
without one, the system's CAs. Answers are bounded in size before parsing.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from kiosk.errors import ProvisionError

MAX_ANSWER_BYTES = 64 * 1024
TIMEOUT_S = 20.0


def enrol_online(
    url: str, token: str, csr_pem: bytes, *, ca_file: Path | None = None
) -> tuple[bytes, bytes]:
    """POST the CSR and token to ``url``; returns ``(certificate PEM, CA PEM)``.

    Raises:
        ProvisionError: not an https URL, the server cannot be reached or
            verified, or it refused (its reason is quoted, bounded).
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ProvisionError(f"--enrol-url {url[:80]!r}: expected https://HOST[:PORT]")
    endpoint = f"https://{parts.netloc}/v1/enrol"
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    body = json.dumps({"token": token, "csr": csr_pem.decode("ascii")}).encode()
    request = urllib.request.Request(
        endpoint, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as answer:
            data = answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        reason = _reason(exc.read(MAX_ANSWER_BYTES + 1))
        raise ProvisionError(f"enrolment refused ({exc.code}): {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise ProvisionError(f"{endpoint}: cannot enrol: {str(why)[:160]}") from None
    if len(data) > MAX_ANSWER_BYTES:
        raise ProvisionError(f"{endpoint}: answer larger than {MAX_ANSWER_BYTES} bytes")
    try:
        parsed = json.loads(data)
        cert, ca = parsed["certificate"], parsed["ca"]
        if not isinstance(cert, str) or not isinstance(ca, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ProvisionError(f"{endpoint}: not an enrolment answer") from None
    return cert.encode("ascii", "replace"), ca.encode("ascii", "replace")


def _reason(data: bytes) -> str:
    try:
        error = json.loads(data[:MAX_ANSWER_BYTES])["error"]
    except (ValueError, KeyError, TypeError):
        return "no reason given"
    return str(error)[:200]
