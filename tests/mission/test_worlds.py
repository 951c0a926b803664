"""sitl/worlds: one per example mission, valid, with an obstacle on a survey line and 200-2000 m² patches."""

from __future__ import annotations

from pathlib import Path

import pytest
from shapely.geometry import LineString, Point

from agridrone.errors import MissionError
from agridrone.mission import geometry as g
from agridrone.mission.loader import load_mission
from agridrone.mission.survey import plan_survey
from agridrone.sim.world import load_world, read_world

REPO = Path(__file__).resolve().parents[2]
WORLDS = sorted((REPO / "sitl" / "worlds").glob("*.yaml"))


def test_one_world_per_example():
    missions = {p.resolve() for p in (REPO / "missions").glob("*.yaml")}
    assert {load_world(w).mission_path for w in WORLDS} == missions


@pytest.mark.parametrize("path", WORLDS, ids=lambda p: p.stem)
def test_world_ground_truth(path):
    w = load_world(path)
    plan = plan_survey(load_mission(w.mission_path))
    lines = [LineString(l) for l in plan.lines]
    on_line = [o for o in w.obstacles
               if min(l.distance(Point(g.to_enu(plan.frame, [(o.lat_deg, o.lon_deg)])[0])) for l in lines) < 1.0]
    assert on_line, "expected at least one obstacle standing on a survey line"
    assert 1 <= len(w.patches) <= 3
    for p in w.patches:
        assert 200 <= p.area_m2 <= 2000
        poly = g.to_enu(plan.frame, p.polygon)
        from shapely.geometry import Polygon
        assert plan.field.contains(Polygon(poly))


def test_bad_world_is_located(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text("name: x\nmission: ../nope.yaml\nground_alt_amsl_m: 1\nobstacles:\n"
                 "  - {class: tre, lat: 1, lon: 2, radius_m: 1, height_m: 2}\npatches: []\n")
    _, errors, _ = read_world(p)
    msgs = [str(e) for e in errors]
    assert msgs[0].startswith(f"{p}:2:10: mission: mission file '../nope.yaml' not found")
    assert msgs[1] == f"{p}:5:13: obstacles[0].class: expected one of tree, person, animal, vehicle, pole, building, " \
                      "got 'tre' (did you mean 'tree'?)"
    with pytest.raises(MissionError):
        load_world(p)
