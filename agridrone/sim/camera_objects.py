"""The simulated camera's obstacles and camera effects.

Obstacles are drawn by the training renderer's own painters
(``agridrone.scenery.objects.draw``: crowns with lit blobs, people, animals, vehicles,
poles, buildings, with shadows), so the detector sees in simulation what it was trained on, but
placed with the real camera geometry:

- the base is where ``Projector.ground_to_pixel`` puts the obstacle's ground point;
- in a (near-)nadir view the painters lean an object away from ``View.centre_xy`` by
  ``alt/(alt - z)``. With ``centre_xy`` = the image of the vertical (where all verticals meet) and
  ``alt_m`` = the height at which the obstacle's vertical crosses the camera's principal plane,
  that lean is the exact pinhole projection of every point on the vertical (a projective map of a
  line is fixed by three points: the base, the point at infinity and the one that projects to
  infinity), so a 12 m tree at the image edge leans outward exactly as the camera sees it;
- in oblique views (ray depression below ``OBLIQUE_BELOW_DEG``) the side-view painters are used
  with the scale and depression at the base;
- sizes: the painters draw random sizes; a ``ScriptedRng`` hands them the world's sizes instead
  (the first draws of each painter are its size draws), everything else (colours, crown blobs,
  headings) comes from a generator seeded by the obstacle, so an obstacle looks the same in every
  frame. The shadow falls along one sun vector per world.

Camera effects follow ``agridrone.training.synth.photometric`` (exposure, white balance, gamma
and saturation through one lookup table, vignetting, a slight blur, noise), with the random
parameters drawn once per world (milder ranges than training's), the tone curve applied where
pixels are made (ground tiles, painted obstacles, sky) rather than per frame, and the noise taken
from a precomputed bank chosen by the frame's timestamp, so the same pose always gives the same frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from agridrone.scenery.field import fbm
from agridrone.scenery.objects import Painter, View, draw

OBLIQUE_BELOW_DEG = 55.0
NOISE_BANK = 6
SKY_ZENITH_RGB = np.array([0.42, 0.6, 0.88], np.float32)
HAZE_RGB = np.array([0.75, 0.8, 0.85], np.float32)  # the training renderer's haze colour


class ScriptedRng:
    """A numpy Generator whose first scalar draws of some kinds are scripted; the rest pass through."""

    def __init__(self, rng: np.random.Generator, **script) -> None:
        self._rng = rng
        self._script = {k: list(v) for k, v in script.items()}

    def _next(self, kind: str, size, fallback):
        queue = self._script.get(kind)
        if queue and size is None:
            return queue.pop(0)
        return fallback()

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._next("uniform", size, lambda: self._rng.uniform(low, high, size))

    def integers(self, low, high=None, size=None, **kw):
        return self._next("integers", size, lambda: self._rng.integers(low, high, size, **kw))

    def random(self, size=None, **kw):
        return self._next("random", size, lambda: self._rng.random(size, **kw))

    def __getattr__(self, name):
        return getattr(self._rng, name)


# painter sizes (training renderer): animal (length range, height) per kind, vehicle (L, W, H) per kind
_ANIMALS = (((1.9, 2.5), 1.35), ((1.0, 1.4), 0.8), ((2.0, 2.5), 1.55))
_VEHICLES = ((4.5, 1.8, 1.5), (5.3, 2.0, 1.8), (8.5, 2.5, 3.2), (4.3, 2.3, 2.9))


def scripted_rng(cls: str, radius_m: float, height_m: float, seed) -> ScriptedRng:
    """The generator that makes ``agridrone.scenery.objects.draw`` paint an obstacle of the world's size."""
    rng = np.random.default_rng(seed)
    if cls == "tree":
        return ScriptedRng(rng, uniform=[radius_m, height_m])
    if cls == "person":
        return ScriptedRng(rng, uniform=[height_m])
    if cls == "pole":
        pylon = radius_m >= 1.0  # a lattice pylon: the painter makes it 1.5 x taller
        return ScriptedRng(rng, uniform=[height_m / 1.5 if pylon else height_m], random=[0.1 if pylon else 0.9])
    if cls == "animal":
        kind = int(np.argmin([abs(h - height_m) for _, h in _ANIMALS]))
        lengths = [float(np.clip(2 * radius_m, *rng_)) if k == kind else float(np.mean(rng_))
                   for k, (rng_, _) in enumerate(_ANIMALS)]
        return ScriptedRng(rng, integers=[kind], uniform=lengths)
    if cls == "vehicle":
        kind = int(np.argmin([abs(hh - height_m) + 0.3 * abs(ll - 2 * radius_m) for ll, _, hh in _VEHICLES]))
        scale = float(np.clip(2 * radius_m / _VEHICLES[kind][0], 0.9, 1.1))
        return ScriptedRng(rng, integers=[kind], uniform=[scale])
    if cls == "building":
        return ScriptedRng(rng, uniform=[1.6 * radius_m, 1.2 * radius_m, 0.65 * height_m, 0.35 * height_m])
    raise ValueError(f"obstacle class: expected one of tree, person, animal, vehicle, pole, building, got {cls!r}")


@dataclass(frozen=True)
class Placed:
    """One obstacle as the camera sees it this frame (pixels of the ideal pinhole image)."""

    index: int
    cls: str
    base_px: tuple[float, float]
    top_px: tuple[float, float]
    distance_m: float
    view: View
    roi: tuple[int, int, int, int]      # x0, y0, x1, y1 of the region painted


@dataclass(frozen=True)
class Drawn:
    index: int
    cls: str
    box_xyxy: tuple[float, float, float, float]
    pixels: int


def paint_obstacles(img_bgr: np.ndarray | None, size_wh, placed: list[Placed], world_seed: int,
                    sizes: list[tuple[float, float]], tex: np.ndarray, shadow_strength: float,
                    tone=None) -> list[Drawn]:
    """Paint ``placed`` (far first) into ``img_bgr`` in place (or only measure, if it is None).

    ``tone`` (uint8 BGR -> uint8 BGR) is applied to the object's own pixels (the painters' colours
    are untoned; the ground under them already is); shadows only darken the toned ground."""
    w, h = size_wh
    out = []
    for pl in sorted(placed, key=lambda p: -p.distance_m):
        x0, y0, x1, y1 = pl.roi
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            continue
        if img_bgr is not None:
            rgb = img_bgr[y0:y1, x0:x1, ::-1].astype(np.float32) * np.float32(1 / 255)
        else:
            rgb = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
        shadow = np.zeros(rgb.shape[:2], np.float32)
        th, tw = tex.shape
        tx, ty = (pl.index * 97) % max(1, tw - (x1 - x0)), (pl.index * 61) % max(1, th - (y1 - y0))
        t = tex[ty:ty + (y1 - y0), tx:tx + (x1 - x0)]
        if t.shape != rgb.shape[:2]:
            t = cv2.resize(tex, (x1 - x0, y1 - y0))
        v = pl.view
        local = View(v.kind, v.px_per_m, (v.centre_xy[0] - x0, v.centre_xy[1] - y0), v.alt_m, v.sun_xy,
                     v.depression_rad)
        p = Painter(rgb, shadow, t)
        r_m, h_m = sizes[pl.index]
        draw(scripted_rng(pl.cls, r_m, h_m, [world_seed, 23, pl.index]), p, pl.cls,
             (pl.base_px[0] - x0, pl.base_px[1] - y0), local)
        m = p.mask.astype(bool)
        if img_bgr is not None:
            soft = cv2.GaussianBlur(shadow, (0, 0), 1.2) * shadow_strength
            rgb *= np.where(m, 1.0, 1.0 - soft)[..., None]
            roi = (np.clip(rgb[..., ::-1], 0, 1) * 255.0 + 0.5).astype(np.uint8)
            if tone is not None and m.any():
                roi = np.where(m[..., None], tone(roi), roi)
            img_bgr[y0:y1, x0:x1] = roi
        if m.any():
            ys, xs = np.nonzero(m)
            out.append(Drawn(pl.index, pl.cls, (float(xs.min() + x0), float(ys.min() + y0), float(xs.max() + 1 + x0),
                                                float(ys.max() + 1 + y0)), int(m.sum())))
    return out


class Photometric:
    """Per-world camera effects after the training renderer's ``photometric`` (see the module docstring)."""

    def __init__(self, size_wh, seed: int, noise: bool = True) -> None:
        w, h = size_wh
        rng = np.random.default_rng([seed, 31])
        levels = np.linspace(0, 1, 256, dtype=np.float32)[:, None]
        gain = math.exp(rng.normal(0.0, 0.1)) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
        lut = np.clip(levels * gain[None, :], 0, 1) ** rng.uniform(0.9, 1.1)
        self.lut_bgr = (np.clip(lut[:, ::-1], 0, 1) * 255 + 0.5).astype(np.uint8).reshape(256, 1, 3)
        self.saturation = float(rng.uniform(0.9, 1.15))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        vig = 1.0 - rng.uniform(0.05, 0.2) * r2
        self.vignette = np.repeat((vig * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
        self.blur_sigma = float(rng.uniform(0.5, 0.8))
        self.noise_pos: list[np.ndarray] = []
        self.noise_neg: list[np.ndarray] = []
        if noise:
            sigma = rng.uniform(0.008, 0.02) * 255
            for _ in range(NOISE_BANK):
                n = rng.standard_normal((h, w, 3), dtype=np.float32) * sigma
                self.noise_pos.append(np.clip(n, 0, 255).astype(np.uint8))
                self.noise_neg.append(np.clip(-n, 0, 255).astype(np.uint8))

    def tone(self, img_bgr: np.ndarray) -> np.ndarray:
        """Exposure, white balance, gamma and saturation: applied where pixels are made (tiles, painted
        obstacles, sky), not per frame."""
        img = cv2.LUT(img_bgr, self.lut_bgr)
        if abs(self.saturation - 1.0) > 1e-3:
            gray = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            img = cv2.addWeighted(img, self.saturation, gray, 1.0 - self.saturation, 0.0)
        return img

    def apply(self, img_bgr: np.ndarray, ts_ns: int) -> np.ndarray:
        """Per-frame effects: vignetting, blur, noise (chosen by ``ts_ns``)."""
        img = cv2.multiply(img_bgr, self.vignette, scale=1.0 / 255.0)
        img = cv2.GaussianBlur(img, (3, 3), self.blur_sigma)
        if self.noise_pos:
            k = int((int(ts_ns) * 2654435761) >> 7) % len(self.noise_pos)
            img = cv2.subtract(cv2.add(img, self.noise_pos[k]), self.noise_neg[k])
        return img


def object_texture(seed: int, size: int = 512) -> np.ndarray:
    """The painters' surface texture (the training renderer uses fbm with ~6 px cells)."""
    return fbm(np.random.default_rng([seed, 29]), size, size, cells=size / 6.0, octaves=2)


def sky_and_haze(img_bgr: np.ndarray, down: np.ndarray, height_m: float, haze_m: float, max_range_m: float,
                 tone=None) -> None:
    """Blend distant ground into haze and paint the sky where rays do not go down, in place.

    ``down`` is the downward component of the unit rays of a coarse grid of pixels (every
    ``img/down`` pixels, centred as ``cv2.resize`` samples): the ground distance along a ray is
    ``height_m / down``; rays with ``down <= 0`` see the sky. Haze and sky vary smoothly, so they
    are computed on that grid and upsampled (the horizon's edge is haze-coloured on both sides).
    """
    h, w = img_bgr.shape[:2]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(down > 1e-6, height_m / np.maximum(down, 1e-6), np.inf)
    # haze with distance (the training renderer's law), complete at the range the ground is mapped to
    far = np.clip((dist - 0.3 * max_range_m) / (0.65 * max_range_m), 0, 1)
    haze = np.maximum(1.0 - np.exp(-dist / haze_m), far * far * (3 - 2 * far))
    haze_bgr = HAZE_RGB[::-1] * 255.0
    zenith_bgr = SKY_ZENITH_RGB[::-1] * 255.0
    if tone is not None:
        both = tone(np.array([[haze_bgr, zenith_bgr]], np.float32).clip(0, 255).astype(np.uint8))[0]
        haze_bgr, zenith_bgr = both[0].astype(np.float32), both[1].astype(np.float32)
    elev = np.clip(-down / 0.5, 0, 1)[..., None]  # 0 at the horizon, 1 thirty degrees up
    target = haze_bgr * (1 - elev) + zenith_bgr * elev
    weight = np.where(down <= 1e-6, 1.0, haze).astype(np.float32)
    weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
    target = cv2.resize(np.clip(target + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    img_bgr[...] = cv2.blendLinear(img_bgr, target, 1.0 - weight, weight)
