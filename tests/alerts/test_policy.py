"""The alert policy: one alert per zone or object, growth -> revision, rate limiting, stable keys."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agridrone.alerts.policy import AlertPolicy, AlertPolicyConfig
from agridrone.errors import ConfigError
from agridrone.fieldmap import FieldMap
from agridrone.geo import LocalFrame, offset_deg
from agridrone.types import AlertKind, Correction, CorrectionKind, GeoPoint, Obstacle

from .helpers import HOME
from .test_fieldmap import tiles

S = 1_000_000_000
FRAME = LocalFrame(*HOME)
AT_ONCE = {"zone_min_looks": 1, "zone_settled_looks": 1}  # zones alerted on their first look (unit checks)


def obstacle(track_id, label="person", north_m=20.0, east_m=20.0, confirmed=True, confidence=0.9, t_ns=0, hits=5,
             labels=(), radius_m=0.5, label_share=1.0):
    lat, lon = offset_deg(HOME[0], HOME[1], north_m, east_m)
    return Obstacle(track_id=track_id, label=label, lat_deg=lat, lon_deg=lon, east_m=east_m, north_m=north_m,
                    radius_m=radius_m, confidence=confidence, hits=hits, first_seen_ns=0, last_seen_ns=t_ns,
                    confirmed=confirmed, labels=labels or (label,), label_share=label_share)


def test_one_alert_per_zone_and_growth_is_a_revision():
    """A weed patch above the threshold is alerted once; seen again unchanged nothing new; grown by more than
    the growth fraction it is updated under the same id with revision 2; a patch below the threshold is not
    alerted until it grows past it."""
    fm = FieldMap(FRAME, (0, 0, 80, 80), cell_m=1.0, min_cell_observations=1)
    policy = AlertPolicy("F7", AlertPolicyConfig(weeds_min_area_m2=10, zone_growth_fraction=0.25, **AT_ONCE,
                                                 min_update_interval_s=0))
    fm.add_many(tiles("weeds", 10, 10, 14, 14))           # 16 m2
    fm.add_many(tiles("weeds", 50, 50, 52, 52))           # 4 m2: below the threshold
    (a1,) = policy.on_zones(fm.zones(), 1 * S)
    assert (a1.alert_id, a1.revision, a1.kind, a1.area_m2) == ("F7/weeds/weeds-1", 1, AlertKind.WEEDS, 16.0)
    assert len(a1.polygon) == 5 and a1.polygon[0] == a1.polygon[-1]
    assert policy.on_zones(fm.zones(), 2 * S) == []
    fm.add_many(tiles("weeds", 14, 10, 16, 14))           # 24 m2: +50 %
    (a2,) = policy.on_zones(fm.zones(), 3 * S)
    assert (a2.alert_id, a2.revision, a2.area_m2) == (a1.alert_id, 2, 24.0)
    fm.add_many(tiles("weeds", 16, 10, 17, 14, step=1))   # 28 m2: +17 %, below the growth fraction
    assert policy.on_zones(fm.zones(), 4 * S) == []
    fm.add_many(tiles("weeds", 50, 52, 54, 54))           # the small patch grows to 12 m2
    (b1,) = policy.on_zones(fm.zones(), 5 * S)
    assert b1.revision == 1 and b1.alert_id != a1.alert_id
    (a3,) = policy.on_zones(fm.zones(), 6 * S, final=True)  # end of survey: the last small growth is sent too
    assert (a3.alert_id, a3.revision, a3.area_m2) == (a1.alert_id, 3, 28.0)
    assert policy.on_zones(fm.zones(), 7 * S, final=True) == []


def test_merged_zones_keep_one_alert():
    """Two alerted patches that grow together: the survivor's alert is updated, the swallowed one's alert says
    where it went; no third alert."""
    fm = FieldMap(FRAME, (0, 0, 80, 80), cell_m=1.0, min_cell_observations=1)
    policy = AlertPolicy("F7", AlertPolicyConfig(weeds_min_area_m2=10, min_update_interval_s=0, **AT_ONCE))
    fm.add_many(tiles("weeds", 10, 10, 14, 14))
    fm.add_many(tiles("weeds", 20, 10, 24, 14))
    first = policy.on_zones(fm.zones(), 1 * S)
    assert len(first) == 2
    fm.add_many(tiles("weeds", 14, 10, 20, 14))
    update = {a.alert_id: a for a in policy.on_zones(fm.zones(), 2 * S)}
    assert set(update) == {a.alert_id for a in first}
    survivor, swallowed = update["F7/weeds/weeds-1"], update["F7/weeds/weeds-2"]
    assert survivor.revision == 2 and survivor.area_m2 == 56.0
    assert swallowed.revision == 2 and swallowed.properties["merged_into"] == "F7/weeds/weeds-1"


def looks(fm, label, e0, n0, e1, n1, ts_s, times=1, p=0.9):
    for _ in range(times):
        fm.add_many(tiles(label, e0, n0, e1, n1, p=p, ts_ns=int(ts_s * S)))


def test_a_zone_is_alerted_once_seen_enough_not_on_its_first_look():
    """Defaults: a zone waits until its cells have 3 looks and the survey has moved on (no new look for
    120 s) or until they have 8 looks; at the end of the survey 3 looks are enough, 2 never are."""
    fm = FieldMap(FRAME, (0, 0, 100, 40), cell_m=1.0, min_cell_observations=1)
    policy = AlertPolicy("F7", AlertPolicyConfig(weeds_min_area_m2=10, min_update_interval_s=0))
    looks(fm, "weeds", 10, 10, 16, 16, ts_s=0)                   # A: one look
    looks(fm, "weeds", 40, 10, 46, 16, ts_s=0, times=8)          # B: eight looks at once
    looks(fm, "weeds", 70, 10, 76, 16, ts_s=0, times=2)          # C: two looks
    (b,) = policy.on_zones(fm.zones(), 1 * S)
    assert b.area_m2 == 36.0 and b.properties["looks"] == 8.0
    looks(fm, "weeds", 10, 10, 16, 16, ts_s=5, times=2)          # A: three looks, the last at 5 s
    assert policy.on_zones(fm.zones(), 6 * S) == []              # still in view
    assert policy.on_zones(fm.zones(), 124 * S) == []            # 119 s without a look: not yet
    (a,) = policy.on_zones(fm.zones(), 125 * S)
    assert a.properties["looks"] == 3.0 and a.alert_id != b.alert_id
    assert policy.on_zones(fm.zones(), 126 * S, final=True) == []   # C: two looks are never enough
    fm2 = FieldMap(FRAME, (0, 0, 100, 40), cell_m=1.0, min_cell_observations=1)
    p2 = AlertPolicy("F8", AlertPolicyConfig(weeds_min_area_m2=10, min_update_interval_s=0))
    looks(fm2, "weeds", 10, 10, 16, 16, ts_s=0, times=3)
    assert p2.on_zones(fm2.zones(), 1 * S) == []
    assert len(p2.on_zones(fm2.zones(), 2 * S, final=True)) == 1     # the survey ended: three looks do


def test_a_zone_that_only_its_first_looks_called_weeds_is_not_alerted():
    """The closed cereal canopy: the first two frames call a blotch weeds (0.6), the next six, from other
    lines, call it crop. On its first looks it was a 36 m2 weed zone of confidence 0.6 (with zones alerted at
    once it is a false alert); seen enough, its weed confidence is 0.15 and it is no alert."""
    def flight(cfg):
        fm = FieldMap(FRAME, (0, 0, 60, 40), cell_m=1.0, min_cell_observations=1)
        policy, out = AlertPolicy("F7", cfg), []
        looks(fm, "weeds", 10, 10, 16, 16, ts_s=0, times=2, p=0.6)
        out += policy.on_zones(fm.zones(), 5 * S)
        looks(fm, "healthy", 8, 8, 18, 18, ts_s=60, times=6, p=0.7)
        out += policy.on_zones(fm.zones(), 200 * S)
        return out + policy.on_zones(fm.zones(), 201 * S, final=True)

    (early,) = flight(AlertPolicyConfig(weeds_min_area_m2=10, min_update_interval_s=0, **AT_ONCE))
    assert early.kind is AlertKind.WEEDS and early.confidence == 0.6
    assert flight(AlertPolicyConfig(weeds_min_area_m2=10, min_update_interval_s=0)) == []


def test_only_the_part_of_a_zone_inside_the_field_counts():
    """The map reaches 10 m beyond the boundary: a 60 m2 'stressed' verge outside the field is no alert, nor is a
    zone with 40 of its 60 m2 outside when the threshold is 25 m2; one with 40 m2 inside is."""
    boundary = [offset_deg(*HOME, n, e) for n, e in ((0, 0), (0, 100), (40, 100), (40, 0))]
    fm = FieldMap(FRAME, (-10, -10, 110, 50), cell_m=1.0, min_cell_observations=1)
    policy = AlertPolicy("F7", AlertPolicyConfig(stressed_min_area_m2=25, min_update_interval_s=0, **AT_ONCE),
                         field_boundary_latlon=boundary)
    looks(fm, "stressed", 20, -10, 30, -4, ts_s=0)               # outside, south
    looks(fm, "stressed", 50, -6, 60, 0, ts_s=0)                 # 60 m2, 0 inside
    looks(fm, "stressed", 50, 36, 60, 42, ts_s=0)                # 60 m2, 40 inside
    looks(fm, "stressed", 80, -4, 90, 2, ts_s=0)                 # 60 m2, 20 inside
    alerts = policy.on_zones(fm.zones(), 1 * S)
    assert [(round(a.area_m2), a.kind) for a in alerts] == [(60, AlertKind.STRESSED_ZONE)]
    assert alerts[0].lat_deg > offset_deg(*HOME, 30, 0)[0]


def test_objects_alerted_once_and_reidentified_tracks_deduplicated():
    """A confirmed person in the field is alerted once even when the tracker loses it and gives it a new id
    nearby; a second person standing elsewhere is a second alert; unconfirmed tracks, unknown labels and objects
    outside the field are not alerted."""
    boundary = [offset_deg(*HOME, n, e) for n, e in ((0, 0), (0, 100), (100, 100), (100, 0))]
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0), field_boundary_latlon=boundary)
    (a,) = policy.on_obstacles([obstacle(1)], 1 * S)
    assert (a.alert_id, a.kind, a.severity) == ("F7/person/track-1", AlertKind.PERSON, 4)
    assert policy.on_obstacles([obstacle(1, north_m=21)], 2 * S) == []
    assert policy.on_obstacles([obstacle(7, north_m=22)], 4 * S) == []          # same person, new track id
    (b,) = policy.on_obstacles([obstacle(8, north_m=60, east_m=60)], 5 * S)     # another one
    assert b.alert_id == "F7/person/track-8"
    (c,) = policy.on_obstacles([obstacle(9, "cow", 40, 40)], 6 * S)
    assert c.kind is AlertKind.ANIMAL
    assert policy.on_obstacles([obstacle(10, confirmed=False, north_m=80, east_m=10),
                                obstacle(11, "tree", 80, 80),
                                obstacle(12, north_m=150, east_m=20)], 7 * S) == []


def test_a_remembered_track_does_not_make_the_same_animal_s_new_track_a_second_animal():
    """The loop lists obstacles it remembers out of view (their last_seen_ns stays old) beside those in view.
    An animal alerted under track 11, passed again 200 s later, gets a new track 21 while track 11 is still
    listed from memory: it is the same animal (one alert), not a second one standing beside it. Two tracks
    that are both seen in the same frame are still two animals."""
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0))
    (a,) = policy.on_obstacles([obstacle(11, "cow", t_ns=1 * S)], 1 * S)
    for t in range(200, 205):
        assert policy.on_obstacles([obstacle(11, "cow", t_ns=1 * S),
                                    obstacle(21, "cow", north_m=20.5, t_ns=t * S)], t * S) == []
    (b,) = policy.on_obstacles([obstacle(21, "cow", north_m=20.5, t_ns=206 * S),
                                obstacle(30, "cow", north_m=23.0, t_ns=206 * S)], 206 * S)
    assert b.alert_id == "F7/animal/track-30" and a.alert_id == "F7/animal/track-11"


def test_one_animal_the_tracker_split_in_two_is_one_alert():
    """The maize flight: an animal on the seam of two detector tiles gave two tracks 0.5 m apart, both seen in
    the same frames, and two alerts. Closer than object_min_separation_m (1.5 m) they are one animal; two
    animals of a herd 2.5 m apart are still two."""
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0))
    (a,) = policy.on_obstacles([obstacle(7, "cow", t_ns=1 * S)], 1 * S)
    for t in range(2, 6):
        assert policy.on_obstacles([obstacle(7, "cow", t_ns=t * S),
                                    obstacle(21, "cow", north_m=20.5, t_ns=t * S)], t * S) == []
    (b,) = policy.on_obstacles([obstacle(7, "cow", t_ns=6 * S), obstacle(21, "cow", north_m=20.5, t_ns=6 * S),
                                obstacle(30, "cow", north_m=23.0, t_ns=6 * S)], 6 * S)
    assert a.alert_id == "F7/animal/track-7" and b.alert_id == "F7/animal/track-30"


def test_an_object_is_alerted_once_its_label_has_votes_and_keeps_its_first_kind():
    """The cereal flight: the tracker (person and animal grouped) labels one cow by votes, which can flip.
    Nothing is alerted before object_min_hits sightings; once alerted as an animal, the same track relabelled
    a person is the same alert (updated where it moved), not a person alert beside it."""
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, object_min_hits=3,
                                                 object_move_update_m=15))
    assert policy.on_obstacles([obstacle(4, "animal", hits=2, t_ns=1 * S)], 1 * S) == []
    (a,) = policy.on_obstacles([obstacle(4, "animal", hits=3, t_ns=2 * S)], 2 * S)
    assert (a.alert_id, a.kind, a.label) == ("F7/animal/track-4", AlertKind.ANIMAL, "animal")
    assert policy.on_obstacles([obstacle(4, "person", hits=4, t_ns=3 * S)], 3 * S) == []
    (a2,) = policy.on_obstacles([obstacle(4, "person", hits=5, north_m=40, t_ns=4 * S)], 4 * S)
    assert (a2.alert_id, a2.kind, a2.revision, a2.label) == (a.alert_id, AlertKind.ANIMAL, 2, "animal")
    (b,) = policy.on_obstacles([obstacle(9, "person", hits=3, north_m=80, east_m=80, t_ns=5 * S)], 5 * S)
    assert b.kind is AlertKind.PERSON                                        # a real person elsewhere


def test_an_object_whose_votes_disagree_on_its_kind_is_alerted_once_the_vote_has_settled():
    """The cereal flight's deer: its first three sightings voted person 1.06 to animal 0.6 and it was alerted
    as a person; by its sixth the vote was animal 2.5 to person 1.1. While a track's labels span two kinds it
    waits for object_settle_hits sightings; a track whose labels agree is alerted at object_min_hits."""
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, object_min_hits=3, object_settle_hits=6))
    for hits, label in ((3, "person"), (4, "animal"), (5, "animal")):
        other = "animal" if label == "person" else "person"
        assert policy.on_obstacles([obstacle(37, label, hits=hits, labels=(label, other), t_ns=hits * S)],
                                   hits * S) == []
    (a,) = policy.on_obstacles([obstacle(37, "animal", hits=6, labels=("animal", "person"), t_ns=6 * S)], 6 * S)
    assert (a.kind, a.label) == (AlertKind.ANIMAL, "animal")
    (b,) = policy.on_obstacles([obstacle(40, "person", hits=3, north_m=80, east_m=80, t_ns=7 * S)], 7 * S)
    assert b.kind is AlertKind.PERSON                        # a person the detector is sure of: not delayed
    cow = obstacle(41, "cow", hits=3, north_m=-60, labels=("cow", "animal"), t_ns=8 * S)
    assert [x.kind for x in policy.on_obstacles([cow], 8 * S)] == [AlertKind.ANIMAL]   # two names, one kind
    eager = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, object_min_hits=3, object_settle_hits=3))
    (c,) = eager.on_obstacles([obstacle(37, "person", hits=3, labels=("person", "animal"), t_ns=3 * S)], 3 * S)
    assert c.kind is AlertKind.PERSON                        # the flight's alert, without the wait


def test_an_object_alerted_as_a_person_is_revised_to_an_animal_once_its_track_clearly_says_so():
    """The next cereal flight's animal: 50/50 at its sixth sighting (person 2.3, animal 1.6) it was alerted as a
    person; by its fourteenth the track said animal 68 %. The alert is revised: same id, next revision, kind
    animal, saying what it was. A split vote or a young track revises nothing, and the revision is not undone
    by a vote that wavers back below the share."""
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, object_relabel_hits=12,
                                                 object_relabel_share=0.65))
    (a,) = policy.on_obstacles([obstacle(36, "person", hits=6, labels=("person", "animal"), label_share=0.6,
                                         t_ns=6 * S)], 6 * S)
    assert a.kind is AlertKind.PERSON
    for hits, share in ((9, 0.55), (11, 0.7)):     # split, then clear but on a young track
        assert policy.on_obstacles([obstacle(36, "animal", hits=hits, labels=("animal", "person"),
                                             label_share=share, t_ns=hits * S)], hits * S) == []
    (b,) = policy.on_obstacles([obstacle(36, "animal", hits=14, labels=("animal", "person"), label_share=0.68,
                                         t_ns=14 * S)], 14 * S)
    assert (b.alert_id, b.revision, b.kind, b.label) == (a.alert_id, 2, AlertKind.ANIMAL, "animal")
    assert b.properties["relabelled_from"] == "person" and b.severity == a.severity
    assert policy.on_obstacles([obstacle(36, "person", hits=16, labels=("person", "animal"), label_share=0.52,
                                         t_ns=16 * S)], 16 * S) == []
    car = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, object_relabel_hits=12))
    car.on_obstacles([obstacle(50, "tractor", hits=6, t_ns=1 * S)], 1 * S)      # no kin: never revised
    assert car.on_obstacles([obstacle(50, "person", hits=20, t_ns=2 * S)], 2 * S) == []


def test_a_cow_lost_and_found_again_as_a_person_is_the_same_alert_a_farmer_beside_it_is_not():
    """The cereal flight: the cow, alerted as an animal, went out of view for 7 s; its new track's first three
    readings said person, and it was alerted again as a person. A track of a kin kind (same_object_kinds)
    where an alerted object was is that object; a person seen at the same time as the cow's own track, 1.6 m
    from it, is a person beside it."""
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0))
    (a,) = policy.on_obstacles([obstacle(4, "animal", t_ns=1 * S)], 1 * S)
    assert policy.on_obstacles([obstacle(9, "person", north_m=20.4, t_ns=8 * S)], 8 * S) == []
    (b,) = policy.on_obstacles([obstacle(9, "person", north_m=20.4, t_ns=9 * S),
                                obstacle(12, "person", north_m=21.6, east_m=21.0, t_ns=9 * S)], 9 * S)
    assert a.kind is AlertKind.ANIMAL and b.alert_id == "F7/person/track-12"
    apart = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, same_object_kinds=()))
    apart.on_obstacles([obstacle(4, "animal", t_ns=1 * S)], 1 * S)
    assert [x.kind for x in apart.on_obstacles([obstacle(9, "person", north_m=20.4, t_ns=8 * S)], 8 * S)] == \
        [AlertKind.PERSON]


def test_a_vehicle_against_a_building_is_not_a_vehicle_in_the_field():
    """The vineyard and powerline flights: the detector read a building's edge as a vehicle, 0.6-1.3 m outside
    the building's disc. A vehicle within the building's radius + vehicle_at_building_m is not alerted, also
    when the building was seen long before (the loop no longer lists it); one parked further out is, and so
    is a person standing against the building; an unconfirmed building counts for nothing."""
    import dataclasses

    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, vehicle_at_building_m=2.0))
    barn = dataclasses.replace(obstacle(1, "building", north_m=50, east_m=50), radius_m=10.0)
    at_eaves = obstacle(2, "vehicle", north_m=50, east_m=61.5)
    out = policy.on_obstacles([barn, at_eaves], 1 * S)
    assert out == []
    (a, b) = policy.on_obstacles([barn, at_eaves, obstacle(3, "vehicle", north_m=50, east_m=75),
                                  obstacle(4, "person", north_m=50, east_m=61)], 2 * S)
    assert {a.kind, b.kind} == {AlertKind.VEHICLE, AlertKind.PERSON}
    later = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, vehicle_at_building_m=2.0))
    assert later.on_obstacles([barn], 1 * S) == []
    assert later.on_obstacles([at_eaves], 900 * S) == []     # the barn long out of the loop's memory: still there
    fresh = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, vehicle_at_building_m=2.0))
    assert fresh.on_obstacles([dataclasses.replace(barn, confirmed=False), at_eaves], 3 * S) != []


def test_moving_object_updates_its_alert():
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0, object_move_update_m=15))
    (a,) = policy.on_obstacles([obstacle(3, "tractor")], 1 * S)
    (a2,) = policy.on_obstacles([obstacle(3, "tractor", north_m=40)], 2 * S)
    assert a2.alert_id == a.alert_id and a2.revision == 2 and a2.lat_deg > a.lat_deg


def test_rate_limit_defers_but_never_drops():
    """Twenty patches at once with a bucket of 3 and 6 per minute: three leave now, the rest one every 10 s;
    all twenty eventually leave, each once."""
    fm = FieldMap(FRAME, (0, 0, 200, 20), cell_m=1.0, min_cell_observations=1)
    for k in range(20):
        fm.add_many(tiles("weeds", 10 * k, 5, 10 * k + 4, 9))
    policy = AlertPolicy("F7", AlertPolicyConfig(weeds_min_area_m2=10, rate_per_min=6, burst=3, **AT_ONCE))
    out = policy.on_zones(fm.zones(), 0)
    assert len(out) == 3 and policy.pending == 17
    assert policy.tick(5 * S) == []
    emitted = list(out)
    t = 10
    while policy.pending and t < 1000:
        got = policy.tick(t * S)
        assert len(got) == 1
        emitted += got
        t += 10
    assert t == 180 and policy.pending == 0
    assert len({a.alert_id for a in emitted}) == len(emitted) == 20 and {a.revision for a in emitted} == {1}


def test_updates_wait_for_the_minimum_interval():
    policy = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=30, object_move_update_m=5))
    assert len(policy.on_obstacles([obstacle(3, "dog")], 0)) == 1
    assert policy.on_obstacles([obstacle(3, "dog", north_m=40)], 10 * S) == []     # moved, but too soon
    assert policy.on_obstacles([obstacle(3, "dog", north_m=41)], 20 * S) == []
    (upd,) = policy.tick(30 * S)
    assert upd.revision == 2


def test_events_once_per_episode_and_stable_keys():
    """Avoidance stops, a lost link and a lost camera are alerted once per episode; route-blocking obstacles
    once each; keys are FLIGHT/KIND/REF, the same for the same flight whatever the process."""
    for _ in range(2):  # two policies for the same flight give the same keys
        p = AlertPolicy("F7")
        hold = Correction(CorrectionKind.HOLD, reason="boxed in", obstacle_ids=(4,))
        out = p.on_correction(hold, 0, *HOME, obstacles={4: obstacle(4, "tractor")})
        assert sorted(a.alert_id for a in out) == ["F7/avoidance_stop/1", "F7/route_blocked/track-4"]
        assert p.on_correction(hold, 1 * S, *HOME) == []
        assert p.on_correction(Correction(CorrectionKind.RESUME), 2 * S, *HOME) == []
        detour = Correction(CorrectionKind.DETOUR, waypoints=(GeoPoint(*HOME),), obstacle_ids=(4, 5))
        assert [a.alert_id for a in p.on_correction(detour, 3 * S, *HOME)] == ["F7/route_blocked/track-5"]
        (stop2,) = p.on_correction(hold, 4 * S, *HOME)
        assert stop2.alert_id == "F7/avoidance_stop/2"
        (lost,) = p.on_link(False, 5 * S, *HOME)
        assert p.on_link(False, 6 * S, *HOME) == [] and p.on_link(True, 7 * S, *HOME) == []
        (lost2,) = p.on_link(False, 8 * S, *HOME)
        assert (lost.alert_id, lost2.alert_id, lost.severity) == ("F7/link_lost/1", "F7/link_lost/2", 2)
        (cam,) = p.on_camera(False, 9 * S, *HOME)
        assert cam.kind is AlertKind.CAMERA_LOST


def test_a_tree_blocking_the_route_under_three_track_ids_is_one_alert_two_trees_are_two():
    """The vineyard flight: one tree (radius 4 m) blocked the route under tracks 35, 39 and 45, 1-2.5 m apart,
    each listed with the one before in the planner's detour, and was alerted four times. A blocking obstacle
    whose centre lies inside the disc of one alerted at the same time is that obstacle; a second tree 9 m away
    is its own alert."""
    p = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0))
    trees = {35: obstacle(35, "tree", radius_m=4.0), 39: obstacle(39, "tree", north_m=22.0, radius_m=4.0),
             45: obstacle(45, "tree", north_m=21.0, east_m=21.5, radius_m=4.0),
             50: obstacle(50, "tree", north_m=29.0, radius_m=3.0)}
    ticks = [ids for ids in ((35,), (35, 39), (39, 45), (45, 50)) for _ in range(3)]   # a correction every 0.5 s

    def alerted(policy, obstacles):
        out = []
        for k, ids in enumerate(ticks):
            detour = Correction(CorrectionKind.DETOUR, waypoints=(GeoPoint(*HOME),), obstacle_ids=ids)
            out += [a.alert_id for a in policy.on_correction(detour, k * S // 2, *HOME, obstacles=obstacles)]
        return out

    assert alerted(p, trees) == ["F7/route_blocked/track-35", "F7/route_blocked/track-50"]
    points = {k: dataclasses.replace(v, radius_m=0.0) for k, v in trees.items()}   # radius unused: as before
    assert len(alerted(AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0)), points)) == 4


def test_a_remembered_person_and_its_new_track_blocking_the_route_are_one_alert():
    """The vineyard flight: the planner went round the person under track 14, which the loop only remembered
    (last seen 10 s before), and track 18, 2.2 m away and in view: two route-blocked alerts. A blocking obstacle
    counts as seen when the camera last saw it, so the remembered one is not a second person standing there;
    two people both in view 2.2 m apart are two."""
    def blocked(last_seen_14_s):
        p = AlertPolicy("F7", AlertPolicyConfig(min_update_interval_s=0))
        out = []
        for k in range(20, 26):
            people = {14: obstacle(14, "person", t_ns=int(min(k, last_seen_14_s) * S)),
                      18: obstacle(18, "person", north_m=22.2, t_ns=k * S)}
            ids = (14,) if k < 22 else (14, 18)
            detour = Correction(CorrectionKind.DETOUR, waypoints=(GeoPoint(*HOME),), obstacle_ids=ids)
            out += [a.alert_id for a in p.on_correction(detour, k * S, *HOME, obstacles=people)]
        return out

    assert blocked(last_seen_14_s=10) == ["F7/route_blocked/track-14"]
    assert blocked(last_seen_14_s=99) == ["F7/route_blocked/track-14", "F7/route_blocked/track-18"]


def test_config_from_mission_mapping():
    cfg = AlertPolicyConfig.from_mapping({"weeds_min_area_m2": 5, "object_labels": {"llama": "animal"}})
    assert cfg.weeds_min_area_m2 == 5 and cfg.object_labels["llama"] == "animal"
    assert cfg.object_labels["person"] == "person"
    with pytest.raises(ConfigError, match="unknown"):
        AlertPolicyConfig.from_mapping({"weed_area": 5})
    with pytest.raises(ConfigError, match="expected 0..1"):
        AlertPolicyConfig.from_mapping({"min_object_confidence": 2})
    with pytest.raises(ConfigError, match="person/animal/vehicle"):
        AlertPolicyConfig.from_mapping({"object_labels": {"llama": "alpaca"}})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["person", "cow", "car", "tree"]),
                          st.floats(0, 90), st.floats(0, 90), st.booleans()), max_size=40),
       st.integers(1, 4), st.floats(0.5, 30))
def test_any_sequence_gives_consecutive_revisions_and_no_repeats(steps, burst, rate_per_min):
    """Whatever the tracker reports, in whatever order: no (id, revision) is emitted twice, each id's revisions
    are 1, 2, 3, ... in order, and nothing waits forever once time moves on."""
    policy = AlertPolicy("P", AlertPolicyConfig(burst=burst, rate_per_min=rate_per_min, min_update_interval_s=1))
    emitted = []
    for i, (track, label, n, e, confirmed) in enumerate(steps):
        emitted += policy.on_obstacles([obstacle(track, label, n, e, confirmed=confirmed)], i * S)
    t = len(steps)
    while policy.pending and t < 100_000:
        t += 60
        emitted += policy.tick(t * S)
    assert policy.pending == 0
    keys = [(a.alert_id, a.revision) for a in emitted]
    assert len(keys) == len(set(keys))
    by_id: dict[str, list[int]] = {}
    for a in emitted:
        by_id.setdefault(a.alert_id, []).append(a.revision)
    assert all(revs == list(range(1, len(revs) + 1)) for revs in by_id.values())
