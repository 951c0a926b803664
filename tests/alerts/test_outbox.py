"""The durable outbox: commit before delivery, restarts, retries, a corrupted file, a full disk."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from agridrone.alerts.outbox import Outbox, OutboxError
from agridrone.alerts.records import ack_alert, read_alerts
from agridrone.alerts.statustext import MAX_CHARS, StatusTextSink, format_statustext
from agridrone.clock import ManualClock
from agridrone.types import AlertKind

from .helpers import FakeLink, FakeSink, make_alert


def test_committed_before_delivery_and_wal(tmp_path):
    """The sink only ever sees alerts already in the database, and the database is in WAL mode."""
    path = tmp_path / "outbox.sqlite"
    seen_in_db = []

    class CheckingSink(FakeSink):
        def submit(self, record):
            db = sqlite3.connect(path)
            seen_in_db.append(db.execute("SELECT count(*) FROM alerts WHERE alert_id = ? AND revision = ?",
                                         record.key).fetchone()[0])
            db.close()
            super().submit(record)

    with Outbox(path, [CheckingSink()]) as outbox:
        for n in range(3):
            outbox.add(make_alert(n))
        outbox.pump()
        outbox.pump()
        assert outbox.pending() == 0
        assert outbox._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert seen_in_db == [1, 1, 1]


def test_survives_a_restart(tmp_path):
    """Alerts committed but not delivered when the process stops are delivered after a restart; delivered ones
    are not delivered again; a sink configured only after the restart gets every pending alert too."""
    path = tmp_path / "outbox.sqlite"
    link = FakeLink()
    outbox = Outbox(path, [StatusTextSink(link), FakeSink()])
    outbox.add(make_alert(1))
    outbox.pump()
    outbox.pump()
    outbox.sinks["fake"].available = False
    outbox.add(make_alert(2))
    outbox.add(make_alert(3))
    outbox.pump()
    outbox.pump()
    assert outbox.pending("fake") == 2 and outbox.pending("statustext") == 0
    outbox._db.close()  # the process dies: no orderly close

    again = FakeSink()
    outbox = Outbox(path, [StatusTextSink(link), again])
    assert outbox.pending() == 2
    outbox.pump()
    outbox.pump()
    assert [r.alert.alert_id for r in again.submitted] == ["F1/weeds/z2", "F1/weeds/z3"]
    assert len(link.sent) == 3
    outbox.close()


def test_newer_revision_supersedes_a_waiting_one(tmp_path):
    sink = FakeSink()
    sink.available = False
    with Outbox(tmp_path / "o.sqlite", [sink]) as outbox:
        outbox.add(make_alert(1, revision=1))
        outbox.add(make_alert(1, revision=2))
        sink.available = True
        outbox.pump()
        outbox.pump()
        assert [r.key for r in sink.submitted] == [("F1/weeds/z1", 2)]
    db = sqlite3.connect(tmp_path / "o.sqlite")
    assert dict(db.execute("SELECT revision, state FROM deliveries")) == {1: "superseded", 2: "delivered"}


def test_failed_sends_back_off():
    """STATUSTEXT over a failing link is retried with exponential backoff, then delivered once the link works."""
    clock = ManualClock()
    link = FakeLink()
    link.fail = True
    outbox = Outbox(":memory:", [StatusTextSink(link)], clock=clock, backoff_s=(1.0, 4.0))
    outbox.add(make_alert(1))
    attempts = []
    for _ in range(40):  # 10 s in 0.25 s steps
        outbox.pump()
        attempts.append(outbox._entries[("F1/weeds/z1", 1)].sinks["statustext"].attempts)
        clock.advance(0.25)
    # attempts at t = 0, 1, 3, 7 s (delays 1, 2, 4 s): 4 attempts in 10 s, not 40
    assert attempts[-1] == 4 and attempts[0] == 1 and attempts[4] == 2 and attempts[12] == 3
    link.fail = False
    clock.advance(4.0)
    outbox.pump()
    outbox.pump()
    assert outbox.pending() == 0 and len(link.sent) == 1
    outbox.close()


def test_statustext_is_short_ascii_with_severity():
    link = FakeLink()
    sink = StatusTextSink(link)
    for kind in AlertKind:
        alert = make_alert(123456, kind=kind, revision=12)
        text = format_statustext(alert)
        assert len(text) <= MAX_CHARS and text.isascii()
        assert f"{alert.lat_deg:.5f}" in text
    from agridrone.alerts.outbox import OutboxRecord

    sink.submit(OutboxRecord(make_alert(2, kind=AlertKind.PERSON), 0.0))
    assert link.sent == [("PERSON 80% -35.363241,149.165250", 5)]


def test_corrupted_outbox_is_moved_aside_and_reported_once(tmp_path):
    """A file that is not a database is kept (renamed), reported once, and a fresh outbox takes the alerts."""
    path = tmp_path / "outbox.sqlite"
    garbage = b"this is not sqlite" * 300
    path.write_bytes(garbage)
    reports = []
    with Outbox(path, [FakeSink()], report=lambda code, msg: reports.append((code, msg))) as outbox:
        assert outbox.add(make_alert(1))
        outbox.pump()
        outbox.pump()
        assert outbox.pending() == 0
    aside = tmp_path / "outbox.sqlite.corrupt-1"
    assert aside.read_bytes() == garbage
    assert [c for c, _ in reports] == ["outbox_corrupt"] and "outbox.sqlite.corrupt-1" in reports[0][1]
    assert len(read_alerts(path)) == 1


def test_corrupted_outbox_with_waiting_alerts_is_salvaged(tmp_path):
    """The process stops with alerts not yet delivered and the file gets damaged (an index page scribbled
    over): at the next start it is moved aside and reported once, and the alerts still readable in it are
    committed to the new outbox and delivered -- nothing committed is silently dropped."""
    path = tmp_path / "outbox.sqlite"
    sink = FakeSink()
    sink.available = False
    with Outbox(path, [sink]) as outbox:
        for n in range(1, 6):
            outbox.add(make_alert(n))
        outbox.pump()
    db = sqlite3.connect(path)
    index_page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_alerts_1'").fetchone()[0]
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as fh:
        fh.seek((index_page - 1) * page_size)
        fh.write(os.urandom(page_size))
    sink = FakeSink()
    with Outbox(path, [sink]) as outbox:
        assert outbox.reporter.count("outbox_corrupt") == 1
        assert "5 undelivered alert(s) recovered" in outbox.reporter.events[0][1]
        outbox.pump()
        outbox.pump()
        assert outbox.pending() == 0
    assert sorted(r.alert.alert_id for r in sink.submitted) == [f"F1/weeds/z{n}" for n in range(1, 6)]
    assert (tmp_path / "outbox.sqlite.corrupt-1").exists()
    assert len(read_alerts(path)) == 5


def _mount_tiny_tmpfs(where: Path) -> bool:
    where.mkdir()
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True,
                       timeout=10)
    return r.returncode == 0


@pytest.fixture(params=["tmpfs", "size_cap"])
def tiny_disk(request, tmp_path):
    """A really full filesystem (a 2 MiB tmpfs, when this process may mount one), or SQLite's own page cap
    (``max_page_count``, which makes SQLite raise the same 'database or disk is full')."""
    where = tmp_path / "tiny"
    if request.param == "tmpfs":
        if not _mount_tiny_tmpfs(where):
            pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN); the size_cap variant runs instead")
        yield "tmpfs", where
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)
    else:
        where.mkdir()
        yield "size_cap", where


def test_full_disk_reported_once_alerts_kept_in_memory(tiny_disk):
    """'database or disk is full': reported once, the flight goes on, the alert waits in memory (and is not
    delivered before it is committed); once there is room it is committed and delivered; nothing committed
    before is lost."""
    variant, folder = tiny_disk
    sink = FakeSink()
    filler = folder / "filler"
    outbox = Outbox(folder / "outbox.sqlite", [sink], max_db_bytes=96 * 1024 if variant == "size_cap" else None)
    if variant == "tmpfs":
        st = os.statvfs(folder)
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 128 * 1024))
    thumb = b"\xff\xd8" + os.urandom(6000)
    committed = 0
    for n in range(1, 60):
        if not outbox.add(make_alert(n, thumbnail=thumb)):
            break
        committed += 1
        outbox.pump()
    else:
        pytest.fail("the disk never filled up")
    for n in range(100, 105):  # more alerts while the disk is full: still one report
        outbox.add(make_alert(n, thumbnail=thumb))
        outbox.pump()
    assert outbox.reporter.count("disk_full") == 1
    assert outbox.uncommitted == 6
    submitted = {r.alert.alert_id for r in sink.submitted}
    assert len(submitted) == committed and "F1/weeds/z100" not in submitted
    if variant == "tmpfs":
        filler.unlink()
    else:
        outbox.set_max_db_bytes(None)
    outbox.pump()
    outbox.pump()
    assert outbox.uncommitted == 0 and outbox.pending() == 0
    assert len({r.alert.alert_id for r in sink.submitted}) == committed + 6
    assert outbox.reporter.count("disk_full_resolved") == 1
    outbox.close()
    assert len(read_alerts(folder / "outbox.sqlite")) == committed + 6


def test_read_and_ack(tmp_path):
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, [FakeSink()]) as outbox:
        outbox.add(make_alert(1))
        outbox.add(make_alert(1, revision=2))
        outbox.add(make_alert(2))
    rows = read_alerts(tmp_path)  # a flight folder works as well as the file
    assert [(r["alert"]["alert_id"], r["alert"]["revision"]) for r in rows] == [("F1/weeds/z1", 2), ("F1/weeds/z2", 1)]
    ack_alert(path, "F1/weeds/z2", unix_s=5.0)
    assert [r["acked_unix_s"] for r in read_alerts(path)] == [None, 5.0]
    with pytest.raises(OutboxError, match="expected an alert id"):
        ack_alert(path, "nope", unix_s=1.0)
    with pytest.raises(OutboxError, match="no such file"):
        read_alerts(tmp_path / "missing.sqlite")
    (tmp_path / "bad.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(OutboxError, match="unreadable"):
        read_alerts(tmp_path / "bad.sqlite")
