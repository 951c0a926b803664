"""The simulated airframe: a point mass in local east/north/up metres, flown by a position and
velocity controller with ArduCopter's limits (WPNAV_SPEED, WPNAV_ACCEL, WPNAV_SPEED_UP/_DN).

It knows nothing of MAVLink or modes: modes set a ``Target`` and ``step(dt)`` moves the mass.
Attitude is derived from the commanded acceleration (plus the lean that cancels air drag in wind),
yaw turns towards the direction of travel. Wind changes attitude and airspeed; the position
controller is assumed to cancel its drift (a deliberate simplification).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GRAVITY_M_S2 = 9.80665
DRAG_PER_S = 0.1  # linear drag, 1/s: ~6 degrees of lean at 10 m/s airspeed
YAW_RATE_RAD_S = math.radians(90.0)
ACCEL_Z_M_S2 = 1.25  # vertical acceleration limit; the recorded take-off reaches 2.5 m/s in ~2 s
DECEL_Z_M_S2 = 0.7  # vertical stopping profile: the recorded climb eases off over the last ~5 m
BRAKE_M_S2 = 1.25  # BRAKE and the GUID_TIMEOUT stop: 4.2 m/s -> still in ~3.5 s, as recorded


@dataclass
class Target:
    """What the controller flies to.

    kind: "idle" (motors off or spinning on the ground), "hold" (stay at e/n/u), "pos" (fly to e/n/u),
    "vel" (fly ve/vn/vu), "brake" (stop as quickly as the limits allow, then hold), "land" (hold
    e/n, descend at the landing speeds).
    """

    kind: str = "idle"
    e: float = 0.0
    n: float = 0.0
    u: float = 0.0
    ve: float = 0.0
    vn: float = 0.0
    vu: float = 0.0
    speed_m_s: float | None = None  # horizontal speed limit for "pos" (None: WPNAV_SPEED)


class PointMass:
    """State and one physics step. All limits in SI units, read from the caller's parameters."""

    def __init__(self, wind_en: tuple[float, float] = (0.0, 0.0)) -> None:
        self.e = self.n = self.u = 0.0
        self.ve = self.vn = self.vu = 0.0
        self.ae = self.an = self.au = 0.0
        self.yaw_rad = 0.0
        self.wind_e, self.wind_n = wind_en
        self.target = Target()
        # limits (set by the autopilot from parameters)
        self.speed_max_m_s = 10.0
        self.accel_max_m_s2 = 2.5
        self.climb_max_m_s = 2.5
        self.descent_max_m_s = 1.5
        self.land_speed_m_s = 0.5
        self.land_speed_high_m_s = 1.5
        self.land_alt_low_m = 10.0
        self.on_ground = True

    # --- derived
    @property
    def ground_speed_m_s(self) -> float:
        return math.hypot(self.ve, self.vn)

    @property
    def airspeed_m_s(self) -> float:
        return math.hypot(self.ve - self.wind_e, self.vn - self.wind_n)

    def distance_to(self, e: float, n: float, u: float | None = None) -> float:
        du = 0.0 if u is None else (u - self.u)
        return math.sqrt((e - self.e) ** 2 + (n - self.n) ** 2 + du * du)

    def attitude(self) -> tuple[float, float]:
        """(roll_rad, pitch_rad) that produce the horizontal acceleration and cancel drag."""
        fe = self.ae + DRAG_PER_S * (self.ve - self.wind_e)
        fn = self.an + DRAG_PER_S * (self.vn - self.wind_n)
        s, c = math.sin(self.yaw_rad), math.cos(self.yaw_rad)
        fwd = fe * s + fn * c
        right = fe * c - fn * s
        g = GRAVITY_M_S2 + self.au
        return math.atan2(right, g), -math.atan2(fwd, g)

    # --- the controller
    def _desired_velocity(self) -> tuple[float, float, float]:
        t = self.target
        if t.kind == "vel":
            return t.ve, t.vn, t.vu
        if t.kind in ("idle", "brake"):
            return 0.0, 0.0, 0.0
        de, dn = t.e - self.e, t.n - self.n
        d = math.hypot(de, dn)
        vmax = self.speed_max_m_s if t.speed_m_s is None else min(t.speed_m_s, self.speed_max_m_s)
        v = min(vmax, math.sqrt(2.0 * self.accel_max_m_s2 * d * 0.9), 2.0 * d)
        ve, vn = (v * de / d, v * dn / d) if d > 1e-6 else (0.0, 0.0)
        if t.kind == "land":
            high = self.u > self.land_alt_low_m
            return ve, vn, -(self.land_speed_high_m_s if high else self.land_speed_m_s)
        du = t.u - self.u
        vz = min(math.sqrt(2.0 * DECEL_Z_M_S2 * abs(du)), 1.5 * abs(du))
        vu = min(vz, self.climb_max_m_s) if du > 0 else -min(vz, self.descent_max_m_s)
        return ve, vn, vu

    def step(self, dt: float) -> None:
        if self.target.kind == "idle" and self.on_ground:
            self.ve = self.vn = self.vu = self.ae = self.an = self.au = 0.0
            return
        de_v, dn_v, du_v = self._desired_velocity()
        ae, an = (de_v - self.ve) / dt, (dn_v - self.vn) / dt
        a = math.hypot(ae, an)
        a_max = BRAKE_M_S2 if self.target.kind == "brake" else self.accel_max_m_s2
        if a > a_max:
            ae, an = ae * a_max / a, an * a_max / a
        au = max(-ACCEL_Z_M_S2, min(ACCEL_Z_M_S2, (du_v - self.vu) / dt))
        self.ae, self.an, self.au = ae, an, au
        self.ve += ae * dt
        self.vn += an * dt
        self.vu += au * dt
        self.e += self.ve * dt
        self.n += self.vn * dt
        self.u += self.vu * dt
        if self.target.kind == "brake" and self.ground_speed_m_s < 0.05:
            self.target = Target("hold", self.e, self.n, self.u)
        if self.u <= 0.0 and self.vu <= 0.0:
            self.u = 0.0
            self.on_ground = True
        elif self.u > 0.05:
            self.on_ground = False
        if self.ground_speed_m_s > 1.0:
            want = math.atan2(self.ve, self.vn)
            diff = (want - self.yaw_rad + math.pi) % (2 * math.pi) - math.pi
            step = max(-YAW_RATE_RAD_S * dt, min(YAW_RATE_RAD_S * dt, diff))
            self.yaw_rad = (self.yaw_rad + step) % (2 * math.pi)

    def stop_on_ground(self) -> None:
        self.u = 0.0
        self.ve = self.vn = self.vu = self.ae = self.an = self.au = 0.0
        self.on_ground = True
        self.target = Target("idle", self.e, self.n, 0.0)

    def hold_here(self) -> Target:
        return Target("hold", self.e, self.n, self.u)
