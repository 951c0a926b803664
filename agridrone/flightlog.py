"""The flight folder: everything one flight leaves behind, written so that a power loss leaves it readable.

Layout of ``<root>/<flight_id>/``::

    flight.json          who/where/when (atomic replace)
    telemetry.tlog       MAVLink telemetry, the standard .tlog format ground stations open (append + flush)
    detections.jsonl     one JSON object per line (append + flush)
    outbox.sqlite        the durable alert outbox (SQLite, WAL) -- see agridrone.alerts.outbox
    alerts.geojson       the alerts as a GeoJSON FeatureCollection, exported from the outbox (atomic replace)
    healthmap.geojson    the plant-health zones (atomic replace)
    latency.json         per-stage latency statistics (atomic replace)
    thumbs/*.jpg         alert thumbnails

Append-only files are flushed after every record, so a crash loses at most the record being written; a
torn last line or record is what a reader must tolerate, and both readers here do. Whole-file JSON
documents go through :func:`atomic_write_bytes` (temporary file in the same folder, fsync, ``os.replace``)
so they are always either the old or the new version, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Any, Iterator

_MAVLINK_MAGIC = (0xFE, 0xFD)  # MAVLink 1, MAVLink 2
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step: readers see the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; these files are for the farmer's tools to read
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable; not every filesystem lets a directory be opened
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False, allow_nan=False) + "\n").encode())


def safe_file_name(name: str) -> str:
    """``name`` reduced to characters that are safe in a file name on every system."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._")
    return cleaned[:120] or "unnamed"


def jpeg_thumbnail(image, box_xyxy=None, *, max_side_px: int = 160, margin: float = 0.25, quality: int = 80) -> bytes:
    """A small JPEG of ``image`` (HxW or HxWxC uint8, BGR) around ``box_xyxy`` (pixels, with ``margin`` of the
    box's size added on each side), its longer side at most ``max_side_px``."""
    import cv2
    import numpy as np

    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image: expected an HxW or HxWxC uint8 array, got {img.dtype} {img.shape}")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]  # BGR + NIR: the thumbnail shows what a person would see
    h, w = img.shape[:2]
    if box_xyxy is not None:
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"box_xyxy: expected x2 > x1 and y2 > y1, got {box_xyxy}")
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        c1, r1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
        c2, r2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if c2 <= c1 or r2 <= r1:
            raise ValueError(f"box_xyxy: expected a box inside the {w}x{h} image, got {box_xyxy}")
        img = img[r1:r2, c1:c2]
    scale = min(1.0, max_side_px / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("image: OpenCV could not encode it as JPEG")
    return buf.tobytes()


class TlogWriter:
    """MAVLink telemetry log: each record is an 8-byte big-endian Unix time in microseconds + one raw packet."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")
        self.records = 0

    def write(self, packet_bytes: bytes, unix_us: int) -> None:
        packet = bytes(packet_bytes)
        if len(packet) < 8 or packet[0] not in _MAVLINK_MAGIC:
            head = packet[:1].hex() or "nothing"
            raise ValueError(f"packet_bytes: expected a raw MAVLink packet (0xfe/0xfd + header), got {len(packet)} "
                             f"bytes starting {head}")
        if not isinstance(unix_us, int) or not 0 <= unix_us < 2**64:
            raise ValueError(f"unix_us: expected a non-negative integer of microseconds, got {unix_us!r}")
        if self._fh.closed:
            raise ValueError(f"{self.path}: the tlog is closed")
        self._fh.write(struct.pack(">Q", unix_us) + packet)
        self._fh.flush()
        self.records += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> "TlogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class JsonlWriter:
    """One JSON object per line, appended and flushed per record."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        self._fh.write(line + "\n")
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The complete records of a JSON-lines file; a torn last line (power loss mid-write) is skipped."""
    with open(path, "r", encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


class FlightFolder:
    """One flight's folder. Create with :meth:`create`; every writer inside appends or replaces atomically."""

    TLOG = "telemetry.tlog"
    DETECTIONS = "detections.jsonl"
    OUTBOX = "outbox.sqlite"
    ALERTS_GEOJSON = "alerts.geojson"
    HEALTH_MAP = "healthmap.geojson"
    LATENCY = "latency.json"
    META = "flight.json"
    THUMBS = "thumbs"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tlog: TlogWriter | None = None
        self._detections: JsonlWriter | None = None

    @classmethod
    def create(cls, root: str | os.PathLike, flight_id: str, *, meta: dict[str, Any] | None = None) -> "FlightFolder":
        if not flight_id or safe_file_name(flight_id) != flight_id:
            raise ValueError(f"flight_id: expected letters, digits, '.', '_' or '-', got {flight_id!r}")
        folder = cls(Path(root) / flight_id)
        (folder.path / cls.THUMBS).mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder.path / cls.META, {"flight_id": flight_id, **(meta or {})})
        return folder

    @property
    def outbox_path(self) -> Path:
        return self.path / self.OUTBOX

    @property
    def tlog(self) -> TlogWriter:
        if self._tlog is None:
            self._tlog = TlogWriter(self.path / self.TLOG)
        return self._tlog

    def write_telemetry(self, packet_bytes: bytes, unix_us: int) -> None:
        self.tlog.write(packet_bytes, unix_us)

    def write_detection(self, record: dict[str, Any]) -> None:
        if self._detections is None:
            self._detections = JsonlWriter(self.path / self.DETECTIONS)
        self._detections.write(record)

    def save_thumbnail(self, name: str, jpeg: bytes) -> str:
        """Write a JPEG thumbnail; returns its path relative to the flight folder (what payloads reference)."""
        if not jpeg.startswith(b"\xff\xd8"):
            raise ValueError(f"jpeg: expected JPEG bytes (FF D8 ...), got {jpeg[:2].hex() or 'nothing'}")
        rel = f"{self.THUMBS}/{safe_file_name(name)}.jpg"
        atomic_write_bytes(self.path / rel, jpeg)
        return rel

    def write_health_map(self, geojson: dict[str, Any]) -> None:
        atomic_write_json(self.path / self.HEALTH_MAP, geojson)

    def write_alerts_geojson(self, geojson: dict[str, Any]) -> None:
        atomic_write_json(self.path / self.ALERTS_GEOJSON, geojson)

    def add_alert(self, outbox, alert) -> bool:
        """Save the alert's thumbnail (if any) as a JPEG file, then commit the alert to ``outbox`` referencing it."""
        rel = ""
        if alert.thumbnail_jpeg:
            rel = self.save_thumbnail(f"{alert.alert_id}-r{alert.revision}", alert.thumbnail_jpeg)
        return outbox.add(alert, thumbnail_file=rel)

    def export_alerts(self) -> int:
        """Write alerts.geojson from the outbox (newest revision of each alert); returns how many."""
        from agridrone.alerts.records import alerts_geojson, read_alerts

        rows = read_alerts(self.outbox_path)
        self.write_alerts_geojson(alerts_geojson(rows))
        return len(rows)

    def write_latency(self, stats: dict[str, Any]) -> None:
        atomic_write_json(self.path / self.LATENCY, stats)

    def close(self) -> None:
        if self._tlog is not None:
            self._tlog.close()
        if self._detections is not None:
            self._detections.close()
