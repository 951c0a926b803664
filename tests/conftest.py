"""Shared fixtures.

``autopilot`` starts a fresh flight controller for one test and stops it afterwards: the built-in
ArduCopter-like simulator by default, or a real ArduCopter SITL binary when the environment
variable ``AGRIDRONE_SITL`` names one (see sitl/README.md). Tests talk to it only through its
MAVLink URL, so the same test runs unchanged against both.

``shared_testdata`` is ../shared/testdata (third-party recordings and models, never copied into the
project); tests that need it skip, saying why, where it is absent.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AGRIDRONE_SHARED", REPO.parent / "shared"))
DEFAULT_HOME = (-35.363261, 149.165230, 584.0)  # the home of the recorded ArduCopter SITL transcripts


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    path = SHARED / "testdata"
    if not path.is_dir():
        pytest.skip(f"third-party test data not found at {path} (it lives in ../shared, outside the project)")
    return path


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Autopilot:
    """A running flight controller reachable at ``url``."""

    url: str
    kind: str  # "builtin" or "sitl"
    speedup: float
    home: tuple[float, float, float]
    handle: Any = field(repr=False, default=None)

    def wall_s(self, sim_seconds: float, margin_s: float = 2.0) -> float:
        """Wall-clock seconds to allow for something that takes ``sim_seconds`` of vehicle time."""
        return sim_seconds / self.speedup + margin_s


def _start(tmp_path: Path, *, home=DEFAULT_HOME, speedup: float | None = None, **options) -> Autopilot:
    sitl_binary = os.environ.get("AGRIDRONE_SITL")
    if sitl_binary:
        from agridrone.sim.sitl import launch_sitl

        speed = speedup or float(os.environ.get("AGRIDRONE_SITL_SPEEDUP", "5"))
        handle = launch_sitl(sitl_binary, workdir=tmp_path / "sitl", home=home, speedup=speed,
                             defaults=[REPO / "sitl" / "agridrone.parm"], **options)
        return Autopilot(handle.url, "sitl", speed, home, handle)
    from agridrone.sim.launcher import launch_builtin

    speed = speedup or float(os.environ.get("AGRIDRONE_SIM_SPEEDUP", "10"))
    handle = launch_builtin(free_tcp_port(), home=home, speedup=speed, **options)
    return Autopilot(handle.url, "builtin", speed, home, handle)


@pytest.fixture
def autopilot_factory(tmp_path) -> Callable[..., Autopilot]:
    """Start one or more flight controllers with options; all are stopped, and checked stopped, at the end."""
    started: list[Autopilot] = []

    def start(**kwargs) -> Autopilot:
        ap = _start(tmp_path, **kwargs)
        started.append(ap)
        return ap

    yield start
    for ap in started:
        ap.handle.stop()
        assert not ap.handle.running, f"{ap.kind} autopilot at {ap.url} still running after stop()"


@pytest.fixture
def autopilot(autopilot_factory) -> Autopilot:
    """A fresh flight controller (built-in simulator, or real SITL with AGRIDRONE_SITL)."""
    return autopilot_factory()
