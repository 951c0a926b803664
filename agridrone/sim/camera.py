"""The simulated camera (issue 6, item 2): what a camera with given intrinsics and mount sees from
the vehicle's pose over a world (sitl/worlds/*.yaml).

``SimCamera(world)`` loads the world and its mission, builds the ground model (coarse maps of the
field and its patches; see ``camera_ground``) and from then on ``render(pose)`` returns a
:class:`agridrone.types.Frame` (BGR uint8 at the camera's image size, ``ts_ns`` of the pose):

1. the ground->image homography of flat ground at the world's altitude, from four or more pixel
   rays intersected with the ground by :class:`agridrone.geo.Projector` (so the picture agrees
   with the projection the perception stages use);
2. the texture tiles under the visible footprint at the pyramid level nearest the frame's ground
   sampling distance, joined and warped in one ``cv2.warpPerspective``;
3. haze with distance and sky above the horizon when the view reaches far (oblique mounts);
4. the obstacles, standing up, drawn with the training renderer's painters at the real geometry
   (``camera_objects``), far ones first;
5. lens distortion (when the camera model has any), then the camera effects.

``ground_truth_in_view(pose)`` lists the obstacles and patches in the frame with their pixel boxes.
The ``sim://WORLD`` frame source of the flight loop (``SimCameraSource``, ``sim_scheme``) is in
``agridrone.sim.camera_source``.

Altitudes follow the Projector: ``pose.alt_rel_home_m`` above the mission's home, the world's
ground at ``ground_alt_amsl_m - home ground altitude`` relative to it; a vehicle on (or, by
altimeter error, below) the ground is seen from ``MIN_HEIGHT_M``, where its camera sits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
import cv2
import numpy as np

from agridrone.errors import AgriDroneError, CameraError
from agridrone.geo import CameraModel, CameraMount, Projector
from agridrone.types import Frame, Pose

SIM_SCHEME = "sim://"
MAX_RANGE_M = 400.0          # ground beyond this (oblique views) is haze
MAX_TILES = 160              # a frame needing more tiles than this uses a coarser level
HAZE_M = 600.0               # the training renderer draws its haze length from 120..600 m
HAZE_STEP_PX = 8             # haze and sky are computed on a grid this coarse, then upsampled
MIN_HEIGHT_M = 0.3           # the camera's height above the ground when the vehicle stands on it


@dataclass(frozen=True)
class InView:
    """Something of the world in the frame: an obstacle (``kind`` "obstacle", ``cls`` its class) or a
    crop-health patch (``kind`` "patch", ``cls`` stressed / weeds / bare_soil); ``index`` is its
    position in the world file's list; ``box_xyxy`` its pixels in the frame (obstacles: what the
    painter drew, shadow excluded; patches: the visible part of the polygon)."""

    kind: str
    cls: str
    index: int
    box_xyxy: tuple[float, float, float, float]
    lat_deg: float
    lon_deg: float
    distance_m: float
    base_px: tuple[float, float] | None = None    # obstacles: where the ground point projects
    top_px: tuple[float, float] | None = None     # obstacles: where the top projects
    visible_area_m2: float | None = None          # patches: area inside the footprint


def camera_for_mission(cam, size_wh: tuple[int, int]) -> CameraModel:
    """The mission's camera (sensor, focal length) at ``size_wh`` with square pixels: a centred crop
    of the sensor when the aspect ratios differ (as a camera's video mode does)."""
    w, h = int(size_wh[0]), int(size_wh[1])
    if w <= 0 or h <= 0:
        raise CameraError(f"simulated camera size: expected positive pixels, got {w}x{h}")
    pitch_mm = min(cam.sensor_width_mm / w, cam.sensor_height_mm / h)
    f_px = cam.focal_length_mm / pitch_mm
    return CameraModel(w, h, f_px, f_px, w / 2.0, h / 2.0)


class SimCamera:
    """Renders frames of one world; see the module docstring."""

    def __init__(self, world, *, size_wh: tuple[int, int] = (640, 480), camera: CameraModel | None = None,
                 mount: CameraMount | None = None, seed: int = 0, cache_mb: float = 96.0,
                 noise: bool = True, sun_azimuth_deg: float | None = None, sun_elevation_deg: float = 45.0,
                 mission=None) -> None:
        from agridrone.mission.geometry import frame_of, to_enu
        from agridrone.mission.loader import load_mission
        from agridrone.sim.camera_ground import GroundModel, TileCache, stable_seed
        from agridrone.sim.camera_objects import Photometric, object_texture
        from agridrone.sim.world import World, load_world

        if isinstance(world, World):
            self.world = world
        else:
            if world is None or (isinstance(world, str) and not world.strip()):
                raise CameraError(f"simulated camera: expected a world file (sitl/worlds/*.yaml), got {world!r}")
            path = Path(str(world)[len(SIM_SCHEME):] if str(world).startswith(SIM_SCHEME) else world)
            try:
                self.world = load_world(path)
            except AgriDroneError as err:
                raise CameraError(f"simulated camera: world {path}: {err}") from None
        if mission is not None:  # a world made in memory (training data) brings its mission along
            self.mission = mission
        else:
            try:
                self.mission = load_mission(self.world.mission_path)
            except AgriDroneError as err:
                raise CameraError(f"simulated camera: mission of world {self.world.name}: {err}") from None
        if camera is not None and not isinstance(camera, CameraModel):
            raise CameraError(f"simulated camera: expected a CameraModel, got {type(camera).__name__}")
        self.camera = camera or camera_for_mission(self.mission.camera, size_wh)
        self.mount = mount or CameraMount(pitch_deg=self.mission.camera.pitch_deg)
        self.projector = Projector(self.camera, self.mount)
        self._ideal = Projector(CameraModel(self.camera.width_px, self.camera.height_px, self.camera.fx_px,
                                            self.camera.fy_px, self.camera.cx_px, self.camera.cy_px), self.mount)
        self.size_wh = (self.camera.width_px, self.camera.height_px)
        self.ground_alt_m = self.world.ground_alt_amsl_m - self.mission.home_ground_alt_amsl_m
        self.seed = stable_seed(self.world.name, seed)
        self.frame = frame_of(self.mission)

        field_xy = to_enu(self.frame, self.mission.boundary)
        obs = self.world.obstacles
        self._obs_xy = to_enu(self.frame, [(o.lat_deg, o.lon_deg) for o in obs]) if obs else np.zeros((0, 2))
        self._obs_sizes = [(o.radius_m, o.height_m) for o in obs]
        self._patches = [(p.kind, to_enu(self.frame, p.polygon)) for p in self.world.patches]
        self.ground = GroundModel(field_xy, self._patches, np.vstack([self._obs_xy, [[0.0, 0.0]]]),
                                  self.mission.crop, self.seed)
        self.photometric = Photometric(self.size_wh, self.seed, noise=noise)
        self.tiles = TileCache(self.ground, int(cache_mb * 1e6), finish=self.photometric.tone)
        self._tex = object_texture(self.seed)
        rng = np.random.default_rng([self.seed, 5])
        az = math.radians(rng.uniform(120, 240) if sun_azimuth_deg is None else sun_azimuth_deg)
        el = math.radians(sun_elevation_deg)
        # shadow direction on the ground (east, north) per metre of height: away from the sun
        self._shadow_en = np.array([-math.sin(az), -math.cos(az)]) / math.tan(el)
        self._shadow_strength = float(rng.uniform(0.3, 0.6))
        w, h = self.size_wh
        self._grid = np.mgrid[0:h, 0:w].astype(np.float32)
        self._undistort_maps = self._distortion_maps() if self.camera.dist else None

    # -- geometry -------------------------------------------------------------------------------
    def _check_pose(self, pose) -> Pose:
        if pose is None:
            raise CameraError("simulated camera: expected the vehicle's Pose, got None (no telemetry yet?)")
        if not isinstance(pose, Pose):
            raise CameraError(f"simulated camera: expected an agridrone.types.Pose, got {type(pose).__name__}")
        if pose.alt_rel_home_m - self.ground_alt_m < MIN_HEIGHT_M:
            # on the ground (before take-off, after landing) the camera still sits on the vehicle
            return Pose(pose.ts_ns, pose.lat_deg, pose.lon_deg, pose.alt_amsl_m, self.ground_alt_m + MIN_HEIGHT_M,
                        pose.roll_deg, pose.pitch_deg, pose.yaw_deg, pose.vn_m_s, pose.ve_m_s, pose.vd_m_s)
        return pose

    def _vehicle_en(self, pose: Pose) -> np.ndarray:
        e, n, _ = self.frame.to_enu(pose.lat_deg, pose.lon_deg, self.frame.origin_alt_m)
        return np.array([e, n])

    def _down_map(self, pose: Pose, step: int = HAZE_STEP_PX) -> np.ndarray:
        """The down component of the unit rays (ideal pinhole) of every ``step``-th pixel, at the pixel
        positions ``cv2.resize`` samples when it scales the map back up by ``step``."""
        r = self._ideal._ned_from_cam(pose)[2]  # down row of the camera -> NED rotation
        c = self.camera
        w, h = self.size_wh
        u = (np.arange(-(-w // step), dtype=np.float64) + 0.5) * (w / -(-w // step)) - 0.5
        v = (np.arange(-(-h // step), dtype=np.float64) + 0.5) * (h / -(-h // step)) - 0.5
        x = ((u - c.cx_px) / c.fx_px)[None, :]
        y = ((v - c.cy_px) / c.fy_px)[:, None]
        return (r[0] * x + r[1] * y + r[2]) / np.sqrt(x * x + y * y + 1.0)

    def homography(self, pose: Pose):
        """(H, points): H maps ground ENU metres (east, north, 1) to ideal-image pixels, fitted to the
        ground points ``points`` (ENU) that Projector.ground_offsets_m gives for a grid of pixels;
        (None, []) when the frame sees no ground."""
        w, h = self.size_wh
        uu, vv = np.meshgrid(np.linspace(0, w - 1, 9), np.linspace(0, h - 1, 7))
        u, v = uu.ravel(), vv.ravel()
        north, east = self._ideal.ground_offsets_m(pose, u, v, self.ground_alt_m)
        ok = np.isfinite(north) & (np.hypot(north, east) < MAX_RANGE_M * 4)
        veh = self._vehicle_en(pose)
        shift = np.array([[1.0, 0.0, -veh[0]], [0.0, 1.0, -veh[1]], [0.0, 0.0, 1.0]])
        src = np.column_stack([veh[0] + east[ok], veh[1] + north[ok]])
        if ok.sum() >= 6 and len(set(v[ok])) >= 2 and len(set(u[ok])) >= 2:
            hom, _ = cv2.findHomography(src - veh, np.column_stack([u[ok], v[ok]]), 0)
            if hom is not None:
                return hom @ shift, src
        # a sliver of ground at the bottom of an oblique frame: the same plane-to-image map, in closed form
        if float(np.max(self._ideal.depression_deg(pose, np.array([0.0, w - 1.0]), np.array([h - 1.0, h - 1.0])))) \
                <= 0.0:
            return None, np.zeros((0, 2))
        c = self.camera
        kmat = np.array([[c.fx_px, 0, c.cx_px], [0, c.fy_px, c.cy_px], [0, 0, 1.0]])
        ned_of_en1 = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, pose.alt_rel_home_m - self.ground_alt_m]])
        hom = kmat @ self._ideal._ned_from_cam(pose).T @ ned_of_en1
        return hom / hom[2, 2] @ shift, src

    def _visible_region(self, pose: Pose):
        """The ground the frame sees (ENU polygon, clipped at MAX_RANGE_M), or None."""
        from shapely.geometry import Polygon

        pts = self._visible_points(pose)
        if pts is None:
            return None
        poly = Polygon(pts).buffer(0)
        return poly if not poly.is_empty else None

    def _visible_points(self, pose: Pose):
        """The image border's rays on the ground (ENU, clipped at MAX_RANGE_M along their bearing)."""
        w, h = self.size_wh
        k = 16
        s = np.linspace(0.0, 1.0, k, endpoint=False)
        u = np.concatenate([s * w, np.full(k, float(w)), (1 - s) * w, np.zeros(k)])
        v = np.concatenate([np.zeros(k), s * h, np.full(k, float(h)), (1 - s) * h])
        d = self._ideal.rays_ned(pose, u, v)
        height = pose.alt_rel_home_m - self.ground_alt_m
        horiz = np.hypot(d[:, 0], d[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d[:, 2] > 1e-9, height / d[:, 2], np.inf)
        rng = np.minimum(t * horiz, MAX_RANGE_M)
        if not np.any(d[:, 2] > 1e-9):
            return None
        scale = np.where(horiz > 1e-12, rng / np.where(horiz > 1e-12, horiz, 1), 0.0)
        veh = self._vehicle_en(pose)
        return np.column_stack([veh[0] + d[:, 1] * scale, veh[1] + d[:, 0] * scale])

    def _level(self, pose: Pose, hom) -> int:
        from agridrone.sim.camera_ground import LEVEL_PX_PER_M

        w, h = self.size_wh
        # ground sampling at the lower middle of the frame (nearest the camera in oblique views)
        u, v = w / 2.0, min(h - 1.0, h * 0.75)
        n, e = self._ideal.ground_offsets_m(pose, np.array([u, u + 1, u]), np.array([v, v, v + 1]), self.ground_alt_m)
        if not np.all(np.isfinite(n)):
            return len(LEVEL_PX_PER_M) - 1
        du = math.hypot(n[1] - n[0], e[1] - e[0])
        dv = math.hypot(n[2] - n[0], e[2] - e[0])
        px_per_m = 1.0 / max(math.sqrt(du * dv), 1e-6)
        for lv in range(len(LEVEL_PX_PER_M) - 1, -1, -1):
            if LEVEL_PX_PER_M[lv] >= px_per_m:
                return lv
        return 0

    def _tile_range(self, pose: Pose, hom) -> tuple[int, int, int, int, int]:
        """(level, ix0, iy0, ix1, iy1): the pyramid level and the tiles under the frame's footprint."""
        from agridrone.sim.camera_ground import LEVEL_PX_PER_M, TILE_M

        pts = self._visible_points(pose)
        level = self._level(pose, hom)
        (minx, miny), (maxx, maxy) = pts.min(axis=0), pts.max(axis=0)
        while True:
            ix0, ix1 = math.floor(minx / TILE_M), math.floor(maxx / TILE_M)
            iy0, iy1 = math.floor(miny / TILE_M), math.floor(maxy / TILE_M)
            if (ix1 - ix0 + 1) * (iy1 - iy0 + 1) <= MAX_TILES or level == len(LEVEL_PX_PER_M) - 1:
                break
            level += 1
        if (ix1 - ix0 + 1) * (iy1 - iy0 + 1) > MAX_TILES * 4:  # clamp around the vehicle
            veh = self._vehicle_en(pose)
            cx, cy = math.floor(veh[0] / TILE_M), math.floor(veh[1] / TILE_M)
            ix0, ix1, iy0, iy1 = max(ix0, cx - 12), min(ix1, cx + 12), max(iy0, cy - 12), min(iy1, cy + 12)
        return level, ix0, iy0, ix1, iy1

    def prefetch(self, pose: Pose, max_tiles: int = 64) -> int:
        """Render (into the cache) the tiles a frame at ``pose`` will need; returns how many were new.

        Frames do not depend on what is cached, only their render time does: the sim source calls
        this for the pose ahead, one tile per frame."""
        try:
            pose = self._check_pose(pose)
        except CameraError:
            return 0
        hom, _ = self.homography(pose)
        if hom is None:
            return 0
        level, ix0, iy0, ix1, iy1 = self._tile_range(pose, hom)
        new = 0
        for iy in range(iy0, iy1 + 1):
            for ix in range(ix0, ix1 + 1):
                if new >= max_tiles:
                    return new
                new += self.tiles.ensure(level, ix, iy)
        return new

    # -- rendering ------------------------------------------------------------------------------
    def render(self, pose: Pose) -> Frame:
        """The frame the camera takes at ``pose`` (its ts_ns)."""
        img = self.render_image(pose)
        img.setflags(write=False)
        return Frame(ts_ns=int(pose.ts_ns), image=img, source=f"sim://{self.world.source}")

    def render_image(self, pose: Pose, *, obstacles: bool = True, effects: bool = True) -> np.ndarray:
        """The frame's BGR uint8 pixels (``obstacles``/``effects`` off: for tests and debugging)."""
        from agridrone.sim.camera_ground import LEVEL_PX_PER_M, TILE_M
        from agridrone.sim.camera_objects import HAZE_RGB, paint_obstacles, sky_and_haze

        pose = self._check_pose(pose)
        w, h = self.size_wh
        hom, _ = self.homography(pose)
        haze_bgr = tuple(float(c) * 255 for c in HAZE_RGB[::-1])
        if hom is None:
            img = np.empty((h, w, 3), np.uint8)
            img[...] = haze_bgr
        else:
            level, ix0, iy0, ix1, iy1 = self._tile_range(pose, hom)
            mosaic = self.tiles.mosaic(level, ix0, iy0, ix1, iy1)
            r = LEVEL_PX_PER_M[level]
            # mosaic pixel (col, row) centre -> ENU
            to_enu = np.array([[1.0 / r, 0.0, ix0 * TILE_M + 0.5 / r],
                               [0.0, -1.0 / r, (iy1 + 1) * TILE_M - 0.5 / r], [0.0, 0.0, 1.0]])
            img = cv2.warpPerspective(mosaic, hom @ to_enu, (w, h), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=haze_bgr)
        height = pose.alt_rel_home_m - self.ground_alt_m
        depression = self._ideal.depression_deg(pose, np.array([0, w - 1, 0, w - 1.0]),
                                                np.array([0, 0, h - 1, h - 1.0]))
        if float(np.min(depression)) < 35.0:  # far ground or sky in view
            sky_and_haze(img, self._down_map(pose), height, HAZE_M, MAX_RANGE_M, self.photometric.tone)
        if obstacles and len(self._obs_sizes):
            placed = self._place(pose)
            if placed:
                paint_obstacles(img, self.size_wh, placed, self.seed, self._obs_sizes, self._tex,
                                self._shadow_strength, self.photometric.tone)
        if self._undistort_maps is not None:
            img = cv2.remap(img, self._undistort_maps[0], self._undistort_maps[1], cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
        if effects:
            img = self.photometric.apply(img, pose.ts_ns)
        return img

    def _distortion_maps(self):
        """remap() maps from the distorted output image to the ideal pinhole image (OpenCV's lens
        model, the one CameraModel uses, inverted iteratively by cv2.undistortPointsIter)."""
        w, h = self.size_wh
        c = self.camera
        kmat = np.array([[c.fx_px, 0, c.cx_px], [0, c.fy_px, c.cy_px], [0, 0, 1.0]])
        pts = np.stack([self._grid[1].ravel(), self._grid[0].ravel()], axis=1).reshape(-1, 1, 2).astype(np.float64)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)
        ideal = cv2.undistortPointsIter(pts, kmat, np.asarray(c.dist, np.float64), None, kmat, crit).reshape(h, w, 2)
        return cv2.convertMaps(ideal[..., 0].astype(np.float32), ideal[..., 1].astype(np.float32), cv2.CV_16SC2)

    def _place(self, pose: Pose):
        """The obstacles that may show in the frame, with their geometry for the painters."""
        from agridrone.sim.camera_objects import OBLIQUE_BELOW_DEG, Placed
        from agridrone.scenery.objects import View

        w, h = self.size_wh
        if not len(self._obs_xy):
            return []
        ned_from_cam = self._ideal._ned_from_cam(pose)
        cam_from_ned = ned_from_cam.T
        c = self.camera
        kmat = np.array([[c.fx_px, 0, c.cx_px], [0, c.fy_px, c.cy_px], [0, 0, 1.0]])
        veh = self._vehicle_en(pose)
        height = pose.alt_rel_home_m - self.ground_alt_m
        vp = kmat @ (cam_from_ned @ np.array([0.0, 0.0, 1.0]))     # image of "straight down"
        # all bases at once: drop those far from the frame before the detailed work
        rel_all = np.column_stack([self._obs_xy[:, 1] - veh[1], self._obs_xy[:, 0] - veh[0],
                                   np.full(len(self._obs_xy), height)])
        cam_all = rel_all @ cam_from_ned.T
        sizes = np.asarray(self._obs_sizes, float)
        extent = sizes[:, 0] + sizes[:, 1] * (1.0 + float(np.hypot(*self._shadow_en))) + 2.0
        out = []
        for i in range(len(rel_all)):
            rel, pc0 = rel_all[i], cam_all[i]
            r_m, h_m = self._obs_sizes[i]
            dist = float(np.linalg.norm(rel))
            if dist > MAX_RANGE_M * 1.5 or pc0[2] < -extent[i]:
                continue
            if pc0[2] > extent[i]:
                pad = extent[i] * max(c.fx_px, c.fy_px) / (pc0[2] - extent[i])
                bu, bv = c.fx_px * pc0[0] / pc0[2] + c.cx_px, c.fy_px * pc0[1] / pc0[2] + c.cy_px
                if bu < -pad or bv < -pad or bu > w + pad or bv > h + pad:
                    continue
            reach = r_m + 1.0
            ring = []
            shadow = np.array([self._shadow_en[1], self._shadow_en[0], 0.0]) * h_m
            for centre in (rel, rel + np.array([0.0, 0.0, -h_m]), rel + shadow):
                for a in np.linspace(0, 2 * math.pi, 8, endpoint=False):
                    ring.append(centre + np.array([reach * math.cos(a), reach * math.sin(a), 0.0]))
            pc = np.asarray(ring) @ cam_from_ned.T
            if np.all(pc[:, 2] <= 0.1):
                continue
            front = pc[pc[:, 2] > 0.1]
            px = (front[:, :2] / front[:, 2:3]) * [c.fx_px, c.fy_px] + [c.cx_px, c.cy_px]
            x0, y0 = np.floor(px.min(axis=0)) - 4
            x1, y1 = np.ceil(px.max(axis=0)) + 4
            if x1 < 0 or y1 < 0 or x0 > w or y0 > h:
                continue
            base_c = cam_from_ned @ rel
            top_c = cam_from_ned @ (rel + np.array([0.0, 0.0, -h_m]))
            if base_c[2] <= 0.1:
                continue
            base = (kmat @ base_c)[:2] / base_c[2]
            top = (kmat @ top_c)[:2] / top_c[2] if top_c[2] > 0.1 else base
            # local ground scale (px per m; the painters' View.px_per_m) and the shadow direction in the image
            jac = []
            for d_en in ((1.0, 0.0), (0.0, 1.0)):
                q = cam_from_ned @ (rel + np.array([d_en[1], d_en[0], 0.0]))
                jac.append((kmat @ q)[:2] / q[2] - base)
            jac = np.array(jac).T                                     # 2x2: image px per (east, north) m
            s = float(np.linalg.svd(jac, compute_uv=False)[0])     # scale across the line of sight
            sun_xy = tuple(float(v) for v in (jac @ self._shadow_en) / max(s, 1e-9))
            depression = math.degrees(math.atan2(height, math.hypot(rel[0], rel[1])))
            if depression >= OBLIQUE_BELOW_DEG and abs(vp[2]) > 1e-9:
                centre = vp[:2] / vp[2]
                up_c = cam_from_ned @ np.array([0.0, 0.0, -1.0])
                # height at which the base's vertical crosses the principal plane (projects to infinity)
                alt_eff = float(base_c[2] / up_c[2]) * -1.0 if abs(up_c[2]) > 1e-9 else 1e9
                alt_eff = alt_eff if alt_eff > 0 else 1e9
                view = View("nadir", s, (float(centre[0]), float(centre[1])), alt_eff, sun_xy)
            else:
                view = View("oblique", s, (c.cx_px, c.cy_px), height, sun_xy, math.radians(depression))
            roi = (int(x0), int(y0), int(x1), int(y1))
            out.append(Placed(i, self.world.obstacles[i].cls, (float(base[0]), float(base[1])),
                              (float(top[0]), float(top[1])), dist, view, roi))
        return out

    # -- ground truth ---------------------------------------------------------------------------
    def ground_truth_in_view(self, pose: Pose) -> list[InView]:
        """Obstacles and patches visible in the frame at ``pose``, with their pixel boxes."""
        from shapely.geometry import Polygon

        from agridrone.sim.camera_objects import paint_obstacles

        pose = self._check_pose(pose)
        w, h = self.size_wh
        out: list[InView] = []
        placed = {p.index: p for p in self._place(pose)}
        drawn = paint_obstacles(None, self.size_wh, list(placed.values()), self.seed, self._obs_sizes, self._tex,
                                self._shadow_strength)
        for d in sorted(drawn, key=lambda d: d.index):
            p = placed[d.index]
            o = self.world.obstacles[d.index]
            box = self._distort_box(d.box_xyxy)
            if box is None:
                continue
            out.append(InView("obstacle", o.cls, d.index, box, o.lat_deg, o.lon_deg, p.distance_m,
                              self._distort_point(p.base_px), self._distort_point(p.top_px)))
        region = self._visible_region(pose)
        hom, _ = self.homography(pose)
        if region is None or hom is None:
            return out
        veh = self._vehicle_en(pose)
        for i, (kind, xy) in enumerate(self._patches):
            inter = Polygon(xy).intersection(region)
            if inter.is_empty or inter.area <= 0:
                continue
            pts = []
            for g in getattr(inter, "geoms", [inter]):
                if hasattr(g, "exterior"):
                    pts.extend(g.exterior.coords)
            pts = np.asarray(pts)
            q = np.column_stack([pts, np.ones(len(pts))]) @ hom.T
            uv = q[:, :2] / q[:, 2:3]
            uv = self._distort_points(uv)
            x0, y0 = np.clip(uv.min(axis=0), 0, [w, h])
            x1, y1 = np.clip(uv.max(axis=0), 0, [w, h])
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            c = Polygon(xy).centroid
            lat, lon, _ = self.frame.to_geo(c.x, c.y, 0.0)
            dist = math.hypot(math.hypot(c.x - veh[0], c.y - veh[1]), pose.alt_rel_home_m - self.ground_alt_m)
            out.append(InView("patch", kind, i, (float(x0), float(y0), float(x1), float(y1)), float(lat), float(lon),
                              dist, visible_area_m2=float(inter.area)))
        return out

    def _distort_points(self, uv: np.ndarray) -> np.ndarray:
        if not self.camera.dist:
            return uv
        c = self.camera
        x, y = self.camera.normalized_to_pixel((uv[:, 0] - c.cx_px) / c.fx_px, (uv[:, 1] - c.cy_px) / c.fy_px)
        return np.column_stack([x, y])

    def _distort_point(self, p):
        q = self._distort_points(np.array([p], float))[0]
        return float(q[0]), float(q[1])

    def _distort_box(self, box):
        x0, y0, x1, y1 = box
        pts = self._distort_points(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], float))
        w, h = self.size_wh
        a, b = np.clip(pts.min(axis=0), 0, [w, h]), np.clip(pts.max(axis=0), 0, [w, h])
        if b[0] - a[0] < 1 or b[1] - a[1] < 1:
            return None
        return float(a[0]), float(a[1]), float(b[0]), float(b[1])

    def memory_bytes(self) -> int:
        """Bytes held: ground maps and noise, cached tiles and mosaic, camera-effect buffers."""
        ph = self.photometric
        return (self.ground.nbytes() + self.tiles.nbytes() + self._tex.nbytes + self._grid.nbytes
                + ph.vignette.nbytes + sum(a.nbytes for a in ph.noise_pos + ph.noise_neg))

