"""Replay a recorded ArduCopter SITL transcript's commands against a MAVLink endpoint, step by step.

The recording (``*.jsonl``, read from ../shared, never copied) holds every message both ways. The
replayer sends the recorded ``out`` messages (not the recorder's HEARTBEATs: it sends its own) in
order, on the vehicle's simulated clock, and waits for the vehicle instead of replaying absolute
times:
- before each message it waits until the vehicle has sent at least as many protocol answers
  (COMMAND_ACK, MISSION_ACK, MISSION_REQUEST, MISSION_COUNT, MISSION_ITEM_INT, AUTOPILOT_VERSION)
  as the recording shows between the previous message and this one, and the answer to a
  PARAM_REQUEST_READ / PARAM_SET when one came;
- where the recorder waited for the vehicle's state (EKF ready, armed state, altitude, arrival),
  it waits for the same state, then keeps the recorded delay; otherwise it keeps the recorded gap
  in simulated time. Every wait has a timeout and raises ReplayError.

Both sides are cut into the same steps (a step starts at each initiating message: a command, a
MISSION_COUNT / REQUEST_LIST / CLEAR_ALL, a parameter request or set, or the first of a run of
position targets), so results can be compared step by step.
"""

from __future__ import annotations

import json
import math
import re
import select
import socket
import time
from dataclasses import dataclass, field

from pymavlink.dialects.v20 import ardupilotmega as mav

ANSWER_TYPES = ("COMMAND_ACK", "MISSION_ACK", "MISSION_REQUEST", "MISSION_COUNT", "MISSION_ITEM_INT",
                "AUTOPILOT_VERSION")
CONTINUATION_TYPES = {"MISSION_ITEM_INT", "MISSION_ITEM", "MISSION_REQUEST_INT", "MISSION_ACK"}
TARGET_TYPES = {"SET_POSITION_TARGET_GLOBAL_INT", "SET_POSITION_TARGET_LOCAL_NED"}


class ReplayError(AssertionError):
    """The vehicle did not answer or reach the recorded state in time."""


@dataclass
class Rec:
    t_s: float
    dir: str
    type: str
    fields: dict


def load(path) -> list[Rec]:
    return [Rec(r["t_s"], r["dir"], r["type"], r["fields"]) for r in map(json.loads, open(path))]


def initiates_step(rec: Rec, prev_out: Rec | None) -> bool:
    if rec.type in CONTINUATION_TYPES:
        return False
    if rec.type in TARGET_TYPES and prev_out is not None and prev_out.type in TARGET_TYPES:
        return False
    return True


def split_steps(recs: list[Rec]) -> list[list[Rec]]:
    """Step 0 is everything before the first initiating message; step k starts at the k-th."""
    steps: list[list[Rec]] = [[]]
    prev_out = None
    for r in recs:
        if r.dir == "out" and r.type != "HEARTBEAT":
            if initiates_step(r, prev_out):
                steps.append([])
            prev_out = r
        steps[-1].append(r)
    return steps


def text_kind(text: str) -> str:
    """A STATUSTEXT's kind: "Arm"/"PreArm" for arming failures, otherwise the text with numbers as #."""
    m = re.match(r"^(PreArm|Arm):", text)
    if m:
        return m.group(1)
    return re.sub(r"\d+(\.\d+)?", "#", text)


# ---------------------------------------------------------------- recorded state, for waits
@dataclass
class State:
    ekf_ready: bool = False
    armed: bool = False
    mode: int = -1
    rel_alt_m: float = 0.0
    north_m: float = 0.0
    east_m: float = 0.0
    speed_m_s: float = 0.0


def _en(lat_e7: int, lon_e7: int, home) -> tuple[float, float]:
    if home is None or not lat_e7:
        return 0.0, 0.0
    n = (lat_e7 - home[0]) / 1e7 * 111_320.0
    e = (lon_e7 - home[1]) / 1e7 * 111_320.0 * math.cos(math.radians(home[0] / 1e7))
    return e, n


class StateTracker:
    """Vehicle state from its messages (used for the recording and for the live replay alike)."""

    def __init__(self) -> None:
        self.s = State()
        self.home = None

    def update(self, type_: str, f: dict) -> None:
        s = self.s
        if type_ == "EKF_STATUS_REPORT":
            s.ekf_ready = f["flags"] == 0x33F
        elif type_ == "HEARTBEAT":
            s.armed = bool(f["base_mode"] & 128)
            s.mode = f["custom_mode"]
        elif type_ == "HOME_POSITION" and self.home is None:
            self.home = (f["latitude"], f["longitude"])
        elif type_ == "GLOBAL_POSITION_INT":
            s.rel_alt_m = f["relative_alt"] / 1000.0
            s.east_m, s.north_m = _en(f["lat"], f["lon"], self.home or (f["lat"], f["lon"]))
            if self.home is None:
                s.east_m = s.north_m = 0.0
            s.speed_m_s = math.hypot(f["vx"], f["vy"]) / 100.0


def recorded_states(recs: list[Rec]) -> list[State]:
    """The recorded vehicle state just before each record."""
    tr = StateTracker()
    out = []
    for r in recs:
        out.append(State(**vars(tr.s)))
        if r.dir == "in":
            tr.update(r.type, r.fields)
    return out


@dataclass
class Wait:
    what: str
    until_s: float | None = None  # recorded time the condition was first met


def infer_wait(before: State, at: State, gap_s: float) -> str | None:
    """What the recorder was waiting for between two of its messages."""
    if at.ekf_ready and not before.ekf_ready:
        return "ekf_ready"
    if at.armed != before.armed:
        return "armed" if at.armed else "disarmed"
    if gap_s > 1.0 and abs(at.rel_alt_m - before.rel_alt_m) > 3.0:
        return "altitude"
    if gap_s > 1.0 and math.hypot(at.north_m - before.north_m, at.east_m - before.east_m) > 8.0:
        return "position"
    return None


# ---------------------------------------------------------------- the live side
@dataclass
class Received:
    sim_s: float
    step: int
    msg: object


@dataclass
class ReplayResult:
    received: list[Received] = field(default_factory=list)
    waits: list[tuple[int, str]] = field(default_factory=list)
    max_lag_s: float = 0.0  # the most simulated time a message was sent later than scheduled


def build_message(r: Rec):
    """A recorded ``out`` message, rebuilt (target system/component kept as recorded)."""
    cls = mav.mavlink_map[getattr(mav, "MAVLINK_MSG_ID_" + r.type)]
    kwargs = {}
    for name in cls.fieldnames:
        v = r.fields[name]
        if v is None:
            v = float("nan")
        elif isinstance(v, str) and name != "param_id" and cls.fieldtypes[cls.fieldnames.index(name)] != "char":
            v = float(v)
        if isinstance(v, str):
            v = v.encode()
        kwargs[name] = v
    return cls(**kwargs)


class Replayer:
    """One TCP client replaying one recording against ``host:port`` at ``speedup``."""

    def __init__(self, host: str, port: int, speedup: float, *, timeout_sim_s: float = 150.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setblocking(False)
        self.mav = mav.MAVLink(None, srcSystem=255, srcComponent=191)
        self.mav.robust_parsing = True
        self.speedup = speedup
        self.timeout_sim_s = timeout_sim_s
        self.result = ReplayResult()
        self.tracker = StateTracker()
        self.step = 0
        self._anchor = None  # (wall_s, sim_s)
        self._last_hb_sim = -1.0
        self.counts: dict[str, int] = {}
        self.param_answers: list[str] = []
        self._send(mav.MAVLink_heartbeat_message(18, 8, 0, 0, 4, 3))  # starts a --wait-client simulator

    # --- simulated clock, estimated from the vehicle's timestamps
    def sim_now(self) -> float:
        if self._anchor is None:
            return 0.0
        wall, sim = self._anchor
        return sim + (time.monotonic() - wall) * self.speedup

    def _pump(self, wait_wall_s: float = 0.002) -> None:
        select.select([self.sock], [], [], wait_wall_s)
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            data = None
        if data == b"":
            raise ReplayError("the vehicle closed the connection")
        if data:
            for msg in self.mav.parse_buffer(data) or []:
                self._on_message(msg)
        now = self.sim_now()
        if self._anchor is not None and now - self._last_hb_sim >= 1.0:
            self._last_hb_sim = now
            self._send(mav.MAVLink_heartbeat_message(18, 8, 0, 0, 4, 3))

    def _on_message(self, msg) -> None:
        t = msg.get_type()
        if t == "BAD_DATA":
            return
        if t == "HEARTBEAT" and self._anchor is None:
            self._anchor = (time.monotonic(), 1.0)
        tb = getattr(msg, "time_boot_ms", None)
        if tb is not None:
            self._anchor = (time.monotonic(), tb / 1000.0)
        self.tracker.update(t, msg.to_dict())
        self.counts[t] = self.counts.get(t, 0) + 1
        if t == "PARAM_VALUE":
            self.param_answers.append(msg.param_id)
        self.result.received.append(Received(self.sim_now(), self.step, msg))

    def _send(self, msg) -> None:
        buf = msg.pack(self.mav)
        self.sock.setblocking(True)
        try:
            self.sock.sendall(buf)
        finally:
            self.sock.setblocking(False)

    def wait_until(self, cond, what: str, timeout_sim_s: float | None = None) -> None:
        limit_sim = self.timeout_sim_s if timeout_sim_s is None else timeout_sim_s
        deadline = time.monotonic() + limit_sim / self.speedup + 5.0
        while not cond():
            if time.monotonic() > deadline:
                raise ReplayError(f"step {self.step}: expected {what} within {limit_sim:g} simulated s, "
                                  f"got state {vars(self.tracker.s)}")
            self._pump()

    def sleep_sim(self, seconds: float) -> None:
        end = self.sim_now() + seconds
        self.wait_until(lambda: self.sim_now() >= end, f"{seconds:g} s to pass", seconds + 30)

    def _state_met(self, what: str, at: State) -> bool:
        s = self.tracker.s
        if what == "ekf_ready":
            return s.ekf_ready
        if what in ("armed", "disarmed"):
            return s.armed == (what == "armed")
        if what == "altitude":
            return abs(s.rel_alt_m - at.rel_alt_m) < 1.5 or (s.rel_alt_m > at.rel_alt_m and at.rel_alt_m > 1)
        if what == "position":
            near = math.hypot(s.north_m - at.north_m, s.east_m - at.east_m) < 5.0
            return near or (s.speed_m_s < 0.3 and s.rel_alt_m > 1)
        raise ValueError(what)

    def run(self, recs: list[Rec]) -> ReplayResult:
        states = recorded_states(recs)
        self.wait_until(lambda: self._anchor is not None, "a first HEARTBEAT", 10)
        offset = 0.0  # simulated time minus recorded time
        prev_idx = None
        outs = [i for i, r in enumerate(recs) if r.dir == "out" and r.type != "HEARTBEAT"]
        for idx in outs + [len(recs)]:
            r = recs[idx] if idx < len(recs) else None
            t_rec = recs[-1].t_s if r is None else r.t_s
            lo = 0 if prev_idx is None else prev_idx + 1
            between = recs[lo:idx]
            # 1. the answers the recording shows before this message
            need = {k: sum(1 for b in between if b.dir == "in" and b.type == k) for k in ANSWER_TYPES}
            base = dict(self.counts)
            self.wait_until(lambda: all(self.counts.get(k, 0) - base.get(k, 0) >= n for k, n in need.items()),
                            f"answers {({k: n for k, n in need.items() if n})}", 30)
            if prev_idx is not None and recs[prev_idx].type in ("PARAM_REQUEST_READ", "PARAM_SET"):
                name = recs[prev_idx].fields["param_id"]
                if any(b.type == "PARAM_VALUE" and b.fields["param_id"] == name for b in between):
                    self.wait_until(lambda: name in self.param_answers, f"PARAM_VALUE {name}", 10)
            # 2. the vehicle state the recorder waited for, or the recorded gap
            before = states[prev_idx] if prev_idx is not None else states[0]
            at = states[idx] if idx < len(states) else states[-1]
            gap = t_rec - (recs[prev_idx].t_s if prev_idx is not None else 0.0)
            what = infer_wait(before, at, gap)
            if what is not None:
                self.result.waits.append((self.step, what))
                self.wait_until(lambda: self._state_met(what, at), f"the vehicle {what} as recorded")
                # when did the recorded vehicle reach it? keep the recorded delay from there
                met_rec = _first_met_time(recs, lo, idx, what, at)
                offset = self.sim_now() - met_rec
            target_sim = t_rec + offset
            if target_sim > self.sim_now():
                self.sleep_sim(target_sim - self.sim_now())
            self.result.max_lag_s = max(self.result.max_lag_s, self.sim_now() - target_sim)
            if r is None:
                break
            if initiates_step(r, recs[prev_idx] if prev_idx is not None and recs[prev_idx].dir == "out" else None):
                self.step += 1
            self._send(build_message(r))
            prev_idx = idx
        self.sock.close()
        return self.result


def _first_met_time(recs, lo, hi, what, at: State) -> float:
    tr = StateTracker()
    for r in recs[:lo]:
        if r.dir == "in":
            tr.update(r.type, r.fields)
    for r in recs[lo:hi]:
        if r.dir == "in":
            tr.update(r.type, r.fields)
        s = tr.s
        ok = {"ekf_ready": s.ekf_ready, "armed": s.armed, "disarmed": not s.armed,
              "altitude": abs(s.rel_alt_m - at.rel_alt_m) < 1.5,
              "position": math.hypot(s.north_m - at.north_m, s.east_m - at.east_m) < 5.0}[what]
        if ok:
            return r.t_s
    return recs[hi - 1].t_s if hi > 0 else 0.0


# ---------------------------------------------------------------- comparison
@dataclass
class StepSummary:
    command_acks: list = field(default_factory=list)
    mission_acks: list = field(default_factory=list)
    modes: list = field(default_factory=list)  # custom_mode each time it changes
    armed: list = field(default_factory=list)  # armed flag each time it changes
    text_kinds: set = field(default_factory=set)


def summarise(items, n_steps: int, ignore_text) -> list[StepSummary]:
    """items: (step, type, fields) in order -> one summary per step."""
    out = [StepSummary() for _ in range(n_steps)]
    mode = armed = None
    for step, t, f in items:
        s = out[min(step, n_steps - 1)]
        if t == "COMMAND_ACK":
            s.command_acks.append((f["command"], f["result"]))
        elif t == "MISSION_ACK":
            s.mission_acks.append((f["mission_type"], f["type"]))
        elif t == "HEARTBEAT":
            if f["custom_mode"] != mode:
                if mode is not None:
                    s.modes.append(f["custom_mode"])
                mode = f["custom_mode"]
            a = bool(f["base_mode"] & 128)
            if a != armed:
                if armed is not None:
                    s.armed.append(a)
                armed = a
        elif t == "STATUSTEXT":
            kind = text_kind(f["text"])
            if not ignore_text(kind):
                s.text_kinds.add(kind)
    return out


def recorded_items(recs: list[Rec]):
    steps = split_steps(recs)
    items = [(k, r.type, r.fields) for k, st in enumerate(steps) for r in st if r.dir == "in"]
    return items, len(steps)


def live_items(result: ReplayResult):
    return [(x.step, x.msg.get_type(), x.msg.to_dict()) for x in result.received if x.msg.get_type() != "BAD_DATA"]


def rates(samples: list[tuple[float, str]], types) -> dict[str, float]:
    """Rate (Hz) per type from (time_s, type) samples: 1 / the median interval (so the ¼-rate
    stretches during uploads and the extra HEARTBEATs after mode changes do not count)."""
    out = {}
    for t in types:
        ts = sorted(s for s, ty in samples if ty == t)
        gaps = sorted(b - a for a, b in zip(ts, ts[1:]))
        if len(gaps) >= 4 and gaps[len(gaps) // 2] > 0:
            out[t] = 1.0 / gaps[len(gaps) // 2]
    return out
