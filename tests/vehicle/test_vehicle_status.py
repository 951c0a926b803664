"""``agridrone status``: a report and exit 0 from a flight controller; one line and a non-zero exit otherwise."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from agridrone.cli import main
from vehicle_fakes import FakeAutopilot


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("make_url, code, words", [
    (lambda: f"tcp:127.0.0.1:{closed_port()}", 3, "connection refused"),
    (lambda: "tcp:127.0.0.1", 3, "expected tcp:HOST:PORT"),
    (lambda: "tcp:no-such-host.invalid:5760", 3, "resolvable host"),
])
def test_status_link_errors_are_one_line(make_url, code, words, capsys):
    rc = main(["status", "--connect", make_url(), "--timeout", "1"])
    err = capsys.readouterr().err
    assert rc == code and words in err and len(err.strip().splitlines()) == 1


def test_status_of_a_peer_that_is_not_mavlink(capsys):
    with FakeAutopilot(raw_stream=b"SSH-2.0-OpenSSH_9.6\r\n") as peer:
        rc = main(["status", "--connect", peer.url, "--timeout", "0.5"])
    err = capsys.readouterr().err
    assert rc == 3 and "not MAVLink" in err and "SSH-2.0" in err and len(err.strip().splitlines()) == 1


def test_status_of_a_silent_peer_times_out(capsys):
    with FakeAutopilot(heartbeat=False) as peer:
        rc = main(["status", "--connect", peer.url, "--timeout", "0.5"])
    err = capsys.readouterr().err
    assert rc == 5 and "expected a HEARTBEAT" in err and "no data at all" in err


def test_status_prints_unknowns_for_unanswered_questions(capsys):
    """An autopilot that only sends HEARTBEATs: the report still comes, saying what is unknown and why."""
    with FakeAutopilot(custom_mode=5) as peer:
        rc = main(["status", "--connect", peer.url, "--timeout", "1.5"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "vehicle:   ArduCopter (QUADROTOR), system 1 component 1" in out
    assert "mode:      LOITER, disarmed" in out
    assert "firmware:  unknown (" in out
    assert "mission:   unknown (count MISSION: timeout); fence unknown (count FENCE: timeout)" in out
    assert "readiness: not ready (waiting for EKF position, 3D GPS fix, home)" in out


def test_status_cli_process_exit_code_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "agridrone", "status", "--connect",
                           f"tcp:127.0.0.1:{closed_port()}", "--timeout", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("agridrone: error: expected a MAVLink peer") and proc.stdout == ""


@pytest.mark.sitl
def test_status_against_the_autopilot(autopilot, capsys):
    """``agridrone status`` against a booting flight controller reports its type, firmware, mode, position source,
    readiness and mission size, and exits 0."""
    rc = main(["status", "--connect", autopilot.url, "--timeout", str(autopilot.wall_s(10))])
    out = capsys.readouterr().out
    assert rc == 0
    lines = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert lines["vehicle"].strip().startswith("ArduCopter (QUADROTOR)")
    assert lines["firmware"].strip().startswith("ArduCopter 4.")
    assert "disarmed" in lines["mode"]
    assert re.match(r"(empty|0 items \+ home); fence 0 items; rally 0 items", lines["mission"].strip())
    assert set(lines) == {"vehicle", "firmware", "mode", "position", "home", "readiness", "battery", "mission", "link"}
