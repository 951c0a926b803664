"""Unit tests of commands (COMMAND_ACK matching, retries, denials) and the mission protocol
(upload / download / clear, error ACKs, silence mid-upload), against fake peers over local sockets.
"""

from __future__ import annotations

import time

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.errors import CommandRejected, MissionTransferError, VehicleError, WaitTimeout
from agridrone.types import MissionItem, MissionType
from agridrone.vehicle import connect, same_items
from vehicle_fakes import FakeAutopilot

HOME = (-35.363261, 149.165230)


def answering(table):
    """An on_message handler answering COMMAND_LONG/INT by command number: result, or a callable."""

    def on_message(peer, msg):
        if msg.get_type() in ("COMMAND_LONG", "COMMAND_INT") and msg.command in table:
            answer = table[msg.command]
            if callable(answer):
                answer(peer, msg)
            elif answer is not None:
                peer.ack(msg.command, answer)

    return on_message


def test_command_accepted_returns_the_ack():
    peer_table = {mavlink.MAV_CMD_NAV_TAKEOFF: mavlink.MAV_RESULT_ACCEPTED}
    with FakeAutopilot(on_message=answering(peer_table)) as peer, connect(peer.url, timeout_s=2) as v:
        v.takeoff(alt_m=12.5)
        cmd = peer.of_type("COMMAND_LONG")[-1]
        assert cmd.command == mavlink.MAV_CMD_NAV_TAKEOFF and cmd.param7 == 12.5
        assert (cmd.target_system, cmd.target_component) == (1, 1)


def test_command_denied_is_typed_and_quotes_the_vehicle():
    def deny_arm(peer, msg):
        peer.text("Arm: Accels inconsistent", severity=2)
        peer.ack(msg.command, mavlink.MAV_RESULT_FAILED)

    with FakeAutopilot(on_message=answering({mavlink.MAV_CMD_COMPONENT_ARM_DISARM: deny_arm})) as peer, \
            connect(peer.url, timeout_s=2) as v:
        with pytest.raises(CommandRejected) as err:
            v.arm()
    e = err.value
    assert e.result == mavlink.MAV_RESULT_FAILED and e.origin == "MAV_CMD_COMPONENT_ARM_DISARM"
    assert e.params[:2] == (1.0, 0.0)
    assert "expected COMMAND_ACK ACCEPTED, got MAV_RESULT_FAILED (4)" in str(e)
    assert "Arm: Accels inconsistent" in str(e)


@pytest.mark.parametrize("result", [mavlink.MAV_RESULT_DENIED, mavlink.MAV_RESULT_UNSUPPORTED,
                                    mavlink.MAV_RESULT_TEMPORARILY_REJECTED])
def test_each_rejection_result_is_carried(result):
    with FakeAutopilot(on_message=answering({mavlink.MAV_CMD_DO_SET_MODE: result})) as peer, \
            connect(peer.url, timeout_s=2) as v:
        with pytest.raises(CommandRejected) as err:
            v.set_mode("AUTO")
    assert err.value.result == result and err.value.params[1] == 3.0


def test_unanswered_command_is_retried_then_times_out():
    with FakeAutopilot() as peer, connect(peer.url, timeout_s=2, ack_timeout_s=0.2) as v:
        with pytest.raises(WaitTimeout) as err:
            v.takeoff(10)
        sent = peer.of_type("COMMAND_LONG")
    assert err.value.origin == "COMMAND_ACK for MAV_CMD_NAV_TAKEOFF"
    assert "no answer to 3 attempts" in str(err.value)
    assert [m.confirmation for m in sent] == [0, 1, 2]


def test_in_progress_then_accepted():
    def slow(peer, msg):
        peer.ack(msg.command, mavlink.MAV_RESULT_IN_PROGRESS)
        time.sleep(0.3)
        peer.ack(msg.command, mavlink.MAV_RESULT_ACCEPTED)

    with FakeAutopilot(on_message=answering({mavlink.MAV_CMD_NAV_TAKEOFF: slow})) as peer, \
            connect(peer.url, timeout_s=2, ack_timeout_s=0.2) as v:
        v.takeoff(10)
        assert len(peer.of_type("COMMAND_LONG")) == 1


def test_ack_for_another_command_is_not_taken():
    def wrong(peer, msg):
        peer.ack(mavlink.MAV_CMD_NAV_LAND, mavlink.MAV_RESULT_ACCEPTED)

    with FakeAutopilot(on_message=answering({mavlink.MAV_CMD_NAV_TAKEOFF: wrong})) as peer, \
            connect(peer.url, timeout_s=2, ack_timeout_s=0.2) as v:
        with pytest.raises(WaitTimeout):
            v.takeoff(10)


def test_set_mode_waits_for_the_heartbeat():
    def set_mode(peer, msg):
        peer.ack(msg.command, mavlink.MAV_RESULT_ACCEPTED)
        peer.custom_mode = int(msg.param2)
        peer.send_heartbeat()

    with FakeAutopilot(on_message=answering({mavlink.MAV_CMD_DO_SET_MODE: set_mode})) as peer, \
            connect(peer.url, timeout_s=2) as v:
        with v.events.subscribe("mode") as sub:
            v.set_mode("GUIDED")
            assert v.state.mode == "GUIDED" and sub.get(1.0).value == "GUIDED"
        with pytest.raises(VehicleError, match="expected one of STABILIZE"):
            v.set_mode("HOVER")


def test_mode_accepted_but_never_shown_times_out():
    with FakeAutopilot(on_message=answering({mavlink.MAV_CMD_DO_SET_MODE: mavlink.MAV_RESULT_ACCEPTED})) as peer, \
            connect(peer.url, timeout_s=2) as v:
        with pytest.raises(WaitTimeout) as err:
            v.set_mode("LOITER", timeout_s=0.5)
    assert err.value.origin == "mode LOITER in the HEARTBEAT"


def test_goto_needs_guided_and_sends_the_documented_mask():
    with FakeAutopilot(custom_mode=0) as peer, connect(peer.url, timeout_s=2) as v:
        with pytest.raises(VehicleError, match="expected the vehicle in GUIDED"):
            v.goto(*HOME, 20)
        peer.custom_mode = 4
        v.wait_until(lambda st: st.mode == "GUIDED", 2, "GUIDED")
        v.goto(HOME[0] + 0.0004, HOME[1], 20)
        v.set_velocity_ned(0, 3, 0)
        with pytest.raises(VehicleError, match="finite"):
            v.set_velocity_ned(float("nan"), 0, 0)
        pos, vel = peer.wait_received("SET_POSITION_TARGET_GLOBAL_INT", 2)
    assert (pos.coordinate_frame, pos.type_mask, pos.lat_int, pos.alt) == (6, 3576, int(round((HOME[0] + 0.0004) * 1e7)), 20)
    assert (vel.type_mask, vel.vy) == (3527, 3.0)


def test_set_speed_sends_do_change_speed_as_ground_speed_and_refuses_nonsense():
    table = {mavlink.MAV_CMD_DO_CHANGE_SPEED: mavlink.MAV_RESULT_ACCEPTED}
    with FakeAutopilot(on_message=answering(table)) as peer, connect(peer.url, timeout_s=2) as v:
        v.set_speed(4.5)
        cmd = peer.of_type("COMMAND_LONG")[-1]
        assert (cmd.command, cmd.param1, cmd.param2, cmd.param3) == (mavlink.MAV_CMD_DO_CHANGE_SPEED, 1, 4.5, -1)
        for bad in (0, -2, float("nan"), 500):
            with pytest.raises(VehicleError, match="speed: expected 0 < m/s <= 100"):
                v.set_speed(bad)
    table = {mavlink.MAV_CMD_DO_CHANGE_SPEED: mavlink.MAV_RESULT_FAILED}
    with FakeAutopilot(on_message=answering(table)) as peer, connect(peer.url, timeout_s=2) as v:
        with pytest.raises(CommandRejected):
            v.set_speed(4.5)


# ------------------------------------------------------------------------------------------- missions
class MissionPeer:
    """Answers the mission protocol like ArduCopter 4.7 (MISSION_REQUEST, frame changes on download)."""

    def __init__(self, *, fail_at=None, fail_result=None, stall_after=None, deny_download=False):
        self.store = {0: [], 1: [], 2: []}
        self.fail_at, self.fail_result = fail_at, fail_result
        self.stall_after = stall_after
        self.deny_download = deny_download
        self.upload = None

    def __call__(self, peer, msg):
        t = msg.get_type()
        mav = peer.mav
        if t == "MISSION_COUNT":
            self.upload = (msg.mission_type, msg.count, [])
            if msg.count == 0:
                self.store[msg.mission_type] = []
                peer.send(mav.mission_ack_encode(1, 191, 0, msg.mission_type))
            else:
                peer.send(mav.mission_request_encode(1, 191, 0, msg.mission_type))
        elif t == "MISSION_ITEM_INT" and self.upload:
            mt, n, items = self.upload
            if msg.seq == self.fail_at:
                self.upload = None
                peer.send(mav.mission_ack_encode(1, 191, self.fail_result, mt))
                return
            if msg.seq != len(items):
                return
            items.append(msg)
            if self.stall_after is not None and msg.seq >= self.stall_after:
                return
            if len(items) < n:
                peer.send(mav.mission_request_encode(1, 191, len(items), mt))
            else:
                self.store[mt] = items
                self.upload = None
                peer.send(mav.mission_ack_encode(1, 191, 0, mt))
        elif t == "MISSION_REQUEST_LIST":
            if self.deny_download:
                peer.send(mav.mission_ack_encode(1, 191, mavlink.MAV_MISSION_DENIED, msg.mission_type))
            else:
                peer.send(mav.mission_count_encode(1, 191, len(self.store[msg.mission_type]), msg.mission_type))
        elif t == "MISSION_REQUEST_INT":
            it = self.store[msg.mission_type][msg.seq]
            frame, z = it.frame, it.z
            if 176 <= it.command < 5000 or it.command == 20 or it.mission_type == 1:  # DO items, RTL, fence: frame 0
                frame = 0
                z = 0.0 if it.mission_type == 1 or 176 <= it.command < 5000 else z
            peer.send(mav.mission_item_int_encode(1, 191, msg.seq, frame, it.command, 0, it.autocontinue, it.param1,
                                                  it.param2, it.param3, it.param4, it.x, it.y, z, msg.mission_type))
        elif t == "MISSION_CLEAR_ALL":
            self.store[msg.mission_type] = []
            peer.send(mav.mission_ack_encode(1, 191, 0, msg.mission_type))


def sample_mission() -> list[MissionItem]:
    lat, lon = HOME
    return [MissionItem.at(16, lat, lon, 0, frame=0),
            MissionItem(22, z=15.0),
            MissionItem(178, frame=2, param1=1, param2=8, param3=-1),
            MissionItem.at(16, lat + 0.0004, lon, 15),
            MissionItem.at(16, lat + 0.0004, lon + 0.0005, 20),
            MissionItem(20, frame=2)]


def test_mission_round_trip_allows_frame_changes():
    peer_logic = MissionPeer()
    items = sample_mission()
    with FakeAutopilot(on_message=peer_logic) as peer, connect(peer.url, timeout_s=2) as v:
        v.missions.upload(items)
        assert not peer.of_type("MISSION_REQUEST_INT") and len(peer.of_type("MISSION_ITEM_INT")) == len(items)
        back = v.missions.download()
        assert len(back) == len(items) and back[2].frame == 0 and back[5].frame == 0
        assert same_items(items, back) == []
        acks = peer.wait_received("MISSION_ACK")
        assert [a.type for a in acks] == [0]  # we close the download with an ACK
        v.missions.clear()
        assert v.missions.download() == [] and v.missions.count() == 0


def test_fence_and_rally_round_trip():
    lat, lon = HOME
    fence = [MissionItem.at(5001, lat + dn, lon + de, 0, params=(4, 0, 0, 0), mission_type=MissionType.FENCE)
             for dn, de in ((0.0009, 0.0011), (0.0009, -0.0011), (-0.0009, -0.0011), (-0.0009, 0.0011))]
    fence.append(MissionItem.at(5004, lat - 0.0007, lon + 0.0009, 0, params=(15, 0, 0, 0),
                                mission_type=MissionType.FENCE))
    rally = [MissionItem.at(5100, lat - 0.0008, lon - 0.001, 30, mission_type=MissionType.RALLY)]
    with FakeAutopilot(on_message=MissionPeer()) as peer, connect(peer.url, timeout_s=2) as v:
        v.missions.upload(fence, MissionType.FENCE)
        v.missions.upload(rally, MissionType.RALLY)
        assert same_items(fence, v.missions.download(MissionType.FENCE)) == []
        assert same_items(rally, v.missions.download(MissionType.RALLY)) == []
        assert v.missions.count(MissionType.MISSION) == 0
    wrong = [MissionItem(5100, 0, x=1, y=1)]
    with FakeAutopilot() as peer, connect(peer.url, timeout_s=2) as v:
        with pytest.raises(MissionTransferError, match="expected items of mission_type RALLY, got MISSION"):
            v.missions.upload(wrong, MissionType.RALLY)


def test_same_items_reports_real_differences():
    items = sample_mission()
    moved = list(items)
    moved[3] = MissionItem.at(16, HOME[0] + 0.0005, HOME[1], 15)
    diffs = same_items(items, moved)
    assert len(diffs) == 1 and diffs[0].startswith("item 3 x")
    assert same_items(items, items[:-1]) == [f"expected {len(items)} items, got {len(items) - 1}"]
    rally = [MissionItem.at(5100, HOME[0], HOME[1], 30, mission_type=MissionType.RALLY)]
    higher = [MissionItem.at(5100, HOME[0], HOME[1], 35, mission_type=MissionType.RALLY)]
    assert same_items(rally, higher) == ["item 0 z: expected 30.0, got 35.0"]


@pytest.mark.parametrize("result, name", [(mavlink.MAV_MISSION_UNSUPPORTED, "MAV_MISSION_UNSUPPORTED (3)"),
                                          (mavlink.MAV_MISSION_INVALID_PARAM5_X, "MAV_MISSION_INVALID_PARAM5_X (10)"),
                                          (mavlink.MAV_MISSION_NO_SPACE, "MAV_MISSION_NO_SPACE (4)")])
def test_upload_rejected_by_mission_ack(result, name):
    with FakeAutopilot(on_message=MissionPeer(fail_at=2, fail_result=result)) as peer, \
            connect(peer.url, timeout_s=2) as v:
        with pytest.raises(MissionTransferError) as err:
            v.missions.upload(sample_mission())
    e = err.value
    assert e.result == result and e.origin == "upload MISSION" and e.params == (2, 6)
    assert f"got {name}" in str(e) and "expected MISSION_ACK MAV_MISSION_ACCEPTED (0)" in str(e)


def test_timeout_mid_upload():
    with FakeAutopilot(on_message=MissionPeer(stall_after=1)) as peer, connect(peer.url, timeout_s=2) as v:
        v.missions.item_timeout_s = 0.15
        with pytest.raises(MissionTransferError) as err:
            v.missions.upload(sample_mission())
        resent = [m.seq for m in peer.of_type("MISSION_ITEM_INT")]
    e = err.value
    assert e.result == "timeout" and e.params == (2, 6)
    assert "expected MISSION_REQUEST for item 2 of 6, got no answer to 5 tries" in str(e)
    assert resent == [0, 1, 1, 1, 1, 1]  # the last item re-sent on each silent step


def test_download_denied():
    with FakeAutopilot(on_message=MissionPeer(deny_download=True)) as peer, connect(peer.url, timeout_s=2) as v:
        with pytest.raises(MissionTransferError) as err:
            v.missions.download(MissionType.FENCE)
    assert err.value.result == mavlink.MAV_MISSION_DENIED and err.value.origin == "download FENCE"


def test_silent_vehicle_download_times_out():
    with FakeAutopilot() as peer, connect(peer.url, timeout_s=2) as v:
        with pytest.raises(MissionTransferError) as err:
            v.missions.download(item_timeout_s=0.1, attempts=3)
    assert err.value.result == "timeout" and "expected MISSION_COUNT" in str(err.value)
