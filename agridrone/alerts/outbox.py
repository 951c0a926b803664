"""The durable alert outbox: every alert is committed to SQLite (WAL) before any sink sees it.

Each committed alert revision gets one delivery row per sink (``pending`` -> ``delivered``, or
``superseded`` when a newer revision of the same alert is committed before the old one left).
:meth:`Outbox.pump` hands due rows to their sinks and collects completions; failures back off
exponentially per (alert, sink). A process restart reloads every row not yet delivered.

Trouble is reported once per episode through ``report(code, message)`` and the flight goes on:

* ``outbox_corrupt`` -- the file is not a readable database: it is moved aside (``NAME.corrupt-N``, with
  its -wal/-shm), never deleted, and a fresh outbox takes over; alerts still in memory are re-committed.
* ``disk_full`` -- SQLite says "database or disk is full" (or another write error): the alert stays in
  memory and is committed on a later pump, once there is room; it is delivered after that.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from agridrone.clock import Clock, MonotonicClock
from agridrone.errors import AgriDroneError
from agridrone.types import Alert, AlertKind

log = logging.getLogger("agridrone.alerts")

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT NOT NULL, revision INTEGER NOT NULL, kind TEXT NOT NULL, severity INTEGER NOT NULL,
    created_unix_s REAL NOT NULL, body TEXT NOT NULL, thumbnail BLOB, thumbnail_file TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (alert_id, revision));
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id TEXT NOT NULL, revision INTEGER NOT NULL, sink TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', delivered_unix_s REAL,
    PRIMARY KEY (alert_id, revision, sink));
CREATE TABLE IF NOT EXISTS acks (alert_id TEXT PRIMARY KEY, acked_unix_s REAL NOT NULL, note TEXT NOT NULL DEFAULT '');
"""

Key = tuple[str, int]  # (alert_id, revision)


class OutboxError(AgriDroneError):
    """The outbox file cannot be read, or an alert id is not in it."""

    exit_code = 9


class SinkUnavailable(Exception):
    """The sink cannot take anything now (e.g. broker not connected); not counted as a failed attempt."""


class SinkError(Exception):
    """One delivery attempt failed; the outbox retries with backoff."""


@dataclass(frozen=True)
class OutboxRecord:
    """One committed alert revision, as sinks receive it."""

    alert: Alert
    created_unix_s: float
    thumbnail_file: str = ""

    @property
    def key(self) -> Key:
        return (self.alert.alert_id, self.alert.revision)


class Sink(Protocol):
    name: str

    def submit(self, record: OutboxRecord) -> None:
        """Start delivering; raise SinkUnavailable or SinkError. Completion is reported by :meth:`poll`."""

    def poll(self) -> list[tuple[Key, str | None]]:
        """Completed deliveries since the last call: (key, None) when delivered, (key, error) when failed."""

    def close(self) -> None: ...


class OnceReporter:
    """Reports each problem code once until it is resolved; keeps the history in ``events``.

    A report goes to ``callback(code, message)`` when one is given, else to the ``agridrone.alerts`` logger.
    """

    def __init__(self, callback: Callable[[str, str], None] | None = None) -> None:
        self._callback = callback
        self._active: set[str] = set()
        self._lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def report(self, code: str, message: str) -> bool:
        with self._lock:
            if code in self._active:
                return False
            self._active.add(code)
            self.events.append((code, message))
        if self._callback is not None:
            self._callback(code, message)
        else:
            log.warning("%s", message)
        return True

    def resolve(self, code: str, message: str = "") -> None:
        with self._lock:
            if code not in self._active:
                return
            self._active.discard(code)
            if message:
                self.events.append((code + "_resolved", message))
        if message:
            if self._callback is not None:
                self._callback(code + "_resolved", message)
            else:
                log.info("%s", message)

    def active(self, code: str) -> bool:
        return code in self._active

    def count(self, code: str) -> int:
        return sum(1 for c, _ in self.events if c == code)


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    d = {f.name: getattr(alert, f.name) for f in dataclasses.fields(alert) if f.name != "thumbnail_jpeg"}
    d["kind"] = alert.kind.value
    d["polygon"] = [list(p) for p in alert.polygon]
    return d


def alert_from_dict(d: dict[str, Any], thumbnail: bytes = b"") -> Alert:
    d = dict(d)
    d["kind"] = AlertKind(d["kind"])
    d["polygon"] = tuple(tuple(p) for p in d.get("polygon", ()))
    return Alert(**d, thumbnail_jpeg=thumbnail or b"")


def alert_feature(alert: Alert, *, created_unix_s: float | None = None, thumbnail_file: str = "",
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The alert as a GeoJSON Feature (RFC 7946: lon, lat order): Polygon for zones, Point otherwise."""
    if len(alert.polygon) >= 4:
        ring = [[round(lon, 8), round(lat, 8)] for lat, lon in alert.polygon]
        ring[-1] = ring[0]
        geometry = {"type": "Polygon", "coordinates": [ring]}
    else:
        geometry = {"type": "Point", "coordinates": [round(alert.lon_deg, 8), round(alert.lat_deg, 8)]}
    props = {"alert_id": alert.alert_id, "revision": alert.revision, "kind": alert.kind.value,
             "severity": alert.severity, "label": alert.label, "confidence": alert.confidence, "text": alert.text,
             "lat_deg": round(alert.lat_deg, 8), "lon_deg": round(alert.lon_deg, 8),
             "area_m2": round(alert.area_m2, 2), "thumbnail_file": thumbnail_file, **alert.properties}
    if created_unix_s is not None:
        props["time"] = _iso(created_unix_s)
    props.update(extra or {})
    return {"type": "Feature", "id": f"{alert.alert_id}#{alert.revision}", "geometry": geometry, "properties": props}


def _iso(unix_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix_s)) + f".{int(unix_s * 1000) % 1000:03d}Z"


@dataclass
class _Delivery:
    state: str = "pending"          # pending | inflight | delivered | superseded
    attempts: int = 0
    next_ns: int = 0
    submitted_ns: int = 0
    last_error: str = ""


@dataclass
class _Entry:
    record: OutboxRecord
    committed: bool
    sinks: dict[str, _Delivery] = field(default_factory=dict)


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, sqlite3.OperationalError) and "full" in str(err).lower()


class Outbox:
    """Commit, then deliver. Thread-safe; :meth:`start` runs :meth:`pump` on a background thread."""

    def __init__(self, path: str | os.PathLike, sinks: Iterable[Sink] = (), *, clock: Clock | None = None,
                 wall_time: Callable[[], float] = time.time, report: Callable[[str, str], None] | None = None,
                 backoff_s: tuple[float, float] = (0.5, 30.0), ack_timeout_s: float = 30.0,
                 max_db_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.sinks = {s.name: s for s in sinks}
        self.clock = clock or MonotonicClock()
        self.wall_time = wall_time
        self.reporter = OnceReporter(report)
        self.backoff_s = backoff_s
        self.ack_timeout_s = ack_timeout_s
        self.max_db_bytes = max_db_bytes
        self._lock = threading.RLock()
        self._entries: dict[Key, _Entry] = {}
        self._salvaged: list[tuple[OutboxRecord, dict[str, str]]] = []
        self._dirty: dict[tuple[Key, str], _Delivery] = {}  # delivery states not yet written
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.moved_aside: list[Path] = []
        self.delivered_count: dict[str, int] = {name: 0 for name in self.sinks}
        self._db = self._open()
        self._load_pending()

    # -- database ----------------------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.OperationalError as err:  # locked, unreadable, no room: not corruption, keep the file
            raise OutboxError(f"alert outbox {self.path}: expected a writable SQLite file, got: {err}") from err
        except sqlite3.DatabaseError as err:  # "file is not a database", "malformed": corruption
            self._move_aside(err)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA journal_size_limit=1048576").fetchone()
            if self.max_db_bytes:
                page = db.execute("PRAGMA page_size").fetchone()[0]
                db.execute(f"PRAGMA max_page_count={max(1, int(self.max_db_bytes) // page)}")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, err: BaseException) -> None:
        n = 1
        while self.path.with_name(f"{self.path.name}.corrupt-{n}").exists():
            n += 1
        dest = self.path.with_name(f"{self.path.name}.corrupt-{n}")
        os.replace(self.path, dest)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.replace(side, dest.with_name(dest.name + suffix))
        self.moved_aside.append(dest)
        self._salvaged = _salvage(dest)
        self.reporter.report("outbox_corrupt", f"alert outbox {self.path} is not a readable database ({err}); "
                                               f"kept as {dest.name}, {len(self._salvaged)} undelivered alert(s) "
                                               f"recovered from it, continuing with a new outbox")

    def _reset_after_corruption(self, err: BaseException) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self.reporter.resolve("outbox_corrupt")
        self._move_aside(err)
        self._db = self._connect()
        for entry in self._entries.values():  # everything not yet delivered must be committed again
            entry.committed = False
        self._adopt_salvaged()

    def _load_pending(self) -> None:
        rows = self._db.execute(
            "SELECT a.alert_id, a.revision, a.body, a.thumbnail, a.thumbnail_file, a.created_unix_s, "
            "d.sink, d.state, d.attempts FROM alerts a JOIN deliveries d USING (alert_id, revision) "
            "WHERE EXISTS (SELECT 1 FROM deliveries p WHERE p.alert_id = a.alert_id AND p.revision = a.revision "
            "AND p.state = 'pending') ORDER BY a.created_unix_s").fetchall()
        for alert_id, revision, body, thumb, thumb_file, created, sink, state, attempts in rows:
            key = (alert_id, revision)
            entry = self._entries.get(key)
            if entry is None:
                record = OutboxRecord(alert_from_dict(json.loads(body), thumb or b""), created, thumb_file)
                entry = self._entries[key] = _Entry(record, committed=True)
            entry.sinks[sink] = _Delivery(state=state, attempts=attempts)
        self._adopt_salvaged()
        # sinks configured now but absent when these alerts were committed get their rows too
        for key, entry in self._entries.items():
            for name in self.sinks:
                if name not in entry.sinks:
                    entry.sinks[name] = _Delivery()
                    self._dirty[(key, name)] = entry.sinks[name]
        self._flush()

    def _adopt_salvaged(self) -> None:
        """Alerts recovered from a corrupted file wait to be committed again, like alerts that just came."""
        for record, states in self._salvaged:
            if record.key not in self._entries:
                self._entries[record.key] = _Entry(record, committed=False, sinks={
                    name: _Delivery(state=states.get(name, "pending")) for name in set(self.sinks) | set(states)})
        self._salvaged = []

    def _write(self, fn: Callable[[sqlite3.Connection], None]) -> bool:
        """Run a write transaction; False (reported once) when the disk is full or the write fails."""
        for attempt in (1, 2):
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    fn(self._db)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as err:
                if attempt == 1 and is_disk_full(err) and self._checkpoint():
                    continue  # the write-ahead log gave its space back: try once more
                what = "the disk is full" if is_disk_full(err) else f"a write failed ({err})"
                self.reporter.report("disk_full", f"alert outbox {self.path}: {what}; keeping alerts in memory "
                                                  f"until they can be written")
                return False
            except sqlite3.DatabaseError as err:
                self._reset_after_corruption(err)
                return False
            break
        self.reporter.resolve("disk_full", f"alert outbox {self.path}: writing again")
        return True

    def _checkpoint(self) -> bool:
        """Move the write-ahead log into the database and truncate it (frees space on a small card)."""
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            return False
        return busy == 0

    def _commit_entry(self, entry: _Entry) -> bool:
        rec, alert = entry.record, entry.record.alert

        def tx(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (alert.alert_id, alert.revision, alert.kind.value, alert.severity, rec.created_unix_s,
                        json.dumps(alert_to_dict(alert)), alert.thumbnail_jpeg or None, rec.thumbnail_file))
            for name, d in entry.sinks.items():
                db.execute("INSERT OR REPLACE INTO deliveries (alert_id, revision, sink, state, attempts) "
                           "VALUES (?, ?, ?, ?, ?)", (alert.alert_id, alert.revision, name,
                                                      "pending" if d.state == "inflight" else d.state, d.attempts))
            db.execute("UPDATE deliveries SET state = 'superseded' WHERE alert_id = ? AND revision < ? "
                       "AND state = 'pending'", (alert.alert_id, alert.revision))

        if self._write(tx):
            entry.committed = True
        return entry.committed

    def _flush(self) -> None:
        """Write what could not be written before: uncommitted alerts first, then delivery states."""
        for entry in sorted((e for e in self._entries.values() if not e.committed),
                            key=lambda e: e.record.created_unix_s):
            if not self._commit_entry(entry):
                return
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}

        def tx(db: sqlite3.Connection) -> None:
            for (key, sink), d in dirty.items():
                db.execute("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (key[0], key[1], sink, "pending" if d.state == "inflight" else d.state, d.attempts,
                            d.last_error, self.wall_time() if d.state == "delivered" else None))

        if not self._write(tx):
            self._dirty = {**dirty, **self._dirty}

    # -- public ------------------------------------------------------------------------------------------------------

    def add(self, alert: Alert, *, thumbnail_file: str = "") -> bool:
        """Commit one alert revision. True when it is on disk; False when it waits in memory (reported once)."""
        with self._lock:
            record = OutboxRecord(alert, self.wall_time(), thumbnail_file)
            entry = _Entry(record, committed=False, sinks={name: _Delivery() for name in self.sinks})
            self._entries[record.key] = entry
            for key, older in self._entries.items():  # an older revision still waiting need not go
                if key[0] == alert.alert_id and key[1] < alert.revision:
                    for d in older.sinks.values():
                        if d.state == "pending":
                            d.state = "superseded"
            self._flush()
            self._forget_finished()
            return entry.committed

    def pump(self) -> int:
        """Write what waits, collect completions, submit what is due. Returns how many deliveries completed."""
        with self._lock:
            now = self.clock.monotonic_ns()
            self._flush()
            done = 0
            for name, sink in self.sinks.items():
                for key, error in sink.poll():
                    entry = self._entries.get(key)
                    d = entry.sinks.get(name) if entry is not None else None
                    if d is None or d.state != "inflight":
                        continue
                    if error is None:
                        d.state = "delivered"
                        done += 1
                        self.delivered_count[name] = self.delivered_count.get(name, 0) + 1
                    else:
                        self._failed(d, now, error)
                    self._dirty[(key, name)] = d
            for name, sink in self.sinks.items():
                available = True
                for key, entry in sorted(self._entries.items(), key=lambda kv: (kv[1].record.alert.severity,
                                                                               kv[1].record.created_unix_s)):
                    d = entry.sinks.get(name)
                    if d is None or not entry.committed:
                        continue
                    if d.state == "inflight" and now - d.submitted_ns > self.ack_timeout_s * 1e9:
                        self._failed(d, now, "no acknowledgement")
                        self._dirty[(key, name)] = d
                    if not available or d.state != "pending" or d.next_ns > now:
                        continue
                    try:
                        sink.submit(entry.record)
                    except SinkUnavailable:
                        available = False
                        continue
                    except SinkError as err:
                        d.attempts += 1
                        self._failed(d, now, str(err))
                        self._dirty[(key, name)] = d
                        continue
                    d.state, d.submitted_ns = "inflight", now
                    d.attempts += 1
            self._flush()
            self._forget_finished()
            return done

    def _failed(self, d: _Delivery, now: int, error: str) -> None:
        base, cap = self.backoff_s
        d.state = "pending"
        d.last_error = error[:200]
        d.next_ns = now + int(min(cap, base * 2 ** max(0, d.attempts - 1)) * 1e9)

    def _forget_finished(self) -> None:
        for key in [k for k, e in self._entries.items()
                    if e.committed and all(d.state in ("delivered", "superseded") for d in e.sinks.values())
                    and not any(kk == k for kk, _ in self._dirty)]:
            del self._entries[key]

    def pending(self, sink: str | None = None) -> int:
        """How many alert revisions still wait for delivery (to ``sink``, or to any sink)."""
        with self._lock:
            return sum(1 for e in self._entries.values()
                       if any(d.state in ("pending", "inflight") for n, d in e.sinks.items() if sink in (None, n)))

    @property
    def uncommitted(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if not e.committed)

    def set_max_db_bytes(self, max_db_bytes: int | None) -> None:
        """Change the size cap (None: only the disk limits it)."""
        with self._lock:
            self.max_db_bytes = max_db_bytes
            page = self._db.execute("PRAGMA page_size").fetchone()[0]
            limit = max(1, int(max_db_bytes) // page) if max_db_bytes else 2**31 - 2
            self._db.execute(f"PRAGMA max_page_count={limit}")

    def start(self, interval_s: float = 0.1) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), name="alert-outbox", daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.pump()
            except Exception as err:  # noqa: BLE001 - the delivery thread must survive a sink's bug
                self.reporter.report("pump_error", f"alert delivery: {type(err).__name__}: {err}")

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout_s)
        self._thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._flush()
            for sink in self.sinks.values():
                sink.close()
            self._db.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _salvage(path: Path, max_misses: int = 200) -> list[tuple[OutboxRecord, dict[str, str]]]:
    """Best effort: the newest revision of each alert still readable in a corrupted outbox, with the delivery
    states still readable (a sink whose state is unreadable counts as not delivered), when not yet delivered."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    alerts: dict[str, tuple] = {}
    states: dict[tuple[Key, str], str] = {}
    try:
        for table, cols in (("alerts", "alert_id, revision, body, thumbnail, thumbnail_file, created_unix_s"),
                            ("deliveries", "alert_id, revision, sink, state")):
            misses, rowid = 0, 0
            while misses < max_misses:
                rowid += 1
                try:
                    row = db.execute(f"SELECT {cols} FROM {table} NOT INDEXED WHERE rowid = ?", (rowid,)).fetchone()
                except sqlite3.Error:
                    row = None
                if row is None:
                    misses += 1
                    continue
                misses = 0
                if table == "deliveries":
                    states[((row[0], row[1]), row[2])] = row[3]
                elif row[0] not in alerts or alerts[row[0]][1] < row[1]:
                    alerts[row[0]] = row
    finally:
        db.close()
    out = []
    for alert_id, revision, body, thumb, thumb_file, created in alerts.values():
        try:
            record = OutboxRecord(alert_from_dict(json.loads(body), thumb or b""), created, thumb_file or "")
        except (ValueError, TypeError, KeyError):
            continue
        known = {sink: st for (key, sink), st in states.items() if key == (alert_id, revision)}
        if known and all(st in ("delivered", "superseded") for st in known.values()):
            continue
        out.append((record, {sink: ("delivered" if st == "delivered" else "pending") for sink, st in known.items()}))
    return out


def thumbnail_b64(jpeg: bytes, max_bytes: int) -> str:
    return base64.b64encode(jpeg).decode("ascii") if jpeg and len(jpeg) <= max_bytes else ""
