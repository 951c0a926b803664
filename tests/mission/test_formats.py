"""Exports and imports: QGC .plan structure and round trip, .waypoints, KML/KMZ and GeoJSON round trips,
and boundaries read from each format by the mission loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Polygon

from agridrone.mission.compile import compile_mission
from agridrone.mission.formats import read_shapes
from agridrone.mission.formats import geojson, kml, qgcplan, waypoints
from agridrone.mission.loader import load_mission
from agridrone.mission.survey import plan_survey
from agridrone.types import MissionType
from mission_helpers import BASE, write

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compiled():
    return compile_mission(load_mission(REPO / "missions" / "powerline-farmstead.yaml"))


def test_plan_has_qgc_structure(compiled, tmp_path):
    out = tmp_path / "m.plan"
    qgcplan.write(compiled, out)
    doc = json.loads(out.read_text())
    assert doc["fileType"] == "Plan" and doc["version"] == 1 and doc["groundStation"] == "QGroundControl"
    assert doc["mission"]["version"] == 2 and doc["geoFence"]["version"] == 2 and doc["rallyPoints"]["version"] == 2
    assert doc["mission"]["plannedHomePosition"] == pytest.approx([compiled.mission.home_lat_deg,
                                                                  compiled.mission.home_lon_deg, 58.0])
    items = doc["mission"]["items"]
    assert len(items) == len(compiled.items) - 1  # home lives in plannedHomePosition
    assert all(i["type"] == "SimpleItem" and len(i["params"]) == 7 for i in items)
    assert [i["doJumpId"] for i in items] == list(range(1, len(items) + 1))
    assert items[0]["command"] == 22 and items[1]["command"] == 178 and items[-1]["command"] == 20
    polys = doc["geoFence"]["polygons"]
    assert [p["inclusion"] for p in polys] == [True, False, False]  # field + margin, farmstead, power line
    assert doc["rallyPoints"]["points"][0][:2] == pytest.approx([compiled.mission.home_lat_deg,
                                                                compiled.mission.home_lon_deg])


def test_plan_round_trip(compiled, tmp_path):
    out = tmp_path / "m.plan"
    qgcplan.write(compiled, out)
    back = qgcplan.read_plan(out)
    assert back.items == compiled.items
    assert back.fence == compiled.fence
    assert back.rally == compiled.rally


def test_plan_reimports_into_the_same_plan(compiled, tmp_path):
    """A mission whose boundary and zones come from our own .plan plans the very same survey."""
    qgcplan.write(compiled, tmp_path / "export.plan")
    text = BASE.replace("47.39995", str(compiled.mission.home_lat_deg)).replace(
        "8.53995", str(compiled.mission.home_lon_deg))
    start = text.index("  boundary:")
    end = text.index("home:")
    text = text[:start] + "  boundary: {file: export.plan}\n" + text[end:]
    text = text.replace("ground_alt_amsl_m: 420", "ground_alt_amsl_m: 58")
    text = text.replace("altitude_agl_m: 40", "altitude_agl_m: 70").replace("speed_m_s: 6", "speed_m_s: 10")
    text = text.replace("headland_m: 3", "headland_m: 8\n  side_overlap_pct: 65")
    zones = "exclusion_zones:\n" + "".join(
        f"  - {{name: {z.name}, file: export.plan, file_name: {z.name}, buffer_m: {z.buffer_m}}}\n"
        for z in compiled.mission.zones)
    text += zones + "safety: {fence_margin_m: 20, fence_alt_max_m: 90}\n"
    m = load_mission(write(tmp_path, text))
    assert m.boundary == compiled.mission.boundary
    assert [z.points for z in m.zones] == [z.points for z in compiled.mission.zones]
    again = compile_mission(m)
    assert again.items == compiled.items
    assert again.fence == compiled.fence


def test_waypoints_round_trip(compiled, tmp_path):
    out = tmp_path / "m.waypoints"
    waypoints.write(compiled, out)
    text = out.read_text().splitlines()
    assert text[0] == "QGC WPL 110" and text[1].split("\t")[:4] == ["0", "1", "0", "16"]
    assert tuple(waypoints.read_items(out)) == compiled.items


def test_geojson_round_trip(compiled, tmp_path):
    out = tmp_path / "m.geojson"
    geojson.write(compiled, out)
    shapes = read_shapes(out)
    boundary = [s for s in shapes if s.role == "boundary"][0]
    assert Polygon(boundary.points).symmetric_difference(Polygon(compiled.mission.boundary)).area < 1e-14
    zones = [s for s in shapes if s.role == "exclusion"]
    assert [z.name for z in zones] == [z.name for z in compiled.mission.zones]
    for got, want in zip(zones, compiled.mission.zones):
        assert Polygon(got.points).symmetric_difference(Polygon(want.points)).area < 1e-14
        assert got.buffer_m == want.buffer_m
    path = [s for s in shapes if s.role == "path"][0]
    assert len(path.points) == len(compiled.path_geo())
    doc = json.loads(out.read_text())
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]  # closed, [lon, lat]
    assert Polygon(ring).exterior.is_ccw  # RFC 7946 right-hand rule


@pytest.mark.parametrize("suffix", [".kml", ".kmz"])
def test_kml_round_trip(compiled, tmp_path, suffix):
    out = tmp_path / f"m{suffix}"
    kml.write(compiled, out)
    shapes = read_shapes(out)
    boundary = [s for s in shapes if s.role == "boundary"][0]
    assert boundary.name == compiled.mission.name
    np.testing.assert_allclose(boundary.points, compiled.mission.boundary, atol=1e-8)
    zones = [s for s in shapes if s.role == "exclusion"]
    assert len(zones) == len(compiled.mission.zones)
    for got, want in zip(zones, compiled.mission.zones):
        np.testing.assert_allclose(got.points, want.points, atol=1e-8)


def test_kml_circle_zone_comes_back_as_a_circle(tmp_path):
    c = compile_mission(load_mission(REPO / "missions" / "vineyard-rows.yaml"))
    kml.write(c, tmp_path / "v.kml")
    got = [s for s in read_shapes(tmp_path / "v.kml") if s.role == "exclusion"][0]
    want = c.mission.zones[0]
    assert (got.kind, got.points[0], got.radius_m) == ("circle", want.center, want.radius_m)


def test_boundary_from_a_my_maps_kml(tmp_path):
    """A KML as Google My Maps writes it (no agridrone data): the named placemark becomes the boundary."""
    (tmp_path / "farm.kml").write_text("""<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>Farm</name><Folder><name>Layer</name>
<Placemark><name>Gate</name><Point><coordinates>8.5401,47.4001,0</coordinates></Point></Placemark>
<Placemark><name>Big field</name><Polygon><outerBoundaryIs><LinearRing><tessellate>1</tessellate><coordinates>
8.540,47.400,0 8.543,47.400,0 8.543,47.4015,0 8.540,47.4015,0 8.540,47.400,0
</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></Folder></Document></kml>""")
    start, end = BASE.index("  boundary:"), BASE.index("home:")
    m = load_mission(write(tmp_path, BASE[:start] + "  boundary: {file: farm.kml, name: Big field}\n" + BASE[end:]))
    assert m.boundary == ((47.4, 8.54), (47.4, 8.543), (47.4015, 8.543), (47.4015, 8.54))
    assert plan_survey(m).lines


def test_boundary_from_waypoints(tmp_path):
    lines = ["QGC WPL 110", "0\t1\t0\t16\t0\t0\t0\t0\t47.39995\t8.53995\t420\t1"]
    for i, (lat, lon) in enumerate([(47.4, 8.54), (47.4, 8.543), (47.4015, 8.543), (47.4015, 8.54)], start=1):
        lines.append(f"{i}\t0\t3\t16\t0\t0\t0\t0\t{lat}\t{lon}\t30\t1")
    (tmp_path / "walk.waypoints").write_text("\n".join(lines) + "\n")
    start, end = BASE.index("  boundary:"), BASE.index("home:")
    m = load_mission(write(tmp_path, BASE[:start] + "  boundary: {file: walk.waypoints}\n" + BASE[end:]))
    assert m.boundary == ((47.4, 8.54), (47.4, 8.543), (47.4015, 8.543), (47.4015, 8.54))


def test_mission_items_layout(compiled):
    items = compiled.items
    assert items[0].command == 16 and items[0].frame == 0 and items[0].z == 58.0
    assert [i.command for i in items[1:3]] == [22, 178]
    assert items[2].param2 == 10.0
    trig = [i for i in items if i.command == 206]
    assert trig[0].param1 == pytest.approx(compiled.plan.trigger_distance_m, abs=0.01) and trig[1].param1 == 0
    assert items[-1].command == 20 and items[-2].command == 16
    assert (items[-2].x, items[-2].y) == (items[0].x, items[0].y)
    assert all(i.mission_type == MissionType.FENCE for i in compiled.fence)
    assert {i.command for i in compiled.fence} == {5001, 5002}
    assert compiled.params["FENCE_ALT_MAX"] == 90.0
    assert [i.command for i in compiled.rally] == [5100, 5100]
