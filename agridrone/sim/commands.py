"""What the simulated ArduCopter does with each incoming message: COMMAND_LONG / COMMAND_INT with
ArduCopter's COMMAND_ACK results, SET_MODE, parameters, stream requests, GUIDED targets, TIMESYNC,
and the mission protocol (delegated to ``MissionStore``).
"""

from __future__ import annotations

import math

from pymavlink.dialects.v20 import ardupilotmega as mav

from agridrone.sim import modes as M
from agridrone.sim import streams as S
from agridrone.sim.autopilot import BANNER

ACCEPTED, DENIED, UNSUPPORTED, FAILED = 0, 2, 3, 4
FORCE_MAGIC = 21196

CMD_NAV_RETURN_TO_LAUNCH, CMD_NAV_LAND, CMD_NAV_TAKEOFF = 20, 21, 22
CMD_DO_SET_MODE, CMD_DO_CHANGE_SPEED, CMD_DO_SET_HOME, CMD_DO_REPOSITION = 176, 178, 179, 192
CMD_DO_SET_CAM_TRIGG_DIST, CMD_DO_FENCE_ENABLE, CMD_DO_SET_MISSION_CURRENT = 206, 207, 224
CMD_MISSION_START, CMD_COMPONENT_ARM_DISARM = 300, 400
CMD_GET_MESSAGE_INTERVAL, CMD_SET_MESSAGE_INTERVAL, CMD_REQUEST_MESSAGE = 510, 511, 512
CMD_REQUEST_AUTOPILOT_CAPABILITIES, CMD_DO_SEND_BANNER = 520, 42428

MASK_POSITION_IGNORED = 0b111
MASK_VELOCITY_IGNORED = 0b111000


class MessageHandler:
    """Dispatches one decoded message from a channel to the autopilot."""

    def __init__(self, ap) -> None:
        self.ap = ap

    def handle(self, channel, msg) -> None:
        kind = msg.get_type()
        ap = self.ap
        if kind == "BAD_DATA":
            return
        if kind in ("COMMAND_LONG", "COMMAND_INT"):
            self._command(channel, msg, kind == "COMMAND_INT")
        elif kind.startswith("MISSION_"):
            if kind == "MISSION_SET_CURRENT":
                ap.modes.set_current(int(msg.seq))
            else:
                ap.missions.handle(channel, msg)
        elif kind == "SET_POSITION_TARGET_GLOBAL_INT":
            self._target_global(msg)
        elif kind == "SET_POSITION_TARGET_LOCAL_NED":
            self._target_local(msg)
        elif kind == "SET_MODE":
            ok = self._set_mode(int(msg.custom_mode))
            self._ack(channel, msg, 11, ACCEPTED if ok else FAILED)
            if ok:
                ap.send_heartbeat_now()
        elif kind == "PARAM_REQUEST_READ":
            name = msg.param_id if isinstance(msg.param_id, str) else msg.param_id.decode(errors="replace")
            if msg.param_index >= 0 and not name:
                names = ap.params.names()
                if msg.param_index < len(names):
                    ap.send_param(names[msg.param_index], channel, index=msg.param_index)
            elif name in ap.params:
                ap.send_param(name, channel)
        elif kind == "PARAM_REQUEST_LIST":
            for i, name in enumerate(ap.params.names()):
                ap.send_param(name, channel, index=i)
        elif kind == "PARAM_SET":
            self._param_set(msg)
        elif kind == "REQUEST_DATA_STREAM":
            ids = S.DATA_STREAMS.get(int(msg.req_stream_id), ())
            rate = float(msg.req_message_rate)
            for msg_id in ids:
                channel.schedule.set_interval(msg_id, 1.0 / rate if (msg.start_stop and rate > 0) else None, ap.now_s)
        elif kind == "TIMESYNC":
            if msg.tc1 == 0:
                channel.send(mav.MAVLink_timesync_message(tc1=int(ap.now_s * 1e9), ts1=msg.ts1))
        elif kind == "SETUP_SIGNING":
            if not ap.armed and ap.signing_callback is not None:
                key = bytes(msg.secret_key)
                ap.signing_callback(None if not any(key) else key)
        # HEARTBEAT, STATUSTEXT and anything else from clients is accepted and needs no answer.
        ap.flush_texts()

    # ------------------------------------------------------------------ helpers
    def _ack(self, channel, msg, command: int, result: int) -> None:
        channel.send(mav.MAVLink_command_ack_message(command=command, result=result, progress=0, result_param2=0,
                                                     target_system=msg.get_srcSystem(),
                                                     target_component=msg.get_srcComponent()))

    def _set_mode(self, mode: int) -> bool:
        ok, text = self.ap.modes.set_mode(mode)
        if not ok and text:
            self.ap.text(2 if text.startswith("Auto:") else 4, text)
        return ok

    def _param_set(self, msg) -> None:
        ap = self.ap
        name = msg.param_id if isinstance(msg.param_id, str) else msg.param_id.decode(errors="replace")
        if name not in ap.params:
            return  # ArduPilot stays silent for unknown names
        if ap.params.set(name, float(msg.param_value)) and name == "FENCE_ENABLE":
            ap.fence_enabled = ap.params["FENCE_ENABLE"] >= 1
        ap.send_param(name)

    # ------------------------------------------------------------------ commands
    def _command(self, channel, msg, is_int: bool) -> None:
        ap = self.ap
        cmd = int(msg.command)
        p = [msg.param1, msg.param2, msg.param3, msg.param4]
        if is_int:
            p += [msg.x, msg.y, msg.z]
        else:
            p += [msg.param5, msg.param6, msg.param7]
        after = None
        result = UNSUPPORTED
        if cmd == CMD_SET_MESSAGE_INTERVAL:
            msg_id, interval_us = int(p[0]), p[1]
            if msg_id not in S.STREAMABLE:
                result = FAILED
            else:
                channel.schedule.set_interval(msg_id, interval_us / 1e6 if interval_us > 0 else None, ap.now_s)
                result = ACCEPTED
        elif cmd == CMD_GET_MESSAGE_INTERVAL:
            msg_id = int(p[0])
            iv = channel.schedule.interval_s.get(msg_id)
            result = ACCEPTED
            after = lambda: channel.send(mav.MAVLink_message_interval_message(  # noqa: E731
                message_id=msg_id, interval_us=int(iv * 1e6) if iv else -1))
        elif cmd in (CMD_REQUEST_MESSAGE, CMD_REQUEST_AUTOPILOT_CAPABILITIES):
            msg_id = S.AUTOPILOT_VERSION if cmd == CMD_REQUEST_AUTOPILOT_CAPABILITIES else int(p[0])
            out = S.BUILDERS[msg_id](ap) if msg_id in S.BUILDERS else None
            result = ACCEPTED if out is not None else FAILED
            if out is not None:
                after = lambda: channel.send(out)  # noqa: E731
        elif cmd == CMD_DO_SEND_BANNER:
            result = ACCEPTED
            after = lambda: [ap.text(6, t) for t in BANNER]  # noqa: E731
        elif cmd == CMD_COMPONENT_ARM_DISARM:
            result, after = self._arm_disarm(p)
        elif cmd == CMD_DO_SET_MODE:
            ok = self._set_mode(int(p[1]))
            result = ACCEPTED if ok else FAILED
            after = ap.send_heartbeat_now if ok else None
        elif cmd == CMD_NAV_TAKEOFF:
            alt_m = p[6] if math.isfinite(p[6]) else 0.0
            result = ACCEPTED if ap.modes.takeoff(alt_m + ap.home_u()) else FAILED
        elif cmd in (CMD_NAV_LAND, CMD_NAV_RETURN_TO_LAUNCH):
            ok = self._set_mode(M.LAND if cmd == CMD_NAV_LAND else M.RTL)
            result = ACCEPTED if ok else FAILED
            after = ap.send_heartbeat_now if ok else None
        elif cmd == CMD_DO_REPOSITION:
            result, after = (self._reposition(p, int(msg.frame)) if is_int else (UNSUPPORTED, None))
        elif cmd == CMD_DO_FENCE_ENABLE:
            if int(p[0]) in (0, 1):
                ap.fence_enabled = int(p[0]) == 1  # the FENCE_ENABLE parameter is left as it is
                result = ACCEPTED
            else:
                result = ACCEPTED if int(p[0]) == 2 else FAILED
        elif cmd == CMD_DO_CHANGE_SPEED:
            if p[1] > 0:
                if ap.modes.mode == M.GUIDED:  # GUIDED's own speed (ModeGuided::set_speed_xy), not AUTO's
                    ap.modes.guided_speed_m_s = float(p[1])
                else:
                    ap.modes.speed_override_m_s = float(p[1])
                if ap.vehicle.target.kind == "pos":
                    ap.vehicle.target.speed_m_s = float(p[1])
                result = ACCEPTED
            else:
                result = FAILED
        elif cmd == CMD_DO_SET_HOME:
            result = self._set_home(p, is_int)
        elif cmd == CMD_DO_SET_MISSION_CURRENT:
            result = ACCEPTED if ap.modes.set_current(int(p[0])) else FAILED
        elif cmd == CMD_MISSION_START:
            if ap.modes.mode != M.AUTO:
                ok = self._set_mode(M.AUTO)
                result = ACCEPTED if ok else FAILED
                after = ap.send_heartbeat_now if ok else None
            else:
                result = ACCEPTED
                if ap.armed:
                    ap.modes.start_mission()
        elif cmd == CMD_DO_SET_CAM_TRIGG_DIST:
            ap.set_camera_trigger_distance(float(p[0]), trigger_now=p[2] > 0)
            result = ACCEPTED
        self._ack(channel, msg, cmd, result)
        if after is not None:
            after()

    def _arm_disarm(self, p):
        ap = self.ap
        force = int(round(p[1])) == FORCE_MAGIC
        if p[0] >= 0.5:
            ok, texts = ap.arm(force)
            sev = 6 if ok else 2
            for t in texts if not ok else []:
                ap.text(sev, t)
            return (ACCEPTED if ok else FAILED), ((lambda: [ap.text(6, t) for t in texts]) if ok else None)
        if not ap.armed:
            return ACCEPTED, None
        if not ap.vehicle.on_ground and not force:
            return FAILED, None
        return ACCEPTED, ap.disarm

    def _set_home(self, p, is_int: bool) -> int:
        ap = self.ap
        if p[0] >= 1:
            if not ap.position_ready:
                return FAILED
            ap.set_home_here()
            return ACCEPTED
        lat, lon = (p[4] / 1e7, p[5] / 1e7) if is_int else (p[4], p[5])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
            return FAILED
        ap.set_home_latlon(lat, lon, float(p[6]))
        return ACCEPTED

    def _reposition(self, p, frame: int):
        """DO_REPOSITION as COMMAND_INT: GUIDED only (unless param2 bit 0 asks for the mode change)."""
        ap = self.ap
        lat, lon = p[4] / 1e7, p[5] / 1e7
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return DENIED, None
        change_mode = int(p[1]) & 1
        if ap.modes.mode != M.GUIDED and not change_mode:
            return DENIED, None
        if not ap.armed or ap.vehicle.on_ground:
            return FAILED, None
        e, n = ap.frame.to_en(lat, lon)
        u = ap.alt_to_u(float(p[6]), frame) if math.isfinite(p[6]) else ap.vehicle.u
        if ap.outside_fence(e, n, u):
            return FAILED, None
        after = None
        if ap.modes.mode != M.GUIDED:
            ap.modes.set_mode(M.GUIDED)
            after = ap.send_heartbeat_now
        speed = float(p[0]) if p[0] > 0 else None
        return (ACCEPTED if ap.modes.guided_position(e, n, u, speed) else FAILED), after

    # ------------------------------------------------------------------ GUIDED targets
    def _target_global(self, msg) -> None:
        ap = self.ap
        mask, frame = int(msg.type_mask), int(msg.coordinate_frame)
        if ap.modes.mode != M.GUIDED or frame not in (0, 3, 5, 6, 10, 11):
            return
        use_pos = not mask & MASK_POSITION_IGNORED
        use_vel = not mask & MASK_VELOCITY_IGNORED
        if use_pos:
            lat, lon = msg.lat_int / 1e7, msg.lon_int / 1e7
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                return
            e, n = ap.frame.to_en(lat, lon)
            self._position(e, n, ap.alt_to_u(float(msg.alt), frame),
                           math.hypot(msg.vx, msg.vy) if use_vel else None)
        elif use_vel:
            ap.modes.guided_velocity(float(msg.vy), float(msg.vx), -float(msg.vz))

    def _target_local(self, msg) -> None:
        ap, v = self.ap, self.ap.vehicle
        mask, frame = int(msg.type_mask), int(msg.coordinate_frame)
        if ap.modes.mode != M.GUIDED or frame not in (1, 7, 8, 9):
            return
        use_pos = not mask & MASK_POSITION_IGNORED
        use_vel = not mask & MASK_VELOCITY_IGNORED
        s, c = math.sin(v.yaw_rad), math.cos(v.yaw_rad)

        def rotate(x_fwd, y_right):  # body -> (east, north)
            return x_fwd * s + y_right * c, x_fwd * c - y_right * s

        if use_pos:
            if frame == 1:
                e, n, u = float(msg.y), float(msg.x), -float(msg.z)
            elif frame == 7:
                e, n, u = v.e + msg.y, v.n + msg.x, v.u - msg.z
            else:
                de, dn = rotate(float(msg.x), float(msg.y))
                e, n, u = v.e + de, v.n + dn, v.u - msg.z
            self._position(e, n, u, math.hypot(msg.vx, msg.vy) if use_vel else None)
        elif use_vel:
            if frame in (8, 9):
                ve, vn = rotate(float(msg.vx), float(msg.vy))
            else:
                ve, vn = float(msg.vy), float(msg.vx)
            ap.modes.guided_velocity(ve, vn, -float(msg.vz))

    def _position(self, e: float, n: float, u: float, speed_m_s: float | None) -> None:
        if self.ap.outside_fence(e, n, u):
            return  # ArduCopter silently ignores a position target outside an enabled fence
        self.ap.modes.guided_position(e, n, u, speed_m_s if speed_m_s and speed_m_s > 0.1 else None)
