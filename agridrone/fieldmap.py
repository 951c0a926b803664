"""The plant-health map: ground observations accumulated on a grid, merged into zones, written as GeoJSON.

Input is a :class:`GroundHealthObservation` -- one health tile already placed on the ground in the
field's local ENU frame (projection from pixels happens upstream). Each observation adds its class
probability as evidence to every grid cell whose centre lies inside its footprint.

Classes are decided on evidence pooled over each cell's 3x3 neighbourhood (:meth:`FieldMap.classify`):
a cell's class is the class with most pooled evidence, its confidence that class's share of the pooled
evidence (zero where the mean probability of the verdicts for that class is under ``min_probability``). Zones are the 8-connected components of cells of a zone class (``stressed``, ``weeds`` by
default) observed at least once, with confidence >= ``min_cell_confidence`` and pooled support >=
``min_cell_observations``,
after a 3x3 morphological closing (a misclassified cell inside a patch neither splits it nor makes a
hole), dropping specks under ``min_zone_cells`` and components less than half of whose cells were
themselves observed ``min_cell_observations`` times (looks from different frames: one wrong tile seen
once is no zone, while a survey's overlap shows every point of a field two or more times). A zone's
reported confidence is the mean probability of its class over the observations of its cells (other
classes' observations counting zero); its ``looks`` is the median number of observations of its cells and
``last_look_ns`` the time of the newest, so that alerting can wait until a zone has been seen enough.

A zone keeps its id while it grows: a component that overlaps cells of an earlier zone takes that
zone's id (the oldest id when it swallowed several, the others are listed in ``merged_ids``), so
downstream alerting can update rather than duplicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from agridrone.geo import LocalFrame

DEFAULT_ZONE_LABELS = ("stressed", "weeds")
MAX_CELLS = 16_000_000  # 4 km x 4 km at 1 m: beyond this the field is not one map


_POOL_1D = np.array([1.0, 2.0, 1.0], np.float32)


def _pool(a: np.ndarray) -> np.ndarray:
    """3x3 neighbourhood sum with weights 1-2-1 x 1-2-1, scaled so that the centre cell counts 1."""
    return cv2.sepFilter2D(a.astype(np.float32), -1, _POOL_1D, _POOL_1D, borderType=cv2.BORDER_CONSTANT) / 4.0


@dataclass(frozen=True, slots=True)
class GroundHealthObservation:
    """One health verdict on the ground: a footprint in local ENU metres, a class, its probability, indices.

    Give either ``polygon_enu`` (3+ (east_m, north_m) vertices) or ``center_enu`` + ``size_m`` (an
    axis-aligned rectangle, width east x height north).
    """

    label: str
    probability: float
    ts_ns: int = 0
    polygon_enu: tuple[tuple[float, float], ...] = ()
    center_enu: tuple[float, float] | None = None
    size_m: tuple[float, float] | None = None
    indices: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"label: expected a non-empty class name, got {self.label!r}")
        if not isinstance(self.probability, (int, float, np.floating)) or not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError(f"probability: expected 0..1, got {self.probability!r}")
        if self.polygon_enu:
            pts = np.asarray(self.polygon_enu, dtype=float)
            if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
                raise ValueError(f"polygon_enu: expected 3 or more finite (east_m, north_m) pairs, got "
                                 f"{self.polygon_enu!r}")
            object.__setattr__(self, "polygon_enu", tuple((float(e), float(n)) for e, n in pts))
        elif self.center_enu is not None and self.size_m is not None:
            c = tuple(float(v) for v in self.center_enu)
            s = tuple(float(v) for v in self.size_m)
            if len(c) != 2 or len(s) != 2 or not all(map(math.isfinite, c + s)) or min(s) <= 0:
                raise ValueError(f"center_enu/size_m: expected (east_m, north_m) and a positive (width_m, height_m), "
                                 f"got {self.center_enu!r} and {self.size_m!r}")
            object.__setattr__(self, "center_enu", c)
            object.__setattr__(self, "size_m", s)
        else:
            raise ValueError("footprint: expected polygon_enu, or center_enu with size_m, got neither")
        for name, value in dict(self.indices).items():
            if not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
                raise ValueError(f"indices[{name!r}]: expected a finite number, got {value!r}")
        object.__setattr__(self, "indices", dict(self.indices))

    def footprint(self) -> Polygon:
        if self.polygon_enu:
            poly = Polygon(self.polygon_enu)
            return poly if poly.is_valid else shapely.make_valid(poly)
        (e, n), (w, h) = self.center_enu, self.size_m
        return shapely.box(e - w / 2, n - h / 2, e + w / 2, n + h / 2)


@dataclass(frozen=True, slots=True)
class Zone:
    """Connected cells of one zone class, with their statistics."""

    zone_id: str
    label: str
    cells: int
    area_m2: float
    polygon_enu: tuple[tuple[float, float], ...]             # exterior ring, closed, counter-clockwise
    polygon_latlon: tuple[tuple[float, float], ...]          # the same ring as (lat, lon)
    holes_enu: tuple[tuple[tuple[float, float], ...], ...]
    centroid_enu: tuple[float, float]
    centroid_lat_deg: float
    centroid_lon_deg: float
    confidence: float                                        # mean cell confidence
    mean_indices: dict[str, float]
    first_seen_ns: int
    updated_ns: int
    merged_ids: tuple[str, ...] = ()
    looks: float = 0.0                                       # median observations per cell (looks from frames)
    last_look_ns: int = 0                                    # newest observation of any of its cells


class FieldMap:
    """A ground grid of ``cell_m`` cells covering ``bounds_enu`` = (min_east, min_north, max_east, max_north)."""

    def __init__(self, frame: LocalFrame, bounds_enu: tuple[float, float, float, float], *, cell_m: float = 1.0,
                 zone_labels: Iterable[str] = DEFAULT_ZONE_LABELS, min_cell_confidence: float = 0.5,
                 min_zone_cells: int = 3, min_cell_observations: int = 2, min_probability: float = 0.45,
                 close_gaps: bool = True) -> None:
        if not 0.1 <= cell_m <= 10.0:
            raise ValueError(f"cell_m: expected 0.1..10 m (1-2 m is typical), got {cell_m}")
        e0, n0, e1, n1 = (float(v) for v in bounds_enu)
        if not (all(map(math.isfinite, (e0, n0, e1, n1))) and e1 > e0 and n1 > n0):
            raise ValueError(f"bounds_enu: expected finite (min_east, min_north, max_east, max_north) with max > min, "
                             f"got {bounds_enu}")
        self.cols = int(math.ceil((e1 - e0) / cell_m))
        self.rows = int(math.ceil((n1 - n0) / cell_m))
        if self.rows * self.cols > MAX_CELLS:
            raise ValueError(f"grid: expected at most {MAX_CELLS} cells, got {self.rows}x{self.cols} "
                             f"(a {e1 - e0:.0f} x {n1 - n0:.0f} m field at {cell_m} m)")
        if not 0.0 <= min_cell_confidence <= 1.0:
            raise ValueError(f"min_cell_confidence: expected 0..1, got {min_cell_confidence}")
        self.frame = frame
        self.cell_m = float(cell_m)
        self.origin_enu = (e0, n0)                      # south-west corner of cell (row 0, col 0)
        self.zone_labels = tuple(zone_labels)
        self.min_cell_confidence = float(min_cell_confidence)
        self.min_zone_cells = int(min_zone_cells)
        self.min_cell_observations = int(min_cell_observations)
        self.min_probability = float(min_probability)
        self.close_gaps = bool(close_gaps)
        shape = (self.rows, self.cols)
        self.counts = np.zeros(shape, np.int32)
        self.last_look_ns = np.zeros(shape, np.int64)  # newest observation time per cell
        self.evidence: dict[str, np.ndarray] = {}       # label -> sum of probabilities per cell
        self.label_counts: dict[str, np.ndarray] = {}   # label -> observations of that label per cell
        self._index_sum: dict[str, np.ndarray] = {}
        self._index_count: dict[str, np.ndarray] = {}
        self._zone_grid = np.zeros(shape, np.int32)     # persistent zone number per cell (0: none)
        self._zone_meta: dict[int, dict[str, Any]] = {}  # number -> label, first_seen_ns
        self._shapes: dict[tuple, tuple] = {}            # last zones() call: cells -> outline (_make_zone)
        self._next_zone = 1
        self.observations = 0
        self.last_ts_ns = 0

    @classmethod
    def for_field(cls, frame: LocalFrame, boundary_latlon: Iterable[tuple[float, float]], *, margin_m: float = 10.0,
                  **kwargs) -> "FieldMap":
        """A map covering a field boundary given as (lat, lon) vertices, plus ``margin_m`` all round."""
        pts = np.asarray(list(boundary_latlon), dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
            raise ValueError(f"boundary_latlon: expected 3 or more (lat, lon) pairs, got {pts.shape}")
        e, n, _ = frame.to_enu(pts[:, 0], pts[:, 1])
        return cls(frame, (float(e.min()) - margin_m, float(n.min()) - margin_m, float(e.max()) + margin_m,
                           float(n.max()) + margin_m), **kwargs)

    # -- accumulation ------------------------------------------------------------------------------------------------

    def _cells_in(self, geom) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the cells whose centre lies inside ``geom``."""
        e0, n0 = self.origin_enu
        minx, miny, maxx, maxy = geom.bounds
        c0 = max(0, int(math.floor((minx - e0) / self.cell_m - 0.5)))
        c1 = min(self.cols - 1, int(math.ceil((maxx - e0) / self.cell_m - 0.5)))
        r0 = max(0, int(math.floor((miny - n0) / self.cell_m - 0.5)))
        r1 = min(self.rows - 1, int(math.ceil((maxy - n0) / self.cell_m - 0.5)))
        if c1 < c0 or r1 < r0:
            return np.zeros(0, int), np.zeros(0, int)
        cc, rr = np.meshgrid(np.arange(c0, c1 + 1), np.arange(r0, r1 + 1))
        x = e0 + (cc + 0.5) * self.cell_m
        y = n0 + (rr + 0.5) * self.cell_m
        inside = shapely.contains_xy(geom, x, y)
        return rr[inside], cc[inside]

    def add(self, obs: GroundHealthObservation) -> int:
        """Add one observation; returns how many cells it touched (0 when it lies outside the map)."""
        rows, cols = self._cells_in(obs.footprint())
        self.observations += 1
        self.last_ts_ns = max(self.last_ts_ns, int(obs.ts_ns))
        if not len(rows):
            return 0
        self.counts[rows, cols] += 1
        self.last_look_ns[rows, cols] = np.maximum(self.last_look_ns[rows, cols], int(obs.ts_ns))
        ev = self.evidence.get(obs.label)
        if ev is None:
            ev = self.evidence[obs.label] = np.zeros((self.rows, self.cols), np.float32)
        ev[rows, cols] += float(obs.probability)
        lc = self.label_counts.get(obs.label)
        if lc is None:
            lc = self.label_counts[obs.label] = np.zeros((self.rows, self.cols), np.int32)
        lc[rows, cols] += 1
        for name, value in obs.indices.items():
            if name not in self._index_sum:
                self._index_sum[name] = np.zeros((self.rows, self.cols), np.float64)
                self._index_count[name] = np.zeros((self.rows, self.cols), np.int32)
            self._index_sum[name][rows, cols] += float(value)
            self._index_count[name][rows, cols] += 1
        return int(len(rows))

    def add_many(self, observations: Iterable[GroundHealthObservation]) -> int:
        return sum(self.add(o) for o in observations)

    def mean_index(self, name: str) -> np.ndarray:
        """Per-cell mean of a vegetation index (NaN where never observed)."""
        if name not in self._index_sum:
            return np.full((self.rows, self.cols), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._index_count[name] > 0, self._index_sum[name] / self._index_count[name], np.nan)

    def classify(self, smooth: bool = True) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(labels, class index per cell (-1 unobserved), confidence per cell, support per cell).

        The confidence is the winning class's share of all the probability mass the cell received.

        With ``smooth`` every cell's evidence is pooled with its neighbours' (weights 1-2-1 in each direction,
        the cell itself counting 1): an isolated wrong verdict is outvoted, a cell no tile centre fell on takes
        its neighbours' class, and a uniformly observed rectangle keeps its exact shape. ``support`` is the pooled
        number of observations (a cell seen once among neighbours seen once: 4).
        """
        shape = (self.rows, self.cols)
        labels = sorted(self.evidence)
        if not labels:
            return labels, np.full(shape, -1, np.int32), np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        pool = _pool if smooth else (lambda a: a.astype(np.float32))
        stack = np.stack([pool(self.evidence[k]) for k in labels])
        support = pool(self.counts)
        best = np.argmax(stack, axis=0).astype(np.int32)
        total = stack.sum(axis=0)
        top = np.take_along_axis(stack, best[None], 0)[0]
        top_n = np.take_along_axis(np.stack([pool(self.label_counts[k]) for k in labels]), best[None], 0)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(total > 0, top / total, 0.0)
            # verdicts that were unsure to begin with (the class's mean probability under min_probability) are
            # no evidence of anything, however unanimous
            conf = np.where(top_n > 0, np.where(top / top_n >= self.min_probability, conf, 0.0), 0.0)
        best[support <= 1e-6] = -1
        return labels, best, conf.astype(np.float32), support

    # -- zones -------------------------------------------------------------------------------------------------------

    def zones(self, now_ns: int | None = None) -> list[Zone]:
        """The current zones, with ids that persist across calls while a zone grows or merges."""
        now_ns = self.last_ts_ns if now_ns is None else int(now_ns)
        labels, best, conf, support = self.classify()
        new_grid = np.zeros_like(self._zone_grid)
        out: list[Zone] = []
        shapes: dict[tuple, tuple] = {}   # this call's zone outlines, reused by the next call where unchanged
        for label in self.zone_labels:
            if label not in labels:
                continue
            mask = ((best == labels.index(label)) & (conf >= self.min_cell_confidence)
                    & (support >= self.min_cell_observations - 1e-6) & (self.counts > 0)).astype(np.uint8)
            with np.errstate(invalid="ignore", divide="ignore"):  # the zone's own statistics: raw, not pooled
                raw_conf = np.where(self.counts > 0, self.evidence[label] / self.counts, 0.0)
            if self.close_gaps:  # a misclassified cell inside a patch must not split it in two
                padded = cv2.copyMakeBorder(mask, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0)
                mask = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))[2:-2, 2:-2]
            n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for k in range(1, n):
                x, y, w, h, ncells = (int(v) for v in stats[k])
                if ncells < self.min_zone_cells:
                    continue
                box = (slice(y, y + h), slice(x, x + w))    # the component's cells: sub[...] inside box
                sub = comp[box] == k
                if np.mean(self.counts[box][sub] >= self.min_cell_observations) < 0.5:
                    continue   # mostly a single look: wait for the next frame to confirm it
                previous = np.unique(self._zone_grid[box][sub])
                previous = [int(p) for p in previous if p and self._zone_meta[int(p)]["label"] == label]
                if previous:
                    number = min(previous)
                    merged = tuple(self._zone_name(p) for p in previous if p != number)
                else:
                    number = self._next_zone
                    self._next_zone += 1
                    self._zone_meta[number] = {"label": label, "first_seen_ns": now_ns}
                    merged = ()
                new_grid[box][sub] = number
                out.append(self._make_zone(number, label, box, sub, raw_conf, now_ns, merged, shapes))
        self._zone_grid = new_grid
        self._shapes = shapes
        return out

    def _zone_name(self, number: int) -> str:
        return f"{self._zone_meta[number]['label']}-{number}"

    def _outline(self, box: tuple[slice, slice], sub: np.ndarray) -> tuple:
        """(polygon_enu, polygon_latlon, holes_enu, centroid_enu, centroid lat, lon) of a component's cells."""
        rr, cc = np.nonzero(sub)
        rr, cc = rr + box[0].start, cc + box[1].start
        e0, n0 = self.origin_enu
        m = self.cell_m
        boxes = shapely.box(e0 + cc * m, n0 + rr * m, e0 + (cc + 1) * m, n0 + (rr + 1) * m)
        geom = shapely.union_all(boxes)
        if geom.geom_type != "Polygon":  # 8-connected diagonal touches give a MultiPolygon: hull of each join
            geom = shapely.buffer(geom, m * 1e-3, join_style="mitre")
            if geom.geom_type != "Polygon":
                geom = max(geom.geoms, key=lambda g: g.area)
        geom = orient(shapely.simplify(geom, 0.0), 1.0)  # RFC 7946: exterior counter-clockwise
        cx, cy = geom.centroid.x, geom.centroid.y
        lat, lon, _ = self.frame.to_geo(cx, cy, 0.0)
        ring = np.asarray(geom.exterior.coords, dtype=float)
        rlat, rlon, _ = self.frame.to_geo(ring[:, 0], ring[:, 1], np.zeros(len(ring)))
        return (tuple((round(x, 3), round(y, 3)) for x, y in geom.exterior.coords),
                tuple((round(float(a), 8), round(float(b), 8)) for a, b in zip(rlat, rlon)),
                tuple(tuple((round(x, 3), round(y, 3)) for x, y in ring.coords) for ring in geom.interiors),
                (round(cx, 3), round(cy, 3)), float(lat), float(lon))

    def _make_zone(self, number: int, label: str, box: tuple[slice, slice], sub: np.ndarray, conf: np.ndarray,
                   now_ns: int, merged: tuple[str, ...], shapes: dict) -> Zone:
        # the outline (a union of cell squares, the costly part) only changes when the cells do: over a
        # flight most zones are the same from one call to the next, and a field can hold hundreds
        key = (box[0].start, box[1].start, sub.shape, np.packbits(sub).tobytes())
        outline = shapes[key] = self._shapes.get(key) or self._outline(box, sub)
        polygon_enu, polygon_latlon, holes_enu, centroid_enu, lat, lon = outline
        m = self.cell_m
        ncells = int(sub.sum())
        weights = self.counts[box][sub].astype(np.float64)
        if weights.sum() == 0:
            weights = np.ones_like(weights)
        mean_indices: dict[str, float] = {}
        for name in self._index_sum:
            s = self._index_sum[name][box][sub].sum()
            c = self._index_count[name][box][sub].sum()
            if c:
                mean_indices[name] = round(float(s / c), 4)
        return Zone(
            zone_id=self._zone_name(number),
            label=label,
            cells=ncells,
            area_m2=round(float(ncells * m * m), 3),
            polygon_enu=polygon_enu,
            polygon_latlon=polygon_latlon,
            holes_enu=holes_enu,
            centroid_enu=centroid_enu,
            centroid_lat_deg=lat,
            centroid_lon_deg=lon,
            confidence=round(float(np.average(conf[box][sub], weights=weights)), 4),
            mean_indices=mean_indices,
            first_seen_ns=int(self._zone_meta[number]["first_seen_ns"]),
            updated_ns=now_ns,
            merged_ids=merged,
            looks=float(np.median(self.counts[box][sub])),
            last_look_ns=int(self.last_look_ns[box][sub].max()),
        )

    # -- output ------------------------------------------------------------------------------------------------------

    def _ring_lonlat(self, ring: tuple[tuple[float, float], ...]) -> list[list[float]]:
        pts = np.asarray(ring, dtype=float)
        lat, lon, _ = self.frame.to_geo(pts[:, 0], pts[:, 1], np.zeros(len(pts)))
        coords = [[round(float(a), 8), round(float(b), 8)] for a, b in zip(lon, lat)]  # RFC 7946: lon, lat
        coords[-1] = coords[0]
        return coords

    def zone_feature(self, zone: Zone) -> dict[str, Any]:
        rings = [self._ring_lonlat(zone.polygon_enu)] + [self._ring_lonlat(h) for h in zone.holes_enu]
        return {
            "type": "Feature",
            "id": zone.zone_id,
            "geometry": {"type": "Polygon", "coordinates": rings},
            "properties": {
                "zone_id": zone.zone_id, "label": zone.label, "area_m2": zone.area_m2, "cells": zone.cells,
                "cell_m": self.cell_m, "confidence": zone.confidence, "mean_indices": zone.mean_indices,
                "looks": zone.looks,
                "centroid_lat_deg": round(zone.centroid_lat_deg, 8),
                "centroid_lon_deg": round(zone.centroid_lon_deg, 8),
                "merged_ids": list(zone.merged_ids),
            },
        }

    def to_geojson(self, zones: list[Zone] | None = None) -> dict[str, Any]:
        zones = self.zones() if zones is None else zones
        return {
            "type": "FeatureCollection",
            "features": [self.zone_feature(z) for z in zones],
            "agridrone": {  # foreign member (RFC 7946 section 6.1): how the map was made
                "cell_m": self.cell_m, "grid_rows": self.rows, "grid_cols": self.cols,
                "observations": self.observations, "observed_cells": int((self.counts > 0).sum()),
                "origin_lat_deg": self.frame.origin_lat_deg, "origin_lon_deg": self.frame.origin_lon_deg,
            },
        }

    def write_geojson(self, path, zones: list[Zone] | None = None) -> None:
        """Write the map atomically (temporary file + ``os.replace``): safe to call after every update."""
        from agridrone.flightlog import atomic_write_json

        atomic_write_json(path, self.to_geojson(zones))
