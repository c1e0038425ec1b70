"""bench/_ports.py, the benchmarks' port helper: it must keep working for them."""

from __future__ import annotations

import importlib.util
import socket
import threading

import pytest

from tests.conftest import REPO_ROOT


def _ports():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_ports", REPO_ROOT / "bench" / "_ports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_free_port_can_be_listened_on_and_is_then_seen() -> None:
    ports = _ports()
    port = ports.free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        accepting = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
        accepting.start()
        ports.wait_port(port, 5)  # returns: something accepts there
        accepting.join(5)


def test_waiting_on_a_port_nothing_listens_on_gives_up() -> None:
    ports = _ports()
    with pytest.raises(RuntimeError, match="nothing listens"):
        ports.wait_port(ports.free_port(), 0.3)
