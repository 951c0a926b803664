"""Flight modes with ArduCopter's numbers, and the AUTO mission executor.

Each physics step ``FlightModes.update`` turns the mode's state into a ``vehicle.Target``.
Modes that need a pilot's sticks (STABILIZE, ACRO, ALT_HOLD, LOITER, POSHOLD, CIRCLE) hold
position, since the simulator has no RC input; SMART_RTL flies as RTL.
"""

from __future__ import annotations

from agridrone.sim.vehicle import Target

STABILIZE, ACRO, ALT_HOLD, AUTO, GUIDED, LOITER, RTL, CIRCLE, LAND = 0, 1, 2, 3, 4, 5, 6, 7, 9
POSHOLD, BRAKE, SMART_RTL = 16, 17, 21
MODE_NAMES = {STABILIZE: "STABILIZE", ACRO: "ACRO", ALT_HOLD: "ALT_HOLD", AUTO: "AUTO", GUIDED: "GUIDED",
              LOITER: "LOITER", RTL: "RTL", CIRCLE: "CIRCLE", LAND: "LAND", POSHOLD: "POSHOLD", BRAKE: "BRAKE",
              SMART_RTL: "SMART_RTL"}
ARMABLE = frozenset({STABILIZE, ACRO, ALT_HOLD, GUIDED, LOITER, POSHOLD})
USER_TAKEOFF = frozenset({GUIDED, LOITER, ALT_HOLD, POSHOLD})
LAND_DISARM_S = 2.05  # ArduCopter's land detector + disarm after touchdown, as recorded
SPOOL_UP_S = 2.5  # from a take-off command to leaving the ground (motor spool-up), as recorded

NAV_WAYPOINT, NAV_LOITER_UNLIM, NAV_LOITER_TURNS, NAV_LOITER_TIME = 16, 17, 18, 19
NAV_RTL, NAV_LAND, NAV_TAKEOFF, NAV_SPLINE_WAYPOINT = 20, 21, 22, 82
DO_JUMP, DO_CHANGE_SPEED, DO_SET_HOME, DO_SET_CAM_TRIGG_DIST, DO_FENCE_ENABLE = 177, 178, 179, 206, 207
NAV_COMMANDS = frozenset({16, 17, 18, 19, 20, 21, 22, 30, 31, 82, 93, 94})
COMMAND_NAMES = {16: "WP", 17: "LoitUnlim", 18: "LoitTurns", 19: "LoitTime", 20: "RTL", 21: "Land", 22: "Takeoff",
                 30: "ContinueAndChangeAlt", 31: "LoitAltitude", 82: "SplineWP", 93: "Delay", 112: "CondDelay",
                 114: "CondDist", 115: "CondYaw", 177: "Jump", 178: "ChangeSpeed", 179: "SetHome",
                 183: "SetServo", 181: "SetRelay", 201: "SetROI", 203: "DigiCamCtrl", 206: "CamTrigDist",
                 207: "FenceEnable", 2000: "ImageStartCapture", 2001: "ImageStopCapture"}

# MISSION_CURRENT.mission_state
MS_NO_MISSION, MS_NOT_STARTED, MS_ACTIVE, MS_PAUSED, MS_COMPLETE = 1, 2, 3, 4, 5


class FlightModes:
    """Mode state machine. ``ap`` is the Autopilot (texts, params, home, fence, mission store)."""

    def __init__(self, ap) -> None:
        self.ap = ap
        self.mode = STABILIZE
        self.guided_kind = "none"  # none | takeoff | pos | vel | hold
        self.guided_vel_s = 0.0
        self.guided_pos: tuple[float, float, float] | None = None  # e, n, u of a held position target
        self.rtl_phase = ""
        self.rtl_goal = (0.0, 0.0, 0.0)
        self.rtl_loiter_until_s = 0.0
        self.landing = False  # descending in LAND / RTL / AUTO land: disarm 2 s after touchdown
        self.mission_index = 0  # current nav command, 0 = not started
        self.mission_state = MS_NOT_STARTED
        self.nav_hold_until_s: float | None = None
        self.speed_override_m_s: float | None = None  # AUTO's, from DO_CHANGE_SPEED (mission item or command)
        self.guided_speed_m_s: float | None = None  # GUIDED's, from DO_CHANGE_SPEED in GUIDED; None: WPNAV_SPEED
        self.jump_counts: dict[int, int] = {}

    # ------------------------------------------------------------------ mode changes
    def set_mode(self, mode: int) -> tuple[bool, str | None]:
        """Switch mode as ArduCopter does: anything goes while disarmed; returns (ok, failure text)."""
        ap = self.ap
        if mode not in MODE_NAMES:
            return False, f"No such mode {mode}"
        if ap.armed:
            if mode == AUTO:
                items = ap.missions.mission()
                if len(items) <= 1:
                    return False, "Flight mode change failed"
                if ap.vehicle.on_ground and self._first_nav(1) is not None and \
                        items[self._first_nav(1)].command != NAV_TAKEOFF:
                    return False, "Auto: Missing Takeoff Cmd"
        if self.mode == AUTO and mode != AUTO and self.mission_state == MS_ACTIVE:
            self.mission_state = MS_PAUSED  # re-entering AUTO resumes at the same item
        self.mode = mode
        self._enter(mode)
        return True, None

    def _enter(self, mode: int) -> None:
        v = self.ap.vehicle
        self.landing = False
        self.guided_kind = "none"
        self.guided_pos = None
        self.guided_speed_m_s = None  # as ArduCopter: GUIDED (re)starts its position control at WPNAV_SPEED
        if mode == AUTO:
            if self.ap.armed:
                self.start_mission()
            return
        if not self.ap.armed or v.on_ground:
            v.target = Target("idle", v.e, v.n, 0.0) if v.on_ground else v.hold_here()
            if mode in (RTL, SMART_RTL) and self.ap.armed:
                self.rtl_phase = "landed"
            return
        if mode in (BRAKE, LOITER, POSHOLD, GUIDED, ALT_HOLD, STABILIZE, ACRO, CIRCLE):
            v.target = Target("brake")
            if mode == GUIDED:
                self.guided_kind = "hold"
        elif mode in (RTL, SMART_RTL):
            self.start_rtl()
        elif mode == LAND:
            self.start_land()

    def on_armed(self) -> None:
        v = self.ap.vehicle
        v.target = Target("idle", v.e, v.n, 0.0)
        self.guided_kind = "none"
        if self.mode == AUTO:
            self.start_mission()

    def on_disarmed(self) -> None:
        v = self.ap.vehicle
        v.target = Target("idle", v.e, v.n, v.u)
        self.landing = False
        self.guided_kind = "none"
        self.guided_pos = None
        if self.mode == AUTO and self.mission_state == MS_ACTIVE:
            items = self.ap.missions.mission()
            if self.mission_index and items and items[self.mission_index].command in (NAV_RTL, NAV_LAND):
                self.ap.send_item_reached(self.mission_index)
                self.mission_state = MS_COMPLETE
                self.mission_index = 0
            else:
                self.mission_state = MS_PAUSED

    # ------------------------------------------------------------------ GUIDED
    def takeoff(self, alt_m: float) -> bool:
        v = self.ap.vehicle
        if not self.ap.armed or not v.on_ground or self.mode not in USER_TAKEOFF or alt_m <= 0:
            return False
        v.target = Target("pos", v.e, v.n, alt_m)
        self.ap.spool_until_s = self.ap.now_s + SPOOL_UP_S
        self.guided_kind = "takeoff"
        self.guided_pos = None
        return True

    def guided_position(self, e: float, n: float, u: float, speed_m_s: float | None = None) -> bool:
        v = self.ap.vehicle
        if self.mode != GUIDED or not self.ap.armed or (v.on_ground and self.guided_kind != "takeoff"):
            return False
        v.target = Target("pos", e, n, u, speed_m_s=speed_m_s or self.guided_speed_m_s)
        self.guided_kind = "pos"
        self.guided_pos = (e, n, u)
        return True

    def guided_velocity(self, ve: float, vn: float, vu: float) -> bool:
        v = self.ap.vehicle
        if self.mode != GUIDED or not self.ap.armed or v.on_ground:
            return False
        v.target = Target("vel", ve=ve, vn=vn, vu=vu)
        self.guided_kind = "vel"
        self.guided_pos = None
        self.guided_vel_s = self.ap.now_s
        return True

    # ------------------------------------------------------------------ RTL / LAND
    def start_rtl(self) -> None:
        ap, v = self.ap, self.ap.vehicle
        goal_e, goal_n, goal_u = ap.rtl_destination()
        rtl_alt_m = max(ap.params["RTL_ALT"] / 100.0, v.u, goal_u)
        self.rtl_goal = (goal_e, goal_n, rtl_alt_m)
        self.rtl_phase = "climb"
        v.target = Target("pos", v.e, v.n, rtl_alt_m)

    def start_land(self) -> None:
        v = self.ap.vehicle
        self.landing = True
        if v.on_ground:
            if self.ap.touchdown_s is None:
                self.ap.touchdown_s = self.ap.now_s  # already down: the land detector trips at once
            return
        v.target = Target("land", v.e, v.n, 0.0)

    def _rtl_update(self) -> None:
        ap, v = self.ap, self.ap.vehicle
        ge, gn, gu = self.rtl_goal
        if self.rtl_phase == "climb" and v.u >= gu - 0.3:
            self.rtl_phase = "return"
            speed = ap.params["RTL_SPEED"] / 100.0 or None
            v.target = Target("pos", ge, gn, gu, speed_m_s=speed or self.speed_override_m_s)
        elif self.rtl_phase == "return" and v.distance_to(ge, gn) < 0.5 and v.ground_speed_m_s < 0.5:
            self.rtl_phase = "loiter"
            self.rtl_loiter_until_s = ap.now_s + ap.params["RTL_LOIT_TIME"] / 1000.0
        elif self.rtl_phase == "loiter" and ap.now_s >= self.rtl_loiter_until_s:
            final_m = ap.params["RTL_ALT_FINAL"] / 100.0
            if final_m > 0:
                self.rtl_phase = "final"
                v.target = Target("pos", ge, gn, final_m)
            else:
                self.rtl_phase = "land"
                self.landing = True
                v.target = Target("land", ge, gn, 0.0)

    # ------------------------------------------------------------------ AUTO
    def _first_nav(self, start: int) -> int | None:
        items = self.ap.missions.mission()
        for i in range(max(1, start), len(items)):
            if items[i].command in NAV_COMMANDS:
                return i
        return None

    def start_mission(self) -> None:
        start = self.mission_index if self.mission_state in (MS_ACTIVE, MS_PAUSED) and self.mission_index else 1
        self.mission_state = MS_ACTIVE
        self.jump_counts.clear()
        self._run_from(start)

    def set_current(self, seq: int) -> bool:
        items = self.ap.missions.mission()
        if not 0 < seq < len(items):
            return False
        if self.mode == AUTO and self.ap.armed and self.mission_state == MS_ACTIVE:
            self._run_from(seq)
        else:
            self.mission_index = seq
            if self.mission_state == MS_COMPLETE:
                self.mission_state = MS_NOT_STARTED
        return True

    def _run_from(self, index: int) -> None:
        """Execute DO items from ``index`` until a nav item, and start that one."""
        ap = self.ap
        items = ap.missions.mission()
        i = index
        guard = 0
        while i < len(items) and guard < 1000:
            guard += 1
            it = items[i]
            ap.text(6, f"Mission: {i} {COMMAND_NAMES.get(it.command, 'Cmd' + str(it.command))}")
            if it.command in NAV_COMMANDS:
                self._start_nav(i, it)
                return
            jump = self._do_command(i, it)
            i = jump if jump is not None else i + 1
        self._mission_complete()

    def _do_command(self, index: int, it) -> int | None:
        ap = self.ap
        if it.command == DO_CHANGE_SPEED and it.param2 > 0:
            self.speed_override_m_s = float(it.param2)
            if self.mission_index and self.ap.vehicle.target.kind == "pos":
                self.ap.vehicle.target.speed_m_s = self.speed_override_m_s
        elif it.command == DO_SET_CAM_TRIGG_DIST:
            ap.set_camera_trigger_distance(float(it.param1), trigger_now=it.param3 > 0)
        elif it.command == DO_FENCE_ENABLE:
            ap.fence_enabled = it.param1 >= 1
        elif it.command == DO_SET_HOME:
            ap.set_home_here() if it.param1 >= 1 else ap.set_home_latlon(it.lat_deg, it.lon_deg, it.z)
        elif it.command == DO_JUMP:
            done = self.jump_counts.get(index, 0)
            if it.param2 < 0 or done < it.param2:
                self.jump_counts[index] = done + 1
                return int(it.param1)
        return None

    def _start_nav(self, index: int, it) -> None:
        ap, v = self.ap, self.ap.vehicle
        self.mission_index = index
        self.nav_hold_until_s = None
        self.landing = False
        speed = self.speed_override_m_s
        if it.command == NAV_TAKEOFF:
            v.target = Target("pos", v.e, v.n, ap.item_alt_rel(it))
            if v.on_ground:
                ap.spool_until_s = ap.now_s + SPOOL_UP_S
        elif it.command == NAV_RTL:
            self.start_rtl()
        elif it.command == NAV_LAND:
            if it.x or it.y:
                e, n = ap.item_en(it)
                v.target = Target("pos", e, n, v.u, speed_m_s=speed)
                self.rtl_phase = "to-land"
            else:
                self.start_land()
        else:
            e, n = ap.item_en(it) if (it.x or it.y) else (v.e, v.n)
            u = ap.item_alt_rel(it) if it.z or it.frame in (3, 6) else v.u
            v.target = Target("pos", e, n, u, speed_m_s=speed)

    def _nav_done(self, it) -> bool:
        ap, v = self.ap, self.ap.vehicle
        t = v.target
        if it.command == NAV_TAKEOFF:
            return v.u >= t.u - 0.2
        if it.command in (NAV_RTL, NAV_LAND, NAV_LOITER_UNLIM):
            if it.command == NAV_RTL:
                self._rtl_update()
            elif it.command == NAV_LAND and self.rtl_phase == "to-land" and v.distance_to(t.e, t.n) < 0.5:
                self.rtl_phase = ""
                self.start_land()
            return False  # completed by the disarm after touchdown
        if self.nav_hold_until_s is None:
            radius_m = it.param2 if (it.command == NAV_WAYPOINT and it.param2 > 0) else ap.params["WPNAV_RADIUS"] / 100
            if it.command == NAV_LOITER_TIME or it.command == NAV_LOITER_TURNS:
                radius_m = 0.5
            if v.distance_to(t.e, t.n, t.u) > max(radius_m, 0.3) or v.on_ground:
                return False
            hold_s = it.param1 if it.command in (NAV_WAYPOINT, NAV_LOITER_TIME) else 0.0
            self.nav_hold_until_s = ap.now_s + max(0.0, hold_s)
            if hold_s > 0:
                v.target = Target("pos", t.e, t.n, t.u)
        return ap.now_s >= self.nav_hold_until_s

    def _mission_complete(self) -> None:
        v = self.ap.vehicle
        self.mission_state = MS_COMPLETE
        self.mission_index = 0
        if not v.on_ground:
            v.target = v.hold_here()

    def _auto_update(self) -> None:
        if self.mission_state != MS_ACTIVE or not self.mission_index:
            return
        items = self.ap.missions.mission()
        if self.mission_index >= len(items):
            self._mission_complete()
            return
        it = items[self.mission_index]
        if not self._nav_done(it):
            return
        nxt = self.mission_index + 1
        nav_next = self._first_nav(nxt)
        reached = (nav_next - 1) if nav_next is not None else (len(items) - 1)
        self.ap.send_item_reached(reached)
        if it.command == NAV_WAYPOINT:
            self.ap.text(6, f"Reached command #{self.mission_index}")
        self._run_from(nxt)

    # ------------------------------------------------------------------ every step
    def update(self) -> None:
        ap, v = self.ap, self.ap.vehicle
        if not ap.armed:
            return
        if self.mode == GUIDED:
            if self.guided_kind == "vel" and ap.now_s - self.guided_vel_s >= ap.params["GUID_TIMEOUT"]:
                v.target = Target("brake")
                self.guided_kind = "hold"
            elif self.guided_kind == "takeoff" and v.u >= v.target.u - 0.1:
                self.guided_kind = "hold"
        elif self.mode in (RTL, SMART_RTL):
            self._rtl_update()
        elif self.mode == AUTO:
            self._auto_update()

    def position_target(self) -> tuple[float, float, float] | None:
        """The GUIDED position target being held (for POSITION_TARGET_GLOBAL_INT)."""
        return self.guided_pos if (self.mode == GUIDED and self.guided_kind == "pos") else None
