"""The enrolment CA: one-time tokens, device certificates (CN = ``<site>/<gate>``).

A gate proves who it is to the broker with a certificate this CA signed for
its own key (generated on the gate, never leaving it). The CA signs a CSR only
with a valid unused enrolment token issued for exactly that site and gate.
"""

from kiosk.central.enrol.ca import DEVICE_VALIDITY_DAYS, EnrolmentCA, Issued
from kiosk.central.enrol.tokens import TokenBook

__all__ = ["DEVICE_VALIDITY_DAYS", "EnrolmentCA", "Issued", "TokenBook"]
