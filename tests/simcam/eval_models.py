"""Do the shipped models see the simulated camera's world? (a script: ``.venv/bin/python tests/simcam/eval_models.py``)

Detector: for every obstacle of every world, ``--views`` frames from the mission's survey altitude
(and ``--low-alt-m``), the vehicle placed at random so the obstacle lands anywhere in the frame,
random heading. An obstacle counts as found when a detection of its class overlaps its ground-truth
box (``SimCamera.ground_truth_in_view``, the painted pixels) with IoU >= ``--iou``.

Health classifier: nadir frames over every patch, cut into the grid the drone uses (6 x 8 tiles of a
640x480 frame); a tile is labelled by the world's polygons (>= 60 % inside one patch kind; healthy:
inside the field, touching no patch) and classified in one batch.
"""

from __future__ import annotations

import argparse
import glob
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from agridrone.sim.camera import SimCamera
from agridrone.types import Pose

REPO = Path(__file__).resolve().parents[2]


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pose_at(cam: SimCamera, e: float, n: float, height_m: float, yaw_deg: float, ts_ns: int) -> Pose:
    lat, lon, _ = cam.frame.to_geo(e, n, 0.0)
    rel = cam.ground_alt_m + height_m
    return Pose(ts_ns, lat, lon, cam.mission.home_ground_alt_amsl_m + rel, rel, 0.0, 0.0, yaw_deg)


def eval_detector(model: Path, worlds: list[str], views: int, alts: list[float | None], iou_min: float) -> None:
    from agridrone.perception.detector import Detector

    det = Detector(model, conf_threshold=0.25)
    rng = np.random.default_rng(0)
    for alt in alts:
        hits, total, any_hits, fps, frames = defaultdict(int), defaultdict(int), defaultdict(int), 0, 0
        sizes = defaultdict(list)
        for w in worlds:
            cam = SimCamera(w)
            height = cam.mission.altitude_agl_m if alt is None else alt
            half_w = height * cam.camera.cx_px / cam.camera.fx_px * 0.8
            half_h = height * cam.camera.cy_px / cam.camera.fy_px * 0.8
            for i, (e, n) in enumerate(cam._obs_xy):
                for k in range(views):
                    yaw = float(rng.uniform(0, 360))
                    de, dn = rng.uniform(-half_w, half_w), rng.uniform(-half_h, half_h)
                    pose = pose_at(cam, e + de, n + dn, height, yaw, int(1e9 * (k + 1)))
                    truth = [g for g in cam.ground_truth_in_view(pose) if g.kind == "obstacle"]
                    mine = [g for g in truth if g.index == i]
                    if not mine:
                        continue
                    g = mine[0]
                    d = det.detect(cam.render(pose).image)
                    frames += 1
                    names = [det.label(int(c)) for c in d.class_ids]
                    total[g.cls] += 1
                    sizes[g.cls].append(max(g.box_xyxy[2] - g.box_xyxy[0], g.box_xyxy[3] - g.box_xyxy[1]))
                    ok = [iou(b, g.box_xyxy) >= iou_min for b in d.boxes_xyxy]
                    hits[g.cls] += any(o and nm == g.cls for o, nm in zip(ok, names))
                    any_hits[g.cls] += any(ok)
                    matched = [any(iou(b, t.box_xyxy) >= iou_min for t in truth) for b in d.boxes_xyxy]
                    fps += int(len(matched) - sum(matched))
        label = "survey altitude" if alt is None else f"{alt:g} m"
        all_t, all_h = sum(total.values()), sum(hits.values())
        print(f"detector {model.name} at {label}: recall {all_h}/{all_t} = {all_h / max(all_t, 1):.2f} "
              f"(class right, IoU >= {iou_min}); {fps} unmatched detections in {frames} frames")
        for c in sorted(total):
            print(f"  {c:9s} {hits[c]:3d}/{total[c]:3d} (any class {any_hits[c]:3d}); object size in the frame "
                  f"median {np.median(sizes[c]):.0f} px (of 640)")


def eval_health(model: Path, worlds: list[str], views: int, rows: int = 6, cols: int = 8) -> None:
    from shapely.geometry import Polygon

    from agridrone.mission.geometry import to_enu
    from agridrone.perception.health import HealthClassifier
    from agridrone.training import HEALTH_CLASSES
    from agridrone.training.simviews import label_tile, tile_footprint

    clf = HealthClassifier(model)
    rng = np.random.default_rng(1)
    conf = defaultdict(lambda: defaultdict(int))
    per_world = defaultdict(lambda: [0, 0])
    for w in worlds:
        cam = SimCamera(w)
        field = Polygon(to_enu(cam.frame, cam.mission.boundary))
        patches = [(k, Polygon(xy)) for k, xy in cam._patches]
        height = cam.mission.altitude_agl_m
        for kind, poly in patches:
            c = poly.centroid
            for v in range(views):
                pose = pose_at(cam, c.x + rng.uniform(-10, 10), c.y + rng.uniform(-10, 10), height,
                               float(rng.uniform(0, 360)), int(1e9 * (v + 1)))
                img = cam.render(pose).image
                W, H = cam.size_wh
                tw, th = W // cols, H // rows
                tiles, labels = [], []
                for r in range(rows):
                    for q in range(cols):
                        cell = tile_footprint(cam, pose, r, q, rows, cols)
                        k = label_tile(cell, field, patches) if cell is not None else None
                        if k is None:
                            continue
                        lab = HEALTH_CLASSES[k]
                        tiles.append(img[r * th:(r + 1) * th, q * tw:(q + 1) * tw])
                        labels.append(lab)
                if not tiles:
                    continue
                batch = np.stack([cv2.resize(t, (clf.tile_px, clf.tile_px), interpolation=cv2.INTER_AREA)
                                  for t in tiles])
                pred = clf.probabilities(batch).argmax(axis=1)
                for lab, p in zip(labels, pred):
                    conf[lab][clf.labels[int(p)]] += 1
                    per_world[(cam.world.name, lab)][0] += clf.labels[int(p)] == lab
                    per_world[(cam.world.name, lab)][1] += 1
    print(f"health classifier {model.name} on 80x80 px grid tiles at survey altitude:")
    for lab in sorted(conf):
        n = sum(conf[lab].values())
        print(f"  {lab:9s} {conf[lab].get(lab, 0):3d}/{n:3d} right; predicted: {dict(conf[lab])}")
    print("  per world: " + "; ".join(f"{w} {lab} {a}/{b}" for (w, lab), (a, b) in sorted(per_world.items())
                                      if lab != "healthy"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", type=Path, default=REPO / "models" / "detector.tflite")
    ap.add_argument("--health", type=Path, default=REPO / "models" / "health.tflite")
    ap.add_argument("--views", type=int, default=5)
    ap.add_argument("--low-alt-m", type=float, default=25.0)
    ap.add_argument("--iou", type=float, default=0.3)
    args = ap.parse_args()
    worlds = sorted(glob.glob(str(REPO / "sitl" / "worlds" / "*.yaml")))
    if args.detector.is_file():
        eval_detector(args.detector, worlds, args.views, [None, args.low_alt_m], args.iou)
    else:
        print(f"no detector at {args.detector}")
    if args.health.is_file():
        eval_health(args.health, worlds, args.views)
    else:
        print(f"no health classifier at {args.health}")


if __name__ == "__main__":
    main()
