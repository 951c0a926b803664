"""The simulated camera's ground: a world's field as lazily rendered, cached texture tiles.

The ground lives in the mission's ENU frame (metres east/north of home). Two parts:

- ``GroundModel`` (built once per world, a few MB): coarse maps at ``BASE_PX_PER_M`` -- inside
  the field, soil moisture, crop-row width noise, stressed / weed / bare-soil weights painted from
  the world's patch polygons, dry grass outside the field -- plus the colours, row spacing and row
  direction of the field, and periodic fine noise (clods, leaves, weed blobs, grain) per render
  resolution.
- ``TileCache``: square tiles of ``TILE_M`` metres at pyramid levels of 20, 10, 5 and 2.5 px/m,
  rendered on first use with the formulas of the training renderer
  (``agridrone.scenery.field.render_ground``: soil shade from moisture and clods, crop rows
  with width and leaf noise and row shading, chlorotic/drought colours in stressed patches, weed
  blobs between the rows, pasture outside), kept in an LRU cache under a byte budget, and joined
  into a mosaic that the camera warps into the image in one ``cv2.warpPerspective``.

Every tile is a pure function of (world, seed, level, tile index), so a frame does not depend on
what was rendered before it. Tiles are BGR uint8, row 0 at the tile's north edge.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from agridrone.scenery.field import crop_colour, fbm, hsv_rgb, soil_colour

TILE_M = 25.6                      # tile side in metres; the fine noise repeats every NOISE_TILES tiles
NOISE_TILES = 4
LEVEL_PX_PER_M = (20.0, 10.0, 5.0, 2.5)
BASE_PX_PER_M = 2.0
MARGIN_M = 80.0                    # ground mapped around the field (pasture), beyond: replicated edge
MAX_BASE_PX = 4096                 # base maps are at most this many pixels on a side (coarser beyond)

# (keywords, stage, row spacing m, plant fraction of the row spacing) -- all inside the training
# renderer's ranges (spacing 0.45..0.95 m; vegetative 0.3..0.6; canopy 0.8..1.2)
CROP_LOOKS = (  # first match wins ("grapevine" before "rape")
    (("vine", "grape", "orchard", "hop"), "vegetative", 0.95, 0.35),
    (("wheat", "barley", "rye", "oat", "cereal", "triticale"), "canopy", 0.5, 0.9),
    (("maize", "corn", "sorghum", "sunflower"), "vegetative", 0.75, 0.45),
    (("beet", "potato", "rape", "canola", "soy", "bean"), "vegetative", 0.5, 0.55),
)


def stable_seed(*parts) -> int:
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def crop_look(crop: str) -> tuple[str, float, float]:
    low = crop.lower()
    for words, stage, spacing_m, frac in CROP_LOOKS:
        if any(w in low for w in words):
            return stage, spacing_m, frac
    return "vegetative", 0.6, 0.5


def periodic_fbm(rng: np.random.Generator, size: int, cells: float, octaves: int) -> np.ndarray:
    """Like ``agridrone.scenery.field.fbm`` (value noise, octaves doubling, persistence 0.5, 0..1) but tileable."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = max(2, int(round(cells * (2 ** o))))
        grid = rng.random((n, n), dtype=np.float32)
        pad = 2
        big = np.pad(grid, pad, mode="wrap")
        scale = size / n
        up = cv2.resize(big, (int(round((n + 2 * pad) * scale)),) * 2, interpolation=cv2.INTER_CUBIC)
        off = int(round(pad * scale))
        out += amp * up[off:off + size, off:off + size]
        total += amp
        amp *= 0.5
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


@dataclass(frozen=True)
class Palette:
    """Colours (RGB 0..1) and textures of one world, drawn once from its seed like render_ground does."""

    soil: np.ndarray
    green: np.ndarray
    sick: np.ndarray
    weed: np.ndarray
    grass: np.ndarray
    dry: np.ndarray
    weed_density: float
    stage: str
    spacing_m: float
    plant_frac: float
    row_angle_rad: float


class GroundModel:
    """Coarse maps and colours of one world's ground (see the module docstring)."""

    def __init__(self, field_xy: np.ndarray, patches: list[tuple[str, np.ndarray]], extra_xy: np.ndarray,
                 crop: str, seed: int) -> None:
        rng = np.random.default_rng([seed, 11])
        pts = np.vstack([field_xy, extra_xy.reshape(-1, 2)]) if len(extra_xy) else field_xy
        self.e0 = float(pts[:, 0].min() - MARGIN_M)
        self.n1 = float(pts[:, 1].max() + MARGIN_M)
        span_m = max(float(pts[:, 0].max() + MARGIN_M - self.e0), float(self.n1 - pts[:, 1].min() + MARGIN_M))
        self.px_per_m = min(BASE_PX_PER_M, MAX_BASE_PX / span_m)
        w = int(math.ceil((pts[:, 0].max() + MARGIN_M - self.e0) * self.px_per_m)) + 1
        h = int(math.ceil((self.n1 - (pts[:, 1].min() - MARGIN_M)) * self.px_per_m)) + 1
        self.shape_hw = (h, w)
        self.palette = self._palette(rng, crop, field_xy)

        field = self._raster(field_xy)
        ext_m = max(h, w) / self.px_per_m
        moist = fbm(rng, h, w, cells=max(2.0, ext_m / 12.0), octaves=3)
        width = fbm(rng, h, w, cells=max(3.0, ext_m / 1.5), octaves=3)
        stress_field = fbm(rng, h, w, cells=max(2.0, ext_m / 6.0), octaves=4)
        dry = fbm(rng, h, w, cells=max(2.0, ext_m / 8.0), octaves=3)
        stressed = np.zeros((h, w), np.float32)
        weeds = np.zeros((h, w), np.float32)
        bare = np.zeros((h, w), np.float32)
        for kind, xy in patches:
            m = self._raster(xy)
            if kind == "stressed":
                # as in render_ground: crop inside a stressed region is at least 55 % sick
                mix = np.clip(0.55 + np.clip(stress_field - 0.5, 0, None) * 3.0, 0, 1)
                stressed = np.maximum(stressed, m * mix)
            elif kind == "weeds":
                weeds = np.maximum(weeds, m)
            else:
                bare = np.maximum(bare, m)
        dry_mix = np.clip((dry - 0.7) * 3.0, 0, 0.7)
        to8 = lambda a: np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
        # two 4-channel maps so a tile samples each in one warp
        self.maps_a = np.dstack([to8(field), to8(moist), to8(width), to8(dry_mix)])
        self.maps_b = np.dstack([to8(stressed), to8(weeds), to8(bare), np.zeros((h, w), np.uint8)])
        self._noise: dict[float, np.ndarray] = {}
        self._noise_lock = threading.Lock()
        self._seed = seed

    # -- construction helpers ------------------------------------------------------------------
    def _palette(self, rng, crop: str, field_xy: np.ndarray) -> Palette:
        from shapely.geometry import Polygon

        stage, spacing, frac = crop_look(crop)
        soil = soil_colour(rng)
        green = crop_colour(rng)
        sick = hsv_rgb(rng.uniform(35, 60), rng.uniform(0.45, 0.8), rng.uniform(0.5, 0.75))
        if rng.random() < 0.3:  # drought: brown-olive rather than chlorotic yellow
            sick = hsv_rgb(rng.uniform(25, 40), rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.55))
        weed = hsv_rgb(rng.uniform(60, 150), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.65))
        grass = crop_colour(rng)
        # rows run along the field's longer side (how a farmer drills a field)
        rect = np.asarray(Polygon(field_xy).minimum_rotated_rectangle.exterior.coords)[:4]
        sides = np.diff(np.vstack([rect, rect[:1]]), axis=0)
        longest = sides[int(np.argmax(np.hypot(sides[:, 0], sides[:, 1])))]
        along = math.atan2(longest[1], longest[0])
        return Palette(soil, green, sick, weed, grass, hsv_rgb(45, 0.45, 0.6), float(rng.uniform(0.45, 0.65)),
                       stage, spacing, frac, along + math.pi / 2)

    def _raster(self, xy: np.ndarray) -> np.ndarray:
        """A polygon (ENU metres) as a soft 0..1 mask on the base grid (pixel centres at integers)."""
        h, w = self.shape_hw
        px = np.column_stack([(xy[:, 0] - self.e0) * self.px_per_m, (self.n1 - xy[:, 1]) * self.px_per_m])
        m = np.zeros((h, w), np.uint8)
        shift = 4
        cv2.fillPoly(m, [np.round(px * (1 << shift)).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=shift)
        return m.astype(np.float32) / 255.0

    def nbytes(self) -> int:
        return self.maps_a.nbytes + self.maps_b.nbytes + sum(v.nbytes for v in self._noise.values())

    def noise(self, px_per_m: float) -> np.ndarray:
        """Periodic fine noise at ``px_per_m`` (NOISE_TILES tiles on a side): clods, leaf, blobs, grain."""
        with self._noise_lock:
            return self._noise_locked(px_per_m)

    def _noise_locked(self, px_per_m: float) -> np.ndarray:
        got = self._noise.get(px_per_m)
        if got is None:
            rng = np.random.default_rng([self._seed, 17, int(px_per_m * 100)])
            size = int(round(NOISE_TILES * TILE_M * px_per_m))
            per_m = size / (NOISE_TILES * TILE_M)
            size_m = size / per_m
            clods = periodic_fbm(rng, size, max(4.0, size_m / 0.4), 2)
            leaf = periodic_fbm(rng, size, min(size / 2, max(4.0, size_m / 0.15)), 2)
            blobs = periodic_fbm(rng, size, min(size / 2, max(4.0, size_m / 0.14)), 2)
            grain = np.clip(0.5 + rng.standard_normal((size, size), dtype=np.float32) * 0.125, 0, 1)
            got = np.dstack([(a * 255 + 0.5).astype(np.uint8) for a in (clods, leaf, blobs, grain)])
            self._noise[px_per_m] = got
        return got

    # -- tiles ---------------------------------------------------------------------------------
    def render_tile(self, level: int, ix: int, iy: int) -> np.ndarray:
        """Tile (ix, iy) of ``level``: east ix*T..(ix+1)*T, north iy*T..(iy+1)*T; BGR uint8."""
        r_out = LEVEL_PX_PER_M[level]
        r = max(r_out, 10.0) if level < 3 else r_out     # render resolution (supersampled at 5 px/m)
        n = int(round(TILE_M * r))
        k = self.px_per_m / r
        tx = (ix * TILE_M + 0.5 / r - self.e0) * self.px_per_m
        ty = (self.n1 - (iy + 1) * TILE_M + 0.5 / r) * self.px_per_m
        mat = np.array([[k, 0.0, tx], [0.0, k, ty]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        a = cv2.warpAffine(self.maps_a, mat, (n, n), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        b = cv2.warpAffine(self.maps_b, mat, (n, n), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        field, moist, width, dry_mix = (a[..., i].astype(np.float32) / 255.0 for i in range(4))
        stressed, weeds_w, bare = (b[..., i].astype(np.float32) / 255.0 for i in range(3))
        nz = self.noise(r)
        q = nz.shape[0] // NOISE_TILES
        r0, c0 = ((-(iy + 1)) % NOISE_TILES) * q, (ix % NOISE_TILES) * q
        clods, leaf, blobs, grain = (nz[r0:r0 + n, c0:c0 + n, i].astype(np.float32) / 255.0 for i in range(4))

        p = self.palette
        jj = (np.arange(n, dtype=np.float32) + 0.5) / r
        e = ix * TILE_M + jj[None, :]
        nn = (iy + 1) * TILE_M - jj[:, None]
        u = e * math.cos(p.row_angle_rad) + nn * math.sin(p.row_angle_rad)

        soil_shade = 0.72 + 0.35 * moist + 0.18 * (clods - 0.5)
        rgb = p.soil[None, None, :] * soil_shade[..., None] + ((grain - 0.5) * 0.2)[..., None]
        # crop rows (render_ground, vegetative/canopy): distance to the row centre against a noisy half-width
        d = np.abs(u / p.spacing_m - np.round(u / p.spacing_m)) * p.spacing_m
        half = 0.5 * p.plant_frac * p.spacing_m * (0.65 + 0.7 * width)
        crop = (d < half * (0.8 + 0.4 * leaf)) & (field > 0.5) & (bare < 0.5)
        mix = stressed[..., None]
        plant = p.green * (1 - mix) + p.sick * mix
        row_shade = 1.0 - 0.35 * np.clip(d / (0.5 * p.spacing_m), 0, 1)
        plant = plant * ((0.65 + 0.5 * leaf) * row_shade)[..., None]
        rgb = np.where(crop[..., None], plant, rgb)
        # weeds: render_ground grows them between the rows only; inside a world's weed patch they also
        # smother part of the crop, so the patch shows weeds (>= 10 % of its pixels, the training
        # renderer's threshold for a "weeds" tile) even under a closed cereal canopy
        weeds = (weeds_w > 0.5) & (blobs > p.weed_density) & (~crop | (leaf > 0.5))
        rgb = np.where(weeds[..., None], p.weed * (0.6 + 0.7 * leaf)[..., None], rgb)
        # outside the field: pasture (render_ground's "pasture" stage)
        grass = p.grass * ((0.75 + 0.4 * moist) * (0.7 + 0.45 * leaf))[..., None]
        grass = grass * (1 - dry_mix[..., None]) + p.dry * dry_mix[..., None]
        outside = (1.0 - field)[..., None]
        rgb = rgb * (1 - outside) + grass * outside
        out = (np.clip(rgb[..., ::-1], 0, 1) * 255.0 + 0.5).astype(np.uint8)
        n_out = int(round(TILE_M * r_out))
        if n_out != n:
            out = cv2.resize(out, (n_out, n_out), interpolation=cv2.INTER_AREA)
        return out


class TileCache:
    """LRU cache of rendered tiles under a byte budget, and the mosaic of the tiles a frame needs."""

    def __init__(self, ground: GroundModel, budget_bytes: int, finish=None) -> None:
        self.ground = ground
        self.finish = finish            # applied to each rendered tile (the camera's tone curve)
        self.budget_bytes = int(budget_bytes)
        self._tiles: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._mosaic_key: tuple | None = None
        self._mosaic: np.ndarray | None = None
        self._lock = threading.Lock()   # the cache is shared with a prefetching thread
        self.rendered = 0

    def nbytes(self) -> int:
        return self._bytes + (self._mosaic.nbytes if self._mosaic is not None else 0)

    def _cached(self, key) -> np.ndarray | None:
        with self._lock:
            t = self._tiles.get(key)
            if t is not None:
                self._tiles.move_to_end(key)
            return t

    def ensure(self, level: int, ix: int, iy: int) -> int:
        """Render tile (level, ix, iy) if it is not cached; 1 if it was rendered, else 0."""
        if self._cached((level, ix, iy)) is not None:
            return 0
        self.tile(level, ix, iy)
        return 1

    def tile(self, level: int, ix: int, iy: int) -> np.ndarray:
        key = (level, ix, iy)
        t = self._cached(key)
        if t is not None:
            return t
        t = self.ground.render_tile(level, ix, iy)   # outside the lock: a pure function of the key
        if self.finish is not None:
            t = self.finish(t)
        t.setflags(write=False)
        with self._lock:
            if key in self._tiles:
                return self._tiles[key]
            self.rendered += 1
            self._tiles[key] = t
            self._bytes += t.nbytes
            while self._bytes > self.budget_bytes and len(self._tiles) > 1:
                _, old = self._tiles.popitem(last=False)
                self._bytes -= old.nbytes
        return t

    def mosaic(self, level: int, ix0: int, iy0: int, ix1: int, iy1: int) -> np.ndarray:
        """Tiles ix0..ix1 x iy0..iy1 (inclusive) joined, row 0 at the north edge of iy1."""
        key = (level, ix0, iy0, ix1, iy1)
        if key == self._mosaic_key and self._mosaic is not None:
            return self._mosaic
        n = int(round(TILE_M * LEVEL_PX_PER_M[level]))
        out = np.empty(((iy1 - iy0 + 1) * n, (ix1 - ix0 + 1) * n, 3), np.uint8)
        for iy in range(iy0, iy1 + 1):
            row = (iy1 - iy) * n
            for ix in range(ix0, ix1 + 1):
                col = (ix - ix0) * n
                out[row:row + n, col:col + n] = self.tile(level, ix, iy)
        self._mosaic_key, self._mosaic = key, out
        return out
