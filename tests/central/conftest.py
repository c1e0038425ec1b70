"""A real PostgreSQL server for the fleet tests (Debian's postgresql package).

Started once per session in a temporary folder, as an unprivileged user
(``nobody`` when the tests run as root, as on CI; initdb refuses root), on a
free port of 127.0.0.1, and removed afterwards. Each test gets its own database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """``postgresql://fleet@127.0.0.1:PORT`` of a private server (no database part)."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL not installed (install.sh --dev installs postgresql)")
        pytest.skip("PostgreSQL not installed")
    root = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "fleet", "-E", "UTF8", "--no-sync"], check=True, capture_output=True, env=env)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l",
                    str(root / "log"), "-o", options, "-w", "-t", "30", "start"],
                   check=True, capture_output=True, env=env)
    try:
        yield f"postgresql://fleet@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, env=env)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_server: str) -> Callable[[], str]:
    """Makes a new empty database and returns its URL."""
    import psycopg

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{postgres_server}/{name}"

    return make
