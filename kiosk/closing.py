"""One way for every resource to be a context manager: ``with part:`` calls ``close()``."""

from __future__ import annotations

from typing import Self


class Closing:
    """Mixin for parts that own a device, file or connection.

    Subclasses implement ``close()`` idempotently (safe twice and after a failed
    ``__init__``); ``with part:`` then closes it on any exit, exception or not.
    """

    def close(self) -> None:
        """Release what the part owns. Subclasses override; idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
