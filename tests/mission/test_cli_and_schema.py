"""``agridrone mission check|plan|show`` through the real CLI entry point, and the JSON Schema file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from agridrone.cli import main
from agridrone.mission import schema
from agridrone.mission.bench import generated_mission
from agridrone.mission.survey import plan_survey
from mission_helpers import BASE, write

REPO = Path(__file__).resolve().parents[2]


def test_check_all_examples_ok(capsys):
    files = sorted(str(p) for p in (REPO / "missions").glob("*.yaml"))
    assert main(["mission", "check", *files]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.endswith(": ok")] == [f"{f}: ok" for f in files]


def test_check_reports_one_line_per_problem_and_exit_1(tmp_path, capsys):
    good = write(tmp_path, BASE, "good.yaml")
    bad = write(tmp_path, BASE.replace("altitude_agl_m: 40", "altitude_agl_m: 250").replace("crop:", "crp:"), "bad.yaml")
    assert main(["mission", "check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{good}: ok"
    assert out[1:] == [f"{bad}:4:3: field.crp: unknown key (did you mean 'crop'?)",
                       f"{bad}:3:3: field: missing required key 'crop'",
                       f"{bad}:16:19: survey.altitude_agl_m: 250 exceeds the ceiling of 120 m"]


def test_check_missing_file(tmp_path, capsys):
    assert main(["mission", "check", str(tmp_path / "nope.yaml")]) == 1
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'nope.yaml'}: file not found"


def test_plan_prints_summary_and_exports(tmp_path, capsys):
    out = tmp_path / "m.plan"
    assert main(["mission", "plan", str(REPO / "missions" / "cereal-rectangle.yaml"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    for key in ("lines", "path_length_m", "flight_time_s", "area_covered_ha", "gsd_cm_px"):
        assert key in text
    assert json.loads(out.read_text())["fileType"] == "Plan"


def test_plan_bad_export_suffix_is_one_line(tmp_path, capsys):
    assert main(["mission", "plan", str(REPO / "missions" / "cereal-rectangle.yaml"), "-o", str(tmp_path / "m.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected a name ending in" in err[0]


def test_plan_of_an_invalid_file_is_one_line(tmp_path, capsys):
    bad = write(tmp_path, BASE.replace("altitude_agl_m: 40", "altitude_agl_m: forty"))
    assert main(["mission", "plan", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"agridrone: error: {bad}:16:19: survey.altitude_agl_m: expected a number in m, got the text 'forty'"]


def test_show_draws_the_map(tmp_path):
    out = tmp_path / "map.png"
    assert main(["mission", "show", str(REPO / "missions" / "maize-l-shape.yaml"), "-o", str(out)]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape == (1100, 1600, 3)
    # the field green, a zone red and survey-line blue are all present
    for bgr in ((150, 220, 160), (60, 60, 220), (200, 90, 20)):
        assert np.any(np.all(img == bgr, axis=2)), f"colour {bgr} missing from the map"


def test_schema_file_matches_the_loader():
    assert (REPO / "missions" / "mission.schema.json").read_text() == schema.schema_json()


def test_bench_mission_is_concave_with_20_zones():
    m = generated_mission()
    plan = plan_survey(m)
    assert len(m.zones) == 20
    assert 199 <= plan.field_area_m2 / 1e4 <= 201
    assert plan.field.convex_hull.area > plan.field.area * 1.1
