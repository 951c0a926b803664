"""The MAVLink mission protocol for the three lists an autopilot keeps: MISSION, FENCE and RALLY.

- ``upload(items, mission_type)``: MISSION_COUNT, then answer each MISSION_REQUEST or
  MISSION_REQUEST_INT (ArduCopter 4.7 asks with MISSION_REQUEST) with a MISSION_ITEM_INT, until
  the MISSION_ACK. For MISSION, item 0 is home (ArduPilot overwrites it).
- ``download(mission_type)``: MISSION_REQUEST_LIST -> MISSION_COUNT, then MISSION_REQUEST_INT per
  seq -> MISSION_ITEM_INT, then our MISSION_ACK. ArduPilot changes some frames on the way back
  (DO items and fence items come back in frame 0): compare with ``same_items``.
- ``clear(mission_type)``: MISSION_CLEAR_ALL -> MISSION_ACK.

Each step waits ``item_timeout_s`` and re-sends its last message up to ``attempts`` times; the
whole transfer is bounded by ``timeout_s``. An error MISSION_ACK raises
``MissionTransferError(result=<MAV_MISSION_RESULT int>, origin="upload FENCE", params=(seq, count))``,
silence raises the same with ``result="timeout"``. INVALID_SEQUENCE does not end an upload
(ArduPilot re-requests the item it wants).
"""

from __future__ import annotations

import queue
import threading
from typing import Sequence

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.errors import MissionTransferError
from agridrone.types import MissionItem, MissionType
from agridrone.vehicle.link import Link
from agridrone.vehicle.telemetry import Telemetry

DEFAULT_ITEM_TIMEOUT_S = 1.5
DEFAULT_ATTEMPTS = 5
GLOBAL_FRAMES = frozenset({0, 3, 4, 5, 6, 10, 11})  # frames whose x/y are latitude/longitude


def _frame_free(command: int) -> bool:
    """Commands without a position (CONDITION_* 112-159, DO_* 176-4999, NAV_RETURN_TO_LAUNCH): ArduPilot
    returns them in frame 0, with x/y/z it does not keep."""
    return (command == mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH or 112 <= command <= 159
            or 176 <= command < 5000)


def result_name(result: int) -> str:
    entry = mavlink.enums["MAV_MISSION_RESULT"].get(result)
    return f"{entry.name if entry is not None else 'MAV_MISSION_RESULT'} ({result})"


def same_items(uploaded: Sequence[MissionItem], downloaded: Sequence[MissionItem], *,
               skip_home: bool = True) -> list[str]:
    """Differences between an upload and its download, allowing what ArduPilot changes on the way back.

    Allowed: item 0 of a MISSION (home, overwritten by the autopilot); CONDITION/DO commands and RTL
    coming back in frame 0 with x/y/z 0; fence items (5000-5004) coming back in frame 0 with z 0;
    float32 rounding of params and z. Rally points (5100) and NAV items are compared in full. Returns a list of human-readable differences (empty: same).
    """
    diffs: list[str] = []
    if len(uploaded) != len(downloaded):
        return [f"expected {len(uploaded)} items, got {len(downloaded)}"]
    for seq, (up, down) in enumerate(zip(uploaded, downloaded)):
        if skip_home and seq == 0 and up.mission_type == MissionType.MISSION:
            continue
        frame_free = _frame_free(up.command)
        fence = 5000 <= up.command <= 5004
        fields = ["command", "param1", "param2", "param3", "param4", "autocontinue"]
        if not (frame_free or fence):
            fields += ["frame", "x", "y", "z"]
        elif fence:
            fields += ["x", "y"]
        for name in fields:
            a, b = getattr(up, name), getattr(down, name)
            if isinstance(a, float) or isinstance(b, float):
                if abs(float(a) - float(b)) > 1e-4 * max(1.0, abs(float(a))):
                    diffs.append(f"item {seq} {name}: expected {a}, got {b}")
            elif a != b:
                diffs.append(f"item {seq} {name}: expected {a}, got {b}")
    return diffs


def _item_from_msg(msg, mission_type: MissionType) -> MissionItem:
    x, y = msg.x, msg.y
    if msg.get_type() == "MISSION_ITEM":  # float form: convert to the INT form's units
        scale = 1e7 if msg.frame in GLOBAL_FRAMES else 1e4
        x, y = int(round(x * scale)), int(round(y * scale))
    return MissionItem(command=int(msg.command), frame=int(msg.frame), param1=float(msg.param1),
                       param2=float(msg.param2), param3=float(msg.param3), param4=float(msg.param4), x=int(x),
                       y=int(y), z=float(msg.z), autocontinue=int(msg.autocontinue), mission_type=mission_type)


class MissionClient:
    def __init__(self, link: Link, telemetry: Telemetry, *, item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S,
                 attempts: int = DEFAULT_ATTEMPTS) -> None:
        self._link = link
        self._telemetry = telemetry
        self.item_timeout_s = item_timeout_s
        self.attempts = attempts
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ helpers
    def _target(self) -> tuple[int, int]:
        if self._link.target_system is None:
            self._link.wait_autopilot(self.item_timeout_s)
        return self._link.target_system, self._link.target_component

    def _for_us(self, msg, mission_type: MissionType, types: tuple[str, ...]) -> bool:
        return (msg.get_type() in types and getattr(msg, "mission_type", 0) == int(mission_type)
                and getattr(msg, "target_system", 0) in (0, self._link.source_system))

    def _now(self) -> int:
        return self._link.clock.monotonic_ns()

    def _ack_error(self, ack, origin: str, params: tuple, t0: int, doing: str) -> MissionTransferError:
        return MissionTransferError(f"{origin}: expected MISSION_ACK {result_name(0)} {doing}, got "
                                    f"{result_name(ack.type)}{self._telemetry.texts_since(t0)}",
                                    result=int(ack.type), origin=origin, params=params)

    def _timeout(self, origin: str, expected: str, params: tuple, t0: int, tries: int) -> MissionTransferError:
        waited = (self._now() - t0) / 1e9
        lost = "" if self._telemetry.state.link_ok else " (and no HEARTBEAT: link lost)"
        return MissionTransferError(f"{origin}: expected {expected}, got no answer to {tries} tries "
                                    f"({waited:.1f} s in all){lost}", result="timeout", origin=origin, params=params)

    # ------------------------------------------------------------------ upload
    def upload(self, items: Sequence[MissionItem], mission_type: MissionType = MissionType.MISSION, *,
               timeout_s: float = 30.0, item_timeout_s: float | None = None, attempts: int | None = None) -> None:
        """Replace the autopilot's list of this type by ``items`` (for MISSION, items[0] is home)."""
        mt = MissionType(mission_type)
        origin = f"upload {mt.name}"
        items = list(items)
        for i, item in enumerate(items):
            if not isinstance(item, MissionItem):
                raise MissionTransferError(f"{origin}: expected MissionItem objects, got {type(item).__name__} at "
                                           f"index {i}", result="invalid", origin=origin, params=(i,))
            if item.mission_type != mt:
                raise MissionTransferError(f"{origin}: expected items of mission_type {mt.name}, got "
                                           f"{MissionType(item.mission_type).name} at index {i}", result="invalid",
                                           origin=origin, params=(i,))
        step_s = self.item_timeout_s if item_timeout_s is None else item_timeout_s
        attempts = self.attempts if attempts is None else max(1, attempts)
        n = len(items)
        sysid, compid = self._target()
        mav = self._link.mav

        def send_count() -> None:
            self._link.send(mav.mission_count_encode(sysid, compid, n, int(mt)))

        def send_item(seq: int) -> None:
            it = items[seq]
            self._link.send(mav.mission_item_int_encode(sysid, compid, seq, it.frame, it.command, 0, it.autocontinue,
                                                        it.param1, it.param2, it.param3, it.param4, it.x, it.y,
                                                        it.z, int(mt)))

        types = ("MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK")
        with self._lock, self._link.subscribe(lambda m: self._for_us(m, mt, types)) as sub:
            t0 = self._now()
            deadline = t0 + int(timeout_s * 1e9)
            resend = send_count
            resend()
            tries, last_sent = 1, -1
            while True:
                remaining = (deadline - self._now()) / 1e9
                try:
                    msg, _ = sub.get(max(0.0, min(step_s, remaining)))
                except queue.Empty:
                    if tries >= attempts or self._now() >= deadline:
                        expected = (f"MISSION_REQUEST for item {last_sent + 1} of {n}" if last_sent + 1 < n
                                    else "the final MISSION_ACK")
                        raise self._timeout(origin, expected, (last_sent + 1, n), t0, tries) from None
                    resend()
                    tries += 1
                    continue
                if msg.get_type() == "MISSION_ACK":
                    if msg.type == mavlink.MAV_MISSION_ACCEPTED:
                        if n == 0 or last_sent == n - 1:
                            return
                        continue  # a stale ACK from an earlier transfer
                    if msg.type == mavlink.MAV_MISSION_INVALID_SEQUENCE:
                        continue  # ArduPilot goes on and asks again
                    raise self._ack_error(msg, origin, (max(last_sent, 0), n), t0, f"after item {last_sent} of {n}")
                seq = int(msg.seq)
                if not 0 <= seq < n:
                    raise MissionTransferError(f"{origin}: expected requests for items 0..{n - 1}, got a request for "
                                               f"item {seq}", result="invalid request", origin=origin, params=(seq, n))
                send_item(seq)
                last_sent = seq
                resend, tries = (lambda s=seq: send_item(s)), 1

    # ------------------------------------------------------------------ download
    def download(self, mission_type: MissionType = MissionType.MISSION, *, timeout_s: float = 30.0,
                 item_timeout_s: float | None = None, attempts: int | None = None) -> list[MissionItem]:
        """The autopilot's list of this type (for MISSION, item 0 is home)."""
        mt = MissionType(mission_type)
        origin = f"download {mt.name}"
        step_s = self.item_timeout_s if item_timeout_s is None else item_timeout_s
        attempts = self.attempts if attempts is None else max(1, attempts)
        sysid, compid = self._target()
        mav = self._link.mav
        types = ("MISSION_COUNT", "MISSION_ITEM_INT", "MISSION_ITEM", "MISSION_ACK")
        with self._lock, self._link.subscribe(lambda m: self._for_us(m, mt, types)) as sub:
            t0 = self._now()
            deadline = t0 + int(timeout_s * 1e9)

            def exchange(send, want: str, accept, expected: str, params: tuple):
                send()
                tries = 1
                while True:
                    remaining = (deadline - self._now()) / 1e9
                    try:
                        msg, _ = sub.get(max(0.0, min(step_s, remaining)))
                    except queue.Empty:
                        if tries >= attempts or self._now() >= deadline:
                            raise self._timeout(origin, expected, params, t0, tries) from None
                        send()
                        tries += 1
                        continue
                    if msg.get_type() == "MISSION_ACK":
                        if msg.type != mavlink.MAV_MISSION_ACCEPTED:
                            raise self._ack_error(msg, origin, params, t0, f"or {want}")
                        continue
                    if msg.get_type() in want.split("/") and accept(msg):
                        return msg

            count_msg = exchange(lambda: self._link.send(mav.mission_request_list_encode(sysid, compid, int(mt))),
                                 "MISSION_COUNT", lambda m: True, "MISSION_COUNT", (0, 0))
            count = int(count_msg.count)
            out: list[MissionItem] = []
            for seq in range(count):
                msg = exchange(lambda s=seq: self._link.send(mav.mission_request_int_encode(sysid, compid, s, int(mt))),
                               "MISSION_ITEM_INT/MISSION_ITEM", lambda m, s=seq: m.seq == s,
                               f"MISSION_ITEM_INT {seq} of {count}", (seq, count))
                out.append(_item_from_msg(msg, mt))
            self._link.send(mav.mission_ack_encode(sysid, compid, mavlink.MAV_MISSION_ACCEPTED, int(mt)))
            return out

    def count(self, mission_type: MissionType = MissionType.MISSION, *, timeout_s: float = 5.0) -> int:
        """How many items the autopilot holds (MISSION_REQUEST_LIST -> MISSION_COUNT, no items fetched)."""
        mt = MissionType(mission_type)
        origin = f"count {mt.name}"
        sysid, compid = self._target()
        mav = self._link.mav
        types = ("MISSION_COUNT", "MISSION_ACK")
        with self._lock, self._link.subscribe(lambda m: self._for_us(m, mt, types)) as sub:
            t0 = self._now()
            tries = 0
            while tries < self.attempts and self._now() < t0 + int(timeout_s * 1e9):
                self._link.send(mav.mission_request_list_encode(sysid, compid, int(mt)))
                tries += 1
                try:
                    msg, _ = sub.get(min(self.item_timeout_s, timeout_s / 2))
                except queue.Empty:
                    continue
                if msg.get_type() == "MISSION_COUNT":
                    return int(msg.count)
                if msg.type != mavlink.MAV_MISSION_ACCEPTED:
                    raise self._ack_error(msg, origin, (), t0, "or MISSION_COUNT")
            raise self._timeout(origin, "MISSION_COUNT", (), t0, tries)

    # ------------------------------------------------------------------ clear
    def clear(self, mission_type: MissionType = MissionType.MISSION, *, timeout_s: float = 10.0) -> None:
        mt = MissionType(mission_type)
        origin = f"clear {mt.name}"
        sysid, compid = self._target()
        mav = self._link.mav
        with self._lock, self._link.subscribe(lambda m: self._for_us(m, mt, ("MISSION_ACK",))) as sub:
            t0 = self._now()
            tries = 0
            while tries < self.attempts and self._now() < t0 + int(timeout_s * 1e9):
                self._link.send(mav.mission_clear_all_encode(sysid, compid, int(mt)))
                tries += 1
                try:
                    msg, _ = sub.get(min(self.item_timeout_s, timeout_s))
                except queue.Empty:
                    continue
                if msg.type != mavlink.MAV_MISSION_ACCEPTED:
                    raise self._ack_error(msg, origin, (), t0, "")
                return
            raise self._timeout(origin, "MISSION_ACK", (), t0, tries)
