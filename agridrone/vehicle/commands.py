"""COMMAND_LONG / COMMAND_INT with COMMAND_ACK matching, retries and typed errors.

One command is in flight at a time on a link (ACKs carry only the command number). A command is
sent, and re-sent (COMMAND_LONG with ``confirmation`` + 1) when no ACK comes within
``ack_timeout_s``, up to ``attempts`` times. IN_PROGRESS extends the wait. The outcome:

- ACCEPTED: the COMMAND_ACK message is returned;
- any other result: ``CommandRejected(result=<MAV_RESULT int>, origin="MAV_CMD_...", params=(...))``,
  whose text also quotes the STATUSTEXTs the autopilot sent meanwhile ("Arm: ...");
- no answer: ``WaitTimeout(origin="COMMAND_ACK for MAV_CMD_...")``, or ``LinkLost`` when the
  autopilot's HEARTBEAT stopped too.
"""

from __future__ import annotations

import math
import queue
import threading
from typing import Sequence

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.errors import CommandRejected, LinkLost, WaitTimeout
from agridrone.vehicle.link import Link
from agridrone.vehicle.telemetry import Telemetry

DEFAULT_ACK_TIMEOUT_S = 1.5
DEFAULT_ATTEMPTS = 3
IN_PROGRESS_TIMEOUT_S = 10.0


def command_name(command: int) -> str:
    entry = mavlink.enums["MAV_CMD"].get(command)
    return entry.name if entry is not None else f"MAV_CMD {command}"


def result_name(result: int) -> str:
    entry = mavlink.enums["MAV_RESULT"].get(result)
    return f"{entry.name if entry is not None else 'MAV_RESULT'} ({result})"


def _fmt_params(params: Sequence[float]) -> str:
    return "(" + ", ".join(f"{p:g}" if isinstance(p, float) else str(p) for p in params) + ")"


class Commander:
    def __init__(self, link: Link, telemetry: Telemetry, *, ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
                 attempts: int = DEFAULT_ATTEMPTS) -> None:
        self._link = link
        self._telemetry = telemetry
        self.ack_timeout_s = ack_timeout_s
        self.attempts = attempts
        self._lock = threading.Lock()

    def _target(self) -> tuple[int, int]:
        if self._link.target_system is None:
            self._link.wait_autopilot(self.ack_timeout_s)
        return self._link.target_system, self._link.target_component

    def command_long(self, command: int, params: Sequence[float] = (), *, ack_timeout_s: float | None = None,
                     attempts: int | None = None):
        """Send COMMAND_LONG ``command`` with up to 7 params; the ACCEPTED COMMAND_ACK."""
        p = [float(v) for v in params] + [0.0] * (7 - len(params))
        if len(p) != 7:
            raise ValueError(f"{command_name(command)}: expected at most 7 params, got {len(params)}")
        sysid, compid = self._target()

        def send(attempt: int) -> None:
            self._link.send(self._link.mav.command_long_encode(sysid, compid, command, min(attempt, 255), *p))

        return self._run(command, tuple(p), send, ack_timeout_s, attempts)

    def command_int(self, command: int, *, frame: int, params: Sequence[float] = (), x: int = 0, y: int = 0,
                    z: float = 0.0, ack_timeout_s: float | None = None, attempts: int | None = None):
        """Send COMMAND_INT (x/y in degE7 for global frames); the ACCEPTED COMMAND_ACK."""
        p = [float(v) for v in params] + [0.0] * (4 - len(params))
        if len(p) != 4:
            raise ValueError(f"{command_name(command)}: expected at most 4 params, got {len(params)}")
        sysid, compid = self._target()

        def send(attempt: int) -> None:
            self._link.send(self._link.mav.command_int_encode(sysid, compid, frame, command, 0, 0, *p,
                                                                int(x), int(y), float(z)))

        return self._run(command, (*p, int(x), int(y), float(z)), send, ack_timeout_s, attempts)

    def _run(self, command: int, params: tuple, send, ack_timeout_s: float | None, attempts: int | None):
        ack_timeout_s = self.ack_timeout_s if ack_timeout_s is None else ack_timeout_s
        attempts = self.attempts if attempts is None else max(1, attempts)
        name = command_name(command)
        clock = self._link.clock
        with self._lock, self._link.subscribe(
                lambda m: m.get_type() == "COMMAND_ACK" and m.command == command) as sub:
            t0 = clock.monotonic_ns()
            for attempt in range(attempts):
                send(attempt)
                deadline = clock.monotonic_ns() + int(ack_timeout_s * 1e9)
                while True:
                    remaining = (deadline - clock.monotonic_ns()) / 1e9
                    try:
                        ack, _ = sub.get(max(0.0, remaining))
                    except queue.Empty:
                        break  # no answer: send again
                    target = getattr(ack, "target_system", 0)
                    if target not in (0, self._link.source_system):
                        continue  # an answer to somebody else's command
                    if ack.result == mavlink.MAV_RESULT_IN_PROGRESS:
                        deadline = clock.monotonic_ns() + int(IN_PROGRESS_TIMEOUT_S * 1e9)
                        continue
                    if ack.result == mavlink.MAV_RESULT_ACCEPTED:
                        return ack
                    said = self._telemetry.texts_since(t0)
                    raise CommandRejected(f"{name}{_fmt_params(params)}: expected COMMAND_ACK ACCEPTED, "
                                          f"got {result_name(ack.result)}{said}",
                                          result=int(ack.result), origin=name, params=params)
            waited = (clock.monotonic_ns() - t0) / 1e9
            if not self._telemetry.state.link_ok:
                raise LinkLost(f"{name}{_fmt_params(params)}: expected a COMMAND_ACK, got no answer in {waited:.1f} s "
                               f"and no HEARTBEAT either (link lost)")
            raise WaitTimeout(f"{name}{_fmt_params(params)}: expected a COMMAND_ACK, got no answer to {attempts} "
                              f"attempts in {waited:.1f} s", origin=f"COMMAND_ACK for {name}",
                              timeout_s=waited, params=params)

    # ------------------------------------------------------------------ common commands
    def set_message_interval(self, msg_id: int, rate_hz: float) -> None:
        """MAV_CMD_SET_MESSAGE_INTERVAL: ``rate_hz`` > 0, or 0 to stop the message."""
        if not (rate_hz >= 0 and math.isfinite(rate_hz)):
            raise ValueError(f"stream rate: expected a finite rate >= 0 Hz, got {rate_hz}")
        interval_us = -1.0 if rate_hz == 0 else 1e6 / rate_hz
        self.command_long(mavlink.MAV_CMD_SET_MESSAGE_INTERVAL, (msg_id, interval_us))

    def request_message(self, msg_id: int, timeout_s: float = 3.0):
        """MAV_CMD_REQUEST_MESSAGE, then the message itself; all within ``timeout_s``.

        CommandRejected if the autopilot refuses; WaitTimeout if the ACK or the message never comes.
        """
        msg_name = mavlink.mavlink_map[msg_id].msgname if msg_id in mavlink.mavlink_map else str(msg_id)
        clock = self._link.clock
        deadline = clock.monotonic_ns() + int(timeout_s * 1e9)
        with self._link.subscribe(lambda m: m.get_msgId() == msg_id) as sub:
            self.command_long(mavlink.MAV_CMD_REQUEST_MESSAGE, (msg_id,),
                              ack_timeout_s=min(self.ack_timeout_s, timeout_s / 2), attempts=2)
            try:
                msg, _ = sub.get(max(0.0, (deadline - clock.monotonic_ns()) / 1e9))
            except queue.Empty:
                raise WaitTimeout(f"expected {msg_name} after MAV_CMD_REQUEST_MESSAGE was accepted, got nothing "
                                  f"within {timeout_s:g} s", origin=msg_name, timeout_s=timeout_s) from None
        return msg
