"""The HTTPS pull transport against a real local HTTPS server.

The centre lays releases out with ``kiosk central publish --out-dir``'s own
function; a real ``ThreadingHTTPServer`` behind TLS (a test CA, a certificate
for 127.0.0.1) serves them, and can misbehave: a wrong file, a file cut short,
one far longer than announced, a server that hangs or trickles. The gate side
installs through the gate's real installers, so a refusal is the install
checks' refusal and the installed bundle is read back from disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.central.publish import prepare_release, scope_root, write_release_dir
from kiosk.config import load_config
from kiosk.errors import ConfigError
from kiosk.remote.installers import gate_installers
from kiosk.remote.pull import ReleasePuller
from kiosk.signing import TRUST_BUNDLE, sign_document
from kiosk.verify.bundlefile import install_bundle, read_installed
from tests.e2e.test_gate_safety import NOW, setup
from tests.e2e.test_gate_status import _Idle
from tests.telemetry.certs import Pki, make_pki
from tests.verify.bundles import AUTHORITY, KEYS, make_bundle, write_authority

ROOT = "kiosk/{site}/{gate}"
FLEET = scope_root(ROOT, "fleet")


class Server:
    """A TLS file server over ``folder``; ``behaviour`` may replace any answer."""

    def __init__(self, folder: Path, pki: Pki) -> None:
        self.folder = folder
        self.behaviour: Callable[[http.server.BaseHTTPRequestHandler], bool] = lambda _h: False
        self.sent: dict[str, int] = {}
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                if not server.behaviour(self):
                    super().do_GET()

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/dist"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Gate:
    """One gate's config, folder and installed bundle (version 1 at the start)."""

    def __init__(self, tmp_path: Path, url: str, ca: Path, **overrides: object) -> None:
        tmp_path.mkdir(parents=True)
        self.authority = write_authority(tmp_path)
        self.config = load_config(
            None,
            {
                "device.data_dir": str(tmp_path / "state"),
                "device.site": "mall",
                "device.gate": "g1",
                "verify.trust_source": "bundle",
                "verify.authority_keys": str(self.authority),
                "remote.pull_url": url,
                "remote.pull_ca_file": str(ca),
                "mqtt.enabled": False,
                **overrides,
            },
        )
        self.bundle_path = self.config.device.data_dir / self.config.verify.bundle_file
        self.bundle_path.parent.mkdir(parents=True, exist_ok=True)
        install_bundle(bundle(1), self.bundle_path, KEYS)

    def puller(self, readable: tuple[int, ...] | None = None, **kwargs: object) -> ReleasePuller:
        remote = self.config.remote
        installers = gate_installers(self.config)
        if readable is not None:  # firmware that reads fewer body formats
            installers = dataclasses.replace(installers, readable={"trust": readable})
        return ReleasePuller(
            base_url=remote.pull_url,
            topic_root=self.config.mqtt.topic_root,
            site=self.config.device.site,
            gate=self.config.device.gate,
            staging=self.config.device.data_dir / "pull",
            installers=installers,
            interval_s=remote.pull_interval_s,
            ca_file=remote.pull_ca_file,
            **kwargs,  # type: ignore[arg-type]
        )

    def installed(self) -> int:
        found = read_installed(self.bundle_path, KEYS)
        return found.version if found else 0


def bundle(version: int, key: Ed25519PrivateKey | None = None, body_format: int = 2) -> bytes:
    """A signed trust bundle of ``version`` (by the test authority unless ``key``)."""
    made = make_bundle(version=version, issued_at=NOW - timedelta(hours=1))
    return sign_document(made.to_cbor(body_format), key or AUTHORITY, content_type=TRUST_BUNDLE)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def server(tmp_path: Path, pki: Pki) -> Iterator[Server]:
    served = tmp_path / "www"
    (served / "dist").mkdir(parents=True)
    running = Server(served, pki)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def gate(tmp_path: Path, server: Server, pki: Pki) -> Gate:
    return Gate(tmp_path / "gate", server.url, pki.ca)


def publish(server: Server, gate: Gate, content: bytes, scope: str = FLEET) -> str:
    """Lay a trust release out as ``kiosk central publish --out-dir`` does; the file's path."""
    source = server.folder / "upload.cose"
    source.write_bytes(content)
    release, contents = prepare_release("trust", [source], gate.authority)
    write_release_dir(release, contents, kind="trust", root=scope, out_dir=server.folder / "dist")
    return f"/dist/{scope}/dist/trust/{release.files[0].sha256}"


def answer(path: str, reply: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Callable[
        [http.server.BaseHTTPRequestHandler], bool]:
    """A server behaviour that answers ``path`` with ``reply`` and serves the rest as files."""

    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> bool:
        if handler.path != path:
            return False
        reply(handler)
        return True

    return behaviour


def test_a_published_bundle_is_installed_and_an_older_one_ignored(
        server: Server, gate: Gate) -> None:
    publish(server, gate, bundle(2))
    with gate.puller() as puller:
        puller.poll()
        assert gate.installed() == 2
        assert puller.status()["pull_state"] == "idle"
        assert puller.status()["pull_error"] == ""
        # The site scope offers an older one: the newest offer wins, nothing changes.
        publish(server, gate, bundle(1), scope=scope_root(ROOT, "site:mall"))
        puller.poll()
        assert gate.installed() == 2
        assert puller.status()["pull_error"] == ""


def test_the_gate_scope_reaches_only_its_gate(server: Server, gate: Gate) -> None:
    publish(server, gate, bundle(5), scope=scope_root(ROOT, "gate:mall/other"))
    with gate.puller() as puller:
        puller.poll()
    assert gate.installed() == 1
    publish(server, gate, bundle(6), scope=scope_root(ROOT, "gate:mall/g1"))
    with gate.puller() as puller:
        puller.poll()
    assert gate.installed() == 6


def test_a_forged_bundle_is_refused_by_the_install_checks(server: Server, gate: Gate) -> None:
    genuine = bundle(3)
    path = publish(server, gate, genuine)
    forged = bundle(3, key=Ed25519PrivateKey.generate())
    # A compromised web server can serve any file with a descriptor that matches it:
    # only the authority's signature stands between it and the gate.
    sha = path.rsplit("/", 1)[-1]
    folder = server.folder / "dist" / FLEET / "dist"
    (folder / "trust" / sha).unlink()
    new_sha = hashlib.sha256(forged).hexdigest()
    (folder / "trust" / new_sha).write_bytes(forged)
    for path in [folder / "trust.json", *(folder / "trust").glob("f*.json")]:
        descriptor = json.loads(path.read_bytes())
        descriptor["files"][0].update(sha256=new_sha, size=len(forged))
        path.write_text(json.dumps(descriptor))
    with gate.puller() as puller:
        puller.poll()
        status = puller.status()
    assert gate.installed() == 1
    assert status["pull_state"] == "refused"
    assert status["pull_error"].startswith("trust: install:")


def test_a_wrong_file_fails_its_hash(server: Server, gate: Gate) -> None:
    path = publish(server, gate, bundle(2))
    (server.folder / path.removeprefix("/")).write_bytes(bundle(2)[::-1])  # same size, other bytes
    with gate.puller() as puller:
        puller.poll()
        assert "SHA-256 does not match" in puller.status()["pull_error"]
    assert gate.installed() == 1


def test_a_file_cut_short_is_refused_and_the_next_poll_recovers(
        server: Server, gate: Gate) -> None:
    content = bundle(2)
    path = publish(server, gate, content)

    def cut(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content[: len(content) // 2])
        handler.close_connection = True

    server.behaviour = answer(path, cut)
    with gate.puller() as puller:
        puller.poll()
        assert "trust:" in puller.status()["pull_error"]
        assert gate.installed() == 1
        server.behaviour = lambda _h: False
        puller.poll()
        assert gate.installed() == 2
        assert puller.status()["pull_error"] == ""


def test_a_file_longer_than_announced_is_cut_off_early(server: Server, gate: Gate) -> None:
    path = publish(server, gate, bundle(2))
    sixteen_mb = 16 * 1024 * 1024

    def flood(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(sixteen_mb))
        handler.end_headers()
        block = os.urandom(64 * 1024)
        sent = 0
        try:
            while sent < sixteen_mb:
                handler.wfile.write(block)
                sent += len(block)
        except OSError:
            pass  # the gate hung up, as it should
        server.sent[handler.path] = sent

    server.behaviour = answer(path, flood)
    with gate.puller() as puller:
        puller.poll()
        assert "longer than the announced" in puller.status()["pull_error"]
    assert gate.installed() == 1
    assert not (gate.config.device.data_dir / "pull").exists() or not any(
        (gate.config.device.data_dir / "pull").rglob("*.cose")
    )


def test_a_huge_descriptor_is_refused_unread(server: Server, gate: Gate) -> None:
    descriptor = server.folder / "dist" / FLEET / "dist" / "trust.json"
    descriptor.parent.mkdir(parents=True)
    descriptor.write_bytes(b"{" + b" " * (16 * 1024 * 1024) + b"}")
    with gate.puller() as puller:
        puller.poll()
        assert "larger than 4096 bytes" in puller.status()["pull_error"]
    assert gate.installed() == 1


def test_a_hanging_server_times_out(server: Server, gate: Gate) -> None:
    path = publish(server, gate, bundle(2))
    release = threading.Event()

    def hang(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "999")
        handler.end_headers()
        handler.wfile.flush()
        release.wait(30)

    server.behaviour = answer(path, hang)
    with gate.puller(timeout_s=1.0) as puller:
        started = time.monotonic()
        puller.poll()
        took = time.monotonic() - started
        assert "read failed" in puller.status()["pull_error"]
    release.set()
    assert gate.installed() == 1
    assert took < 20  # loose: the socket timeout is 1 s


def test_a_trickling_server_is_cut_off_by_the_deadline(server: Server, gate: Gate) -> None:
    content = bundle(2)
    path = publish(server, gate, content)

    gone = threading.Event()

    def trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        try:
            for byte in content:
                if gone.is_set():
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.01)
        except OSError:
            pass

    ticks = iter(range(0, 10**9, 60))  # every clock reading is a minute later
    server.behaviour = answer(path, trickle)
    with gate.puller(clock=lambda: float(next(ticks))) as puller:
        started = time.monotonic()
        puller.poll()
        took = time.monotonic() - started
        gone.set()
        assert "too slow" in puller.status()["pull_error"]
    assert gate.installed() == 1
    # Cut off after the first receive, not once the whole trickle has arrived (~7 s).
    assert took < len(content) * 0.01 / 2


def test_plain_http_and_odd_urls_are_refused_by_the_config(tmp_path: Path) -> None:
    for url in ("http://cdn.example/dist", "https://user:pw@cdn.example/", "https://cdn/?a=1"):
        config = tmp_path / "kiosk.toml"
        config.write_text(f'[remote]\npull_url = "{url}"\n')
        with pytest.raises(ConfigError, match=r"kiosk\.toml:2: remote\.pull_url: "):
            load_config(config)


def test_an_untrusted_server_certificate_is_refused(
        tmp_path: Path, server: Server, pki: Pki) -> None:
    other = make_pki(tmp_path / "other")
    gate = Gate(tmp_path / "gate", server.url, other.ca)
    publish(server, gate, bundle(2))
    with gate.puller() as puller:
        puller.poll()
        assert "cannot reach the server" in puller.status()["pull_error"]
    assert gate.installed() == 1


def test_the_publish_command_writes_the_layout(tmp_path: Path, server: Server, gate: Gate) -> None:
    source = tmp_path / "b.cose"
    source.write_bytes(bundle(4))
    out = server.folder / "dist"
    run = subprocess.run(
        [sys.executable, "-m", "kiosk", "central", "publish", "--kind", "trust",
         "--keys", str(gate.authority), "--scope", "site:mall", "--out-dir", str(out),
         str(source)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    with gate.puller() as puller:
        puller.poll()
    assert gate.installed() == 4
    # Withdrawing removes the offer and its files.
    run = subprocess.run(
        [sys.executable, "-m", "kiosk", "central", "publish", "--kind", "trust", "--withdraw",
         "--keys", str(gate.authority), "--scope", "site:mall", "--out-dir", str(out)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    site_dist = out / scope_root(ROOT, "site:mall") / "dist"
    assert not (site_dist / "trust.json").exists()
    assert not any((site_dist / "trust").iterdir())


def test_a_running_gate_without_a_broker_pulls_and_uses_the_bundle(
        tmp_path: Path, server: Server, pki: Pki) -> None:
    authority = write_authority(tmp_path)
    config, _, _ = setup(
        tmp_path,
        **{
            "verify.trust_source": "bundle",
            "verify.authority_keys": str(authority),
            "verify.reload_interval_s": 0.2,
            "remote.pull_url": server.url,
            "remote.pull_ca_file": str(pki.ca),
            "mqtt.enabled": False,
        },
    )
    state = config.device.data_dir
    state.mkdir(parents=True, exist_ok=True)
    install_bundle(bundle(1), state / config.verify.bundle_file, KEYS)
    source = server.folder / "upload.cose"
    source.write_bytes(bundle(7))
    release, contents = prepare_release("trust", [source], authority)
    write_release_dir(release, contents, kind="trust", root=FLEET, out_dir=server.folder / "dist")
    with build_app(config, source=_Idle(), pin_factory=MockFactory(),
                   wall_clock=lambda: NOW) as app:
        stop = threading.Event()
        thread = threading.Thread(target=app.loop.run, args=(stop,))
        thread.start()
        try:
            deadline = time.monotonic() + 30  # the first poll comes 0.5-5 s after start
            while time.monotonic() < deadline and app.loop._verifier.health().bundle_version != 7:
                time.sleep(0.1)
            assert app.loop._verifier.health().bundle_version == 7
        finally:
            stop.set()
            thread.join(5)


def test_variants_give_each_firmware_the_newest_format_it_reads(
        tmp_path: Path, server: Server, gate: Gate) -> None:
    v2 = {f: tmp_path / f"v2-f{f}.cose" for f in (1, 2)}
    for body_format, path in v2.items():
        path.write_bytes(bundle(2, body_format=body_format))
    run = subprocess.run(
        [sys.executable, "-m", "kiosk", "central", "publish", "--kind", "trust",
         "--keys", str(gate.authority), "--out-dir", str(server.folder / "dist"),
         str(v2[2]), str(v2[1])],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["formats"] == [1, 2]
    older = Gate(tmp_path / "older", server.url, gate.config.remote.pull_ca_file or Path())
    with gate.puller() as puller:
        puller.poll()
    with older.puller(readable=(1,)) as puller:
        puller.poll()
        assert puller.status()["pull_error"] == ""
    assert gate.bundle_path.read_bytes() == v2[2].read_bytes()
    assert older.bundle_path.read_bytes() == v2[1].read_bytes()
    # v3 in format 2 only: the older firmware keeps v2 and says why.
    publish(server, gate, bundle(3, body_format=2))
    with older.puller(readable=(1,)) as puller:
        puller.poll()
        assert puller.status()["pull_error"] == (
            "trust: no readable format for v3 (offered 2; reads 1)")
    assert older.installed() == 2
