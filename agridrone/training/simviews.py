"""Health tiles seen through the simulated camera, over random fields made in memory.

The training renderer (:func:`agridrone.training.synth.health_tiles`) paints square patches of ground
with their masks. A drone's classifier sees something else: a whole frame from survey altitude, cut
into the grid the flight loop uses, through a camera's tone curve, noise and perspective, with patch
edges, row directions and crops it was not drawn with. This module makes that second kind of data
with the project's other renderer, the simulated camera (:class:`agridrone.sim.camera.SimCamera`),
so the classifier learns from two independent renderers (domain randomisation) rather than the
quirks of one.

Each world is random (seeded): a field polygon of 150-450 m, a crop drawn from the simulated camera's
crop looks (with its own colours), 4-9 stressed / weed / bare-soil blobs, a camera (three sensor/lens
pairs), and four frames from 25-90 m, over a patch of the class that is shortest of tiles so far (or
anywhere in the field), with random heading and a few degrees of roll and pitch (a vehicle in flight). Frames are
cut into ``rows`` x ``cols`` tiles like the loop's; a tile is labelled by the polygons under its
ground footprint: a patch kind where one covers >= 60 % of it, ``healthy`` inside the field touching
no patch, otherwise unused (as :func:`agridrone.training.synth.health_label` leaves ambiguous tiles out).
No world of ``sitl/worlds`` is used: those are the flight tests' ground truth.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from agridrone.training import HEALTH_CLASSES

# about as many fields of each of the simulated camera's crop looks (closed canopy, wide rows, vines,
# narrow rows, other)
CROPS = ("winter wheat", "spring barley", "rye", "maize", "sunflower", "sorghum", "grapevine", "hops", "orchard",
         "sugar beet", "potato", "soybean", "clover", "lupin")
# (sensor width, height mm, focal length mm): 1" 20 MP, a 1/2.3" action camera, a multispectral band
CAMERAS = ((13.2, 8.8, 8.8), (6.17, 4.55, 4.5), (4.8, 3.6, 5.4))
KIND_INDEX = {"stressed": 1, "weeds": 2, "bare_soil": 3}


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """An irregular closed blob (ENU metres) of mean radius ``r``."""
    k = 14
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * (0.7 + 0.6 * rng.random(k))
    rad = 0.5 * rad + 0.25 * (np.roll(rad, 1) + np.roll(rad, -1))     # smooth the outline
    return np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)])


def random_world(seed: int, index: int):
    """(SimCamera, field polygon ENU, [(kind, polygon ENU)]) of random world ``index``."""
    from shapely.geometry import Polygon

    from agridrone.geo import LocalFrame
    from agridrone.mission.model import Camera, Mission
    from agridrone.sim.camera import SimCamera
    from agridrone.sim.world import Patch, World

    rng = np.random.default_rng([seed, index, 23])
    w, h = rng.uniform(150, 450), rng.uniform(150, 450)
    ang = rng.uniform(0, np.pi)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    if rng.random() < 0.4:  # an L or a cut corner
        cut = rng.uniform(0.3, 0.6)
        corners = np.array([[0, 0], [w, 0], [w, h * cut], [w * cut, h * cut], [w * cut, h], [0, h]], float)
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    field_xy = corners @ rot.T
    field = Polygon(field_xy)
    frame = LocalFrame(float(rng.uniform(35, 55)), float(rng.uniform(-5, 25)), 200.0)
    inner = field.buffer(-25)
    patches = []
    for _ in range(int(rng.integers(4, 10))):
        kind = str(rng.choice(["stressed", "weeds", "bare_soil"], p=[0.4, 0.4, 0.2]))
        x0, y0, x1, y1 = inner.bounds
        for _try in range(20):
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            poly = Polygon(_blob(rng, cx, cy, float(rng.uniform(8, 25)))).intersection(inner)
            if poly.geom_type == "Polygon" and poly.area > 100 and not any(poly.intersects(p) for _, p in patches):
                patches.append((kind, poly))
                break

    def latlon(xy):
        lat, lon, _ = frame.to_geo(np.asarray(xy)[:, 0], np.asarray(xy)[:, 1], np.zeros(len(xy)))
        return tuple((float(a), float(b)) for a, b in zip(lat, lon))

    sw, sh, f = CAMERAS[int(rng.integers(len(CAMERAS)))]
    mission = Mission(source="<training>", name=f"train-{seed}-{index}", crop=str(rng.choice(CROPS)),
                      boundary=latlon(field_xy), home_lat_deg=frame.origin_lat_deg, home_lon_deg=frame.origin_lon_deg,
                      home_ground_alt_amsl_m=200.0, altitude_agl_m=60.0, camera=Camera(sw, sh, f, 640, 480))
    world = World(name=f"train-{seed}-{index}", source="<training>", mission_path=Path("<training>"),
                  ground_alt_amsl_m=200.0, obstacles=(),
                  patches=tuple(Patch(k, latlon(np.asarray(p.exterior.coords)[:-1]), p.area, None)
                                for k, p in patches))
    cam = SimCamera(world, mission=mission, seed=index, cache_mb=32.0)
    return cam, field, patches


def tile_footprint(cam, pose, r: int, q: int, rows: int, cols: int):
    """The ground under grid tile (row r, column q) of a ``rows`` x ``cols`` frame of ``cam`` at ``pose``:
    a shapely polygon in the world's ENU metres, or None where it is not a proper one (sky, degenerate)."""
    from shapely.geometry import Polygon

    from agridrone.mission.geometry import to_enu

    w, h = cam.size_wh
    tw, th = w // cols, h // rows
    u = np.array([q * tw, (q + 1) * tw, (q + 1) * tw, q * tw], float)
    v = np.array([r * th, r * th, (r + 1) * th, (r + 1) * th], float)
    lat, lon = cam.projector.pixel_to_ground(pose, u, v, cam.ground_alt_m)
    cell = Polygon(to_enu(cam.frame, np.column_stack([lat, lon])))
    return cell if cell.is_valid and cell.area > 0 else None


def label_tile(cell, field, patches) -> int | None:
    """The class of a tile whose ground footprint is ``cell``; None where it is ambiguous."""
    for kind, p in patches:
        if cell.intersection(p).area >= 0.6 * cell.area:
            return KIND_INDEX[kind]
    if field.contains(cell) and not any(cell.intersects(p) for _, p in patches):
        return 0
    return None


def sim_health_tiles(seed: int, per_class: int, tile_px: int = 64, rows: int = 6, cols: int = 8,
                     views_per_world: int = 4, per_view: int = 6, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Balanced tiles through the simulated camera: (N, tile_px, tile_px, 3) uint8 RGB, (N,) labels."""
    from shapely.geometry import Point

    from agridrone.types import Pose

    buckets: list[list[np.ndarray]] = [[] for _ in HEALTH_CLASSES]
    index = 0
    while min(len(b) for b in buckets) < per_class and index < max(50, per_class):
        cam, field, patches = random_world(seed, index)
        rng = np.random.default_rng([seed, index, 29])
        for v in range(views_per_world):
            # over a patch of the class that has the fewest tiles so far, or anywhere when that is healthy
            need = [k for k, _ in sorted(enumerate(len(b) for b in buckets), key=lambda kv: (kv[1], rng.random()))]
            kinds = [p for p in patches if KIND_INDEX[p[0]] == need[0]] or \
                    [p for p in patches if KIND_INDEX[p[0]] == need[1]]
            if need[0] != 0 and kinds:
                c = kinds[int(rng.integers(len(kinds)))][1].centroid
                e, n = c.x + rng.uniform(-20, 20), c.y + rng.uniform(-20, 20)
            else:
                x0, y0, x1, y1 = field.bounds
                e, n = rng.uniform(x0, x1), rng.uniform(y0, y1)
                if not field.contains(Point(e, n)):
                    continue
            height = float(rng.uniform(25, 90))
            lat, lon, _ = cam.frame.to_geo(e, n, 0.0)
            pose = Pose(int(1e9 * (v + 1)), float(lat), float(lon), cam.mission.home_ground_alt_amsl_m + height,
                        height, float(rng.normal(0, 4)), float(rng.normal(0, 4)), float(rng.uniform(0, 360)))
            img = cam.render(pose).image
            W, H = cam.size_wh
            tw, th = W // cols, H // rows
            taken = [0] * len(HEALTH_CLASSES)   # at most per_view of a class from one frame: variety
            for cell_index in rng.permutation(rows * cols):
                r, q = divmod(int(cell_index), cols)
                cell = tile_footprint(cam, pose, r, q, rows, cols)
                lab = label_tile(cell, field, patches) if cell is not None else None
                if lab is None or len(buckets[lab]) >= per_class or taken[lab] >= per_view:
                    continue
                taken[lab] += 1
                tile = img[r * th:(r + 1) * th, q * tw:(q + 1) * tw]
                tile = cv2.resize(tile, (tile_px, tile_px), interpolation=cv2.INTER_AREA)
                buckets[lab].append(cv2.cvtColor(tile, cv2.COLOR_BGR2RGB))
        index += 1
        if progress:
            progress(1)
    images = (np.stack([t for b in buckets for t in b]) if any(buckets)
              else np.zeros((0, tile_px, tile_px, 3), np.uint8))
    labels = np.array([k for k, b in enumerate(buckets) for _ in b], np.int32)
    order = np.random.default_rng([seed, 98]).permutation(len(labels))
    return images[order], labels[order]
