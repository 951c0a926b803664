"""A map of a planned mission, drawn with OpenCV, for a person to check at a glance.

North is up. Field (green) with the headland, exclusion zones (red) with their keep-out buffers
(orange hatch), the fence (dashed red), survey lines (blue, arrows give the direction, the first
line is numbered), transits (grey), home / take-off (H), a scale bar, a north arrow, a legend and
the plan's figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agridrone.errors import MissionError
from agridrone.mission import geometry as g

WHITE, BLACK, GREY = (255, 255, 255), (20, 20, 20), (140, 140, 140)
FIELD_FILL, FIELD_EDGE = (150, 220, 160), (40, 130, 40)
ZONE_FILL, ZONE_EDGE, BUFFER = (60, 60, 220), (30, 30, 160), (60, 160, 250)
LINE, FENCE = (200, 90, 20), (50, 50, 230)
FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _parts(geom):
    if geom is None or geom.is_empty:
        return []
    return list(geom.geoms) if hasattr(geom, "geoms") else [geom]


class _Canvas:
    def __init__(self, bounds, width_px: int, height_px: int, panel_px: int) -> None:
        minx, miny, maxx, maxy = bounds
        self.map_w = width_px - panel_px
        self.h = height_px
        margin = 40
        self.scale = min((self.map_w - 2 * margin) / max(maxx - minx, 1), (height_px - 2 * margin) / max(maxy - miny, 1))
        self.cx = (minx + maxx) / 2
        self.cy = (miny + maxy) / 2

    def px(self, xy) -> np.ndarray:
        xy = np.asarray(xy, float).reshape(-1, 2)
        u = self.map_w / 2 + (xy[:, 0] - self.cx) * self.scale
        v = self.h / 2 - (xy[:, 1] - self.cy) * self.scale
        return np.round(np.column_stack([u, v])).astype(np.int32)


def _poly(cv2, img, canvas, geom, color, *, fill=False, thickness=2):
    for p in _parts(geom):
        if p.geom_type != "Polygon":
            continue
        rings = [canvas.px(np.asarray(p.exterior.coords))]
        holes = [canvas.px(np.asarray(r.coords)) for r in p.interiors]
        if fill:
            cv2.fillPoly(img, rings + holes, color, lineType=cv2.LINE_AA)
        else:
            cv2.polylines(img, rings + holes, True, color, thickness, cv2.LINE_AA)


def _dashed(cv2, img, pts, color, dash=10, thickness=2):
    for a, b in zip(pts[:-1], pts[1:]):
        d = float(np.hypot(*(b - a)))
        n = max(1, int(d // dash))
        for i in range(0, n, 2):
            p = a + (b - a) * (i / n)
            q = a + (b - a) * (min(i + 1, n) / n)
            cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q), color, thickness, cv2.LINE_AA)


def _nice_length(max_m: float) -> float:
    for v in (1000, 500, 200, 100, 50, 20, 10, 5):
        if v <= max_m:
            return float(v)
    return 1.0


def draw(compiled, width_px: int = 1600, height_px: int = 1100) -> np.ndarray:
    import cv2

    plan, m = compiled.plan, compiled.mission
    fence = g.grow(plan.field, m.fence_margin_m)
    panel = 360
    canvas = _Canvas(fence.bounds, width_px, height_px, panel)
    img = np.full((height_px, width_px, 3), 245, np.uint8)
    _poly(cv2, img, canvas, plan.field, FIELD_FILL, fill=True)
    _poly(cv2, img, canvas, plan.field, FIELD_EDGE, thickness=3)
    # keep-out buffers: a hatched, translucent band; the zones themselves solid
    over = img.copy()
    _poly(cv2, over, canvas, plan.keepout, BUFFER, fill=True)
    img = cv2.addWeighted(over, 0.45, img, 0.55, 0)
    _poly(cv2, img, canvas, plan.keepout, BUFFER, thickness=2)
    frame = plan.frame
    for z in m.zones:
        shape = g.zone_shape(z, frame)
        _poly(cv2, img, canvas, shape, ZONE_FILL, fill=True)
        _poly(cv2, img, canvas, shape, ZONE_EDGE, thickness=2)
        c = canvas.px(np.asarray(shape.centroid.coords))[0]
        cv2.putText(img, z.name, (int(c[0]) - 4 * len(z.name), int(c[1]) + 5), FONT, 0.5, WHITE, 3, cv2.LINE_AA)
        cv2.putText(img, z.name, (int(c[0]) - 4 * len(z.name), int(c[1]) + 5), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    _dashed(cv2, img, canvas.px(np.asarray(fence.exterior.coords)).astype(float), FENCE, dash=12, thickness=2)
    # path: transits grey, survey lines blue with arrows
    path = canvas.px(np.array(plan.path_xy))
    cv2.polylines(img, [path], False, GREY, 1, cv2.LINE_AA)
    arrow_every_px = 140
    for i, (a, b) in enumerate(plan.lines):
        pa, pb = canvas.px([a, b])
        cv2.line(img, tuple(int(v) for v in pa), tuple(int(v) for v in pb), LINE, 2, cv2.LINE_AA)
        seg_px = float(np.hypot(*(pb - pa)))
        n_arrows = max(1, int(seg_px // arrow_every_px))
        for k in range(n_arrows):
            t = (k + 0.5) / n_arrows
            mid = pa + (pb - pa) * t
            tip = mid + (pb - pa) / max(seg_px, 1) * 12
            cv2.arrowedLine(img, tuple(int(v) for v in mid), tuple(int(v) for v in tip), LINE, 2, cv2.LINE_AA,
                            tipLength=0.9)
        if i == 0:
            cv2.circle(img, tuple(int(v) for v in pa), 9, LINE, -1, cv2.LINE_AA)
            cv2.putText(img, "1", (int(pa[0]) - 5, int(pa[1]) + 5), FONT, 0.45, WHITE, 1, cv2.LINE_AA)
    h = canvas.px([(0.0, 0.0)])[0]
    cv2.circle(img, tuple(int(v) for v in h), 13, BLACK, -1, cv2.LINE_AA)
    cv2.putText(img, "H", (int(h[0]) - 7, int(h[1]) + 7), FONT, 0.6, WHITE, 2, cv2.LINE_AA)
    for lat, lon in m.rally_points:
        r = canvas.px(g.to_enu(frame, [(lat, lon)]))[0]
        cv2.drawMarker(img, tuple(int(v) for v in r), BLACK, cv2.MARKER_DIAMOND, 16, 2)
    # scale bar (bottom left) and north arrow (top right of the map)
    length_m = _nice_length((canvas.map_w * 0.25) / canvas.scale)
    bar_px = int(length_m * canvas.scale)
    x0, y0 = 30, height_px - 30
    cv2.rectangle(img, (x0 - 8, y0 - 34), (x0 + bar_px + 60, y0 + 10), WHITE, -1)
    cv2.rectangle(img, (x0, y0 - 8), (x0 + bar_px // 2, y0), BLACK, -1)
    cv2.rectangle(img, (x0, y0 - 8), (x0 + bar_px, y0), BLACK, 1)
    label = f"{length_m:.0f} m" if length_m < 1000 else f"{length_m / 1000:.0f} km"
    cv2.putText(img, "0", (x0 - 4, y0 - 14), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, label, (x0 + bar_px - 10, y0 - 14), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    nx, ny = canvas.map_w - 50, 90
    cv2.fillPoly(img, [np.array([(nx, ny - 50), (nx - 14, ny), (nx, ny - 12), (nx + 14, ny)], np.int32)], BLACK,
                 cv2.LINE_AA)
    cv2.putText(img, "N", (nx - 9, ny - 58), FONT, 0.8, BLACK, 2, cv2.LINE_AA)
    _panel(cv2, img, compiled, width_px - panel, height_px)
    return img


def _panel(cv2, img, compiled, x0: int, height_px: int) -> None:
    m, plan = compiled.mission, compiled.plan
    cv2.rectangle(img, (x0, 0), (img.shape[1], height_px), WHITE, -1)
    cv2.line(img, (x0, 0), (x0, height_px), GREY, 1)
    y = 36

    def text(s, scale=0.5, bold=1, color=BLACK):
        nonlocal y
        cv2.putText(img, s, (x0 + 16, y), FONT, scale, color, bold, cv2.LINE_AA)
        y += int(34 * scale + 8)

    text(m.name[:28], 0.75, 2)
    text(f"{m.crop[:34]}")
    y += 6
    s = plan.summary()
    for line in (f"lines: {s['lines']} at {s['line_angle_deg']:g} deg, {s['line_spacing_m']:g} m apart",
                 f"path: {s['path_length_m'] / 1000:.2f} km, {s['flight_time_s'] / 60:.1f} min at {m.speed_m_s:g} m/s",
                 f"field {s['field_area_ha']:.2f} ha, covered {s['area_covered_ha']:.2f} ha",
                 f"altitude {m.altitude_agl_m:g} m AGL, GSD {s['gsd_cm_px']:.2f} cm/px",
                 f"photo every {s['trigger_distance_m']:g} m", f"end: {m.end_action.upper()}",
                 f"fence: +{m.fence_margin_m:g} m, max alt {compiled.params['FENCE_ALT_MAX']:g} m"):
        text(line, 0.45)
    y += 16
    text("Legend", 0.6, 2)
    items = [("field", FIELD_FILL, "fill"), ("exclusion zone", ZONE_FILL, "fill"), ("keep-out buffer", BUFFER, "fill"),
             ("geofence", FENCE, "dash"), ("survey line, direction", LINE, "arrow"), ("transit", GREY, "line"),
             ("home / take-off", BLACK, "home")]
    for label, color, kind in items:
        sx, sy = x0 + 16, y - 10
        if kind == "fill":
            cv2.rectangle(img, (sx, sy - 8), (sx + 34, sy + 8), color, -1)
        elif kind == "dash":
            _dashed(cv2, img, np.array([(sx, sy), (sx + 34, sy)], float), color, dash=6)
        elif kind == "arrow":
            cv2.arrowedLine(img, (sx, sy), (sx + 34, sy), color, 2, cv2.LINE_AA, tipLength=0.35)
        elif kind == "line":
            cv2.line(img, (sx, sy), (sx + 34, sy), color, 1, cv2.LINE_AA)
        else:
            cv2.circle(img, (sx + 17, sy), 9, color, -1, cv2.LINE_AA)
            cv2.putText(img, "H", (sx + 12, sy + 5), FONT, 0.4, WHITE, 1, cv2.LINE_AA)
        cv2.putText(img, label, (sx + 46, sy + 5), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
        y += 30


def write_png(compiled, path: Path) -> None:
    import cv2

    img = draw(compiled)
    if not cv2.imwrite(str(path), img):
        raise MissionError(f"cannot write the map to '{path}': expected a writable .png path")
