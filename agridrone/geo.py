"""WGS-84 <-> local East-North-Up, distances and bearings.

``LocalFrame`` is exact (through ECEF), vectorised over numpy arrays, and is what every stage
uses to work in metres around a field's origin. The camera model and pixel -> ground projection
also live in this module (below the geodesy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
WGS84_B = WGS84_A * (1.0 - WGS84_F)
EARTH_MEAN_RADIUS_M = 6371008.8


def geodetic_to_ecef(lat_deg, lon_deg, alt_m=0.0):
    lat = np.radians(lat_deg)
    lon = np.radians(lon_deg)
    sin_lat = np.sin(lat)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    x = (n + alt_m) * np.cos(lat) * np.cos(lon)
    y = (n + alt_m) * np.cos(lat) * np.sin(lon)
    z = (n * (1.0 - WGS84_E2) + alt_m) * sin_lat
    return x, y, z


def ecef_to_geodetic(x, y, z):
    """Bowring's method with two refinements: sub-millimetre for any point near the surface."""
    x, y, z = (np.asarray(v, dtype=np.float64) for v in (x, y, z))
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    ep2 = (WGS84_A**2 - WGS84_B**2) / WGS84_B**2
    theta = np.arctan2(z * WGS84_A, p * WGS84_B)
    lat = np.arctan2(z + ep2 * WGS84_B * np.sin(theta) ** 3, p - WGS84_E2 * WGS84_A * np.cos(theta) ** 3)
    for _ in range(2):
        n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * np.sin(lat) ** 2)
        alt = p / np.cos(lat) - n
        lat = np.arctan2(z, p * (1.0 - WGS84_E2 * n / (n + alt)))
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * np.sin(lat) ** 2)
    alt = p / np.cos(lat) - n
    return np.degrees(lat), np.degrees(lon), alt


@dataclass(frozen=True)
class LocalFrame:
    """East-North-Up metres around an origin (typically home or a field's first vertex)."""

    origin_lat_deg: float
    origin_lon_deg: float
    origin_alt_m: float = 0.0

    def __post_init__(self) -> None:
        if not (-90 <= self.origin_lat_deg <= 90 and -180 <= self.origin_lon_deg <= 180):
            raise ValueError(f"origin: expected lat -90..90 and lon -180..180, got "
                             f"({self.origin_lat_deg}, {self.origin_lon_deg})")

    def _rot(self):
        lat = math.radians(self.origin_lat_deg)
        lon = math.radians(self.origin_lon_deg)
        sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
        return np.array([[-so, co, 0.0], [-sl * co, -sl * so, cl], [cl * co, cl * so, sl]])

    def to_enu(self, lat_deg, lon_deg, alt_m=None):
        """(east_m, north_m, up_m); scalars in, floats out; arrays in, arrays out."""
        scalar = np.isscalar(lat_deg)
        alt = self.origin_alt_m if alt_m is None else alt_m
        x, y, z = geodetic_to_ecef(np.asarray(lat_deg, float), np.asarray(lon_deg, float), np.asarray(alt, float))
        x0, y0, z0 = geodetic_to_ecef(self.origin_lat_deg, self.origin_lon_deg, self.origin_alt_m)
        d = np.stack(np.broadcast_arrays(x - x0, y - y0, z - z0))
        e, n, u = np.tensordot(self._rot(), d, axes=1)
        if scalar:
            return float(e), float(n), float(u)
        return e, n, u

    def to_geo(self, east_m, north_m, up_m=0.0):
        """(lat_deg, lon_deg, alt_m) of ENU offsets."""
        scalar = np.isscalar(east_m)
        enu = np.stack(np.broadcast_arrays(np.asarray(east_m, float), np.asarray(north_m, float),
                                           np.asarray(up_m, float)))
        dx, dy, dz = np.tensordot(self._rot().T, enu, axes=1)
        x0, y0, z0 = geodetic_to_ecef(self.origin_lat_deg, self.origin_lon_deg, self.origin_alt_m)
        lat, lon, alt = ecef_to_geodetic(x0 + dx, y0 + dy, z0 + dz)
        if scalar:
            return float(lat), float(lon), float(alt)
        return lat, lon, alt


def distance_m(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Great-circle (haversine) distance on the mean sphere; within 0.5 % of the ellipsoid."""
    p1, p2 = math.radians(lat1_deg), math.radians(lat2_deg)
    dp = p2 - p1
    dl = math.radians(lon2_deg - lon1_deg)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_MEAN_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north, 0..360."""
    p1, p2 = math.radians(lat1_deg), math.radians(lat2_deg)
    dl = math.radians(lon2_deg - lon1_deg)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(y, x)) + 360.0) % 360.0


def offset_deg(lat_deg: float, lon_deg: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point ``north_m``/``east_m`` away from (lat, lon), exact on the ellipsoid."""
    lat, lon, _ = LocalFrame(lat_deg, lon_deg, 0.0).to_geo(east_m, north_m, 0.0)
    return lat, lon


# --- Camera model and pixel <-> ground projection ---------------------------------------------------
# Frames: the camera's optical frame is OpenCV's (x right, y down, z along the optical axis); the
# mount frame is forward-right-down with x on the optical axis; the body frame is forward-right-down;
# the world is North-East-Down around the vehicle. Attitudes are Z-Y-X (yaw, pitch, roll) in degrees.
# A mount pitch of -90 looks straight down with the top of the image towards the vehicle's nose.

_CAM_TO_MOUNT = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def rotation_zyx(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """The rotation taking body vectors to the parent frame for Z-Y-X Euler angles."""
    y, p, r = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics with optional OpenCV distortion (k1, k2, p1, p2[, k3[, k4, k5, k6]])."""

    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    dist: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError(f"image size: expected positive pixels, got {self.width_px}x{self.height_px}")
        if not (self.fx_px > 0 and self.fy_px > 0):
            raise ValueError(f"focal length: expected > 0 pixels, got fx={self.fx_px}, fy={self.fy_px}")
        if len(self.dist) not in (0, 4, 5, 8) or not all(math.isfinite(float(d)) for d in self.dist):
            raise ValueError(f"distortion: expected 0, 4, 5 or 8 finite coefficients, got {self.dist!r}")
        object.__setattr__(self, "dist", tuple(float(d) for d in self.dist))

    @classmethod
    def from_sensor(cls, sensor_width_mm: float, sensor_height_mm: float, focal_length_mm: float,
                    width_px: int, height_px: int) -> "CameraModel":
        """Intrinsics of an ideal lens from the sensor size, the focal length and the image size."""
        if min(sensor_width_mm, sensor_height_mm, focal_length_mm) <= 0:
            raise ValueError(f"sensor/focal: expected positive millimetres, got {sensor_width_mm}x{sensor_height_mm}"
                             f" mm, f={focal_length_mm} mm")
        return cls(int(width_px), int(height_px), focal_length_mm * width_px / sensor_width_mm,
                   focal_length_mm * height_px / sensor_height_mm, width_px / 2.0, height_px / 2.0)

    @classmethod
    def from_opencv_file(cls, path) -> "CameraModel":
        """An OpenCV calibration file (YAML/XML: camera_matrix, distortion_coefficients, image_width/height)."""
        import cv2  # lazily: only this loader needs OpenCV

        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
        if not fs.isOpened():
            raise ValueError(f"calibration {path}: expected an OpenCV YAML/XML file, got one that does not open")
        try:
            k = fs.getNode("camera_matrix").mat()
            d = fs.getNode("distortion_coefficients").mat()
            w, h = fs.getNode("image_width").real(), fs.getNode("image_height").real()
        finally:
            fs.release()
        if k is None or k.shape != (3, 3):
            raise ValueError(f"calibration {path}: expected a 3x3 camera_matrix, got {None if k is None else k.shape}")
        if not (w > 0 and h > 0):
            raise ValueError(f"calibration {path}: expected image_width and image_height, got {w}x{h}")
        dist = () if d is None else tuple(float(v) for v in d.reshape(-1))
        return cls(int(w), int(h), float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), dist)

    def _distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = list(self.dist) + [0.0] * (8 - len(self.dist))
        k1, k2, p1, p2, k3, k4, k5, k6 = d
        r2 = x * x + y * y
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd

    def normalized_to_pixel(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Ideal normalised coordinates (x/z, y/z) -> pixels, through the lens distortion."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.dist:
            x, y = self._distort(x, y)
        return self.fx_px * x + self.cx_px, self.fy_px * y + self.cy_px

    def pixel_to_normalized(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """Pixels -> ideal normalised coordinates (distortion removed by fixed-point iteration)."""
        xd = (np.asarray(u, float) - self.cx_px) / self.fx_px
        yd = (np.asarray(v, float) - self.cy_px) / self.fy_px
        if not self.dist:
            return xd, yd
        x, y = xd.copy(), yd.copy()
        for _ in range(100):
            ex, ey = self._distort(x, y)
            x, y = x - (ex - xd), y - (ey - yd)
            if max(float(np.max(np.abs(ex - xd), initial=0)), float(np.max(np.abs(ey - yd), initial=0))) < 1e-13:
                break
        return x, y


@dataclass(frozen=True)
class CameraMount:
    """How the camera sits on the vehicle: pitch -90 looks straight down, 0 looks forward at the horizon."""

    roll_deg: float = 0.0
    pitch_deg: float = -90.0
    yaw_deg: float = 0.0


def _lerp_angle_deg(a: float, b: float, f: float) -> float:
    d = (b - a + 180.0) % 360.0 - 180.0
    return (a + f * d + 180.0) % 360.0 - 180.0


def interpolate_pose(poses, ts_ns: int, max_extrapolation_ns: int = 200_000_000):
    """The vehicle's Pose at ``ts_ns``, linearly interpolated between the two poses around it.

    ``poses`` is a time-ordered sequence of Pose. Outside the covered span the nearest pose is used
    if it is within ``max_extrapolation_ns``; otherwise ValueError says how far off the request is.
    """
    from agridrone.types import Pose

    seq = list(poses)
    if not seq:
        raise ValueError(f"pose at {ts_ns} ns: expected a pose history, got none")
    times = [p.ts_ns for p in seq]
    if any(b < a for a, b in zip(times, times[1:])):
        raise ValueError("pose history: expected poses in time order, got them out of order")
    if ts_ns <= times[0] or ts_ns >= times[-1]:
        nearest = seq[0] if ts_ns <= times[0] else seq[-1]
        gap = abs(ts_ns - nearest.ts_ns)
        if gap > max_extrapolation_ns:
            raise ValueError(f"pose at {ts_ns} ns: expected a time within {max_extrapolation_ns / 1e6:.0f} ms of the "
                             f"history {times[0]}..{times[-1]} ns, got {gap / 1e6:.1f} ms outside it")
        return nearest if nearest.ts_ns == ts_ns else Pose(ts_ns, nearest.lat_deg, nearest.lon_deg,
                                                           nearest.alt_amsl_m, nearest.alt_rel_home_m,
                                                           nearest.roll_deg, nearest.pitch_deg, nearest.yaw_deg,
                                                           nearest.vn_m_s, nearest.ve_m_s, nearest.vd_m_s)
    hi = int(np.searchsorted(np.asarray(times), ts_ns, side="right"))
    a, b = seq[hi - 1], seq[hi]
    f = (ts_ns - a.ts_ns) / (b.ts_ns - a.ts_ns) if b.ts_ns != a.ts_ns else 0.0

    def lin(name: str) -> float:
        return getattr(a, name) + f * (getattr(b, name) - getattr(a, name))

    return Pose(int(ts_ns), lin("lat_deg"), lin("lon_deg"), lin("alt_amsl_m"), lin("alt_rel_home_m"),
                _lerp_angle_deg(a.roll_deg, b.roll_deg, f), _lerp_angle_deg(a.pitch_deg, b.pitch_deg, f),
                _lerp_angle_deg(a.yaw_deg, b.yaw_deg, f) % 360.0, lin("vn_m_s"), lin("ve_m_s"), lin("vd_m_s"))


class Projector:
    """Pixels of a camera on a vehicle <-> points on flat ground at home altitude (+ ``ground_alt_m``)."""

    def __init__(self, camera: CameraModel, mount: CameraMount = CameraMount()) -> None:
        self.camera = camera
        self.mount = mount
        self._body_from_cam = rotation_zyx(mount.yaw_deg, mount.pitch_deg, mount.roll_deg) @ _CAM_TO_MOUNT

    def _ned_from_cam(self, pose) -> np.ndarray:
        return rotation_zyx(pose.yaw_deg, pose.pitch_deg, pose.roll_deg) @ self._body_from_cam

    def rays_ned(self, pose, u, v) -> np.ndarray:
        """Unit view rays (north, east, down) of pixels; shape (..., 3)."""
        x, y = self.camera.pixel_to_normalized(u, v)
        cam = np.stack(np.broadcast_arrays(x, y, np.ones_like(x)), axis=-1)
        ned = cam @ self._ned_from_cam(pose).T
        return ned / np.linalg.norm(ned, axis=-1, keepdims=True)

    def depression_deg(self, pose, u, v) -> np.ndarray:
        """Angle of each pixel's ray below the horizon (negative: sky)."""
        d = self.rays_ned(pose, u, v)
        return np.degrees(np.arcsin(np.clip(d[..., 2], -1.0, 1.0)))

    def ground_offsets_m(self, pose, u, v, ground_alt_m: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(north_m, east_m) from the vehicle to where each pixel's ray meets the ground; NaN if it never does."""
        height_m = pose.alt_rel_home_m - ground_alt_m
        if height_m <= 0:
            raise ValueError(f"altitude: expected the camera above the ground, got {height_m:.2f} m above it")
        d = self.rays_ned(pose, u, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d[..., 2] > 1e-9, height_m / d[..., 2], np.nan)
        return t * d[..., 0], t * d[..., 1]

    def pixel_to_ground(self, pose, u, v, ground_alt_m: float = 0.0):
        """(lat_deg, lon_deg) where pixels (u, v) see the ground; NaN for rays at or above the horizon."""
        north, east = self.ground_offsets_m(pose, u, v, ground_alt_m)
        frame = LocalFrame(pose.lat_deg, pose.lon_deg, 0.0)
        ok = np.isfinite(north)
        lat = np.full(np.shape(north), np.nan)
        lon = np.full(np.shape(north), np.nan)
        if np.any(ok):
            la, lo, _ = frame.to_geo(np.asarray(east)[ok], np.asarray(north)[ok], 0.0)
            lat[ok], lon[ok] = la, lo
        if np.ndim(north) == 0:
            return float(lat), float(lon)
        return lat, lon

    def ground_to_pixel(self, pose, lat_deg, lon_deg, ground_alt_m: float = 0.0):
        """Pixels (u, v) where ground points appear; NaN for points behind the camera."""
        frame = LocalFrame(pose.lat_deg, pose.lon_deg, 0.0)
        east, north, _ = frame.to_enu(np.asarray(lat_deg, float), np.asarray(lon_deg, float), 0.0)
        down = np.full(np.shape(east), pose.alt_rel_home_m - ground_alt_m)
        ned = np.stack(np.broadcast_arrays(north, east, down), axis=-1)
        cam = ned @ self._ned_from_cam(pose)  # inverse rotation = transpose
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(cam[..., 2] > 1e-9, cam[..., 2], np.nan)
            u, v = self.camera.normalized_to_pixel(cam[..., 0] / z, cam[..., 1] / z)
        if np.ndim(u) == 0:
            return float(u), float(v)
        return u, v

    def footprint(self, pose, ground_alt_m: float = 0.0, max_range_m: float = 500.0, samples_per_side: int = 8):
        """The frame's ground footprint as a closed list of GeoPoints (rays past the horizon clipped at
        ``max_range_m`` along their bearing), going round the image edge from the top-left corner."""
        from agridrone.types import AltFrame, GeoPoint

        w, h = self.camera.width_px, self.camera.height_px
        s = np.linspace(0.0, 1.0, samples_per_side, endpoint=False)
        u = np.concatenate([s * w, np.full_like(s, w), (1 - s) * w, np.zeros_like(s)])
        v = np.concatenate([np.zeros_like(s), s * h, np.full_like(s, h), (1 - s) * h])
        north, east = self.ground_offsets_m(pose, u, v, ground_alt_m)
        d = self.rays_ned(pose, u, v)
        rng = np.hypot(north, east)
        far = ~np.isfinite(rng) | (rng > max_range_m)
        horiz = np.hypot(d[..., 0], d[..., 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            north = np.where(far, max_range_m * d[..., 0] / np.where(horiz > 0, horiz, 1), north)
            east = np.where(far, max_range_m * d[..., 1] / np.where(horiz > 0, horiz, 1), east)
        lat, lon, _ = LocalFrame(pose.lat_deg, pose.lon_deg, 0.0).to_geo(east, north, 0.0)
        return [GeoPoint(float(a), float(b), ground_alt_m, AltFrame.REL_HOME) for a, b in zip(lat, lon)]

    def box_ground_size_m(self, pose, box_xyxy, ground_alt_m: float = 0.0) -> tuple[float, float]:
        """(width_m, depth_m) on the ground of an image box: its bottom edge's length, and the distance
        from the middle of its bottom edge to the middle of its top edge; NaN where a ray misses."""
        x1, y1, x2, y2 = (float(c) for c in box_xyxy)
        u = np.array([x1, x2, (x1 + x2) / 2, (x1 + x2) / 2])
        v = np.array([y2, y2, y2, y1])
        n, e = self.ground_offsets_m(pose, u, v, ground_alt_m)
        return float(np.hypot(n[1] - n[0], e[1] - e[0])), float(np.hypot(n[3] - n[2], e[3] - e[2]))
