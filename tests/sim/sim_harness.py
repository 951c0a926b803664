"""An in-process simulated autopilot with a recording channel: unit tests drive it message by
message and step by step, with no sockets and no wall-clock time."""

from __future__ import annotations

import math
import socket

from pymavlink.dialects.v20 import ardupilotmega as mav

from agridrone.sim.autopilot import Autopilot, SimConfig
from agridrone.sim.commands import MessageHandler
from agridrone.sim.streams import StreamSchedule


class Recorder:
    """A channel that keeps what the autopilot sends, with the simulated time of sending."""

    def __init__(self, ap: Autopilot) -> None:
        self.ap = ap
        self.schedule = StreamSchedule(ap.now_s)
        self.sent: list[tuple[float, object]] = []
        self.mav = mav.MAVLink(None, srcSystem=1, srcComponent=1)

    def send(self, msg) -> None:
        msg.pack(self.mav)  # every message must encode
        self.sent.append((self.ap.now_s, msg))

    def of(self, type_: str, since_s: float = -1.0) -> list:
        return [m for t, m in self.sent if m.get_type() == type_ and t >= since_s]

    def texts(self, since_s: float = -1.0) -> list[str]:
        return [m.text for m in self.of("STATUSTEXT", since_s)]


class Sim:
    def __init__(self, **config) -> None:
        self.ap = Autopilot(SimConfig(**config))
        self.ch = Recorder(self.ap)
        self.ap.channels.append(self.ch)
        self.handler = MessageHandler(self.ap)
        self.src = mav.MAVLink(None, srcSystem=255, srcComponent=191)

    def send(self, msg) -> None:
        # through the wire format, as a client would
        buf = msg.pack(self.src)
        decoded = mav.MAVLink(None).parse_buffer(buf)[0]
        self.handler.handle(self.ch, decoded)

    def run(self, seconds: float) -> None:
        for _ in range(int(round(seconds / self.ap.dt_s))):
            self.ap.step()

    def run_until(self, cond, timeout_s: float, what: str) -> float:
        t0 = self.ap.now_s
        while not cond():
            if self.ap.now_s - t0 > timeout_s:
                raise AssertionError(f"expected {what} within {timeout_s} simulated s")
            self.ap.step()
        return self.ap.now_s - t0

    def command(self, cmd: int, *params, is_int: bool = False, frame: int = 0) -> int:
        p = list(params) + [0.0] * (7 - len(params))
        n = len(self.ch.of("COMMAND_ACK"))
        if is_int:
            self.send(mav.MAVLink_command_int_message(1, 1, frame, cmd, 0, 0, p[0], p[1], p[2], p[3],
                                                      int(p[4]), int(p[5]), p[6]))
        else:
            self.send(mav.MAVLink_command_long_message(1, 1, cmd, 0, *p))
        acks = self.ch.of("COMMAND_ACK")[n:]
        assert len(acks) == 1 and acks[0].command == cmd, f"expected one COMMAND_ACK for {cmd}, got {acks}"
        return acks[0].result

    def ready(self) -> None:
        self.run_until(lambda: self.ap.position_ready, 60, "readiness")

    def takeoff(self, alt_m: float = 20.0) -> None:
        self.ready()
        assert self.command(176, 1, 4) == 0
        assert self.command(400, 1) == 0
        assert self.command(22, 0, 0, 0, 0, 0, 0, alt_m) == 0
        self.run_until(lambda: self.ap.rel_alt_m() > alt_m - 0.2, 60, "take-off altitude")

    def target_global(self, north_m: float, east_m: float, alt_m: float, mask: int = 3576,
                      v_ned=(0.0, 0.0, 0.0), frame: int = 6) -> None:
        lat, lon = self.ap.frame.to_latlon(self.ap.home_en[0] + east_m, self.ap.home_en[1] + north_m)
        self.send(mav.MAVLink_set_position_target_global_int_message(
            0, 1, 1, frame, mask, int(round(lat * 1e7)), int(round(lon * 1e7)), alt_m, v_ned[0], v_ned[1], v_ned[2],
            0, 0, 0, 0, 0))

    def north_east(self) -> tuple[float, float]:
        v = self.ap.vehicle
        return v.n - self.ap.home_en[1], v.e - self.ap.home_en[0]

    def speed(self) -> float:
        return math.hypot(self.ap.vehicle.ve, self.ap.vehicle.vn)


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
