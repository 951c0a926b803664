"""Parameters: read and set the autopilot's named parameters (PARAM_REQUEST_READ / PARAM_SET -> PARAM_VALUE).

ArduPilot answers a PARAM_SET with the PARAM_VALUE it now holds, and does not answer a read of an
unknown name at all: both waits are bounded and raise WaitTimeout naming the parameter. A set is
confirmed only when the echoed value equals the requested one (within float32 rounding).
"""

from __future__ import annotations

import queue

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.errors import VehicleError, WaitTimeout
from agridrone.vehicle.link import Link

DEFAULT_PARAM_TIMEOUT_S = 2.0
DEFAULT_PARAM_ATTEMPTS = 3


def _name_of(msg) -> str:
    name = msg.param_id
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.rstrip("\x00")


class ParamClient:
    def __init__(self, link: Link, *, timeout_s: float = DEFAULT_PARAM_TIMEOUT_S,
                 attempts: int = DEFAULT_PARAM_ATTEMPTS) -> None:
        self._link = link
        self.timeout_s = timeout_s
        self.attempts = attempts

    @staticmethod
    def _check_name(name: str) -> str:
        if not isinstance(name, str) or not 0 < len(name) <= 16 or not name.isascii():
            raise VehicleError(f"parameter name: expected 1..16 ASCII characters, got {name!r}", result="invalid",
                               origin="PARAM", params=(name,))
        return name

    def _exchange(self, name: str, send, accept, origin: str, expected: str):
        target = self._link.wait_autopilot(self.timeout_s)
        with self._link.subscribe(lambda m: m.get_type() == "PARAM_VALUE" and _name_of(m) == name) as sub:
            for _attempt in range(self.attempts):
                send(*target)
                deadline = self._link.clock.monotonic_ns() + int(self.timeout_s * 1e9)
                while True:
                    remaining = (deadline - self._link.clock.monotonic_ns()) / 1e9
                    if remaining <= 0:
                        break
                    try:
                        msg, _ts = sub.get(remaining)
                    except queue.Empty:
                        break
                    if accept(msg):
                        return float(msg.param_value)
        raise WaitTimeout(f"{origin} {name}: expected {expected}, got no answer to {self.attempts} tries "
                          f"(is the name right?)", origin=f"{origin} {name}", timeout_s=self.timeout_s * self.attempts,
                          params=(name,))

    def get(self, name: str) -> float:
        """The parameter's value; WaitTimeout when the autopilot does not answer (unknown names get no answer)."""
        name = self._check_name(name)
        mav = self._link.mav

        def send(sysid, compid):
            self._link.send(mav.param_request_read_encode(sysid, compid, name.encode("ascii"), -1))

        return self._exchange(name, send, lambda m: True, "PARAM_REQUEST_READ", "a PARAM_VALUE")

    def set(self, name: str, value: float, param_type: int = mavlink.MAV_PARAM_TYPE_REAL32) -> float:
        """Set and confirm; returns the value the autopilot echoed."""
        name = self._check_name(name)
        value = float(value)
        mav = self._link.mav

        def send(sysid, compid):
            self._link.send(mav.param_set_encode(sysid, compid, name.encode("ascii"), value, param_type))

        def accept(msg) -> bool:
            return abs(float(msg.param_value) - value) <= 1e-6 * max(1.0, abs(value))

        return self._exchange(name, send, accept, "PARAM_SET", f"PARAM_VALUE {value:g}")
