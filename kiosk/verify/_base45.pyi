"""Type stub of the compiled Base45 decoder (kiosk/verify/_base45.c)."""

def decode(text: str) -> bytes:
    """Decode Base45 ``text``; raises the bound error class on invalid input."""

def bind(cls: type[ValueError]) -> None:
    """Raise ``cls`` on invalid input from now on."""
