"""Scenarios against a flight controller: the built-in simulator, or real ArduCopter SITL when
AGRIDRONE_SITL names an ``arducopter`` binary (see sitl/README.md). They use only the MAVLink URL
and the vehicle API, never the simulator's internals, so the same tests run against both.

Timeouts are vehicle seconds converted with ``autopilot.wall_s``. Each scenario ends by checking
that the vehicle is disarmed and that the Vehicle's threads are gone; the fixture then stops the
flight controller and checks it stopped.
"""

from __future__ import annotations

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.errors import CommandRejected, LinkError, LinkLost, MissionTransferError, WaitTimeout
from agridrone.geo import distance_m, offset_deg
from agridrone.types import MissionItem, MissionType
from agridrone.vehicle import Signing, connect, same_items
from vehicle_fakes import TcpProxy

pytestmark = pytest.mark.sitl

BOOT_TO_READY_S = 60.0  # vehicle seconds; ArduCopter 4.7 SITL needs about 42
STANDBY = mavlink.MAV_STATE_STANDBY


def ready_vehicle(autopilot, **kwargs):
    v = connect(autopilot.url, timeout_s=autopilot.wall_s(10), **kwargs)
    try:
        v.request_streams()
        v.wait_ready(timeout_s=autopilot.wall_s(BOOT_TO_READY_S))
    except BaseException:
        v.close()
        raise
    return v


def finish(v) -> None:
    """The end of every scenario: disarmed, and nothing of the Vehicle left running."""
    assert not v.state.armed, f"vehicle still armed at the end: {v.state.summary()}"
    v.close()
    assert v.running_threads() == []


def near(autopilot, north_m: float, east_m: float) -> tuple[float, float]:
    return offset_deg(autopilot.home[0], autopilot.home[1], north_m, east_m)


def test_connect_and_telemetry(autopilot):
    """Connecting learns the autopilot's ids; the requested streams fill every telemetry field with a receive
    time; readiness (EKF, GPS, home) is reached; home and position are where the vehicle was started;
    a parameter reads back; AUTOPILOT_VERSION answers REQUEST_MESSAGE."""
    v = ready_vehicle(autopilot)
    st = v.state
    assert v.target_system == 1 and v.target_component == 1
    assert st.vehicle_type == mavlink.MAV_TYPE_QUADROTOR and st.autopilot == mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA
    assert st.ekf_ok and st.gps_fix >= 3 and st.link_ok and not st.armed
    assert distance_m(st.home.lat_deg, st.home.lon_deg, *autopilot.home[:2]) < 1.0
    assert st.home.alt_m == pytest.approx(autopilot.home[2], abs=1.0)
    assert distance_m(st.pose.lat_deg, st.pose.lon_deg, *autopilot.home[:2]) < 2.0
    assert abs(st.pose.alt_rel_home_m) < 1.0 and st.battery_v and st.battery_v > 5
    for name in ("pose", "mode", "ekf_flags", "gps_fix", "home", "battery_v", "mission_seq", "groundspeed_m_s"):
        assert name in st.received_ns, f"no {name} received"
    assert st.pose.ts_ns == st.received_ns["pose"]
    assert v.params.get("GUID_TIMEOUT") == 3.0
    version = v.request_message(mavlink.MAVLINK_MSG_ID_AUTOPILOT_VERSION, timeout_s=autopilot.wall_s(3))
    assert version.flight_sw_version >> 24 == 4
    assert v.link_stats().packets_received > 20
    finish(v)


def test_commands_accepted_and_denied(autopilot_factory):
    """Before the EKF is ready, ARM and TAKEOFF are FAILED (never DENIED) and any mode is ACCEPTED while disarmed
    (AUTO without a mission too), as ArduCopter answers; DO_REPOSITION as COMMAND_LONG is UNSUPPORTED; once
    ready, ARM and DISARM are ACCEPTED and show in the HEARTBEAT."""
    autopilot = autopilot_factory(boot_s=30.0)  # the built-in sim boots slower; real SITL needs ~42 s anyway
    v = connect(autopilot.url, timeout_s=autopilot.wall_s(10))
    v.request_streams()
    v.wait_until(lambda st: st.system_status == STANDBY, autopilot.wall_s(20), "system status STANDBY")
    assert not v.state.ready
    with pytest.raises(CommandRejected) as err:
        v.arm()
    assert err.value.result == mavlink.MAV_RESULT_FAILED and err.value.origin == "MAV_CMD_COMPONENT_ARM_DISARM"
    with pytest.raises(CommandRejected) as err:
        v.takeoff(10)
    assert err.value.result == mavlink.MAV_RESULT_FAILED
    v.set_mode("AUTO")
    v.set_mode("GUIDED")
    with pytest.raises(CommandRejected) as err:
        v.takeoff(10)
    assert err.value.result == mavlink.MAV_RESULT_FAILED and not v.state.armed
    lat, lon = near(autopilot, 50, 40)
    with pytest.raises(CommandRejected) as err:
        v.command_long(mavlink.MAV_CMD_DO_REPOSITION, (-1, 0, 0, float("nan"), lat, lon, 25))
    assert err.value.result == mavlink.MAV_RESULT_UNSUPPORTED

    v.wait_ready(timeout_s=autopilot.wall_s(BOOT_TO_READY_S))
    v.arm()
    assert v.state.armed
    v.disarm()
    finish(v)


def test_mission_fence_rally_round_trips(autopilot):
    """Mission, fence and rally uploads are ACCEPTED and download as uploaded (allowing ArduPilot's frame
    changes and its home in item 0); bad uploads end with the vehicle's MISSION_ACK error as a typed error;
    clearing leaves empty lists."""
    v = connect(autopilot.url, timeout_s=autopilot.wall_s(10))
    v.request_streams()
    v.wait_until(lambda st: st.system_status == STANDBY, autopilot.wall_s(20), "system status STANDBY")
    home = autopilot.home
    mission = [MissionItem.at(16, home[0], home[1], 0, frame=0), MissionItem(22, z=15.0),
               MissionItem(178, frame=2, param1=1, param2=8, param3=-1)]
    mission += [MissionItem.at(16, *near(autopilot, n, e), alt) for n, e, alt in
                ((50, 50, 15), (50, -50, 20), (-50, -50, 20), (-50, 50, 15))]
    mission.append(MissionItem(20, frame=2))
    fence = [MissionItem.at(5001, *near(autopilot, n, e), 0, frame=0, params=(4, 0, 0, 0),
                            mission_type=MissionType.FENCE)
             for n, e in ((100, 100), (100, -100), (-100, -100), (-100, 100))]
    fence.append(MissionItem.at(5004, *near(autopilot, -80, 80), 0, frame=0, params=(15, 0, 0, 0),
                                mission_type=MissionType.FENCE))
    rally = [MissionItem.at(5100, *near(autopilot, -90, -90), 30, mission_type=MissionType.RALLY)]

    for items, kind in ((mission, MissionType.MISSION), (fence, MissionType.FENCE), (rally, MissionType.RALLY)):
        v.missions.upload(items, kind, timeout_s=autopilot.wall_s(20))
        back = v.missions.download(kind, timeout_s=autopilot.wall_s(20))
        assert same_items(items, back) == [], kind.name
    assert v.missions.count(MissionType.MISSION) == len(mission)

    bad_command = mission[:2] + [MissionItem(4242, frame=2)]
    with pytest.raises(MissionTransferError) as err:
        v.missions.upload(bad_command)
    assert err.value.result == mavlink.MAV_MISSION_UNSUPPORTED and err.value.params[0] == 2
    bad_lat = [mission[0], MissionItem(16, x=950000000, y=mission[3].y, z=10)]
    with pytest.raises(MissionTransferError) as err:
        v.missions.upload(bad_lat)
    assert err.value.result == mavlink.MAV_MISSION_INVALID_PARAM5_X
    two_vertices = fence[:2]
    two_vertices = [MissionItem.at(5001, it.lat_deg, it.lon_deg, 0, frame=0, params=(2, 0, 0, 0),
                                   mission_type=MissionType.FENCE) for it in two_vertices]
    with pytest.raises(MissionTransferError) as err:
        v.missions.upload(two_vertices, MissionType.FENCE)
    assert err.value.result == mavlink.MAV_MISSION_ERROR and err.value.origin == "upload FENCE"

    for kind in MissionType:
        v.missions.clear(kind)
        assert v.missions.download(kind) == []
    finish(v)


def test_signing(autopilot_factory, tmp_path):
    """With a signing key on the vehicle: our link with the right key works (commands ACCEPTED); a link with
    another key drops and counts the vehicle's messages and cannot connect; an unsigned link gets no
    answer to its commands (the vehicle drops them)."""
    key = bytes(range(7, 39))
    key_path = tmp_path / "signing.key"
    key_path.write_text(key.hex())
    autopilot = autopilot_factory(signing_key_path=key_path)

    with connect(autopilot.url, timeout_s=autopilot.wall_s(10), signing=key_path) as v:
        v.set_mode("GUIDED")
        assert v.link_stats().badsig_dropped == 0 and v.link_stats().unsigned_dropped == 0
        finish(v)

    with pytest.raises(LinkError) as err:
        connect(autopilot.url, timeout_s=autopilot.wall_s(5), signing=Signing(bytes(32 * [0x5A])))
    assert "signed with another key" in str(err.value)

    unsigned = connect(autopilot.url, timeout_s=autopilot.wall_s(10), ack_timeout_s=autopilot.wall_s(1, 0.3))
    with pytest.raises(WaitTimeout) as err:
        unsigned.set_mode("LOITER")
    assert err.value.origin == "COMMAND_ACK for MAV_CMD_DO_SET_MODE"
    finish(unsigned)


def test_link_loss_and_recovery(autopilot):
    """Cutting the link (a TCP proxy that drops all traffic) is detected as link lost, with an event, and a wait in
    progress raises LinkLost; restoring it is detected as recovered, and commands work again."""
    host, port = autopilot.url.split(":")[1:]
    proxy = TcpProxy(host, int(port))
    try:
        v = connect(proxy.url, timeout_s=autopilot.wall_s(10), link_timeout_s=1.5)
        with v.events.subscribe({"link_lost", "link_recovered"}) as sub:
            proxy.cut()
            with pytest.raises(LinkLost):
                v.wait_until(lambda st: st.armed, 10.0, "armed")
            assert sub.get(5.0).kind == "link_lost" and not v.state.link_ok
            proxy.restore()
            event = sub.get(10.0)
            assert event.kind == "link_recovered" and event.value > 1.5
        v.set_mode("GUIDED")
        assert v.state.link_ok and v.health.lost_count == 1
        finish(v)
    finally:
        proxy.stop()
    assert not proxy.running


@pytest.mark.slow
def test_whole_flight(autopilot):
    """A whole flight: GUIDED, arm, take off to 15 m, a velocity target then a GUIDED go-to 30 m north, an AUTO
    mission flown to its last waypoint (with a BRAKE hold and a resume at the next item on the way), then
    RTL, which lands at home and disarms."""
    v = ready_vehicle(autopilot)
    home = autopilot.home
    wps = [near(autopilot, 30, 30), near(autopilot, -30, 30), near(autopilot, -30, -30)]
    mission = [MissionItem.at(16, home[0], home[1], 0, frame=0), MissionItem(22, z=15.0)]
    mission += [MissionItem.at(16, lat, lon, 15) for lat, lon in wps]
    last_seq = len(mission) - 1
    v.missions.upload(mission, timeout_s=autopilot.wall_s(20))

    v.set_mode("GUIDED")
    v.arm()
    v.takeoff(15)
    v.wait_until(lambda st: st.pose.alt_rel_home_m > 14.5 and abs(st.pose.vd_m_s) < 0.3, autopilot.wall_s(30),
                 "take-off to 15 m complete (above 14.5 m, climb stopped)")

    v.set_velocity_ned(0, 3, 0)
    v.wait_until(lambda st: st.pose.ve_m_s > 1.5, autopilot.wall_s(3), "moving east at the velocity target")
    target = near(autopilot, 30, 0)
    v.goto(target[0], target[1], 15)
    v.wait_until(lambda st: distance_m(st.pose.lat_deg, st.pose.lon_deg, *target) < 2.5,
                 autopilot.wall_s(30), "within 2.5 m of the go-to target")

    with v.events.subscribe("mission_item_reached") as reached:
        v.set_mode("AUTO")
        reached.wait_for(lambda e: e.value == 2, autopilot.wall_s(40), "waypoint 2 reached")
        v.hold()  # BRAKE
        assert v.state.mode == "BRAKE"
        v.resume_auto(3)
        v.wait_until(lambda st: st.mode == "AUTO" and st.mission_seq == 3, autopilot.wall_s(5), "AUTO at item 3")
        reached.wait_for(lambda e: e.value == last_seq, autopilot.wall_s(40), f"waypoint {last_seq} reached")
    lat, lon = wps[-1]
    assert distance_m(v.state.pose.lat_deg, v.state.pose.lon_deg, lat, lon) < 5.0

    v.set_mode("RTL")
    v.wait_until(lambda st: not st.armed, autopilot.wall_s(120), "landed and disarmed after RTL")
    st = v.state
    assert distance_m(st.pose.lat_deg, st.pose.lon_deg, *home[:2]) < 5.0 and abs(st.pose.alt_rel_home_m) < 1.0
    finish(v)
