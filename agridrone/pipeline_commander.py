"""Course corrections through the vehicle link (issue 6, item 6), and the loop's events.

The :class:`Commander` turns the planner's corrections into commands, and only when agridrone is in
control:

- states: ``waiting`` (not flying the mission in AUTO: before the start, or after a pilot took over),
  ``auto`` (the vehicle flies the mission; we watch), ``detour`` (we switched to GUIDED and send position
  targets), ``hold`` (we switched to BRAKE/LOITER);
- DETOUR in ``auto``/``detour``: GUIDED, then SET_POSITION_TARGET_GLOBAL_INT for ``waypoints[0]``, re-sent
  at ``target_rate_hz`` (and at once when the target changes), and after the first target DO_CHANGE_SPEED
  to the mission's speed (GUIDED starts at WPNAV_SPEED, 10 m/s by default: a detour planned for the
  survey speed would be flown twice as fast and overshoot its corners); RESUME: DO_SET_MISSION_CURRENT
  ``resume_seq`` + AUTO + DO_CHANGE_SPEED again; HOLD: ``hold_mode`` and stay there (an event) until the
  pilot resumes AUTO;
- after a resume, planning uses the item resumed at until MISSION_CURRENT shows it (``mission_seq``);
- a mode change agridrone did not ask for (the pilot's switch, a failsafe) = the pilot took over: no
  command until the vehicle is in AUTO again (the pilot resumed the mission); then ``auto``;
- no command at all while the link is lost, while disarmed, or below ``min_alt_rel_m``.

Modes agridrone asks for are remembered before the request goes out, so the HEARTBEAT that shows
them is recognised as ours. Commands run on the loop's control thread; a command that fails is
counted and reported as an event, never raised into the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from agridrone.config import CommanderConfig
from agridrone.errors import AgriDroneError
from agridrone.types import Correction, CorrectionKind, GeoPoint


@dataclass(frozen=True)
class LoopEvent:
    """Something the loop did or saw: ``kind`` (detour, resume, hold, pilot_takeover, engaged,
    link_lost, link_recovered, camera_lost, camera_recovered, command_failed, ...), vehicle-time ``ts_ns``."""

    kind: str
    ts_ns: int
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Commander:
    """See the module docstring. ``emit(LoopEvent)`` receives every event; ``vehicle`` needs ``state``
    (mode, armed, link_ok, pose), ``set_mode``, ``goto``, ``set_speed`` and ``resume_auto``; ``speed_m_s``: the
    mission's speed (None: leave the autopilot's)."""

    def __init__(self, vehicle, config: CommanderConfig, emit: Callable[[LoopEvent], None], *,
                 speed_m_s: float | None = None) -> None:
        self.vehicle = vehicle
        self.speed_m_s = speed_m_s  # the mission's: detours are flown at it, and AUTO is resumed at it
        self.config = config
        self._emit = emit
        self.state = "waiting"
        self._pending_modes: list[str] = []
        self._target: GeoPoint | None = None
        self._last_sent_ns: int | None = None
        self._period_ns = int(1e9 / config.target_rate_hz)
        self._link_ok = True
        self.commands_sent = 0
        self.targets_sent = 0
        self.commands_failed = 0
        self.commands_suppressed = 0
        self.detours = 0
        self.holds = 0
        self.takeovers = 0
        self.last_correction: Correction | None = None
        self._speed_failed = False
        self._resumed: tuple[int, int | None] | None = None  # (item we resumed at, item reported at that moment)
        st = vehicle.state
        if st.mode == "AUTO" and st.armed:
            self.state = "auto"

    # -- what the vehicle did -------------------------------------------------------------------
    def on_vehicle_event(self, kind: str, value: Any, now_ns: int) -> None:
        """Vehicle events in order: ``mode`` (value: the new mode), ``link_lost``, ``link_recovered``."""
        if kind == "link_lost":
            self._link_ok = False
            self._emit(LoopEvent("link_lost", now_ns, "link lost: no commands until it is back"))
        elif kind == "link_recovered":
            self._link_ok = True
            self._emit(LoopEvent("link_recovered", now_ns, f"link back after {value or 0:.1f} s"))
        elif kind == "mode":
            self._on_mode(str(value), now_ns)

    def _on_mode(self, mode: str, now_ns: int) -> None:
        if mode in self._pending_modes:
            self._pending_modes.remove(mode)  # the HEARTBEAT showing a mode we asked for
            return
        if mode == "AUTO":
            if self.state != "auto":
                self._emit(LoopEvent("engaged", now_ns, "AUTO (not set by agridrone): flying the mission, "
                                                        "avoidance active"))
            self.state = "auto"
            self._target = None
            return
        if self.state != "waiting":
            self.takeovers += 1
            self._emit(LoopEvent("pilot_takeover", now_ns, f"mode {mode} not set by agridrone: the pilot has "
                                                            f"control; no commands until AUTO again"))
        self.state = "waiting"
        self._target = None

    def mission_seq(self, reported: int | None) -> int | None:
        """The mission item the vehicle is flying to, for planning: ``reported`` (MISSION_CURRENT), except just
        after we resumed AUTO at another item, while the vehicle still reports the item it had before.

        MISSION_CURRENT lags the resume by a telemetry period (seconds of vehicle time at a speed-up); a
        planner given the old item would see the route going back to it, through the obstacle just passed,
        and plan a detour back there: a loop round the obstacle. The first report that differs from the old
        item (normally the one we resumed at; or another, if someone else changed it) is believed again."""
        if self._resumed is not None:
            seq, stale = self._resumed
            if reported is not None and reported == stale and reported != seq:
                return seq
            self._resumed = None
        return reported

    @property
    def engaged(self) -> bool:
        """True while agridrone may command (flying the mission, a detour or a hold of its own)."""
        return self.state in ("auto", "detour", "hold")

    def _may_command(self) -> bool:
        st = self.vehicle.state
        if not self._link_ok or not getattr(st, "link_ok", True) or not st.armed:
            return False
        pose = st.pose
        return pose is not None and pose.alt_rel_home_m >= self.config.min_alt_rel_m

    # -- what the planner wants -----------------------------------------------------------------
    def tick(self, correction: Correction | None, now_ns: int) -> bool:
        """Act on the planner's correction of this tick; True when a command went out."""
        self.last_correction = correction
        if not self.engaged:
            return False
        if not self._may_command():
            if correction is not None and correction.kind is not CorrectionKind.RESUME or self.state == "detour":
                self.commands_suppressed += 1
            return False
        kind = None if correction is None else correction.kind
        if self.state == "hold":
            if kind is CorrectionKind.RESUME and self.config.resume_after_hold:
                return self._resume(correction.resume_seq, now_ns, "way clear again")
            return False
        if kind is CorrectionKind.HOLD:
            return self.hold(correction.reason, now_ns)
        if kind is CorrectionKind.DETOUR:
            return self._detour(correction, now_ns)
        if kind is CorrectionKind.RESUME and self.state == "detour":
            return self._resume(correction.resume_seq, now_ns, correction.reason)
        if kind is None and self.state == "detour":  # the planner no longer detours (re-created): back to AUTO
            return self._resume(self.vehicle.state.mission_seq, now_ns, "planner has no detour")
        return False

    def hold(self, reason: str, now_ns: int) -> bool:
        """Stop where the vehicle is (``hold_mode``) and stay there; also used by the safety monitor."""
        if self.state == "hold" or not self.engaged or not self._may_command():
            return False
        if not self._set_mode(self.config.hold_mode, now_ns):
            return False
        self.state = "hold"
        self.holds += 1
        self._target = None
        self._emit(LoopEvent("hold", now_ns, f"{self.config.hold_mode}: {reason}; holding until the pilot "
                                             f"resumes AUTO"))
        return True

    def _detour(self, correction: Correction, now_ns: int) -> bool:
        target = correction.waypoints[0]
        sent = False
        if self.state == "auto":
            if self.vehicle.state.mode != "AUTO":
                return False  # not flying the mission (yet): nothing of ours to correct
            if not self._set_mode("GUIDED", now_ns):
                return False
            self.state = "detour"
            self.detours += 1
            self._last_sent_ns = None
            self._emit(LoopEvent("detour", now_ns, f"detour {correction.side}: {correction.reason}",
                                 {"side": correction.side, "obstacles": list(correction.obstacle_ids),
                                  "waypoints": len(correction.waypoints), "resume_seq": correction.resume_seq}))
            sent = True
        due = self._last_sent_ns is None or now_ns - self._last_sent_ns >= self._period_ns
        if target != self._target or due:
            try:
                self.vehicle.goto(target.lat_deg, target.lon_deg, target.alt_m)
            except AgriDroneError as err:
                self._failed("position target", err, now_ns)
                return sent
            first = self._target is None
            self._target = target
            self._last_sent_ns = now_ns
            self.targets_sent += 1
            sent = True
            if first:  # GUIDED starts at WPNAV_SPEED (10 m/s by default) with its first target: the mission's speed
                self._set_speed(now_ns)
        return sent

    def resend_due(self, now_ns: int) -> bool:
        """True when a detour's position target is due again (the loop ticks for it without a frame)."""
        return self.state == "detour" and self._target is not None and self._last_sent_ns is not None \
            and now_ns - self._last_sent_ns >= self._period_ns

    def next_due_ns(self) -> int | None:
        if self.state != "detour" or self._last_sent_ns is None:
            return None
        return self._last_sent_ns + self._period_ns

    def _resume(self, seq: int | None, now_ns: int, reason: str) -> bool:
        if seq is None:
            return False
        self._pending_modes.append("AUTO")
        try:
            self.vehicle.resume_auto(int(seq))
        except AgriDroneError as err:
            self._drop_pending("AUTO")
            self._failed(f"resume AUTO at item {seq}", err, now_ns)
            return False
        self.commands_sent += 1
        self.state = "auto"
        self._target = None
        self._resumed = (int(seq), self.vehicle.state.mission_seq)
        self._set_speed(now_ns)  # re-entered AUTO may fly at WPNAV_SPEED, not the mission's DO_CHANGE_SPEED
        self._emit(LoopEvent("resume", now_ns, f"AUTO resumed at item {seq}: {reason}", {"seq": int(seq)}))
        return True

    def _set_speed(self, now_ns: int) -> None:
        """The mission's speed for the mode just entered; a refusal (an old firmware) is reported once."""
        if self.speed_m_s is None:
            return
        try:
            self.vehicle.set_speed(self.speed_m_s)
        except AgriDroneError as err:
            if not self._speed_failed:
                self._speed_failed = True
                self._failed(f"speed {self.speed_m_s:g} m/s (reported once; the autopilot's default speed applies)",
                             err, now_ns)
            return
        self.commands_sent += 1

    def _set_mode(self, mode: str, now_ns: int) -> bool:
        if self.vehicle.state.mode == mode:
            return True
        self._pending_modes.append(mode)
        try:
            self.vehicle.set_mode(mode)
        except AgriDroneError as err:
            self._drop_pending(mode)
            self._failed(f"mode {mode}", err, now_ns)
            return False
        self.commands_sent += 1
        return True

    def _drop_pending(self, mode: str) -> None:
        if mode in self._pending_modes and self.vehicle.state.mode != mode:
            self._pending_modes.remove(mode)

    def _failed(self, what: str, err: Exception, now_ns: int) -> None:
        self.commands_failed += 1
        self._emit(LoopEvent("command_failed", now_ns, f"{what} failed: {err}"))

    def summary(self) -> dict[str, Any]:
        return {"state": self.state, "commands_sent": self.commands_sent, "targets_sent": self.targets_sent,
                "commands_failed": self.commands_failed, "commands_suppressed": self.commands_suppressed,
                "detours": self.detours, "holds": self.holds, "pilot_takeovers": self.takeovers}
