"""The central side: services that run beside the broker, never on a gate.

Device code never imports this package. What both sides share is the wire
contract (``docs/mqtt.md``, ``docs/asyncapi.yaml``) and the signed-document
format (:mod:`kiosk.signing`).
"""
