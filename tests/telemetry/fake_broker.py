"""A minimal MQTT server for corner cases a real Mosquitto cannot be made to produce.

It speaks just enough MQTT 3.1.1/5 for one client at a time: CONNECT/CONNACK,
PUBLISH (QoS 0/1)/PUBACK, PINGREQ/PINGRESP and DISCONNECT. Behaviour is chosen
per connection, e.g. "refuse v5" (like a 3.1.1-only broker) or "swallow publishes
without PUBACK, then drop the link" (a PUBACK lost in an outage).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Seen:
    connection: int
    topic: str
    payload: bytes
    dup: bool


class FakeBroker:
    """Serve on a free 127.0.0.1 port until :meth:`close`.

    Args:
        refuse_v5: answer a v5 CONNECT with the 3.1.1 "unacceptable protocol
            version" CONNACK and close, as a broker without v5 support does.
        silent_connections: this many first (accepted) connections never PUBACK
            and are dropped after ``drop_after`` publishes on ``drop_topic``.
    """

    def __init__(
        self,
        *,
        refuse_v5: bool = False,
        silent_connections: int = 0,
        drop_after: int = 0,
        drop_topic: str = "",
    ) -> None:
        self.refuse_v5 = refuse_v5
        self.silent_connections = silent_connections
        self.drop_after = drop_after
        self.drop_topic = drop_topic
        self.protocols: list[int] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = int(self._server.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="fake-broker", daemon=True)
        self._thread.start()

    def published(self, topic: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.topic == topic]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _serve(self) -> None:
        accepted = 0
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.1)
                if self._session(conn, accepted):
                    accepted += 1

    def _read(self, conn: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            if self._stop.is_set():
                return None
            try:
                chunk = conn.recv(n - len(buf))
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _packet(self, conn: socket.socket) -> tuple[int, bytes] | None:
        head = self._read(conn, 1)
        if head is None:
            return None
        length, shift = 0, 0
        while True:
            b = self._read(conn, 1)
            if b is None:
                return None
            length |= (b[0] & 0x7F) << shift
            shift += 7
            if not b[0] & 0x80:
                break
        body = self._read(conn, length) if length else b""
        return None if body is None else (head[0], body)

    def _session(self, conn: socket.socket, index: int) -> bool:
        """Serve one connection; True if the CONNECT was accepted."""
        first = self._packet(conn)
        if first is None or first[0] >> 4 != 1:
            return False
        level = first[1][6]
        with self._lock:
            self.protocols.append(level)
        if level == 5 and self.refuse_v5:
            conn.sendall(b"\x20\x02\x00\x01")
            return False
        conn.sendall(b"\x20\x03\x00\x00\x00" if level == 5 else b"\x20\x02\x00\x00")
        silent = index < self.silent_connections
        dropped_at = 0
        while (pkt := self._packet(conn)) is not None:
            kind, body = pkt[0] >> 4, pkt[1]
            if kind == 12:  # PINGREQ
                conn.sendall(b"\xd0\x00")
            elif kind == 14:  # DISCONNECT
                break
            elif kind == 3:  # PUBLISH
                qos, dup = (pkt[0] >> 1) & 3, bool(pkt[0] & 8)
                (tlen,) = struct.unpack("!H", body[:2])
                topic, pos = body[2 : 2 + tlen].decode(), 2 + tlen
                mid = body[pos : pos + 2] if qos else b""
                pos += 2 if qos else 0
                if level == 5:  # skip the properties (length < 128 here)
                    pos += 1 + body[pos]
                with self._lock:
                    self.seen.append(Seen(index, topic, body[pos:], dup))
                if silent:
                    if topic == self.drop_topic:
                        dropped_at += 1
                        if dropped_at >= self.drop_after:
                            break  # close without PUBACK: the acks are "lost"
                elif qos == 1:
                    conn.sendall(b"\x40\x02" + mid)
        return True
