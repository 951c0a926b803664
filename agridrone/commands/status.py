"""``agridrone status --connect URL [--timeout S]``: what the flight controller says about itself.

Prints vehicle type, firmware (AUTOPILOT_VERSION through MAV_CMD_REQUEST_MESSAGE), mode, armed,
position, GPS/EKF readiness, battery and the sizes of the mission, fence and rally lists, then
exits 0. A link that cannot be opened (bad URL, unreachable host, wrong port, a peer that is not
MAVLink, no HEARTBEAT within the timeout) is one line on stderr and a non-zero exit (cli.py).
Each item the vehicle does not answer within the time left is printed as unknown, with why.
"""

from __future__ import annotations

import time

# What to ask for with MAV_CMD_REQUEST_MESSAGE (message ids, common.xml), in order. HOME_POSITION is last:
# before home exists ArduPilot accepts the request and sends nothing, so it costs a full per-item wait.
_MSG_IDS = {
    "AUTOPILOT_VERSION": 148, "GLOBAL_POSITION_INT": 33, "GPS_RAW_INT": 24, "EKF_STATUS_REPORT": 193,
    "SYS_STATUS": 1, "ATTITUDE": 30, "HOME_POSITION": 242,
}
_PER_ITEM_S = 1.0
_FW_TYPES = {0: "dev", 64: "alpha", 128: "beta", 192: "rc", 255: ""}
_STATES = {0: "UNINIT", 1: "BOOT", 2: "CALIBRATING", 3: "STANDBY", 4: "ACTIVE", 5: "CRITICAL", 6: "EMERGENCY",
           7: "POWEROFF", 8: "FLIGHT_TERMINATION"}


def register(sub) -> None:
    p = sub.add_parser("status", help="connect to a flight controller and print its state")
    p.add_argument("--connect", required=True, metavar="URL",
                   help="tcp:HOST:PORT, udp:HOST:PORT (listen), udpout:HOST:PORT or serial:DEVICE:BAUD")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the first HEARTBEAT, and again for the answers (default 10)")
    p.add_argument("--signing-key", metavar="FILE", help="MAVLink 2 signing key (32 raw bytes or 64 hex characters)")
    p.set_defaults(func=run)


def vehicle_name(mav_type: int | None, autopilot: int | None) -> str:
    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    type_entry = mavlink.enums["MAV_TYPE"].get(mav_type) if mav_type is not None else None
    type_name = type_entry.name.removeprefix("MAV_TYPE_") if type_entry else f"type {mav_type}"
    if autopilot == mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA:
        copters = {2, 3, 4, 13, 14, 15, 29, 35}
        family = ("ArduCopter" if mav_type in copters else "ArduPlane" if mav_type == 1
                  else "Rover" if mav_type in (10, 11) else "ArduSub" if mav_type == 12 else "ArduPilot")
        return f"{family} ({type_name})"
    ap_entry = mavlink.enums["MAV_AUTOPILOT"].get(autopilot) if autopilot is not None else None
    return f"{type_name} ({ap_entry.name.removeprefix('MAV_AUTOPILOT_') if ap_entry else autopilot})"


def firmware_text(msg, name: str) -> str:
    v = int(msg.flight_sw_version)
    major, minor, patch, kind = (v >> 24) & 255, (v >> 16) & 255, (v >> 8) & 255, v & 255
    suffix = _FW_TYPES.get(kind, f"type {kind}")
    custom = bytes(msg.flight_custom_version).rstrip(b"\0").decode("ascii", "replace")
    text = f"{name.split(' ')[0]} {major}.{minor}.{patch}" + (f"-{suffix}" if suffix else "")
    return text + (f" (git {custom})" if custom else "")


def run(args) -> int:
    from agridrone.errors import VehicleError
    from agridrone.types import MissionType
    from agridrone.vehicle import connect

    with connect(args.connect, timeout_s=args.timeout, signing=args.signing_key) as v:
        deadline = time.monotonic() + args.timeout
        counts: dict[MissionType, object] = {}
        for kind in MissionType:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError("no time left")
                counts[kind] = v.missions.count(kind, timeout_s=min(_PER_ITEM_S, remaining))
            except (VehicleError, TimeoutError) as err:
                counts[kind] = err
        answers: dict[str, object] = {}
        for name, msg_id in _MSG_IDS.items():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                answers[name] = "no time left"
                continue
            try:
                answers[name] = v.request_message(msg_id, timeout_s=min(_PER_ITEM_S, remaining))
            except VehicleError as err:
                answers[name] = err
        st = v.state
        stats = v.link_stats()
        for line in _report(v, st, answers, counts, stats, args.connect):
            print(line)
    return 0


def _why(err) -> str:
    if isinstance(err, Exception) and getattr(err, "result", None) is not None:
        return f"unknown ({err.origin or 'no answer'}: {err.result})"
    return f"unknown ({err})"


def _report(v, st, answers, counts, stats, url) -> list[str]:
    from agridrone.types import MissionType

    name = vehicle_name(st.vehicle_type, st.autopilot)
    lines = [f"vehicle:   {name}, system {v.target_system} component {v.target_component}, at {url}"]
    version = answers.get("AUTOPILOT_VERSION")
    lines.append(f"firmware:  {firmware_text(version, name)}" if hasattr(version, "flight_sw_version")
                 else f"firmware:  {_why(version)}")
    status = _STATES.get(st.system_status, str(st.system_status))
    lines.append(f"mode:      {st.mode}, {'ARMED' if st.armed else 'disarmed'}, system status {status}")
    if st.pose:
        p = st.pose
        lines.append(f"position:  {p.lat_deg:.7f}, {p.lon_deg:.7f}, {p.alt_amsl_m:.1f} m AMSL, "
                     f"{p.alt_rel_home_m:.1f} m above home, heading {p.yaw_deg:.0f} deg")
    else:
        lines.append(f"position:  {_why(answers.get('GLOBAL_POSITION_INT'))}")
    lines.append(f"home:      {st.home.lat_deg:.7f}, {st.home.lon_deg:.7f}, {st.home.alt_m:.1f} m AMSL" if st.home
                 else "home:      not set yet")
    gps = f"GPS fix {st.gps_fix}" + (f" ({st.gps_sats} satellites)" if st.gps_sats is not None else "")
    ekf = "EKF none" if st.ekf_flags is None else f"EKF {st.ekf_flags:#x} {'ok' if st.ekf_ok else 'not ok'}"
    missing = [w for ok, w in ((st.ekf_ok, "EKF position"), (st.gps_fix >= 3, "3D GPS fix"),
                               (st.home is not None, "home")) if not ok]
    verdict = "ready" if not missing else "not ready (waiting for " + ", ".join(missing) + ")"
    prearm = "" if st.prearm_ok is None else f", pre-arm checks {'pass' if st.prearm_ok else 'fail'}"
    lines.append(f"readiness: {verdict}: {gps}, {ekf}{prearm}")
    if st.battery_v is not None:
        pct = f", {st.battery_pct:.0f} %" if st.battery_pct is not None else ""
        lines.append(f"battery:   {st.battery_v:.2f} V{pct}")
    else:
        lines.append("battery:   unknown")
    mission = counts[MissionType.MISSION]
    parts = [f"{max(0, mission - 1)} items + home" if isinstance(mission, int) and mission else
             "empty" if mission == 0 else _why(mission)]
    for kind, noun in ((MissionType.FENCE, "fence"), (MissionType.RALLY, "rally")):
        n = counts[kind]
        parts.append(f"{noun} {n} items" if isinstance(n, int) else f"{noun} {_why(n)}")
    lines.append("mission:   " + "; ".join(parts))
    signing = "signed" if v.link.signing else "unsigned"
    lines.append(f"link:      MAVLink 2, {signing}, {stats.packets_received} messages, {stats.bad_bytes} bad bytes, "
                 f"{stats.unsigned_dropped + stats.badsig_dropped} dropped for signing")
    return lines
