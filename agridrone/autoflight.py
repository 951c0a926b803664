"""Fly a compiled survey in AUTO and watch it to the end: what ``agridrone demo`` and the
mission scenarios do with a vehicle (real or simulated).

Order: fence and rally, then the mission (``mission.upload``); the fence parameters the mission
needs (FENCE_TYPE without ArduPilot's default 150 m circle, FENCE_ALT_MAX, FENCE_ENABLE); GUIDED,
arm, take off to the mission's altitude; AUTO; then watch until the vehicle has landed and
disarmed (the mission ends with RTL or LAND). Every wait is bounded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from agridrone.errors import MissionError, WaitTimeout
from agridrone.geo import distance_m

MISSION_STATE_COMPLETE = 5
NAV_TAKEOFF = 22


@dataclass(frozen=True)
class FlightReport:
    completed: bool
    duration_s: float                 # vehicle time from AUTO to disarm: wall time x the vehicle's speed-up
    wall_s: float
    distance_m: float
    items_reached: tuple[int, ...]
    max_alt_rel_m: float
    fence_breaches: int
    statustexts: tuple[str, ...] = ()
    track: tuple[tuple[float, float, float], ...] = field(default=(), repr=False)  # (lat, lon, alt_rel)


def takeoff_alt_m(compiled) -> float:
    for it in compiled.items:
        if it.command == NAV_TAKEOFF:
            return float(it.z)
    raise MissionError("compiled mission: expected a NAV_TAKEOFF item, got none")


def prepare(vehicle, compiled, *, timeout_s: float = 60.0) -> None:
    """Upload fence, rally and mission, then set the fence parameters the mission relies on."""
    from agridrone.mission.upload import upload_mission

    upload_mission(vehicle, compiled, timeout_s=timeout_s)
    params = dict(compiled.params)
    enable = params.pop("FENCE_ENABLE", None)
    for name, value in params.items():
        vehicle.params.set(name, value)
    if enable is not None:
        vehicle.params.set("FENCE_ENABLE", enable)


def fly_auto(vehicle, compiled, *, wall_timeout_s: float, climb_timeout_s: float = 60.0,
             on_progress: Callable[[object], None] | None = None, progress_every_s: float = 1.0,
             speedup: float = 1.0) -> FlightReport:
    """GUIDED take-off then AUTO through the uploaded mission; returns when the vehicle has disarmed."""
    t_wall0 = time.monotonic()
    alt = takeoff_alt_m(compiled)
    vehicle.set_mode("GUIDED")
    vehicle.arm()
    vehicle.takeoff(alt)
    vehicle.wait_until(lambda st: st.alt_rel_home_m is not None and st.alt_rel_home_m >= 0.9 * alt,
                       climb_timeout_s, f"take-off to {0.9 * alt:.0f} m above home")
    breaches = 0
    reached: list[int] = []
    texts: list[str] = []
    with vehicle.events.subscribe({"mission_item_reached", "fence_breach", "statustext"}) as events:
        vehicle.set_mode("AUTO")
        track: list[tuple[float, float, float]] = []
        last_pose_ts = None
        t_auto = time.monotonic()
        dist = 0.0
        max_alt = 0.0
        next_progress = time.monotonic()
        deadline = t_wall0 + wall_timeout_s
        while True:
            st = vehicle.state
            pose = st.pose
            if pose is not None and pose.ts_ns != last_pose_ts:
                last_pose_ts = pose.ts_ns
                if track:
                    dist += distance_m(track[-1][0], track[-1][1], pose.lat_deg, pose.lon_deg)
                track.append((pose.lat_deg, pose.lon_deg, pose.alt_rel_home_m))
                max_alt = max(max_alt, pose.alt_rel_home_m)
            while True:
                try:
                    ev = events.get(0.0)
                except WaitTimeout:
                    break
                if ev.kind == "mission_item_reached":
                    reached.append(int(ev.value))
                elif ev.kind == "fence_breach" and ev.value:
                    breaches += 1
                elif ev.kind == "statustext":
                    texts.append(ev.value.text)
            if on_progress is not None and time.monotonic() >= next_progress:
                on_progress(st)
                next_progress = time.monotonic() + progress_every_s
            if not st.armed and (st.alt_rel_home_m or 0.0) < 1.0:
                break
            if time.monotonic() > deadline:
                raise WaitTimeout(f"AUTO mission: expected landing and disarm within {wall_timeout_s:.0f} s, got "
                                  f"mode {st.mode} at item {st.mission_seq}/{st.mission_total}",
                                  origin="mission completion", timeout_s=wall_timeout_s)
            time.sleep(0.02)
    st = vehicle.state
    n_last = len(compiled.items) - 1
    completed = (st.mission_state == MISSION_STATE_COMPLETE or (reached and max(reached) >= n_last - 1)
                 or st.mission_seq == n_last)
    duration = (time.monotonic() - t_auto) * speedup
    return FlightReport(bool(completed), duration, time.monotonic() - t_wall0, dist, tuple(sorted(set(reached))),
                        max_alt, breaches, tuple(texts), tuple(track))
