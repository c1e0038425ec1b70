"""The key derivation that turns a NIK into a status-list entry.

``entry = scrypt(password=NIK as 16 ASCII bytes, salt=list salt, N, r, p)``
truncated to the list's entry width. Each list version has its own random salt,
so work done against one version is useless against the next. See
docs/nik-privacy.md for why these parameters and what they do and do not stop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEFAULT_N = 2**16
DEFAULT_R = 8
DEFAULT_P = 1
DEFAULT_WIDTH = 8
SALT_BYTES = 16
# Bounds accepted from a manifest: a signed manifest is trusted, but a gate must
# not be asked for more memory than a Pi has (128 * N * r * p bytes).
MAX_MEMORY_BYTES = 256 * 1024 * 1024
MIN_WIDTH, MAX_WIDTH = 6, 16


@dataclass(frozen=True, slots=True)
class KdfParams:
    """scrypt cost parameters (RFC 7914).

    Attributes:
        n: CPU/memory cost, a power of two > 1. Memory is ``128 * n * r * p`` bytes.
        r: block size.
        p: parallelisation (run sequentially here, so time scales with p).
    """

    n: int = DEFAULT_N
    r: int = DEFAULT_R
    p: int = DEFAULT_P

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError(f"scrypt n={self.n} must be a power of two above 1")
        if self.r < 1 or self.p < 1:
            raise ValueError(f"scrypt r={self.r}, p={self.p} must be positive")
        if self.memory_bytes > MAX_MEMORY_BYTES:
            raise ValueError(f"scrypt needs {self.memory_bytes} bytes, above {MAX_MEMORY_BYTES}")

    @property
    def memory_bytes(self) -> int:
        """Working memory of one derivation, in bytes."""
        return 128 * self.n * self.r * self.p


DEFAULT_KDF = KdfParams()
"""Production parameters: N=2^16, r=8, p=1 (64 MiB, ~0.2 s per NIK on one x86 core)."""


def derive_entry(nik: str, salt: bytes, params: KdfParams, width: int) -> bytes:
    """The ``width``-byte list entry of ``nik`` (which must already be validated).

    Raises:
        ValueError: the NIK is not ASCII or the parameters are out of range.
    """
    return hashlib.scrypt(
        nik.encode("ascii"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        # OpenSSL refuses anything over its 32 MiB default unless told; allow the
        # documented working set plus slack.
        maxmem=params.memory_bytes + 16 * 1024 * 1024,
        dklen=width,
    )
