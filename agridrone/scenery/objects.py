"""Obstacles drawn into a scene: tree, person, animal, vehicle, pole (or pylon), building.

Two views. ``nadir``: seen from above; tall things lean away from the image centre (the
perspective of a real nadir camera) and cast a shadow along the sun vector. ``oblique``: seen
from the side at a depression angle; heights shrink by cos(depression), ground depth by
sin(depression). Each draw returns the object's pixel mask (uint8 0/1), from which the box is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agridrone.scenery.field import hsv_rgb


@dataclass(frozen=True)
class View:
    """How the camera sees the spot where an object stands."""

    kind: str                  # "nadir" | "oblique"
    px_per_m: float            # horizontal ground scale at the object's base
    centre_xy: tuple[float, float]
    alt_m: float
    sun_xy: tuple[float, float]  # nadir: shadow offset per metre of height (unit ground metres)
    depression_rad: float = np.pi / 2


class Painter:
    """Paints textured parts into a float RGB canvas and collects one object's mask."""

    def __init__(self, rgb: np.ndarray, shadow: np.ndarray, tex: np.ndarray) -> None:
        self.rgb, self.shadow, self.tex = rgb, shadow, tex
        self.mask = np.zeros(rgb.shape[:2], np.uint8)

    def _part(self) -> np.ndarray:
        return np.zeros(self.rgb.shape[:2], np.uint8)

    def _raster(self, poly=None, circle=None, ellipse=None, line=None, thickness=1) -> np.ndarray:
        """A 0/1 mask of the given shapes (any combination)."""
        part = self._part()
        if poly is not None:
            cv2.fillPoly(part, [np.round(np.asarray(poly)).astype(np.int32)], 1, lineType=cv2.LINE_8)
        if circle is not None:
            (x, y), r = circle
            cv2.circle(part, (int(round(x)), int(round(y))), max(1, int(round(r))), 1, -1)
        if ellipse is not None:
            (x, y), (a, b), ang = ellipse
            cv2.ellipse(part, (int(round(x)), int(round(y))), (max(1, int(round(a))), max(1, int(round(b)))),
                        float(ang), 0, 360, 1, -1)
        if line is not None:
            (x0, y0), (x1, y1) = line
            cv2.line(part, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), 1,
                     max(1, int(round(thickness))))
        return part

    def fill(self, colour, poly=None, circle=None, ellipse=None, line=None, thickness=1, texture=0.25):
        part = self._raster(poly, circle, ellipse, line, thickness)
        m = part.astype(bool)
        if m.any():
            t = 1.0 + texture * (self.tex[m] - 0.5)
            self.rgb[m] = np.clip(np.asarray(colour, np.float32)[None, :] * t[:, None], 0, 1)
            self.mask |= part

    def shade(self, poly=None, circle=None, ellipse=None, line=None, thickness=1):
        part = self._raster(poly, circle, ellipse, line, thickness)
        np.maximum(self.shadow, part.astype(np.float32), out=self.shadow)


def _rot(points, ang):
    c, s = np.cos(ang), np.sin(ang)
    p = np.asarray(points, np.float32)
    return np.stack([p[:, 0] * c - p[:, 1] * s, p[:, 0] * s + p[:, 1] * c], axis=1)


def _lean(v: View, base, z_m):
    """Image position of the point ``z_m`` above ``base`` (nadir perspective).

    Heights above half the camera's altitude are drawn as if at half of it: a nadir survey does not fly
    that low over a tall thing, and the exact projection would smear its top across the image."""
    c = np.asarray(v.centre_xy, np.float32)
    b = np.asarray(base, np.float32)
    k = v.alt_m / max(v.alt_m - z_m, 0.5 * v.alt_m)
    return c + (b - c) * k


def _up(v: View, base, z_m):
    """Image position of the point ``z_m`` above ``base`` (oblique view)."""
    return np.asarray(base, np.float32) - np.array([0, z_m * v.px_per_m * np.cos(v.depression_rad)], np.float32)


def _sun(v: View, base, z_m):
    return np.asarray(base, np.float32) + np.asarray(v.sun_xy, np.float32) * z_m * v.px_per_m


def _rect(cx, cy, length, width, ang):
    pts = _rot([[-length / 2, -width / 2], [length / 2, -width / 2], [length / 2, width / 2],
                [-length / 2, width / 2]], ang)
    return pts + np.array([cx, cy], np.float32)


def draw(rng: np.random.Generator, p: Painter, cls: str, base, v: View) -> None:
    """Draw one object of class ``cls`` standing at ``base`` (image pixels)."""
    fn = {"tree": _tree, "person": _person, "animal": _animal, "vehicle": _vehicle, "pole": _pole,
          "building": _building}[cls]
    fn(rng, p, np.asarray(base, np.float32), v, v.px_per_m)


def _tree(rng, p, b, v, s):
    r_m, h_m = rng.uniform(1.2, 4.5), rng.uniform(4.0, 14.0)
    h_m = max(h_m, 2.2 * r_m)
    leafy = hsv_rgb(rng.uniform(75, 140), rng.uniform(0.45, 0.85), rng.uniform(0.15, 0.4))
    lit = np.clip(leafy * rng.uniform(1.25, 1.6), 0, 1)
    blobs = [(rng.uniform(-0.45, 0.45, 2), rng.uniform(0.45, 0.75)) for _ in range(rng.integers(4, 9))]
    if v.kind == "nadir":
        top = _lean(v, b, h_m - 0.6 * r_m)
        for off, rr in blobs:
            p.shade(circle=(_sun(v, b, h_m - r_m) + off * r_m * s, rr * r_m * s))
        for off, rr in blobs:
            p.fill(leafy, circle=(top + off * r_m * s, rr * r_m * s), texture=0.6)
        sun = -np.asarray(v.sun_xy, np.float32)
        sun = sun / max(np.linalg.norm(sun), 1e-6)
        for off, rr in blobs[: max(2, len(blobs) // 2)]:
            p.fill(lit, circle=(top + (off + 0.25 * sun) * r_m * s, 0.55 * rr * r_m * s), texture=0.6)
    else:
        vs = np.cos(v.depression_rad)
        p.shade(ellipse=(b, (r_m * s, 0.4 * r_m * s * np.sin(v.depression_rad) + 1), 0))
        trunk_top = _up(v, b, h_m - 1.5 * r_m)
        p.fill(hsv_rgb(25, 0.5, 0.3), line=(b, trunk_top), thickness=max(1, 0.35 * s))
        c = _up(v, b, h_m - r_m)
        for off, rr in blobs:
            p.fill(leafy, ellipse=(c + off * r_m * s * np.array([1, vs]), (rr * r_m * s, rr * r_m * s * max(vs, 0.5)),
                                   0), texture=0.6)
        for off, rr in blobs[:2]:
            p.fill(lit, circle=(c + off * r_m * s * 0.6 - [0, 0.3 * r_m * s * vs], 0.5 * rr * r_m * s),
                   texture=0.6)


def _clothes(rng):
    if rng.random() < 0.5:
        return hsv_rgb(rng.uniform(0, 360), rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))  # hi-vis or bright
    return hsv_rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.5), rng.uniform(0.1, 0.7))


def _person(rng, p, b, v, s):
    h_m = rng.uniform(1.55, 1.9)
    shirt, trousers = _clothes(rng), _clothes(rng) * 0.6
    head = hsv_rgb(rng.uniform(10, 35), rng.uniform(0.2, 0.7), rng.uniform(0.15, 0.8))
    if v.kind == "nadir":
        ang = rng.uniform(0, 180)
        p.shade(line=(b, _sun(v, b, h_m)), thickness=max(2, 0.4 * s))
        sh = _lean(v, b, 0.8 * h_m)
        p.fill(trousers, line=(b, _lean(v, b, 0.5 * h_m)), thickness=max(2, 0.28 * s))
        p.fill(shirt, line=(_lean(v, b, 0.5 * h_m), sh), thickness=max(2, 0.35 * s))
        p.fill(shirt, ellipse=(sh, (0.25 * s + 0.5, 0.14 * s + 0.5), ang))
        p.fill(head, circle=(_lean(v, b, h_m - 0.1), 0.11 * s + 0.5))
    else:
        p.shade(ellipse=(b, (0.4 * s, 0.15 * s + 1), 0))
        w = 0.2 * s
        for dx in (-0.5 * w, 0.5 * w):
            p.fill(trousers, line=(b + [dx, 0], _up(v, b, 0.85) + [dx * 0.6, 0]), thickness=max(1, 0.14 * s))
        top, mid = _up(v, b, 1.45 * h_m / 1.75), _up(v, b, 0.85 * h_m / 1.75)
        p.fill(shirt, poly=[mid + [-w, 0], mid + [w, 0], top + [w * 1.1, 0], top + [-w * 1.1, 0]])
        for dx in (-1.15 * w, 1.15 * w):
            p.fill(shirt, line=(top + [dx, 0], _up(v, b, 0.8) + [dx * 1.2, 0]), thickness=max(1, 0.1 * s))
        p.fill(head, circle=(_up(v, b, h_m - 0.12), 0.12 * s + 0.5))


def _animal(rng, p, b, v, s):
    kind = rng.integers(0, 3)  # cow, sheep, horse
    length_m = [rng.uniform(1.9, 2.5), rng.uniform(1.0, 1.4), rng.uniform(2.0, 2.5)][kind]
    hgt_m = [1.35, 0.8, 1.55][kind]
    coats = [hsv_rgb(0, 0, 0.08), hsv_rgb(20, 0.6, 0.35), hsv_rgb(30, 0.2, 0.9), hsv_rgb(30, 0.5, 0.6),
             hsv_rgb(10, 0.7, 0.25)]
    coat = coats[2] * rng.uniform(0.8, 1.0) if kind == 1 else coats[rng.integers(0, 5)]
    heading = rng.uniform(0, 2 * np.pi)
    if v.kind == "nadir":
        c = _lean(v, b, 0.7 * hgt_m)
        p.shade(ellipse=(_sun(v, b, 0.8 * hgt_m), (0.5 * length_m * s, 0.22 * length_m * s),
                         np.degrees(heading)))
        p.fill(coat, ellipse=(c, (0.5 * length_m * s + 0.5, 0.2 * length_m * s + 0.5), np.degrees(heading)),
               texture=0.4)
        if kind == 0 and rng.random() < 0.5:  # Holstein patches
            off = _rot([[rng.uniform(-0.2, 0.2) * length_m * s, 0]], heading)[0]
            p.fill(coats[2], ellipse=(c + off, (0.18 * length_m * s + 0.5, 0.12 * length_m * s + 0.5),
                                      rng.uniform(0, 180)))
        head = c + _rot([[0.58 * length_m * s, 0]], heading)[0]
        p.fill(coat * 0.85, ellipse=(head, (0.14 * length_m * s + 0.5, 0.08 * length_m * s + 0.5),
                                     np.degrees(heading)))
    else:
        proj = abs(np.cos(heading)) * 0.5 + 0.5
        sgn = 1 if np.cos(heading) >= 0 else -1
        L = length_m * s * proj
        p.shade(ellipse=(b, (0.55 * L, 0.2 * L + 1), 0))
        body = _up(v, b, 0.68 * hgt_m)
        leg_len = b[1] - _up(v, b, 0.62 * hgt_m)[1]
        for dx in (-0.35, -0.2, 0.2, 0.35):
            x = b[0] + dx * L
            p.fill(coat * 0.8, line=((x, b[1]), (x, b[1] - leg_len)), thickness=max(1, 0.07 * length_m * s))
        p.fill(coat, ellipse=(body, (0.5 * L + 0.5, 0.18 * length_m * s * np.cos(v.depression_rad) + 0.8), 0),
               texture=0.4)
        head = body + [sgn * 0.55 * L, -0.2 * hgt_m * s * np.cos(v.depression_rad)]
        p.fill(coat * 0.9, ellipse=(head, (0.12 * length_m * s + 0.5, 0.08 * length_m * s + 0.5), -sgn * 30))


def _vehicle(rng, p, b, v, s):
    kind = rng.integers(0, 4)  # car, pickup, truck, tractor
    L, W, H = [(4.5, 1.8, 1.5), (5.3, 2.0, 1.8), (8.5, 2.5, 3.2), (4.3, 2.3, 2.9)][kind]
    L *= rng.uniform(0.9, 1.1)
    if kind == 3:
        paint = hsv_rgb([120, 0, 220, 50][rng.integers(0, 4)], 0.8, rng.uniform(0.45, 0.8))
    else:
        paint = hsv_rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.8), rng.uniform(0.15, 0.95))
    dark = np.array([0.06, 0.07, 0.08], np.float32)
    ang = rng.uniform(0, np.pi * 2)
    if v.kind == "nadir":
        foot = _rect(b[0], b[1], L * s, W * s, ang)
        p.shade(poly=cv2.convexHull(np.concatenate([foot, foot + np.asarray(v.sun_xy) * H * s]).astype(np.float32)).reshape(-1, 2))
        if kind == 3:  # tractor: wheels, hood, cabin
            for fx, fy, wl, ww in ((-0.3, 0.55, 1.5, 0.55), (-0.3, -0.55, 1.5, 0.55), (0.3, 0.48, 0.9, 0.4),
                                   (0.3, -0.48, 0.9, 0.4)):
                c = b + _rot([[fx * L * s, fy * W * s]], ang)[0]
                p.fill(dark, poly=_rect(c[0], c[1], wl * s, ww * s, ang), texture=0.2)
            hood = _lean(v, b + _rot([[0.25 * L * s, 0]], ang)[0], 1.5)
            p.fill(paint, poly=_rect(hood[0], hood[1], 0.45 * L * s, 0.45 * W * s, ang))
            cab = _lean(v, b + _rot([[-0.2 * L * s, 0]], ang)[0], H)
            p.fill(paint * 0.9, poly=_rect(cab[0], cab[1], 0.42 * L * s, 0.7 * W * s, ang))
            p.fill(np.array([0.9, 0.9, 0.9]) * rng.uniform(0.2, 1.0), poly=_rect(cab[0], cab[1], 0.35 * L * s,
                                                                                  0.6 * W * s, ang))
        else:
            top = _lean(v, b, H)
            walls = np.concatenate([foot, _rect(top[0], top[1], L * s, W * s, ang)])
            p.fill(paint * 0.7, poly=cv2.convexHull(walls.astype(np.float32)).reshape(-1, 2))
            p.fill(paint, poly=_rect(top[0], top[1], L * s, W * s, ang))
            if kind == 2:  # truck: cab in front of a box
                cab = top + _rot([[0.38 * L * s, 0]], ang)[0]
                p.fill(hsv_rgb(rng.uniform(0, 360), 0.6, 0.6), poly=_rect(cab[0], cab[1], 0.22 * L * s, W * s, ang))
            else:
                p.fill(dark, poly=_rect(*(top + _rot([[0.12 * L * s, 0]], ang)[0]), 0.14 * L * s, 0.85 * W * s, ang))
                p.fill(paint * 0.9, poly=_rect(*(top - _rot([[0.1 * L * s, 0]], ang)[0]), 0.3 * L * s, 0.8 * W * s,
                                               ang))
    else:
        vs, ds = np.cos(v.depression_rad), np.sin(v.depression_rad)
        lp = (abs(np.cos(ang)) * L + abs(np.sin(ang)) * W) * s
        dp = (abs(np.sin(ang)) * L + abs(np.cos(ang)) * W) * s * ds
        p.shade(ellipse=(b, (0.6 * lp, 0.6 * dp + 1), 0))
        hpx = H * s * vs
        x0, x1, y = b[0] - lp / 2, b[0] + lp / 2, b[1]
        wheel_r = (0.75 if kind == 3 else 0.35) * s
        body_bottom = y - 0.5 * wheel_r
        p.fill(paint * 0.8, poly=[(x0, body_bottom), (x1, body_bottom), (x1, y - 0.55 * hpx), (x0, y - 0.55 * hpx)])
        p.fill(paint, poly=[(x0, y - 0.55 * hpx), (x1, y - 0.55 * hpx), (x1 + 0.2 * dp, y - 0.55 * hpx - dp),
                            (x0 + 0.2 * dp, y - 0.55 * hpx - dp)])
        cw = 0.45 * lp
        cx0 = b[0] - cw / 2 + rng.uniform(-0.2, 0.2) * lp
        p.fill(dark + 0.15, poly=[(cx0, y - 0.55 * hpx), (cx0 + cw, y - 0.55 * hpx), (cx0 + cw, y - hpx),
                                  (cx0, y - hpx)])
        p.fill(paint * 0.95, poly=[(cx0, y - hpx), (cx0 + cw, y - hpx), (cx0 + cw + 0.2 * dp, y - hpx - 0.5 * dp),
                                   (cx0 + 0.2 * dp, y - hpx - 0.5 * dp)])
        for fx in (0.2, 0.8):
            p.fill(dark, circle=((x0 + fx * lp, y - wheel_r), wheel_r * (1.4 if kind == 3 and fx < 0.5 else 1)))


def _pole(rng, p, b, v, s):
    h_m = rng.uniform(6.0, 14.0)
    pylon = rng.random() < 0.25
    col = hsv_rgb(25, 0.35, 0.35) if rng.random() < 0.5 else hsv_rgb(0, 0.0, rng.uniform(0.45, 0.75))
    arm_m = rng.uniform(1.2, 2.4)
    arm_ang = rng.uniform(0, np.pi)
    th = max(1.0, 0.3 * s)
    if v.kind == "nadir":
        if pylon:
            h_m *= 1.5
            base = _rect(b[0], b[1], 3.0 * s, 3.0 * s, arm_ang)
            tops = [_lean(v, q, h_m) for q in _rect(b[0], b[1], 0.8 * s, 0.8 * s, arm_ang)]
            for q, t in zip(base, tops):
                p.shade(line=(q, _sun(v, q, h_m)), thickness=th)
                p.fill(col, line=(q, t), thickness=th)
            top = _lean(v, b, h_m)
        else:
            p.shade(line=(b, _sun(v, b, h_m)), thickness=max(1.5, th))
            top = _lean(v, b, h_m)
            p.fill(col, line=(b, top), thickness=th)
        d = np.array([np.cos(arm_ang), np.sin(arm_ang)]) * arm_m * s * (3 if pylon else 1)
        p.fill(col * 0.8, line=(top - d, top + d), thickness=max(1.0, 0.15 * s))
        p.shade(line=(_sun(v, b, h_m) - d, _sun(v, b, h_m) + d), thickness=max(1.0, 0.15 * s))
    else:
        top = _up(v, b, h_m)
        if pylon:
            w = 3.0 * s
            p.fill(col, line=(b - [w / 2, 0], top), thickness=th)
            p.fill(col, line=(b + [w / 2, 0], top), thickness=th)
            for f in (0.3, 0.6):
                q = b + (top - b) * f
                p.fill(col, line=(q - [w * (1 - f) / 2, 0], q + [w * (1 - f) / 2, 0]), thickness=th)
        else:
            p.fill(col, line=(b, top), thickness=th)
        half = arm_m * s * abs(np.cos(arm_ang)) * (3 if pylon else 1) + 1
        p.fill(col * 0.8, line=(top + [-half, 0.05 * h_m * s], top + [half, 0.05 * h_m * s]),
               thickness=max(1.0, 0.15 * s))


def _building(rng, p, b, v, s):
    L, W = rng.uniform(6, 20), rng.uniform(5, 12)
    wall_m, ridge_m = rng.uniform(2.8, 7.0), rng.uniform(1.0, 3.5)
    roof = [hsv_rgb(8, 0.65, 0.5), hsv_rgb(0, 0, 0.55), hsv_rgb(210, 0.2, 0.4), hsv_rgb(0, 0, 0.25),
            hsv_rgb(30, 0.3, 0.6)][rng.integers(0, 5)] * rng.uniform(0.85, 1.15)
    wall = hsv_rgb(rng.uniform(20, 50), rng.uniform(0.0, 0.35), rng.uniform(0.5, 0.9))
    ang = rng.uniform(0, np.pi)
    if v.kind == "nadir":
        foot = _rect(b[0], b[1], L * s, W * s, ang)
        p.shade(poly=cv2.convexHull(np.concatenate([foot, foot + np.asarray(v.sun_xy) * (wall_m + ridge_m) * s]).astype(np.float32))
                .reshape(-1, 2))
        eave = np.array([_lean(v, q, wall_m) for q in foot])
        for i in range(4):
            j = (i + 1) % 4
            p.fill(wall * (0.6 + 0.1 * i), poly=[foot[i], foot[j], eave[j], eave[i]])
        ridge_ends = [_lean(v, (foot[0] + foot[3]) / 2, wall_m + ridge_m),
                      _lean(v, (foot[1] + foot[2]) / 2, wall_m + ridge_m)]
        p.fill(roof, poly=[eave[0], eave[1], ridge_ends[1], ridge_ends[0]], texture=0.3)
        p.fill(roof * 0.75, poly=[eave[3], eave[2], ridge_ends[1], ridge_ends[0]], texture=0.3)
    else:
        vs, ds = np.cos(v.depression_rad), np.sin(v.depression_rad)
        lp = (abs(np.cos(ang)) * L + abs(np.sin(ang)) * W) * s
        dp = (abs(np.sin(ang)) * L + abs(np.cos(ang)) * W) * s * ds
        x0, x1, y = b[0] - lp / 2, b[0] + lp / 2, b[1]
        hw, hr = wall_m * s * vs, ridge_m * s * vs
        p.shade(poly=[(x0, y), (x1, y), (x1 + 0.6 * lp, y + 0.3 * dp), (x0 + 0.6 * lp, y + 0.3 * dp)])
        p.fill(wall, poly=[(x0, y), (x1, y), (x1, y - hw), (x0, y - hw)])
        p.fill(wall * 0.7, poly=[(x1, y), (x1 + 0.3 * dp, y - dp), (x1 + 0.3 * dp, y - dp - hw), (x1, y - hw)])
        p.fill(roof, poly=[(x0, y - hw), (x1, y - hw), (x1 + 0.3 * dp, y - hw - dp - hr),
                           (x0 + 0.3 * dp, y - hw - dp - hr)], texture=0.3)
        n_win = int(lp // max(3.0 * s, 4))
        for k in range(min(n_win, 6)):
            wx = x0 + (k + 0.5) * lp / max(n_win, 1)
            p.fill(np.array([0.1, 0.12, 0.15]), poly=[(wx - 0.4 * s, y - 0.4 * hw), (wx + 0.4 * s, y - 0.4 * hw),
                                                       (wx + 0.4 * s, y - 0.75 * hw), (wx - 0.4 * s, y - 0.75 * hw)])
