"""Reading a flight's outbox after (or during) the flight: what ``agridrone alerts list|show|ack`` use.

The outbox is opened as an ordinary SQLite reader (WAL lets this run while the flight still writes);
a file that is missing or unreadable raises OutboxError with one line saying what was expected.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from agridrone.alerts.outbox import OutboxError, alert_feature, alert_from_dict


def _open_existing(path: str | os.PathLike) -> sqlite3.Connection:
    path = Path(path)
    if path.is_dir():
        path = path / "outbox.sqlite"
    if not path.is_file():
        raise OutboxError(f"expected an alert outbox at {path}, got no such file")
    try:
        db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        db.execute("SELECT count(*) FROM alerts").fetchone()
    except sqlite3.DatabaseError as err:
        raise OutboxError(f"expected an alert outbox at {path}, got an unreadable file ({err})") from err
    return db


def read_alerts(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The latest revision of each alert in a flight's outbox, with delivery states and acknowledgement."""
    db = _open_existing(path)
    try:
        rows = db.execute(
            "SELECT a.alert_id, a.revision, a.body, a.thumbnail_file, a.created_unix_s, length(a.thumbnail) "
            "FROM alerts a JOIN (SELECT alert_id, max(revision) AS revision FROM alerts GROUP BY alert_id) m "
            "USING (alert_id, revision) ORDER BY a.created_unix_s").fetchall()
        out = []
        for alert_id, revision, body, thumb_file, created, thumb_len in rows:
            deliveries = {sink: state for sink, state in db.execute(
                "SELECT sink, state FROM deliveries WHERE alert_id = ? AND revision = ?", (alert_id, revision))}
            ack = db.execute("SELECT acked_unix_s FROM acks WHERE alert_id = ?", (alert_id,)).fetchone()
            out.append({"alert": json.loads(body), "created_unix_s": created, "thumbnail_file": thumb_file,
                        "thumbnail_bytes": thumb_len or 0, "deliveries": deliveries,
                        "acked_unix_s": ack[0] if ack else None})
        return out
    finally:
        db.close()


def ack_alert(path: str | os.PathLike, alert_id: str, *, unix_s: float, note: str = "") -> None:
    db = _open_existing(path)
    try:
        if not db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone():
            raise OutboxError(f"expected an alert id from 'agridrone alerts list', got {alert_id!r}")
        db.execute("INSERT OR REPLACE INTO acks VALUES (?, ?, ?)", (alert_id, unix_s, note))
    except sqlite3.OperationalError as err:
        raise OutboxError(f"could not record the acknowledgement in {path}: {err}") from err
    finally:
        db.close()


def alerts_geojson(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A FeatureCollection of :func:`read_alerts` rows (what the flight folder's alerts.geojson holds)."""
    feats = []
    for row in rows:
        alert = alert_from_dict(row["alert"])
        feats.append(alert_feature(alert, created_unix_s=row["created_unix_s"], thumbnail_file=row["thumbnail_file"],
                                   extra={"acked": row["acked_unix_s"] is not None}))
    return {"type": "FeatureCollection", "features": feats}
