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
import contextlib
import hashlib
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
    CHUNK_BYTES,
    KINDS,
    VARIANT_KINDS,
    Release,
    ReleaseError,
    chunk_topic,
    descriptor_topic,
    parse_descriptor,
    release_for,
    variant_topic,
)

__all__ = [
    "Offer",
    "offers_for",
    "prepare_release",
    "publish_offers",
    "publish_release",
    "register",
    "scope_root",
    "write_offers",
    "write_release_dir",
]


def register(central: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``publish`` to the ``kiosk central`` subcommands."""
    publish = central.add_parser("publish", help="distribute a trust bundle or NIK list")
    publish.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="BUNDLE (or one bundle per body format: variants of one release), "
        "or MANIFEST DATA of a NIK list",
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
    body_format = None
    if kind == "trust":
        from kiosk.verify.bundle import load_bundle

        version = load_bundle(contents["bundle"], keys).version
        body_format = _bundle_format(contents["bundle"], keys)
    elif kind == "update":
        from kiosk.remote.update import read_update_manifest

        update = read_update_manifest(contents["manifest"], keys)
        artifact = contents["artifact"]
        if len(artifact) != update.size or hashlib.sha256(artifact).digest() != update.sha256:
            raise DocumentError("the update artifact does not match its signed manifest")
        version = update.build
    else:
        from kiosk.nik.listfile import read_manifest

        manifest = read_manifest(contents["manifest"], keys)
        data = contents["data"]
        if len(data) != manifest.data_size or hashlib.sha256(data).digest() != manifest.data_sha256:
            raise DocumentError("the NIK list data does not match its signed manifest")
        version = manifest.version
    return release_for(kind, version, contents, body_format), contents


def _bundle_format(blob: bytes, keys: list[Any]) -> int:
    """The body format of a signed bundle that :func:`load_bundle` has accepted."""
    from kiosk import cborsafe
    from kiosk.signing import TRUST_BUNDLE, verify_document
    from kiosk.verify.bundle import BODY_LIMITS, MAX_BYTES

    body = verify_document(blob, keys, content_type=TRUST_BUNDLE, max_bytes=MAX_BYTES)
    return int(cborsafe.loads(body, BODY_LIMITS)["format"])


Offer = tuple[str, Release | None]
"""A descriptor topic (or, below ``--out-dir``, path) and what it offers (None: nothing)."""


def offers_for(
    kind: str, root: str, releases: list[Release], *, withdraw: bool = False
) -> list[Offer]:
    """Where each release is described: the plain topic, and per format for trust bundles.

    Variants of one trust release (one bundle file per body format) must share
    the version and differ in format. Each format gets its own ``f<N>`` topic,
    and the plain topic, which firmware from before variants reads, the lowest.
    ``withdraw`` clears the plain topic and every variant this software knows.
    """
    if withdraw:
        formats: tuple[int, ...] = ()
        if kind in VARIANT_KINDS:
            from kiosk.verify.bundle import ACCEPTED_FORMATS

            formats = ACCEPTED_FORMATS
        cleared: list[Offer] = [(descriptor_topic(root, kind), None)]
        return cleared + [(variant_topic(root, kind, f), None) for f in formats]
    if len(releases) == 1 and releases[0].format is None:
        return [(descriptor_topic(root, kind), releases[0])]
    if not releases:
        raise ConfigError(f"nothing to publish: give the {kind} release's file(s)")
    if kind not in VARIANT_KINDS and len(releases) > 1:
        raise ConfigError(f"a {kind} release has no format variants: publish one at a time")
    versions = {r.version for r in releases}
    formats_seen = [r.format for r in releases]
    if len(versions) > 1:
        raise ConfigError(f"format variants must share one version, got {sorted(versions)}")
    if len(set(formats_seen)) != len(formats_seen):
        raise ConfigError("two bundles of the same format: publish one per format")
    # Best first, plain last: descriptors are published in this order, so a gate
    # sees the newest format before the ones it would only fall back to.
    ordered = sorted(releases, key=lambda r: r.format or 0, reverse=True)
    offers: list[Offer] = [(variant_topic(root, kind, r.format or 0), r) for r in ordered]
    offers.append((descriptor_topic(root, kind), ordered[-1]))
    return offers


def _current(
    client: Any, kind: str, topics: list[str], wait_s: float = 1.0
) -> list[Release | None]:
    """The descriptors retained on ``topics`` now (to clear their chunks later)."""
    import paho.mqtt.client as mqtt

    got: dict[str, bytes] = {}
    lock = threading.Lock()
    arrived = threading.Event()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            if msg.topic in topics:
                got[msg.topic] = bytes(msg.payload)
                if len(got) == len(set(topics)):
                    arrived.set()

    client.on_message = on_message
    for topic in topics:
        client.subscribe(topic, qos=1)
    arrived.wait(wait_s)  # retained messages come at once; a topic without one sends nothing
    for topic in topics:
        client.unsubscribe(topic)
    found: list[Release | None] = []
    with lock:
        for topic in topics:
            try:
                found.append(parse_descriptor(got[topic], kind) if got.get(topic) else None)
            except ReleaseError:
                found.append(None)
    return found


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
    offers = offers_for(kind, root, [release] if release else [], withdraw=release is None)
    return publish_offers(
        offers, _by_sha(release, contents), kind=kind, root=root, broker=broker, tls=tls
    )


def _by_sha(release: Release | None, contents: dict[str, bytes]) -> dict[str, bytes]:
    return {ref.sha256: contents[ref.role] for ref in release.files} if release else {}


def publish_offers(
    offers: list[Offer],
    files: dict[str, bytes],
    *,
    kind: str,
    root: str,
    broker: str,
    tls: dict[str, Path | None] | None = None,
) -> int:
    """Publish descriptors and the chunks of ``files`` (SHA-256 → content); messages sent.

    Every chunk first, each acknowledged, then the descriptors, then the chunks
    of the replaced releases that no new descriptor names any more (variants
    share the chunks of a file they have in common).
    """
    client = mqtt_client(broker, tls)
    client.loop_start()
    sent = 0
    try:
        previous = _current(client, kind, [topic for topic, _release in offers])
        new = [release for _topic, release in offers if release is not None]
        keep = {topic for release in new for topic in _chunk_topics(root, release)}
        for topic in sorted(keep):
            sha, index = topic.rsplit("/", 2)[-2:]
            content = files[sha]
            chunk = content[int(index) * CHUNK_BYTES : (int(index) + 1) * CHUNK_BYTES]
            client.publish(topic, chunk, qos=1, retain=True).wait_for_publish(30)
            sent += 1
        for topic, release in offers:
            payload = release.to_json() if release else b""
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(30)
            sent += 1
        for old in previous:
            for topic in _chunk_topics(root, old) if old is not None else ():
                if topic not in keep:
                    client.publish(topic, b"", qos=1, retain=True).wait_for_publish(30)
                    keep.add(topic)  # cleared once, though several descriptors named it
    finally:
        client.loop_stop()
        client.disconnect()
    return sent


def write_release_dir(
    release: Release | None, contents: dict[str, bytes], *, kind: str, root: str, out_dir: Path
) -> int:
    """Lay one release out for the HTTPS pull transport (None withdraws); files written."""
    offers = offers_for(kind, root, [release] if release else [], withdraw=release is None)
    return write_offers(offers, _by_sha(release, contents), kind=kind, root=root, out_dir=out_dir)


def write_offers(
    offers: list[Offer], files: dict[str, bytes], *, kind: str, root: str, out_dir: Path
) -> int:
    """Lay descriptors and files out for the HTTPS pull transport; files written.

    Files first, the descriptors last and each atomically, as on the broker: a
    gate polling meanwhile sees the old release or the new one, never a
    descriptor whose files are missing. Files no descriptor names are removed.
    """
    from kiosk.atomic import atomic_write
    from kiosk.remote.pull import file_path

    written = 0
    for sha, content in files.items():
        target = out_dir / file_path(root, kind, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, content)
        written += 1
    for topic, release in offers:
        descriptor = out_dir / f"{topic}.json"
        if release is None:
            descriptor.unlink(missing_ok=True)
            continue
        descriptor.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(descriptor, release.to_json())
        written += 1
    folder = out_dir / descriptor_topic(root, kind)
    named = set(files)
    for descriptor in [folder.with_suffix(".json"), *folder.glob("f*.json")]:
        if descriptor.is_file():
            with contextlib.suppress(ReleaseError):  # not a descriptor: its files go
                release = parse_descriptor(descriptor.read_bytes(), kind)
                named.update(ref.sha256 for ref in release.files)
    for old in folder.iterdir() if folder.is_dir() else ():
        if old.suffix != ".json" and old.name not in named:
            old.unlink()
    return written


def _publish(args: argparse.Namespace) -> int:
    root = scope_root(args.topic_root, args.scope)
    tls = {"ca": args.tls_ca, "cert": args.tls_cert, "key": args.tls_key}

    def send(offers: list[Offer], files: dict[str, bytes]) -> int:
        if args.out_dir is not None:
            return write_offers(offers, files, kind=args.kind, root=root, out_dir=args.out_dir)
        return publish_offers(
            offers, files, kind=args.kind, root=root, broker=args.broker, tls=tls
        )

    if args.withdraw:
        send(offers_for(args.kind, root, [], withdraw=True), {})
        print(f"{args.kind}: offer withdrawn from {root}")
        return 0
    # Trust bundles: one file per body format (variants of one release); others: one release.
    groups = [[f] for f in args.files] if args.kind == "trust" else [args.files]
    try:
        prepared = [prepare_release(args.kind, group, args.keys) for group in groups]
        offers = offers_for(args.kind, root, [release for release, _ in prepared])
    except DocumentError as exc:
        print(f"refused: {exc}; nothing was published", flush=True)
        return 1
    files: dict[str, bytes] = {}
    for release, contents in prepared:
        files.update(_by_sha(release, contents))
    sent = send(offers, files)
    print(
        json.dumps(
            {
                "kind": args.kind,
                "version": prepared[0][0].version,
                "formats": sorted(r.format for r, _ in prepared if r.format is not None),
                "scope": root,
                "bytes": sum(len(c) for c in files.values()),
                "messages": sent,
            }
        )
    )
    return 0
