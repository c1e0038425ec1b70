"""atheris (libFuzzer) entry point for the bounded CBOR reader's harness (docs/fuzzing.md).

Usage::

    python fuzz/fuzz_cbor.py --make-corpus fuzz/corpus-cbor   # write the seed corpus
    python fuzz/fuzz_cbor.py [libFuzzer flags] fuzz/corpus-cbor
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def main() -> None:
    """Make the corpus, or fuzz :func:`cbor_harness.check_one`."""
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        import cbor_harness

        print(f"{cbor_harness.make_corpus(Path(sys.argv[2]))} seeds written")
        return
    import atheris  # type: ignore[import-untyped,unused-ignore]

    with atheris.instrument_imports(include=["kiosk", "cbor_harness"]):
        import cbor_harness
    atheris.Setup(sys.argv, cbor_harness.check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
