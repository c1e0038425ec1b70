"""Build hook for the one compiled part: the optional Base45 accelerator.

Everything else is declared in pyproject.toml.  ``optional=True``: where no C
compiler or Python headers exist the build goes on without it and
kiosk.verify.base45 uses its pure-Python decoder (same results, ~2.5 us more
per scan; see docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kiosk.verify._base45",
            sources=["kiosk/verify/_base45.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
