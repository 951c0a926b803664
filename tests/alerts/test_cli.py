"""``agridrone alerts list|show|ack|listen``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from agridrone.alerts.mqtt import parse_mqtt_url, MqttSink
from agridrone.alerts.outbox import Outbox
from agridrone.alerts.records import read_alerts
from agridrone.cli import main
from agridrone.flightlog import FlightFolder
from agridrone.types import AlertKind

from .helpers import FakeSink, make_alert, wait_until


@pytest.fixture
def flight(tmp_path):
    folder = FlightFolder.create(tmp_path, "F1")
    thumb = folder.save_thumbnail("z1", b"\xff\xd8\xff\xe0x")
    with Outbox(folder.outbox_path, [FakeSink()]) as outbox:
        outbox.add(make_alert(1), thumbnail_file=thumb)
        outbox.add(make_alert(2, kind=AlertKind.PERSON))
        outbox.pump()
        outbox.pump()
    return folder.path


def test_list_show_ack(flight, capsys):
    assert main(["alerts", "list", str(flight)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("F1/weeds/z1  r1  NOTICE") and "fake:delivered" in out[0]
    assert out[0].endswith(" new")
    assert main(["alerts", "show", "F1/weeds/z1", str(flight)]) == 0
    shown = capsys.readouterr().out
    assert "thumbnail   " in shown and "thumbs/z1.jpg" in shown and "acked       no" in shown
    assert main(["alerts", "ack", "F1/weeds/z1", str(flight)]) == 0
    assert capsys.readouterr().out == "acknowledged F1/weeds/z1\n"
    assert [r["acked_unix_s"] is not None for r in read_alerts(flight)] == [True, False]
    assert main(["alerts", "list", "--json", str(flight)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[1]["alert"]["kind"] == "person"


def test_bad_input_is_one_line(flight, tmp_path, capsys):
    assert main(["alerts", "show", "nope", str(flight)]) == 9
    assert main(["alerts", "ack", "nope", str(flight)]) == 9
    assert main(["alerts", "list", str(tmp_path / "nowhere")]) == 9
    assert main(["alerts", "listen", "--mqtt", "http://x/y", "--timeout", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("agridrone: error: expected") or "--mqtt" in line for line in err)


@pytest.mark.mqtt
def test_listen_prints_each_alert_once(mosquitto, tmp_path):
    """The farm-office command prints each alert once (a re-published copy is not printed) and exits after
    --count alerts."""
    db = tmp_path / "office.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "agridrone", "alerts", "listen", "--mqtt", mosquitto.url,
                             "--db", str(db), "--count", "2", "--timeout", "20", "--farm", "Green Farm"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sink = MqttSink(parse_mqtt_url(mosquitto.url), farm="Green Farm", field="north", drone="d1",
                    reconnect_delay_s=(0.2, 1.0)).start()
    try:
        first = proc.stderr.readline()  # blocks until the listener is subscribed (or exits)
        assert first.startswith("agridrone: listening on agritest/Green_Farm/+/+/alerts/+"), first
        with Outbox(tmp_path / "outbox.sqlite", [sink]) as outbox:
            outbox.add(make_alert(1))
            outbox.add(make_alert(2, kind=AlertKind.PERSON))
            # republish (as after a lost PUBACK) until the listener is done: it must not print copies
            done = threading.Event()

            def republish():
                while not done.is_set() and proc.poll() is None:
                    outbox.add(make_alert(1))
                    outbox.pump()
                    done.wait(0.1)

            wait_until(lambda: outbox.pending() == 0, 10, "publish", step=outbox.pump)
            t = threading.Thread(target=republish)
            t.start()
            out, err = proc.communicate(timeout=30)
            done.set()
            t.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and "F1/weeds/z1 r1" in lines[0] + lines[1] and "F1/person/z2 r1" in lines[0] + lines[1]
    assert "Green Farm/north/d1" in lines[0]


@pytest.mark.mqtt
def test_listen_timeout_without_alerts(mosquitto, tmp_path, capsys):
    rc = main(["alerts", "listen", "--mqtt", mosquitto.url, "--db", str(tmp_path / "o.sqlite"), "--farm", "empty",
               "--timeout", "0.5"])
    assert rc == 0 and capsys.readouterr().out == ""
    rc = main(["alerts", "listen", "--mqtt", mosquitto.url, "--db", str(tmp_path / "o.sqlite"), "--farm", "empty",
               "--timeout", "0.5", "--count", "1"])
    assert rc == 5 and "expected 1 alert(s)" in capsys.readouterr().err


@pytest.mark.mqtt
def test_listen_refused_credentials(mosquitto, tmp_path, capsys):
    if not mosquitto.auth_port:
        pytest.skip("mosquitto_passwd not found: no password-protected listener")
    url = mosquitto.auth_url.replace(":s3cret@", ":nope@")
    rc = main(["alerts", "listen", "--mqtt", url, "--db", str(tmp_path / "o.sqlite"), "--timeout", "10"])
    err = capsys.readouterr().err
    assert rc == 3 and "refused the credentials for farmer" in err and "nope" not in err


def test_listen_unreachable_broker(tmp_path, capsys):
    """Nothing listens there: one line saying so while it retries, then an error exit when --timeout runs out."""
    from .conftest import free_tcp_port

    rc = main(["alerts", "listen", "--mqtt", f"mqtt://127.0.0.1:{free_tcp_port()}/x", "--db",
               str(tmp_path / "o.sqlite"), "--timeout", "1.5"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 3 and len(err) == 2
    assert "unreachable; retrying with backoff" in err[0] and "expected a connection within 1.5 s" in err[1]
