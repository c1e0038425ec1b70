"""kiosk: offline-first entry-gate firmware.

The gate decides locally: QR certificates and KTP numbers are verified on the
device against signed trust material, so no network outage stops a gate.
"""

__version__ = "0.1.0"
