"""GUIDED-mode targets: position and velocity setpoints (SET_POSITION_TARGET_GLOBAL_INT).

No ACK exists for these messages: the autopilot obeys them only in GUIDED, silently ignores a
position target outside its fence, and stops after GUID_TIMEOUT (3 s by default) unless velocity
targets keep coming. So this module checks what it can before sending (GUIDED, finite numbers)
and leaves the outcome to telemetry.
"""

from __future__ import annotations

import math

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.errors import VehicleError
from agridrone.vehicle.link import Link
from agridrone.vehicle.telemetry import Telemetry

FRAME_GLOBAL_RELATIVE_ALT_INT = mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT  # 6
TYPE_MASK_POSITION = 3576      # use lat/lon/alt only
TYPE_MASK_VELOCITY = 3527      # use vx/vy/vz only
TYPE_MASK_POSITION_VELOCITY = 3520


class Offboard:
    def __init__(self, link: Link, telemetry: Telemetry) -> None:
        self._link = link
        self._telemetry = telemetry
        self._t0_ns = link.clock.monotonic_ns()

    def _require_guided(self, origin: str) -> None:
        mode = self._telemetry.state.mode
        if mode != "GUIDED":
            raise VehicleError(f"{origin}: expected the vehicle in GUIDED (it ignores targets otherwise), got {mode}",
                               result="not guided", origin=origin)

    def _send(self, type_mask: int, lat_deg: float = 0.0, lon_deg: float = 0.0, alt_m: float = 0.0,
              vn: float = 0.0, ve: float = 0.0, vd: float = 0.0) -> None:
        sysid, compid = self._link.target_system, self._link.target_component
        time_boot_ms = ((self._link.clock.monotonic_ns() - self._t0_ns) // 1_000_000) & 0xFFFFFFFF
        self._link.send(self._link.mav.set_position_target_global_int_encode(
            time_boot_ms, sysid, compid, FRAME_GLOBAL_RELATIVE_ALT_INT, type_mask,
            int(round(lat_deg * 1e7)), int(round(lon_deg * 1e7)), float(alt_m), float(vn), float(ve), float(vd),
            0.0, 0.0, 0.0, 0.0, 0.0))

    def goto(self, lat_deg: float, lon_deg: float, alt_rel_m: float) -> None:
        """Fly to a position, altitude relative to home (type_mask 3576; the target persists)."""
        origin = "SET_POSITION_TARGET_GLOBAL_INT position"
        values = (lat_deg, lon_deg, alt_rel_m)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) \
                or not -90 <= lat_deg <= 90 or not -180 <= lon_deg <= 180:
            raise VehicleError(f"{origin}: expected lat -90..90, lon -180..180 and a finite altitude, got {values}",
                               result="invalid", origin=origin, params=values)
        self._require_guided(origin)
        self._send(TYPE_MASK_POSITION, lat_deg, lon_deg, alt_rel_m)

    def set_velocity_ned(self, vn_m_s: float, ve_m_s: float, vd_m_s: float) -> None:
        """Fly at a velocity (m/s north, east, down; type_mask 3527). Re-send within GUID_TIMEOUT (3 s)."""
        origin = "SET_POSITION_TARGET_GLOBAL_INT velocity"
        values = (vn_m_s, ve_m_s, vd_m_s)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise VehicleError(f"{origin}: expected finite velocities in m/s, got {values}", result="invalid",
                               origin=origin, params=values)
        self._require_guided(origin)
        self._send(TYPE_MASK_VELOCITY, vn=vn_m_s, ve=ve_m_s, vd=vd_m_s)
