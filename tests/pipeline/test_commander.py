"""Course corrections: who is in control, when nothing may be sent, and the target rate."""

from __future__ import annotations

from agridrone.config import CommanderConfig
from agridrone.pipeline_commander import Commander
from agridrone.types import AltFrame, Correction, CorrectionKind, GeoPoint

from pipeline_fakes import FakeVehicle, pose_at

LAT, LON = 52.0712, 11.3551
S = 1_000_000_000


def _detour(*targets) -> Correction:
    pts = tuple(GeoPoint(LAT + d, LON, 60.0, AltFrame.REL_HOME) for d in (targets or (0.0001,)))
    return Correction(CorrectionKind.DETOUR, waypoints=pts, resume_seq=9, side="left", reason="tree ahead",
                      obstacle_ids=(3,))


def _commander(vehicle, **cfg):
    events = []
    c = Commander(vehicle, CommanderConfig(**cfg), events.append)
    return c, events


def _feed(c: Commander, vehicle: FakeVehicle, sub, now: int) -> None:
    for ev in sub.drain():
        c.on_vehicle_event(ev.kind, ev.value, now)


def test_detour_goes_guided_sends_targets_and_resumes_auto_at_the_planners_item():
    """AUTO + DETOUR -> GUIDED and a position target for waypoints[0]; a new target goes out at once; RESUME ->
    DO_SET_MISSION_CURRENT(resume_seq) + AUTO. Our own mode changes are not mistaken for a pilot's."""
    v = FakeVehicle(pose_at(LAT, LON))
    sub = v.events.subscribe({"mode", "link_lost", "link_recovered"})
    c, events = _commander(v)
    assert c.state == "auto"
    assert c.tick(_detour(0.0001), 0)
    _feed(c, v, sub, 0)
    assert v.commands("set_mode") == [("set_mode", "GUIDED")] and c.state == "detour"
    assert v.commands("goto")[-1][1] == LAT + 0.0001
    assert c.tick(_detour(0.0002), S // 100)  # the target moved on: sent at once
    assert v.commands("goto")[-1][1] == LAT + 0.0002
    assert c.tick(Correction(CorrectionKind.RESUME, resume_seq=9), S // 50)
    _feed(c, v, sub, S // 50)
    assert v.commands("resume_auto") == [("resume_auto", 9)] and c.state == "auto"
    assert [e.kind for e in events] == ["detour", "resume"]
    assert c.takeovers == 0


def test_the_detour_target_is_resent_at_the_configured_rate():
    """The same DETOUR on every tick for 3 s, ticks every 50 ms: the target goes out at 4 Hz (>= 2 Hz), no faster."""
    v = FakeVehicle(pose_at(LAT, LON))
    c, _ = _commander(v, target_rate_hz=4.0)
    d = _detour()
    for i in range(61):
        c.tick(d, i * S // 20)
    n = len(v.commands("goto"))
    assert 12 <= n <= 13


def test_pilot_takeover_stops_commands_until_the_pilot_resumes_auto():
    """During a detour the pilot switches to LOITER: no command goes out however the planner insists; when
    the pilot selects AUTO again, agridrone is back in control and corrects again."""
    v = FakeVehicle(pose_at(LAT, LON))
    sub = v.events.subscribe({"mode"})
    c, events = _commander(v)
    c.tick(_detour(), 0)
    _feed(c, v, sub, 0)
    v.pilot_sets("LOITER")
    _feed(c, v, sub, S)
    n_before = len(v.calls)
    for i in range(10):
        assert not c.tick(_detour(0.0001 * i), S + i * S)
        assert not c.tick(Correction(CorrectionKind.HOLD, reason="blocked"), S + i * S)
    assert len(v.calls) == n_before and c.state == "waiting"
    assert "pilot_takeover" in [e.kind for e in events]
    v.pilot_sets("AUTO")
    _feed(c, v, sub, 20 * S)
    assert c.state == "auto"
    assert c.tick(_detour(), 21 * S)
    assert len(v.calls) > n_before


def test_no_command_while_the_link_is_lost():
    """Link lost during a detour: nothing is sent (the suppressed corrections are counted); back: targets again."""
    v = FakeVehicle(pose_at(LAT, LON))
    sub = v.events.subscribe({"mode", "link_lost", "link_recovered"})
    c, events = _commander(v)
    c.tick(_detour(), 0)
    _feed(c, v, sub, 0)
    v.lose_link()
    _feed(c, v, sub, S)
    n = len(v.calls)
    for i in range(8):
        c.tick(_detour(0.0001 * (i + 2)), S + i * S)
    assert len(v.calls) == n and c.commands_suppressed == 8
    v.recover_link()
    _feed(c, v, sub, 10 * S)
    assert c.tick(_detour(0.0005), 10 * S)
    assert v.calls[-1][0] == "goto"
    assert [e.kind for e in events if e.kind.startswith("link")] == ["link_lost", "link_recovered"]


def test_hold_brakes_once_and_stays_until_the_pilot_resumes():
    """HOLD -> BRAKE with a hold event; a later RESUME from the planner is not obeyed (the pilot decides)."""
    v = FakeVehicle(pose_at(LAT, LON))
    sub = v.events.subscribe({"mode"})
    c, events = _commander(v)
    hold = Correction(CorrectionKind.HOLD, reason="no way around obstacle(s) [4]")
    assert c.tick(hold, 0)
    _feed(c, v, sub, 0)
    for i in range(5):
        assert not c.tick(hold, i * S)
    assert not c.tick(Correction(CorrectionKind.RESUME, resume_seq=4), 6 * S)
    assert v.commands() == [("set_mode", "BRAKE")] and c.state == "hold"
    assert [e.kind for e in events] == ["hold"]


def test_nothing_is_commanded_before_auto_nor_near_the_ground():
    """Before the mission runs in AUTO (take-off in GUIDED), and below min_alt_rel_m, the planner is not obeyed."""
    v = FakeVehicle(pose_at(LAT, LON, alt_m=30.0), mode="GUIDED")
    c, _ = _commander(v)
    assert c.state == "waiting" and not c.tick(_detour(), 0)
    low = FakeVehicle(pose_at(LAT, LON, alt_m=2.0))
    c2, _ = _commander(low, min_alt_rel_m=5.0)
    assert not c2.tick(_detour(), 0) and low.calls == []


def test_after_a_resume_the_planner_is_given_the_resumed_item_until_the_vehicle_reports_a_new_one():
    """MISSION_CURRENT lags DO_SET_MISSION_CURRENT: until the vehicle reports something other than the item it
    had when we resumed, planning uses the item we resumed at (else the route seen by the planner goes back
    through the obstacle just passed: a loop round it, seen in a vineyard flight). Then the report is believed,
    also when it is not ours (the pilot or a ground station moved the mission on)."""
    v = FakeVehicle(pose_at(LAT, LON), seq=7)
    sub = v.events.subscribe({"mode"})
    c, _ = _commander(v)
    assert c.mission_seq(7) == 7  # no resume yet: the report
    c.tick(_detour(), 0)
    _feed(c, v, sub, 0)
    assert c.tick(Correction(CorrectionKind.RESUME, resume_seq=9), S)
    assert c.mission_seq(7) == 9 and c.mission_seq(7) == 9  # still the old report: the item we resumed at
    assert c.mission_seq(9) == 9
    assert c.mission_seq(7) == 7  # confirmed once: from now on the report rules (the pilot set item 7 again)
    c.tick(_detour(), 2 * S)
    _feed(c, v, sub, 2 * S)
    v._change(mission_seq=11)
    assert c.tick(Correction(CorrectionKind.RESUME, resume_seq=13), 3 * S)
    assert c.mission_seq(12) == 12  # another item than the old one: believed at once
    assert c.mission_seq(11) == 11


def test_a_resume_that_failed_leaves_the_vehicle_s_report_in_charge():
    v = FakeVehicle(pose_at(LAT, LON), seq=7)
    sub = v.events.subscribe({"mode"})
    c, _ = _commander(v)
    c.tick(_detour(), 0)
    _feed(c, v, sub, 0)

    def refuse(seq):
        from agridrone.errors import VehicleError
        raise VehicleError("DO_SET_MISSION_CURRENT: denied", result="denied", origin="COMMAND_LONG", params=(seq,))

    v.resume_auto = refuse
    assert not c.tick(Correction(CorrectionKind.RESUME, resume_seq=9), S)
    assert c.mission_seq(7) == 7


def test_detours_and_resumed_auto_are_flown_at_the_mission_speed():
    """GUIDED starts at WPNAV_SPEED (10 m/s by default): after the detour's first target the mission's speed
    goes out (once per detour, not with every target), and again after AUTO is resumed. A firmware that refuses
    it is reported once; the detour goes on."""
    v = FakeVehicle(pose_at(LAT, LON))
    sub = v.events.subscribe({"mode"})
    events = []
    c = Commander(v, CommanderConfig(), events.append, speed_m_s=5.0)
    c.tick(_detour(0.0001), 0)
    c.tick(_detour(0.0002), S // 100)
    _feed(c, v, sub, S // 100)
    names = [call[0] for call in v.calls]
    assert names == ["set_mode", "goto", "set_speed", "goto"] and v.commands("set_speed") == [("set_speed", 5.0)]
    c.tick(Correction(CorrectionKind.RESUME, resume_seq=9), S)
    _feed(c, v, sub, S)
    assert [call[0] for call in v.calls][-2:] == ["resume_auto", "set_speed"]

    def refuse(speed_m_s):
        from agridrone.errors import VehicleError
        raise VehicleError("DO_CHANGE_SPEED: failed", result="failed", origin="COMMAND_LONG", params=(speed_m_s,))

    v.set_speed = refuse
    for k in range(3):
        c.tick(_detour(0.0003 + k * 0.0001), (2 + k) * S)
        _feed(c, v, sub, (2 + k) * S)
        c.tick(Correction(CorrectionKind.RESUME, resume_seq=9), (2 + k) * S + S // 2)
        _feed(c, v, sub, (2 + k) * S + S // 2)
    assert [e.kind for e in events].count("command_failed") == 1 and c.detours == 4
