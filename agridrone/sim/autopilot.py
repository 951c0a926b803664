"""The simulated ArduCopter: state, boot sequence, arming, fence, home, battery and the
physics/telemetry tick, all on simulated time. Incoming messages are handled in ``commands.py``;
sockets live in ``server.py``.

Deliberate difference from ArduCopter 4.7 SITL: the EKF starts using GPS after ``boot_s``
simulated seconds (default 10 s) instead of SITL's ~42 s, to keep tests fast. The first 6 s of
boot are as recorded; the later boot texts (GPS detected, origin set, using GPS) are spread over
the shorter wait in the same order, and the first "PreArm: ..." text comes at the same fraction
of that wait instead of at 30.5 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pymavlink.dialects.v20 import ardupilotmega as mav

from agridrone.sim import modes as M
from agridrone.sim import streams as S
from agridrone.sim.fence import FlatFrame
from agridrone.sim.missionstore import FENCE, MISSION, RALLY, Item, MissionStore
from agridrone.sim.params import Params
from agridrone.sim.vehicle import PointMass, Target

READY_TEXT_S = 2.5  # "ArduPilot Ready", HEARTBEAT system_status BOOT -> STANDBY
REC_USING_GPS_S = 41.64  # when the recorded SITL's EKF started using GPS
EKF_ALIGNED_S = 6.0  # the recorded boot up to here (EKF started and aligned) is kept as it was
PREARM_PERIOD_S = 30.0
DEFAULT_BOOT_S = 10.0
BANNER = ("ArduCopter V4.7.0-dev (90700977)", "8d1219c7c4c5404aaa1f6d2a48adfda4", "Frame: QUAD/PLUS")


@dataclass
class SimConfig:
    home: tuple[float, float, float] = (-35.363261, 149.165230, 584.0)
    boot_s: float = DEFAULT_BOOT_S
    wind_en: tuple[float, float] = (0.0, 0.0)
    physics_hz: float = 50.0

    def __post_init__(self) -> None:
        lat, lon, alt = self.home
        if not (-90 <= lat <= 90 and -180 <= lon <= 180 and math.isfinite(alt)):
            raise ValueError(f"home: expected lat -90..90, lon -180..180 and a finite altitude, got {self.home}")
        if not self.boot_s >= 7.0:
            raise ValueError(f"boot_s: expected at least 7 simulated seconds, got {self.boot_s}")
        if not 10 <= self.physics_hz <= 1000:
            raise ValueError(f"physics_hz: expected 10..1000, got {self.physics_hz}")


class Battery:
    """A 3S pack draining with the current drawn: 0 A disarmed, 2C hovering (a full pack lasts ~30 min,
    about a survey drone's endurance; BATT_CAPACITY sets the size)."""

    def __init__(self, capacity_mah: float = 3300.0) -> None:
        self.capacity_mah = capacity_mah
        self.used_mah = 0.0
        self.current_a = 0.0

    def update(self, dt_s: float, armed: bool, flying: bool, accel_m_s2: float) -> None:
        hover_a = 2.0 * self.capacity_mah / 1000.0
        self.current_a = 0.0 if not armed else (1.0 if not flying else hover_a + 2.0 * accel_m_s2)
        self.used_mah += self.current_a * dt_s / 3.6

    @property
    def remaining_pct(self) -> float:
        return max(0.0, 100.0 * (1.0 - self.used_mah / self.capacity_mah))

    @property
    def voltage_v(self) -> float:
        return 12.6 - 2.1 * (1.0 - self.remaining_pct / 100.0) - 0.01 * self.current_a


class Autopilot:
    """Everything the vehicle knows. Channels are objects with ``send(msg)`` and ``schedule``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        lat, lon, alt = self.config.home
        self.now_s = 0.0
        self.dt_s = 1.0 / self.config.physics_hz
        self.params = Params(alt)
        self.frame = FlatFrame(lat, lon)
        self.origin_alt_m = alt
        self.vehicle = PointMass(self.config.wind_en)
        self.modes = M.FlightModes(self)
        self.missions = MissionStore(self)
        self.battery = Battery()
        self.channels: list = []
        self.armed = False
        self.arm_time_s = 0.0
        self.touchdown_s: float | None = None
        self.spool_until_s = 0.0
        self.home: tuple[float, float, float] | None = None
        self.home_en = (0.0, 0.0)
        self.fence_enabled = False
        self.fence_breached = False
        self.breach_count = 0
        self.breach_time_s = 0.0
        self.fence_recovery_until_s = 0.0
        self.cam_trigger_dist_m = 0.0
        self.cam_travel_m = 0.0
        self.camera_triggers = 0
        self.signing_callback = None  # set by the server: called with a 32-byte key, or None to disable
        self._texts: list[tuple[int, str]] = []
        self._text_id = 0
        self._built: dict[int, object] = {}
        self._timeline = self._boot_timeline()
        self._next_prearm_s = self._scaled(30.47)

    # ------------------------------------------------------------------ boot
    def _scaled(self, recorded_s: float) -> float:
        """Map a recorded boot time onto this simulator's boot: the first 6 s (initialisation, EKF
        start and alignment) as recorded, the wait for GPS after that shortened to fit ``boot_s``."""
        if recorded_s <= EKF_ALIGNED_S:
            return recorded_s
        using_gps_s = self.config.boot_s - 0.5
        return EKF_ALIGNED_S + (recorded_s - EKF_ALIGNED_S) * (using_gps_s - EKF_ALIGNED_S) / (
            REC_USING_GPS_S - EKF_ALIGNED_S)

    def _boot_timeline(self) -> list[tuple[float, str, object]]:
        sc = self._scaled
        ev = [
            (0.23, "param", ("ESC_CALIBRATION",)), (0.34, "text", "Calibrating barometer"),
            (1.94, "text", "Barometer 1 calibration complete"), (1.94, "param", ("BARO1_GND_PRESS",)),
            (2.47, "text", "ArduPilot Ready"), (2.47, "text", "AHRS: DCM active"),
            (2.48, "param", ("INS_GYROFFS_X", "INS_GYROFFS_Y", "INS_GYROFFS_Z")),
            (sc(4.47), "text", "EKF3 IMU0 initialised"), (sc(4.47), "text", "AHRS: EKF3 active"),
            (sc(5.82), "text", "EKF3 IMU0 tilt alignment complete"),
            (sc(5.92), "text", "EKF3 IMU0 MAG0 initial yaw alignment complete"),
            (sc(9.85), "text", "GPS 1: detected u-blox"), (sc(20.04), "text", "EKF3 IMU0 origin set"),
            (sc(20.04), "home", None), (sc(20.07), "text", f"Field Elevation Set: {self.origin_alt_m:.0f}m"),
            (sc(REC_USING_GPS_S), "text", "EKF3 IMU0 is using GPS"),
        ]
        return sorted(ev, key=lambda e: e[0])

    @property
    def booted(self) -> bool:
        return self.now_s >= READY_TEXT_S

    def is_booted(self) -> bool:
        return self.booted

    @property
    def gps_ok(self) -> bool:
        return self.now_s >= self._scaled(9.85)

    @property
    def sensors_settled(self) -> bool:
        return self.now_s >= self._scaled(24.1)

    @property
    def position_ready(self) -> bool:
        return self.now_s >= self.config.boot_s

    def prearm_ok(self) -> bool:
        """The pre-arm checks (SYS_STATUS bit 28): the position estimate is only needed by modes that
        navigate, or when a fence is enabled; the IMUs must have settled in every mode."""
        if not self.sensors_settled:
            return False
        needs_position = self.modes.mode in S.POSITION_MODES or self.fence_enabled
        return self.position_ready or not needs_position

    def ekf_flags(self) -> int:
        if self.position_ready:
            return 0x33F
        return 0xA7 if self.now_s >= self._scaled(5.82) else 0x400

    # ------------------------------------------------------------------ geometry helpers
    @property
    def time_boot_ms(self) -> int:
        return int(self.now_s * 1000)

    def flat_frame(self) -> FlatFrame:
        return self.frame

    def latlon(self) -> tuple[float, float]:
        return self.frame.to_latlon(self.vehicle.e, self.vehicle.n)

    def alt_amsl_m(self) -> float:
        return self.origin_alt_m + self.vehicle.u

    def home_u(self) -> float:
        return 0.0 if self.home is None else self.home[2] - self.origin_alt_m

    def rel_alt_m(self) -> float:
        return self.vehicle.u - self.home_u()

    def item_en(self, it: Item) -> tuple[float, float]:
        return self.frame.to_en(it.lat_deg, it.lon_deg)

    def alt_to_u(self, alt_m: float, frame: int) -> float:
        """A MAVLink altitude in ``frame`` -> up metres in the simulator's frame."""
        if frame in (0, 5):  # GLOBAL, GLOBAL_INT: AMSL
            return alt_m - self.origin_alt_m
        return alt_m + self.home_u()  # relative to home (terrain frames treated as relative: flat world)

    def item_alt_rel(self, it: Item) -> float:
        return self.alt_to_u(it.z, it.frame)

    def home_item(self) -> Item:
        if self.home is None:
            return Item(0, 0, 16)
        lat, lon, alt = self.home
        return Item(0, 0, 16, x=int(round(lat * 1e7)), y=int(round(lon * 1e7)), z=round(alt, 2))

    def rtl_destination(self) -> tuple[float, float, float]:
        v = self.vehicle
        best = (self.home_en[0], self.home_en[1], self.home_u())
        best_d = math.hypot(v.e - best[0], v.n - best[1]) if self.params["RALLY_INCL_HOME"] else math.inf
        for it in self.missions.lists[RALLY]:
            e, n = self.item_en(it)
            d = math.hypot(v.e - e, v.n - n)
            if d < best_d:
                best, best_d = (e, n, self.item_alt_rel(it)), d
        return best

    # ------------------------------------------------------------------ output
    def send(self, channel, msg) -> None:
        channel.send(msg)

    def broadcast(self, msg) -> None:
        for ch in list(self.channels):
            ch.send(msg)

    def text(self, severity: int, text: str) -> None:
        """Queue a STATUSTEXT for every channel (sent after the current message or step)."""
        self._texts.append((severity, text))

    def flush_texts(self) -> None:
        texts, self._texts = self._texts, []
        for sev, text in texts:
            data = text.encode("utf-8", errors="replace")
            if len(data) <= 50:
                self.broadcast(mav.MAVLink_statustext_message(severity=sev, text=data, id=0, chunk_seq=0))
                continue
            self._text_id = self._text_id % 65535 + 1  # long texts: MAVLink 2 id + chunk_seq
            for seq, i in enumerate(range(0, len(data), 50)):
                self.broadcast(mav.MAVLink_statustext_message(severity=sev, text=data[i:i + 50], id=self._text_id,
                                                              chunk_seq=seq))

    def send_param(self, name: str, channel=None, index: int = 65535) -> None:
        msg = mav.MAVLink_param_value_message(param_id=name.encode(), param_value=self.params[name],
                                              param_type=self.params.type_of(name),
                                              param_count=len(self.params.names()), param_index=index)
        channel.send(msg) if channel is not None else self.broadcast(msg)

    def send_heartbeat_now(self) -> None:
        self.broadcast(S.heartbeat(self))

    def send_item_reached(self, seq: int) -> None:
        self.broadcast(mav.MAVLink_mission_item_reached_message(seq=seq))

    def send_home(self) -> None:
        for build in (S.gps_global_origin, S.home_position):
            msg = build(self)
            if msg is not None:
                self.broadcast(msg)

    # ------------------------------------------------------------------ home, arming
    def set_home_here(self) -> None:
        lat, lon = self.latlon()
        self.home = (lat, lon, self.alt_amsl_m() if self.vehicle.on_ground else self.origin_alt_m)
        self.home_en = (self.vehicle.e, self.vehicle.n)
        self.send_home()

    def set_home_latlon(self, lat: float, lon: float, alt_amsl_m: float) -> None:
        self.home = (lat, lon, alt_amsl_m)
        self.home_en = self.frame.to_en(lat, lon)
        self.send_home()

    def arm(self, force: bool = False) -> tuple[bool, list[str]]:
        """ArduCopter's arming checks, reduced to what the simulator models. Returns (ok, texts)."""
        if self.armed:
            return True, []
        mode = self.modes.mode
        if not self.booted:
            return False, ["Arm: System not initialised"]
        if not force:
            needs_position = mode in S.POSITION_MODES
            texts = []
            if not self.sensors_settled:
                texts.append("Arm: Accels inconsistent")
            if needs_position and not self.position_ready:
                texts.append("Arm: AHRS: waiting for home" if self.home is None else "Arm: Need Position Estimate")
            if self.fence_enabled and not self.position_ready:
                texts.append("Arm: Fence enabled, need position estimate")
            breaches = self.outside_fence(self.vehicle.e, self.vehicle.n, self.vehicle.u)
            if breaches and not texts:
                texts.append(f"Arm: Vehicle breaching {breaches[0]} fence")
            if texts:
                return False, texts
            if mode not in M.ARMABLE:
                return False, ["Arm: Mode not armable"]
        self.armed = True
        self.arm_time_s = self.now_s
        self.touchdown_s = None
        if self.position_ready:
            self.set_home_here()
        self.modes.on_armed()
        return True, ["Arming motors"]

    def disarm(self, reason_text: str = "Disarming motors") -> None:
        if not self.armed:
            return
        self.armed = False
        self.text(6, reason_text)
        if not self.vehicle.on_ground:
            self.vehicle.stop_on_ground()
        self.modes.on_disarmed()

    def on_store_changed(self, mission_type: int) -> None:
        names = {MISSION: "MIS_TOTAL", FENCE: "FENCE_TOTAL", RALLY: "RALLY_TOTAL"}
        self.params.set_internal(names[mission_type], self.missions.count(mission_type))
        if mission_type == MISSION and self.modes.mission_state != M.MS_ACTIVE:
            self.modes.mission_state = M.MS_NOT_STARTED
            self.modes.mission_index = 0

    def set_camera_trigger_distance(self, dist_m: float, trigger_now: bool = False) -> None:
        self.cam_trigger_dist_m = max(0.0, dist_m)
        self.cam_travel_m = 0.0
        if trigger_now and dist_m > 0:
            self._trigger_camera()

    def _trigger_camera(self) -> None:
        self.camera_triggers += 1
        lat, lon = self.latlon()
        roll, pitch = self.vehicle.attitude()
        self.broadcast(mav.MAVLink_camera_feedback_message(
            time_usec=int(self.now_s * 1e6), target_system=0, cam_idx=0, img_idx=self.camera_triggers,
            lat=int(round(lat * 1e7)), lng=int(round(lon * 1e7)), alt_msl=self.alt_amsl_m(),
            alt_rel=self.rel_alt_m(), roll=math.degrees(roll), pitch=math.degrees(pitch),
            yaw=math.degrees(self.vehicle.yaw_rad) % 360, foc_len=0.0, flags=0,
            completed_captures=self.camera_triggers))

    # ------------------------------------------------------------------ fence
    def fence_type(self) -> int:
        t = int(self.params["FENCE_TYPE"])
        return t if self.missions.fence.has_polygon_shapes else t & ~4

    def outside_fence(self, e: float, n: float, u: float) -> list[str]:
        if not self.fence_enabled:
            return []
        return self.missions.fence.breaches(e, n, u - self.home_u(), self.home_en, self.fence_type(),
                                            self.params["FENCE_RADIUS"], self.params["FENCE_ALT_MAX"])

    def _fence_check(self) -> None:
        v = self.vehicle
        if not self.fence_enabled or not self.armed or v.on_ground:
            if self.fence_breached and not self.fence_enabled:
                self.fence_breached = False
            return
        kinds = self.outside_fence(v.e, v.n, v.u)
        if kinds and not self.fence_breached and self.now_s >= self.fence_recovery_until_s:
            self.fence_breached = True
            self.breach_count += 1
            self.breach_time_s = self.now_s
            self.broadcast(S.fence_status(self))
            action = int(self.params["FENCE_ACTION"])
            if action != 0:
                new_mode = M.LAND if action == 2 else (M.BRAKE if action == 4 else M.RTL)
                self.modes.set_mode(new_mode)
                self.send_heartbeat_now()
            self.text(5, f"{kinds[0]} fence breached")
            self.text(6, "Manual recovery started")
            self.fence_recovery_until_s = self.now_s + 10.0
        elif not kinds and self.fence_breached:
            self.fence_breached = False
            self.text(5, "Fence breach cleared")

    def _avoid(self) -> None:
        """AVOID_ENABLE bit 0: slow a velocity target so it stops AVOID_MARGIN short of the fence."""
        v, t = self.vehicle, self.vehicle.target
        if t.kind != "vel" or not self.fence_enabled or not int(self.params["AVOID_ENABLE"]) & 1:
            return
        speed = math.hypot(t.ve, t.vn)
        if speed < 1e-6:
            return
        d = self.missions.fence.distance_to_boundary(v.e, v.n, t.ve / speed, t.vn / speed, self.home_en,
                                                     self.fence_type(), self.params["FENCE_RADIUS"])
        room = max(0.0, d - self.params["AVOID_MARGIN"])
        allowed = math.sqrt(2.0 * 0.8 * v.accel_max_m_s2 * room)
        if allowed < speed:
            t.ve, t.vn = t.ve * allowed / speed, t.vn * allowed / speed

    # ------------------------------------------------------------------ the tick
    def _apply_limits(self) -> None:
        p, v = self.params, self.vehicle
        v.speed_max_m_s = max(0.5, p["WPNAV_SPEED"] / 100.0)
        v.accel_max_m_s2 = max(0.5, p["WPNAV_ACCEL"] / 100.0)
        v.climb_max_m_s = max(0.1, p["WPNAV_SPEED_UP"] / 100.0)
        v.descent_max_m_s = max(0.1, p["WPNAV_SPEED_DN"] / 100.0)
        v.land_speed_m_s = max(0.1, p["LAND_SPEED"] / 100.0)
        high = p["LAND_SPEED_HIGH"] / 100.0
        v.land_speed_high_m_s = high if high > 0 else v.descent_max_m_s
        v.land_alt_low_m = p["LAND_ALT_LOW"] / 100.0

    def _run_timeline(self) -> None:
        while self._timeline and self._timeline[0][0] <= self.now_s:
            _t, kind, arg = self._timeline.pop(0)
            if kind == "text":
                self.text(6, arg)
            elif kind == "param":
                for name in arg:
                    self.send_param(name)
            elif kind == "home" and self.home is None:
                self.set_home_latlon(self.config.home[0], self.config.home[1], self.origin_alt_m)
        if not self.armed and self.now_s >= self._next_prearm_s:
            self._next_prearm_s += PREARM_PERIOD_S
            if not self.prearm_ok():
                self.text(2, "PreArm: Fence enabled, need position estimate" if self.fence_enabled
                          else "PreArm: Need Position Estimate")

    def step(self) -> None:
        """Advance simulated time by one physics step and send whatever falls due."""
        dt = self.dt_s
        self.now_s += dt
        self._built.clear()
        self._run_timeline()
        self._apply_limits()
        v = self.vehicle
        if self.armed:
            self.modes.update()
            self._avoid()
            was_flying, vu_before = not v.on_ground, v.vu
            if self.now_s >= self.spool_until_s:
                v.step(dt)
            if was_flying and v.on_ground:
                self.text(6, f"SIM Hit ground at {abs(vu_before):.6f} m/s")
                self.touchdown_s = self.now_s
                v.stop_on_ground()
            if self.cam_trigger_dist_m > 0 and not v.on_ground:
                self.cam_travel_m += v.ground_speed_m_s * dt
                if self.cam_travel_m >= self.cam_trigger_dist_m:
                    self.cam_travel_m -= self.cam_trigger_dist_m
                    self._trigger_camera()
        self.battery.capacity_mah = max(1.0, float(self.params["BATT_CAPACITY"]))
        self.battery.update(dt, self.armed, not v.on_ground, math.hypot(v.ae, v.an))
        self._fence_check()
        self._auto_disarm()
        self.missions.tick()
        self.flush_texts()
        self._send_streams()

    def _auto_disarm(self) -> None:
        v = self.vehicle
        if not self.armed or not v.on_ground or (v.target.kind == "pos" and v.target.u > 0.05):
            return
        if self.modes.landing or (self.modes.mode in (M.RTL, M.SMART_RTL, M.LAND) and self.touchdown_s is not None):
            if self.touchdown_s is not None and self.now_s - self.touchdown_s >= M.LAND_DISARM_S:
                self.disarm()
            return
        delay = self.params["DISARM_DELAY"]
        since = self.arm_time_s if self.touchdown_s is None else max(self.arm_time_s, self.touchdown_s)
        if delay > 0 and self.now_s - since >= delay - 1e-9:
            self.disarm()

    def build(self, msg_id: int):
        if msg_id not in self._built:
            self._built[msg_id] = S.BUILDERS[msg_id](self)
        return self._built[msg_id]

    def _send_streams(self) -> None:
        slowdown = 4.0 if self.missions.receiving else 1.0
        for ch in list(self.channels):
            for msg_id in ch.schedule.due(self.now_s, slowdown):
                if not self.booted and msg_id not in (S.HEARTBEAT, S.TIMESYNC):
                    continue  # requested streams start once the autopilot is initialised, as recorded
                msg = self.build(msg_id)
                if msg is not None:
                    ch.send(msg)

    def new_target_hold(self) -> Target:
        return self.vehicle.hold_here()
