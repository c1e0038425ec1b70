"""Child process for the huge-PUBLISH test: a publisher against a hostile broker.

Usage: ``python -m tests.telemetry.huge_publish_child DB PORT SECONDS [MAX_PACKET]``.
Runs a publisher for SECONDS, then prints one JSON line: the peak resident set
(VmHWM, KiB) before and after, ``last_error``, connects and ``refused.mqtt``.
A separate process so the peak belongs to the gate's code alone.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from kiosk.config.schema import MqttConfig
from kiosk.telemetry import CountStore, MqttPublisher
from kiosk.telemetry.link import MAX_INBOUND_PACKET_BYTES
from kiosk.telemetry.refused import RefusalCounter

DEVICE = "site-a/gate-01"


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def main() -> None:
    db, port, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    max_packet = int(sys.argv[4]) if len(sys.argv) > 4 else MAX_INBOUND_PACKET_BYTES
    CountStore(db, DEVICE).close()
    refusals = RefusalCounter()
    cfg = MqttConfig(host="127.0.0.1", port=port, keepalive_s=5)
    pub = MqttPublisher(
        cfg, "kiosk/site-a/gate-01", DEVICE, db, refusals=refusals, max_inbound_bytes=max_packet
    )
    before = peak_rss_kib()
    pub.start()
    time.sleep(seconds)
    stats = pub.stats()
    after = peak_rss_kib()
    pub.stop(2.0)
    print(
        json.dumps(
            {
                "rss_before_kib": before,
                "rss_peak_kib": after,
                "last_error": stats.last_error,
                "refused_mqtt": refusals.totals()["mqtt"],
                "connected": stats.connected,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
