"""atheris (libFuzzer) entry point for the verifier fuzz harness (docs/fuzzing.md).

Usage::

    python fuzz/fuzz_verify.py --make-corpus fuzz/corpus     # write the seed corpus
    python fuzz/fuzz_verify.py [libFuzzer flags] fuzz/corpus # fuzz

The harness (:mod:`harness`, next to this file) and the kiosk modules it loads
are imported inside ``atheris.instrument_imports`` so libFuzzer gets coverage
feedback from our code; C extensions (cbor2, zlib, OpenSSL) run uninstrumented.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def main() -> None:
    """Make the corpus, or fuzz :func:`harness.check_one`."""
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        import harness

        print(f"{harness.make_corpus(Path(sys.argv[2]))} seeds written")
        return
    import atheris  # type: ignore[import-untyped,unused-ignore]

    with atheris.instrument_imports(include=["kiosk", "harness"]):
        import harness
    harness.target()  # build the verifier and seeds once, before fuzzing
    atheris.Setup(sys.argv, harness.check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
