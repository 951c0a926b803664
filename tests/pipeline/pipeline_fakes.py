"""Fakes for the flight loop's tests: a vehicle that records commands, and a frame source."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from agridrone.types import Frame, Pose
from agridrone.vehicle.events import EventBus, VehicleEvent
from agridrone.vehicle.telemetry import VehicleState


class FakeVehicle:
    """``state`` as the real Vehicle has it; ``set_mode`` emits the ``mode`` event the HEARTBEAT would.
    ``pilot_sets(mode)`` is a mode change agridrone did not ask for; ``calls`` records every command."""

    def __init__(self, pose: Pose | None = None, *, mode: str = "AUTO", armed: bool = True, seq: int = 5) -> None:
        self.events = EventBus()
        self.state = VehicleState(pose=pose, mode=mode, custom_mode=3, armed=armed, mission_seq=seq, link_ok=True)
        self.calls: list[tuple] = []
        self._lock = threading.Lock()

    def _change(self, **kw) -> None:
        with self._lock:
            self.state = dataclasses.replace(self.state, **kw)

    def set_mode(self, mode: str) -> None:
        self.calls.append(("set_mode", mode))
        self._mode(mode)

    def _mode(self, mode: str) -> None:
        old = self.state.mode
        self._change(mode=mode)
        if mode != old:
            self.events.emit(VehicleEvent("mode", 0, mode))

    def pilot_sets(self, mode: str) -> None:
        self._mode(mode)

    def goto(self, lat_deg: float, lon_deg: float, alt_rel_m: float) -> None:
        self.calls.append(("goto", lat_deg, lon_deg, alt_rel_m))

    def set_speed(self, speed_m_s: float) -> None:
        self.calls.append(("set_speed", speed_m_s))

    def resume_auto(self, seq: int) -> None:
        self.calls.append(("resume_auto", seq))
        self._mode("AUTO")

    def lose_link(self) -> None:
        self._change(link_ok=False)
        self.events.emit(VehicleEvent("link_lost", 0, 3.0))

    def recover_link(self) -> None:
        self._change(link_ok=True)
        self.events.emit(VehicleEvent("link_recovered", 0, 5.0))

    def move_to(self, pose: Pose) -> None:
        self._change(pose=pose)

    def commands(self, kind: str | None = None) -> list[tuple]:
        return [c for c in self.calls if kind is None or c[0] == kind]


class ListSource:
    """A finite frame source over prepared images, one every ``period_s`` (so that none is replaced
    by a newer one before the loop takes it)."""

    live = False

    def __init__(self, images, clock, period_s: float = 0.03) -> None:
        self.period_s = period_s
        self.name = "list"
        self.images = list(images)
        self.clock = clock
        self.is_open = False
        self._i = 0

    def open(self) -> None:
        self.is_open = True

    def read(self) -> Frame:
        from agridrone.camera import EndOfStream

        time.sleep(self.period_s)
        if self._i >= len(self.images):
            raise EndOfStream("list ended")
        img = self.images[self._i]
        self._i += 1
        return Frame(self.clock.monotonic_ns(), img, self._i - 1, self.name)

    def close(self) -> None:
        self.is_open = False

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pose_at(lat: float, lon: float, ts_ns: int = 0, *, alt_m: float = 60.0, yaw_deg: float = 0.0,
            vn: float = 0.0, ve: float = 0.0) -> Pose:
    return Pose(ts_ns, lat, lon, 100.0 + alt_m, alt_m, 0.0, 0.0, yaw_deg, vn, ve, 0.0)


def grey(h: int = 48, w: int = 64) -> np.ndarray:
    return np.full((h, w, 3), 90, np.uint8)
