"""Base45 codec: RFC 9285 vectors, strict validation, round trips.

Every behavioural test runs against both decoders: the pure-Python reference
(``decode_python``) and the compiled accelerator (``_base45.decode``, built by
the install).  A differential property test checks they agree on every input,
bytes or error message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.verify import base45
from tests.conftest import REPO_ROOT

try:
    from kiosk.verify import _base45
except ImportError:  # the install could not compile it: the Python decoder runs alone
    _base45 = None  # type: ignore[assignment]

Decoder = Callable[[str], bytes]
DECODERS = [pytest.param(base45.decode_python, id="python"),
            pytest.param(_base45.decode if _base45 else None, id="c",
                         marks=pytest.mark.skipif(_base45 is None, reason="not compiled"))]
needs_c = pytest.mark.skipif(_base45 is None, reason="compiled decoder not built")


def test_compiled_decoder_is_built_in_ci() -> None:
    # install.sh installs a compiler and the Python headers, so CI must run
    # the accelerator it ships; elsewhere the fallback is allowed.
    if os.environ.get("CI") == "true":
        assert base45.IMPLEMENTATION == "c"
    assert (base45.decode is base45.decode_python) == (base45.IMPLEMENTATION == "python")


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"),
     (b"ietf!", "QED8WEX0"), (b"", ""), (b"\x00", "00"), (b"\xff\xff", "FGW")],
)
def test_rfc_vectors(decode: Decoder, raw: bytes, text: str) -> None:
    assert base45.encode(raw) == text
    assert decode(text) == raw


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("bad", "message"),
    [("GGW", "3-character group above 0xFFFF"),  # 65536
     (":::", "3-character group above 0xFFFF"),  # 91124, the largest group
     ("A", "invalid length 1 (1 modulo 3)"),
     ("ABCD", "invalid length 4 (1 modulo 3)"),
     ("aBC", "character outside the Base45 alphabet"),  # lower case
     ("AB#", "character outside the Base45 alphabet"),
     ("GGWab", "character outside the Base45 alphabet"),  # alphabet before range
     ("ÄBC", "non-ASCII character"),
     ("Ä", "non-ASCII character"),  # non-ASCII before length
     ("BB8::", "final 2-character group above 0xFF"),  # 2024
     ("GGW::", "3-character group above 0xFFFF"),  # groups before the tail
     ],
)
def test_decode_rejects_invalid(decode: Decoder, bad: str, message: str) -> None:
    with pytest.raises(base45.Base45Error, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(bad)


@needs_c
def test_compiled_decoder_refuses_non_text() -> None:
    with pytest.raises(TypeError, match="must be str"):
        _base45.decode(b"BB8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="subclass of ValueError"):
        _base45.bind(KeyError)  # type: ignore[arg-type]


@pytest.mark.parametrize("decode", DECODERS)
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_round_trip(decode: Decoder, data: bytes) -> None:
    assert decode(base45.encode(data)) == data


@pytest.mark.parametrize("decode", DECODERS)
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet=base45.ALPHABET + "ab#", max_size=60))
def test_decode_only_raises_its_own_error(decode: Decoder, text: str) -> None:
    try:
        out = decode(text)
    except base45.Base45Error:
        return
    # Whatever decodes must re-encode to the same text (the encoding is canonical).
    assert base45.encode(out) == text


def _outcome(decode: Decoder, text: str) -> tuple[str, bytes | str]:
    try:
        return "ok", decode(text)
    except base45.Base45Error as exc:
        return "error", str(exc)


@needs_c
@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=700)
       | st.text(alphabet=base45.ALPHABET, max_size=700)
       | st.text(alphabet=base45.ALPHABET + "a#\x80é\x00", max_size=90)
       | st.binary(max_size=400).map(base45.encode))
def test_compiled_and_python_decoders_agree(text: str) -> None:
    assert _outcome(_base45.decode, text) == _outcome(base45.decode_python, text)


_ASAN_CHECK = """
import importlib.util, random, sys
spec = importlib.util.spec_from_file_location("kiosk.verify._base45", sys.argv[1])
compiled = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compiled)
from kiosk.verify import base45
compiled.bind(base45.Base45Error)
def outcome(decode, text):
    try:
        return decode(text)
    except base45.Base45Error as exc:
        return str(exc)
rnd = random.Random(7)
odd = base45.ALPHABET + "a#\\x80\\xe9\\x00\\uffff"
for _ in range(40000):
    text = "".join(rnd.choice(odd if rnd.random() < 0.1 else base45.ALPHABET)
                   for _ in range(rnd.randrange(0, 40)))
    assert outcome(compiled.decode, text) == outcome(base45.decode_python, text), repr(text)
    data = rnd.randbytes(rnd.randrange(0, 80))
    assert compiled.decode(base45.encode(data)) == data
print("checked")
"""


@needs_c
def test_compiled_decoder_is_memory_safe_under_sanitizers(tmp_path: Path) -> None:
    # The C decoder parses hostile QR text: build it again with AddressSanitizer
    # and UndefinedBehaviorSanitizer and run a differential check through it.
    gcc = shutil.which("gcc")
    asan = subprocess.run([gcc or "gcc", "-print-file-name=libasan.so"],
                          capture_output=True, text=True).stdout.strip() if gcc else ""
    ubsan = subprocess.run([gcc or "gcc", "-print-file-name=libubsan.so"],
                           capture_output=True, text=True).stdout.strip() if gcc else ""
    if not (gcc and os.path.isabs(asan) and os.path.isabs(ubsan)):
        pytest.skip("gcc with libasan/libubsan not available")
    module = tmp_path / f"_base45{sysconfig.get_config_var('EXT_SUFFIX')}"
    source = Path(base45.__file__).with_name("_base45.c")
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                    f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(module)],
                   check=True, capture_output=True)
    # PYTHONMALLOC=malloc: every object gets its own malloc block, so ASan sees
    # its exact bounds (pymalloc arenas would hide small overruns).
    env = {**os.environ, "LD_PRELOAD": f"{asan}:{ubsan}", "ASAN_OPTIONS": "detect_leaks=0",
           "PYTHONMALLOC": "malloc"}
    result = subprocess.run([sys.executable, "-c", _ASAN_CHECK, str(module)], env=env,
                            capture_output=True, text=True, timeout=240, cwd=REPO_ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "checked", result.stderr[-2000:]
