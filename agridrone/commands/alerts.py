"""``agridrone alerts``: read a flight's alerts, acknowledge them, or listen for them over MQTT.

    agridrone alerts list FLIGHT_DIR            every alert (newest revision) with its delivery state
    agridrone alerts show ID FLIGHT_DIR         one alert in full
    agridrone alerts ack ID FLIGHT_DIR          mark an alert as seen by the farmer
    agridrone alerts listen --mqtt URL          what the farm office runs: prints each alert once as it arrives

For ``listen`` a URL with a user but no password takes it from the environment variable
AGRIDRONE_MQTT_PASSWORD (so it stays out of the process list).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SEVERITY_NAMES = ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")


def register(sub) -> None:
    p = sub.add_parser("alerts", help="list, show or acknowledge a flight's alerts; listen for alerts over MQTT")
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    lp = asub.add_parser("list", help="every alert of a flight, newest revision, with delivery states")
    lp.add_argument("flight_dir", metavar="FLIGHT_DIR", type=Path)
    lp.add_argument("--json", action="store_true", help="one JSON object per line")
    lp.set_defaults(func=run_list)

    sp = asub.add_parser("show", help="one alert in full")
    sp.add_argument("alert_id", metavar="ID")
    sp.add_argument("flight_dir", metavar="FLIGHT_DIR", type=Path)
    sp.set_defaults(func=run_show)

    ap = asub.add_parser("ack", help="acknowledge an alert (recorded in the flight's outbox)")
    ap.add_argument("alert_id", metavar="ID")
    ap.add_argument("flight_dir", metavar="FLIGHT_DIR", type=Path)
    ap.add_argument("--note", default="", help="a remark stored with the acknowledgement")
    ap.set_defaults(func=run_ack)

    lsp = asub.add_parser("listen", help="subscribe to a farm's alerts and print each one once as it arrives")
    lsp.add_argument("--mqtt", required=True, metavar="URL",
                     help="mqtt://[user[:password]@]host[:port]/prefix or mqtts://... (TLS)")
    lsp.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate that signed the broker's (mqtts)")
    lsp.add_argument("--farm", default="+", help="only this farm (default: all)")
    lsp.add_argument("--field", default="+", help="only this field (default: all)")
    lsp.add_argument("--db", type=Path, default=None,
                     help="where received alerts are remembered (default ~/.agridrone/alerts-seen.sqlite)")
    lsp.add_argument("--count", type=int, default=None, metavar="N", help="exit after N new alerts")
    lsp.add_argument("--timeout", type=float, default=None, metavar="S", help="exit after S seconds")
    lsp.add_argument("--json", action="store_true", help="print each alert's JSON payload on one line")
    lsp.set_defaults(func=run_listen)


def _position(alert: dict) -> str:
    return f"{alert['lat_deg']:.6f},{alert['lon_deg']:.6f}"


def _severity(n: int) -> str:
    return SEVERITY_NAMES[n] if 0 <= n < len(SEVERITY_NAMES) else str(n)


def _iso(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_s))


def run_list(args) -> int:
    from agridrone.alerts.records import read_alerts

    rows = read_alerts(args.flight_dir)
    if args.json:
        for row in rows:
            print(json.dumps(row, separators=(",", ":")))
        return 0
    if not rows:
        print(f"no alerts in {args.flight_dir}")
        return 0
    for row in rows:
        a = row["alert"]
        states = " ".join(f"{k}:{v}" for k, v in sorted(row["deliveries"].items()))
        acked = "acked" if row["acked_unix_s"] is not None else "new"
        print(f"{a['alert_id']}  r{a['revision']}  {_severity(a['severity']):<9} {_iso(row['created_unix_s'])}  "
              f"{_position(a)}  {a['text']}  [{states}] {acked}")
    return 0


def run_show(args) -> int:
    from agridrone.alerts.outbox import OutboxError
    from agridrone.alerts.records import read_alerts

    for row in read_alerts(args.flight_dir):
        a = row["alert"]
        if a["alert_id"] != args.alert_id:
            continue
        print(f"alert       {a['alert_id']} (revision {a['revision']})")
        print(f"kind        {a['kind']} ({a['label']}), severity {_severity(a['severity'])}")
        print(f"time        {_iso(row['created_unix_s'])} UTC")
        print(f"position    {_position(a)}")
        print(f"confidence  {a['confidence']:.2f}")
        if a.get("area_m2"):
            print(f"area        {a['area_m2']:.1f} m2")
        print(f"text        {a['text']}")
        if row["thumbnail_file"]:
            print(f"thumbnail   {Path(args.flight_dir) / row['thumbnail_file']}")
        print("delivery    " + ", ".join(f"{k}: {v}" for k, v in sorted(row["deliveries"].items())))
        print(f"acked       {_iso(row['acked_unix_s']) + ' UTC' if row['acked_unix_s'] is not None else 'no'}")
        if a.get("properties"):
            print(f"properties  {json.dumps(a['properties'], sort_keys=True)}")
        return 0
    raise OutboxError(f"expected an alert id from 'agridrone alerts list {args.flight_dir}', got {args.alert_id!r}")


def run_ack(args) -> int:
    from agridrone.alerts.records import ack_alert

    ack_alert(args.flight_dir, args.alert_id, unix_s=time.time(), note=args.note)
    print(f"acknowledged {args.alert_id}")
    return 0


def format_payload(p: dict) -> str:
    props = p.get("feature", {}).get("properties", {})
    where = f"{props.get('lat_deg', 0.0):.6f},{props.get('lon_deg', 0.0):.6f}"
    area = f" {props['area_m2']:.0f} m2" if props.get("area_m2") else ""
    thumb = f"  thumbnail {p['thumbnail']['file']}" if p.get("thumbnail") and p["thumbnail"].get("file") else ""
    return (f"{p.get('time', '')}  {_severity(int(p.get('severity', 6))):<9} {p.get('kind', '?'):<14} "
            f"{p.get('farm', '')}/{p.get('field', '')}/{p.get('drone', '')}  {where}{area}  {props.get('text', '')}  "
            f"[{p['idempotency_key']} r{p['revision']}]{thumb}")


def run_listen(args) -> int:
    from agridrone.alerts.mqtt import parse_mqtt_url
    from agridrone.alerts.subscriber import AlertSubscriber
    from agridrone.errors import ConfigError, LinkError, WaitTimeout

    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count: expected a number >= 1, got {args.count}")
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigError(f"--timeout: expected seconds > 0, got {args.timeout}")
    settings = parse_mqtt_url(args.mqtt, ca_file=args.mqtt_ca, password=os.environ.get("AGRIDRONE_MQTT_PASSWORD"))
    db = args.db or Path.home() / ".agridrone" / "alerts-seen.sqlite"

    def report(code: str, message: str) -> None:
        print(f"agridrone: {message}", file=sys.stderr, flush=True)

    sub = AlertSubscriber(settings, db, farm=args.farm, field=args.field, report=report,
                          reconnect_delay_s=(1.0, 10.0)).start()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    shown = 0
    announced = False
    try:
        while args.count is None or shown < args.count:
            if not announced and sub.subscribed.is_set():
                announced = True
                print(f"agridrone: listening on {sub.topic_filter} at {settings.display}", file=sys.stderr, flush=True)
            if sub.reporter.active("mqtt_auth"):
                raise LinkError(f"MQTT broker {settings.display} refused the credentials for "
                                f"{settings.username or 'an anonymous client'}")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                if not sub.state.ever_connected:
                    raise LinkError(f"MQTT broker {settings.display}: expected a connection within {args.timeout} s, "
                                    f"got none")
                if args.count is not None:
                    raise WaitTimeout(f"expected {args.count} alert(s) within {args.timeout} s, got {shown}",
                                      origin="alerts listen", timeout_s=args.timeout)
                return 0
            try:
                payload = sub.get(0.5 if remaining is None else min(0.5, remaining))
            except WaitTimeout:
                continue
            print(json.dumps(payload, separators=(",", ":")) if args.json else format_payload(payload), flush=True)
            sub.mark_shown(payload)
            shown += 1
        return 0
    finally:
        sub.close()
