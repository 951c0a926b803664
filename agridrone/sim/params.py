"""The simulator's parameter table: ArduCopter names, defaults and MAV_PARAM_TYPEs.

Defaults are the ones the recorded ArduCopter 4.7 SITL reported (copter.parm on a wiped eeprom).
Only parameters the simulator reads, or that the recordings and agridrone read, are present.
"""

from __future__ import annotations

import math

INT8, INT16, INT32, REAL32 = 2, 4, 6, 9

# name: (default, MAV_PARAM_TYPE)
DEFAULTS: dict[str, tuple[float, int]] = {
    "ARMING_CHECK": (1, INT32),
    "AVOID_ENABLE": (3, INT8),
    "AVOID_MARGIN": (2.0, REAL32),
    "BARO1_GND_PRESS": (0.0, REAL32),
    "BATT_CAPACITY": (3300, INT32),
    "DISARM_DELAY": (10, INT8),
    "EK3_SRC1_POSXY": (3, INT8),
    "ESC_CALIBRATION": (0, INT8),
    "FENCE_ACTION": (1, INT8),
    "FENCE_ALT_MAX": (100.0, REAL32),
    "FENCE_ENABLE": (0, INT8),
    "FENCE_MARGIN": (2.0, REAL32),
    "FENCE_RADIUS": (150.0, REAL32),
    "FENCE_TOTAL": (0, INT8),
    "FENCE_TYPE": (7, INT8),
    "FS_GCS_ENABLE": (0, INT8),
    "FS_GCS_TIMEOUT": (5.0, REAL32),
    "GUID_OPTIONS": (0, INT32),
    "GUID_TIMEOUT": (3.0, REAL32),
    "INS_GYROFFS_X": (0.0, REAL32),
    "INS_GYROFFS_Y": (0.0, REAL32),
    "INS_GYROFFS_Z": (0.0, REAL32),
    "LAND_ALT_LOW": (1000, INT16),
    "LAND_SPEED": (50, INT16),
    "LAND_SPEED_HIGH": (0, INT16),
    "MAV_GCS_SYSID": (255, INT16),
    "MAV_SYSID": (1, INT16),
    "MIS_TOTAL": (0, INT16),
    "RALLY_INCL_HOME": (1, INT8),
    "RALLY_TOTAL": (0, INT8),
    "RTL_ALT": (1500, INT32),
    "RTL_ALT_FINAL": (0, INT32),
    "RTL_LOIT_TIME": (5000, INT32),
    "RTL_SPEED": (0, INT16),
    "WPNAV_ACCEL": (250.0, REAL32),
    "WPNAV_RADIUS": (200.0, REAL32),
    "WPNAV_SPEED": (1000.0, REAL32),
    "WPNAV_SPEED_DN": (150.0, REAL32),
    "WPNAV_SPEED_UP": (250.0, REAL32),
}
# The first port's legacy stream rates: 0, so only HEARTBEAT, texts and TIMESYNC go out by default.
DEFAULTS.update({f"MAV1_{name}": (0, INT16) for name in ("RAW_SENS", "EXT_STAT", "RC_CHAN", "RAW_CTRL", "POSITION",
                                                          "EXTRA1", "EXTRA2", "EXTRA3", "PARAMS", "ADSB")})

# Counts the autopilot maintains itself; a PARAM_SET of them is answered with the current value.
READ_ONLY = frozenset({"FENCE_TOTAL", "RALLY_TOTAL", "MIS_TOTAL"})


def ground_pressure_pa(alt_m: float) -> float:
    """ISA static pressure at ``alt_m`` (what the barometer calibrates to at boot)."""
    return 101325.0 * (1.0 - 2.25577e-5 * alt_m) ** 5.25588


class Params:
    """Name -> value with ArduPilot's types; values are rounded to their type on set."""

    def __init__(self, home_alt_m: float = 0.0) -> None:
        self._values = {name: float(v) for name, (v, _t) in DEFAULTS.items()}
        self._values["BARO1_GND_PRESS"] = ground_pressure_pa(home_alt_m)
        self._names = sorted(self._values)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __getitem__(self, name: str) -> float:
        return self._values[name]

    def names(self) -> list[str]:
        return list(self._names)

    def index(self, name: str) -> int:
        return self._names.index(name)

    def type_of(self, name: str) -> int:
        return DEFAULTS[name][1]

    def set(self, name: str, value: float) -> bool:
        """Set a known parameter; returns False for unknown, read-only or non-finite values."""
        if name not in self._values or name in READ_ONLY or not math.isfinite(value):
            return False
        if self.type_of(name) != REAL32:
            value = float(int(round(value)))
        self._values[name] = float(value)
        return True

    def set_internal(self, name: str, value: float) -> None:
        """The autopilot updating a count it owns (FENCE_TOTAL, MIS_TOTAL...)."""
        self._values[name] = float(value)
