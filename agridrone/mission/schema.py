"""The mission file format as a JSON Schema (draft 2020-12), for editor completion and as the loader's key list.

The loader takes the known and required keys of every mapping from this one dictionary, so the schema
in missions/mission.schema.json (written by :func:`write_schema`, checked by a test) and the loader
cannot drift apart. Ranges and cross-field rules (altitude ceiling, polygon validity, zones inside the
field) live in the loader and validator, which give located messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ALTITUDE_CEILING_M = 120.0
OBJECT_CLASSES = ("tree", "person", "animal", "vehicle", "pole", "building")
END_ACTIONS = ("rtl", "land")

_POINT = {"type": "array", "description": "[latitude, longitude] in decimal degrees (WGS-84)",
          "prefixItems": [{"type": "number", "minimum": -90, "maximum": 90},
                          {"type": "number", "minimum": -180, "maximum": 180}],
          "minItems": 2, "maxItems": 2}
_RING = {"type": "array", "items": {"$ref": "#/$defs/point"}, "minItems": 4,
         "description": "closed ring: at least 3 distinct points, the last one repeating the first"}
_FILE_REF = {"type": "object", "additionalProperties": False, "required": ["file"],
             "properties": {
                 "file": {"type": "string", "description": "path relative to the mission file: .geojson, .json, "
                                                           ".kml, .kmz, .plan (QGroundControl) or .waypoints"},
                 "name": {"type": "string", "description": "which polygon (placemark / feature name) to take; "
                                                           "default: the largest"}}}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://agridrone.example/mission.schema.json",
    "title": "agridrone survey mission",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "field", "home", "survey", "camera"],
    "$defs": {"point": _POINT, "ring": _RING, "file_ref": _FILE_REF},
    "properties": {
        "version": {"const": 1, "description": "format version"},
        "field": {
            "type": "object", "additionalProperties": False, "required": ["name", "crop", "boundary"],
            "properties": {
                "name": {"type": "string"},
                "crop": {"type": "string"},
                "boundary": {"oneOf": [{"$ref": "#/$defs/ring"}, {"$ref": "#/$defs/file_ref"}],
                             "description": "inline ring of [lat, lon] points, or {file: ..., name: ...}"},
            }},
        "home": {
            "type": "object", "additionalProperties": False, "required": ["lat", "lon"],
            "description": "take-off and landing point",
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
                "ground_alt_amsl_m": {"type": "number", "default": 0,
                                      "description": "ground altitude at home, metres above mean sea level"},
            }},
        "survey": {
            "type": "object", "additionalProperties": False, "required": ["altitude_agl_m"],
            "properties": {
                "altitude_agl_m": {"type": "number", "exclusiveMinimum": 0, "maximum": ALTITUDE_CEILING_M,
                                   "description": "flight height above the ground at home"},
                "speed_m_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 20, "default": 8.0},
                "front_overlap_pct": {"type": "number", "minimum": 0, "exclusiveMaximum": 100, "default": 75},
                "side_overlap_pct": {"type": "number", "minimum": 0, "exclusiveMaximum": 100, "default": 70},
                "line_spacing_m": {"type": "number", "exclusiveMinimum": 0,
                                   "description": "explicit spacing between lines; overrides side_overlap_pct"},
                "line_angle_deg": {"oneOf": [{"const": "auto"}, {"type": "number", "minimum": -360, "maximum": 360}],
                                   "default": "auto",
                                   "description": "direction of the lines, degrees clockwise from north, or auto"},
                "headland_m": {"type": "number", "minimum": 0, "default": 5.0,
                               "description": "inset from the boundary that survey lines keep"},
            }},
        "camera": {
            "type": "object", "additionalProperties": False,
            "required": ["sensor_width_mm", "sensor_height_mm", "focal_length_mm", "image_width_px",
                         "image_height_px"],
            "properties": {
                "model": {"type": "string"},
                "sensor_width_mm": {"type": "number", "exclusiveMinimum": 0},
                "sensor_height_mm": {"type": "number", "exclusiveMinimum": 0},
                "focal_length_mm": {"type": "number", "exclusiveMinimum": 0},
                "image_width_px": {"type": "integer", "minimum": 1},
                "image_height_px": {"type": "integer", "minimum": 1},
                "pitch_deg": {"type": "number", "minimum": -90, "maximum": -45, "default": -90,
                              "description": "mount pitch; -90 looks straight down"},
            }},
        "exclusion_zones": {
            "type": "array", "default": [],
            "items": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "description": "exactly one of polygon, circle or file",
                "properties": {
                    "name": {"type": "string"},
                    "polygon": {"$ref": "#/$defs/ring"},
                    "circle": {"type": "object", "additionalProperties": False, "required": ["center", "radius_m"],
                               "properties": {"center": {"$ref": "#/$defs/point"},
                                              "radius_m": {"type": "number", "exclusiveMinimum": 0}}},
                    "file": {"type": "string"},
                    "file_name": {"type": "string", "description": "polygon name inside file"},
                    "buffer_m": {"type": "number", "minimum": 0, "default": 5.0,
                                 "description": "keep-out distance the path keeps from the zone"},
                }}},
        "safety": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "end_action": {"enum": list(END_ACTIONS), "default": "rtl"},
                "fence_margin_m": {"type": "number", "minimum": 5, "default": 20.0,
                                   "description": "the inclusion fence is the boundary grown by this much"},
                "fence_alt_max_m": {"type": "number", "exclusiveMinimum": 0, "maximum": ALTITUDE_CEILING_M + 30,
                                    "description": "expected FENCE_ALT_MAX; default altitude + 20 m"},
            }},
        "rally_points": {"type": "array", "items": {"$ref": "#/$defs/point"}, "default": [],
                         "description": "safe landing points besides home"},
        "alerts": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "min_stressed_area_m2": {"type": "number", "minimum": 0, "default": 50.0},
                "classes": {"type": "array", "items": {"enum": list(OBJECT_CLASSES)},
                            "default": ["person", "animal", "vehicle"]},
                "safety_margin_m": {"type": "object", "additionalProperties": False,
                                    "properties": {c: {"type": "number", "minimum": 0} for c in OBJECT_CLASSES}},
            }},
        "notes": {"type": "string"},
    },
}


def section(*names: str) -> dict[str, Any]:
    """The schema of a nested mapping, e.g. ``section('survey')`` or ``section('exclusion_zones', 'items')``."""
    node: dict[str, Any] = SCHEMA
    for name in names:
        node = node["items"] if name == "items" else node["properties"][name]
    return node


def keys(*names: str) -> tuple[list[str], list[str]]:
    """(known keys, required keys) of a mapping in the schema."""
    node = section(*names) if names else SCHEMA
    return list(node["properties"]), list(node.get("required", []))


def schema_json() -> str:
    return json.dumps(SCHEMA, indent=2) + "\n"


def write_schema(path: Path) -> None:
    Path(path).write_text(schema_json(), encoding="utf-8")
