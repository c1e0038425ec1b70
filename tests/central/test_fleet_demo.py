"""``kiosk demo`` (the README's main command) shows the demo gate on a live fleet page.

Run as a person runs it, in a subprocess; here no broker answers at the given
address, so the demo starts a private Mosquitto, the fleet service beside it,
and prints the page's address and token. The page's API then shows the demo
gate's counts growing while it plays its samples.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.central.helpers import wait_until
from tests.conftest import free_port


def _gate(url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(url + "api/gates/demo-site/demo-gate",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def test_kiosk_demo_prints_a_live_fleet_page(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here: the demo brings its own broker
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SDL_VIDEODRIVER": "dummy"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "demo", "--headless", "--fast",
         "--workdir", str(tmp_path / "demo"), "--mqtt", f"127.0.0.1:{closed}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        assert demo.stdout is not None
        found = None
        deadline = time.monotonic() + 60
        while found is None and time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, "demo exited before printing the fleet page"
            found = re.search(r"fleet page: (http://\S+/)\s+\(token: (\S+),", line)
        assert found is not None
        url, token = found.group(1), found.group(2)
        assert wait_until(lambda: int(_gate(url, token)["totals"]["allowed"]) >= 2, 30)
        first = int(_gate(url, token)["seq"])
        assert wait_until(lambda: int(_gate(url, token)["seq"]) > first, 30)  # live
        assert (tmp_path / "demo" / "fleet-token").read_text().strip() == token
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(5)
    assert demo.returncode == 0
