"""MQTT sink (paho-mqtt 2.x): alerts as JSON on a documented topic, QoS 1, delivered only on PUBACK.

Broker URL: ``mqtt://[user[:password]@]host[:port]/prefix`` or ``mqtts://...`` (TLS, port 8883 by
default). Query options: ``ca=/path/ca.pem`` (trust this CA, e.g. a farm's self-signed one),
``insecure=1`` (TLS without verifying the certificate: testing only), ``client_id=...``.

Topic: ``PREFIX/FARM/FIELD/DRONE/alerts/KIND`` (KIND is an AlertKind value, e.g. ``weeds``, ``person``).
Payload (UTF-8 JSON)::

    {"schema": "agridrone.alert/1", "idempotency_key": "FLIGHT/KIND/REF", "revision": 2,
     "flight_id": ..., "farm": ..., "field": ..., "drone": ..., "kind": ..., "severity": 0-7 (MAV_SEVERITY),
     "time": "2026-11-25T18:00:00.000Z",
     "feature": {GeoJSON Feature, RFC 7946: Polygon for zones, Point otherwise, lon/lat order},
     "thumbnail": {"file": "thumbs/NAME.jpg" (in the flight folder), "jpeg_base64": "..." (when small)}}

A receiver shows an alert once per (idempotency_key, revision) and ignores revisions older than
one it has shown (agridrone.alerts.subscriber does exactly this).

The client reconnects by itself with exponential backoff. A refused login, an unreachable broker or
a lost connection is reported once per episode; meanwhile the outbox keeps the alerts.
"""

from __future__ import annotations

import collections
import json
import re
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

from agridrone.alerts.outbox import (Key, OnceReporter, OutboxRecord, SinkError, SinkUnavailable, _iso,
                                     alert_feature, thumbnail_b64)
from agridrone.errors import ConfigError

SCHEMA = "agridrone.alert/1"
_URL_HELP = "mqtt://[user[:password]@]host[:port]/prefix or mqtts://..."
_SEGMENT = re.compile(r"[+#/\s\x00]+")


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    prefix: str = "agridrone"
    ca_file: str | None = None
    insecure: bool = False
    client_id: str | None = None

    @property
    def display(self) -> str:
        """The URL without the password, for messages."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.prefix}"


def parse_mqtt_url(url: str, *, ca_file: str | None = None, password: str | None = None) -> MqttSettings:
    """Parse ``--mqtt URL``; a wrong URL raises ConfigError saying what was expected."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"--mqtt: expected {_URL_HELP}, got {url!r}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"--mqtt: expected scheme mqtt or mqtts, got {parts.scheme!r} in {_redact(url)}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"--mqtt: expected a port 1..65535, got {parts.netloc.rsplit(':', 1)[-1]!r}") from None
    if not parts.hostname:
        raise ConfigError(f"--mqtt: expected a broker host name, got none in {_redact(url)}")
    if port == 0:
        raise ConfigError("--mqtt: expected a port 1..65535, got 0")
    prefix = parts.path.strip("/") or "agridrone"
    if "+" in prefix or "#" in prefix or "//" in prefix:
        raise ConfigError(f"--mqtt: expected a topic prefix without '+', '#' or empty levels, got {prefix!r}")
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - {"ca", "insecure", "client_id"})
    if unknown:
        raise ConfigError(f"--mqtt: expected query options ca, insecure, client_id, got {unknown}")
    insecure = query.get("insecure", "0").lower() in ("1", "true", "yes")
    ca = ca_file or query.get("ca") or None
    if (ca or insecure) and scheme != "mqtts":
        raise ConfigError("--mqtt: expected mqtts:// for TLS options (ca, insecure), got mqtt://")
    username = urllib.parse.unquote(parts.username) if parts.username else None
    pw = urllib.parse.unquote(parts.password) if parts.password is not None else password
    return MqttSettings(host=parts.hostname, port=port or (8883 if scheme == "mqtts" else 1883), tls=scheme == "mqtts",
                        username=username, password=pw, prefix=prefix, ca_file=ca, insecure=insecure,
                        client_id=query.get("client_id") or None)


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def topic_segment(value: str) -> str:
    """A value made safe for one topic level (no wildcards, no separators)."""
    return _SEGMENT.sub("_", str(value)).strip("_") or "unknown"


def alert_topic(prefix: str, farm: str, field: str, drone: str, kind: str) -> str:
    return "/".join([prefix, topic_segment(farm), topic_segment(field), topic_segment(drone), "alerts",
                     topic_segment(kind)])


def build_payload(record: OutboxRecord, *, farm: str, field: str, drone: str,
                  thumb_inline_max_bytes: int = 16384) -> dict[str, Any]:
    alert = record.alert
    thumbnail = None
    if record.thumbnail_file or alert.thumbnail_jpeg:
        thumbnail = {"file": record.thumbnail_file,
                     "jpeg_base64": thumbnail_b64(alert.thumbnail_jpeg, thumb_inline_max_bytes)}
    return {
        "schema": SCHEMA, "idempotency_key": alert.alert_id, "revision": alert.revision,
        "flight_id": alert.properties.get("flight_id", ""), "farm": farm, "field": field, "drone": drone,
        "kind": alert.kind.value, "severity": alert.severity, "time": _iso(record.created_unix_s),
        "feature": alert_feature(alert, created_unix_s=record.created_unix_s, thumbnail_file=record.thumbnail_file),
        "thumbnail": thumbnail,
    }


def make_client(settings: MqttSettings, client_id: str, *, clean_session: bool, reporter: OnceReporter,
                reconnect_delay_s: tuple[float, float], consequence: str = "") -> tuple[Any, "ConnectionState"]:
    """A paho client with TLS/credentials set and connection problems reported once per episode."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError as err:  # pragma: no cover - paho is in the mqtt and dev extras
        raise ConfigError("--mqtt: expected paho-mqtt >= 2 installed (pip install 'agridrone[mqtt]'), got none") from err
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                         protocol=mqtt.MQTTv311)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        ctx = ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else ssl.create_default_context()
        if settings.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        client.tls_set_context(ctx)
    client.reconnect_delay_set(min_delay=reconnect_delay_s[0], max_delay=reconnect_delay_s[1])
    state = ConnectionState(settings, reporter, consequence)
    client.on_connect = state.on_connect
    client.on_connect_fail = state.on_connect_fail
    client.on_disconnect = state.on_disconnect
    return client, state


class ConnectionState:
    """Tracks whether the client is connected; reports refusals and outages once per episode."""

    def __init__(self, settings: MqttSettings, reporter: OnceReporter, consequence: str = "") -> None:
        self.settings = settings
        self.consequence = consequence  # e.g. "; alerts stay in the outbox"
        self.reporter = reporter
        self.connected = threading.Event()
        self.ever_connected = False
        self.refused_reason = ""
        self.closing = False
        self.on_up: Callable[[Any], None] | None = None

    def on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused_reason = str(reason_code)
            name = str(reason_code).lower()
            code = "mqtt_auth" if ("password" in name or "authori" in name) else "mqtt_refused"
            self.reporter.report(code, f"MQTT broker {self.settings.display} refused the connection: {reason_code}"
                                       f"{self.consequence}")
            return
        self.refused_reason = ""
        self.ever_connected = True
        for code in ("mqtt_auth", "mqtt_refused", "mqtt_unreachable", "mqtt_lost"):
            self.reporter.resolve(code, f"MQTT broker {self.settings.display}: connected" if code != "mqtt_refused"
                                  else "")
        self.connected.set()
        if self.on_up is not None:
            self.on_up(client)

    def on_connect_fail(self, client, userdata) -> None:
        self.connected.clear()
        if self.reporter.active("mqtt_lost"):
            return  # the same outage, already reported
        self.reporter.report("mqtt_unreachable", f"MQTT broker {self.settings.display} unreachable; retrying "
                                                 f"with backoff{self.consequence}")

    def on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self.closing:
            self.reporter.report("mqtt_lost", f"MQTT broker {self.settings.display}: connection lost ({reason_code}); "
                                              f"reconnecting")


def stop_client(client: Any, state: ConnectionState, timeout_s: float = 5.0) -> None:
    """Disconnect and stop the network thread without waiting forever for unacknowledged messages."""
    state.closing = True
    client.disconnect()
    stopper = threading.Thread(target=client.loop_stop, daemon=True)
    stopper.start()
    stopper.join(timeout_s)


class MqttSink:
    """Outbox sink: publishes each alert revision with QoS 1; delivered when the broker's PUBACK arrives."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings, *, farm: str, field: str, drone: str,
                 report: Callable[[str, str], None] | None = None, reporter: OnceReporter | None = None,
                 reconnect_delay_s: tuple[float, float] = (1.0, 10.0), keepalive_s: int = 15,
                 thumb_inline_max_bytes: int = 16384) -> None:
        self.settings = settings
        self.farm, self.field, self.drone = farm, field, drone
        self.reporter = reporter or OnceReporter(report)
        self.keepalive_s = keepalive_s
        self.thumb_inline_max_bytes = thumb_inline_max_bytes
        client_id = settings.client_id or f"agridrone-{topic_segment(drone)}-alerts"
        self.client, self.state = make_client(settings, client_id, clean_session=True, reporter=self.reporter,
                                              reconnect_delay_s=reconnect_delay_s,
                                              consequence="; alerts stay in the outbox")
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self._acked: collections.deque[int] = collections.deque()
        self._inflight: dict[int, Key] = {}
        self._done: list[tuple[Key, str | None]] = []
        self._started = False
        self.published = 0

    def start(self) -> "MqttSink":
        if not self._started:
            self._started = True
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.keepalive_s)
            self.client.loop_start()
        return self

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acked.append(mid)  # only a deque append here: paho holds its own locks while calling this

    @property
    def connected(self) -> bool:
        return self.state.connected.is_set()

    def topic(self, kind: str) -> str:
        return alert_topic(self.settings.prefix, self.farm, self.field, self.drone, kind)

    def submit(self, record: OutboxRecord) -> None:
        import paho.mqtt.client as mqtt

        if not self._started:
            self.start()
        if not self.connected:
            raise SinkUnavailable(f"MQTT broker {self.settings.display} not connected")
        payload = build_payload(record, farm=self.farm, field=self.field, drone=self.drone,
                                thumb_inline_max_bytes=self.thumb_inline_max_bytes)
        data = json.dumps(payload, separators=(",", ":")).encode()
        info = self.client.publish(self.topic(record.alert.kind.value), data, qos=1)
        # NO_CONN: the connection dropped just now; paho keeps a QoS 1 message and sends it on reconnect,
        # so it is in flight all the same (the outbox retries it if no PUBACK comes in time).
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise SinkError(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        self._inflight[info.mid] = record.key
        self.published += 1

    def poll(self) -> list[tuple[Key, str | None]]:
        while self._acked:
            key = self._inflight.pop(self._acked.popleft(), None)
            if key is not None:
                self._done.append((key, None))
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        if self._started:
            stop_client(self.client, self.state)
            self._started = False
