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
# version of what sim_detection_tiles makes (dataset folders and checkpoints are keyed by it): 2 centres
# three times as many frames over poles, which version 1 left at 3 % of the boxes
DETECTION_TILES_VERSION = 2
# how much more often a frame is centred over an obstacle of a class than over one of the others
CENTRE_WEIGHTS = {"pole": 3.0}


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """An irregular closed blob (ENU metres) of mean radius ``r``."""
    k = 14
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * (0.7 + 0.6 * rng.random(k))
    rad = 0.5 * rad + 0.25 * (np.roll(rad, 1) + np.roll(rad, -1))     # smooth the outline
    return np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)])


# obstacle classes of the detector as the worlds place them: (weight, group size range, radius m, height m)
OBSTACLES = {"tree": (0.2, (1, 4), (1.5, 6.0), (5.0, 20.0)),
             "person": (0.2, (1, 3), (0.3, 0.5), (1.5, 1.95)),
             "animal": (0.2, (1, 7), (0.4, 1.2), (0.8, 1.7)),
             "vehicle": (0.16, (1, 2), (1.2, 4.5), (1.6, 4.0)),
             "pole": (0.14, (1, 4), (0.15, 0.4), (6.0, 15.0)),
             "building": (0.1, (1, 2), (3.0, 15.0), (3.0, 10.0))}


def _random_obstacles(seed: int, index: int, field, frame) -> tuple:
    """Groups of obstacles in and around ``field`` (ENU metres), as :class:`WorldObstacle`."""
    from shapely.geometry import Point

    from agridrone.sim.world import WorldObstacle

    rng = np.random.default_rng([seed, index, 31])   # its own stream: the fields and patches stay as they were
    names = list(OBSTACLES)
    weights = np.array([OBSTACLES[n][0] for n in names])
    area = field.buffer(30)
    x0, y0, x1, y1 = area.bounds
    out, placed = [], []
    for _ in range(int(rng.integers(4, 12))):
        cls = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        _, (n0, n1), (r0, r1), (h0, h1) = OBSTACLES[cls]
        for _try in range(20):
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if area.contains(Point(cx, cy)):
                break
        heading = rng.uniform(0, 2 * np.pi)
        spacing = {"pole": rng.uniform(25, 50), "tree": rng.uniform(6, 15)}.get(cls)
        for k in range(int(rng.integers(n0, n1 + 1))):
            if spacing is not None:   # poles along a line, trees in a row or hedge
                e, n = cx + k * spacing * math.cos(heading), cy + k * spacing * math.sin(heading)
            else:                     # a herd, a group of people, vehicles parked together
                e, n = cx + rng.normal(0, 6), cy + rng.normal(0, 6)
            r = float(rng.uniform(r0, r1))
            # things do not stand inside each other (tree crowns may touch)
            if any(math.hypot(e - pe, n - pn) < (0.8 if cls == pc == "tree" else 1.0) * (r + pr) + 0.3
                   for pc, pe, pn, pr in placed):
                continue
            placed.append((cls, e, n, r))
            lat, lon, _ = frame.to_geo(e, n, 0.0)
            out.append(WorldObstacle(cls, float(lat), float(lon), r, float(rng.uniform(h0, h1)), None))
    return tuple(out)


def random_world(seed: int, index: int, obstacles: bool = False):
    """(SimCamera, field polygon ENU, [(kind, polygon ENU)]) of random world ``index``; with
    ``obstacles`` also random groups of the detector's classes in and around the field."""
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
                  ground_alt_amsl_m=200.0,
                  obstacles=_random_obstacles(seed, index, field, frame) if obstacles else (),
                  patches=tuple(Patch(k, latlon(np.asarray(p.exterior.coords)[:-1]), p.area, None)
                                for k, p in patches))
    kw = {}
    if obstacles:   # shadows of every length and direction (the health tiles keep the camera's default sun)
        sun = np.random.default_rng([seed, index, 37])
        kw = dict(sun_azimuth_deg=float(sun.uniform(0, 360)), sun_elevation_deg=float(sun.uniform(25, 75)))
    cam = SimCamera(world, mission=mission, seed=index, cache_mb=32.0, **kw)
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


def sim_detection_tiles(seed: int, count: int, side: int = 320, views_per_world: int = 8,
                        empty_fraction: float = 0.1, progress=None):
    """``count`` detector inputs through the simulated camera: frames over random worlds with obstacles,
    cut into ``side`` x ``side`` tiles at frame resolution as the flight loop does
    (:func:`agridrone.perception.tiling.tile_grid`). Returns a list of (RGB uint8 tile, boxes (n, 4)
    xyxy px float32, classes (n,) int32 indices into ``DETECTOR_CLASSES``).

    Frames are taken over an obstacle of a class drawn from the world's (poles three times as often as
    each other class, :data:`CENTRE_WEIGHTS`), from 10-90 m (three
    quarters from survey heights, 40-90 m; the rest low, as in take-off, landing or a low pass), heading
    random, a few degrees of roll and pitch. A box is the obstacle as the camera drew it (shadow
    excluded, as :meth:`SimCamera.ground_truth_in_view` gives it) clipped to the tile; kept where at
    least 35 % of it is inside. Tiles with no box are kept as negatives up to ``empty_fraction`` of the
    output. ``progress(1)`` is called for every tile."""
    from agridrone.mission.geometry import to_enu
    from agridrone.perception.tiling import tile_grid
    from agridrone.training import DETECTOR_CLASSES
    from agridrone.training.augment import clip_boxes
    from agridrone.types import Pose

    out: list = []
    index, empties = 0, 0
    while len(out) < count and index < max(50, count):
        cam, field, _ = random_world(seed, index, obstacles=True)
        rng = np.random.default_rng([seed, index, 41])
        obs = cam.world.obstacles
        if not obs:
            index += 1
            continue
        en = to_enu(cam.frame, [(o.lat_deg, o.lon_deg) for o in obs])
        present = sorted({o.cls for o in obs})
        W, H = cam.size_wh
        for v in range(views_per_world):
            if len(out) >= count:
                break
            height = float(rng.uniform(40, 90) if rng.random() < 0.75 else rng.uniform(10, 40))
            # over an obstacle of a class drawn from those in this world, evenly but for poles (herds do not
            # crowd them out, and a thin pole seen from above is the hardest thing to learn)
            wts = np.array([CENTRE_WEIGHTS.get(c, 1.0) for c in present])
            cls = present[int(rng.choice(len(present), p=wts / wts.sum()))]
            of_cls = [i for i, o in enumerate(obs) if o.cls == cls]
            e0, n0 = en[of_cls[int(rng.integers(len(of_cls)))]]
            reach = 0.5 * height      # the obstacle anywhere in the frame (about half its ground width)
            e, n = e0 + rng.uniform(-reach, reach), n0 + rng.uniform(-reach, reach)
            lat, lon, _ = cam.frame.to_geo(e, n, 0.0)
            pose = Pose(int(1e9 * (v + 1)), float(lat), float(lon), cam.mission.home_ground_alt_amsl_m + height,
                        height, float(rng.normal(0, 4)), float(rng.normal(0, 4)), float(rng.uniform(0, 360)))
            img = cv2.cvtColor(cam.render(pose).image, cv2.COLOR_BGR2RGB)
            truth = [g for g in cam.ground_truth_in_view(pose) if g.kind == "obstacle"]
            boxes = np.array([g.box_xyxy for g in truth], np.float32).reshape(-1, 4)
            classes = np.array([DETECTOR_CLASSES.index(g.cls) for g in truth], np.int32)
            for x0, y0, x1, y1 in tile_grid(W, H, side):
                b, keep = clip_boxes(boxes - np.array([x0, y0, x0, y0], np.float32), x1 - x0, y1 - y0, 0.35)
                if not keep.any():
                    if empties >= empty_fraction * len(out):
                        continue
                    empties += 1
                out.append((np.ascontiguousarray(img[y0:y1, x0:x1]), b, classes[keep]))
                if progress:
                    progress(1)
                if len(out) >= count:
                    break
        index += 1
    return out
