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
