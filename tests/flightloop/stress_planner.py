"""Does the planner hold where there is a way round? (a script: ``.venv/bin/python tests/flightloop/stress_planner.py [N [SEED]]``)

For each example mission, N kinematic flights (the vehicle moves at the mission speed towards its target
every 0.2 s; no autopilot, no camera) past 1-3 random obstacles placed near a random leg of the route.
Obstacles become known 45 m away and their estimates jitter by 0.8 m (position) and 0.3 m (radius)
every tick, as a tracker's would. Printed per mission: flights that went by ("ok"), that held (with the
planner's reason), and that came within the keep-out less 1.5 m ("entered"). A hold is right only where
the obstacles really close the way (e.g. three animals whose keep-outs overlap round the vehicle) or
where the route ends inside a keep-out; any other reason is a planner bug to look at.
"""
import collections
import math
import random
import sys
from pathlib import Path
from agridrone.config import load_config
from agridrone.mission.compile import compile_mission
from agridrone.mission.loader import load_mission
from agridrone.pipeline_run import flight_context
from agridrone.planning import VehicleState
from agridrone.types import Obstacle, CorrectionKind

cfg = load_config(None)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 50
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 1
stats = collections.Counter()
holds = []
entered_at = []
for mp in sorted(Path("missions").glob("*.yaml")):
    compiled = compile_mission(load_mission(mp))
    ctx = flight_context(compiled, cfg, time_scale=20.0)
    frame = ctx.frame
    speed = float(compiled.mission.speed_m_s)
    for trial in range(N):
        rng = random.Random(f"{SEED}-{mp.stem}-{trial}")  # per flight: two planner versions meet the same flights
        pl = ctx.planner_factory()
        route = pl.route
        i = rng.randrange(1, len(route))
        a, b = route[i - 1], route[i]
        L = math.hypot(b.east_m - a.east_m, b.north_m - a.north_m)
        if L < 1: continue
        ux, uy = (b.east_m - a.east_m) / L, (b.north_m - a.north_m) / L
        t = rng.uniform(0, L); off = rng.uniform(-10, 10)
        ox, oy = a.east_m + ux * t - uy * off, a.north_m + uy * t + ux * off
        truth = []
        n_ob = 1 + (rng.random() < 0.4) + (rng.random() < 0.2)
        for k in range(n_ob):
            label = rng.choice(["tree", "pole", "person", "animal", "vehicle", "building"])
            r = {"tree": rng.uniform(1, 4), "pole": 0.3, "person": 0.4, "animal": 0.7, "vehicle": 2.5, "building": 6}[label]
            dx, dy = (0, 0) if k == 0 else (rng.uniform(-20, 20), rng.uniform(-20, 20))
            truth.append((k + 1, label, ox + dx, oy + dy, r))
        # start 2 waypoints earlier
        idx = max(0, i - 2)
        pos = [route[idx].east_m, route[idx].north_m]
        if idx == 0 and i - 2 < 0: pass
        idx = min(idx + 1, len(route) - 1)
        target = None; mode = "auto"; now = 0
        entered = False; steps = 0; held = None; passed_after = None
        while steps < 3000:
            steps += 1; now += int(0.2e9)
            obs = []
            for tid, label, tx, ty, r in truth:
                d = math.hypot(tx - pos[0], ty - pos[1])
                if d < 45:
                    obs.append(Obstacle(tid, label, 0, 0, tx + rng.gauss(0, 0.8), ty + rng.gauss(0, 0.8), max(0.1, r + rng.gauss(0, 0.3)), 0.9, 5, 0, now, True, height_m=3.0))
            seq = route[idx].seq
            vel = (0.0, 0.0)
            c = pl.update(obs, VehicleState(pos[0], pos[1], seq, 0, 0), now)
            if c is not None:
                if c.kind == CorrectionKind.DETOUR:
                    mode = "detour"; wp = c.waypoints[0]; e, n, _ = frame.to_enu(wp.lat_deg, wp.lon_deg); target = (e, n)
                elif c.kind == CorrectionKind.RESUME:
                    mode = "auto"
                    idx = next(j for j, w in enumerate(route) if w.seq >= c.resume_seq)
                elif c.kind == CorrectionKind.HOLD:
                    held = c.reason; break
            if mode == "auto":
                tgt = (route[idx].east_m, route[idx].north_m)
            else:
                tgt = target
            dx, dy = tgt[0] - pos[0], tgt[1] - pos[1]; d = math.hypot(dx, dy)
            stepm = speed * 0.2
            if d <= stepm:
                pos = [tgt[0], tgt[1]]
                if mode == "auto":
                    if idx + 1 >= len(route): break
                    idx += 1
            else:
                pos = [pos[0] + dx / d * stepm, pos[1] + dy / d * stepm]
            for tid, label, tx, ty, r in truth:
                m = pl.config.margins_m[label]
                if math.hypot(tx - pos[0], ty - pos[1]) < r + m - 1.5: entered = True
            if route[idx].seq > b.seq + 3 and mode == "auto": break
        stats[(mp.stem, "held" if held else "ok")] += 1
        if entered:
            stats[(mp.stem, "entered")] += 1
            entered_at.append((mp.stem, trial))
        if held:
            stats[(mp.stem, "HOLD:" + held[:45])] += 1
            holds.append((mp.stem, truth, held, pos))
for k, v in sorted(stats.items(), key=str):
    print(k, v)
for h in holds[:12]:
    print(h)
print("entered:", entered_at)
