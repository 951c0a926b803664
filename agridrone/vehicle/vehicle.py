"""``Vehicle``: one autopilot over one MAVLink 2 link, and ``connect`` to get one.

It wires the capabilities together (link, telemetry, health, commands, offboard, mission) and
offers the calls the rest of agridrone uses. Every wait has a timeout and raises a named error;
``close()`` (or leaving the ``with`` block) stops the link's threads and closes the socket.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, Mapping

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.clock import Clock, MonotonicClock
from agridrone.errors import LinkError, VehicleError
from agridrone.vehicle.commands import DEFAULT_ACK_TIMEOUT_S, Commander
from agridrone.vehicle.events import EventBus
from agridrone.vehicle.health import DEFAULT_LINK_TIMEOUT_S, LinkHealth
from agridrone.vehicle.link import DEFAULT_SOURCE_SYSTEM, Link, LinkStats, open_transport, parse_url
from agridrone.vehicle.mission import MissionClient
from agridrone.vehicle.modes import mode_name, mode_number
from agridrone.vehicle.offboard import Offboard
from agridrone.vehicle.params import ParamClient
from agridrone.vehicle.signing import Signing
from agridrone.vehicle.telemetry import DEFAULT_STREAM_RATES_HZ, Telemetry, VehicleState

FORCE_ARM_MAGIC = 21196
STATUSTEXT_LEN = 50


def _split_text(text: str) -> list[bytes]:
    """UTF-8 pieces of at most 50 bytes, never splitting a character."""
    pieces, current = [], b""
    for ch in text:
        enc = ch.encode("utf-8")
        if len(current) + len(enc) > STATUSTEXT_LEN:
            pieces.append(current)
            current = b""
        current += enc
    pieces.append(current)
    return pieces


class Vehicle:
    """An autopilot reached over a started ``Link``. Use ``connect()`` to make one."""

    def __init__(self, link: Link, *, link_timeout_s: float = DEFAULT_LINK_TIMEOUT_S,
                 ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S) -> None:
        self.link = link
        self.events = EventBus()
        self.telemetry = Telemetry(link.clock, self.events)
        self.health = LinkHealth(self.telemetry, self.events, link_timeout_s)
        self.commands = Commander(link, self.telemetry, ack_timeout_s=ack_timeout_s)
        self.missions = MissionClient(link, self.telemetry)
        self.offboard = Offboard(link, self.telemetry)
        self.params = ParamClient(link)
        self._text_ids = itertools.cycle(range(1, 65536))
        link.add_handler(self.telemetry.handle)
        link.add_handler(self.health.on_message)
        link.add_tick_hook(self.health.tick)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> "Vehicle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def running_threads(self) -> list[str]:
        """Names of this vehicle's threads still alive (empty after ``close()``)."""
        return [t.name for t in self.link.threads if t.is_alive()]

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> VehicleState:
        return self.telemetry.state

    @property
    def target_system(self) -> int | None:
        return self.link.target_system

    @property
    def target_component(self) -> int | None:
        return self.link.target_component

    def link_stats(self) -> LinkStats:
        return self.link.stats()

    def wait_until(self, predicate: Callable[[VehicleState], bool], timeout_s: float, what: str = "the condition",
                   *, raise_on_link_lost: bool = True) -> VehicleState:
        """The first state satisfying ``predicate``; WaitTimeout(origin=what) / LinkLost otherwise."""
        return self.telemetry.wait_until(predicate, timeout_s, what, link=self.link,
                                         raise_on_link_lost=raise_on_link_lost)

    def wait_heartbeat(self, timeout_s: float = 10.0) -> VehicleState:
        """Wait for the autopilot's HEARTBEAT (its system/component ids are then known)."""
        self.link.wait_autopilot(timeout_s)
        return self.wait_until(lambda st: st.last_heartbeat_ns is not None, timeout_s, "autopilot HEARTBEAT")

    def request_streams(self, rates_hz: Mapping[str, float] | None = None) -> None:
        """SET_MESSAGE_INTERVAL for the standard telemetry set; ``rates_hz`` overrides or adds (0 stops one)."""
        rates = dict(DEFAULT_STREAM_RATES_HZ)
        rates.update(rates_hz or {})
        for name, hz in rates.items():
            msg_id = getattr(mavlink, f"MAVLINK_MSG_ID_{name}", None)
            if msg_id is None:
                raise VehicleError(f"stream rates: expected MAVLink message names, got {name!r}", result="invalid",
                                   origin="SET_MESSAGE_INTERVAL", params=(name,))
            self.commands.set_message_interval(msg_id, float(hz))

    def wait_ready(self, timeout_s: float = 60.0) -> VehicleState:
        """Wait for EKF flags ok, GPS fix >= 3D and home known (ArduCopter needs ~42 s after boot)."""
        what = "the vehicle ready (EKF position ok, GPS 3D fix, home known)"
        if "ekf_flags" not in self.state.received_ns:
            what += "; no EKF_STATUS_REPORT so far: were streams requested?"
        return self.wait_until(lambda st: st.ready, timeout_s, what)

    # ------------------------------------------------------------------ commands
    def command_long(self, command: int, params=(), **kwargs):
        return self.commands.command_long(command, params, **kwargs)

    def command_int(self, command: int, **kwargs):
        return self.commands.command_int(command, **kwargs)

    def request_message(self, msg_id: int, timeout_s: float = 3.0):
        return self.commands.request_message(msg_id, timeout_s)

    def set_mode(self, mode: str | int, timeout_s: float = 3.0) -> None:
        """DO_SET_MODE; waits for the COMMAND_ACK and for the mode in the HEARTBEAT."""
        number = mode_number(mode)
        self.commands.command_long(mavlink.MAV_CMD_DO_SET_MODE,
                                   (mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, number))
        self.wait_until(lambda st: st.custom_mode == number, timeout_s, f"mode {mode_name(number)} in the HEARTBEAT")

    def arm(self, force: bool = False, timeout_s: float = 3.0) -> None:
        """Arm; waits for the ARMED bit in the HEARTBEAT (it shows on the next 1 Hz one)."""
        self.commands.command_long(mavlink.MAV_CMD_COMPONENT_ARM_DISARM, (1, FORCE_ARM_MAGIC if force else 0))
        self.wait_until(lambda st: st.armed, timeout_s, "armed in the HEARTBEAT")

    def disarm(self, force: bool = False, timeout_s: float = 3.0) -> None:
        self.commands.command_long(mavlink.MAV_CMD_COMPONENT_ARM_DISARM, (0, FORCE_ARM_MAGIC if force else 0))
        self.wait_until(lambda st: not st.armed, timeout_s, "disarmed in the HEARTBEAT")

    def takeoff(self, alt_m: float = 20.0) -> None:
        """NAV_TAKEOFF to ``alt_m`` above home (GUIDED and armed). Returns once ACCEPTED; wait for altitude yourself."""
        self.commands.command_long(mavlink.MAV_CMD_NAV_TAKEOFF, (0, 0, 0, 0, 0, 0, float(alt_m)))

    def goto(self, lat_deg: float, lon_deg: float, alt_rel_m: float) -> None:
        self.offboard.goto(lat_deg, lon_deg, alt_rel_m)

    def set_velocity_ned(self, vn_m_s: float, ve_m_s: float, vd_m_s: float) -> None:
        self.offboard.set_velocity_ned(vn_m_s, ve_m_s, vd_m_s)

    def hold(self, mode: str = "BRAKE") -> None:
        """Stop where it is: BRAKE (or LOITER, or any mode you name)."""
        self.set_mode(mode)

    def set_speed(self, speed_m_s: float) -> None:
        """DO_CHANGE_SPEED (ground speed): the horizontal speed of the current mode's navigation, AUTO or GUIDED.
        ArduCopter resets GUIDED to WPNAV_SPEED (10 m/s by default) whenever it starts position control, so send it
        after the first position target."""
        if not (isinstance(speed_m_s, (int, float)) and 0.0 < float(speed_m_s) <= 100.0):
            raise VehicleError(f"speed: expected 0 < m/s <= 100, got {speed_m_s!r}", result="invalid",
                               origin="DO_CHANGE_SPEED", params=(speed_m_s,))
        self.commands.command_long(mavlink.MAV_CMD_DO_CHANGE_SPEED, (1, float(speed_m_s), -1))

    def resume_auto(self, seq: int) -> None:
        """DO_SET_MISSION_CURRENT ``seq``, then mode AUTO."""
        self.commands.command_long(mavlink.MAV_CMD_DO_SET_MISSION_CURRENT, (int(seq),))
        self.set_mode("AUTO")

    def send_statustext(self, text: str, severity: int = mavlink.MAV_SEVERITY_INFO) -> None:
        """STATUSTEXT; longer than 50 bytes goes in chunks sharing an id (MAVLink 2)."""
        if not 0 <= int(severity) <= 7:
            raise VehicleError(f"statustext severity: expected 0..7, got {severity}", result="invalid",
                               origin="STATUSTEXT", params=(severity,))
        pieces = _split_text(str(text))
        if len(pieces) == 1:
            self.link.send(self.link.mav.statustext_encode(int(severity), pieces[0], 0, 0))
            return
        if len(pieces[-1]) == STATUSTEXT_LEN:
            pieces.append(b"")  # a receiver only knows the text ended when a chunk is shorter than 50
        text_id = next(self._text_ids)
        for seq, piece in enumerate(pieces):
            self.link.send(self.link.mav.statustext_encode(int(severity), piece, text_id, seq))


def connect(url: str, timeout_s: float = 10.0, signing: Signing | str | os.PathLike | None = None, *,
            source_system: int = DEFAULT_SOURCE_SYSTEM, link_timeout_s: float = DEFAULT_LINK_TIMEOUT_S,
            ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S, reconnect: bool = True, clock: Clock | None = None) -> Vehicle:
    """Open ``url`` and wait (up to ``timeout_s``) for the autopilot's first HEARTBEAT.

    ``signing``: a ``Signing``, or the path of a key file (32 raw bytes or 64 hex characters).
    Raises LinkError (bad URL, refused, unreachable, not MAVLink, wrong signature) or WaitTimeout.
    """
    if signing is not None and not isinstance(signing, Signing):
        signing = Signing.from_file(signing)
    ep = parse_url(url)
    if not isinstance(source_system, int) or not 1 <= source_system <= 255:
        raise LinkError(f"source_system: expected 1..255, got {source_system!r}")
    link = Link(ep, open_transport(ep, timeout_s), source_system=source_system, signing=signing,
                clock=clock or MonotonicClock(), reconnect=reconnect)
    vehicle = Vehicle(link, link_timeout_s=link_timeout_s, ack_timeout_s=ack_timeout_s)
    link.start()
    try:
        vehicle.wait_heartbeat(timeout_s)
    except BaseException:
        vehicle.close()
        raise
    return vehicle
