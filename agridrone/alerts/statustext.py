"""STATUSTEXT sink: a short line (<= 50 characters, ASCII) with a MAV_SEVERITY to the ground station.

The vehicle link provides ``send_statustext(text, severity)``; it raises on failure (e.g. the link is
down), which the outbox retries with backoff. STATUSTEXT has no acknowledgement: a send that returns
counts as delivered.
"""

from __future__ import annotations

from typing import Callable

from agridrone.alerts.outbox import Key, OutboxRecord, SinkError, SinkUnavailable
from agridrone.types import Alert, AlertKind

MAX_CHARS = 50

_SHORT = {
    AlertKind.STRESSED_ZONE: "STRESS", AlertKind.WEEDS: "WEEDS", AlertKind.PERSON: "PERSON",
    AlertKind.ANIMAL: "ANIMAL", AlertKind.VEHICLE: "VEHICLE", AlertKind.ROUTE_BLOCKED: "BLOCKED",
    AlertKind.AVOIDANCE_STOP: "STOP", AlertKind.LINK_LOST: "LINK LOST", AlertKind.CAMERA_LOST: "CAMERA LOST",
}


def format_statustext(alert: Alert) -> str:
    """E.g. ``WEEDS 42m2 -35.363261,149.165230 r2`` -- at most 50 ASCII characters."""
    head = _SHORT[alert.kind]
    if alert.kind in (AlertKind.STRESSED_ZONE, AlertKind.WEEDS):
        head += f" {alert.area_m2:.0f}m2"
    elif alert.kind in (AlertKind.PERSON, AlertKind.ANIMAL, AlertKind.VEHICLE):
        head += f" {alert.confidence * 100:.0f}%"
    pos = f"{alert.lat_deg:.6f},{alert.lon_deg:.6f}"
    rev = f" r{alert.revision}" if alert.revision > 1 else ""
    text = f"{head} {pos}{rev}"
    if len(text) > MAX_CHARS:  # drop precision before dropping the position
        text = f"{head} {alert.lat_deg:.5f},{alert.lon_deg:.5f}{rev}"
    text = text.encode("ascii", "replace").decode("ascii")
    return text[:MAX_CHARS]


class StatusTextSink:
    """Delivers alerts as STATUSTEXT through the vehicle link's ``send_statustext(text, severity)``."""

    name = "statustext"

    def __init__(self, send_statustext: Callable[[str, int], None] | None = None) -> None:
        self._send = send_statustext
        self._done: list[tuple[Key, str | None]] = []

    def attach(self, send_statustext: Callable[[str, int], None] | None) -> None:
        """Plug in (or, with None, unplug) the link; alerts wait in the outbox while it is unplugged."""
        self._send = send_statustext

    def submit(self, record: OutboxRecord) -> None:
        if self._send is None:
            raise SinkUnavailable("no MAVLink link attached")
        try:
            self._send(format_statustext(record.alert), int(record.alert.severity))
        except Exception as err:  # noqa: BLE001 - any link failure is a failed attempt, retried later
            raise SinkError(f"STATUSTEXT not sent: {type(err).__name__}: {err}") from err
        self._done.append((record.key, None))

    def poll(self) -> list[tuple[Key, str | None]]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        self._send = None
