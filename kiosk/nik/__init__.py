"""KTP input: NIK validation, signed privacy-preserving status lists, input devices."""
