"""Telemetry: an immutable snapshot of the vehicle, rebuilt from the stream, and the stream requests.

``VehicleState`` is a frozen dataclass; ``Telemetry.state`` is replaced (never changed) on every
message, so a caller can hold a snapshot as long as it likes. Each field's receive time is in
``state.received_ns[name]`` (monotonic ns of this computer); ``Pose`` carries its own ``ts_ns``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.clock import Clock
from agridrone.errors import LinkLost, WaitTimeout
from agridrone.types import AltFrame, GeoPoint, Pose
from agridrone.vehicle.events import EventBus, VehicleEvent
from agridrone.vehicle.modes import mode_name

# EKF_STATUS_REPORT flags that must all be set for a usable position (attitude, horizontal velocity,
# horizontal position relative and absolute, vertical position): ArduCopter reports 0x33f when ready.
EKF_REQUIRED = (mavlink.EKF_ATTITUDE | mavlink.EKF_VELOCITY_HORIZ | mavlink.EKF_POS_HORIZ_REL
                | mavlink.EKF_POS_HORIZ_ABS | mavlink.EKF_POS_VERT_ABS)
# ... and none of these: constant-position mode (no GPS yet), uninitialised, GPS glitching.
EKF_FORBIDDEN = mavlink.EKF_CONST_POS_MODE | mavlink.EKF_UNINITIALIZED | mavlink.EKF_GPS_GLITCHING
GPS_FIX_3D = 3
MAX_STATUSTEXTS = 64

# The standard streams, in Hz, requested with SET_MESSAGE_INTERVAL (the rates of the recorded SITL runs).
DEFAULT_STREAM_RATES_HZ: Mapping[str, float] = MappingProxyType({
    "GLOBAL_POSITION_INT": 10.0, "ATTITUDE": 10.0, "VFR_HUD": 2.0, "SYS_STATUS": 1.0, "EKF_STATUS_REPORT": 1.0,
    "GPS_RAW_INT": 1.0, "MISSION_CURRENT": 1.0, "HOME_POSITION": 0.5,
})


def ekf_flags_ok(flags: int | None) -> bool:
    return flags is not None and (flags & EKF_REQUIRED) == EKF_REQUIRED and not flags & EKF_FORBIDDEN


@dataclass(frozen=True)
class StatusText:
    ts_ns: int
    severity: int
    text: str


@dataclass(frozen=True)
class VehicleState:
    """What the autopilot last told us. ``None`` means "not received yet"."""

    pose: Pose | None = None
    mode: str = "UNKNOWN"
    custom_mode: int | None = None
    armed: bool = False
    system_status: int | None = None
    vehicle_type: int | None = None
    autopilot: int | None = None
    home: GeoPoint | None = None  # AMSL
    mission_seq: int | None = None
    mission_total: int | None = None  # items after home, as MISSION_CURRENT.total reports
    mission_state: int | None = None
    last_reached_seq: int | None = None
    ekf_flags: int | None = None
    ekf_ok: bool = False
    gps_fix: int = 0
    gps_sats: int | None = None
    battery_v: float | None = None
    battery_pct: float | None = None
    sensors_health: int | None = None
    prearm_ok: bool | None = None
    fence_breached: bool | None = None
    groundspeed_m_s: float | None = None
    heading_deg: float | None = None
    link_ok: bool = False
    last_heartbeat_ns: int | None = None
    statustexts: tuple[StatusText, ...] = ()
    received_ns: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ready(self) -> bool:
        """EKF usable, 3D GPS fix and home known: what ``wait_ready`` waits for."""
        return self.ekf_ok and self.gps_fix >= GPS_FIX_3D and self.home is not None

    @property
    def alt_rel_home_m(self) -> float | None:
        return self.pose.alt_rel_home_m if self.pose else None

    def age_s(self, name: str, now_ns: int) -> float | None:
        ts = self.received_ns.get(name)
        return None if ts is None else (now_ns - ts) / 1e9

    def summary(self) -> str:
        parts = [f"mode {self.mode}", "armed" if self.armed else "disarmed"]
        if self.pose:
            parts.append(f"{self.pose.alt_rel_home_m:.1f} m above home, {self.pose.ground_speed_m_s:.1f} m/s")
        else:
            parts.append("no position yet")
        parts.append(f"EKF {'none' if self.ekf_flags is None else hex(self.ekf_flags)}")
        parts.append(f"GPS fix {self.gps_fix}")
        parts.append("home set" if self.home else "no home")
        if self.mission_seq is not None:
            parts.append(f"mission item {self.mission_seq}/{self.mission_total}")
        parts.append("link ok" if self.link_ok else "link lost")
        return ", ".join(parts)


class Telemetry:
    """Builds ``VehicleState`` from messages (``handle`` runs on the reader thread)."""

    def __init__(self, clock: Clock, events: EventBus) -> None:
        self._clock = clock
        self._events = events
        self._cond = threading.Condition()
        self._state = VehicleState()
        self._attitude: tuple[float, float, float] | None = None
        self._chunks: dict[int, dict[int, str]] = {}
        self._handlers: dict[str, Callable[[Any, int], dict]] = {
            "HEARTBEAT": self._heartbeat, "GLOBAL_POSITION_INT": self._position, "ATTITUDE": self._attitude_msg,
            "HOME_POSITION": self._home, "MISSION_CURRENT": self._mission_current,
            "MISSION_ITEM_REACHED": self._item_reached, "EKF_STATUS_REPORT": self._ekf, "GPS_RAW_INT": self._gps,
            "SYS_STATUS": self._sys_status, "VFR_HUD": self._vfr_hud, "STATUSTEXT": self._statustext,
            "FENCE_STATUS": self._fence,
        }

    @property
    def state(self) -> VehicleState:
        return self._state

    # ------------------------------------------------------------------ updates
    def handle(self, msg, ts_ns: int) -> None:
        fn = self._handlers.get(msg.get_type())
        if fn is None:
            return
        events: list[VehicleEvent] = []
        changes = fn(msg, ts_ns, events) if fn else {}
        if changes:
            self._apply(changes, ts_ns)
        for event in events:
            self._events.emit(event)

    def texts_since(self, ts_ns: int, max_severity: int = mavlink.MAV_SEVERITY_WARNING, limit: int = 3) -> str:
        """'; the vehicle said: A | B' for recent STATUSTEXTs at least this severe ('' if none)."""
        texts = [t.text for t in self._state.statustexts if t.ts_ns >= ts_ns and t.severity <= max_severity]
        return f"; the vehicle said: {' | '.join(texts[-limit:])}" if texts else ""

    def set_link_ok(self, ok: bool, ts_ns: int) -> None:
        self._apply({"link_ok": ok}, ts_ns)

    def _apply(self, changes: dict, ts_ns: int) -> None:
        with self._cond:
            received = dict(self._state.received_ns)
            received.update((k, ts_ns) for k in changes)
            self._state = dataclasses.replace(self._state, **changes, received_ns=MappingProxyType(received))
            self._cond.notify_all()

    def _heartbeat(self, msg, ts_ns, events) -> dict:
        st = self._state
        new_mode = mode_name(msg.custom_mode)
        armed = bool(msg.base_mode & mavlink.MAV_MODE_FLAG_SAFETY_ARMED)
        if st.custom_mode is not None and new_mode != st.mode:
            events.append(VehicleEvent("mode", ts_ns, new_mode))
        if st.custom_mode is not None and armed != st.armed:
            events.append(VehicleEvent("armed", ts_ns, armed))
        return dict(mode=new_mode, custom_mode=msg.custom_mode, armed=armed, system_status=msg.system_status,
                    vehicle_type=msg.type, autopilot=msg.autopilot, last_heartbeat_ns=ts_ns)

    def _attitude_msg(self, msg, ts_ns, events) -> dict:
        self._attitude = (math.degrees(msg.roll), math.degrees(msg.pitch), math.degrees(msg.yaw) % 360.0)
        return {}

    def _position(self, msg, ts_ns, events) -> dict:
        if self._attitude is not None:
            roll, pitch, yaw = self._attitude
        else:
            roll = pitch = 0.0
            yaw = msg.hdg / 100.0 if msg.hdg != 65535 else 0.0
        pose = Pose(ts_ns=ts_ns, lat_deg=msg.lat / 1e7, lon_deg=msg.lon / 1e7, alt_amsl_m=msg.alt / 1000.0,
                    alt_rel_home_m=msg.relative_alt / 1000.0, roll_deg=roll, pitch_deg=pitch, yaw_deg=yaw,
                    vn_m_s=msg.vx / 100.0, ve_m_s=msg.vy / 100.0, vd_m_s=msg.vz / 100.0)
        return {"pose": pose}

    def _home(self, msg, ts_ns, events) -> dict:
        if msg.latitude == 0 and msg.longitude == 0:
            return {}
        return {"home": GeoPoint(msg.latitude / 1e7, msg.longitude / 1e7, msg.altitude / 1000.0, AltFrame.AMSL)}

    def _mission_current(self, msg, ts_ns, events) -> dict:
        if self._state.mission_seq != msg.seq:
            events.append(VehicleEvent("mission_current", ts_ns, msg.seq))
        total = getattr(msg, "total", 0)
        return dict(mission_seq=msg.seq, mission_total=None if total == 65535 else total,
                    mission_state=getattr(msg, "mission_state", None))

    def _item_reached(self, msg, ts_ns, events) -> dict:
        events.append(VehicleEvent("mission_item_reached", ts_ns, msg.seq))
        return {"last_reached_seq": msg.seq}

    def _ekf(self, msg, ts_ns, events) -> dict:
        return {"ekf_flags": msg.flags, "ekf_ok": ekf_flags_ok(msg.flags)}

    def _gps(self, msg, ts_ns, events) -> dict:
        return {"gps_fix": msg.fix_type, "gps_sats": None if msg.satellites_visible == 255 else msg.satellites_visible}

    def _sys_status(self, msg, ts_ns, events) -> dict:
        prearm = mavlink.MAV_SYS_STATUS_PREARM_CHECK
        return dict(battery_v=None if msg.voltage_battery in (0, 65535) else msg.voltage_battery / 1000.0,
                    battery_pct=None if msg.battery_remaining < 0 else float(msg.battery_remaining),
                    sensors_health=msg.onboard_control_sensors_health,
                    prearm_ok=bool(msg.onboard_control_sensors_health & prearm)
                    if msg.onboard_control_sensors_present & prearm else None)

    def _vfr_hud(self, msg, ts_ns, events) -> dict:
        return {"groundspeed_m_s": float(msg.groundspeed), "heading_deg": float(msg.heading)}

    def _fence(self, msg, ts_ns, events) -> dict:
        breached = bool(msg.breach_status)
        if breached and not self._state.fence_breached:
            events.append(VehicleEvent("fence_breach", ts_ns, msg.breach_status))
        return {"fence_breached": breached}

    def _statustext(self, msg, ts_ns, events) -> dict:
        text = msg.text if isinstance(msg.text, str) else bytes(msg.text).decode("utf-8", "replace")
        text = text.split("\x00", 1)[0]
        text_id = getattr(msg, "id", 0)
        if text_id:  # MAVLink 2 chunked text: complete when a chunk is shorter than 50 characters
            chunks = self._chunks.setdefault(text_id, {})
            chunks[getattr(msg, "chunk_seq", 0)] = text
            if len(text) == 50:
                return {}
            text = "".join(chunks[k] for k in sorted(chunks))
            del self._chunks[text_id]
        item = StatusText(ts_ns, msg.severity, text)
        events.append(VehicleEvent("statustext", ts_ns, item))
        return {"statustexts": (self._state.statustexts + (item,))[-MAX_STATUSTEXTS:]}

    # ------------------------------------------------------------------ waiting
    def wait_until(self, predicate: Callable[[VehicleState], bool], timeout_s: float, what: str, *,
                   link=None, raise_on_link_lost: bool = True) -> VehicleState:
        """The first state for which ``predicate`` holds.

        WaitTimeout(origin=what) after ``timeout_s``; LinkLost if the link is lost during the wait
        (not if it was already lost when the wait began: then one may be waiting for recovery); the
        link's LinkError if it closed for good. A predicate that raises AttributeError or TypeError
        (e.g. ``st.pose.alt_rel_home_m`` before the first position) counts as not yet true.
        """
        deadline = self._clock.monotonic_ns() + int(timeout_s * 1e9)
        link_was_ok = self._state.link_ok
        last_error: Exception | None = None
        with self._cond:
            while True:
                st = self._state
                try:
                    if predicate(st):
                        return st
                except (AttributeError, TypeError) as err:
                    last_error = err
                if link is not None:
                    link.raise_if_closed()
                if raise_on_link_lost and link_was_ok and not st.link_ok:
                    raise LinkLost(f"expected {what} within {timeout_s:g} s, got the link lost "
                                   f"(no HEARTBEAT from the autopilot); last state: {st.summary()}")
                remaining = (deadline - self._clock.monotonic_ns()) / 1e9
                if remaining <= 0:
                    note = f" (the condition raised {type(last_error).__name__}: {last_error})" if last_error else ""
                    raise WaitTimeout(f"expected {what} within {timeout_s:g} s, got {st.summary()}{note}",
                                      origin=what, timeout_s=timeout_s)
                self._cond.wait(timeout=min(remaining, 0.1))
