"""AvoidancePlanner: tables, small closed-loop flights with a kinematic fake vehicle, and a property test."""

from __future__ import annotations

import copy
import math
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, box

from agridrone.errors import ConfigError, MissionError
from agridrone.geo import LocalFrame
from agridrone.planning import (AvoidancePlanner, PlannerConfig, RouteWaypoint, VehicleState, allowed_region,
                                route_from_mission_items)
from agridrone.types import AltFrame, CorrectionKind, MissionItem, Obstacle

FRAME = LocalFrame(-35.363261, 149.165230, 584.0)
ALT_M = 20.0
CFG = PlannerConfig()  # tree margin 4 m, person 10 m, look-ahead at 5 m/s = 11.5 m
CIRCUM = 1.0 / math.cos(math.pi / 16)  # keep-out polygons contain the disc: their circumradius is this much larger


def ob(track_id=1, e=50.0, n=0.0, r=1.5, label="tree", confirmed=True, h=8.0, ve=0.0, vn=0.0, seen_ns=0, conf=0.9):
    lat, lon, _ = FRAME.to_geo(e, n, 0.0)
    return Obstacle(track_id, label, lat, lon, e, n, r, conf, 10, 0, seen_ns, confirmed=confirmed,
                    moving=bool(ve or vn), ve_m_s=ve, vn_m_s=vn, height_m=h)


def route(*pts, first_seq=1):
    return tuple(RouteWaypoint(first_seq + i, float(e), float(n), ALT_M) for i, (e, n) in enumerate(pts))


def enu(gp):
    e, n, _ = FRAME.to_enu(gp.lat_deg, gp.lon_deg)
    return e, n


def legs_of(start, correction):
    return [start] + [enu(w) for w in correction.waypoints]


def min_clearance(points, obstacle, margin):
    """Smallest distance from the polyline to the obstacle's keep-out circle (negative: inside)."""
    return LineString(points).distance(Point(obstacle.east_m, obstacle.north_m)) - (obstacle.radius_m + margin)


def fly(planner, rt, obstacles_at, *, start=None, speed_m_s=5.0, dt_s=0.1, max_steps=3000):
    """A kinematic fake vehicle: AUTO flies the route, GUIDED flies to waypoints[0], HOLD stops.

    Returns (path, corrections, reached_seqs, finished); path[i + 1] is the position after tick i."""
    pos = start or (rt[0].east_m, rt[0].north_m)
    by_seq = {w.seq: w for w in rt}
    seq = rt[1].seq
    mode = "auto"
    target = None
    path, corrections, reached = [pos], [], [rt[0].seq]
    for step in range(max_steps):
        now_ns = int(step * dt_s * 1e9)
        heading = (0.0, 0.0)
        if mode == "auto":
            goal = by_seq[seq]
            heading = (goal.east_m - pos[0], goal.north_m - pos[1])
        elif mode == "guided":
            heading = (target[0] - pos[0], target[1] - pos[1])
        norm = math.hypot(*heading)
        moving = norm > 1e-9 and mode != "hold"
        vel = (heading[0] / norm * speed_m_s, heading[1] / norm * speed_m_s) if moving else (0.0, 0.0)
        c = planner.update(obstacles_at(now_ns), VehicleState(pos[0], pos[1], seq, vel[0], vel[1]), now_ns)
        if c is not None:
            if not corrections or corrections[-1] != c:
                corrections.append(c)
            if c.kind is CorrectionKind.DETOUR:
                mode, target = "guided", enu(c.waypoints[0])
            elif c.kind is CorrectionKind.HOLD:
                mode = "hold"
            else:
                mode, seq = "auto", c.resume_seq
        if mode == "hold":
            path.append(pos)
            continue
        goal_xy = (by_seq[seq].east_m, by_seq[seq].north_m) if mode == "auto" else target
        d = math.dist(pos, goal_xy)
        stepm = speed_m_s * dt_s
        pos = goal_xy if d <= stepm else (pos[0] + (goal_xy[0] - pos[0]) / d * stepm,
                                          pos[1] + (goal_xy[1] - pos[1]) / d * stepm)
        path.append(pos)
        if mode == "auto" and math.dist(pos, goal_xy) < 1e-6:
            reached.append(seq)
            later = [w.seq for w in rt if w.seq > seq]
            if not later:
                return path, corrections, reached, True
            seq = later[0]
    return path, corrections, reached, False


# -- single decisions -------------------------------------------------------------------------

@pytest.mark.parametrize("tree_n, side", [(0.0, "left"), (0.8, "right"), (-0.8, "left"), (2.5, "right")])
def test_tree_on_a_straight_line_gives_a_detour_that_clears_it_and_rejoins_the_line(tree_n, side):
    """A tree on (or near) an eastbound line: detour on the shorter side, clear of the keep-out, inside the
    region, at survey altitude, ending on the same line just past the keep-out, resuming at the line's end."""
    rt = route((0, 0), (100, 0), (100, 20))
    region = box(-20, -40, 120, 40)
    tree = ob(e=50.0, n=tree_n)
    planner = AvoidancePlanner(rt, region, FRAME)
    start = (36.0, 0.0)
    c = planner.update([tree], VehicleState(*start, current_seq=2, ve_m_s=5.0), 0)
    assert c.kind is CorrectionKind.DETOUR and c.side == side and c.resume_seq == 2 and c.obstacle_ids == (1,)
    legs = legs_of(start, c)
    assert min_clearance(legs, tree, 4.0) >= -1e-3
    assert all(region.covers(Point(p)) for p in legs)
    assert all(w.alt_m == ALT_M and w.alt_frame is AltFrame.REL_HOME for w in c.waypoints)
    # rejoin: on the line, past the keep-out, no further than the offset beyond it
    re, rn = legs[-1]
    chord_half = math.sqrt(((1.5 + 4.0) * CIRCUM) ** 2 - tree_n ** 2)
    assert abs(rn) < 1e-3
    assert 50.0 + chord_half + 2.0 - 1e-3 <= re <= 50.0 + chord_half + 2.0 + 1e-3
    assert all(n >= -1e-3 for _, n in legs) if side == "left" else all(n <= 1e-3 for _, n in legs)


@pytest.mark.parametrize("tree_n", [0.0, 2.5, -4.0])
def test_detour_legs_keep_the_path_clearance_where_there_is_room_and_touch_the_keep_out_where_not(tree_n):
    """In an open field every leg stays path_clearance_m (1 m) outside the keep-out, where a plan tangent to
    it (path_clearance_m = 0) leaves no room for the corners a copter cuts; from a vehicle already within
    that band, every leg after the first; in a strip with less room than that the detour still goes round,
    as close as the keep-out allows, rather than holding."""
    rt = route((0, 0), (100, 0), (100, 20))
    tree = ob(e=50.0, n=tree_n)
    start = (36.0, 0.0)
    open_field = box(-20, -40, 120, 40)
    wide = AvoidancePlanner(rt, open_field, FRAME).update([tree], VehicleState(*start, current_seq=2, ve_m_s=5.0), 0)
    tight_cfg = PlannerConfig(path_clearance_m=0.0)
    tight = AvoidancePlanner(rt, open_field, FRAME, tight_cfg).update(
        [tree], VehicleState(*start, current_seq=2, ve_m_s=5.0), 0)
    assert wide.kind is tight.kind is CorrectionKind.DETOUR
    assert min_clearance(legs_of(start, wide), tree, 4.0) >= 1.0 - 1e-3
    assert min_clearance(legs_of(start, tight), tree, 4.0) < 0.5
    assert wide.side == tight.side
    # a vehicle already inside the grown keep-out (6 m from the tree's centre): only its first leg is closer
    near = (50.0 - 6.0, tree_n)
    c = AvoidancePlanner(rt, open_field, FRAME).update([tree], VehicleState(*near, current_seq=2, ve_m_s=5.0), 0)
    assert c.kind is CorrectionKind.DETOUR
    assert min_clearance(legs_of(near, c)[1:], tree, 4.0) >= 1.0 - 1e-3
    # a strip whose fence margin leaves 0.3 m beside the keep-out's polygon on either side of the tree
    half_w = 5.5 * CIRCUM + CFG.node_clearance_m + 0.3 + CFG.fence_margin_m
    strip = box(-20, -half_w, 120, half_w)
    centred = ob(e=50.0, n=0.0)
    c = AvoidancePlanner(rt, strip, FRAME).update([centred], VehicleState(*start, current_seq=2, ve_m_s=5.0), 0)
    assert c.kind is CorrectionKind.DETOUR, c
    legs = legs_of(start, c)
    assert -1e-3 <= min_clearance(legs, centred, 4.0) < 1.0
    assert all(strip.covers(Point(p)) for p in legs)


@pytest.mark.parametrize("speed_m_s", [2.0, 5.0, 10.0])
def test_lookahead_follows_speed_latency_and_braking(speed_m_s):
    """The detour starts when the keep-out comes within v*latency + v^2/(2*decel) + margin, not before."""
    cfg = PlannerConfig(speed_m_s=2.0)
    lookahead = speed_m_s * cfg.latency_s + speed_m_s ** 2 / (2 * cfg.decel_m_s2) + cfg.lookahead_margin_m
    rt = route((0, 0), (200, 0))
    s_in = 120.0 - 5.5 * CIRCUM
    far, near = (s_in - lookahead - 0.5, 0.0), (s_in - lookahead + 0.5, 0.0)
    tree = ob(e=120.0)
    assert AvoidancePlanner(rt, box(-10, -50, 210, 50), FRAME, cfg).update(
        [tree], VehicleState(*far, 2, ve_m_s=speed_m_s), 0) is None
    c = AvoidancePlanner(rt, box(-10, -50, 210, 50), FRAME, cfg).update(
        [tree], VehicleState(*near, 2, ve_m_s=speed_m_s), 0)
    assert c is not None and c.kind is CorrectionKind.DETOUR


@pytest.mark.parametrize("obstacle, counts", [
    (ob(h=0.0), False),                    # flat on the ground: a patch, a shadow
    (ob(label="weed"), False),             # not an obstacle class
    (ob(label="stressed_crop"), False),
    (ob(confirmed=False), False),          # not confirmed yet
    (ob(), True),                          # the control: a real tree on the line
    (ob(label="person", h=1.8), True),
    (ob(label="person", h=1.8, confirmed=False), True),              # a person: from one sure sighting
    (ob(label="person", h=1.8, confirmed=False, conf=0.55), False),  # not from an unsure one
    (ob(label="person", h=0.0, confirmed=False), False),
])
def test_the_ground_is_never_an_obstacle(obstacle, counts):
    """Height-0 things, non-obstacle classes and unconfirmed tracks are ignored (but a person seen once,
    surely: ``early_classes``); real obstacles are not."""
    planner = AvoidancePlanner(route((0, 0), (100, 0)), box(-20, -40, 120, 40), FRAME)
    c = planner.update([obstacle], VehicleState(40.0, 0.0, 2, 5.0, 0.0), 0)
    assert (c is not None) is counts
    assert (len(planner.keepouts([obstacle], 0)) == 1) is counts


def test_margins_per_class_and_moving_obstacles():
    """People get the largest margin; a moving one is moved to now and its keep-out swept ahead along its
    velocity over moving_horizon_s (a chain of discs)."""
    planner = AvoidancePlanner(route((0, 0), (100, 0)), box(-20, -40, 120, 40), FRAME)
    person, tree = ob(1, r=0.5, label="person"), ob(2, r=0.5)
    walker = ob(3, e=10.0, n=10.0, r=0.5, label="person", ve=1.0, vn=0.0, seen_ns=0)
    kos = planner.keepouts([person, tree, walker], now_ns=1_000_000_000)
    radius = {k[0]: k[3] for k in kos}
    assert radius == {1: pytest.approx(10.5), 2: pytest.approx(4.5), 3: pytest.approx(10.5)}
    chain = [(e, n) for i, e, n, _ in kos if i == 3]
    assert chain[0] == pytest.approx((11.0, 10.0))                               # where it is now
    assert chain[-1] == pytest.approx((11.0 + CFG.moving_horizon_s, 10.0))      # where it will be
    assert all(math.dist(a, b) <= 10.5 / 2 + 1e-9 for a, b in zip(chain, chain[1:]))


def test_an_obstacle_seen_under_two_labels_keeps_the_larger_margin():
    """A track the detector called an animal and a person (Obstacle.labels) is kept out by the person's margin,
    whichever label won the vote; a tentative one counts early, as a person would."""
    import dataclasses

    planner = AvoidancePlanner(route((0, 0), (100, 0)), box(-20, -40, 120, 40), FRAME,
                               PlannerConfig(margins_m={"person": 10.0, "animal": 6.0, "tree": 4.0}))
    animal = ob(1, r=0.5, label="animal")
    both = dataclasses.replace(ob(2, e=30.0, r=0.5, label="animal"), labels=("animal", "person"))
    early = dataclasses.replace(ob(3, e=70.0, r=0.5, label="animal", confirmed=False), labels=("animal", "person"))
    radius = {k[0]: k[3] for k in planner.keepouts([animal, both, early], now_ns=0)}
    assert radius == {1: pytest.approx(6.5), 2: pytest.approx(10.5), 3: pytest.approx(10.5)}


@pytest.mark.parametrize("vn_m_s", [1.5, -1.0, 0.5])
def test_walker_crossing_the_line_is_passed_behind_never_within_its_margin(vn_m_s):
    """A person walks across the line as the drone comes: the detour goes round behind the walker (the side it
    comes from), on one side only, and the drone never comes within radius + margin of where the person is."""
    rt = route((10, 30), (190, 30), (190, 50), (10, 50))
    planner = AvoidancePlanner(rt, box(0, 0, 200, 80), FRAME)

    def walker(now_ns):
        n = 30 - vn_m_s * 15 + vn_m_s * now_ns / 1e9   # on the line 15 s in
        return [ob(1, 100.0, n, 0.4, "person", h=1.8, vn=vn_m_s, seen_ns=now_ns)]

    path, corrections, reached, finished = fly(planner, rt, walker, max_steps=6000)
    assert finished and reached == [1, 2, 3, 4]
    sides = {(c.resume_seq, c.side) for c in corrections if c.kind is CorrectionKind.DETOUR}
    # eastbound: right is south, where a northbound walker was; a slow one is met again from the westbound line
    # (north of the first): behind it is south again, which is "left" flying west
    behind = {2: "right" if vn_m_s > 0 else "left", 4: "left" if vn_m_s > 0 else "right"}
    assert {seq for seq, _ in sides} >= {2} and all(side == behind[seq] for seq, side in sides), sides
    assert len(sides) == len({seq for seq, _ in sides})  # one side per pass
    gap = min(math.dist(p, (100.0, walker(int(i * 1e8))[0].north_m)) for i, p in enumerate(path[1:]))
    assert gap >= 10.4


def test_blocked_corridor_holds_and_resumes_when_the_way_clears():
    """A person in a 16 m wide corridor (keep-out 21 m wide): no way through, so HOLD, repeated while blocked,
    never entering the keep-out; when the person walks off, RESUME at the item being flown."""
    rt = route((0, 0), (200, 0), (200, 5))
    region = box(-10, -8, 210, 8)
    person = ob(e=100.0, r=0.5, label="person", h=1.8)
    planner = AvoidancePlanner(rt, region, FRAME)
    gone_after_ns = 30_000_000_000
    path, corrections, reached, finished = fly(
        planner, rt, lambda now: [person] if now < gone_after_ns else [])
    kinds = [c.kind for c in corrections]
    assert kinds == [CorrectionKind.HOLD, CorrectionKind.RESUME]
    assert corrections[1].resume_seq == 2
    assert min_clearance(path[:gone_after_ns // 100_000_000], person, 10.0) > 0
    assert min_clearance(path, person, 10.0) < 0  # control: once gone, its place is flown through
    assert finished and reached == [1, 2, 3]


def test_obstacle_near_the_fence_is_passed_on_the_inside_only():
    """A tree just north of a line 6 m from the southern fence: the south side would be shorter in an open
    field (control), but the fence leaves no room there, so the detour goes north, inside the region."""
    rt = route((10, 6), (190, 6), (190, 30))
    tree = ob(e=100.0, n=7.0, r=1.0)
    start = (88.0, 6.0)
    open_field = AvoidancePlanner(rt, box(0, -60, 200, 60), FRAME).update([tree], VehicleState(*start, 2, 5.0), 0)
    assert open_field.side == "right"
    field = box(0, 0, 200, 60)
    c = AvoidancePlanner(rt, field, FRAME).update([tree], VehicleState(*start, 2, 5.0), 0)
    assert c.kind is CorrectionKind.DETOUR and c.side == "left"
    legs = legs_of(start, c)
    assert all(field.covers(Point(p)) for p in legs)
    assert all(field.buffer(-CFG.fence_margin_m).covers(Point(p)) for p in legs[1:-1])
    assert min_clearance(legs, tree, 4.0) >= -1e-3


def test_a_turn_flown_wide_across_the_region_s_edge_is_led_back_in_not_held():
    """The vineyard flight: flying a detour, the vehicle cut 0.2 m into the no-fly circle round the hut just
    as a new obstacle made the planner look again, and it held for the rest of the flight ("vehicle outside
    the allowed region"). Within reentry_m of the region it is led straight back in and goes round; from
    further out (a pilot flew it away) it still holds."""
    rt = route((0, 0), (200, 0))
    hut = Point(60.0, -20.0).buffer(18.0)                    # its edge passes 2 m south of the line
    region = box(-20, -60, 220, 60).difference(hut)
    tree = ob(e=72.0, r=1.5)
    start = (60.0, -2.2)                                      # 0.2 m inside the hut's circle
    assert not region.covers(Point(start))
    c = AvoidancePlanner(rt, region, FRAME).update([tree], VehicleState(*start, 2, 5.0), 0)
    assert c.kind is CorrectionKind.DETOUR, c
    legs = legs_of(start, c)
    assert region.covers(Point(legs[1])) and region.distance(Point(start)) < 0.5
    assert all(region.covers(Point(p)) for p in legs[1:]) and min_clearance(legs[1:], tree, 4.0) >= -1e-3
    far = AvoidancePlanner(rt, region, FRAME).update([tree], VehicleState(64.0, -7.0, 2, 5.0), 0)
    assert far.kind is CorrectionKind.HOLD and "outside the allowed region" in far.reason


def test_route_ending_inside_a_keep_out_holds():
    """A tree on the last waypoint: there is no point past it to rejoin, so HOLD with that reason."""
    planner = AvoidancePlanner(route((0, 0), (60, 0)), box(-20, -40, 120, 40), FRAME)
    c = planner.update([ob(e=60.0)], VehicleState(45.0, 0.0, 2, 5.0), 0)
    assert c.kind is CorrectionKind.HOLD and "route ends inside a keep-out" in c.reason


def test_update_does_not_mutate_its_inputs():
    """The planner reads its obstacles and never changes them."""
    obstacles = [ob(), ob(2, e=-300.0)]
    before = copy.deepcopy(obstacles)
    AvoidancePlanner(route((0, 0), (100, 0)), box(-20, -40, 120, 40), FRAME).update(
        obstacles, VehicleState(40.0, 0.0, 2), 0)
    assert obstacles == before


# -- closed loop with a fake vehicle ----------------------------------------------------------------

def test_lawnmower_flight_detours_round_a_tree_and_flies_every_line():
    """Three survey lines, a tree on the middle (westbound) line: one detour, then RESUME at that line's end
    item; the flight keeps the margin, stays in the field, reaches every waypoint in order, and flies every part
    of the middle line outside the keep-out (nothing skipped)."""
    rt = route((10, 10), (190, 10), (190, 30), (10, 30), (10, 50), (190, 50))
    field = box(0, 0, 200, 60)
    tree = ob(7, e=95.0, n=30.5, r=1.5)
    planner = AvoidancePlanner(rt, field, FRAME)
    path, corrections, reached, finished = fly(planner, rt, lambda now: [tree])
    assert finished and reached == [1, 2, 3, 4, 5, 6]
    kinds = [c.kind for c in corrections]
    assert kinds[0] is CorrectionKind.DETOUR and kinds[-1] is CorrectionKind.RESUME
    assert set(kinds) == {CorrectionKind.DETOUR, CorrectionKind.RESUME}
    assert corrections[-1].resume_seq == 4 and all(c.resume_seq == 4 for c in corrections)
    assert len({c.side for c in corrections}) == 1
    assert min_clearance(path, tree, 4.0) >= -1e-3
    assert all(field.covers(Point(p)) for p in path)
    flown = LineString(path)
    assert flown.distance(Point(10, 30)) < 1e-6 and flown.distance(Point(60, 30)) < CFG.reached_m / 4
    # departure and rejoin points lie rejoin_offset_m before / after the keep-out; the turn at the departure
    # point may start reached_m early
    keep_out = Point(95.0, 30.5).buffer((1.5 + 4.0) * CIRCUM + CFG.rejoin_offset_m + CFG.reached_m)
    for x in range(10, 191):
        if not keep_out.contains(Point(x, 30)):
            assert flown.distance(Point(x, 30)) < CFG.reached_m / 4, f"line 2 skipped at east {x} m"


def test_side_is_kept_while_the_obstacle_estimate_jitters():
    """The tree's estimate jumps +-1 m across the line every tick. Planners built fresh for each tick pick both
    sides (control); one planner flying the whole detour keeps the side it chose first and never switches."""
    rng = random.Random(7)
    jitter = [(50.0 + rng.uniform(-1, 1), rng.uniform(-1, 1)) for _ in range(3000)]
    rt = route((0, 0), (100, 0), (100, 20))
    region = box(-20, -40, 120, 40)
    fresh_sides = {AvoidancePlanner(rt, region, FRAME).update([ob(e=e, n=n)], VehicleState(36.0, 0.0, 2, 5.0), 0).side
                   for e, n in jitter[:50]}
    assert fresh_sides == {"left", "right"}
    planner = AvoidancePlanner(rt, region, FRAME)
    path, corrections, reached, finished = fly(
        planner, rt, lambda now: [ob(e=jitter[now // 100_000_000][0], n=jitter[now // 100_000_000][1])])
    detours = [c for c in corrections if c.kind is CorrectionKind.DETOUR]
    assert finished and detours and corrections[-1].kind is CorrectionKind.RESUME
    assert len({c.side for c in detours}) == 1 and planner.side_switches == 0
    assert planner.side_of(1) == detours[0].side
    assert min(LineString(path).distance(Point(e, n)) for e, n in jitter[:len(path)]) >= 5.5 - 1.0


def test_the_same_obstacle_met_again_from_the_next_line_gets_its_side_chosen_afresh():
    """A person stands between two survey lines flown in opposite directions, 3 m north of the first and 9 m
    north of the second. The first pass goes round the south of it ("right" flying east); on the way back
    the short way is again the south ("left" flying west). Keeping "right" from the first pass would send the
    vehicle round the north, through the keep-out's far side and back: in a vineyard flight that rule led a
    detour through a 4 m gap beside an exclusion zone, which the vehicle overshot (fence breach)."""
    rt = route((0, 0), (100, 0), (100, -6), (0, -6))
    region = box(-20, -40, 120, 40)
    person = ob(e=50.0, n=3.0, r=0.4, label="person", h=1.8)
    planner = AvoidancePlanner(rt, region, FRAME)
    path, corrections, reached, finished = fly(planner, rt, lambda now: [person])
    detours = [c for c in corrections if c.kind is CorrectionKind.DETOUR]
    first_by_pass = {}
    for c in detours:
        first_by_pass.setdefault(c.resume_seq, c)
    assert finished and sorted(first_by_pass) == [2, 4], [c.resume_seq for c in detours]
    assert first_by_pass[2].side == "right" and first_by_pass[4].side == "left"
    assert planner.side_switches == 0
    south_of_person = [p for p in path if abs(p[0] - 50.0) < 1.0]
    assert south_of_person and all(n < 3.0 - 10.0 for _, n in south_of_person)
    assert LineString(path).distance(Point(50.0, 3.0)) >= 0.4 + 10.0 - 1.0


# -- property ------------------------------------------------------------------------------------

FIELD = box(0, 0, 200, 100)
EXCLUSION = box(120, 62, 140, 80)
REGION = allowed_region(FIELD, inclusions=[box(-5, -5, 205, 105)], exclusions=[EXCLUSION])
obstacle_st = st.tuples(st.floats(20, 195), st.floats(0, 100), st.floats(0.3, 3.0),
                        st.sampled_from(["tree", "person", "pole", "animal"]))


on_line_st = st.tuples(st.floats(40, 180), st.floats(47, 53), st.floats(0.3, 3.0),
                      st.sampled_from(["tree", "person", "pole", "animal"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(first=on_line_st, others=st.lists(obstacle_st, max_size=4), start_e=st.floats(10, 30))
def test_property_every_detour_waypoint_and_leg_is_inside_allowed_minus_keepouts(first, others, start_e):
    """Random obstacles (one near the line, the rest anywhere) in a field with an exclusion zone, with a look-ahead
    covering the whole route: a HOLD, or a detour whose waypoints are all in the allowed region, whose every leg
    (from the vehicle on) avoids every keep-out disc, and which rejoins the route at the right item."""
    rt = route((10, 50), (190, 50), (190, 90))
    obs = [ob(i + 1, e, n, r, label, h=2.0) for i, (e, n, r, label) in enumerate([first] + others)]
    start = (start_e, 50.0)
    discs = [(o, o.radius_m + CFG.margins_m[o.label]) for o in obs]
    assume(all(math.dist(start, (o.east_m, o.north_m)) > R * CIRCUM + 0.2 for o, R in discs))
    planner = AvoidancePlanner(rt, REGION, FRAME, PlannerConfig(lookahead_margin_m=400.0))
    c = planner.update(obs, VehicleState(*start, 2, 5.0, 0.0), 0)
    assert c is not None  # the look-ahead sees the obstacle near the line
    if c.kind is CorrectionKind.HOLD:
        return
    legs = legs_of(start, c)
    assert all(REGION.covers(Point(p)) for p in legs[1:])
    line = LineString(legs)
    assert REGION.buffer(1e-6).covers(line)
    for o, R in discs:
        assert line.distance(Point(o.east_m, o.north_m)) >= R - 1e-3
    end = legs[-1]
    if c.resume_seq == 2:
        assert abs(end[1] - 50.0) < 1e-3
    else:
        assert c.resume_seq == 3 and abs(end[0] - 190.0) < 1e-3


# -- inputs ---------------------------------------------------------------------------------------

def test_route_from_mission_items_keeps_positional_waypoints_with_their_seq():
    """Home (seq 0), takeoff and DO commands are not part of the survey route; seq numbers are kept."""
    def wp(e, n, cmd=16):
        lat, lon, _ = FRAME.to_geo(e, n, 0.0)
        return MissionItem.at(cmd, lat, lon, ALT_M)
    items = [wp(0, 0), MissionItem(22, z=ALT_M), wp(10, 0), wp(20, 0), MissionItem(178, param2=4.0), wp(20, 10)]
    rt = route_from_mission_items(items, FRAME)
    assert [w.seq for w in rt] == [2, 3, 5]
    got = [(w.east_m, w.north_m, w.alt_m) for w in rt]
    for g, want in zip(got, [(10.0, 0.0, ALT_M), (20.0, 0.0, ALT_M), (20.0, 10.0, ALT_M)]):
        assert g == pytest.approx(want, abs=0.02)  # degE7 on the wire: about 1 cm


@pytest.mark.parametrize("make, error, message", [
    (lambda: AvoidancePlanner((), box(0, 0, 1, 1), FRAME), MissionError, "at least one survey waypoint"),
    (lambda: AvoidancePlanner(route((0, 0), (1, 1), first_seq=3)[::-1], box(0, 0, 1, 1), FRAME), MissionError,
     "increasing mission seq"),
    (lambda: AvoidancePlanner(route((0, 0)), box(0, 0, 1, 1).difference(box(0, 0, 1, 1)), FRAME), MissionError,
     "valid non-empty polygon"),
    (lambda: PlannerConfig(margins_m={"person": -1.0}), ConfigError, "margins_m"),
    (lambda: PlannerConfig(decel_m_s2=0.0), ConfigError, "decel_m_s2: expected > 0"),
    (lambda: PlannerConfig(early_min_confidence=0.0), ConfigError, "early_min_confidence: expected a confidence"),
    (lambda: PlannerConfig(early_classes="person"), ConfigError, "early_classes: expected a list of class names"),
])
def test_bad_inputs_raise_one_clear_error(make, error, message):
    """Empty or disordered routes, empty regions and bad settings give one line of the right error class."""
    with pytest.raises(error, match=message) as info:
        make()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("seed", [5, 39, 60, 112, 130, 148])
def test_closed_loop_random_worlds_keep_margins_fence_and_every_waypoint(seed):
    """Random trees, poles and animals on and beside four survey lines, flown by the fake vehicle: the mission
    finishes, the flight never enters a keep-out disc nor leaves the field, and passes every waypoint (within
    reached_m: a corner reached during a detour is passed in GUIDED)."""
    rt = route((10, 10), (190, 10), (190, 30), (10, 30), (10, 50), (190, 50), (190, 70), (10, 70))
    field = box(0, 0, 200, 80)
    rng = random.Random(seed)
    obs = [ob(i + 1, rng.uniform(20, 180), rng.choice([10, 30, 50, 70]) + rng.uniform(-3, 3), rng.uniform(0.3, 2.5),
              rng.choice(["tree", "pole", "animal"]), h=3.0) for i in range(rng.randint(1, 4))]
    planner = AvoidancePlanner(rt, field, FRAME)
    path, corrections, reached, finished = fly(planner, rt, lambda now: obs, max_steps=8000)
    assert finished and any(c.kind is CorrectionKind.DETOUR for c in corrections)
    for o in obs:
        assert min_clearance(path, o, CFG.margins_m[o.label]) >= -1e-3
    assert all(field.covers(Point(p)) for p in path)
    flown = LineString(path)
    assert all(flown.distance(Point(w.east_m, w.north_m)) <= CFG.reached_m for w in rt)


def test_a_keep_out_the_route_crosses_again_after_a_u_turn_does_not_block_both_sides():
    """A person between two survey lines (4 m from each): the route crosses their keep-out on this line and
    again, after the U-turn, on the next one. The detour on this line goes round; rays from the later
    crossing must not bar either side of this one (regression: they did, and the planner held)."""
    r = route((0.0, 0.0), (0.0, 200.0), (8.0, 200.0), (8.0, 0.0))
    region = box(-100, -50, 100, 250)
    p = AvoidancePlanner(r, region, FRAME, CFG)
    c = p.update([ob(1, e=4.0, n=60.0, r=0.4, label="person", h=1.8)], VehicleState(0.0, 40.0, 2), 0)
    assert c is not None and c.kind is CorrectionKind.DETOUR, c


def test_a_rejoin_point_closed_in_by_the_next_keep_out_and_the_fence_rejoins_past_both():
    """A line ends 3 m inside the fence; a tree stands on it and a second, overlapping, by the turn. The
    stretch between them, up to the line's end, is a pocket closed by the two keep-outs and the fence:
    no way in. Rather than hold for good (regression: it did, in a CI flight), the detour rejoins the
    route past the second keep-out, on the turn, outside both keep-outs and inside the fence."""
    rt = route((0, 0), (150, 0), (150, 20), (0, 20))
    region = box(-5, -6, 153, 40)
    trees = [ob(1, e=130.0, n=0.0, r=3.5), ob(2, e=142.0, n=11.0, r=5.4)]
    start = (115.0, 0.0)
    c = AvoidancePlanner(rt, region, FRAME).update(trees, VehicleState(*start, 2, 5.0), 0)
    assert c is not None and c.kind is CorrectionKind.DETOUR, c
    legs = legs_of(start, c)
    assert all(region.covers(Point(p)) for p in legs)
    for t in trees:
        assert min_clearance(legs, t, 4.0) >= -1e-3
    end_e, end_n = legs[-1]
    assert end_e == pytest.approx(150.0, abs=0.5) and end_n > 11.0  # on the turn, past the second tree
    assert c.resume_seq == 3


def test_a_vehicle_that_finds_itself_inside_a_keep_out_leaves_it_into_the_free_space():
    """A person appears 8 m north of the vehicle (keep-out 10.5 m), the fence 2 m south of it: straight away
    from the person is outside the fence, so the planner leaves the keep-out at the nearest free point
    inside the fence and goes round the north side (regression: it held, "no free way out")."""
    rt = route((0, 0), (100, 0), (100, 20))
    region = box(-5, -2, 105, 60)
    person = ob(1, e=45.0, n=8.0, r=0.5, label="person", h=1.8)
    start = (45.0, 0.0)
    c = AvoidancePlanner(rt, region, FRAME).update([person], VehicleState(*start, 2, 5.0), 0)
    assert c is not None and c.kind is CorrectionKind.DETOUR, c
    legs = legs_of(start, c)
    assert all(region.covers(Point(p)) for p in legs)
    assert math.dist(start, legs[1]) < 8.0  # the nearest way out (7.3 m), not a long way through the keep-out
    assert min_clearance(legs[1:], person, 10.0) >= -0.3  # from the escape point on, outside the keep-out
    assert c.resume_seq == 2 and legs[-1][0] > 45.0 + math.sqrt(10.5 ** 2 - 8.0 ** 2)  # past the keep-out


def test_a_detour_replanned_mid_way_still_flies_the_next_line_start_before_going_round():
    """The vehicle flies the short leg between two survey lines; a tree stands on the next line 20 m past its
    start. The detour passes through the line's start (survey lines are flown from their start). When the
    tree's estimate then grows into the detour's legs, the replanned detour, planned from off the route,
    still goes through the line's start first (regression: it cut the corner, and a CI flight missed a
    line start by 4.9 m)."""
    rt = route((0, 0), (100, 0), (100, 20), (0, 20))
    region = box(-20, -20, 120, 60)
    cfg = PlannerConfig(speed_m_s=10.0)  # look-ahead 28 m
    planner = AvoidancePlanner(rt, region, FRAME, cfg)
    corner = (100.0, 20.0)
    c1 = planner.update([ob(1, e=80.0, n=20.0, r=1.0)], VehicleState(100.0, 8.0, 3, 0.0, 10.0), 0)
    assert c1 is not None and c1.kind is CorrectionKind.DETOUR, c1
    assert min(math.dist(corner, p) for p in legs_of((100.0, 8.0), c1)) < 0.5
    pos = (100.5, 11.0)  # a little off the leg, flying the detour's first target
    grown = ob(1, e=84.0, n=21.0, r=3.0)  # now its keep-out (7 m) reaches the first detour's legs
    c2 = planner.update([grown], VehicleState(*pos, 3, 0.0, 10.0), 1_000_000_000)
    assert c2 is not None and c2.kind is CorrectionKind.DETOUR and c2 != c1, c2
    legs = legs_of(pos, c2)
    assert min(math.dist(corner, p) for p in legs) < 0.5, legs
    assert min_clearance(legs, grown, 4.0) >= -1e-3


def test_a_keep_out_that_appears_round_the_vehicle_beside_the_route_mid_detour_is_left_not_held_in():
    """Mid-detour the tree being passed is forgotten and another appears 4 m from the vehicle, beside the
    route (it touches no survey line): the vehicle is inside the new keep-out and the straight way back to
    the rejoin point crosses it. The planner leaves it at the nearest free point and goes back round it
    (regression: it held, "no clear way back to the rejoin point", and a CI flight waited for the pilot)."""
    rt = route((0, 0), (200, 0), (200, 20))
    region = box(-10, -40, 210, 60)
    planner = AvoidancePlanner(rt, region, FRAME)
    c1 = planner.update([ob(1, e=100.0, n=0.0, r=1.0)], VehicleState(88.0, 0.0, 2, 5.0), 0)
    assert c1 is not None and c1.kind is CorrectionKind.DETOUR, c1
    sign = 1.0 if c1.side == "left" else -1.0  # the detour's side of the line
    other = ob(2, e=103.0, n=9.0 * sign, r=1.0)  # its keep-out (5 m) does not reach the line
    pos = (100.0, 6.0 * sign)
    assert math.dist(pos, (other.east_m, other.north_m)) < 5.0  # inside its keep-out (1 + 4 m)
    c2 = planner.update([other], VehicleState(*pos, 2, 5.0), 1_000_000_000)
    assert c2 is not None and c2.kind is CorrectionKind.DETOUR, c2
    legs = legs_of(pos, c2)
    assert min_clearance(legs[1:], other, 4.0) >= -0.3
    assert abs(legs[-1][1]) < 0.5 and legs[-1][0] > 100.0  # back on the line, past the first tree


def test_a_detour_corner_is_not_passed_at_a_speed_that_would_cut_into_the_keep_out():
    """A copter does not turn on the spot: switched to the next waypoint at a corner while still fast, it runs on
    along its old heading while it turns. The departure point in front of a tree (2 m short of the keep-out) is
    passed only once the vehicle is slow enough that braking there keeps it out of the keep-out: at 8 m/s
    (12.8 m to stop) 1 m short of it, it stays the target; at 1 m/s it is passed; right on it, always."""
    rt = route((0, 0), (200, 0))
    tree = ob(7, e=60.0, n=0.0, r=1.5)
    planner = AvoidancePlanner(rt, box(-10, -40, 210, 40), FRAME)
    first = planner.update([tree], VehicleState(45.0, 0.0, 2, 5.0, 0.0), 0)
    assert first.kind is CorrectionKind.DETOUR
    dep = enu(first.waypoints[0])
    assert abs(dep[1]) < 1e-6 and 60.0 - 1.5 - 4.0 * CIRCUM - 2.5 < dep[0] < 60.0 - 5.5, dep  # on the line, in front
    nxt = enu(first.waypoints[1])

    def target(e, ve, t_ns):
        c = planner.update([tree], VehicleState(e, 0.0, 2, ve, 0.0), t_ns)
        return enu(c.waypoints[0])

    assert target(dep[0] - 1.0, 8.0, 1) == pytest.approx(dep, abs=1e-6)
    assert planner.corners_slowed >= 1
    assert target(dep[0] - 1.0, 1.0, 2) == pytest.approx(nxt, abs=1e-6)


def test_a_detour_corner_is_passed_at_speed_when_the_run_on_stays_clear():
    """The same corner on a vehicle whose momentum points away from the keep-out is passed at 1.5 m at any
    speed (no needless braking)."""
    rt = route((0, 0), (200, 0))
    tree = ob(7, e=60.0, n=0.0, r=1.5)
    planner = AvoidancePlanner(rt, box(-10, -40, 210, 40), FRAME)
    first = planner.update([tree], VehicleState(45.0, 0.0, 2, 5.0, 0.0), 0)
    dep, nxt = enu(first.waypoints[0]), enu(first.waypoints[1])
    away = (nxt[0] - dep[0], nxt[1] - dep[1])
    norm = math.hypot(*away)
    c = planner.update([tree], VehicleState(dep[0] - 1.0, 0.0, 2, 8.0 * away[0] / norm, 8.0 * away[1] / norm), 1)
    assert enu(c.waypoints[0]) == pytest.approx(nxt, abs=1e-6)
    assert planner.corners_slowed == 0


def test_an_obstacle_found_again_under_a_new_track_id_mid_detour_keeps_the_side_being_flown():
    """Mid-detour the tree's track is lost and found again under a new id, a little further south and larger, so
    that the detour being flown (south of it, the shorter way round at first) must be replanned. The side is kept:
    the new id has no side of its own yet, and choosing afresh (now north is shorter) would turn the vehicle
    across the keep-out's front."""
    rt = route((0, 0), (200, 0))
    planner = AvoidancePlanner(rt, box(-10, -40, 210, 40), FRAME)
    first = planner.update([ob(7, e=60.0, n=1.0, r=1.5)], VehicleState(45.0, 0.0, 2, 5.0, 0.0), 0)
    assert first.kind is CorrectionKind.DETOUR and first.side == "right", first  # eastbound: right is south
    again = ob(8, e=60.0, n=-1.0, r=2.5)
    c = planner.update([again], VehicleState(47.0, 0.0, 2, 5.0, 0.0), int(0.4e9))
    assert c.kind is CorrectionKind.DETOUR and c.side == "right" and c.obstacle_ids == (8,), c
    assert min_clearance(legs_of((47.0, 0.0), c), again, 4.0) >= -1e-3
    fresh = AvoidancePlanner(rt, box(-10, -40, 210, 40), FRAME)  # the same obstacle met anew: north is shorter
    assert fresh.update([again], VehicleState(47.0, 0.0, 2, 5.0, 0.0), 0).side == "left"
