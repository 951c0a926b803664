"""The closed-loop scoring rule for skipped survey lines, on a made-up track over the cereal mission: a line end
the drone did not reach is excused only by a keep-out the loop recorded (keepouts.jsonl), around that place
and at that time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agridrone.mission.compile import compile_mission
from agridrone.mission.loader import load_mission
from agridrone.pipeline_run import survey_line_seqs
from agridrone.sim.world import load_world

from scoring import held_keepouts, score

WORLD = Path(__file__).resolve().parents[2] / "sitl" / "worlds" / "rectangular-cereal.yaml"
SHORT_M = 8.0  # line 2 is flown to 8 m short of its end


@pytest.fixture(scope="module")
def flown():
    world = load_world(WORLD)
    compiled = compile_mission(load_mission(world.mission_path))
    frame = compiled.plan.frame
    lines = survey_line_seqs(compiled)
    track, t, when_short = [], 0, None
    for k, (s_seq, e_seq) in enumerate(lines):
        a = np.array(frame.to_enu(compiled.items[s_seq].lat_deg, compiled.items[s_seq].lon_deg)[:2])
        b = np.array(frame.to_enu(compiled.items[e_seq].lat_deg, compiled.items[e_seq].lon_deg)[:2])
        length = float(np.linalg.norm(b - a))
        stop = length - SHORT_M if k == 1 else length
        for d in np.arange(0.0, stop + 1e-6, 2.0):
            e, n = a + (b - a) * d / length
            lat, lon, _ = frame.to_geo(e, n)
            track.append((t, lat, lon, 60.0, "AUTO", e_seq))
            t += int(0.2e9)  # 10 m/s
        if k == 1:
            when_short = t
    end2 = frame.to_enu(compiled.items[lines[1][1]].lat_deg, compiled.items[lines[1][1]].lon_deg)[:2]
    return world, compiled, lines, track, when_short, end2


def _write(path: Path, records) -> list:
    path.write_text("".join(json.dumps({"t_ns": t, "keepouts": [
        {"id": 1, "label": "pole", "east_m": e, "north_m": n, "radius_m": r} for e, n, r in discs]}) + "\n"
        for t, discs in records) + '{"t_ns": 1, "keepo')  # and a torn last line, as a power cut leaves it
    return held_keepouts(path)


def test_a_line_end_not_reached_is_a_skipped_line(flown):
    world, compiled, lines, track, _, _ = flown
    sc = score(track, compiled, world, lines)
    assert [(k, which) for k, which, *_ in sc.lines_missed] == [(2, "end")], sc.lines_missed


def test_a_keepout_the_loop_held_there_then_excuses_it(flown, tmp_path):
    world, compiled, lines, track, when, (e, n) = flown
    held = _write(tmp_path / "keepouts.jsonl", [(when - int(5e9), [(e, n, 6.0)]), (when + int(5e9), [])])
    assert score(track, compiled, world, lines, held=held).lines_missed == []


@pytest.mark.parametrize("case", ["held long before", "held elsewhere", "too small to reach the end"])
def test_a_keepout_held_at_another_time_or_place_does_not(flown, tmp_path, case):
    world, compiled, lines, track, when, (e, n) = flown
    disc, t0 = {"held long before": ((e, n, 6.0), when - int(600e9)),
                "held elsewhere": ((e + 40.0, n, 6.0), when - int(5e9)),
                "too small to reach the end": ((e, n - 1.0, 0.5), when - int(5e9))}[case]
    held = _write(tmp_path / "keepouts.jsonl", [(t0, [disc]), (t0 + int(10e9), [])])
    sc = score(track, compiled, world, lines, held=held)
    assert [(k, which) for k, which, *_ in sc.lines_missed] == [(2, "end")], (case, sc.lines_missed)
