"""Write a compiled mission in the format its file name asks for."""

from __future__ import annotations

from pathlib import Path

from agridrone.errors import MissionError

WRITERS = {".plan": "qgcplan", ".waypoints": "waypoints", ".kml": "kml", ".kmz": "kml", ".geojson": "geojson",
           ".json": "geojson"}


def export(compiled, path: Path) -> None:
    import importlib

    path = Path(path)
    name = WRITERS.get(path.suffix.lower())
    if name is None:
        raise MissionError(f"cannot export to '{path.name}': expected a name ending in "
                           f"{', '.join(sorted(WRITERS))}, got '{path.suffix or 'no suffix'}'")
    module = importlib.import_module(f"agridrone.mission.formats.{name}")
    try:
        module.write(compiled, path)
    except OSError as err:
        raise MissionError(f"cannot write '{path}': {err.strerror or err}") from err
