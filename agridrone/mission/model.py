"""The validated mission, as the planner and the compiler see it (frozen, plain values, locations kept)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agridrone.mission.yamlnodes import Loc, MissionWarning

LatLon = tuple[float, float]


@dataclass(frozen=True)
class Zone:
    """An exclusion zone: a polygon (open ring of [lat, lon]) or a circle; ``buffer_m`` is the keep-out distance."""

    name: str
    kind: str  # "polygon" or "circle"
    points: tuple[LatLon, ...] = ()
    center: LatLon | None = None
    radius_m: float = 0.0
    buffer_m: float = 5.0
    loc: Loc = field(default_factory=lambda: Loc("?"))


@dataclass(frozen=True)
class Camera:
    sensor_width_mm: float
    sensor_height_mm: float
    focal_length_mm: float
    image_width_px: int
    image_height_px: int
    pitch_deg: float = -90.0
    model: str = ""


@dataclass(frozen=True)
class Alerts:
    min_stressed_area_m2: float = 50.0
    classes: tuple[str, ...] = ("person", "animal", "vehicle")
    safety_margin_m: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Mission:
    """Everything a mission file says, validated. Coordinates are WGS-84 degrees; rings are open (not closed)."""

    source: str
    name: str
    crop: str
    boundary: tuple[LatLon, ...]
    home_lat_deg: float
    home_lon_deg: float
    home_ground_alt_amsl_m: float
    altitude_agl_m: float
    camera: Camera
    zones: tuple[Zone, ...] = ()
    speed_m_s: float = 8.0
    front_overlap_pct: float = 75.0
    side_overlap_pct: float = 70.0
    line_spacing_m: float | None = None
    line_angle_deg: float | None = None  # None: auto
    headland_m: float = 5.0
    end_action: str = "rtl"
    fence_margin_m: float = 20.0
    fence_alt_max_m: float | None = None
    rally_points: tuple[LatLon, ...] = ()
    alerts: Alerts = field(default_factory=Alerts)
    notes: str = ""
    boundary_loc: Loc = field(default_factory=lambda: Loc("?"))
    home_loc: Loc = field(default_factory=lambda: Loc("?"))
    spacing_loc: Loc = field(default_factory=lambda: Loc("?"))
    warnings: tuple[MissionWarning, ...] = ()
    key_locs: tuple[tuple[str, Loc], ...] = ()  # where each scalar setting was written

    def loc_of(self, key: str, default: Loc | None = None) -> Loc:
        for k, loc in self.key_locs:
            if k == key:
                return loc
        return default if default is not None else self.boundary_loc

    @property
    def fence_alt_max_effective_m(self) -> float:
        return self.fence_alt_max_m if self.fence_alt_max_m is not None else self.altitude_agl_m + 20.0
