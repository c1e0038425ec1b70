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


def build_wheel(folder: Path, name: str, version: str, module: str, source: str) -> Path:
    """A pure-Python wheel written by hand per the wheel spec (PEP 427, RECORD hashes)."""
    import base64
    import hashlib
    import zipfile

    info = f"{name}-{version}.dist-info"
    files = {
        f"{module}.py": source.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: kiosk-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\nkiosk = {module}:main\n".encode(),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def wheelhouse_of(*wheels: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for wheel in wheels:
            archive.add(wheel, arcname=f"wheels/{wheel.name}")
    return buffer.getvalue()


def test_pip_populate_builds_a_real_release_venv_offline(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiosk.remote.update import pip_populate

    built, decoys = tmp_path / "built", tmp_path / "decoys"
    built.mkdir()
    decoys.mkdir()
    probe = "def main():\n    print('kiosk release 2 running')\n"
    good = build_wheel(built, "kiosk", "2", "kiosk_release_probe", probe)
    # Unsigned kiosk wheels offered by pip's environment and configuration: never used.
    build_wheel(decoys, "kiosk", "3", "kiosk_decoy", "def main():\n    print('decoy')\n")
    (tmp_path / "pip.conf").write_text(f"[global]\nfind-links = {decoys}\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(decoys))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "pip.conf"))
    content = wheelhouse_of(good)
    manifest = sign_update_manifest(AUTHORITY, version="2", build=2, artifact=content)
    updater = Updater(root, KEYS, populate=pip_populate)
    # A wheelhouse without the kiosk distribution cannot be installed (no index and no
    # decoy to fall back on): the build fails and nothing is switched or left behind.
    other = wheelhouse_of(build_wheel(built, "other", "1", "other_probe", probe))
    wrong = sign_update_manifest(AUTHORITY, version="2", build=2, artifact=other)
    with pytest.raises(subprocess.CalledProcessError):
        updater.install(wrong, artifact(tmp_path, other))
    assert updater.current == "1"
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["1"]

    assert updater.install(manifest, artifact(tmp_path, content)) == "2"
    assert updater.current == "2" and updater.state()["pending"] == "2"
    program_path = root / "current" / "venv" / "bin" / "kiosk"
    result = subprocess.run([str(program_path)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "kiosk release 2 running"
    # The console script runs the release's own interpreter, inside its own folder.
    interpreter = program_path.read_text().splitlines()[0]
    assert interpreter.startswith("#!") and str(root / "releases" / "2" / "venv") in interpreter
