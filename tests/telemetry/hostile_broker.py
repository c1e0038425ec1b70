"""A hostile MQTT "broker" on a raw socket, for what no real Mosquitto will do.

Per connection it reads the client's CONNECT (kept in :attr:`connects` for
inspection), then misbehaves as told by ``mode``:

* ``garbage``: answer with bytes that are no MQTT packet at all;
* ``close``: close the connection at once, before any CONNACK;
* ``huge``: accept (a CONNACK of the client's protocol, after refusing v5 when
  ``refuse_v5``), then send a PUBLISH whose fixed header announces
  ``huge_bytes`` and stream its body for as long as the client keeps reading.
"""

from __future__ import annotations

import contextlib
import socket
import threading


def encode_length(n: int) -> bytes:
    """MQTT Remaining Length (variable byte integer)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class HostileBroker:
    """Serve one connection at a time on a free 127.0.0.1 port until :meth:`close`."""

    def __init__(self, mode: str, *, huge_bytes: int = 200 * 1024 * 1024, refuse_v5: bool = False):
        self.mode = mode
        self.huge_bytes = huge_bytes
        self.refuse_v5 = refuse_v5
        self.connects: list[bytes] = []  # the body of every CONNECT received
        self.body_bytes_sent = 0  # of huge PUBLISH bodies, before the client hung up
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = int(self._server.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="hostile-broker", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._server.close()

    def connect_count(self) -> int:
        with self._lock:
            return len(self.connects)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            # OSError: the client hung up, which is what these tests provoke.
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2.0)
                self._session(conn)

    def _read_exact(self, conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionResetError
            buf += chunk
        return buf

    def _read_packet(self, conn: socket.socket) -> tuple[int, bytes]:
        head = self._read_exact(conn, 1)[0]
        length, shift = 0, 0
        while True:
            byte = self._read_exact(conn, 1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return head, self._read_exact(conn, length)

    def _session(self, conn: socket.socket) -> None:
        head, body = self._read_packet(conn)
        if head >> 4 != 1:
            return
        with self._lock:
            self.connects.append(body)
        level = body[6]
        if self.mode == "close":
            return
        if self.mode == "garbage":
            conn.sendall(b"\x00\xff\xff\xff\xff\xffnot mqtt at all")
            conn.recv(1)  # wait for the client to give up
            return
        if level == 5 and self.refuse_v5:
            conn.sendall(b"\x20\x02\x00\x01")  # 3.1.1 "unacceptable protocol version"
            return
        conn.sendall(b"\x20\x03\x00\x00\x00" if level == 5 else b"\x20\x02\x00\x00")
        topic = b"homeassistant/status"
        header = b"\x30" + encode_length(self.huge_bytes)
        variable = len(topic).to_bytes(2, "big") + topic + (b"\x00" if level == 5 else b"")
        conn.sendall(header + variable)
        chunk = b"\x00" * 65536
        sent = len(variable)
        while sent < self.huge_bytes and not self._stop.is_set():
            n = conn.send(chunk[: self.huge_bytes - sent])
            sent += n
            with self._lock:
                self.body_bytes_sent += n
