"""Procedural ground: soil, crop rows at a growth stage, stressed patches, weeds, tracks and pasture.

Everything is vectorised numpy/OpenCV over the pixel grid; all randomness comes from the
``numpy.random.Generator`` passed in, so a scene is a pure function of its seed.
Images are float32 RGB in 0..1 until the photometric stage quantizes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

STAGES = ("bare", "emergence", "vegetative", "canopy", "pasture", "stubble")


@dataclass(frozen=True)
class Ground:
    """A rendered ground texture and its per-pixel masks (same height and width)."""

    rgb: np.ndarray          # HxWx3 float32 0..1
    crop: np.ndarray         # HxW bool, crop plants (healthy or stressed)
    stressed: np.ndarray     # HxW bool, crop plants inside a stressed patch
    weeds: np.ndarray        # HxW bool, weed plants
    stage: str


def fbm(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int = 4,
        persistence: float = 0.5) -> np.ndarray:
    """Fractal value noise in 0..1; ``cells`` is the number of noise cells across the longer side."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = max(2, int(round(cells * (2 ** o))))
        gh = max(2, int(round(n * h / max(h, w))) + 1)
        gw = max(2, int(round(n * w / max(h, w))) + 1)
        grid = rng.random((gh, gw), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def hsv_rgb(h_deg: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (hue in degrees, s and v in 0..1) as an RGB float32 triple."""
    px = np.array([[[h_deg / 2.0, s * 255.0, v * 255.0]]], np.float32).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def soil_colour(rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(0, 5)
    base = [(28, 0.45, 0.45), (25, 0.5, 0.28), (15, 0.55, 0.42), (35, 0.3, 0.6), (30, 0.2, 0.35)][kind]
    return hsv_rgb(base[0] + rng.normal(0, 4), np.clip(base[1] + rng.normal(0, 0.08), 0.1, 0.8),
                   np.clip(base[2] + rng.normal(0, 0.07), 0.15, 0.8))


def crop_colour(rng: np.random.Generator) -> np.ndarray:
    return hsv_rgb(rng.uniform(80, 125), rng.uniform(0.45, 0.85), rng.uniform(0.3, 0.6))


def render_ground(rng: np.random.Generator, h: int, w: int, px_per_m: float, stage: str | None = None,
                  stress_level: float | None = None, weed_level: float | None = None) -> Ground:
    """Render ``h`` x ``w`` pixels of field seen from straight above at ``px_per_m``."""
    stage = stage or str(rng.choice(STAGES, p=[0.1, 0.18, 0.3, 0.22, 0.12, 0.08]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xm, ym = xx / px_per_m, yy / px_per_m
    ground_m = max(h, w) / px_per_m

    # soil: base colour, large moisture blotches, clods and grain
    soil = soil_colour(rng)
    moist = fbm(rng, h, w, cells=max(2.0, ground_m / 12.0), octaves=3)
    clods = fbm(rng, h, w, cells=max(4.0, ground_m / 0.4), octaves=2)
    shade = 0.72 + 0.35 * moist[..., None] + 0.18 * (clods[..., None] - 0.5)
    rgb = soil[None, None, :] * shade
    rgb += rng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(0.025)

    crop = np.zeros((h, w), bool)
    stressed = np.zeros((h, w), bool)
    weeds = np.zeros((h, w), bool)
    leaf = fbm(rng, h, w, cells=max(4.0, ground_m / 0.15), octaves=2)

    if stage == "stubble":
        ang = rng.uniform(0, np.pi)
        u = xm * np.cos(ang) + ym * np.sin(ang)
        straw = (np.sin(u * 2 * np.pi / rng.uniform(0.15, 0.3)) > 0.6) & (clods > 0.45)
        rgb = np.where(straw[..., None], hsv_rgb(40, 0.35, 0.75) * (0.8 + 0.3 * leaf[..., None]), rgb)
    elif stage == "pasture":
        grass = crop_colour(rng) * (0.75 + 0.4 * moist[..., None])
        grass = grass * (0.7 + 0.45 * leaf[..., None])
        dry = fbm(rng, h, w, cells=max(2.0, ground_m / 8.0), octaves=3)[..., None]
        dry_mix = np.clip((dry - rng.uniform(0.5, 0.9)) * 3.0, 0, 0.7)
        rgb = grass * (1 - dry_mix) + hsv_rgb(45, 0.45, 0.6) * dry_mix
    elif stage != "bare":
        spacing_m = rng.uniform(0.45, 0.95)
        ang = rng.uniform(0, np.pi)
        u = xm * np.cos(ang) + ym * np.sin(ang)
        v = -xm * np.sin(ang) + ym * np.cos(ang)
        d = np.abs((u / spacing_m) - np.round(u / spacing_m)) * spacing_m     # metres to the row centre
        width_noise = 0.65 + 0.7 * fbm(rng, h, w, cells=max(3.0, ground_m / 1.5), octaves=3)
        if stage == "emergence":
            p_m = rng.uniform(0.12, 0.3)
            pv = (v + 0.3 * p_m * (leaf - 0.5)) / p_m
            dv = np.abs(pv - np.round(pv)) * p_m
            r_m = rng.uniform(0.03, 0.07) * width_noise
            crop = (d * d + dv * dv) < r_m * r_m
        else:
            frac = rng.uniform(0.3, 0.6) if stage == "vegetative" else rng.uniform(0.8, 1.2)
            half = 0.5 * frac * spacing_m * width_noise
            crop = d < half * (0.8 + 0.4 * leaf)
        # failed emergence / waterlogged gaps: crop missing in large patches
        if rng.random() < 0.5:
            gaps = fbm(rng, h, w, cells=max(2.0, ground_m / 6.0), octaves=3)
            crop &= gaps < rng.uniform(0.7, 1.0)
        level = rng.uniform(0.0, 0.6) if stress_level is None else stress_level
        stress_field = fbm(rng, h, w, cells=max(2.0, ground_m / rng.uniform(4.0, 10.0)), octaves=4)
        stress_region = stress_field > np.quantile(stress_field, 1.0 - level) if level > 0 else np.zeros_like(crop)
        stressed = crop & stress_region
        green = crop_colour(rng)
        sick = hsv_rgb(rng.uniform(35, 60), rng.uniform(0.45, 0.8), rng.uniform(0.5, 0.75))
        if rng.random() < 0.3:  # drought: brown-olive rather than chlorotic yellow
            sick = hsv_rgb(rng.uniform(25, 40), rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.55))
        mix = np.clip(stress_field - np.quantile(stress_field, 1.0 - max(level, 1e-3)), 0, None) * 6.0
        mix = np.clip(0.55 + mix, 0, 1)[..., None] * stress_region[..., None]
        plant = green * (1 - mix) + sick * mix
        row_shade = 1.0 - 0.35 * np.clip(d / (0.5 * spacing_m), 0, 1)
        plant = plant * (0.65 + 0.5 * leaf[..., None]) * row_shade[..., None]
        rgb = np.where(crop[..., None], plant, rgb)

    if stage not in ("pasture",):
        wl = rng.uniform(0.0, 0.35) if weed_level is None else weed_level
        if wl > 0:
            patch = fbm(rng, h, w, cells=max(2.0, ground_m / rng.uniform(3.0, 8.0)), octaves=3)
            region = patch > np.quantile(patch, 1.0 - wl)
            blobs = fbm(rng, h, w, cells=max(4.0, ground_m / rng.uniform(0.08, 0.2)), octaves=2)
            density = rng.uniform(0.45, 0.65)
            weeds = region & (blobs > density) & ~crop
            wc = hsv_rgb(rng.uniform(60, 150), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.65))
            weed_rgb = wc * (0.6 + 0.7 * leaf[..., None])
            rgb = np.where(weeds[..., None], weed_rgb, rgb)

    if stage != "pasture" and rng.random() < 0.25:
        rgb, lane = _track(rng, rgb, xm, ym, ground_m, clods)
        crop, stressed, weeds = crop & ~lane, stressed & ~lane, weeds & ~lane  # a track has no plants
    return Ground(np.clip(rgb, 0, 1).astype(np.float32), crop, stressed, weeds, stage)


def _track(rng, rgb, xm, ym, ground_m, clods):
    """Paint a farm track (two wheel ruts or a gravel lane) across the field; returns (rgb, lane mask)."""
    ang = rng.uniform(0, np.pi)
    off = rng.uniform(0.2, 0.8) * ground_m
    dist = np.abs(xm * np.cos(ang) + ym * np.sin(ang) - off)
    width_m = rng.uniform(0.4, 3.5)
    colour = hsv_rgb(rng.uniform(25, 40), rng.uniform(0.1, 0.35), rng.uniform(0.45, 0.7))
    lane = dist < width_m
    if width_m < 1.2:  # ruts: two stripes
        lane = (np.abs(dist - 0.9) < width_m / 2)
    tex = colour * (0.8 + 0.35 * clods[..., None])
    return np.where(lane[..., None], tex, rgb), lane
