"""Foreign file formats: QGroundControl .plan, QGC WPL 110 .waypoints, KML/KMZ, GeoJSON.

Each module reads shapes (boundaries, zones) for the mission loader and writes a compiled mission.
``read_shapes(path)`` picks the reader by suffix and returns plain :class:`Shape` values; a file that
cannot be read raises :class:`ShapeFileError` with one line saying what was expected and what came.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agridrone.errors import MissionError

SUFFIXES = (".geojson", ".json", ".kml", ".kmz", ".plan", ".waypoints")


class ShapeFileError(MissionError):
    """A referenced boundary/zone file is missing, unreadable, or holds no usable shape."""


@dataclass(frozen=True)
class Shape:
    """A named shape from a foreign file; ``points`` are (lat, lon), rings open (not closed)."""

    name: str
    kind: str  # "polygon", "circle", "path" or "point"
    points: tuple[tuple[float, float], ...]
    radius_m: float = 0.0
    role: str = ""  # "boundary", "exclusion", "inclusion", "path", "home" or ""
    buffer_m: float | None = None


def open_ring(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Drop the closing point of a ring if it repeats the first."""
    pts = [(float(a), float(b)) for a, b in points]
    if len(pts) > 1 and abs(pts[0][0] - pts[-1][0]) < 1e-10 and abs(pts[0][1] - pts[-1][1]) < 1e-10:
        pts = pts[:-1]
    return tuple(pts)


def read_shapes(path: Path) -> list[Shape]:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ShapeFileError(f"'{path.name}' is not a boundary file: expected one of {', '.join(SUFFIXES)}, "
                             f"got '{suffix or 'no suffix'}'")
    if not path.is_file():
        raise ShapeFileError(f"file '{path}' not found")
    try:
        if suffix in (".geojson", ".json"):
            from agridrone.mission.formats import geojson
            return geojson.read_shapes(path)
        if suffix in (".kml", ".kmz"):
            from agridrone.mission.formats import kml
            return kml.read_shapes(path)
        if suffix == ".plan":
            from agridrone.mission.formats import qgcplan
            return qgcplan.read_shapes(path)
        from agridrone.mission.formats import waypoints
        return waypoints.read_shapes(path)
    except ShapeFileError:
        raise
    except (OSError, UnicodeDecodeError) as err:
        raise ShapeFileError(f"cannot read '{path.name}': {err}") from err


def pick_polygon(shapes: list[Shape], name: str | None, file_label: str, *, role: str = "boundary") -> Shape:
    """The polygon called ``name``; else the one with ``role``; else the largest. Circles count for zones."""
    kinds = ("polygon", "circle") if role == "exclusion" else ("polygon",)
    polys = [s for s in shapes if s.kind in kinds]
    if not polys:
        found = ", ".join(sorted({f"{sum(1 for s in shapes if s.kind == k)} {k}(s)" for k in {s.kind for s in shapes}}))
        raise ShapeFileError(f"'{file_label}' is not a boundary: it holds no polygon (found {found or 'nothing'})")
    if name is not None:
        named = [s for s in polys if s.name == name]
        if not named:
            names = ", ".join(repr(s.name) for s in polys[:8])
            raise ShapeFileError(f"'{file_label}' has no polygon named {name!r}; it has {names}")
        return named[0]
    with_role = [s for s in polys if s.role == role]
    if with_role:
        return with_role[0]
    return max(polys, key=_rough_area)


def _rough_area(s: Shape) -> float:
    if s.kind == "circle":
        return 3.14159 * s.radius_m ** 2 / 1e10
    pts = s.points
    return abs(sum(pts[i][1] * pts[(i + 1) % len(pts)][0] - pts[(i + 1) % len(pts)][1] * pts[i][0]
                   for i in range(len(pts)))) / 2
