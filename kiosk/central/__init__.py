"""The central side: fleet service, enrolment CA, operator certificates, publishing.

Runs at the operator or authority, never on a gate: device code (everything
else under :mod:`kiosk`) never imports this package. Both sides share only the
wire contract (docs/mqtt.md, docs/asyncapi.yaml), the signed-document format
(:mod:`kiosk.signing`) and the site/gate id rule (:mod:`kiosk.config.ids`).
"""
