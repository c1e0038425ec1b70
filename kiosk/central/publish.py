"""``kiosk central publish``: put a signed trust bundle or NIK list where gates fetch it.

The release is checked here first with the gates' own readers (authority
signature, version; a NIK list's data against its manifest), so nothing is
published that every gate would refuse. Then its chunks are published retained,
each acknowledged by the broker, and only then the descriptor that points at
them: a gate never sees a descriptor whose chunks are not there yet. Chunks of
the release it replaces are cleared last (an empty retained message deletes one).

Roll-outs go in waves by scope: publish to one canary gate (``--scope
gate:SITE/GATE``), watch it on the fleet page, then a site, then the fleet; to
stop a wave, publish nothing further (``--withdraw`` removes a scope's offer;
installed versions never go back, by design).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kiosk.central.remote import DEFAULT_TOPIC_ROOT, mqtt_client
from kiosk.config.ids import check_id
from kiosk.config.topics import fill_topic_root
from kiosk.errors import ConfigError, DocumentError
from kiosk.remote.distribution import (
    ALL,
    KINDS,
    Release,
    ReleaseError,
    chunk_topic,
    descriptor_topic,
    parse_descriptor,
    release_for,
    split,
)

__all__ = ["prepare_release", "publish_release", "register", "scope_root", "write_release_dir"]


def register(central: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``publish`` to the ``kiosk central`` subcommands."""
    publish = central.add_parser("publish", help="distribute a trust bundle or NIK list")
    publish.add_argument(
        "files", nargs="*", type=Path, help="BUNDLE, or MANIFEST DATA of a NIK list"
    )
    publish.add_argument("--kind", choices=sorted(KINDS), required=True)
    publish.add_argument(
        "--keys",
        type=Path,
        required=True,
        help="authority public key(s): the release is checked before it goes out",
    )
    publish.add_argument(
        "--scope", default="fleet", help="fleet (default), site:SITE or gate:SITE/GATE"
    )
    publish.add_argument(
        "--withdraw", action="store_true", help="remove this scope's offer instead of publishing"
    )
    publish.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    publish.add_argument(
        "--out-dir",
        type=Path,
        help="write the release into this folder for a static HTTPS server "
        "(gates with remote.pull_url) instead of publishing it to the broker",
    )
    publish.add_argument("--topic-root", default=DEFAULT_TOPIC_ROOT)
    publish.add_argument("--tls-ca", type=Path)
    publish.add_argument("--tls-cert", type=Path)
    publish.add_argument("--tls-key", type=Path)
    publish.set_defaults(handler=_publish)

    update = central.add_parser("update-manifest", help="sign a software update (wheelhouse tar)")
    update.add_argument("artifact", type=Path, help="tar of wheels/*.whl that installs offline")
    update.add_argument("--key", type=Path, required=True, help="authority private key (PEM)")
    update.add_argument("--version", required=True, help="release version, e.g. 1.4.0")
    update.add_argument("--build", type=int, required=True, help="increasing build number")
    update.add_argument("--out", type=Path, required=True, help="manifest file")
    update.set_defaults(handler=_update_manifest)


def _update_manifest(args: argparse.Namespace) -> int:
    from kiosk.remote.update import sign_update_manifest
    from kiosk.signing import load_private_key

    try:
        blob = sign_update_manifest(
            load_private_key(args.key),
            version=args.version,
            build=args.build,
            artifact=args.artifact.read_bytes(),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    args.out.write_bytes(blob)
    print(f"{args.out}: update {args.version} (build {args.build})")
    return 0


def scope_root(topic_root: str, scope: str) -> str:
    """The topic root of ``fleet``, ``site:SITE`` or ``gate:SITE/GATE``."""
    if scope == "fleet":
        return fill_topic_root(topic_root, ALL, ALL)
    kind, _, rest = scope.partition(":")
    if kind == "site":
        return fill_topic_root(topic_root, check_id("site", rest), ALL)
    if kind == "gate":
        site, _, gate = rest.partition("/")
        return fill_topic_root(topic_root, check_id("site", site), check_id("gate", gate))
    raise ConfigError(f"--scope {scope[:40]!r}: expected fleet, site:SITE or gate:SITE/GATE")


def prepare_release(
    kind: str, files: list[Path], keys_path: Path
) -> tuple[Release, dict[str, bytes]]:
    """Read and check the files with the gates' own readers; the release and its contents."""
    from kiosk.signing import load_public_keys

    keys = load_public_keys(keys_path)
    roles = KINDS[kind]
    if len(files) != len(roles):
        raise ConfigError(f"a {kind} release takes {len(roles)} file(s): {' '.join(roles)}")
    contents = {role: path.read_bytes() for role, path in zip(roles, files, strict=True)}
    if kind == "trust":
        from kiosk.verify.bundle import load_bundle

        version = load_bundle(contents["bundle"], keys).version
    elif kind == "update":
        import hashlib

        from kiosk.remote.update import read_update_manifest

        update = read_update_manifest(contents["manifest"], keys)
        artifact = contents["artifact"]
        if len(artifact) != update.size or hashlib.sha256(artifact).digest() != update.sha256:
            raise DocumentError("the update artifact does not match its signed manifest")
        version = update.build
    else:
        import hashlib

        from kiosk.nik.listfile import read_manifest

        manifest = read_manifest(contents["manifest"], keys)
        data = contents["data"]
        if len(data) != manifest.data_size or hashlib.sha256(data).digest() != manifest.data_sha256:
            raise DocumentError("the NIK list data does not match its signed manifest")
        version = manifest.version
    return release_for(kind, version, contents), contents


def _current(client: Any, topic: str, wait_s: float = 1.0) -> Release | None:
    """The descriptor retained on ``topic`` now, if any (to clear its chunks later)."""
    import paho.mqtt.client as mqtt

    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == topic:
            got.append(bytes(msg.payload))
            arrived.set()

    client.on_message = on_message
    client.subscribe(topic, qos=1)
    arrived.wait(wait_s)
    client.unsubscribe(topic)
    if not got or not got[0]:
        return None
    try:
        return parse_descriptor(got[0], topic.rsplit("/", 1)[-1])
    except ReleaseError:
        return None


def _chunk_topics(root: str, release: Release) -> Iterable[str]:
    for ref in release.files:
        for index in range(ref.chunks):
            yield chunk_topic(root, release.kind, ref.sha256, index)


def publish_release(
    release: Release | None,
    contents: dict[str, bytes],
    *,
    kind: str,
    root: str,
    broker: str,
    tls: dict[str, Path | None] | None = None,
) -> int:
    """Publish (or with ``release=None`` withdraw) a scope's release; returns messages sent."""
    client = mqtt_client(broker, tls)
    client.loop_start()
    sent = 0
    try:
        topic = descriptor_topic(root, kind)
        previous = _current(client, topic)
        if release is not None:
            for ref in release.files:
                for index, chunk in split(contents[ref.role]):
                    info = client.publish(
                        chunk_topic(root, kind, ref.sha256, index), chunk, qos=1, retain=True
                    )
                    info.wait_for_publish(30)
                    sent += 1
        client.publish(
            topic, release.to_json() if release else b"", qos=1, retain=True
        ).wait_for_publish(30)
        sent += 1
        if previous is not None:
            keep = set(_chunk_topics(root, release)) if release is not None else set()
            for old in _chunk_topics(root, previous):
                if old not in keep:
                    client.publish(old, b"", qos=1, retain=True).wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()
    return sent


def write_release_dir(
    release: Release | None, contents: dict[str, bytes], *, kind: str, root: str, out_dir: Path
) -> int:
    """Lay ``release`` out for the HTTPS pull transport (None withdraws); files written.

    Files first, the descriptor last and atomically, as on the broker: a gate
    polling meanwhile sees the old release or the new one, never a descriptor
    whose files are missing. Files no longer named are removed afterwards.
    """
    from kiosk.atomic import atomic_write
    from kiosk.remote.pull import file_path

    descriptor = out_dir / f"{descriptor_topic(root, kind)}.json"
    folder = out_dir / descriptor_topic(root, kind)
    keep: set[str] = set()
    written = 0
    if release is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for ref in release.files:
            atomic_write(out_dir / file_path(root, kind, ref.sha256), contents[ref.role])
            keep.add(ref.sha256)
            written += 1
        atomic_write(descriptor, release.to_json())
        written += 1
    else:
        descriptor.unlink(missing_ok=True)
    if folder.is_dir():
        for old in folder.iterdir():
            if old.name not in keep:
                old.unlink()
    return written


def _publish(args: argparse.Namespace) -> int:
    root = scope_root(args.topic_root, args.scope)
    tls = {"ca": args.tls_ca, "cert": args.tls_cert, "key": args.tls_key}

    def send(release: Release | None, contents: dict[str, bytes]) -> int:
        if args.out_dir is not None:
            return write_release_dir(
                release, contents, kind=args.kind, root=root, out_dir=args.out_dir
            )
        return publish_release(
            release, contents, kind=args.kind, root=root, broker=args.broker, tls=tls
        )

    if args.withdraw:
        send(None, {})
        print(f"{args.kind}: offer withdrawn from {root}")
        return 0
    try:
        release, contents = prepare_release(args.kind, args.files, args.keys)
    except DocumentError as exc:
        print(f"refused: {exc}; nothing was published", flush=True)
        return 1
    sent = send(release, contents)
    size = sum(len(c) for c in contents.values())
    print(
        json.dumps(
            {
                "kind": args.kind,
                "version": release.version,
                "scope": root,
                "bytes": size,
                "messages": sent,
            }
        )
    )
    return 0
