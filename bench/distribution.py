"""Benchmark: a large signed NIK status list sent over MQTT to a gate, vs a local install.

Usage: ``python bench/distribution.py [--size 16777216] [--dir /tmp]``.
Prints one JSON object. Needs the ``mosquitto`` binary. Nothing is left
behind: every file lives in a temporary folder under ``--dir`` (never the
repository), removed at the end, and the broker is stopped.

Method:

- A signed list of ``--size`` bytes (random sorted 8-byte entries, as
  bench/niklist.py: scrypt output is uniform, so no KDF is run; a fresh
  authority key signs the manifest) is written once.
- Baseline, same run, same files: a child process installs it with
  :func:`kiosk.nik.store.install_list`, the function behind ``kiosk nik
  install`` (signature, expiry, version, size and SHA-256, copy, fsync, block
  index); the figure is the call alone, not the interpreter's start.
- Distribution: a private Mosquitto on a free port, with the site broker's
  queue settings (config/mosquitto/site-broker.conf: ``max_inflight_messages
  100``, ``max_queued_messages 10000``). The gate side is a child process
  running the gate's own parts: :class:`~kiosk.telemetry.MqttPublisher`'s link
  feeding a :class:`~kiosk.remote.receiver.ReleaseReceiver` with the gate's
  installers (:func:`kiosk.remote.installers.gate_installers`), as
  ``build_app`` wires them with ``remote.distribution = true``. Once it is
  connected, the centre publishes with ``kiosk central publish``'s functions
  (:func:`~kiosk.central.publish.prepare_release`, then
  :func:`~kiosk.central.publish.publish_release`: chunks, each acknowledged,
  then the descriptor) to this gate's scope.
- ``time_to_installed_s`` runs from the start of the publish to the return of
  the gate's install call (both processes read CLOCK_MONOTONIC, one clock on
  Linux); ``ratio_to_local_install`` divides it by the baseline. It includes
  the publisher's look for a release already retained on the scope (it waits
  up to 1 s), so ``first_chunk_to_installed_s`` (the gate's first chunk to
  its install's return: transfer, staging, hash and install) is given too.
- ``peak_rss_kb`` is each child's VmHWM (the interpreter and kiosk's imports
  included; the local install's child is the same interpreter, for comparison).
- ``hash_matches``: the SHA-256 of the file the gate installed equals that of
  the file published.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from _ports import free_port, wait_port
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.nik.kdf import DEFAULT_KDF
from kiosk.nik.listfile import Manifest, sign_manifest

WIDTH = 8
SITE, GATE = "bench", "g1"
TOPIC_ROOT = "kiosk/{site}/{gate}"
BROKER_SETTINGS = "max_inflight_messages 100\nmax_queued_messages 10000\n"


def _peak_rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _make_list(folder: Path, size: int) -> tuple[Path, Path, Path]:
    """A signed list of about ``size`` bytes; its manifest, data and the authority's key."""
    from kiosk.signing import save_public_key

    rng = np.random.default_rng(7)
    count = max(1, size // WIDTH)
    keys = np.unique(rng.integers(0, 2**64 - 1, size=count, dtype=np.uint64, endpoint=True))
    data = folder / "niklist-1.data"
    keys.astype(">u8").tofile(data)
    digest = hashlib.sha256(data.read_bytes()).digest()
    now = datetime.now(UTC).replace(microsecond=0)
    manifest = Manifest(
        version=1,
        salt=secrets.token_bytes(16),
        kdf=DEFAULT_KDF,
        width=WIDTH,
        count=keys.size,
        issued_at=now - timedelta(minutes=1),
        expires_at=now + timedelta(days=1),
        data_sha256=digest,
    )
    authority = Ed25519PrivateKey.generate()
    manifest_path = folder / "niklist-1.manifest"
    manifest_path.write_bytes(sign_manifest(manifest, authority))
    key_path = folder / "authority.pem"
    save_public_key(authority.public_key(), key_path)
    return manifest_path, data, key_path


# ------------------------------------------------------------------ child roles


def _local_install(args: argparse.Namespace) -> dict[str, Any]:
    """Child: ``kiosk nik install``'s function on the same files."""
    from kiosk.nik.store import data_name, install_list
    from kiosk.signing import load_public_keys

    keys = load_public_keys(Path(args.keys))
    target = Path(args.target)
    start = time.monotonic()
    manifest = install_list(Path(args.manifest), Path(args.data), target, keys, datetime.now(UTC))
    elapsed = time.monotonic() - start
    return {
        "install_s": elapsed,
        "peak_rss_kb": _peak_rss_kb(),
        "sha256": _sha256(target / data_name(manifest.version)),
    }


def _gate(args: argparse.Namespace) -> dict[str, Any]:
    """Child: the gate's link, receiver and installers; waits for the list, reports."""
    from kiosk.config import load_config
    from kiosk.nik.store import data_name
    from kiosk.remote.installers import gate_installers
    from kiosk.remote.receiver import Installers, ReleaseReceiver
    from kiosk.telemetry.wiring import make_publisher, open_count_store

    folder = Path(args.target)
    config = load_config(
        None,
        {
            "device.data_dir": str(folder),
            "device.site": SITE,
            "device.gate": GATE,
            "mqtt.enabled": True,
            "mqtt.host": "127.0.0.1",
            "mqtt.port": args.port,
            "mqtt.discovery": False,
            "nik.mode": "list",
            "nik.list_dir": str(folder / "niklist"),
            "verify.authority_keys": args.keys,
            "remote.distribution": True,
        },
    )
    installers = gate_installers(config)
    installed_at: list[float] = []

    def install(kind: str, files: Any) -> int:
        version = installers.install(kind, files)
        installed_at.append(time.monotonic())
        return version

    first_chunk_at: list[float] = []

    class TimedReceiver(ReleaseReceiver):
        def offer(self, topic: str, payload: bytes) -> None:
            if not first_chunk_at and topic.count("/") > 5:  # <root>/dist/nik/<sha>/<i>
                first_chunk_at.append(time.monotonic())
            super().offer(topic, payload)

    receiver = TimedReceiver(
        topic_root=config.mqtt.topic_root,
        site=SITE,
        gate=GATE,
        staging=folder / "dist",
        installers=Installers(installed_version=installers.installed_version, install=install),
    )
    store = open_count_store(config)
    publisher = make_publisher(config, store, object(), releases=receiver)
    receiver.start(publisher)
    publisher.start()
    try:
        deadline = time.monotonic() + 20
        while not publisher.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the descriptor subscriptions follow the CONNACK
        print(json.dumps({"ready": publisher.connected}), flush=True)
        deadline = time.monotonic() + args.timeout
        while not installed_at and time.monotonic() < deadline:
            if receiver.status().get("dist_state") == "refused":
                break
            time.sleep(0.01)
        status = receiver.status()
        path = config.nik.list_dir / data_name(1)
        return {
            "installed_at": installed_at[0] if installed_at else None,
            "first_chunk_at": first_chunk_at[0] if first_chunk_at else None,
            "dist_state": status.get("dist_state"),
            "dist_error": status.get("dist_error"),
            "peak_rss_kb": _peak_rss_kb(),
            "sha256": _sha256(path) if path.exists() else None,
        }
    finally:
        publisher.stop(2.0)
        receiver.close()
        store.close()


# ------------------------------------------------------------------ the run


def _child(role: str, **options: object) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--role", role]
    for name, value in options.items():
        argv += [f"--{name}", str(value)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def _last_json(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise SystemExit(f"child failed with exit code {process.returncode}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole measurement; returns the report."""
    from kiosk.central.publish import prepare_release, publish_release, scope_root

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory(prefix="bench-distribution-", dir=args.dir) as tmp:
        folder = Path(tmp)
        manifest, data, keys = _make_list(folder, args.size)
        size = data.stat().st_size
        source_sha = _sha256(data)
        files = {"manifest": manifest, "data": data, "keys": keys}

        local = _last_json(_child("local-install", target=folder / "local", **files), 600)

        port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            + BROKER_SETTINGS
        )
        broker = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(port, 10)
            gate = _child("gate", target=folder / "gate", keys=keys, port=port,
                          timeout=args.timeout)  # fmt: skip
            assert gate.stdout is not None
            ready = json.loads(gate.stdout.readline())
            if not ready.get("ready"):
                raise SystemExit("the gate did not connect to the broker")
            start = time.monotonic()
            release, contents = prepare_release("nik", [manifest, data], keys)
            prepared = time.monotonic()
            sent = publish_release(
                release,
                contents,
                kind="nik",
                root=scope_root(TOPIC_ROOT, f"gate:{SITE}/{GATE}"),
                broker=f"mqtt://127.0.0.1:{port}",
            )
            published = time.monotonic()
            received = _last_json(gate, args.timeout + 60)
        finally:
            broker.terminate()
            broker.wait(10)
    installed_at = received["installed_at"]
    to_installed = None if installed_at is None else installed_at - start
    return {
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "size_bytes": size,
        "entries": size // WIDTH,
        "chunks": sum(ref.chunks for ref in release.files),
        "messages_published": sent,
        "broker": BROKER_SETTINGS.strip().replace("\n", ", "),
        "prepare_s": round(prepared - start, 3),
        "publish_s": round(published - prepared, 3),
        "time_to_installed_s": None if to_installed is None else round(to_installed, 3),
        "first_chunk_to_installed_s": None
        if installed_at is None or received["first_chunk_at"] is None
        else round(installed_at - received["first_chunk_at"], 3),
        "local_install_s": round(local["install_s"], 3),
        "ratio_to_local_install": None
        if to_installed is None
        else round(to_installed / local["install_s"], 1),
        "first_chunk_ratio_to_local_install": None
        if installed_at is None or received["first_chunk_at"] is None
        else round((installed_at - received["first_chunk_at"]) / local["install_s"], 1),
        "gate_peak_rss_kb": received["peak_rss_kb"],
        "local_install_peak_rss_kb": local["peak_rss_kb"],
        "installed": installed_at is not None,
        "dist_state": received["dist_state"],
        "dist_error": received["dist_error"],
        "hash_matches": received["sha256"] == source_sha == local["sha256"],
    }


def main() -> None:
    """Parse arguments, run (or play one child's role), print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=16 * 1024 * 1024, help="list bytes")
    parser.add_argument("--dir", default="/tmp", help="where the temporary files go")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for it")
    parser.add_argument("--role", choices=("local-install", "gate"), help=argparse.SUPPRESS)
    for hidden in ("manifest", "data", "keys", "target"):
        parser.add_argument(f"--{hidden}", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "local-install":
        print(json.dumps(_local_install(args)))
        return
    if args.role == "gate":
        print(json.dumps(_gate(args)), flush=True)
        return
    if Path(args.dir).resolve().is_relative_to(Path(__file__).resolve().parents[1]):
        sys.exit("refusing to write the benchmark files inside the repository")
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
