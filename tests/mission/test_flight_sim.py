"""An example mission checks, plans, uploads to the built-in simulator (mission + fence + rally) and flies
to completion in AUTO without a fence breach, with nothing but the autopilot flying it.

Every example is also flown to completion inside its geofence by the whole flight loop
(tests/closedloop/test_closed_loop.py); here the concave L-shaped field with its exclusion zones stands for
them all, so the suite does not fly each mission twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.mission.compile import compile_mission
from agridrone.mission.loader import load_mission
from agridrone.mission.upload import upload_mission
from agridrone.types import MissionType

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [REPO / "missions" / "maize-l-shape.yaml"]
SPEEDUP = 60.0


def _set_param(v, name: str, value: float) -> None:
    v.link.send(v.link.mav.param_set_encode(v.target_system, v.target_component, name.encode(), float(value),
                                            mavlink.MAV_PARAM_TYPE_REAL32))


@pytest.mark.slow
@pytest.mark.sitl
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_flies_in_auto_without_fence_breach(path, autopilot_factory):
    """Plan -> upload (fence enabled: inclusion polygon, zones, FENCE_ALT_MAX) -> GUIDED, arm, take off ->
    AUTO -> every item up to the last one is reached, the copter lands and disarms, and no fence breach."""
    from agridrone.vehicle import connect

    compiled = compile_mission(load_mission(path))
    m = compiled.mission
    ap = autopilot_factory(home=(m.home_lat_deg, m.home_lon_deg, m.home_ground_alt_amsl_m), speedup=SPEEDUP)
    with connect(ap.url, timeout_s=10.0) as v:
        v.wait_heartbeat(10.0)
        v.request_streams()
        v.wait_ready(timeout_s=ap.wall_s(60, margin_s=20))
        upload_mission(v, compiled, timeout_s=30.0)
        assert len(v.missions.download(MissionType.FENCE)) == len(compiled.fence)
        for name, value in compiled.params.items():
            _set_param(v, name, value)
        v.command_long(207, params=(1,))  # MAV_CMD_DO_FENCE_ENABLE
        v.set_mode("GUIDED")
        v.arm()
        v.takeoff(alt_m=10.0)
        v.wait_until(lambda st: st.pose.alt_rel_home_m > 8.0, timeout_s=ap.wall_s(30), what="altitude above 8 m")
        v.set_mode("AUTO")
        last = len(compiled.items) - 1
        seen = {"max_seq": 0, "breach": False}

        def finished(st) -> bool:
            if st.mission_seq is not None:
                seen["max_seq"] = max(seen["max_seq"], st.mission_seq)
            seen["breach"] |= bool(st.fence_breached)
            return seen["breach"] or (not st.armed and seen["max_seq"] >= last - 1)

        st = v.wait_until(finished, timeout_s=ap.wall_s(compiled.plan.flight_time_s * 1.5, margin_s=30),
                          what="the mission flown to its end, landed and disarmed")
        assert not seen["breach"], f"fence breached: {[t.text for t in st.statustexts][-5:]}"
        assert not any("fence" in t.text.lower() and "breach" in t.text.lower() for t in st.statustexts)
        assert seen["max_seq"] >= last - 1
        assert not st.armed


@pytest.mark.slow
@pytest.mark.sitl
def test_cli_upload_puts_mission_fence_and_rally_on_the_vehicle(autopilot_factory, capsys):
    """``agridrone mission upload FILE --connect URL`` leaves the same three lists on the autopilot."""
    from agridrone.cli import main
    from agridrone.vehicle import connect, same_items

    path = REPO / "missions" / "vineyard-rows.yaml"
    compiled = compile_mission(load_mission(path))
    m = compiled.mission
    ap = autopilot_factory(home=(m.home_lat_deg, m.home_lon_deg, m.home_ground_alt_amsl_m), speedup=SPEEDUP)
    with connect(ap.url, timeout_s=10.0) as v:  # wait until the autopilot is ready before the CLI uploads
        v.wait_heartbeat(10.0)
        v.request_streams()
        v.wait_ready(timeout_s=ap.wall_s(60, margin_s=20))
    assert main(["mission", "upload", str(path), "--connect", ap.url]) == 0
    out = capsys.readouterr().out
    assert f"uploaded {len(compiled.items)} mission items, {len(compiled.fence)} fence items" in out
    assert "FENCE_ALT_MAX=50" in out
    with connect(ap.url, timeout_s=10.0) as v:
        v.wait_heartbeat(10.0)
        for mt, want in ((MissionType.MISSION, compiled.items), (MissionType.FENCE, compiled.fence),
                         (MissionType.RALLY, compiled.rally)):
            assert same_items(list(want), v.missions.download(mt)) == [], mt.name
