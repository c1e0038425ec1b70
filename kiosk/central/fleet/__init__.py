"""``kiosk fleet serve``: the operators' fleet view (docs/fleet.md).

One process: an MQTT consumer of the gates' topics, one store owner that
de-duplicates reports and keeps exact totals (SQLite or PostgreSQL), alarms,
and an HTTP server for the page, the JSON API and ``/metrics``.
"""
