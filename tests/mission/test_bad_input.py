"""Every bad input of issue 3 gives one clear message at the right file:line:col; nothing raises anything else."""

from __future__ import annotations

import json

import pytest

from agridrone.errors import MissionError
from agridrone.mission.loader import load_mission, read_mission
from agridrone.mission.survey import plan_survey
from mission_helpers import BASE, ZONE, write


def first_error(tmp_path, text):
    path = write(tmp_path, text)
    mission, errors, _ = read_mission(path)
    assert mission is None and errors, "expected the file to be rejected"
    return path, str(errors[0])


def test_base_mission_is_valid(tmp_path):
    m = load_mission(write(tmp_path, BASE))
    assert m.altitude_agl_m == 40 and len(m.boundary) == 4 and m.warnings == ()


def test_not_yaml(tmp_path):
    path, msg = first_error(tmp_path, "version: 1\nfield: [unclosed, list\nhome: {lat: 1}\n")
    assert msg.startswith(f"{path}:3:5: not valid YAML")


def test_not_a_mapping(tmp_path):
    path, msg = first_error(tmp_path, "- just\n- a list\n")
    assert msg == f"{path}:1:1: (top level): expected a mapping of keys, got a list of 2 item(s)"


def test_empty_file(tmp_path):
    path, msg = first_error(tmp_path, "# only a comment\n")
    assert msg.startswith(f"{path}:1:1: the file is empty")


def test_binary_file_is_not_a_traceback(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_bytes(b"\xff\xfe\x00garbage")
    _, errors, _ = read_mission(p)
    assert "expected UTF-8 text" in str(errors[0])


def test_wrong_type(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("altitude_agl_m: 40", "altitude_agl_m: forty"))
    assert msg == f"{path}:16:19: survey.altitude_agl_m: expected a number in m, got the text 'forty'"


def test_integer_expected(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("image_width_px: 5472", "image_width_px: 5472.5"))
    assert msg == f"{path}:23:19: camera.image_width_px: expected a whole number in px, got the number 5472.5"


def test_section_of_wrong_type(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("survey:\n  altitude_agl_m: 40\n  speed_m_s: 6\n  headland_m: 3\n",
                                                   "survey: fast\n"))
    assert msg == f"{path}:15:9: survey: expected a mapping of keys, got the text 'fast'"


def test_missing_key(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("  crop: wheat\n", ""))
    assert msg == f"{path}:3:3: field: missing required key 'crop'"


def test_missing_section(tmp_path):
    path, msg = first_error(tmp_path, BASE.split("camera:")[0])
    assert msg == f"{path}:1:1: (top level): missing required key 'camera'"


def test_unknown_key_suggests_the_nearest(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("altitude_agl_m: 40", "altitude_agl_m: 40\n  altitde_agl: 40"))
    assert msg == f"{path}:17:3: survey.altitde_agl: unknown key (did you mean 'altitude_agl_m'?)"


def test_unknown_key_without_a_near_one_lists_the_known(tmp_path):
    path, msg = first_error(tmp_path, BASE + "zzz: 1\n")
    assert msg.startswith(f"{path}:25:1: zzz: unknown key; expected one of: version, field, home")


def test_duplicate_key(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("speed_m_s: 6", "speed_m_s: 6\n  speed_m_s: 7"))
    assert msg == f"{path}:18:3: survey.speed_m_s: duplicate key (first given at line 17)"


def test_bad_choice_suggests(tmp_path):
    path, msg = first_error(tmp_path, BASE + "safety:\n  end_action: lnd\n")
    assert msg == f"{path}:26:15: safety.end_action: expected one of rtl, land, got 'lnd' (did you mean 'land'?)"


def test_altitude_ceiling(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("altitude_agl_m: 40", "altitude_agl_m: 250"))
    assert msg == f"{path}:16:19: survey.altitude_agl_m: 250 exceeds the ceiling of 120 m"


def test_polygon_open(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("    - [47.401500, 8.540000]\n    - [47.400000, 8.540000]\n",
                                                   "    - [47.401500, 8.540000]\n"))
    assert msg.startswith(f"{path}:9:7: field.boundary: polygon is open: the last point [47.4015, 8.54] is not "
                          "the first [47.4, 8.54]")


def test_polygon_self_intersecting(tmp_path):
    bowtie = BASE.replace("    - [47.401500, 8.543000]\n    - [47.401500, 8.540000]\n",
                          "    - [47.401500, 8.540000]\n    - [47.401500, 8.543000]\n")
    path, msg = first_error(tmp_path, bowtie)
    # edge 2 (line 7 -> line 8) crosses edge 4 at the middle of the field
    assert msg.startswith(f"{path}:7:7: field.boundary: polygon crosses itself near (47.40075, 8.54150)")


def test_polygon_fewer_than_three_points(tmp_path):
    text = BASE.replace("    - [47.401500, 8.543000]\n    - [47.401500, 8.540000]\n", "")
    path, msg = first_error(tmp_path, text)
    assert msg == f"{path}:6:5: field.boundary: a polygon needs at least 3 distinct points, got 2"


def test_polygon_lon_lat_swapped(tmp_path):
    text = BASE
    for lat, lon in (("47.400000", "8.540000"), ("47.400000", "8.543000"), ("47.401500", "8.543000"),
                     ("47.401500", "8.540000")):
        text = text.replace(f"[{lat}, {lon}]", f"[{lon}, {lat}]")
    path, msg = first_error(tmp_path, text)
    assert msg == (f"{path}:6:5: field.boundary: coordinates look swapped: the points read as [lon, lat]; "
                   "write each point as [lat, lon]")


def test_point_out_of_range(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("    - [47.401500, 8.543000]", "    - [97.401500, 8.543000]"))
    assert msg.startswith(f"{path}:8:8: field.boundary[2]: latitude 97.4015 is out of range -90..90")


def test_longitude_out_of_range(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("    - [47.401500, 8.543000]", "    - [47.401500, 208.543]"))
    assert msg == f"{path}:8:19: field.boundary[2]: longitude 208.543 is out of range -180..180"


def test_point_swapped_beyond_latitude_range(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("    - [47.401500, 8.543000]", "    - [120.5, 47.4]"))
    assert "(is the point [lon, lat]? write [lat, lon])" in msg and msg.startswith(f"{path}:8:8:")


def test_clockwise_boundary_is_accepted_and_plans_the_same(tmp_path):
    """Winding does not matter for a boundary: a clockwise ring gives the very same survey."""
    ccw = load_mission(write(tmp_path, BASE, "ccw.yaml"))
    lines = BASE.splitlines(keepends=True)
    cw_text = "".join(lines[:5] + lines[5:10][::-1] + lines[10:])
    cw = load_mission(write(tmp_path, cw_text, "cw.yaml"))
    assert cw.boundary != ccw.boundary
    a, b = plan_survey(ccw), plan_survey(cw)
    assert a.summary() == b.summary()
    assert len(a.waypoints) == len(b.waypoints)


def test_zone_outside_the_field(tmp_path):
    far = ZONE.replace("47.4006", "47.4106").replace("47.4010", "47.4110")
    path, msg = first_error(tmp_path, BASE + far)
    assert msg.startswith(f"{path}:26:5: exclusion_zones[0]: zone 'pond' lies outside the field boundary")


def test_zone_with_two_shapes(tmp_path):
    text = BASE + ZONE.replace("    buffer_m: 5\n", "    buffer_m: 5\n    circle: {center: [47.4008, 8.5415], radius_m: 9}\n")
    path, msg = first_error(tmp_path, text)
    assert msg == f"{path}:26:5: exclusion_zones[0]: expected exactly one of polygon, circle or file, got polygon, circle"


def test_field_too_small_for_one_line(tmp_path):
    tiny = BASE.replace("47.401500", "47.400054").replace("8.543000", "8.540080")  # about 6 x 6 m
    m = load_mission(write(tmp_path, tiny))
    with pytest.raises(MissionError) as err:
        plan_survey(m)
    assert str(err.value).startswith(f"{tmp_path / 't.yaml'}:6:5: field.boundary: the field is too small for one "
                                      "survey line")


def test_zones_that_cut_the_field_apart(tmp_path):
    wall = """\
exclusion_zones:
  - name: hedge
    buffer_m: 2
    polygon:
      - [47.3995, 8.5414]
      - [47.3995, 8.5416]
      - [47.4020, 8.5416]
      - [47.4020, 8.5414]
      - [47.3995, 8.5414]
"""
    m = load_mission(write(tmp_path, BASE + wall))
    with pytest.raises(MissionError) as err:
        plan_survey(m)
    assert str(err.value).startswith(f"{tmp_path / 't.yaml'}:26:5: exclusion_zones: the zones cut the field apart")


def test_referenced_file_missing(tmp_path):
    text = BASE.replace("""  boundary:
    - [47.400000, 8.540000]
    - [47.400000, 8.543000]
    - [47.401500, 8.543000]
    - [47.401500, 8.540000]
    - [47.400000, 8.540000]
""", "  boundary: {file: fields/nope.kml}\n")
    path, msg = first_error(tmp_path, text)
    assert msg.startswith(f"{path}:5:20: field.boundary: file 'fields/nope.kml' not found")


def test_referenced_file_is_not_a_boundary(tmp_path):
    (tmp_path / "points.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "gate"}, "geometry": {"type": "Point", "coordinates": [8.54, 47.4]}}]}))
    text = BASE.replace("""  boundary:
    - [47.400000, 8.540000]
    - [47.400000, 8.543000]
    - [47.401500, 8.543000]
    - [47.401500, 8.540000]
    - [47.400000, 8.540000]
""", "  boundary: {file: points.geojson}\n")
    path, msg = first_error(tmp_path, text)
    assert msg == f"{path}:5:20: field.boundary: 'points.geojson' is not a boundary: it holds no polygon (found 1 point(s))"


def test_referenced_file_is_garbage(tmp_path):
    (tmp_path / "field.kml").write_text("this is not xml")
    text = BASE.replace("""  boundary:
    - [47.400000, 8.540000]
    - [47.400000, 8.543000]
    - [47.401500, 8.543000]
    - [47.401500, 8.540000]
    - [47.400000, 8.540000]
""", "  boundary: {file: field.kml}\n")
    path, msg = first_error(tmp_path, text)
    assert msg.startswith(f"{path}:5:20: field.boundary: 'field.kml' is not KML")


def test_home_far_from_the_field(tmp_path):
    path, msg = first_error(tmp_path, BASE.replace("lat: 47.39995", "lat: 47.39"))
    assert msg.startswith(f"{path}:12:3: home: home is 1112 m from the field")


def test_all_problems_are_listed(tmp_path):
    text = BASE.replace("altitude_agl_m: 40", "altitude_agl_m: 250").replace("crop: wheat", "crp: wheat")
    _, errors, _ = read_mission(write(tmp_path, text))
    assert [e.key for e in errors] == ["field.crp", "field", "survey.altitude_agl_m"]
    with pytest.raises(MissionError) as err:
        load_mission(tmp_path / "t.yaml")
    assert len(err.value.problems) == 3


def test_warnings_are_returned_not_raised(tmp_path):
    text = BASE.replace("  headland_m: 3\n", "  headland_m: 3\n  side_overlap_pct: 50\n").replace(
        "altitude_agl_m: 40", "altitude_agl_m: 119").replace("focal_length_mm: 8.8", "focal_length_mm: 3.0")
    m = load_mission(write(tmp_path, text))
    texts = [str(w) for w in m.warnings]
    assert any("side_overlap_pct: 50 % is below 60 %" in t for t in texts)
    assert any("ground sampling distance 9.6 cm/px is coarser than 5 cm/px" in t for t in texts)
    where = f"{tmp_path / 't.yaml'}"
    assert f"{where}:19:21: warning: survey.side_overlap_pct: 50 % is below 60 %" in " ".join(texts)
    assert f"{where}:16:19: warning: survey.altitude_agl_m: ground sampling distance" in " ".join(texts)


def test_large_field_warning(tmp_path):
    big = BASE.replace("47.401500", "47.420000").replace("8.543000", "8.580000")  # about 3 x 2.2 km = 670 ha
    big = big.replace("altitude_agl_m: 40", "altitude_agl_m: 100")
    m = load_mission(write(tmp_path, big))
    assert any("over 500 ha" in str(w) and ":6:5: warning: field.boundary" in str(w) for w in m.warnings)


def test_rally_point_outside_the_fence(tmp_path):
    path, msg = first_error(tmp_path, BASE + "rally_points:\n  - [47.4015, 8.5431]\n  - [47.41, 8.54]\n")
    assert msg == (f"{path}:27:5: rally_points[1]: rally point lies outside the fence (boundary + 20 m); "
                   "expected it inside")
