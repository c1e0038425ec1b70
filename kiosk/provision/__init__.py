"""``kiosk provision``: give one installed gate its identity, its wiring and its broker.

:mod:`~kiosk.provision.identity` keeps the device key (generated here, 0600,
never leaves the gate), the CSR and the installed certificate;
:mod:`~kiosk.provision.answers` asks (or reads from flags or a provisioning
file) what is wired; :mod:`~kiosk.provision.configfile` writes the answers
into the gate's TOML config, keeping its comments. Gate code never imports
:mod:`kiosk.central`: the certificate comes back as a file (offline).
"""
