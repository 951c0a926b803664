"""KML / KMZ for Google Earth and Google My Maps.

Export: a Document with the field, the zones (circles drawn as polygons, their centre and radius kept
in ExtendedData so they re-import as circles), the flight path (relativeToGround) and home.
Import: every Placemark Polygon (outer boundary), closed LineStrings as polygons, Points.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from agridrone.mission.formats import Shape, ShapeFileError, open_ring

KML_NS = "http://www.opengis.net/kml/2.2"


def _coord_text(points, alts=None) -> str:
    out = []
    for i, (lat, lon) in enumerate(points):
        alt = 0.0 if alts is None else alts[i]
        out.append(f"{lon:.8f},{lat:.8f},{alt:.2f}")
    return " ".join(out)


def _closed(points):
    pts = list(points)
    return pts + [pts[0]]


def _circle_points(center, radius_m: float, n: int = 48):
    lat0, lon0 = center
    m_per_deg_lat = 111132.92
    m_per_deg_lon = 111412.84 * math.cos(math.radians(lat0))
    return [(lat0 + radius_m * math.cos(2 * math.pi * k / n) / m_per_deg_lat,
             lon0 + radius_m * math.sin(2 * math.pi * k / n) / m_per_deg_lon) for k in range(n)]


def _data(**values) -> str:
    rows = "".join(f'<Data name="{k}"><value>{escape(str(v))}</value></Data>' for k, v in values.items())
    return f"<ExtendedData>{rows}</ExtendedData>"


def to_kml(compiled) -> str:
    m = compiled.mission
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="{KML_NS}"><Document>',
             f"<name>{escape(m.name)}</name>",
             '<Style id="field"><LineStyle><color>ff00aa00</color><width>3</width></LineStyle>'
             '<PolyStyle><color>3300ff00</color></PolyStyle></Style>',
             '<Style id="zone"><LineStyle><color>ff0000ff</color><width>2</width></LineStyle>'
             '<PolyStyle><color>660000ff</color></PolyStyle></Style>',
             '<Style id="path"><LineStyle><color>ffff7f00</color><width>2</width></LineStyle></Style>',
             f"<Placemark><name>{escape(m.name)}</name><styleUrl>#field</styleUrl>"
             f"{_data(role='boundary', crop=m.crop)}<Polygon><outerBoundaryIs><LinearRing><coordinates>"
             f"{_coord_text(_closed(m.boundary))}</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>"]
    for z in m.zones:
        if z.kind == "circle":
            ring = _circle_points(z.center, z.radius_m)
            extra = _data(role="exclusion", buffer_m=z.buffer_m, radius_m=z.radius_m,
                          center_lat=repr(z.center[0]), center_lon=repr(z.center[1]))
        else:
            ring = list(z.points)
            extra = _data(role="exclusion", buffer_m=z.buffer_m)
        parts.append(f"<Placemark><name>{escape(z.name)}</name><styleUrl>#zone</styleUrl>{extra}"
                     f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{_coord_text(_closed(ring))}"
                     f"</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>")
    path = compiled.path_geo()
    parts.append(f"<Placemark><name>survey path</name><styleUrl>#path</styleUrl>{_data(role='path')}"
                 f"<LineString><altitudeMode>relativeToGround</altitudeMode><coordinates>"
                 f"{_coord_text([(p[0], p[1]) for p in path], [p[2] for p in path])}</coordinates>"
                 f"</LineString></Placemark>")
    parts.append(f"<Placemark><name>home</name>{_data(role='home')}<Point><coordinates>"
                 f"{_coord_text([(m.home_lat_deg, m.home_lon_deg)])}</coordinates></Point></Placemark>")
    parts.append("</Document></kml>\n")
    return "".join(parts)


def write(compiled, path: Path) -> None:
    text = to_kml(compiled)
    path = Path(path)
    if path.suffix.lower() == ".kmz":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("doc.kml", text)
    else:
        path.write_text(text, encoding="utf-8")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(elem, name: str):
    for e in elem.iter():
        if _local(e.tag) == name:
            return e
    return None


def _parse_coords(text: str, label: str) -> list[tuple[float, float]]:
    pts = []
    for tok in (text or "").split():
        try:
            vals = [float(v) for v in tok.split(",")]
            pts.append((vals[1], vals[0]))
        except (ValueError, IndexError) as err:
            raise ShapeFileError(f"'{label}': expected 'lon,lat[,alt]' coordinates, got {tok[:40]!r}") from err
    return pts


def read_text(text: bytes | str, label: str) -> list[Shape]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise ShapeFileError(f"'{label}' is not KML: {err}") from err
    if _local(root.tag) != "kml":
        raise ShapeFileError(f"'{label}' is not KML: expected a <kml> root element, got <{_local(root.tag)}>")
    shapes: list[Shape] = []
    for i, pm in enumerate(e for e in root.iter() if _local(e.tag) == "Placemark"):
        name_el = next((c for c in pm if _local(c.tag) == "name"), None)
        name = (name_el.text or "").strip() if name_el is not None else f"placemark {i + 1}"
        data = {d.get("name"): (_find(d, "value").text or "") for d in pm.iter() if _local(d.tag) == "Data"
                and _find(d, "value") is not None}
        role = data.get("role", "")
        buf = float(data["buffer_m"]) if "buffer_m" in data else None
        poly = _find(pm, "Polygon")
        if poly is not None:
            outer = _find(poly, "outerBoundaryIs")
            coords = _find(outer if outer is not None else poly, "coordinates")
            if "radius_m" in data and "center_lat" in data:
                shapes.append(Shape(name, "circle", ((float(data["center_lat"]), float(data["center_lon"])),),
                                    radius_m=float(data["radius_m"]), role=role, buffer_m=buf))
            elif coords is not None:
                shapes.append(Shape(name, "polygon", open_ring(_parse_coords(coords.text, label)), role=role,
                                    buffer_m=buf))
            continue
        line = _find(pm, "LineString")
        if line is not None and _find(line, "coordinates") is not None:
            pts = _parse_coords(_find(line, "coordinates").text, label)
            closed = len(pts) > 3 and pts[0] == pts[-1]
            shapes.append(Shape(name, "polygon" if closed else "path", open_ring(pts) if closed else tuple(pts),
                                role=role))
            continue
        point = _find(pm, "Point")
        if point is not None and _find(point, "coordinates") is not None:
            shapes.append(Shape(name, "point", tuple(_parse_coords(_find(point, "coordinates").text, label)[:1]),
                                role=role))
    return shapes


def read_shapes(path: Path) -> list[Shape]:
    path = Path(path)
    if path.suffix.lower() == ".kmz":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.lower().endswith(".kml")]
                if not names:
                    raise ShapeFileError(f"'{path.name}' is a zip without a .kml inside (KMZ expected)")
                inner = "doc.kml" if "doc.kml" in names else names[0]
                return read_text(zf.read(inner), f"{path.name}/{inner}")
        except zipfile.BadZipFile as err:
            raise ShapeFileError(f"'{path.name}' is not a KMZ: expected a zip archive ({err})") from err
    return read_text(path.read_bytes(), path.name)


