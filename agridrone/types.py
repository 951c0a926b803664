"""Frozen dataclasses that cross stage boundaries (ARCHITECTURE rule 1).

Units and frames are in the names (rule 3). Each type validates itself in ``__post_init__`` and
says "expected ..., got ..." when handed something wrong. Stages return new objects and never
change their inputs.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class AltFrame(str, enum.Enum):
    """What an altitude is measured from."""

    AMSL = "amsl"          # above mean sea level (MAVLink GLOBAL / GLOBAL_INT)
    REL_HOME = "rel_home"  # above the home position (MAVLink GLOBAL_RELATIVE_ALT)
    AGL = "agl"            # above the terrain under the vehicle (MAVLink GLOBAL_TERRAIN_ALT)


def _finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A WGS-84 position; the altitude never travels without its frame."""

    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0
    alt_frame: AltFrame = AltFrame.REL_HOME

    def __post_init__(self) -> None:
        _finite("lat_deg", self.lat_deg)
        _finite("lon_deg", self.lon_deg)
        _finite("alt_m", self.alt_m)
        if not -90.0 <= self.lat_deg <= 90.0:
            raise ValueError(f"lat_deg: expected -90..90, got {self.lat_deg}")
        if not -180.0 <= self.lon_deg <= 180.0:
            raise ValueError(f"lon_deg: expected -180..180, got {self.lon_deg}")
        if not isinstance(self.alt_frame, AltFrame):
            raise ValueError(f"alt_frame: expected an AltFrame, got {self.alt_frame!r}")


@dataclass(frozen=True, slots=True)
class Pose:
    """The vehicle's state at one instant (``ts_ns`` on the monotonic clock of the receiver)."""

    ts_ns: int
    lat_deg: float
    lon_deg: float
    alt_amsl_m: float
    alt_rel_home_m: float
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    vn_m_s: float = 0.0
    ve_m_s: float = 0.0
    vd_m_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lat_deg", "lon_deg", "alt_amsl_m", "alt_rel_home_m", "roll_deg", "pitch_deg", "yaw_deg",
                     "vn_m_s", "ve_m_s", "vd_m_s"):
            _finite(name, getattr(self, name))

    @property
    def position(self) -> GeoPoint:
        return GeoPoint(self.lat_deg, self.lon_deg, self.alt_rel_home_m, AltFrame.REL_HOME)

    @property
    def ground_speed_m_s(self) -> float:
        return math.hypot(self.vn_m_s, self.ve_m_s)


class MissionType(enum.IntEnum):
    """MAV_MISSION_TYPE: one protocol, three lists on the autopilot."""

    MISSION = 0
    FENCE = 1
    RALLY = 2


@dataclass(frozen=True, slots=True)
class MissionItem:
    """One MISSION_ITEM_INT, as on the wire.

    ``x``/``y`` are latitude/longitude in degrees * 1e7 for global frames (ints, so that an upload
    followed by a download compares exactly), or local metres * 1e4 otherwise; ``z`` is the
    altitude in the item's ``frame`` (a MAV_FRAME number).
    """

    command: int
    frame: int = 3  # MAV_FRAME_GLOBAL_RELATIVE_ALT
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    x: int = 0
    y: int = 0
    z: float = 0.0
    autocontinue: int = 1
    mission_type: MissionType = MissionType.MISSION

    def __post_init__(self) -> None:
        if not isinstance(self.command, int) or not 0 <= self.command <= 65535:
            raise ValueError(f"command: expected a MAV_CMD number 0..65535, got {self.command!r}")
        for name in ("x", "y"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or not -(2**31) <= int(v) < 2**31:
                raise ValueError(f"{name}: expected an int32 (degrees * 1e7), got {v!r}")

    @classmethod
    def at(cls, command: int, lat_deg: float, lon_deg: float, alt_m: float, *, frame: int = 3,
           params: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
           mission_type: MissionType = MissionType.MISSION) -> "MissionItem":
        """An item at a WGS-84 position (degrees), converted to the wire's degE7 integers."""
        return cls(command=command, frame=frame, param1=params[0], param2=params[1], param3=params[2],
                   param4=params[3], x=int(round(lat_deg * 1e7)), y=int(round(lon_deg * 1e7)), z=float(alt_m),
                   mission_type=mission_type)

    @property
    def lat_deg(self) -> float:
        return self.x / 1e7

    @property
    def lon_deg(self) -> float:
        return self.y / 1e7


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera frame. ``image`` is HxWxC uint8 (BGR as OpenCV delivers, or BGR+NIR with 4 channels)."""

    ts_ns: int
    image: np.ndarray
    index: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3):
            got = f"{type(img).__name__} {getattr(img, 'dtype', '')} {getattr(img, 'shape', '')}"
            raise ValueError(f"image: expected an HxW or HxWxC uint8 array, got {got}")
        if img.ndim == 3 and img.shape[2] not in (1, 3, 4):
            raise ValueError(f"image: expected 1, 3 or 4 channels, got {img.shape[2]}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class Detections:
    """Objects found in one image: boxes in that image's pixels (x1, y1, x2, y2)."""

    boxes_xyxy: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    labels: tuple[str, ...] = ()
    image_size_wh: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        b = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4) if np.size(self.boxes_xyxy) else np.zeros((0, 4), np.float32)
        c = np.asarray(self.class_ids, dtype=np.int32).reshape(-1)
        s = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not (len(b) == len(c) == len(s)):
            raise ValueError(f"expected as many boxes, class ids and scores, got {len(b)}, {len(c)}, {len(s)}")
        if self.labels and len(self.labels) != len(b):
            raise ValueError(f"labels: expected one per box ({len(b)}), got {len(self.labels)}")
        object.__setattr__(self, "boxes_xyxy", b)
        object.__setattr__(self, "class_ids", c)
        object.__setattr__(self, "scores", s)
        for arr in (b, c, s):
            arr.setflags(write=False)

    @classmethod
    def empty(cls, image_size_wh: tuple[int, int] = (0, 0)) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32), (), image_size_wh)

    def __len__(self) -> int:
        return len(self.scores)

    def to_dicts(self) -> list[dict[str, Any]]:
        out = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes_xyxy[i])
            out.append({"box_xyxy": [round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)],
                        "class_id": int(self.class_ids[i]),
                        "label": self.labels[i] if self.labels else str(int(self.class_ids[i])),
                        "score": round(float(self.scores[i]), 4)})
        return out


@dataclass(frozen=True, slots=True)
class HealthTile:
    """The plant-health verdict for one tile of a frame."""

    row: int
    col: int
    box_xyxy: tuple[int, int, int, int]
    class_id: int
    label: str
    probability: float
    indices: dict[str, float] = field(default_factory=dict)  # e.g. {"exg": .., "vari": .., "gli": .., "ndvi": ..}

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError(f"probability: expected 0..1, got {self.probability}")
        x1, y1, x2, y2 = self.box_xyxy
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"box_xyxy: expected x2 > x1 and y2 > y1, got {self.box_xyxy}")


@dataclass(frozen=True, slots=True)
class Obstacle:
    """A tracked object on the ground, in a local ENU frame (metres) and WGS-84."""

    track_id: int
    label: str
    lat_deg: float
    lon_deg: float
    east_m: float
    north_m: float
    radius_m: float
    confidence: float
    hits: int
    first_seen_ns: int
    last_seen_ns: int
    confirmed: bool = False
    moving: bool = False
    ve_m_s: float = 0.0
    vn_m_s: float = 0.0
    height_m: float = 0.0
    # every label the detector gave this object often enough to count (``label`` first): a tracker that
    # associates a class group (a detector that hesitates between person and animal) lists the others here,
    # so that the planner can keep the most cautious margin of them; () means just ``label``
    labels: tuple[str, ...] = ()
    # ``label``'s share of the votes (confidence-weighted sightings) over all the labels it was seen under
    label_share: float = 1.0

    @property
    def all_labels(self) -> tuple[str, ...]:
        return self.labels or (self.label,)

    def __post_init__(self) -> None:
        if self.radius_m < 0:
            raise ValueError(f"radius_m: expected >= 0, got {self.radius_m}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence: expected 0..1, got {self.confidence}")


class CorrectionKind(str, enum.Enum):
    DETOUR = "detour"   # fly GUIDED through ``waypoints`` then resume AUTO at ``resume_seq``
    HOLD = "hold"       # no way around: stop and hold position
    RESUME = "resume"   # the way is clear again: resume AUTO at ``resume_seq``


@dataclass(frozen=True, slots=True)
class Correction:
    """What the avoidance planner wants the vehicle to do; targets are relative-to-home altitudes."""

    kind: CorrectionKind
    waypoints: tuple[GeoPoint, ...] = ()
    resume_seq: int | None = None
    side: str = ""          # "left" / "right" of the route, chosen once per obstacle
    reason: str = ""
    obstacle_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind is CorrectionKind.DETOUR and not self.waypoints:
            raise ValueError("waypoints: expected at least one for a detour, got none")


class AlertKind(str, enum.Enum):
    STRESSED_ZONE = "stressed_zone"
    WEEDS = "weeds"
    PERSON = "person"
    ANIMAL = "animal"
    VEHICLE = "vehicle"
    ROUTE_BLOCKED = "route_blocked"
    AVOIDANCE_STOP = "avoidance_stop"
    LINK_LOST = "link_lost"
    CAMERA_LOST = "camera_lost"


@dataclass(frozen=True, slots=True)
class Alert:
    """Something the farmer must know. ``alert_id`` is the idempotency key; ``revision`` grows when it is updated."""

    alert_id: str
    kind: AlertKind
    severity: int          # MAV_SEVERITY: 0 emergency .. 7 debug
    ts_ns: int
    lat_deg: float
    lon_deg: float
    label: str
    confidence: float
    text: str
    revision: int = 1
    area_m2: float = 0.0
    polygon: tuple[tuple[float, float], ...] = ()   # (lat, lon) ring for zones
    thumbnail_jpeg: bytes = b""
    properties: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.severity <= 7:
            raise ValueError(f"severity: expected a MAV_SEVERITY 0..7, got {self.severity}")
        if not self.alert_id:
            raise ValueError("alert_id: expected a non-empty idempotency key, got ''")
        if self.revision < 1:
            raise ValueError(f"revision: expected >= 1, got {self.revision}")
