"""The plant-health map: synthetic tiles -> grid -> zones (area, centroid, indices) -> GeoJSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapely.geometry import Polygon, shape

from agridrone.fieldmap import FieldMap, GroundHealthObservation
from agridrone.geo import LocalFrame, distance_m

from .helpers import HOME

FRAME = LocalFrame(*HOME)


def tiles(label, e0, n0, e1, n1, *, step=2.0, p=0.9, indices=None, ts_ns=0):
    """Observations of ``step`` x ``step`` m tiles covering the rectangle [e0, e1] x [n0, n1]."""
    out = []
    for e in np.arange(e0, e1, step):
        for n in np.arange(n0, n1, step):
            out.append(GroundHealthObservation(label, p, ts_ns=ts_ns, center_enu=(e + step / 2, n + step / 2),
                                               size_m=(step, step), indices=indices or {}))
    return out


def test_two_patches_become_two_zones_with_area_and_centroid():
    """A 10 x 6 m stressed patch and a 4 x 4 m weed patch on a healthy field: two zones, areas exact to the
    cell, centroids within 1 m of the truth, indices averaged."""
    fm = FieldMap(FRAME, (0, 0, 60, 40), cell_m=1.0, min_cell_observations=1)
    fm.add_many(tiles("healthy", 0, 0, 60, 40, p=0.8, indices={"exg": 0.4}))
    fm.add_many(tiles("stressed", 10, 10, 20, 16, indices={"exg": 0.1}))
    fm.add_many(tiles("stressed", 10, 10, 20, 16, indices={"exg": 0.2}))
    for _ in range(3):  # seen in three frames: 3 x 0.7 against one healthy 0.8 -> confidence 2.1 / 4
        fm.add_many(tiles("weeds", 40, 30, 44, 34, p=0.7))
    zones = {z.label: z for z in fm.zones()}
    assert set(zones) == {"stressed", "weeds"}
    s, w = zones["stressed"], zones["weeds"]
    assert s.area_m2 == 60.0 and w.area_m2 == 16.0
    lat, lon, _ = FRAME.to_geo(15.0, 13.0)
    assert distance_m(s.centroid_lat_deg, s.centroid_lon_deg, lat, lon) < 1.0
    assert s.centroid_enu == pytest.approx((15.0, 13.0))
    # each stressed cell saw 1 healthy (0.8) and 2 stressed (0.9) observations: confidence 1.8 / 3
    assert s.confidence == pytest.approx(0.6, abs=1e-3)
    assert s.mean_indices["exg"] == pytest.approx((0.4 + 0.1 + 0.2) / 3, abs=1e-3)
    assert Polygon(s.polygon_enu).area == pytest.approx(60.0)


def test_polygon_footprints_and_outside_observations():
    fm = FieldMap(FRAME, (0, 0, 20, 20), cell_m=2.0, min_cell_observations=1)
    tilted = GroundHealthObservation("weeds", 0.9, polygon_enu=((6.3, 2.4), (12.3, 8.4), (6.3, 14.4), (0.3, 8.4)))
    assert fm.add(tilted) > 0
    assert fm.add(GroundHealthObservation("weeds", 0.9, center_enu=(500, 500), size_m=(4, 4))) == 0
    (zone,) = fm.zones()
    assert zone.area_m2 == pytest.approx(Polygon(tilted.polygon_enu).area, rel=0.25)  # 72 m2 sampled at 2 m cell centres


def test_zone_keeps_its_id_while_growing_and_merging():
    """A patch seen growing keeps its zone id; two patches that grow into each other keep the older id and
    name the swallowed one."""
    fm = FieldMap(FRAME, (0, 0, 60, 40), cell_m=1.0, min_cell_observations=1)
    fm.add_many(tiles("weeds", 10, 10, 14, 14))
    (first,) = fm.zones()
    fm.add_many(tiles("weeds", 14, 10, 20, 14))
    (grown,) = fm.zones()
    assert grown.zone_id == first.zone_id and grown.area_m2 == 40.0
    fm.add_many(tiles("weeds", 30, 10, 34, 14))
    ids = sorted(z.zone_id for z in fm.zones())
    assert len(ids) == 2 and first.zone_id in ids
    other = next(i for i in ids if i != first.zone_id)
    fm.add_many(tiles("weeds", 20, 10, 30, 14))  # the gap fills
    (merged,) = fm.zones()
    assert merged.zone_id == first.zone_id and merged.merged_ids == (other,) and merged.area_m2 == 96.0


def test_low_confidence_and_other_classes_make_no_zone():
    fm = FieldMap(FRAME, (0, 0, 30, 30), cell_m=1.0, min_cell_confidence=0.5, min_cell_observations=1)
    fm.add_many(tiles("stressed", 0, 0, 10, 10, p=0.4))
    fm.add_many(tiles("soil", 20, 20, 30, 30, p=0.9))
    assert fm.zones() == []


def test_geojson_is_rfc7946_and_written_atomically(tmp_path):
    """Coordinates are lon, lat; rings are closed and counter-clockwise; the file is replaced whole."""
    fm = FieldMap.for_field(FRAME, [FRAME.to_geo(0, 0)[:2], FRAME.to_geo(50, 0)[:2], FRAME.to_geo(50, 40)[:2]],
                            margin_m=5, cell_m=1.5, min_cell_observations=1)
    fm.add_many(tiles("stressed", 10, 10, 19, 19, step=3.0, indices={"vari": 0.05}))
    path = tmp_path / "healthmap.geojson"
    fm.write_geojson(path)
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 1
    feat = doc["features"][0]
    ring = feat["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    lon, lat = ring[0]
    assert abs(lon - HOME[1]) < 0.01 and abs(lat - HOME[0]) < 0.01
    assert shape(feat["geometry"]).exterior.is_ccw
    props = feat["properties"]
    assert props["label"] == "stressed" and props["mean_indices"] == {"vari": 0.05}
    assert props["area_m2"] == pytest.approx(81.0, rel=0.15)
    assert [p.name for p in tmp_path.iterdir()] == ["healthmap.geojson"]  # no temporary file left behind


@pytest.mark.parametrize("kwargs, expected", [
    (dict(label="weeds", probability=1.5, center_enu=(0, 0), size_m=(1, 1)), "probability"),
    (dict(label="weeds", probability=0.5), "footprint"),
    (dict(label="weeds", probability=0.5, polygon_enu=((0, 0), (1, 1))), "polygon_enu"),
    (dict(label="weeds", probability=0.5, center_enu=(0, 0), size_m=(0, 1)), "size_m"),
    (dict(label="", probability=0.5, center_enu=(0, 0), size_m=(1, 1)), "label"),
    (dict(label="weeds", probability=0.5, center_enu=(0, 0), size_m=(1, 1), indices={"exg": float("nan")}),
     "indices"),
])
def test_bad_observations_say_what_was_expected(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        GroundHealthObservation(**kwargs)


def test_bad_grid():
    with pytest.raises(ValueError, match="cell_m"):
        FieldMap(FRAME, (0, 0, 10, 10), cell_m=0.0)
    with pytest.raises(ValueError, match="bounds_enu"):
        FieldMap(FRAME, (10, 0, 0, 10))
    with pytest.raises(ValueError, match="at most"):
        FieldMap(FRAME, (0, 0, 100_000, 100_000), cell_m=1.0, min_cell_observations=1)


def test_specks_and_single_sightings_make_no_zone_and_a_wrong_cell_does_not_split_a_patch():
    """A few cells seen once (e.g. at the survey's edge) and specks under min_zone_cells are not zones; one
    misclassified cell in the middle of a patch neither splits it nor leaves a hole."""
    fm = FieldMap(FRAME, (0, 0, 40, 40), cell_m=1.0, min_cell_observations=2, min_zone_cells=3)
    fm.add_many(tiles("weeds", 30, 30, 33, 31, step=1))            # 3 cells in a row seen once only
    for _ in range(2):
        fm.add_many(tiles("weeds", 2, 2, 4, 3, step=1))            # 2 cells: a speck
        fm.add_many(tiles("stressed", 10, 10, 17, 15, step=1))     # 7 x 5 patch ...
        fm.add(GroundHealthObservation("healthy", 0.99, center_enu=(13.5, 12.5), size_m=(1, 1)))
    fm.add(GroundHealthObservation("healthy", 0.99, center_enu=(13.5, 12.5), size_m=(1, 1)))  # ... with a bad cell
    (zone,) = fm.zones()
    assert zone.label == "stressed" and zone.area_m2 == 35.0 and zone.holes_enu == ()


def test_one_frame_s_wrong_tile_is_no_zone_until_another_frame_agrees():
    """The flight loop's tiles are ~8 x 8 m over 2 m cells: one tile wrongly called weeds in one frame covers
    16 cells whose pooled support is already that of two looks. It makes no zone; the next frame's look at
    the same ground decides: healthy outvotes it, weeds again makes it a zone."""
    def frame_look(label, shift):  # a frame's 8 m tile, placed with the next frame's jitter
        return GroundHealthObservation(label, 0.8, center_enu=(20.0 + shift, 20.0 - shift), size_m=(8.0, 8.0))

    fm = FieldMap(FRAME, (0, 0, 40, 40), cell_m=2.0, min_cell_observations=2)
    fm.add_many(tiles("healthy", 0, 0, 40, 40, step=8.0))     # the survey's first look at the whole field ...
    fm.add(frame_look("weeds", 0.0))                            # ... and one more, wrong, tile on top of it
    assert fm.zones() == []
    wrong_once = FieldMap(FRAME, (0, 0, 40, 40), cell_m=2.0, min_cell_observations=2)
    wrong_once.add(frame_look("weeds", 0.0))                    # seen by one frame only
    assert wrong_once.zones() == []
    wrong_once.add(frame_look("weeds", 0.7))                    # the next frame agrees
    (zone,) = wrong_once.zones()
    assert zone.label == "weeds" and 50.0 <= zone.area_m2 <= 80.0


def test_zones_called_as_the_flight_goes_equal_zones_made_once_at_the_end():
    """zones() reuses the outlines of zones whose cells did not change since its last call: a map asked after
    every frame ends with the same zones (outline, holes, centroid, confidence) as one asked once."""
    looks = (tiles("weeds", 4, 4, 12, 10, p=0.8) + tiles("stressed", 20, 20, 30, 34, p=0.7)
             + tiles("weeds", 10, 8, 16, 14, p=0.9) + tiles("stressed", 22, 18, 26, 20, p=0.6)
             + tiles("healthy", 24, 24, 26, 26, p=0.95))
    asked = FieldMap(FRAME, (0, 0, 40, 40), cell_m=1.0, min_cell_observations=1)
    once = FieldMap(FRAME, (0, 0, 40, 40), cell_m=1.0, min_cell_observations=1)
    for k in range(0, len(looks), 7):
        asked.add_many(looks[k:k + 7])
        asked.zones()
    once.add_many(looks)
    got = {(z.zone_id, z.polygon_enu, z.holes_enu, z.centroid_enu, z.confidence, z.area_m2) for z in asked.zones()}
    want = {(z.polygon_enu, z.holes_enu, z.centroid_enu, z.confidence, z.area_m2) for z in once.zones()}
    assert {g[1:] for g in got} == want and len(got) == len(want) == 2
