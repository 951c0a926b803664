"""QGC WPL 110 ``.waypoints`` (Mission Planner, QGC): one tab-separated item per line.

``INDEX CURRENT FRAME COMMAND P1 P2 P3 P4 LAT LON ALT AUTOCONTINUE``; line 0 is home (frame 0, AMSL).
As a boundary source, the positions of the navigation items after home, in order, form the ring.
"""

from __future__ import annotations

from pathlib import Path

from agridrone.mission import mav
from agridrone.mission.formats import Shape, ShapeFileError, open_ring
from agridrone.types import MissionItem, MissionType

HEADER = "QGC WPL 110"


def _fmt(v: float) -> str:
    return repr(float(v))


def to_text(items) -> str:
    lines = [HEADER]
    for i, it in enumerate(items):
        lines.append("\t".join([str(i), "1" if i == 0 else "0", str(it.frame), str(it.command), _fmt(it.param1),
                                _fmt(it.param2), _fmt(it.param3), _fmt(it.param4), f"{it.x / 1e7:.8f}",
                                f"{it.y / 1e7:.8f}", _fmt(it.z), str(it.autocontinue)]))
    return "\n".join(lines) + "\n"


def write(compiled, path: Path) -> None:
    Path(path).write_text(to_text(compiled.items), encoding="utf-8")


def read_items(path: Path, mission_type: MissionType = MissionType.MISSION) -> list[MissionItem]:
    label = Path(path).name
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip().startswith("QGC WPL"):
        got = lines[0][:30] if lines else "an empty file"
        raise ShapeFileError(f"'{label}' is not a waypoint file: expected the header '{HEADER}', got {got!r}")
    items = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split()
        if len(f) != 12:
            raise ShapeFileError(f"'{label}' line {n}: expected 12 tab-separated fields, got {len(f)}")
        try:
            items.append(MissionItem(command=int(f[3]), frame=int(f[2]), param1=float(f[4]), param2=float(f[5]),
                                     param3=float(f[6]), param4=float(f[7]), x=int(round(float(f[8]) * 1e7)),
                                     y=int(round(float(f[9]) * 1e7)), z=float(f[10]), autocontinue=int(f[11]),
                                     mission_type=mission_type))
        except ValueError as err:
            raise ShapeFileError(f"'{label}' line {n}: expected numbers, got {line.strip()[:60]!r}") from err
    return items


def read_shapes(path: Path) -> list[Shape]:
    items = read_items(path)
    pts = [(it.lat_deg, it.lon_deg) for it in items[1:]
           if it.command in mav.NAV_COMMANDS and (it.x, it.y) != (0, 0)]
    shapes = [Shape(Path(path).stem, "polygon", open_ring(pts), role="boundary")] if len(pts) >= 3 else []
    if items:
        shapes.append(Shape("home", "point", ((items[0].lat_deg, items[0].lon_deg),), role="home"))
    return shapes
