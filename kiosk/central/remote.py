"""``kiosk central operator ...`` and ``kiosk central command ...``: signed remote actions.

The authority certifies operator keys (``operator certify``); an operator signs
and publishes one command per gate with their own key (``command``). The fleet
service never holds an operator key: issuing stays on the operator's machine.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.central.broker import parse_broker_url
from kiosk.central.fleet.messages import Diagnostics, Rejected, TopicMatcher, parse
from kiosk.config.topics import fill_topic_root
from kiosk.errors import ConfigError
from kiosk.remote.command import ACTIONS, certify_operator, encode_command, sign_command
from kiosk.signing import load_private_key, load_public_keys, save_private_key, save_public_key

__all__ = ["Answer", "command_topic", "mqtt_client", "publish_command", "register"]

DEFAULT_TOPIC_ROOT = "kiosk/{site}/{gate}"


def command_topic(topic_root: str, site: str, gate: str) -> str:
    """The topic a gate receives its commands on (docs/mqtt.md)."""
    return fill_topic_root(topic_root, site, gate) + "/command"


def register(central: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``operator`` and ``command`` to the ``kiosk central`` subcommands."""
    operator = central.add_parser("operator", help="operator keys and their certificates")
    op_sub = operator.add_subparsers(required=True, metavar="OPERATOR_COMMAND")

    keygen = op_sub.add_parser("keygen", help="new operator key pair (private key mode 0600)")
    keygen.add_argument("--out", type=Path, required=True, help="private key file (PEM)")
    keygen.set_defaults(handler=_keygen)

    certify = op_sub.add_parser("certify", help="authority: certify an operator's public key")
    certify.add_argument("--authority-key", type=Path, required=True, help="authority key (PEM)")
    certify.add_argument("--operator-pub", type=Path, required=True, help="operator public key")
    certify.add_argument("--name", required=True, help="operator or desk name (≤ 64 chars)")
    certify.add_argument("--role", required=True, help="role, e.g. supervisor (≤ 64 chars)")
    certify.add_argument(
        "--actions", required=True, help=f"comma-separated, of: {', '.join(sorted(ACTIONS))}"
    )
    certify.add_argument("--sites", default="*", help="comma-separated site ids, or * (default)")
    certify.add_argument("--days", type=float, default=30.0, help="validity (default 30)")
    certify.add_argument("--out", type=Path, required=True, help="certificate file")
    certify.set_defaults(handler=_certify)

    command = central.add_parser("command", help="sign and publish a command to gates")
    command.add_argument("action", choices=sorted(ACTIONS))
    command.add_argument("--site", required=True)
    command.add_argument("--gate", required=True, action="append", help="repeat for each gate")
    command.add_argument("--key", type=Path, required=True, help="operator private key (PEM)")
    command.add_argument("--cert", type=Path, required=True, help="operator certificate")
    command.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt[s]://HOST:PORT")
    command.add_argument("--topic-root", default=DEFAULT_TOPIC_ROOT)
    command.add_argument("--lifetime", type=int, default=60, help="seconds (1-300, default 60)")
    command.add_argument("--tls-ca", type=Path)
    command.add_argument("--tls-cert", type=Path)
    command.add_argument("--tls-key", type=Path)
    command.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for each outcome (0: none)"
    )
    command.set_defaults(handler=_command)


def _keygen(args: argparse.Namespace) -> int:
    key = Ed25519PrivateKey.generate()
    save_private_key(key, args.out)
    public = args.out.with_suffix(".pub.pem")
    save_public_key(key.public_key(), public)
    print(f"private key {args.out} (keep it on this machine), public key {public}")
    return 0


def _certify(args: argparse.Namespace) -> int:
    authority = load_private_key(args.authority_key)
    [operator] = load_public_keys(args.operator_pub)
    now = int(time.time())
    try:
        blob = certify_operator(
            authority,
            operator,
            name=args.name,
            role=args.role,
            actions=[a.strip() for a in args.actions.split(",") if a.strip()],
            sites=[s.strip() for s in args.sites.split(",") if s.strip()],
            not_before=now - 60,
            not_after=now + int(args.days * 86400),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    args.out.write_bytes(blob)
    print(f"{args.out}: operator {args.name!r} ({args.role}) for {args.days:g} days")
    return 0


def mqtt_client(broker: str, tls: dict[str, Path | None] | None = None) -> Any:
    """A connected paho client (MQTT v5) for ``mqtt[s]://HOST:PORT``, TLS files optional."""
    import paho.mqtt.client as mqtt

    host, port, use_tls = parse_broker_url(broker)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if use_tls or (tls and tls.get("ca")):
        client.tls_set(
            ca_certs=str(tls["ca"]) if tls and tls.get("ca") else None,
            certfile=str(tls["cert"]) if tls and tls.get("cert") else None,
            keyfile=str(tls["key"]) if tls and tls.get("key") else None,
        )
    client.connect(host, port)
    return client


class Answer(NamedTuple):
    """A gate's answer to one command.

    ``outcome``: its counted event (``command.<action>`` or
    ``command_refused.<reason>``), None when none arrived in time; ``report``:
    its diagnostics report for this command, when one was asked for and came.
    """

    outcome: str | None
    report: Diagnostics | None = None


#: Largest gate event read (a diagnostics report is about 1 KB).
MAX_EVENT_BYTES = 4096


def publish_command(
    messages: dict[str, bytes],
    *,
    broker: str,
    topic_root: str,
    site: str,
    wait_s: float,
    tls: dict[str, Path | None] | None = None,
    report_ids: Mapping[str, str] | None = None,
) -> dict[str, Answer]:
    """Publish one signed message per gate (QoS 1, never retained); collect the answers.

    ``report_ids``: gate → id (hex) of the diagnostics command sent to it, whose
    report to wait for as well.  Events are read as the fleet service reads
    them (:func:`kiosk.central.fleet.messages.parse`: bounded, checked); a
    report answering another command is ignored.  Returns gate →
    :class:`Answer`, after ``wait_s`` at most.
    """
    import paho.mqtt.client as mqtt

    client = mqtt_client(broker, tls)
    wanted = dict(report_ids or {})
    outcomes: dict[str, str | None] = dict.fromkeys(messages)
    reports: dict[str, Diagnostics] = {}
    done = threading.Event()
    event_topics = {fill_topic_root(topic_root, site, g) + "/events": g for g in messages}
    matcher = TopicMatcher(topic_root)

    def answered(gate: str) -> bool:
        outcome = outcomes[gate]
        return outcome is not None and (
            gate not in wanted or gate in reports or outcome.startswith("command_refused."))

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        gate = event_topics.get(msg.topic)
        if gate is None or len(msg.payload) > MAX_EVENT_BYTES:
            return
        try:
            message = parse(matcher, msg.topic, bytes(msg.payload), MAX_EVENT_BYTES)
        except Rejected:
            message = None
        if isinstance(message, Diagnostics):
            if wanted.get(gate) == message.command:
                reports[gate] = message
        else:
            try:
                event = json.loads(msg.payload).get("event", "")
            except (ValueError, AttributeError, RecursionError):
                return
            if isinstance(event, str) and event.startswith(("command.", "command_refused.")):
                outcomes[gate] = event
        if all(answered(g) for g in outcomes):
            done.set()

    client.on_message = on_message
    client.loop_start()
    try:
        for topic in event_topics:
            client.subscribe(topic, qos=1)
        for gate, blob in messages.items():
            client.publish(command_topic(topic_root, site, gate), blob, qos=1, retain=False)
        if wait_s > 0:
            done.wait(wait_s)
    finally:
        client.loop_stop()
        client.disconnect()
    return {gate: Answer(outcomes[gate], reports.get(gate)) for gate in messages}


def _command(args: argparse.Namespace) -> int:
    key = load_private_key(args.key)
    certificate = args.cert.read_bytes()
    now = int(time.time())
    ids = {gate: secrets.token_bytes(16) for gate in args.gate}
    messages = {
        gate: encode_command(
            certificate,
            sign_command(
                key,
                action=args.action,
                site=args.site,
                gate=gate,
                issued_at=now,
                lifetime_s=args.lifetime,
                command_id=ids[gate],
            ),
        )
        for gate in args.gate
    }
    diagnostics = args.action == "diagnostics" and args.wait > 0
    answers = publish_command(
        messages,
        broker=args.broker,
        topic_root=args.topic_root,
        site=args.site,
        wait_s=args.wait,
        tls={"ca": args.tls_ca, "cert": args.tls_cert, "key": args.tls_key},
        report_ids={gate: ids[gate].hex() for gate in ids} if diagnostics else None,
    )
    failed = False
    for gate, (outcome, report) in answers.items():
        shown = outcome or ("sent" if args.wait <= 0 else "no answer")
        print(f"{args.site}/{gate}: {shown}")
        failed |= (outcome is None and args.wait > 0) or bool(outcome and "refused" in outcome)
        if diagnostics and outcome is not None and "refused" not in outcome:
            if report is None:
                print("  no diagnostics report")
                failed = True
            else:
                print(_report_text(report))
                failed |= report.result == "fail"
    sys.stdout.flush()
    return 1 if failed else 0


def _report_text(report: Diagnostics) -> str:
    """A diagnostics report as indented lines: result, then one line per check."""
    lines = [f"  result: {_printable(report.result)}"]
    for name, (status, detail) in report.checks.items():
        lines.append(f"  {_printable(name):<12} {_printable(status):<5} {_printable(detail)}")
    return "\n".join(lines)


def _printable(text: str) -> str:
    """``text`` (checked and bounded by the parser) with anything but printable ASCII as '?'.

    A gate's detail reaches the operator's terminal: no escape sequence gets through.
    """
    return "".join(c if " " <= c <= "~" else "?" for c in text)
