"""Unit tests of the simulator's parts with no sockets: physics, fence geometry, parameters,
the mission protocol and ArduCopter's command rules, driven in simulated time."""

from __future__ import annotations

import math

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mav

from agridrone.sim.fence import Fence, FenceInvalid, FlatFrame, point_in_polygon
from agridrone.sim.missionstore import Item
from agridrone.sim.params import Params
from agridrone.sim.vehicle import PointMass, Target
from sim_harness import Sim

ACCEPTED, DENIED, UNSUPPORTED, FAILED = 0, 2, 3, 4


# ---------------------------------------------------------------- physics
def _fly(pm: PointMass, seconds: float, dt: float = 0.02) -> list[float]:
    speeds = []
    for _ in range(int(seconds / dt)):
        pm.step(dt)
        speeds.append(pm.ground_speed_m_s)
    return speeds


def test_point_mass_respects_speed_and_acceleration_limits():
    pm = PointMass()
    pm.on_ground = False
    pm.u = 10.0
    pm.target = Target("pos", 0.0, 300.0, 10.0)
    speeds = _fly(pm, 60)
    assert max(speeds) <= pm.speed_max_m_s + 1e-6
    accels = [(b - a) / 0.02 for a, b in zip(speeds, speeds[1:])]
    assert max(accels) <= pm.accel_max_m_s2 + 1e-6
    assert math.hypot(pm.e, pm.n - 300.0) < 0.5 and pm.ground_speed_m_s < 0.2
    assert abs(math.degrees(pm.yaw_rad)) < 1.0  # yawed north, towards travel


def test_point_mass_climb_and_descent_limits_and_attitude():
    pm = PointMass()
    pm.target = Target("pos", 0.0, 0.0, 30.0)
    vz = []
    for _ in range(1000):
        pm.step(0.02)
        vz.append(pm.vu)
    assert max(vz) <= pm.climb_max_m_s + 1e-6 and abs(pm.u - 30.0) < 0.2
    pm.target = Target("land", 0.0, 0.0, 0.0)
    rates = []
    while not pm.on_ground:
        pm.step(0.02)
        rates.append((pm.u, -pm.vu))
    assert max(r for u, r in rates if u > 12) <= pm.land_speed_high_m_s + 1e-6
    assert max(r for u, r in rates if u < 9) <= pm.land_speed_m_s + 1e-6
    # accelerating north pitches the nose down (negative pitch), no roll
    pm2 = PointMass()
    pm2.on_ground, pm2.u = False, 10
    pm2.target = Target("vel", ve=0.0, vn=5.0)
    pm2.step(0.02)
    roll, pitch = pm2.attitude()
    assert pitch < -0.1 and abs(roll) < 1e-6


def test_wind_changes_airspeed_and_lean_not_ground_track():
    pm = PointMass(wind_en=(0.0, -5.0))  # 5 m/s from the north
    pm.on_ground, pm.u = False, 10
    pm.target = Target("hold", 0.0, 0.0, 10.0)
    _fly(pm, 2)
    assert pm.airspeed_m_s == pytest.approx(5.0, abs=0.1)
    roll, pitch = pm.attitude()
    assert pitch < -0.03  # leaning into the wind
    assert math.hypot(pm.e, pm.n) < 0.01


# ---------------------------------------------------------------- fence geometry
def _square_items(frame: FlatFrame, half_m: float, count: int = 4):
    corners = [(half_m, half_m), (half_m, -half_m), (-half_m, -half_m), (-half_m, half_m)][:count]
    out = []
    for i, (n, e) in enumerate(corners):
        lat, lon = frame.to_latlon(e, n)
        out.append(Item(i, 0, 5001, float(count), x=int(lat * 1e7), y=int(lon * 1e7), mission_type=1))
    return out


def test_fence_polygon_circle_and_altitude_breaches():
    frame = FlatFrame(-35.0, 149.0)
    items = _square_items(frame, 100.0)
    lat, lon = frame.to_latlon(80.0, -80.0)
    items.append(Item(4, 0, 5004, 15.0, x=int(lat * 1e7), y=int(lon * 1e7), mission_type=1))
    fence = Fence.from_items(items, frame)
    args = dict(home_en=(0.0, 0.0), fence_type=7, radius_m=150.0, alt_max_m=100.0)
    assert fence.breaches(0, 0, 10, **args) == []
    assert fence.breaches(0, 101, 10, **args) == ["Polygon"]
    assert fence.breaches(80, -80, 10, **args) == ["Polygon"]  # inside the exclusion circle
    assert fence.breaches(0, 0, 101, **args) == ["Max Alt"]
    assert fence.breaches(0, 0, 101, home_en=(0, 0), fence_type=3, radius_m=50, alt_max_m=100) == ["Max Alt"]
    assert fence.breaches(0, 60, 10, home_en=(0, 0), fence_type=2, radius_m=50, alt_max_m=100) == ["Circle"]
    d = fence.distance_to_boundary(0, 0, 0.0, 1.0, (0, 0), 4, 150)
    assert d == pytest.approx(100.0, abs=0.01)
    assert point_in_polygon(0, 0, [(-1, -1), (1, -1), (1, 1), (-1, 1)])


def test_fence_validation_rejects_two_vertex_polygon():
    frame = FlatFrame(-35.0, 149.0)
    with pytest.raises(FenceInvalid, match=r"Invalid vertex count \(2\)"):
        Fence.from_items(_square_items(frame, 50.0, count=2), frame)


def test_flat_frame_round_trip():
    frame = FlatFrame(-35.363261, 149.165230)
    lat, lon = frame.to_latlon(123.4, -567.8)
    e, n = frame.to_en(lat, lon)
    assert e == pytest.approx(123.4, abs=1e-6) and n == pytest.approx(-567.8, abs=1e-6)


# ---------------------------------------------------------------- parameters
def test_params_types_and_rounding():
    p = Params(584.0)
    assert p["WPNAV_SPEED"] == 1000 and p.type_of("FENCE_ENABLE") == 2
    assert p.set("DISARM_DELAY", 5.4) and p["DISARM_DELAY"] == 5
    assert not p.set("NO_SUCH_PARAM", 1) and not p.set("MIS_TOTAL", 3) and not p.set("GUID_TIMEOUT", math.nan)
    assert 90000 < p["BARO1_GND_PRESS"] < 96000


# ---------------------------------------------------------------- boot, arming, modes
def test_boot_sequence_and_denials_before_ready():
    """Boot as recorded: BOOT then STANDBY after "ArduPilot Ready"; arming FAILED (never DENIED) with
    "Arm:" texts before the EKF is ready; take-off disarmed FAILED; any mode ACCEPTED while disarmed,
    each mode change followed by an extra HEARTBEAT; arming ACCEPTED once ready."""
    s = Sim()
    s.run(1.5)
    hb = s.ch.of("HEARTBEAT")
    assert hb and hb[0].system_status == 1 and hb[0].type == 2 and hb[0].autopilot == 3
    assert s.command(400, 1) == FAILED  # before "ArduPilot Ready"
    s.run(2.0)
    assert "ArduPilot Ready" in s.ch.texts()
    assert s.ch.of("HEARTBEAT")[-1].system_status == 3
    assert s.command(400, 1) == FAILED and any(t.startswith("Arm: ") for t in s.ch.texts())
    assert s.command(22, 0, 0, 0, 0, 0, 0, 10) == FAILED  # take-off disarmed
    n = len(s.ch.of("HEARTBEAT"))
    assert s.command(176, 1, 3) == ACCEPTED  # AUTO with no mission, disarmed
    assert len(s.ch.of("HEARTBEAT")) == n + 1 and s.ch.of("HEARTBEAT")[-1].custom_mode == 3
    assert s.command(176, 1, 4) == ACCEPTED
    assert s.command(400, 1) == FAILED
    s.ready()
    assert s.ap.ekf_flags() == 0x33F and s.ap.home is not None
    assert s.command(400, 1) == ACCEPTED and "Arming motors" in s.ch.texts()
    assert s.command(176, 1, 99) == FAILED


def test_auto_disarm_on_ground_after_disarm_delay():
    """Armed on the ground without a take-off, the copter disarms itself after DISARM_DELAY (10 s)."""
    s = Sim(boot_s=7)
    s.ready()
    s.command(176, 1, 4)
    assert s.command(400, 1) == ACCEPTED
    t = s.run_until(lambda: not s.ap.armed, 30, "auto-disarm")
    assert t == pytest.approx(10.0, abs=0.1) and "Disarming motors" in s.ch.texts()


def test_auto_mode_armed_needs_mission_and_takeoff_item():
    s = Sim(boot_s=7)
    s.ready()
    s.command(176, 1, 4)
    s.command(400, 1)
    assert s.command(176, 1, 3) == FAILED  # no mission
    _upload(s, [(16, 0, 0, 10)])  # home + a waypoint, no take-off
    assert s.command(176, 1, 3) == FAILED and "Auto: Missing Takeoff Cmd" in s.ch.texts()


# ---------------------------------------------------------------- GUIDED
def test_guided_takeoff_position_velocity_timeout_and_brake():
    """GUIDED: take-off, a position target reached and reported with POSITION_TARGET_GLOBAL_INT, a
    velocity target held for GUID_TIMEOUT after the last one then braked to a stop (still GUIDED),
    and BRAKE mode stopping the copter."""
    s = Sim(boot_s=7)
    s.takeoff(20)
    s.target_global(50, 0, 20)
    s.run_until(lambda: abs(s.north_east()[0] - 50) < 2, 30, "arrival 50 m north")
    s.ch.schedule.set_interval(87, 0.5, s.ap.now_s)
    s.run(1.0)
    pt = s.ch.of("POSITION_TARGET_GLOBAL_INT")
    assert pt and pt[-1].coordinate_frame == 0 and pt[-1].type_mask == 65016
    for _ in range(8):
        s.target_global(0, 0, 0, mask=3527, v_ned=(0.0, 3.0, 0.0))
        s.run(0.25)
    last = s.ap.now_s - 0.25
    assert s.speed() == pytest.approx(3.0, abs=0.1)
    s.run(2.5)
    assert s.speed() == pytest.approx(3.0, abs=0.1)  # still flying inside GUID_TIMEOUT
    s.run_until(lambda: s.speed() < 0.1, 10, "stop after GUID_TIMEOUT")
    assert s.ap.now_s - last > 3.0 and s.ap.modes.mode == 4
    # BRAKE while moving
    s.target_global(0, 0, 20)
    s.run(3)
    assert s.command(176, 1, 17) == ACCEPTED
    s.run_until(lambda: s.speed() < 0.2, 10, "brake")
    assert s.ap.modes.mode == 17


def test_guided_speed_from_do_change_speed_holds_for_later_targets_until_guided_is_entered_again():
    """GUIDED flies position targets at WPNAV_SPEED (10 m/s); DO_CHANGE_SPEED in GUIDED limits this and later
    targets (ModeGuided::set_speed_xy), without touching AUTO's speed; entering GUIDED again starts over at
    WPNAV_SPEED. agridrone's detours rely on this to be flown at the survey speed."""
    s = Sim(boot_s=7)
    s.takeoff(20)
    s.target_global(200, 0, 20)
    s.run(12)
    assert s.speed() == pytest.approx(10.0, abs=0.3)
    assert s.command(178, 1, 4.0, -1) == ACCEPTED
    s.run(3)
    assert s.speed() == pytest.approx(4.0, abs=0.2)
    s.target_global(400, 0, 20)  # a later target keeps the speed
    s.run(5)
    assert s.speed() == pytest.approx(4.0, abs=0.2)
    assert s.ap.modes.speed_override_m_s is None  # AUTO's speed is its own
    assert s.command(176, 1, 17) == ACCEPTED  # BRAKE, then GUIDED again
    s.run_until(lambda: s.speed() < 0.2, 10, "brake")
    assert s.command(176, 1, 4) == ACCEPTED
    s.target_global(600, 0, 20)
    s.run(12)
    assert s.speed() == pytest.approx(10.0, abs=0.3)


def test_reposition_long_unsupported_int_accepted_and_fence_rules():
    """DO_REPOSITION is UNSUPPORTED as COMMAND_LONG, ACCEPTED and flown as COMMAND_INT, FAILED outside
    an enabled fence; DO_FENCE_ENABLE leaves FENCE_ENABLE at 0; a position target outside the fence
    is silently ignored."""
    s = Sim(boot_s=7)
    s.takeoff(20)
    lat, lon = s.ap.frame.to_latlon(40.0, 20.0)
    assert s.command(192, -1, 0, 0, math.nan, lat, lon, 25) == UNSUPPORTED
    assert s.command(192, -1, 0, 0, math.nan, lat * 1e7, lon * 1e7, 25, is_int=True, frame=6) == ACCEPTED
    s.run_until(lambda: math.hypot(s.north_east()[0] - 20, s.north_east()[1] - 40) < 0.2 and s.speed() < 0.05, 30,
                "reposition")
    s.command(207, 1)  # DO_FENCE_ENABLE: default 150 m circle
    assert s.ap.params["FENCE_ENABLE"] == 0 and s.ap.fence_enabled
    far_lat, far_lon = s.ap.frame.to_latlon(0.0, 300.0)
    assert s.command(192, -1, 0, 0, math.nan, far_lat * 1e7, far_lon * 1e7, 20, is_int=True, frame=6) == FAILED
    before = s.north_east()
    s.target_global(300, 0, 20)  # outside: silently ignored
    s.run(5)
    assert math.dist(before, s.north_east()) < 0.5


def test_velocity_stopped_short_of_fence_then_breach_with_avoidance_off():
    """Avoidance stops a velocity target ~AVOID_MARGIN short of the fence; with AVOID_ENABLE=0 the
    copter breaches: FENCE_STATUS, RTL, "... fence breached", then home, land and disarm."""
    s = Sim(boot_s=7)
    s.takeoff(20)
    s.send(mav.MAVLink_param_set_message(1, 1, b"FENCE_RADIUS", 60.0, 9))
    s.send(mav.MAVLink_param_set_message(1, 1, b"FENCE_ENABLE", 1.0, 2))
    for _ in range(120):
        s.target_global(0, 0, 0, mask=3527, v_ned=(5.0, 0.0, 0.0))
        s.run(0.25)
    assert 56.0 < s.north_east()[0] < 59.0 and s.ap.modes.mode == 4  # ~2 m short (AVOID_MARGIN)
    s.send(mav.MAVLink_param_set_message(1, 1, b"AVOID_ENABLE", 0.0, 2))
    t0 = s.ap.now_s
    for _ in range(20):
        s.target_global(0, 0, 0, mask=3527, v_ned=(5.0, 0.0, 0.0))
        s.run(0.25)
        if s.ap.modes.mode != 4:
            break
    assert s.ap.modes.mode == 6
    fs = s.ch.of("FENCE_STATUS", t0)
    assert fs and fs[0].breach_status == 1 and fs[0].breach_type == 3
    assert "Circle fence breached" in s.ch.texts(t0)
    s.run_until(lambda: not s.ap.armed, 200, "RTL to land and disarm")
    assert math.hypot(*s.north_east()) < 1.0 and "Fence breach cleared" in s.ch.texts(t0)


# ---------------------------------------------------------------- mission protocol and AUTO
def _upload(s: Sim, nav: list[tuple[int, float, float, float]], mission_type: int = 0, params=None) -> int:
    """Upload home + items given as (command, north_m, east_m, alt_m); returns the MISSION_ACK type."""
    items = [(16, 0.0, 0.0, 0.0)] + nav if mission_type == 0 else nav
    n_ack = len(s.ch.of("MISSION_ACK"))
    s.send(mav.MAVLink_mission_count_message(1, 1, len(items), mission_type))
    for seq, (cmd, n, e, alt) in enumerate(items):
        req = s.ch.of("MISSION_REQUEST")[-1]
        assert req.seq == seq
        lat, lon = s.ap.frame.to_latlon(e, n) if (n or e) else (0.0, 0.0)
        p = (params or {}).get(seq, (0.0, 0.0, 0.0, 0.0))
        s.send(mav.MAVLink_mission_item_int_message(1, 1, seq, 3, cmd, 0, 1, *p, int(round(lat * 1e7)),
                                                    int(round(lon * 1e7)), alt, mission_type))
        if len(s.ch.of("MISSION_ACK")) > n_ack:
            break
    return s.ch.of("MISSION_ACK")[-1].type


def _download(s: Sim, mission_type: int = 0) -> list:
    s.send(mav.MAVLink_mission_request_list_message(1, 1, mission_type))
    count = s.ch.of("MISSION_COUNT")[-1].count
    out = []
    for seq in range(count):
        s.send(mav.MAVLink_mission_request_int_message(1, 1, seq, mission_type))
        out.append(s.ch.of("MISSION_ITEM_INT")[-1])
    return out


def test_mission_round_trip_frames_and_home():
    """Upload then download gives the items back with ArduCopter's frame changes, and item 0 is home
    (0/0/0 until home exists, the real home after)."""
    s = Sim(boot_s=7)
    s.run(3)
    assert _upload(s, [(22, 0, 0, 10), (178, 0, 0, 0), (16, 50, 0, 10), (20, 0, 0, 0)],
                   params={2: (1.0, 8.0, -1.0, 0.0)}) == 0
    assert "Flight plan received" in s.ch.texts()
    items = _download(s)
    assert [i.command for i in items] == [16, 22, 178, 16, 20]
    assert (items[0].x, items[0].y, items[0].z, items[0].frame) == (0, 0, 0.0, 0)  # home not set yet
    assert items[2].frame == 0 and items[2].param2 == 8.0 and items[4].frame == 0 and items[3].frame == 3
    s.ready()
    home = _download(s)[0]
    assert home.x != 0 and home.z == pytest.approx(584.0, abs=0.01)
    assert s.ap.params["MIS_TOTAL"] == 5


def test_upload_errors_leave_mixed_mission_and_timeouts():
    """The recorded upload errors: NO_SPACE before Ready, UNSUPPORTED leaving a mixed mission,
    INVALID_SEQUENCE then a 1 s re-request, DENIED download during an upload, the 8 s timeout with
    OPERATION_CANCELLED, MISSION_CLEAR_ALL, and INVALID_PARAM5_X for latitude 95."""
    s = Sim(boot_s=7)
    s.send(mav.MAVLink_mission_count_message(1, 1, 3, 0))
    assert s.ch.of("MISSION_ACK")[-1].type == 4 and "Only 0 items are supported" in s.ch.texts()  # NO_SPACE
    s.run(3)
    assert _upload(s, [(22, 0, 0, 10), (16, 10, 0, 10), (16, 20, 0, 10), (16, 30, 0, 10)]) == 0
    assert _upload(s, [(16, 5, 0, 12), (4242, 0, 0, 0), (16, 0, 0, 0)]) == 3  # UNSUPPORTED at seq 2
    mixed = _download(s)
    assert len(mixed) == 4 and mixed[1].z == 12 and mixed[2].command == 16 and mixed[2].z == 10
    # wrong sequence: INVALID_SEQUENCE, upload continues after a 1 s re-request
    s.send(mav.MAVLink_mission_count_message(1, 1, 2, 0))
    s.send(mav.MAVLink_mission_item_int_message(1, 1, 1, 3, 16, 0, 1, 0, 0, 0, 0, 0, 0, 5, 0))
    assert s.ch.of("MISSION_ACK")[-1].type == 13
    t0 = s.ap.now_s
    s.run(1.05)
    assert [r.seq for r in s.ch.of("MISSION_REQUEST", t0 + 0.5)] == [0]
    # slower streams while the upload waits
    s.send(mav.MAVLink_mission_request_list_message(1, 1, 0))
    assert s.ch.of("MISSION_ACK")[-1].type == 14  # DENIED during an upload
    s.run(8)
    assert s.ch.of("MISSION_ACK")[-1].type == 15 and "Mission upload timeout" in s.ch.texts()
    assert len(s.ch.of("MISSION_REQUEST", t0)) >= 7
    s.send(mav.MAVLink_mission_clear_all_message(1, 1, 0))
    assert s.ch.of("MISSION_ACK")[-1].type == 0 and _download(s) == []
    # a bad latitude
    s.send(mav.MAVLink_mission_count_message(1, 1, 2, 0))
    s.send(mav.MAVLink_mission_item_int_message(1, 1, 0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0))
    s.send(mav.MAVLink_mission_item_int_message(1, 1, 1, 3, 16, 0, 1, 0, 0, 0, 0, 950000000, 0, 5, 0))
    assert s.ch.of("MISSION_ACK")[-1].type == 10


def test_streams_slow_to_a_quarter_during_upload():
    s = Sim(boot_s=7)
    s.run(3)
    s.ch.schedule.set_interval(33, 0.1, s.ap.now_s)
    s.run(2)
    t0 = s.ap.now_s
    s.send(mav.MAVLink_mission_count_message(1, 1, 3, 0))
    s.run(4)
    slow = len(s.ch.of("GLOBAL_POSITION_INT", t0))
    assert 9 <= slow <= 11  # 4 s at 2.5 Hz


def test_fence_upload_validation_and_rally():
    s = Sim(boot_s=7)
    s.run(3)
    bad = [(5001, 100, 100, 0), (5001, 100, -100, 0)]
    assert _upload(s, bad, mission_type=1, params={0: (2, 0, 0, 0), 1: (2, 0, 0, 0)}) == 1
    assert "Invalid vertex count (2)" in s.ch.texts() and "Fence validation failed" in s.ch.texts()
    square = [(5001, 100, 100, 0), (5001, 100, -100, 0), (5001, -100, -100, 0), (5001, -100, 100, 0)]
    assert _upload(s, square, mission_type=1, params={i: (4, 0, 0, 0) for i in range(4)}) == 0
    assert "Fence Indexed OK" in s.ch.texts() and s.ap.params["FENCE_TOTAL"] == 4
    got = _download(s, 1)
    assert all(i.frame == 0 and i.z == 0 for i in got) and got[0].param1 == 4
    assert _upload(s, [(5100, -90, -90, 30)], mission_type=2) == 0
    assert _download(s, 2)[0].frame == 3
    assert _upload(s, [(16, 0, 0, 30)], mission_type=2) == 3  # not a rally point


def test_auto_mission_progress_texts_and_rtl_stays_auto():
    """A whole AUTO mission: "Mission: N name" and "Reached command #N" texts, MISSION_ITEM_REACHED as
    recorded (not for the take-off; the RTL at disarm), camera triggers by distance, and the mode
    still AUTO after the mission's RTL has landed and disarmed."""
    s = Sim(boot_s=7)
    s.run(3)
    _upload(s, [(22, 0, 0, 15), (178, 0, 0, 0), (16, 40, 0, 15), (16, 40, 40, 20), (206, 0, 0, 0), (20, 0, 0, 0)],
            params={2: (1, 8, -1, 0), 5: (10, 0, 0, 0)})
    s.ready()
    s.command(176, 1, 4)
    s.command(400, 1)
    t0 = s.ap.now_s
    assert s.command(176, 1, 3) == ACCEPTED
    s.run_until(lambda: not s.ap.armed, 300, "the mission to end with a landing")
    texts = s.ch.texts(t0)
    for want in ("Mission: 1 Takeoff", "Mission: 2 ChangeSpeed", "Mission: 3 WP", "Reached command #3",
                 "Mission: 4 WP", "Reached command #4", "Mission: 5 CamTrigDist", "Mission: 6 RTL",
                 "Disarming motors"):
        assert want in texts, (want, texts)
    reached = [m.seq for m in s.ch.of("MISSION_ITEM_REACHED")]
    assert reached == [2, 3, 5, 6]
    assert s.ap.modes.mode == 3 and math.hypot(*s.north_east()) < 1.0
    assert s.ap.camera_triggers >= 3 and s.ch.of("CAMERA_FEEDBACK")
    s.ch.schedule.set_interval(42, 1.0, s.ap.now_s)
    s.run(1.1)
    mc = s.ch.of("MISSION_CURRENT")[-1]
    assert (mc.total, mc.mission_state, mc.mission_mode) == (6, 5, 1)


def test_set_mission_current_and_unknown_command():
    s = Sim(boot_s=7)
    s.run(3)
    _upload(s, [(22, 0, 0, 10), (16, 10, 0, 10), (16, 20, 0, 10)])
    assert s.command(224, 2) == ACCEPTED and s.ap.modes.mission_index == 2
    assert s.command(224, 9) == FAILED
    s.send(mav.MAVLink_mission_set_current_message(1, 1, 3))
    assert s.ap.modes.mission_index == 3
    assert s.command(31000) == UNSUPPORTED
    assert s.command(511, 33, 100000) == ACCEPTED and s.command(512, 148) == ACCEPTED
    assert s.ch.of("AUTOPILOT_VERSION")[-1].capabilities == 0xFBEF
    assert s.command(512, 242) == FAILED  # no home yet


def test_loiter_time_then_land_in_auto():
    """NAV_LOITER_TIME holds at its point for param1 seconds; NAV_LAND at a location flies there and
    lands, and the copter disarms itself ~2 s after touchdown."""
    s = Sim(boot_s=7)
    s.run(3)
    _upload(s, [(22, 0, 0, 10), (19, 30, 0, 10), (21, 0, 0, 0)], params={2: (5.0, 0, 0, 0)})
    s.ready()
    s.command(176, 1, 4)
    s.command(400, 1)
    s.command(176, 1, 3)
    s.run_until(lambda: s.ap.modes.mission_index == 2, 60, "the loiter item")
    s.run_until(lambda: abs(s.north_east()[0] - 30) < 0.5, 60, "arrival at the loiter point")
    t_at = s.ap.now_s
    s.run_until(lambda: s.ap.modes.mission_index == 3, 60, "the land item")
    assert s.ap.now_s - t_at >= 5.0 - 0.6
    assert "Mission: 2 LoitTime" in s.ch.texts() and "Mission: 3 Land" in s.ch.texts()
    s.run_until(lambda: not s.ap.armed, 120, "landing and disarm")
    assert abs(s.north_east()[0] - 30) < 1 and s.ap.modes.mode == 3
    assert any(t.startswith("SIM Hit ground at 0.5") for t in s.ch.texts())


def test_local_ned_targets_and_extra_streams():
    s = Sim(boot_s=7)
    s.takeoff(10)
    n0, e0 = s.north_east()
    s.send(mav.MAVLink_set_position_target_local_ned_message(0, 1, 1, 7, 3576, 10.0, -5.0, 0.0, 0, 0, 0,
                                                              0, 0, 0, 0, 0))  # LOCAL_OFFSET_NED
    s.run_until(lambda: math.dist((n0 + 10, e0 - 5), s.north_east()) < 0.3, 30, "the local offset target")
    s.send(mav.MAVLink_set_position_target_local_ned_message(0, 1, 1, 1, 3527, 0, 0, 0, 0.0, 2.0, 0.0,
                                                              0, 0, 0, 0, 0))  # LOCAL_NED velocity east
    s.run(2.5)
    assert s.ap.vehicle.ve == pytest.approx(2.0, abs=0.05)
    for msg_id in (32, 147, 2):
        assert s.command(511, msg_id, 500000) == ACCEPTED
    used0 = s.ap.battery.used_mah
    s.send(mav.MAVLink_set_position_target_local_ned_message(0, 1, 1, 1, 3527, 0, 0, 0, 0.0, 2.0, 0.0,
                                                              0, 0, 0, 0, 0))  # within GUID_TIMEOUT
    s.run(2)
    lp = s.ch.of("LOCAL_POSITION_NED")[-1]
    assert lp.vy == pytest.approx(2.0, abs=0.05) and lp.z == pytest.approx(-10.0, abs=0.3)
    bs = s.ch.of("BATTERY_STATUS")[-1]
    assert s.ap.battery.used_mah > used0 and bs.battery_remaining <= 100 and bs.current_battery > 0
    assert s.ch.of("SYSTEM_TIME")


def test_long_statustext_is_sent_in_chunks():
    s = Sim()
    s.ap.text(4, "x" * 120)
    s.ap.flush_texts()
    chunks = s.ch.of("STATUSTEXT")[-3:]
    assert [c.chunk_seq for c in chunks] == [0, 1, 2] and len({c.id for c in chunks}) == 1 and chunks[0].id > 0
    assert "".join(c.text for c in chunks) == "x" * 120
