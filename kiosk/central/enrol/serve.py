"""Online enrolment: ``kiosk central enrol --serve`` for ``kiosk provision --enrol-url``.

``POST /v1/enrol`` with JSON ``{"token": "...", "csr": "-----BEGIN CERTIFICATE REQUEST..."}``
answers ``200 {"certificate": PEM, "ca": PEM, "not_after": ISO}`` or
``400/403 {"error": reason}``. The token authorises exactly as offline
(:meth:`EnrolmentCA.enrol`). The body is bounded (32 KiB) and read with a
timeout before anything is parsed; the server's own certificate is a
``kiosk central broker-cert`` for its host name, so gates check it against
the enrolment CA they already trust.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from kiosk.central.enrol.ca import EnrolmentCA
from kiosk.errors import EnrolmentError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024
REQUEST_TIMEOUT_S = 10.0
PATH = "/v1/enrol"


class EnrolmentServer(HTTPServer):
    """One CA behind HTTPS; requests are served one at a time (the token book is locked anyway)."""

    def __init__(self, address: tuple[str, int], ca: EnrolmentCA, cert: Path, key: Path) -> None:
        super().__init__(address, _Handler)
        self.ca = ca
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: EnrolmentServer
    timeout = REQUEST_TIMEOUT_S
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        """Enrol one CSR with its token."""
        if self.path != PATH:
            self._answer(404, {"error": f"unknown path; POST {PATH}"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(411, {"error": "Content-Length required"})
            return
        if not 0 < length <= MAX_BODY_BYTES:
            self._answer(413, {"error": f"body must be 1..{MAX_BODY_BYTES} bytes"})
            return
        try:
            request = json.loads(self.rfile.read(length))
            token, csr = request["token"], request["csr"]
            if not isinstance(token, str) or not isinstance(csr, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._answer(400, {"error": 'expected JSON {"token": str, "csr": str}'})
            return
        try:
            with self.server.lock:
                issued = self.server.ca.enrol(csr.encode("ascii", "replace"), token)
        except EnrolmentError as exc:
            log.warning("enrolment refused: %s", exc)
            self._answer(403, {"error": str(exc)})
            return
        log.info("enrolled %s (serial %s)", issued.subject, issued.serial)
        self._answer(
            200,
            {
                "certificate": issued.pem.decode(),
                "ca": self.server.ca.cert_pem.decode(),
                "not_after": issued.not_after.isoformat(),
            },
        )

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests go to the logger, not stderr."""
        log.debug("%s " + format, self.address_string(), *args)
