"""``agridrone fly`` / ``agridrone demo``: bad input is one line and an exit code, before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from agridrone.cli import main

REPO = Path(__file__).resolve().parents[2]
MISSION = str(REPO / "missions" / "cereal-rectangle.yaml")
CLOSED = "tcp:127.0.0.1:9"  # nothing listens there: reaching it would be a LinkError, not what these expect


@pytest.mark.parametrize("argv, needle, code", [
    (["fly", "nope.yaml", "--connect", CLOSED, "--camera", "0"], "nope.yaml", 1),
    (["fly", MISSION, "--connect", CLOSED, "--camera", "sim://missing-world.yaml"], "sim://WORLD", 7),
    (["fly", MISSION, "--connect", CLOSED, "--camera", "ftp://x/y"], "unknown scheme", 7),
    (["fly", MISSION, "--connect", CLOSED, "--camera", "0", "--mqtt", "http://broker"], "mqtt or mqtts", 2),
    (["fly", MISSION, "--connect", CLOSED, "--camera", "0", "--config", "missing.toml"], "config file not found", 2),
    (["fly", MISSION, "--connect", CLOSED, "--camera", "0", "--time-scale", "0"], "--time-scale", 2),
    (["demo", "--speedup", "-1"], "--speedup", 2),
    (["demo", "--world", "missing-world.yaml"], "missing-world.yaml", 1),
])
def test_bad_input_is_one_line(argv, needle, code, capsys):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert needle in err and len(err.splitlines()) == 1, err
