"""Child process for the SIGKILL test: records a numbered stream of scans.

Usage: ``python -m tests.telemetry.crash_child DB PORT ROOT N``. It resumes where
the store says the stream stopped, prints ``resume <k>`` and then, for each scan
``i`` whose ``record()`` has *returned* (committed), prints ``ok <i>``. So the
parent knows which scans were confirmed; at most one more (in flight when the
kill came) may be on disk. After the last scan it drains the outbox and prints
``drained <bool>``, then waits to be killed.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from kiosk.config.schema import MqttConfig
from kiosk.telemetry import CountStore, MqttPublisher

from .helpers import at, decisions

DEVICE = "site-a/gate-01"


def main() -> None:
    db, port, root, n = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    stream = decisions(n)
    cfg = MqttConfig(host="127.0.0.1", port=port, keepalive_s=5, discovery=False)
    with CountStore(db, DEVICE, max_rows=400, check_every=100) as store:
        pub = MqttPublisher(cfg, root, DEVICE, db)
        pub.start()
        totals = store.totals()
        done = totals["allowed"] + totals["denied"]
        print(f"resume {done}", flush=True)
        for i in range(done, n):
            store.record(stream[i], at(i))
            pub.notify()
            print(f"ok {i}", flush=True)
            time.sleep(0.001)  # paced (a real lane is far slower), so kills land mid-stream
        print(f"drained {pub.drain(20.0)}", flush=True)
        threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
