"""Configuration: declared once (:mod:`.schema`), loaded and validated once (:mod:`.loader`)."""

from kiosk.config.loader import load_config
from kiosk.config.schema import (
    CameraConfig,
    CountsConfig,
    DecoderConfig,
    DeviceConfig,
    DisplayConfig,
    GateConfig,
    KioskConfig,
    LoggingConfig,
    MqttConfig,
    VerifyConfig,
)

__all__ = [
    "CameraConfig",
    "CountsConfig",
    "DecoderConfig",
    "DeviceConfig",
    "DisplayConfig",
    "GateConfig",
    "KioskConfig",
    "LoggingConfig",
    "MqttConfig",
    "VerifyConfig",
    "load_config",
]
