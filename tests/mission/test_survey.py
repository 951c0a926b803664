"""The planner on the example missions and on small hand-made cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from shapely.geometry import LineString, Point

from agridrone.mission import geometry as g
from agridrone.mission.loader import load_mission
from agridrone.mission.survey import plan_survey
from mission_helpers import BASE, ZONE, write

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "missions").glob("*.yaml"))


def test_there_are_four_examples_at_real_scale():
    assert {p.stem for p in EXAMPLES} >= {"cereal-rectangle", "maize-l-shape", "vineyard-rows", "powerline-farmstead"}
    areas = {p.stem: plan_survey(load_mission(p)).field_area_m2 / 1e4 for p in EXAMPLES}
    assert 18 <= areas["cereal-rectangle"] <= 22


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_plans_stay_inside_and_out_of_zones(path):
    """Each example: path inside the fence, survey and transits inside the field, nothing in a buffered zone,
    everything within 2 km of home."""
    m = load_mission(path)
    plan = plan_survey(m)
    field = plan.field.buffer(1e-3)
    zones = [(g.zone_shape(z, plan.frame), z.buffer_m) for z in m.zones]
    pts = plan.path_xy
    for a, b in zip(pts[:-1], pts[1:]):
        seg = LineString([a, b]) if a != b else Point(a)
        assert all(seg.distance(z) >= buf - 0.05 for z, buf in zones)
        assert math.hypot(*b) < 2000
    for (a, b) in plan.lines:
        assert field.covers(LineString([a, b]))
    s = plan.summary()
    assert s["lines"] == len(plan.lines) > 3 and s["path_length_m"] > 0 and s["flight_time_s"] > 0
    assert 0.85 <= plan.area_covered_m2 / plan.field_area_m2 <= 1.0


def test_spacing_trigger_and_gsd_follow_the_camera(tmp_path):
    m = load_mission(write(tmp_path, BASE))
    plan = plan_survey(m)
    swath = 40 * 13.2 / 8.8  # 60 m
    assert plan.swath_m == pytest.approx(swath)
    assert plan.spacing_m == pytest.approx(swath * (1 - 0.70))
    assert plan.trigger_distance_m == pytest.approx(40 * 8.8 / 8.8 * (1 - 0.75))
    assert plan.gsd_cm_px == pytest.approx(100 * 40 * 13.2 / (8.8 * 5472))


def test_explicit_spacing_and_angle_are_used(tmp_path):
    text = BASE.replace("  headland_m: 3\n", "  headland_m: 3\n  line_spacing_m: 15\n  line_angle_deg: 45\n")
    plan = plan_survey(load_mission(write(tmp_path, text)))
    assert plan.spacing_m == 15 and plan.angle_deg == 45
    for a, b in plan.lines:
        bearing = math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 180
        assert bearing == pytest.approx(45, abs=1e-6)


def test_auto_angle_runs_along_the_long_side(tmp_path):
    """The base field is 226 m east-west by 167 m north-south: fewer turns flying east-west."""
    plan = plan_survey(load_mission(write(tmp_path, BASE)))
    assert plan.angle_deg % 180 == pytest.approx(90, abs=1.0)


def test_lines_are_split_around_a_zone_and_rejoined(tmp_path):
    """A pond in the middle splits the lines that cross it; no segment crosses the buffered pond."""
    text = BASE.replace("  headland_m: 3\n", "  headland_m: 3\n  line_spacing_m: 10\n  line_angle_deg: 90\n") + ZONE
    m = load_mission(write(tmp_path, text))
    plan = plan_survey(m)
    pond = g.zone_shape(m.zones[0], plan.frame)
    ys = [round(a[1], 3) for a, _ in plan.lines]
    split_rows = {y for y in ys if ys.count(y) == 2}
    assert split_rows, "expected some lines split in two by the pond"
    for a, b in zip(plan.path_xy[:-1], plan.path_xy[1:]):
        if a != b:
            assert LineString([a, b]).distance(pond) >= 5 - 0.05

