"""Telemetry: the messages the simulator sends, built from the autopilot's state, and the
per-channel scheduling of SET_MESSAGE_INTERVAL / REQUEST_DATA_STREAM rates in simulated time.

Field values follow the recorded ArduCopter 4.7 SITL (SYS_STATUS sensor bits, GPS_RAW_INT fix 6
with 10 satellites, HOME_POSITION with a NaN quaternion, MISSION_CURRENT total = count - 1, ...).
"""

from __future__ import annotations

import math

from pymavlink.dialects.v20 import ardupilotmega as mav

from agridrone.sim import modes as M

HEARTBEAT, SYS_STATUS, SYSTEM_TIME, GPS_RAW_INT, ATTITUDE = 0, 1, 2, 24, 30
LOCAL_POSITION_NED, GLOBAL_POSITION_INT, MISSION_CURRENT, GPS_GLOBAL_ORIGIN = 32, 33, 42, 49
VFR_HUD, POSITION_TARGET_GLOBAL_INT, TIMESYNC, BATTERY_STATUS = 74, 87, 111, 147
AUTOPILOT_VERSION, FENCE_STATUS, EKF_STATUS_REPORT, HOME_POSITION = 148, 162, 193, 242

# Legacy REQUEST_DATA_STREAM groups (MAV_DATA_STREAM_*), as ArduPilot maps them, limited to what we send.
_GROUPS = {
    2: (SYS_STATUS, GPS_RAW_INT, MISSION_CURRENT, POSITION_TARGET_GLOBAL_INT, FENCE_STATUS),
    6: (GLOBAL_POSITION_INT, LOCAL_POSITION_NED),
    10: (ATTITUDE,),
    11: (VFR_HUD,),
    12: (BATTERY_STATUS, EKF_STATUS_REPORT, SYSTEM_TIME),
}
DATA_STREAMS = {0: tuple(m for group in _GROUPS.values() for m in group), **_GROUPS}  # 0 = MAV_DATA_STREAM_ALL

SENSORS_PRESENT = 0x5371FC2F
SENSORS_ENABLED = 0x52419C2F
SENSORS_HEALTH = 0x47419C2F  # without the geofence bit, which is set unless a fence is breached
BIT_POS_CTRL = (1 << 13) | (1 << 14) | (1 << 21)
BIT_GPS, BIT_GEOFENCE, BIT_MOTORS, BIT_PREARM = 1 << 5, 1 << 20, 1 << 24, 1 << 28
POSITION_MODES = frozenset({M.AUTO, M.GUIDED, M.LOITER, M.RTL, M.CIRCLE, M.LAND, M.POSHOLD, M.BRAKE, M.SMART_RTL})

FLIGHT_SW_VERSION = 0x04070000
CAPABILITIES = 0xFBEF
GIT_HASH = b"90700977"


def heartbeat(ap):
    mode = ap.modes.mode
    base = 81 if (ap.booted and mode not in POSITION_MODES) else 89
    if ap.armed:
        base |= 128
    if not ap.booted:
        status = 1
    elif ap.armed and not ap.vehicle.on_ground:
        status = 4
    else:
        status = 3
    return mav.MAVLink_heartbeat_message(type=2, autopilot=3, base_mode=base, custom_mode=mode,
                                         system_status=status, mavlink_version=3)


def sys_status(ap):
    enabled = SENSORS_ENABLED | (BIT_GEOFENCE if ap.fence_enabled else 0) | (BIT_MOTORS if ap.armed else 0)
    health = SENSORS_HEALTH | (0 if ap.fence_breached else BIT_GEOFENCE)
    present = SENSORS_PRESENT
    if not ap.gps_ok:  # the GPS is only present once detected
        present, enabled, health = present & ~BIT_GPS, enabled & ~BIT_GPS, health & ~BIT_GPS
    if ap.position_ready:
        enabled |= BIT_POS_CTRL
        health |= BIT_POS_CTRL
    if ap.prearm_ok():
        health |= BIT_PREARM
    b = ap.battery
    return mav.MAVLink_sys_status_message(
        onboard_control_sensors_present=present, onboard_control_sensors_enabled=enabled,
        onboard_control_sensors_health=health, load=0, voltage_battery=int(b.voltage_v * 1000),
        current_battery=int(b.current_a * 100), battery_remaining=int(b.remaining_pct), drop_rate_comm=0,
        errors_comm=0, errors_count1=0, errors_count2=0, errors_count3=0, errors_count4=0)


def system_time(ap):
    return mav.MAVLink_system_time_message(time_unix_usec=0, time_boot_ms=ap.time_boot_ms)


def gps_raw_int(ap):
    v = ap.vehicle
    if not ap.gps_ok:
        return mav.MAVLink_gps_raw_int_message(time_usec=0, fix_type=0, lat=0, lon=0, alt=0, eph=65535, epv=65535,
                                               vel=0, cog=0, satellites_visible=0)
    lat, lon = ap.latlon()
    cog = int(math.degrees(math.atan2(v.ve, v.vn)) % 360 * 100) if v.ground_speed_m_s > 0.2 else 0
    alt_mm = int(round(ap.alt_amsl_m() * 1000))
    return mav.MAVLink_gps_raw_int_message(
        time_usec=int(ap.now_s * 1e6), fix_type=6, lat=int(round(lat * 1e7)), lon=int(round(lon * 1e7)),
        alt=alt_mm, eph=121, epv=200, vel=int(v.ground_speed_m_s * 100), cog=cog, satellites_visible=10,
        alt_ellipsoid=alt_mm, h_acc=300, v_acc=300, vel_acc=0, hdg_acc=0, yaw=0)


def attitude(ap):
    v = ap.vehicle
    roll, pitch = v.attitude()
    yaw = (v.yaw_rad + math.pi) % (2 * math.pi) - math.pi
    return mav.MAVLink_attitude_message(time_boot_ms=ap.time_boot_ms, roll=roll, pitch=pitch, yaw=yaw,
                                        rollspeed=0.0, pitchspeed=0.0, yawspeed=0.0)


def global_position_int(ap):
    v = ap.vehicle
    if not ap.gps_ok:
        return mav.MAVLink_global_position_int_message(time_boot_ms=ap.time_boot_ms, lat=0, lon=0, alt=0,
                                                       relative_alt=0, vx=0, vy=0, vz=0, hdg=0)
    lat, lon = ap.latlon()
    return mav.MAVLink_global_position_int_message(
        time_boot_ms=ap.time_boot_ms, lat=int(round(lat * 1e7)), lon=int(round(lon * 1e7)),
        alt=int(round(ap.alt_amsl_m() * 1000)), relative_alt=int(round(ap.rel_alt_m() * 1000)),
        vx=int(round(v.vn * 100)), vy=int(round(v.ve * 100)), vz=int(round(-v.vu * 100)),
        hdg=int(math.degrees(v.yaw_rad) % 360 * 100))


def local_position_ned(ap):
    v = ap.vehicle
    return mav.MAVLink_local_position_ned_message(time_boot_ms=ap.time_boot_ms, x=v.n, y=v.e, z=-v.u,
                                                  vx=v.vn, vy=v.ve, vz=-v.vu)


def mission_current(ap):
    count = ap.missions.count(0)
    state = ap.modes.mission_state if count > 1 else M.MS_NO_MISSION
    return mav.MAVLink_mission_current_message(seq=ap.modes.mission_index, total=max(0, count - 1),
                                               mission_state=state, mission_mode=int(ap.modes.mode == M.AUTO))


def vfr_hud(ap):
    v = ap.vehicle
    throttle = 0 if (not ap.armed or v.on_ground) else int(max(0, min(100, 38 + 10 * v.au)))
    return mav.MAVLink_vfr_hud_message(airspeed=v.airspeed_m_s, groundspeed=v.ground_speed_m_s,
                                       heading=int(math.degrees(v.yaw_rad) % 360), throttle=throttle,
                                       alt=ap.alt_amsl_m(), climb=v.vu)


def position_target_global_int(ap):
    target = ap.modes.position_target()
    if target is None:
        return None
    e, n, u = target
    lat, lon = ap.frame.to_latlon(e, n)
    return mav.MAVLink_position_target_global_int_message(
        time_boot_ms=ap.time_boot_ms, coordinate_frame=0, type_mask=65016, lat_int=int(round(lat * 1e7)),
        lon_int=int(round(lon * 1e7)), alt=ap.origin_alt_m + u, vx=0, vy=0, vz=0, afx=0, afy=0, afz=0, yaw=0,
        yaw_rate=0)


def battery_status(ap):
    b = ap.battery
    cells = [int(b.voltage_v * 1000)] + [65535] * 9
    return mav.MAVLink_battery_status_message(
        id=0, battery_function=0, type=0, temperature=32767, voltages=cells, current_battery=int(b.current_a * 100),
        current_consumed=int(b.used_mah), energy_consumed=-1, battery_remaining=int(b.remaining_pct),
        time_remaining=0, charge_state=1, voltages_ext=[0, 0, 0, 0], mode=0, fault_bitmask=0)


def ekf_status_report(ap):
    return mav.MAVLink_ekf_status_report_message(flags=ap.ekf_flags(), velocity_variance=0.01,
                                                 pos_horiz_variance=0.01, pos_vert_variance=0.01,
                                                 compass_variance=0.01, terrain_alt_variance=0.0,
                                                 airspeed_variance=0.0)


def home_position(ap):
    if ap.home is None:
        return None
    lat, lon, alt = ap.home
    nan = float("nan")
    return mav.MAVLink_home_position_message(
        latitude=int(round(lat * 1e7)), longitude=int(round(lon * 1e7)), altitude=int(round(alt * 1000)), x=0.0,
        y=0.0, z=-0.0, q=[nan] * 4, approach_x=0.0, approach_y=0.0, approach_z=0.0,
        time_usec=int(ap.now_s * 1e6))


def gps_global_origin(ap):
    if ap.home is None:
        return None
    lat, lon, alt = ap.home
    return mav.MAVLink_gps_global_origin_message(latitude=int(round(lat * 1e7)), longitude=int(round(lon * 1e7)),
                                                 altitude=int(round(alt * 1000)), time_usec=int(ap.now_s * 1e6))


def autopilot_version(ap):
    return mav.MAVLink_autopilot_version_message(
        capabilities=CAPABILITIES, flight_sw_version=FLIGHT_SW_VERSION, middleware_sw_version=0, os_sw_version=0,
        board_version=0, flight_custom_version=list(GIT_HASH), middleware_custom_version=[0] * 8,
        os_custom_version=[0] * 8, vendor_id=0, product_id=0, uid=0, uid2=[0] * 18)


def fence_status(ap):
    return mav.MAVLink_fence_status_message(breach_status=int(ap.fence_breached), breach_count=ap.breach_count,
                                            breach_type=3 if ap.fence_breached else 0,
                                            breach_time=int(ap.breach_time_s * 1000), breach_mitigation=1)


def timesync(ap):
    return mav.MAVLink_timesync_message(tc1=0, ts1=int(ap.now_s * 1e9) + 1)


BUILDERS = {
    HEARTBEAT: heartbeat, SYS_STATUS: sys_status, SYSTEM_TIME: system_time, GPS_RAW_INT: gps_raw_int,
    ATTITUDE: attitude, LOCAL_POSITION_NED: local_position_ned, GLOBAL_POSITION_INT: global_position_int,
    MISSION_CURRENT: mission_current, GPS_GLOBAL_ORIGIN: gps_global_origin, VFR_HUD: vfr_hud,
    POSITION_TARGET_GLOBAL_INT: position_target_global_int, BATTERY_STATUS: battery_status,
    AUTOPILOT_VERSION: autopilot_version, FENCE_STATUS: fence_status, EKF_STATUS_REPORT: ekf_status_report,
    HOME_POSITION: home_position, TIMESYNC: timesync,
}
# Messages a stream may carry (SET_MESSAGE_INTERVAL); others are ACCEPTED by REQUEST_MESSAGE only.
STREAMABLE = frozenset(BUILDERS) - {AUTOPILOT_VERSION}


class StreamSchedule:
    """One channel's message intervals, in simulated seconds."""

    def __init__(self, now_s: float) -> None:
        self.interval_s: dict[int, float] = {HEARTBEAT: 1.0, TIMESYNC: 10.0}
        self.next_s: dict[int, float] = {HEARTBEAT: max(now_s, 1.0), TIMESYNC: now_s + 10.0}

    def set_interval(self, msg_id: int, interval_s: float | None, now_s: float) -> None:
        """None or <= 0 stops the message."""
        if interval_s is None or interval_s <= 0:
            self.interval_s.pop(msg_id, None)
            self.next_s.pop(msg_id, None)
            return
        self.interval_s[msg_id] = interval_s
        self.next_s[msg_id] = now_s + min(interval_s, 0.02)

    def due(self, now_s: float, slowdown: float) -> list[int]:
        out = []
        for msg_id, nxt in self.next_s.items():
            if now_s + 1e-9 >= nxt:
                out.append(msg_id)
                iv = self.interval_s[msg_id]
                if msg_id not in (HEARTBEAT, TIMESYNC):
                    iv *= slowdown
                nxt += iv
                self.next_s[msg_id] = nxt if nxt > now_s else now_s + iv
        return out
