"""The one error hierarchy of agridrone.

Every error says what was expected and what came, in one line (``str(err)``), and carries an
``exit_code`` the CLI returns. Vehicle errors carry ``result``, ``origin`` and ``params``
publicly so callers can act on them without parsing text.
"""

from __future__ import annotations

from typing import Any


class AgriDroneError(Exception):
    """Base class. ``str(err)`` is a single line fit for a terminal."""

    exit_code = 1

    def __str__(self) -> str:  # keep messages on one line, whatever the caller passed
        return " ".join(super().__str__().split())


class ConfigError(AgriDroneError):
    """A configuration file or option is wrong."""

    exit_code = 2


class MissionError(AgriDroneError):
    """A mission file is malformed or cannot be planned."""

    exit_code = 1


class ModelError(AgriDroneError):
    """A model file is missing, corrupt, or its tensors do not fit the decoder."""

    exit_code = 6


class DatasetError(AgriDroneError):
    """A training or evaluation dataset is broken."""

    exit_code = 8


class CameraError(AgriDroneError):
    """A frame source cannot be opened, or stopped delivering."""

    exit_code = 7


class LinkError(AgriDroneError):
    """The MAVLink link cannot be opened, or the peer does not speak MAVLink."""

    exit_code = 3


class LinkLost(LinkError):
    """The autopilot's heartbeat stopped arriving."""


class VehicleError(AgriDroneError):
    """An operation on the vehicle failed; carries result, origin and params publicly."""

    exit_code = 4

    def __init__(self, message: str, *, result: Any = None, origin: str = "", params: tuple = ()) -> None:
        super().__init__(message)
        self.result = result
        self.origin = origin
        self.params = tuple(params)


class CommandRejected(VehicleError):
    """COMMAND_ACK came back with a result other than ACCEPTED (or IN_PROGRESS)."""


class MissionTransferError(VehicleError):
    """The mission protocol ended with an error MISSION_ACK, or the peer stopped answering."""


class WaitTimeout(VehicleError):
    """A wait ran out of time. ``origin`` names what was awaited."""

    exit_code = 5

    def __init__(self, message: str, *, origin: str = "", timeout_s: float = 0.0, params: tuple = ()) -> None:
        super().__init__(message, result="timeout", origin=origin, params=params)
        self.timeout_s = timeout_s
