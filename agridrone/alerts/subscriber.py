"""The farm office's receiver: subscribes to a farm's alerts and shows each one exactly once.

Deduplication is by (idempotency_key, revision): a copy of something already received, or an older
revision than one already received, is dropped. What was received is committed to SQLite (before the
broker gets its PUBACK) together with whether it has been shown, so a restart neither shows an alert
twice nor loses one that arrived just before a crash. The MQTT session is persistent (clean_session
off, stable client id) so the broker keeps QoS 1 alerts for the office while it is offline.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from agridrone.alerts.mqtt import MqttSettings, make_client, stop_client, topic_segment
from agridrone.alerts.outbox import OnceReporter
from agridrone.errors import WaitTimeout

SCHEMA = """
CREATE TABLE IF NOT EXISTS received (
    idempotency_key TEXT PRIMARY KEY, revision INTEGER NOT NULL, received_unix_s REAL NOT NULL,
    topic TEXT NOT NULL, payload TEXT NOT NULL, shown INTEGER NOT NULL DEFAULT 0);
"""


class AlertSubscriber:
    """Receive alerts under ``PREFIX/FARM/FIELD/+/alerts/+`` (FARM/FIELD default to every farm and field)."""

    def __init__(self, settings: MqttSettings, db_path: str | Path, *, farm: str = "+", field: str = "+",
                 client_id: str | None = None, report: Callable[[str, str], None] | None = None,
                 reconnect_delay_s: tuple[float, float] = (1.0, 10.0), wall_time: Callable[[], float] = time.time,
                 keepalive_s: int = 15) -> None:
        self.settings = settings
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        seg = lambda v: "+" if v == "+" else topic_segment(v)  # noqa: E731
        self.topic_filter = f"{settings.prefix}/{seg(farm)}/{seg(field)}/+/alerts/+"
        self.reporter = OnceReporter(report)
        self.wall_time = wall_time
        self.keepalive_s = keepalive_s
        self._db = sqlite3.connect(self.db_path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL").fetchone()
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.duplicates = 0
        self.received = 0
        for (payload,) in self._db.execute("SELECT payload FROM received WHERE shown = 0 ORDER BY received_unix_s"):
            self._queue.put(json.loads(payload))  # arrived before a restart but never shown
        digest = hashlib.sha1(f"{self.db_path.resolve()}|{self.topic_filter}".encode()).hexdigest()[:10]
        self.client, self.state = make_client(settings, client_id or settings.client_id or f"agridrone-office-{digest}",
                                              clean_session=False, reporter=self.reporter,
                                              reconnect_delay_s=reconnect_delay_s)
        self.subscribed = threading.Event()
        self.state.on_up = self._on_up
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._started = False

    def start(self) -> "AlertSubscriber":
        if not self._started:
            self._started = True
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.keepalive_s)
            self.client.loop_start()
        return self

    def _on_up(self, client) -> None:
        self.subscribed.clear()
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            self.subscribed.set()
        else:
            self.reporter.report("mqtt_subscribe", f"MQTT broker {self.settings.display} refused the subscription "
                                                   f"to {self.topic_filter}: {reason_codes}")

    def wait_connected(self, timeout_s: float) -> None:
        """Wait until connected and subscribed; raises WaitTimeout."""
        if not self.subscribed.wait(timeout_s):
            raise WaitTimeout(f"MQTT broker {self.settings.display}: expected a connection within {timeout_s} s, "
                              f"got {self.state.refused_reason or 'none'}", origin="mqtt connect",
                              timeout_s=timeout_s)

    def _on_message(self, client, userdata, message) -> None:
        try:
            payload = json.loads(message.payload.decode("utf-8"))
            key = str(payload["idempotency_key"])
            revision = int(payload["revision"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            self.reporter.report("bad_payload", f"ignoring a message on {message.topic} that is not an agridrone "
                                                f"alert ({type(err).__name__}: {err})")
            return
        with self._lock:
            self.received += 1
            row = self._db.execute("SELECT revision FROM received WHERE idempotency_key = ?", (key,)).fetchone()
            if row is not None and row[0] >= revision:
                self.duplicates += 1
                return
            self._db.execute("INSERT OR REPLACE INTO received VALUES (?, ?, ?, ?, ?, 0)",
                             (key, revision, self.wall_time(), message.topic, json.dumps(payload)))
        self._queue.put(payload)

    def get(self, timeout_s: float) -> dict[str, Any]:
        """The next alert not shown yet; raises WaitTimeout when none comes within ``timeout_s``."""
        try:
            return self._queue.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            raise WaitTimeout(f"expected an alert within {timeout_s:.1f} s, got none", origin="mqtt alerts",
                              timeout_s=timeout_s) from None

    def mark_shown(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("UPDATE received SET shown = 1 WHERE idempotency_key = ? AND revision = ?",
                             (payload["idempotency_key"], int(payload["revision"])))

    def seen(self) -> dict[str, int]:
        """idempotency_key -> newest revision received (shown or not)."""
        with self._lock:
            return dict(self._db.execute("SELECT idempotency_key, revision FROM received"))

    def close(self) -> None:
        if self._started:
            stop_client(self.client, self.state)
            self._started = False
        with self._lock:
            self._db.close()

    def __enter__(self) -> "AlertSubscriber":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
