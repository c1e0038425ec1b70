"""Build hook for the compiled parts: two optional accelerators of the scan path.

Everything else is declared in pyproject.toml.  ``optional=True``: where no C
compiler or Python headers exist the build goes on without them, and each
falls back to its reference (same results, slower; see docs/performance.md):

* ``kiosk.verify._base45``: kiosk.verify.base45 uses its pure-Python decoder
  (~2.5 us more per scan);
* ``kiosk._cbor``: kiosk.cborsafe decodes everything with cbor2 (~3 us more
  per scan).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(name, sources=[source], extra_compile_args=["-O2"], optional=True)
        for name, source in (
            ("kiosk.verify._base45", "kiosk/verify/_base45.c"),
            ("kiosk._cbor", "kiosk/_cbor.c"),
        )
    ]
)
