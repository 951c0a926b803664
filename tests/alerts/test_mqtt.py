"""MQTT delivery against a real mosquitto broker: PUBACK, outages, refused credentials, TLS, the subscriber."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agridrone.alerts.mqtt import MqttSink, alert_topic, build_payload, parse_mqtt_url
from agridrone.alerts.outbox import Outbox, OutboxRecord
from agridrone.alerts.records import read_alerts
from agridrone.alerts.statustext import StatusTextSink
from agridrone.alerts.subscriber import AlertSubscriber
from agridrone.errors import ConfigError, WaitTimeout
from agridrone.types import AlertKind

from .helpers import HOME, FakeLink, make_alert, wait_until

pytestmark = pytest.mark.mqtt
FAST = (0.2, 1.0)  # reconnect backoff for tests: min, max seconds


def _sink(url: str, **kw) -> MqttSink:
    return MqttSink(parse_mqtt_url(url), farm="Green Farm", field="north", drone="d1", reconnect_delay_s=FAST,
                    **kw).start()


def _subscriber(url: str, db, **kw) -> AlertSubscriber:
    return AlertSubscriber(parse_mqtt_url(url), db, reconnect_delay_s=FAST, **kw).start()


def _collect(sub: AlertSubscriber, n: int, timeout_s: float = 10.0) -> list[dict]:
    got = []
    for _ in range(n):
        payload = sub.get(timeout_s)
        sub.mark_shown(payload)
        got.append(payload)
    return got


def _no_more(sub: AlertSubscriber, grace_s: float = 0.5) -> None:
    with pytest.raises(WaitTimeout):
        extra = sub.get(grace_s)
        raise AssertionError(f"expected no further alert, got {extra['idempotency_key']} r{extra['revision']}")


@pytest.mark.parametrize("url, host, port, tls, user, password, prefix", [
    ("mqtt://broker.local/farm", "broker.local", 1883, False, None, None, "farm"),
    ("mqtt://127.0.0.1:1999/a/b", "127.0.0.1", 1999, False, None, None, "a/b"),
    ("mqtts://anna:p%40ss@example.org:8884/agri", "example.org", 8884, True, "anna", "p@ss", "agri"),
    ("mqtts://anna@example.org", "example.org", 8883, True, "anna", None, "agridrone"),
])
def test_parse_mqtt_url(url, host, port, tls, user, password, prefix):
    s = parse_mqtt_url(url)
    assert (s.host, s.port, s.tls, s.username, s.password, s.prefix) == (host, port, tls, user, password, prefix)
    assert "p@ss" not in s.display and "%40" not in s.display


@pytest.mark.parametrize("url, expected", [
    ("broker.local:1883", "expected mqtt://"), ("http://h/x", "scheme mqtt or mqtts"),
    ("mqtt://h:99999/x", "port"), ("mqtt:///x", "host"), ("mqtt://h/a/+/b", "prefix"),
    ("mqtt://h/x?ca=/tmp/ca.pem", "mqtts"), ("mqtts://h/x?colour=red", "query options"),
])
def test_parse_mqtt_url_rejects(url, expected):
    with pytest.raises(ConfigError) as err:
        parse_mqtt_url(url)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_topic_and_payload_follow_the_documented_format():
    alert = make_alert(3, thumbnail=b"\xff\xd8tiny")
    rec = OutboxRecord(alert, 1_764_093_600.25, "thumbs/z3.jpg")
    assert alert_topic("agri", "Green Farm", "north/east", "d+1", "weeds") == "agri/Green_Farm/north_east/d_1/alerts/weeds"
    p = build_payload(rec, farm="f", field="x", drone="d")
    assert p["idempotency_key"] == alert.alert_id and p["revision"] == 1 and p["kind"] == "weeds"
    assert p["time"] == "2025-11-25T18:00:00.250Z"
    lon, lat = p["feature"]["geometry"]["coordinates"]
    assert (lat, lon) == (round(alert.lat_deg, 8), round(alert.lon_deg, 8))  # RFC 7946: lon, lat
    assert p["thumbnail"] == {"file": "thumbs/z3.jpg", "jpeg_base64": "/9h0aW55"}
    assert build_payload(rec, farm="f", field="x", drone="d", thumb_inline_max_bytes=2)["thumbnail"]["jpeg_base64"] == ""
    json.dumps(p, allow_nan=False)


def test_delivered_only_when_the_puback_arrives(monkeypatch):
    """The sink reports a message delivered on the broker's PUBACK (on_publish), not when publish() returns."""
    sink = MqttSink(parse_mqtt_url("mqtt://127.0.0.1:1/x"), farm="f", field="x", drone="d")
    sink._started = True  # no network: drive the client by hand
    sink.state.connected.set()

    class Info:
        rc, mid = 0, 41

    monkeypatch.setattr(sink.client, "publish", lambda *a, **k: Info())
    rec = OutboxRecord(make_alert(1), 0.0)
    sink.submit(rec)
    assert sink.poll() == []
    sink._on_publish(sink.client, None, 41, None, None)
    assert sink.poll() == [(rec.key, None)]
    assert sink.poll() == []


def test_publish_deliver_with_puback(mosquitto, tmp_path):
    """Alerts committed to the outbox reach a real broker and the subscriber once each; the outbox marks them
    delivered per sink."""
    link = FakeLink()
    sub = _subscriber(mosquitto.url, tmp_path / "office.sqlite", farm="Green Farm")
    sub.wait_connected(10)
    sink = _sink(mosquitto.url)
    with Outbox(tmp_path / "outbox.sqlite", [StatusTextSink(link), sink]) as outbox:
        for n in (1, 2, 3):
            assert outbox.add(make_alert(n))
        wait_until(lambda: outbox.pending() == 0, 10, "all alerts delivered", step=outbox.pump)
        got = _collect(sub, 3)
        _no_more(sub)
        assert sorted(p["idempotency_key"] for p in got) == [f"F1/weeds/z{n}" for n in (1, 2, 3)]
        assert outbox.delivered_count == {"statustext": 3, "mqtt": 3}
        assert len(link.sent) == 3
    rows = read_alerts(tmp_path / "outbox.sqlite")
    assert [r["deliveries"] for r in rows] == [{"mqtt": "delivered", "statustext": "delivered"}] * 3
    sub.close()


@pytest.mark.slow
def test_broker_stopped_and_restarted_mid_flight(mosquitto_factory, tmp_path):
    """Alerts keep coming while the broker is stopped (some of them in flight at that moment) and restarted:
    the subscriber shows every alert and update exactly once, the outage is reported once, and STATUSTEXT
    delivery never stops."""
    broker = mosquitto_factory()
    link = FakeLink()
    sub = _subscriber(broker.url, tmp_path / "office.sqlite")
    sub.wait_connected(10)
    sink = _sink(broker.url)
    outbox = Outbox(tmp_path / "outbox.sqlite", [StatusTextSink(link), sink], backoff_s=(0.2, 1.0))
    outbox.start(interval_s=0.02)
    added = threading.Event()
    half = threading.Event()

    def produce():  # one alert every 30 ms, as a flight loop would
        for n in range(1, 41):
            outbox.add(make_alert(n))
            if n == 12:
                half.set()
            time.sleep(0.03)
        outbox.add(make_alert(2, revision=2))  # a zone grew
        added.set()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        assert half.wait(10)
        broker.stop()
        stopped_at = outbox.delivered_count["mqtt"]
        time.sleep(0.6)
        broker.start()
        producer.join(20)
        assert added.is_set()
        wait_until(lambda: outbox.pending() == 0, 20, "delivery after the broker came back")
        got = _collect(sub, 41, timeout_s=20)
        _no_more(sub)
    finally:
        added.wait(20)
        outbox.close()
        sub.close()
    shown = [(p["idempotency_key"], p["revision"]) for p in got]
    expected = {(f"F1/weeds/z{n}", 1) for n in range(1, 41)} | {("F1/weeds/z2", 2)}
    assert len(shown) == len(set(shown)) == 41 and set(shown) == expected
    assert 0 < stopped_at < 41
    assert sink.reporter.count("mqtt_lost") == 1 and sink.reporter.count("mqtt_unreachable") == 0
    assert len(link.sent) == 41


def test_wrong_credentials_reported_once_and_alerts_kept(mosquitto, tmp_path):
    """A broker refusing the login is reported once; the outbox keeps every alert for MQTT and still
    delivers STATUSTEXT."""
    if not mosquitto.auth_port:
        pytest.skip("mosquitto_passwd not found: no password-protected listener")
    reports = []
    bad = mosquitto.auth_url.replace(":s3cret@", ":wrong@")
    sink = _sink(bad, report=lambda code, msg: reports.append(code))
    link = FakeLink()
    with Outbox(tmp_path / "outbox.sqlite", [StatusTextSink(link), sink]) as outbox:
        outbox.add(make_alert(1))
        outbox.add(make_alert(2))
        wait_until(lambda: sink.reporter.count("mqtt_auth") >= 1, 10, "the refusal to be reported", step=outbox.pump)
        for _ in range(30):  # the client retries meanwhile (backoff 0.2 s .. 1 s): still one report
            outbox.pump()
            time.sleep(0.05)
        assert reports.count("mqtt_auth") == 1
        assert outbox.pending("mqtt") == 2 and outbox.pending("statustext") == 0
        assert "refused" in sink.reporter.events[0][1] and "wrong" not in sink.reporter.events[0][1]
    rows = read_alerts(tmp_path / "outbox.sqlite")
    assert [r["deliveries"]["mqtt"] for r in rows] == ["pending", "pending"]


def test_right_credentials_deliver(mosquitto, tmp_path):
    if not mosquitto.auth_port:
        pytest.skip("mosquitto_passwd not found: no password-protected listener")
    sink = _sink(mosquitto.auth_url)
    with Outbox(tmp_path / "outbox.sqlite", [sink]) as outbox:
        outbox.add(make_alert(1))
        wait_until(lambda: outbox.pending() == 0, 10, "delivery with credentials", step=outbox.pump)
    assert sink.reporter.events == [] or all(c.endswith("_resolved") for c, _ in sink.reporter.events)


def test_unreachable_broker_reported_once(tmp_path):
    """Nothing listens on the port: reported once, alerts stay pending for MQTT, STATUSTEXT unaffected."""
    from .conftest import free_tcp_port

    sink = _sink(f"mqtt://127.0.0.1:{free_tcp_port()}/x")
    link = FakeLink()
    with Outbox(tmp_path / "outbox.sqlite", [StatusTextSink(link), sink]) as outbox:
        outbox.add(make_alert(1))
        wait_until(lambda: sink.reporter.count("mqtt_unreachable") >= 1, 10, "unreachable report", step=outbox.pump)
        for _ in range(30):  # more reconnect attempts happen meanwhile
            outbox.pump()
            time.sleep(0.05)
        assert sink.reporter.count("mqtt_unreachable") == 1
        assert outbox.pending("mqtt") == 1 and len(link.sent) == 1


def test_tls_with_self_signed_ca(mosquitto, tmp_path):
    """mqtts:// with the farm's own CA: the alert goes over TLS and arrives."""
    if not mosquitto.tls_port:
        pytest.skip("openssl not found: no TLS listener")
    sub = _subscriber(mosquitto.tls_url(), tmp_path / "office.sqlite")
    sub.wait_connected(10)
    sink = _sink(mosquitto.tls_url())
    with Outbox(tmp_path / "outbox.sqlite", [sink]) as outbox:
        outbox.add(make_alert(9, kind=AlertKind.PERSON))
        wait_until(lambda: outbox.pending() == 0, 10, "delivery over TLS", step=outbox.pump)
    got = _collect(sub, 1)
    assert got[0]["kind"] == "person" and got[0]["feature"]["geometry"]["coordinates"][1] == pytest.approx(
        HOME[0] + 9e-5)
    sub.close()


def test_tls_refuses_an_unknown_certificate(mosquitto, tmp_path):
    """Without the farm's CA the broker's self-signed certificate is not trusted: nothing is delivered."""
    if not mosquitto.tls_port:
        pytest.skip("openssl not found: no TLS listener")
    sink = _sink(f"mqtts://localhost:{mosquitto.tls_port}/agritest")
    with Outbox(tmp_path / "outbox.sqlite", [sink]) as outbox:
        outbox.add(make_alert(1))
        wait_until(lambda: sink.reporter.count("mqtt_unreachable") == 1, 10, "TLS failure report", step=outbox.pump)
        assert outbox.pending("mqtt") == 1


def test_subscriber_restart_does_not_reshow(mosquitto, tmp_path):
    """The subscriber persists what it received: a duplicate or an older revision after a restart is not shown
    again, a newer revision is."""
    db = tmp_path / "office.sqlite"
    sink = _sink(mosquitto.url)
    sub = _subscriber(mosquitto.url, db)
    sub.wait_connected(10)

    def publish(alert):
        sink.state.connected.wait(10)
        sink.client.publish(sink.topic(alert.kind.value),
                            json.dumps(build_payload(OutboxRecord(alert, 0.0), farm="f", field="x", drone="d")),
                            qos=1).wait_for_publish(10)

    publish(make_alert(1, revision=2))
    assert [p["revision"] for p in _collect(sub, 1)] == [2]
    sub.close()
    sub = _subscriber(mosquitto.url, db)
    sub.wait_connected(10)
    publish(make_alert(1, revision=2))   # duplicate (a QoS 1 redelivery)
    publish(make_alert(1, revision=1))   # older revision arriving late
    publish(make_alert(1, revision=3))   # an update
    assert [p["revision"] for p in _collect(sub, 1)] == [3]
    _no_more(sub)
    assert sub.duplicates == 2 and sub.seen() == {"F1/weeds/z1": 3}
    sub.close()
    sink.close()
