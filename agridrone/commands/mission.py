"""``agridrone mission check|plan|show|upload``: mission files agronomists write."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("mission", help="check, plan, draw and upload survey missions (missions/README.md)")
    msub = p.add_subparsers(dest="mission_command", metavar="ACTION", required=True)
    c = msub.add_parser("check", help="validate mission files; one line per problem; exit 1 if any is invalid")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.set_defaults(func=run_check)
    pl = msub.add_parser("plan", help="plan the survey and print its summary; optionally export it")
    pl.add_argument("file", metavar="FILE")
    pl.add_argument("-o", "--output", metavar="OUT", help="write OUT.plan, .waypoints, .kml, .kmz or .geojson")
    pl.set_defaults(func=run_plan)
    s = msub.add_parser("show", help="draw the field, zones and path to a PNG")
    s.add_argument("file", metavar="FILE")
    s.add_argument("-o", "--output", metavar="MAP.png", required=True)
    s.set_defaults(func=run_show)
    u = msub.add_parser("upload", help="plan and upload mission, fence and rally points to a vehicle")
    u.add_argument("file", metavar="FILE")
    u.add_argument("--connect", metavar="URL", required=True, help="e.g. tcp:127.0.0.1:5760, udpin:0.0.0.0:14550")
    u.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per transfer (default 30 s)")
    u.set_defaults(func=run_upload)


def _plan(path):
    from agridrone.mission.compile import compile_mission
    from agridrone.mission.loader import load_mission

    mission = load_mission(path)
    for w in mission.warnings:
        print(w, file=sys.stderr)
    return compile_mission(mission)


def run_check(args: argparse.Namespace) -> int:
    from agridrone.errors import MissionError
    from agridrone.mission.loader import read_mission
    from agridrone.mission.survey import plan_survey

    bad = 0
    for path in args.files:
        mission, errors, warnings = read_mission(path)
        if mission is not None:
            try:
                plan_survey(mission)
            except MissionError as err:
                errors = [err]
        for w in warnings:
            print(w)
        for e in errors:
            print(e)
        if errors:
            bad += 1
        else:
            print(f"{path}: ok")
    return 1 if bad else 0


def run_plan(args: argparse.Namespace) -> int:
    compiled = _plan(args.file)
    s = compiled.plan.summary()
    print(f"{compiled.mission.name} ({compiled.mission.crop})")
    for k, v in s.items():
        print(f"  {k:20s} {v}")
    print(f"  {'mission_items':20s} {len(compiled.items)}")
    print(f"  {'fence_items':20s} {len(compiled.fence)}")
    print(f"  {'rally_points':20s} {len(compiled.rally)}")
    print(f"  {'FENCE_ALT_MAX':20s} {compiled.params['FENCE_ALT_MAX']:g} (set on the vehicle)")
    if args.output:
        from agridrone.mission.formats.export import export

        export(compiled, args.output)
        print(f"wrote {args.output}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from agridrone.mission.render import write_png

    compiled = _plan(args.file)
    write_png(compiled, args.output)
    print(f"wrote {args.output}")
    return 0


def run_upload(args: argparse.Namespace) -> int:
    from agridrone.mission.upload import upload_mission
    from agridrone.vehicle import connect

    compiled = _plan(args.file)
    with connect(args.connect, timeout_s=10.0) as v:
        v.wait_heartbeat(10.0)
        rep = upload_mission(v, compiled, timeout_s=args.timeout)
    print(f"uploaded {rep.mission_items} mission items, {rep.fence_items} fence items, {rep.rally_items} rally points")
    print("the vehicle must have: " + ", ".join(f"{k}={v:g}" for k, v in rep.expected_params.items()))
    return 0
