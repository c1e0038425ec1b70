"""The central side: enrolment CA (and, from other issues, the fleet service, publishing).

Gate code never imports this package; both sides share only the wire contract
(docs/mqtt.md, docs/asyncapi.yaml), the signed-document format
(:mod:`kiosk.signing`) and the id rule (:mod:`kiosk.ids`).
"""
