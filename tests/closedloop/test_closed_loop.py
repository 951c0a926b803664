"""Closed-loop acceptance (issue 6): each example mission flown through its world by the whole loop —
built-in simulator (or real SITL with AGRIDRONE_SITL), the simulated camera rendering the world from the
vehicle's pose, the shipped detector on every frame, tracking, avoidance and course corrections.

Speed-up. The simulator runs in simulated time, the loop in wall time, so the loop sees
fps_wall / SPEEDUP frames per simulated second (F). An obstacle stays in the camera's footprint for
L / v simulated seconds per pass (footprint length along the track over the mission speed: cereal
60 m / 10 m/s, maize 47 m / 8 m/s, powerline 70 m / 10 m/s, vineyard 30 m / 5 m/s: 6-7 s in every
example), and the tracker needs `confirm_hits` (2 in the loop's defaults) hits within its tentative
window (3 s). Wanted: F >= 1, i.e. ~6 frames per pass, so that an obstacle is confirmed within its
first two or three seconds in view. Trees, poles and buildings on a survey line are also seen from the
neighbouring lines (the footprint is 2-4 line spacings wide) and remembered (`[loop] static_memory_s`),
so they are known long before the vehicle reaches their line. With the ~20 frames/s the loop sustains
on this 2-core machine when it has it to itself (`agridrone bench loop`; the simulated camera's
rendering is the largest cost), SPEEDUP 20 gives F ~ 1 (1.3-1.4 in the lighter worlds; the maize flight
runs at 12x, see SPEEDUPS); the four missions are 100 simulated minutes, ~6 wall minutes. Each test prints the F it got: on a machine busy with other work F falls and
obstacles are confirmed late, which shows up as clearance failures, not as a pass.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Point, Polygon

from agridrone.config import load_config
from agridrone.mission.compile import compile_mission
from agridrone.mission.loader import load_mission
from agridrone.pipeline_run import FlightOptions, load_models, run_flight, survey_line_seqs
from agridrone.sim.world import load_world

from scoring import held_keepouts, score, score_alerts, telemetry_positions

REPO = Path(__file__).resolve().parents[2]
WORLDS = sorted((REPO / "sitl" / "worlds").glob("*.yaml"))
BLOCKED = Path(__file__).parent / "data" / "blocked-corridor-world.yaml"
SPEEDUP = 20.0
# The maize flight is the hardest to sample: its mission flies at 8 m/s (the others 5-10), and its world is
# the slowest to render (the simulated camera sees more ground tiles: 70-78 ms a frame over 150 poses along its
# route against 22-30 ms for the other worlds), so at 20x the loop got ~1.0
# frame per simulated second there (1.3-1.4 elsewhere), one frame every 7-8 m: a pole found 16 m ahead was
# next seen 7 m ahead, or its frame was processed 3 simulated seconds late. At 12x it gets ~1.75, about as
# many metres per frame as the other worlds at 20x; +65 s of wall time.
SPEEDUPS = {"l-shaped-maize": 12.0}
# The blocked corridor is one 300 m line (about 15 simulated seconds of climb and 50 of flight to the tree),
# so it can afford a speed-up nearer a real flight's: at 5x the loop sees ~4 frames per simulated second
# (a real camera gives 30), and the check is about stopping and holding, not about the detector's luck
# in the one or two frames a 20x flight gets while the tree is 20-26 m ahead.
BLOCKED_SPEEDUP = 5.0

pytestmark = [pytest.mark.slow, pytest.mark.sitl]


@pytest.fixture(scope="module")
def models():
    """The shipped models, loaded once for all flights (used from one loop thread at a time)."""
    config = load_config(None)
    for rel in (config.perception.detector_model, config.perception.health_model):
        if not (REPO / rel).is_file():
            pytest.skip(f"shipped model {rel} not in this checkout: the closed loop runs the real detector")
    return config, load_models(config)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A real mosquitto broker for the flights' MQTT alerts (None where the binary is absent: the flights
    still run, and the delivery check skips saying why)."""
    from alerts.conftest import _make_broker

    try:
        b = _make_broker(tmp_path_factory.mktemp("closedloop-mosquitto"), tls=False)
    except pytest.skip.Exception:
        yield None
        return
    b.start()
    yield b
    b.stop()


OUTAGE_WORLD = "rectangular-cereal"
OUTAGE_AFTER_S, OUTAGE_S = 12.0, 30.0  # wall seconds: 30 s at 20x is 10 minutes of the simulated flight


def _outage(b, stop: threading.Event, log: dict) -> None:
    """Stop the broker OUTAGE_AFTER_S into the flight, start it again OUTAGE_S later."""
    if stop.wait(OUTAGE_AFTER_S):
        return
    log["down"] = time.time()
    b.stop()
    stop.wait(OUTAGE_S)
    b.start()
    log["up"] = time.time()


def _fly(world_path: Path, autopilot_factory, models, out: Path, *, end_on_hold_s=None, wall_timeout_s=None,
         broker=None, speedup=SPEEDUP):
    from agridrone.alerts.mqtt import parse_mqtt_url
    from agridrone.alerts.subscriber import AlertSubscriber
    from agridrone.vehicle import connect

    config, loaded = models
    # The simulated camera renders on this machine's CPU: when CI's cores are busy, rendering the ground
    # of a new altitude during the climb can stall frames for seconds of wall time, which the loop's
    # safety monitor rightly calls a lost camera (hold). These flights check avoidance, not camera loss,
    # so the allowance is wider here.
    config = dataclasses.replace(config, safety=dataclasses.replace(config.safety, camera_timeout_s=20.0))
    world = load_world(world_path)
    compiled = compile_mission(load_mission(world.mission_path))
    m = compiled.mission
    ap = autopilot_factory(home=(m.home_lat_deg, m.home_lon_deg, m.home_ground_alt_amsl_m), speedup=speedup)
    with connect(ap.url, timeout_s=10.0) as v:
        v.request_streams()
        v.wait_ready(timeout_s=ap.wall_s(90, margin_s=15))
        opts = FlightOptions(camera=f"sim://{world_path}", out_dir=out, time_scale=ap.speedup, start=True,
                             wall_timeout_s=wall_timeout_s or 200.0 * SPEEDUP / speedup, end_on_hold_s=end_on_hold_s,
                             climb_timeout_s=ap.wall_s(120, margin_s=10), models=loaded, alerts=True,
                             mqtt_url=broker.url if broker is not None else None)
        office, outage, stop = None, {}, threading.Event()
        if broker is not None:  # the farm office listens from before the flight
            office = AlertSubscriber(parse_mqtt_url(broker.url), out.parent / "office.sqlite", farm="farm",
                                     reconnect_delay_s=(0.5, 2.0)).start()
            office.wait_connected(10.0)
            if world_path.stem == OUTAGE_WORLD:
                threading.Thread(target=_outage, args=(broker, stop, outage), daemon=True).start()
        try:
            result = run_flight(v, compiled, config, opts)
        finally:
            stop.set()
        final_mode = v.state.mode
    if office is not None:
        if broker is not None and not broker.running:
            broker.start()
        deadline = time.monotonic() + 15.0  # the sink drained its outbox for 5 s; the office may lag a little
        while time.monotonic() < deadline and len(office.seen()) < result.report.get("alerts", {}).get("committed", 0):
            time.sleep(0.2)
        result.office = {"seen": office.seen(), "received": office.received, "duplicates": office.duplicates,
                         "outage": outage}
        office.close()
    return result, compiled, world, final_mode


def _fence_polygon(compiled) -> Polygon:
    ll = compiled.fence_inclusion_latlon()
    e, n, _ = compiled.plan.frame.to_enu(np.array([p[0] for p in ll]), np.array([p[1] for p in ll]))
    return Polygon(list(zip(e, n)))


def _describe(result, sc) -> str:
    rep = result.report
    return (f"ended {result.ended}, items {result.max_seq}/{rep['mission_items'] - 1}, {rep['fps']} fps "
            f"({rep['frames_per_vehicle_s']}/vehicle s), {rep['detections']} detections, confirmed "
            f"{rep['obstacles_confirmed']}, commander {rep['commander']}, skipped {rep['skipped']}; "
            f"{sc.describe() if sc else ''}; events {[f'{e.kind}: {e.text}' for e in result.events if e.kind not in ('detour', 'resume')][:6]}")


_FLOWN: dict[Path, tuple] = {}


def _flown(world_path: Path, autopilot_factory, models, tmp_path_factory, broker=None):
    """One flight per world, shared by the checks on it (the autopilot is stopped after the first)."""
    if world_path not in _FLOWN:
        out = tmp_path_factory.mktemp(world_path.stem)
        result, compiled, world, final_mode = _fly(world_path, autopilot_factory, models, out / "flight",
                                                   broker=broker, speedup=SPEEDUPS.get(world_path.stem, SPEEDUP))
        held = held_keepouts(out / "flight" / "keepouts.jsonl")
        sc = (score(result.track, compiled, world, survey_line_seqs(compiled), held=held,
                    telemetry=telemetry_positions(out / "flight" / "telemetry.tlog"))
              if world_path != BLOCKED else None)
        print(f"{world_path.stem}: {_describe(result, sc)}")
        _FLOWN[world_path] = (result, compiled, world, final_mode, sc)
    return _FLOWN[world_path]


@pytest.mark.parametrize("world_path", WORLDS, ids=lambda p: p.stem)
def test_example_mission_completed_inside_the_fence(world_path, autopilot_factory, models, tmp_path_factory,
                                                    broker):
    """The whole loop flies each example mission through its world: the mission is completed (landed and
    disarmed after its last item, no hold left waiting for the pilot); it never leaves the geofence (no
    breach event, no track point outside the inclusion polygon)."""
    result, compiled, world, _, sc = _flown(world_path, autopilot_factory, models, tmp_path_factory, broker)
    assert result.report["error"] is None, result.report["error"]
    assert result.completed, _describe(result, sc)
    assert not [e for e in result.events if e.kind == "fence_breach"]
    fence = _fence_polygon(compiled).buffer(1.0)
    frame = compiled.plan.frame
    outside = [(round(e, 1), round(n, 1)) for _, lat, lon, *_ in result.track
               for e, n, _ in [frame.to_enu(lat, lon)] if not fence.covers(Point(e, n))]
    assert not outside, f"track outside the geofence at {outside[:5]}"


@pytest.mark.parametrize("world_path", WORLDS, ids=lambda p: p.stem)
def test_example_mission_skips_no_survey_line(world_path, autopilot_factory, models, tmp_path_factory, broker):
    """Over the same flight every survey line's start and end is visited (within 3 m, by the loop's track or the
    autopilot's telemetry in the .tlog; a point inside a keep-out
    the loop held then, as its keepouts.jsonl records, counts as visited when the drone went round that
    keep-out's edge, on either side)."""
    result, _compiled, _world, _, sc = _flown(world_path, autopilot_factory, models, tmp_path_factory, broker)
    assert not sc.lines_missed, _describe(result, sc)


@pytest.mark.parametrize("world_path", WORLDS, ids=lambda p: p.stem)
def test_example_mission_keeps_clear_of_every_obstacle(world_path, autopilot_factory, models, tmp_path_factory,
                                                      broker):
    """Over the same flight the vehicle keeps at least (safety margin - 1 m) from every obstacle's edge.

    Was a non-strict xfail while the shipped detector found people and poles too late from survey altitude
    and the planner's legs were tangent to the keep-outs; strict since 2026-11-27 (planner path clearance,
    still-person tracking): in the three local runs before, every obstacle was passed at least 1.3 m beyond
    this threshold (README, "Performance and the closed-loop acceptance")."""
    *_, sc = _flown(world_path, autopilot_factory, models, tmp_path_factory, broker)
    assert sc.clearance_ok, sc.describe()


def test_an_obstacle_blocking_the_only_way_through_stops_and_holds(autopilot_factory, models, tmp_path):
    """A tree in the middle of an 8 m strip whose geofence leaves no room round its keep-out: the vehicle
    brakes and holds in front of it (BRAKE, a hold event), keeps (margin - 1 m) from its edge, never gets
    past it, and does not complete the mission."""
    result, compiled, world, final_mode = _fly(BLOCKED, autopilot_factory, models, tmp_path / "flight",
                                               end_on_hold_s=20.0, wall_timeout_s=120.0, speedup=BLOCKED_SPEEDUP)
    tree = world.obstacles[0]
    frame = compiled.plan.frame
    te, tn, _ = frame.to_enu(tree.lat_deg, tree.lon_deg)
    pts = [frame.to_enu(lat, lon)[:2] for _, lat, lon, alt, *_ in result.track if alt > 5.0]
    edge = min(math.hypot(e - te, n - tn) for e, n in pts) - tree.radius_m
    furthest_east = max(e for e, _ in pts)
    desc = f"{_describe(result, None)}; closest to the tree's edge {edge:.1f} m, furthest east {furthest_east:.1f} m"
    print(f"blocked corridor: {desc}")
    assert result.ended == "held" and result.held, desc
    assert final_mode == "BRAKE", desc
    assert [e.kind for e in result.events].count("hold") == 1, desc
    assert not result.completed
    assert edge >= 5.0 - 1.0, desc
    assert furthest_east < te, desc


def _outbox_revisions(out: Path) -> dict[str, int]:
    db = sqlite3.connect(out / "outbox.sqlite")
    try:
        return dict(db.execute("SELECT alert_id, max(revision) FROM alerts GROUP BY alert_id"))
    finally:
        db.close()


def test_every_alert_reaches_the_farm_office_exactly_once_across_a_broker_outage(autopilot_factory, models,
                                                                                  tmp_path_factory, broker):
    """Issue 7: the cereal flight with a real mosquitto broker that is stopped 12 s into the flight and started
    again 30 s later (10 minutes of the simulated flight): alerts keep being committed to the outbox while it
    is down, and in the end the farm office's subscriber holds every alert the drone committed, each at its
    newest revision, once (copies the broker redelivers are dropped by the subscriber and counted)."""
    if broker is None:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto; .ci/run installs it)")
    world_path = next(w for w in WORLDS if w.stem == OUTAGE_WORLD)
    result, compiled, world, _, sc = _flown(world_path, autopilot_factory, models, tmp_path_factory, broker)
    office = result.office
    outage = office["outage"]
    committed = _outbox_revisions(result.out_dir)
    db = sqlite3.connect(result.out_dir / "outbox.sqlite")
    during = db.execute("SELECT count(*) FROM alerts WHERE created_unix_s BETWEEN ? AND ?",
                        (outage.get("down", 0), outage.get("up", 0))).fetchone()[0]
    db.close()
    desc = (f"{len(committed)} alerts committed ({sum(committed.values())} revisions), {during} while the broker "
            f"was down; office received {office['received']} messages, {office['duplicates']} duplicates dropped, "
            f"holds {len(office['seen'])} alerts; outbox deliveries {result.report['alerts']['delivered']}; "
            f"problems {result.report['alerts']['problems']}")
    print(f"delivery across a broker outage: {desc}")
    assert "down" in outage and "up" in outage, f"the broker was not stopped and restarted mid-flight: {desc}"
    assert during > 0, f"no alert was raised while the broker was down, so the outage proved nothing: {desc}"
    assert office["seen"] == committed, desc


_ALERTS: dict[Path, object] = {}


def _alert_score(world_path, autopilot_factory, models, tmp_path_factory, broker):
    from agridrone.alerts.records import read_alerts

    if world_path not in _ALERTS:
        result, compiled, world, _, _ = _flown(world_path, autopilot_factory, models, tmp_path_factory, broker)
        _ALERTS[world_path] = score_alerts(read_alerts(result.out_dir), compiled, world)
        print(f"{world_path.stem} alerts: {_ALERTS[world_path].describe()}")
    return _ALERTS[world_path]


@pytest.mark.parametrize("world_path", WORLDS, ids=lambda p: p.stem)
def test_example_mission_alerts_each_stressed_or_weed_patch_once(world_path, autopilot_factory, models,
                                                                   tmp_path_factory, broker):
    """Issue 7's in-flight acceptance over the same flights, from the plant-health map (the classifier, not the
    detector): every stressed or weed patch above the mission's threshold alerted exactly once, within 5 m of its
    centroid."""
    al = _alert_score(world_path, autopilot_factory, models, tmp_path_factory, broker)
    assert al.patches_ok, al.describe()


@pytest.mark.parametrize("world_path", WORLDS, ids=lambda p: p.stem)
def test_example_mission_alerts_each_person_animal_and_vehicle_once(world_path, autopilot_factory, models,
                                                                     tmp_path_factory, broker):
    """Issue 7's in-flight acceptance over the same flights, from the detector's tracks: every person, animal and
    vehicle standing in the field alerted once, at most one false alert (a pole the detector reads as an animal
    is one). Strict since 2026-11-27, after 14 local runs in a row without a failure."""
    al = _alert_score(world_path, autopilot_factory, models, tmp_path_factory, broker)
    assert al.objects_ok, al.describe()


def test_the_flight_folder_holds_telemetry_latency_alerts_and_the_health_map(autopilot_factory, models,
                                                                               tmp_path_factory, broker):
    """The folder a flight leaves (agridrone.flightlog's layout): a .tlog that pymavlink reads back as the
    autopilot's telemetry, flight.json, latency.json with the loop's stages, the health map and the alerts as
    GeoJSON (one feature per alert in the outbox, thumbnails saved beside them)."""
    import json

    from pymavlink import mavutil

    world_path = next(w for w in WORLDS if w.stem == OUTAGE_WORLD)
    result, compiled, *_ = _flown(world_path, autopilot_factory, models, tmp_path_factory, broker)
    out = result.out_dir
    tlog = mavutil.mavlink_connection(str(out / "telemetry.tlog"))
    types = {}
    while (msg := tlog.recv_match()) is not None:
        types[msg.get_type()] = types.get(msg.get_type(), 0) + 1
    assert types.get("HEARTBEAT", 0) > 10 and types.get("GLOBAL_POSITION_INT", 0) > 100, types
    assert json.loads((out / "flight.json").read_text())["mission"] == compiled.mission.name
    assert "frame_to_command" in json.loads((out / "latency.json").read_text())
    assert json.loads((out / "healthmap.geojson").read_text())["type"] == "FeatureCollection"
    features = json.loads((out / "alerts.geojson").read_text())["features"]
    assert len(features) == len(_outbox_revisions(out))
    for f in features:
        if f["properties"].get("thumbnail_file"):
            assert (out / f["properties"]["thumbnail_file"]).read_bytes()[:2] == b"\xff\xd8"
