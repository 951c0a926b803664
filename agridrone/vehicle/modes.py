"""ArduCopter flight-mode numbers (HEARTBEAT ``custom_mode``) and their names."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from agridrone.errors import VehicleError

COPTER_MODES: Mapping[str, int] = MappingProxyType({
    "STABILIZE": 0, "ACRO": 1, "ALT_HOLD": 2, "AUTO": 3, "GUIDED": 4, "LOITER": 5, "RTL": 6, "CIRCLE": 7,
    "LAND": 9, "DRIFT": 11, "SPORT": 13, "FLIP": 14, "AUTOTUNE": 15, "POSHOLD": 16, "BRAKE": 17, "THROW": 18,
    "AVOID_ADSB": 19, "GUIDED_NOGPS": 20, "SMART_RTL": 21, "FLOWHOLD": 22, "FOLLOW": 23, "ZIGZAG": 24,
    "SYSTEMID": 25, "AUTOROTATE": 26, "AUTO_RTL": 27, "TURTLE": 28,
})
_NAMES: Mapping[int, str] = MappingProxyType({number: name for name, number in COPTER_MODES.items()})


def mode_name(custom_mode: int) -> str:
    """The Copter mode name for a ``custom_mode`` number (``MODE_<n>`` when unknown)."""
    return _NAMES.get(int(custom_mode), f"MODE_{int(custom_mode)}")


def mode_number(mode: str | int) -> int:
    """The ``custom_mode`` number for a name ("GUIDED") or a number; VehicleError when unknown."""
    if isinstance(mode, int) and not isinstance(mode, bool):
        if mode < 0:
            raise VehicleError(f"mode: expected a Copter mode number >= 0, got {mode}", result="invalid", origin="mode")
        return mode
    key = str(mode).strip().upper()
    if key not in COPTER_MODES:
        raise VehicleError(f"mode: expected one of {', '.join(COPTER_MODES)}, got {mode!r}", result="invalid",
                           origin="mode")
    return COPTER_MODES[key]
