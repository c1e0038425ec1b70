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
        Extension(
            "kiosk.verify._base45",
            sources=["kiosk/verify/_base45.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "kiosk._cbor",
            sources=["kiosk/_cbor.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
