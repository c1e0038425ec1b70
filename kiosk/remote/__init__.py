"""Remote management on the gate: signed commands from operators (device side).

The central side that certifies operators and signs commands is in
:mod:`kiosk.central`; this package only verifies and remembers.
"""
