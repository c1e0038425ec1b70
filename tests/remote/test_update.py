"""Software updates in a staged root: switch, probation, rollback by itself.

A "service manager" loop here does what systemd does on the device: run the
probation counter (``ExecStartPre``, system Python, outside any release), then
start ``current/venv/bin/kiosk``. A release that never becomes healthy is
rolled back after three starts; a healthy one commits itself.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.errors import DocumentError
from kiosk.remote import probation
from kiosk.remote.update import MAX_PROBATION_BOOTS, Updater, sign_update_manifest

AUTHORITY = Ed25519PrivateKey.generate()
KEYS = [AUTHORITY.public_key()]
REPO = Path(__file__).resolve().parents[2]
PROBATION = Path(probation.__file__)


def wheelhouse(*names: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in names:
            data = f"wheel {name}".encode()
            info = tarfile.TarInfo(f"wheels/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def program(healthy: bool) -> Callable[[Path, Path], None]:
    """A populate step whose ``kiosk`` either commits itself or crashes at start."""

    def populate(release: Path, wheels: Path) -> None:
        assert sorted(p.name for p in wheels.iterdir()) == ["kiosk-2-py3-none-any.whl"]
        bin_dir = release / "venv" / "bin"
        bin_dir.mkdir(parents=True)
        if healthy:
            body = (
                f"#!/bin/sh\ncd {REPO} && exec {sys.executable} -c "
                f'"from pathlib import Path; from kiosk.remote.update import Updater; '
                f"Updater(Path('$ROOT'), []).mark_healthy()\"\n"
            )
        else:
            body = "#!/bin/sh\necho 'ImportError: the new release is broken' >&2\nexit 1\n"
        script = bin_dir / "kiosk"
        script.write_text(body)
        script.chmod(0o755)

    return populate


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """/opt/kiosk as install.sh --pi leaves it, with release 1 running."""
    release = tmp_path / "releases" / "1"
    (release / "venv" / "bin").mkdir(parents=True)
    (release / "venv" / "bin" / "kiosk").write_text("#!/bin/sh\nexit 0\n")
    (release / "venv" / "bin" / "kiosk").chmod(0o755)
    probation.point(tmp_path / "current", "releases/1")
    return tmp_path


def artifact(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "update.tar.gz"
    path.write_bytes(content)
    return path


def start_service(root: Path) -> int:
    """ExecStartPre (probation, system Python) then ExecStart, as systemd would."""
    subprocess.run([sys.executable, str(PROBATION), str(root)], check=True)
    result = subprocess.run(
        [str(root / "current" / "venv" / "bin" / "kiosk")],
        env={"ROOT": str(root), "PATH": "/usr/bin:/bin"},
    )
    return result.returncode


def test_a_release_that_fails_its_health_check_is_rolled_back(root: Path, tmp_path: Path) -> None:
    content = wheelhouse("kiosk-2-py3-none-any.whl")
    manifest = sign_update_manifest(AUTHORITY, version="2", build=2, artifact=content)
    updater = Updater(root, KEYS, populate=program(healthy=False))
    assert updater.install(manifest, artifact(tmp_path, content)) == "2"
    assert updater.current == "2"
    statuses = [start_service(root) for _ in range(MAX_PROBATION_BOOTS)]
    assert statuses[:-1] == [1] * (MAX_PROBATION_BOOTS - 1)
    assert statuses[-1] == 0  # the third start ran the old release again
    assert updater.current == "1"
    assert updater.state()["rolled_back"] == "2"
    # The failed build is remembered: it is not installed again.
    with pytest.raises(DocumentError, match="not newer"):
        updater.install(manifest, artifact(tmp_path, content))


def test_a_healthy_release_commits_itself_and_old_releases_go(root: Path, tmp_path: Path) -> None:
    content = wheelhouse("kiosk-2-py3-none-any.whl")
    manifest = sign_update_manifest(AUTHORITY, version="2", build=2, artifact=content)
    updater = Updater(root, KEYS, populate=program(healthy=True))
    updater.install(manifest, artifact(tmp_path, content))
    assert start_service(root) == 0
    assert updater.state()["committed"] == "2"
    for _ in range(MAX_PROBATION_BOOTS + 1):
        start_service(root)
    assert updater.current == "2"  # committed: later starts are not on probation
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["1", "2"]


def test_forged_or_mismatched_updates_switch_nothing(root: Path, tmp_path: Path) -> None:
    content = wheelhouse("kiosk-2-py3-none-any.whl")
    updater = Updater(root, KEYS, populate=program(healthy=True))
    forged = sign_update_manifest(
        Ed25519PrivateKey.generate(), version="2", build=2, artifact=content
    )
    with pytest.raises(DocumentError):
        updater.install(forged, artifact(tmp_path, content))
    other = sign_update_manifest(AUTHORITY, version="2", build=2, artifact=content + b"x")
    with pytest.raises(DocumentError, match="does not match"):
        updater.install(other, artifact(tmp_path, content))
    sneaky = wheelhouse("kiosk-2-py3-none-any.whl", "../../etc/passwd")
    signed = sign_update_manifest(AUTHORITY, version="2", build=2, artifact=sneaky)
    with pytest.raises(DocumentError, match="other than wheels"):
        updater.install(signed, artifact(tmp_path, sneaky))
    assert updater.current == "1" and updater.state() == {}
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["1"]
