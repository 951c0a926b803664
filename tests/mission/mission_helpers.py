"""A small valid mission (about 226 x 167 m near Zurich) whose line numbers the error tests rely on."""

from __future__ import annotations

from pathlib import Path

BASE = """\
version: 1
field:
  name: Test field
  crop: wheat
  boundary:
    - [47.400000, 8.540000]
    - [47.400000, 8.543000]
    - [47.401500, 8.543000]
    - [47.401500, 8.540000]
    - [47.400000, 8.540000]
home:
  lat: 47.39995
  lon: 8.53995
  ground_alt_amsl_m: 420
survey:
  altitude_agl_m: 40
  speed_m_s: 6
  headland_m: 3
camera:
  sensor_width_mm: 13.2
  sensor_height_mm: 8.8
  focal_length_mm: 8.8
  image_width_px: 5472
  image_height_px: 3648
"""

ZONE = """\
exclusion_zones:
  - name: pond
    buffer_m: 5
    polygon:
      - [47.4006, 8.5412]
      - [47.4006, 8.5418]
      - [47.4010, 8.5418]
      - [47.4010, 8.5412]
      - [47.4006, 8.5412]
"""


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p
