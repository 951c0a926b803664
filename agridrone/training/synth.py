"""Procedural aerial scenes, deterministic by seed: the embedded default training data.

``render_scene(seed, index)`` draws one image (nadir or forward-oblique) of a field with crop rows,
soil, stressed patches and weeds (with masks) and obstacles (with boxes), then applies camera
effects (exposure, white balance, blur, noise, vignetting, haze). Image ``index`` of ``seed`` is
always the same picture, whatever else was generated before it.

``write_detection_dataset`` writes YOLO txt (images/, labels/, data.yaml);
``write_health_dataset`` writes an image folder per class, tiles cut from nadir renders and
labelled from the masks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agridrone.training import DETECTOR_CLASSES, HEALTH_CLASSES
from agridrone.training.synth_field import fbm, render_ground
from agridrone.training.synth_objects import Painter, View, draw

CLASS_WEIGHTS = np.array([0.17, 0.22, 0.2, 0.17, 0.13, 0.11])
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Scene:
    image: np.ndarray       # HxWx3 uint8 RGB
    boxes: np.ndarray       # (n, 4) float32 x1, y1, x2, y2 in pixels
    classes: np.ndarray     # (n,) int32 indices into DETECTOR_CLASSES
    crop: np.ndarray        # HxW bool
    stressed: np.ndarray    # HxW bool
    weeds: np.ndarray       # HxW bool
    view: str
    alt_m: float


def _rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), int(stream)])


def photometric(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Camera effects on a float RGB image in 0..1; returns uint8."""
    h, w = rgb.shape[:2]
    # exposure, white balance and gamma through one per-channel lookup table on 16-bit levels
    levels = np.linspace(0, 1, 4096, dtype=np.float32)[:, None]
    gain = np.exp(rng.normal(0.0, 0.22)) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    lut = np.clip(levels * gain[None, :], 0, 1) ** rng.uniform(0.8, 1.25)
    idx = np.clip(rgb * 4095.0, 0, 4095).astype(np.int32)
    img = np.stack([lut[idx[..., c], c] for c in range(3)], axis=-1)
    gray = img.mean(axis=2, keepdims=True)
    img = gray + (img - gray) * np.float32(rng.uniform(0.7, 1.3))
    if rng.random() < 0.6:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        img = img * (1.0 - rng.uniform(0.05, 0.35) * r2)[..., None]
    img = np.clip(img, 0, 1).astype(np.float32)
    u = rng.random()
    if u < 0.45:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.4))
    elif u < 0.6:
        k = int(rng.integers(3, 9))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kern = cv2.warpAffine(kern, rot, (k, k))
        img = cv2.filter2D(img, -1, kern / max(kern.sum(), 1e-6))
    sigma = np.float32(rng.uniform(0.0, 0.035))
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma * (0.5 + 0.5 * np.sqrt(np.clip(img, 0, 1)))
    return (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def render_scene(seed: int, index: int, size_hw: tuple[int, int] = (320, 320), view: str | None = None,
                 with_objects: bool = True, **ground_kw) -> Scene:
    """Render image ``index`` of the synthetic set ``seed``."""
    rng = _rng(seed, index)
    h, w = size_hw
    view = view or ("oblique" if rng.random() < 0.3 else "nadir")
    if view == "nadir":
        alt_m = float(np.exp(rng.uniform(np.log(5.0), np.log(32.0))))
        hfov = np.radians(rng.uniform(55, 85))
        ppm = w / (2 * alt_m * np.tan(hfov / 2))
        ground = render_ground(rng, h, w, ppm, **ground_kw)
        rgb = ground.rgb.copy()
        masks = (ground.crop, ground.stressed, ground.weeds)
        geo = None
    else:
        alt_m = float(rng.uniform(4.0, 25.0))
        rgb, masks, geo = _oblique_ground(rng, h, w, alt_m, ground_kw)
        ppm = None
    boxes, classes = np.zeros((0, 4), np.float32), np.zeros((0,), np.int32)
    if with_objects:
        rgb, boxes, classes = _place_objects(rng, rgb, view, alt_m, ppm, geo)
    image = photometric(rng, rgb)
    return Scene(image, boxes, classes, masks[0], masks[1], masks[2], view, alt_m)


def _oblique_ground(rng, h, w, alt_m, ground_kw):
    vfov = np.radians(rng.uniform(40, 60))
    f = (h / 2) / np.tan(vfov / 2)
    dep = np.radians(rng.uniform(np.degrees(vfov / 2) + 10, 75))
    cx, cy = w / 2, h / 2

    def ground_of(x, y):
        dx, dy = (x - cx) / f, (y - cy) / f
        denom = dy * np.cos(dep) + np.sin(dep)
        t = alt_m / denom
        return np.stack([t * dx, t * (np.cos(dep) - dy * np.sin(dep))], -1), t

    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    g, _ = ground_of(corners[:, 0], corners[:, 1])
    xmin, xmax, ymin, ymax = g[:, 0].min(), g[:, 0].max(), g[:, 1].min(), g[:, 1].max()
    ext = max(xmax - xmin, ymax - ymin)
    _, t_near = ground_of(np.float32(cx), np.float32(h))
    ppm_c = min(f / t_near * 1.0, 1.5 * max(h, w) / ext)
    cw, ch = int(np.ceil((xmax - xmin) * ppm_c)) + 2, int(np.ceil((ymax - ymin) * ppm_c)) + 2
    ground = render_ground(rng, ch, cw, ppm_c, **ground_kw)
    src = np.stack([(g[:, 0] - xmin) * ppm_c, (ymax - g[:, 1]) * ppm_c], -1).astype(np.float32)
    hom = cv2.getPerspectiveTransform(src, corners)
    rgb = cv2.warpPerspective(ground.rgb, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    masks = tuple(cv2.warpPerspective(m.astype(np.uint8), hom, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
                  for m in (ground.crop, ground.stressed, ground.weeds))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    _, t = ground_of(xx, yy)
    haze = (1 - np.exp(-t / rng.uniform(120, 600)))[..., None]
    rgb = rgb * (1 - haze) + np.array([0.75, 0.8, 0.85], np.float32) * haze
    return rgb.astype(np.float32), masks, (f, dep, cx, cy, ground_of)


def _place_objects(rng, rgb, view, alt_m, ppm, geo):
    h, w = rgb.shape[:2]
    n_groups = int(rng.choice([0, 1, 2, 3, 4, 5], p=[0.08, 0.22, 0.27, 0.2, 0.14, 0.09]))
    shadow = np.zeros((h, w), np.float32)
    tex = fbm(rng, h, w, cells=w / 6.0, octaves=2)
    sun_az = rng.uniform(0, 2 * np.pi)
    sun_len = np.tan(np.radians(rng.uniform(15, 65)))
    sun_xy = (float(np.cos(sun_az) * sun_len), float(np.sin(sun_az) * sun_len))
    placed: list[tuple[int, np.ndarray, float]] = []
    for _ in range(n_groups):
        cls = int(rng.choice(len(DETECTOR_CLASSES), p=CLASS_WEIGHTS / CLASS_WEIGHTS.sum()))
        count = 1
        if DETECTOR_CLASSES[cls] == "animal":
            count = int(rng.integers(1, 7))
        elif DETECTOR_CLASSES[cls] in ("person", "tree", "pole"):
            count = int(rng.integers(1, 4))
        gx, gy = rng.uniform(-0.05, 1.05) * w, rng.uniform(0.1 if view == "oblique" else -0.05, 1.05) * h
        for k in range(count):
            spread = 0.12 * w if count > 1 else 0.0
            bx, by = gx + rng.normal(0, spread), gy + rng.normal(0, spread * 0.6)
            if view == "oblique":
                by = float(np.clip(by, 0.12 * h, 1.08 * h))
            placed.append((cls, np.array([bx, by], np.float32), by))
    if view == "oblique":
        placed.sort(key=lambda t: t[2])  # far (top) first, near objects drawn over them
    masks, classes = [], []
    for cls, base, _ in placed:
        if view == "nadir":
            v = View("nadir", ppm, (w / 2, h / 2), alt_m, sun_xy)
        else:
            f, dep, cx, cy, ground_of = geo
            _, t = ground_of(np.float32(base[0]), np.float32(base[1]))
            dist = float(np.hypot(*ground_of(np.float32(base[0]), np.float32(base[1]))[0]))
            v = View("oblique", float(f / t), (cx, cy), alt_m, sun_xy, float(np.arctan2(alt_m, max(dist, 0.1))))
        p = Painter(rgb, shadow, tex)
        draw(rng, p, DETECTOR_CLASSES[cls], base, v)
        masks.append(p.mask)
        classes.append(cls)
    if masks:
        union = np.zeros((h, w), bool)
        for m in masks:
            union |= m.astype(bool)
        soft = cv2.GaussianBlur(shadow, (0, 0), 1.2) * rng.uniform(0.3, 0.6)
        rgb *= np.where(union, 1.0, 1.0 - soft)[..., None]
    boxes, keep_cls = [], []
    covered = np.zeros((h, w), bool)
    for m, cls in zip(reversed(masks), reversed(classes)):  # nearest / last drawn first
        mb = m.astype(bool)
        vis = mb & ~covered
        covered |= mb
        n_all, n_vis = int(mb.sum()), int(vis.sum())
        if n_vis < 8 or n_vis < 0.35 * n_all:
            continue
        ys, xs = np.nonzero(vis)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        boxes.append([x1, y1, x2, y2])
        keep_cls.append(cls)
    return (rgb, np.array(boxes, np.float32).reshape(-1, 4), np.array(keep_cls, np.int32))


def health_label(crop: np.ndarray, stressed: np.ndarray, weeds: np.ndarray) -> int | None:
    """Tile label from mask fractions, or None for an ambiguous tile (not used for training)."""
    n = crop.size
    cf, wf = crop.sum() / n, weeds.sum() / n
    sf = stressed.sum() / max(crop.sum(), 1)
    if wf >= 0.10:
        return HEALTH_CLASSES.index("weeds")
    if wf > 0.03:
        return None
    if cf < 0.03:
        return HEALTH_CLASSES.index("bare_soil")
    if cf >= 0.15 and sf >= 0.5:  # sparse yellowed plants on soil are too close to bare soil to call
        return HEALTH_CLASSES.index("stressed")
    if cf >= 0.08 and sf <= 0.1:
        return HEALTH_CLASSES.index("healthy")
    return None


def health_tiles(seed: int, per_class: int, tile_px: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Balanced, labelled ground tiles: (N, tile_px, tile_px, 3) uint8 RGB and (N,) int labels."""
    buckets: list[list[np.ndarray]] = [[] for _ in HEALTH_CLASSES]
    emphasis = [dict(stress_level=0.0, weed_level=0.0), dict(stress_level=0.7, weed_level=0.0),
                dict(weed_level=0.5), dict(stage="bare"), dict(stage="stubble"), dict()]
    index = 0
    while min(len(b) for b in buckets) < per_class and index < per_class * 40:
        rng = _rng(seed, index, stream=7)
        kw = dict(emphasis[index % len(emphasis)])
        if "stage" not in kw:
            kw["stage"] = str(rng.choice(["emergence", "vegetative", "canopy", "vegetative"]))
        alt_m = float(np.exp(rng.uniform(np.log(4.0), np.log(30.0))))
        size = 256
        ppm = size / (2 * alt_m * np.tan(np.radians(rng.uniform(55, 85)) / 2))
        ground = render_ground(rng, size, size, ppm, **kw)
        image = photometric(rng, ground.rgb)
        for _ in range(12):
            t = int(rng.integers(40, 128))
            y, x = int(rng.integers(0, size - t + 1)), int(rng.integers(0, size - t + 1))
            sl = (slice(y, y + t), slice(x, x + t))
            label = health_label(ground.crop[sl], ground.stressed[sl], ground.weeds[sl])
            if label is None or len(buckets[label]) >= per_class:
                continue
            buckets[label].append(cv2.resize(image[sl], (tile_px, tile_px), interpolation=cv2.INTER_AREA))
        index += 1
    images = np.stack([t for b in buckets for t in b]) if any(buckets) else np.zeros((0, tile_px, tile_px, 3),
                                                                                    np.uint8)
    labels = np.array([k for k, b in enumerate(buckets) for _ in b], np.int32)
    order = np.random.default_rng([seed, 99]).permutation(len(labels))
    return images[order], labels[order]


def _split_of(i: int, n: int, fractions=(0.8, 0.1, 0.1)) -> str:
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    return "train" if i < a else ("val" if i < b else "test")


def write_detection_dataset(out_dir: Path, count: int, seed: int, size: int = 320, progress=None) -> Path:
    """Write ``count`` scenes as a YOLO dataset (80/10/10 split); returns its root."""
    out_dir = Path(out_dir)
    for s in SPLITS:
        (out_dir / "images" / s).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / s).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        split = _split_of(i, count)
        scene = render_scene(seed, i, (size, size))
        name = f"synth_{seed}_{i:06d}"
        quality = int(_rng(seed, i, stream=3).integers(70, 96))
        cv2.imwrite(str(out_dir / "images" / split / f"{name}.jpg"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, quality])
        lines = []
        for (x1, y1, x2, y2), c in zip(scene.boxes, scene.classes):
            lines.append(f"{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} "
                         f"{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}")
        (out_dir / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        if progress:
            progress(1)
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(DETECTOR_CLASSES))
    (out_dir / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\ntest: images/test\n"
                                       f"names:\n{names}\n")
    (out_dir / "synthetic.json").write_text(json.dumps({"generator": "agridrone.training.synth", "seed": seed,
                                                        "count": count, "size": size}, indent=2))
    return out_dir


def write_health_dataset(out_dir: Path, per_class: int, seed: int, tile_px: int = 64) -> Path:
    """Write balanced tiles as ``out_dir/{train,val,test}/{class}/*.png``; returns its root."""
    out_dir = Path(out_dir)
    images, labels = health_tiles(seed, per_class, tile_px)
    n = len(labels)
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = out_dir / _split_of(i, n) / HEALTH_CLASSES[lab]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"tile_{seed}_{i:06d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (out_dir / "synthetic.json").write_text(json.dumps({"generator": "agridrone.training.synth", "seed": seed,
                                                        "per_class": per_class, "tile_px": tile_px}, indent=2))
    return out_dir
