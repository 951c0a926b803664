"""ObstacleTracker: tables with synthetic ground observations (no camera, no projection)."""

from __future__ import annotations

import copy
import math
import random

import pytest

from agridrone.geo import LocalFrame
from agridrone.tracking import GroundDetection, ObstacleTracker, TrackerConfig

FRAME = LocalFrame(-35.363261, 149.165230, 584.0)
DT_NS = 100_000_000  # 10 frames per second


def det(label="tree", e=10.0, n=20.0, r=2.0, conf=0.9, ts=0, h=None):
    return GroundDetection(label, e, n, r, conf, ts, h)


def run(tracker, frames, start_ns=0):
    """Feed one list (or None) per frame at 10 Hz; return the last tick's obstacles."""
    out = ()
    for i, dets in enumerate(frames):
        now = start_ns + i * DT_NS
        if dets is not None:
            dets = [GroundDetection(d.label, d.east_m, d.north_m, d.radius_m, d.confidence, now, d.height_m)
                    for d in dets]
        out = tracker.update(dets, now)
    return out


@pytest.mark.parametrize("confirm_hits", [1, 3, 5])
def test_confirmed_after_n_hits(confirm_hits):
    """A track stays tentative until exactly ``confirm_hits`` observations, then is confirmed."""
    tr = ObstacleTracker(FRAME, TrackerConfig(confirm_hits=confirm_hits))
    for k in range(1, confirm_hits + 3):
        obs = tr.update([det(ts=k * DT_NS)], k * DT_NS)
        assert len(obs) == 1
        assert obs[0].hits == k
        assert obs[0].confirmed is (k >= confirm_hits)


def test_forgotten_after_m_seconds_without_hit_and_ticks_with_none():
    """Ticks with None keep a confirmed track for forget_after_s, then drop it; tentative ones go sooner."""
    cfg = TrackerConfig(forget_after_s=2.0, tentative_forget_after_s=0.5)
    tr = ObstacleTracker(FRAME, cfg)
    run(tr, [[det()]] * 5)                       # confirmed tree, last hit at 0.4 s
    tr.update([det("person", e=-30, n=-30, ts=int(0.5e9))], int(0.5e9))   # one tentative person
    assert len(tr.update(None, int(0.9e9))) == 2
    obs = tr.update(None, int(1.1e9))             # person: 0.6 s without a hit > 0.5 s
    assert [o.label for o in obs] == ["tree"]
    assert len(tr.update(None, int(2.4e9))) == 1  # tree: exactly 2.0 s since its last hit
    assert tr.update(None, int(2.41e9)) == ()


def test_association_with_clutter_keeps_two_stable_confirmed_tracks():
    """Two trees seen with noise among random clutter: exactly the two trees end up confirmed, ids stable."""
    rng = random.Random(4)
    trees = [(10.0, 20.0), (25.0, 22.0)]
    tr = ObstacleTracker(FRAME)
    ids_seen = []
    for i in range(30):
        now = i * DT_NS
        dets = [det(e=e + rng.gauss(0, 0.4), n=n + rng.gauss(0, 0.4), ts=now) for e, n in trees]
        dets += [det(rng.choice(["tree", "person"]), rng.uniform(-60, 60), rng.uniform(-60, 60), 1.0, 0.5, now)
                 for _ in range(3)]
        rng.shuffle(dets)
        obs = tr.update(dets, now)
        confirmed = [o for o in obs if o.confirmed]
        if i >= 5:
            ids_seen.append(tuple(sorted(o.track_id for o in confirmed)))
    assert len(set(ids_seen)) == 1 and len(ids_seen[0]) == 2
    confirmed = sorted((o for o in obs if o.confirmed), key=lambda o: o.east_m)
    for o, (e, n) in zip(confirmed, trees):
        assert math.hypot(o.east_m - e, o.north_m - n) < 0.5
        assert not o.moving and o.ve_m_s == 0.0


def test_duplicates_merged_but_not_other_classes_or_distant_objects():
    """Two overlapping boxes of one tree per frame are one sighting of one track; a person beside it and a far
    tree stay apart."""
    tr = ObstacleTracker(FRAME)
    frame_dets = [det(e=10.0, n=20.0, r=3.0), det(e=11.0, n=20.5, r=3.0),      # the same tree twice
                  det("person", e=12.0, n=20.0, r=0.5),                     # inside its disc, other class
                  det(e=40.0, n=20.0, r=3.0)]                              # another tree
    obs = run(tr, [frame_dets] * 6)
    labels = sorted(o.label for o in obs)
    assert labels == ["person", "tree", "tree"]
    near = min((o for o in obs if o.label == "tree"), key=lambda o: o.east_m)
    assert near.confirmed and near.hits == 6   # one sighting a frame, not two
    assert near.radius_m >= 3.0 + math.hypot(1.0, 0.5) / 2 - 1e-9   # the disc enclosing both boxes' discs
    assert tr.fused == 6


def test_two_tracks_that_grow_into_one_disc_are_merged_and_the_merge_never_shrinks_it():
    """Two tree tracks 4 m apart whose discs grow until one centre lies inside the other's become one."""
    tr = ObstacleTracker(FRAME)
    small = [det(e=10.0, r=1.0), det(e=14.0, r=1.0)]
    wide = [det(e=10.0, r=6.0), det(e=14.0, r=6.0)]
    obs = run(tr, [small] * 3)
    assert len(obs) == 2 and tr.merges == 0
    obs = run(tr, [wide] * 4, start_ns=3 * DT_NS)
    assert len(obs) == 1 and tr.merges == 1
    assert obs[0].radius_m >= 4.0 and 10.0 <= obs[0].east_m <= 14.0


@pytest.mark.parametrize("ve, vn", [(1.5, 0.0), (-1.0, 2.0), (0.0, -4.0)])
def test_moving_target_velocity_and_prediction_through_empty_frames(ve, vn):
    """A walking person is tracked with its velocity; empty frames advance its predicted position."""
    rng = random.Random(1)
    tr = ObstacleTracker(FRAME)
    frames = []
    for i in range(40):
        t = i * DT_NS / 1e9
        frames.append([det("person", e=5 + ve * t + rng.gauss(0, 0.15), n=-3 + vn * t + rng.gauss(0, 0.15), r=0.5)])
    obs = run(tr, frames)
    (p,) = obs
    assert p.moving and p.confirmed
    assert abs(p.ve_m_s - ve) < 0.35 and abs(p.vn_m_s - vn) < 0.35
    last_ns = 39 * DT_NS
    (q,) = tr.update(None, last_ns + 1_000_000_000)   # one second without a detection
    assert math.hypot(q.east_m - (p.east_m + ve), q.north_m - (p.north_m + vn)) < 0.4
    assert q.hits == p.hits


SIM_FRAME_S = 0.667   # the simulated loop's frame spacing in vehicle time (recorded flights)


def _standing(rng, n_frames, sd=0.6, outliers=()):
    """A person standing at (5, -3) seen every SIM_FRAME_S with ``sd`` metres of projection scatter;
    ``outliers``: {frame index: (de, dn)} placed that far off instead."""
    table = []
    for k in range(n_frames):
        de, dn = dict(outliers).get(k, (rng.gauss(0, sd), rng.gauss(0, sd)))
        table.append((k * SIM_FRAME_S, [("person", 5.0 + de, -3.0 + dn, 0.4, 0.7)]))
    return table


def test_a_standing_person_seen_with_a_metre_of_scatter_stays_put_without_a_velocity():
    """Two sightings a metre apart 0.67 s apart are 1.5 m/s if read as motion: the track must not walk off.
    Over many seeds the standing person never gets a velocity, and an empty second later it is where it
    stood, within a metre; one observation 2.5 m off (inside the gate) moves it less than 1.5 m. (The
    alpha-beta filter this tracker had called the person moving in 39 % of such ticks, and placed it up to
    4.2 m off a second later.)"""
    for seed in range(20):
        rng = random.Random(seed)
        tr = ObstacleTracker(FRAME, TrackerConfig(**LOOP))
        where = []
        for t_s, rows in _standing(rng, 12, outliers={6: (2.5, 0.0)}):
            now = int(t_s * 1e9)
            obs = tr.update([GroundDetection(lb, e, n, r, c, now) for lb, e, n, r, c in rows], now)
            assert len(obs) == 1 and not obs[0].moving and (obs[0].ve_m_s, obs[0].vn_m_s) == (0.0, 0.0), (seed, t_s)
            where.append((obs[0].east_m, obs[0].north_m))
        assert math.dist(where[6], where[5]) < 1.5, (seed, where[5], where[6])
        (later,) = tr.update(None, now + 1_000_000_000)
        assert (later.east_m, later.north_m) == where[-1]
        assert math.hypot(later.east_m - 5.0, later.north_m + 3.0) < 1.0, (seed, later)


def test_a_walker_seen_at_the_simulated_frame_rate_gets_a_velocity_once_the_data_show_it():
    """A person walking 1.4 m/s, seen every 0.67 s with 0.5 m of scatter: moving (with about the right
    velocity) within 4 s, where the standing person of the test above never is."""
    rng = random.Random(3)
    tr = ObstacleTracker(FRAME, TrackerConfig(**LOOP))
    first_moving = None
    for k in range(12):
        now = int(k * SIM_FRAME_S * 1e9)
        e, n = 5.0 + 1.4 * k * SIM_FRAME_S + rng.gauss(0, 0.5), -3.0 + rng.gauss(0, 0.5)
        (o,) = tr.update([GroundDetection("person", e, n, 0.4, 0.7, now)], now)
        if o.moving and first_moving is None:
            first_moving = k * SIM_FRAME_S
    assert first_moving is not None and first_moving <= 4.0, first_moving
    assert abs(o.ve_m_s - 1.4) < 0.5 and abs(o.vn_m_s) < 0.5, (o.ve_m_s, o.vn_m_s)
    assert abs(o.east_m - (5.0 + 1.4 * 11 * SIM_FRAME_S)) < 1.0


def test_a_track_out_of_view_is_predicted_along_its_velocity_only_for_max_coast_s():
    """A walker at 2 m/s out of view for 6 s is 2 x 2 m on from its last estimate (max_coast_s 2), not 12."""
    tr = ObstacleTracker(FRAME)
    obs = run(tr, [[det("person", e=2.0 * i * DT_NS / 1e9, n=0.0, r=0.4)] for i in range(30)])
    (p,) = obs
    assert p.moving and abs(p.ve_m_s - 2.0) < 0.1
    (q,) = tr.update(None, 29 * DT_NS + 2_500_000_000)   # forget_after_s is 3 s
    assert q.east_m == pytest.approx(p.east_m + 2.0 * 2.0, abs=0.05)


def test_static_class_gets_no_velocity_even_when_its_estimate_jitters():
    """Trees are not given a velocity from measurement noise."""
    rng = random.Random(2)
    tr = ObstacleTracker(FRAME)
    obs = run(tr, [[det(e=rng.gauss(0, 0.5), n=rng.gauss(0, 0.5))] for _ in range(20)])
    assert not obs[0].moving and (obs[0].ve_m_s, obs[0].vn_m_s) == (0.0, 0.0)


def test_ground_and_other_classes_are_never_tracked():
    """Weeds, crop, and anything with height 0 (flat on the ground) are ignored; a tall tree is not."""
    tr = ObstacleTracker(FRAME)
    obs = run(tr, [[det("weed"), det("crop", e=0), det("tree", e=-20, h=0.0), det("tree", e=50, h=7.0),
                    det("tree", e=80, conf=0.1)]] * 4)
    assert [(o.label, round(o.east_m), o.height_m) for o in obs] == [("tree", 50, 7.0)]
    assert tr.ignored == 16


def test_class_defaults_give_every_obstacle_a_height():
    """Without a measured height the class default is reported (so the planner never sees 0)."""
    tr = ObstacleTracker(FRAME)
    obs = run(tr, [[det("tree"), det("person", e=-20), det("obstacle", e=40)]])
    assert {o.label: o.height_m for o in obs} == {"tree": 10.0, "person": 2.0, "obstacle": 5.0}


def test_inputs_are_not_mutated_and_geo_fields_follow_the_local_frame():
    """update() leaves its list untouched; lat/lon are the LocalFrame conversion of east/north."""
    tr = ObstacleTracker(FRAME)
    dets = [det(e=30.0, n=-40.0, ts=0), det("person", e=0.0, n=5.0, ts=0)]
    before = copy.deepcopy(dets)
    (a, b) = tr.update(dets, 0)
    assert dets == before
    lat, lon, _ = FRAME.to_geo(a.east_m, a.north_m, 0.0)
    assert (a.lat_deg, a.lon_deg) == pytest.approx((lat, lon), abs=1e-12)
    assert a.track_id != b.track_id


@pytest.mark.parametrize("bad, message", [
    (lambda: det(r=-1.0), "radius_m: expected >= 0"),
    (lambda: det(conf=1.5), "confidence: expected 0..1"),
    (lambda: det(e=float("nan")), "east_m: expected a finite number"),
    (lambda: det(label=""), "label: expected a non-empty"),
    (lambda: det(ts=1.5), "ts_ns: expected integer"),
    (lambda: ObstacleTracker(FRAME).update([("tree", 1, 2)], 0), "expected GroundDetection"),
    (lambda: TrackerConfig(confirm_hits=0), "confirm_hits: expected >= 1"),
    (lambda: TrackerConfig(velocity_window_s=0.0), "velocity_window_s: expected > 0"),
    (lambda: TrackerConfig(max_coast_s=-1.0), "max_coast_s: expected >= 0"),
])
def test_bad_input_says_what_was_expected(bad, message):
    """Malformed observations, items and settings are refused with "expected ..., got ..."."""
    with pytest.raises(ValueError, match=message):
        bad()


def test_time_must_not_go_backwards():
    """A tick earlier than the previous one is refused rather than corrupting the filters."""
    tr = ObstacleTracker(FRAME)
    tr.update(None, 1000)
    with pytest.raises(ValueError, match="non-decreasing"):
        tr.update(None, 999)


def test_a_tree_seen_again_from_the_next_line_is_confirmed_a_walker_is_not():
    """With static_tentative_forget_after_s, a tree seen once and again 50 s later (the next survey line) at
    the same place is one confirmed track; a person seen once and again 50 s later starts over (people move),
    and without the setting the tree starts over too (control)."""
    s = 1_000_000_000
    for static_s, tree_confirmed in ((120.0, True), (None, False)):
        cfg = TrackerConfig(confirm_hits=2, tentative_forget_after_s=3.0, static_tentative_forget_after_s=static_s)
        tr = ObstacleTracker(FRAME, cfg)
        tr.update([det("tree", ts=0), det("person", e=-40.0, n=-40.0, ts=0)], 0)
        for k in range(1, 50):
            tr.update(None, k * s)
        obs = tr.update([det("tree", e=10.8, ts=50 * s), det("person", e=-40.5, n=-40.0, ts=50 * s)], 50 * s)
        by_label = {o.label: o for o in obs}
        assert by_label["tree"].confirmed is tree_confirmed and by_label["tree"].hits == (2 if tree_confirmed else 1)
        assert not by_label["person"].confirmed and by_label["person"].hits == 1


def test_a_tree_seen_again_after_a_minute_out_of_view_is_still_its_track_with_static_forget():
    """A confirmed tree out of view for 60 s and seen again 1.5 m off (another viewing angle): with
    static_forget_after_s it is the same track, its position refined, not restarted; without it the old
    track is gone and a new one starts where the new sightings put it. A walker is forgotten after 3 s."""
    s = 1_000_000_000
    for static_forget, same in ((120.0, True), (None, False)):
        tr = ObstacleTracker(FRAME, TrackerConfig(static_forget_after_s=static_forget))
        first = run(tr, [[det(e=10.0), det("person", e=-30.0)]] * 5)
        tree_id = next(o.track_id for o in first if o.label == "tree")
        obs = ()
        for k in range(3):
            t = 60 * s + k * DT_NS
            obs = tr.update([det(e=11.5, ts=t)], t)
        (tree,) = [o for o in obs if o.label == "tree"]
        assert not any(o.label == "person" for o in obs)
        assert (tree.track_id == tree_id) is same
        if same:
            assert tree.hits == 8 and 10.0 < tree.east_m < 11.5
        else:
            assert tree.hits == 3


def test_a_class_group_makes_one_track_of_an_object_the_detector_calls_two_things():
    """A cow the detector calls an animal in most frames and a person in some (also both in one frame): with
    person and animal grouped it is one track labelled animal, listing person too (the planner keeps the larger
    margin); without the group it is two tracks, one of them a person that is not there."""
    frames = []
    for k in range(10):
        labels = ["animal"] if k % 3 else ["person"]
        if k == 4:
            labels = ["animal", "person"]        # both boxes on one frame (class-aware NMS keeps both)
        frames.append([det(lb, e=10.0 + 0.2 * (k % 2), n=20.0, r=0.6, conf=0.7) for lb in labels])
    grouped = run(ObstacleTracker(FRAME, TrackerConfig(class_groups=[["person", "animal"]])), frames)
    assert len(grouped) == 1, grouped
    assert grouped[0].label == "animal" and grouped[0].labels == ("animal", "person") and grouped[0].confirmed
    apart = run(ObstacleTracker(FRAME, TrackerConfig()), frames)
    assert sorted(o.label for o in apart) == ["animal", "person"]
    assert all(o.labels == (o.label,) for o in apart)


def test_a_stray_label_below_the_share_floor_is_not_listed():
    """Nine animal sightings and one person sighting: the person reading (10 %) is noise, not listed."""
    frames = [[det("person" if k == 5 else "animal", r=0.6)] for k in range(10)]
    obs = run(ObstacleTracker(FRAME, TrackerConfig(class_groups=[["person", "animal"]])), frames)
    assert len(obs) == 1 and obs[0].labels == ("animal",)
    obs = run(ObstacleTracker(FRAME, TrackerConfig(class_groups=[["person", "animal"]], label_share_floor=0.05)),
              frames)
    assert obs[0].labels == ("animal", "person")


def test_a_class_group_keeps_a_farmer_leading_a_cow_as_two_tracks():
    """Grouping does not fuse two things side by side: a person 1.5 m from an animal, both seen every frame."""
    frames = [[det("person", e=10.0 + 0.3 * k, n=20.0, r=0.4), det("animal", e=11.5 + 0.3 * k, n=20.0, r=0.8)]
              for k in range(10)]
    obs = run(ObstacleTracker(FRAME, TrackerConfig(class_groups=[["person", "animal"]])), frames)
    assert sorted(o.label for o in obs) == ["animal", "person"] and all(o.confirmed for o in obs)


# One standing animal seen from 60 m in a closed-loop flight over the cereal world (issue 7: it was alerted twice):
# (seconds, [(label, east, north, radius, confidence)]) relative to the animal, as the loop projected them. Two
# frames are 2.3-2.8 m off (a tilted frame's pose), and four hold a second box calling it a person.
ANIMAL_FROM_60_M = [
    (0.00, [("animal", 2.3, 1.4, 0.9, 0.53)]),
    (0.66, []),
    (1.32, [("animal", 1.1, 0.2, 0.9, 0.57), ("person", 0.9, -0.0, 0.9, 0.37)]),
    (1.99, [("animal", 1.0, 0.3, 0.8, 0.6)]),
    (2.65, [("animal", -0.5, -2.3, 0.9, 0.5)]),
    (3.32, [("animal", 1.1, 0.3, 0.9, 0.6)]),
    (3.99, [("animal", 1.6, -0.1, 0.9, 0.63)]),
    (4.65, [("animal", 2.1, -1.2, 0.8, 0.57)]),
    (5.32, [("person", 2.1, 1.1, 0.9, 0.56)]),
    (5.99, [("animal", 0.9, 0.1, 0.9, 0.53)]),
    (6.67, [("animal", 1.0, 0.1, 0.9, 0.53), ("person", 1.0, 0.0, 0.9, 0.43)]),
    (7.32, [("animal", 1.3, 1.5, 0.9, 0.5)]),
    (8.23, [("animal", 0.6, -0.1, 0.8, 0.6)]),
    (8.90, [("animal", 0.5, 0.6, 0.8, 0.56)]),
    (9.57, [("animal", 1.6, -0.2, 0.7, 0.6), ("person", 1.1, -0.5, 0.9, 0.43)]),
    (10.23, [("animal", 0.9, 0.3, 1.0, 0.5), ("person", 0.8, -0.1, 0.9, 0.37)]),
    (10.90, [("animal", 1.1, 0.3, 1.0, 0.63)]),
    (11.57, [("animal", 0.9, 0.3, 0.9, 0.57)]),
    (12.23, [("animal", 0.9, 0.2, 1.0, 0.66)]),
    (12.90, [("animal", 0.8, 0.4, 1.0, 0.47)]),
]
# the loop's settings (agridrone.config: 2 hits confirm, tentative tracks kept 3 s, person and animal grouped)
LOOP = dict(tentative_forget_after_s=3.0, moving_speed_m_s=1.0, confirm_hits=2, class_groups=[["person", "animal"]])


def _replay(table, config, origin=(10.0, 20.0)):
    tr = ObstacleTracker(FRAME, config)
    confirmed_per_tick = []
    for t_s, rows in table:
        now = int(t_s * 1e9)
        dets = [GroundDetection(lb, origin[0] + e, origin[1] + n, r, c, now) for lb, e, n, r, c in rows]
        obs = tr.update(dets or None, now)
        confirmed_per_tick.append(sorted(o.track_id for o in obs if o.confirmed))
    return tr, obs, confirmed_per_tick


def test_a_track_that_ran_off_on_a_noisy_frame_and_its_new_track_beside_it_become_one():
    """The recorded animal is one confirmed track at every tick: the track its outliers sent off (a velocity
    from two frames 2 m apart) and the track started beside it are merged (never seen in the same frame), and
    its animal and person boxes of one frame are one sighting. With the exclusive merge off it is two at once."""
    tr, obs, per_tick = _replay(ANIMAL_FROM_60_M, TrackerConfig(**LOOP))
    assert max(len(ids) for ids in per_tick) == 1, per_tick
    assert len(obs) == 1 and obs[0].label == "animal"
    assert tr.fused == 4   # the four frames with two boxes
    _, _, per_tick_off = _replay(ANIMAL_FROM_60_M, TrackerConfig(**LOOP, exclusive_merge_m=0.0))
    assert max(len(ids) for ids in per_tick_off) == 2, per_tick_off


def test_two_animals_of_a_herd_seen_together_once_stay_two_tracks_when_seen_one_at_a_time():
    """Cows 2.5 m apart, both in the first frames, then the detector finds only one of them per frame (in
    turns): they were seen together, so they stay two tracks although each is within the merge distance."""
    rng = random.Random(7)
    table = [(0.0, [("animal", 0.0, 0.0, 0.8, 0.7), ("animal", 2.5, 0.0, 0.8, 0.7)]),
             (0.67, [("animal", 0.0, 0.1, 0.8, 0.7), ("animal", 2.5, -0.1, 0.8, 0.7)])]
    for k in range(2, 20):
        e = 0.0 if k % 2 else 2.5
        table.append((0.67 * k, [("animal", e + rng.gauss(0, 0.3), rng.gauss(0, 0.3), 0.8, 0.6)]))
    tr, obs, per_tick = _replay(table, TrackerConfig(**LOOP))
    assert all(len(ids) == 2 for ids in per_tick[1:]), per_tick
    east = sorted(o.east_m for o in obs)
    assert abs(east[0] - 10.0) < 0.5 and abs(east[1] - 12.5) < 0.5, east
    assert tr.merges == 0



def test_an_obstacle_reports_its_label_share_of_the_votes():
    """Seven animal sightings and three person sightings of one cow (grouped): labelled animal, 70 % share."""
    frames = [[det("person" if k in (2, 5, 8) else "animal", r=0.6, conf=0.5)] for k in range(10)]
    (ob,) = run(ObstacleTracker(FRAME, TrackerConfig(class_groups=[["person", "animal"]])), frames)
    assert ob.label == "animal" and ob.label_share == pytest.approx(0.7)
    (tree,) = run(ObstacleTracker(FRAME), [[det()]] * 3)
    assert tree.label_share == 1.0
