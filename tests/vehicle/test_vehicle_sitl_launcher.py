"""``launch_sitl`` with a stand-in ``arducopter`` (a script that records its arguments and listens on the
instance's port): the command line, the working directory, the defaults chain, waiting, stopping, errors.
No real SITL binary is needed for these; the scenarios run the real one when AGRIDRONE_SITL is set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agridrone.errors import ConfigError, LinkError
from agridrone.sim.sitl import copter_defaults_for, free_instance, launch_sitl

REPO = Path(__file__).resolve().parents[2]

FAKE = """#!{python}
import json, os, socket, sys, time
args = sys.argv[1:]
json.dump({{"argv": args, "cwd": os.getcwd()}}, open("argv.json", "w"))
if "--fail" in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mode")).read():
    print("Unknown option --bogus"); sys.exit(3)
n = int(args[args.index("-I") + 1])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 5760 + 10 * n)); s.listen(4)
time.sleep(60)
"""


def fake_tree(tmp_path: Path, mode: str = "") -> Path:
    root = tmp_path / "ardupilot"
    (root / "Tools" / "autotest" / "default_params").mkdir(parents=True)
    (root / "Tools" / "autotest" / "default_params" / "copter.parm").write_text("FRAME_CLASS 1\n")
    bin_dir = root / "build" / "sitl" / "bin"
    bin_dir.mkdir(parents=True)
    exe = bin_dir / "arducopter"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(0o755)
    (bin_dir / "mode").write_text(mode)
    return exe


def test_command_line_workdir_and_defaults(tmp_path):
    exe = fake_tree(tmp_path)
    assert copter_defaults_for(exe) == tmp_path / "ardupilot" / "Tools" / "autotest" / "default_params" / "copter.parm"
    instance = free_instance(start=7)
    handle = launch_sitl(exe, workdir=tmp_path / "run", home=(-35.363261, 149.16523, 584.0), speedup=5,
                         defaults=[REPO / "sitl" / "agridrone.parm"], instance=instance, wind=(0.0, 3.0), boot_s=30)
    try:
        assert handle.running and handle.url == f"tcp:127.0.0.1:{5760 + 10 * instance}"
        record = json.loads((tmp_path / "run" / "argv.json").read_text())
    finally:
        handle.stop()
    assert not handle.running
    argv = record["argv"]
    assert Path(record["cwd"]) == (tmp_path / "run").resolve()
    assert argv[argv.index("--model") + 1] == "+" and argv[argv.index("--speedup") + 1] == "5"
    assert argv[argv.index("--home") + 1] == "-35.363261,149.16523,584.0,0"
    assert argv[argv.index("-I") + 1] == str(instance) and "-w" in argv
    assert argv[argv.index("--serial0") + 1] == "tcp:0"
    files = argv[argv.index("--defaults") + 1].split(",")
    assert [Path(f).name for f in files] == ["copter.parm", "agridrone.parm", "agridrone-wind.parm"]
    wind = (tmp_path / "run" / "agridrone-wind.parm").read_text()
    assert "SIM_WIND_SPD 3.000" in wind and "SIM_WIND_DIR 270.0" in wind  # air moving east comes from the west


def test_a_binary_that_exits_is_a_link_error_quoting_its_output(tmp_path):
    exe = fake_tree(tmp_path, mode="--fail")
    with pytest.raises(LinkError) as err:
        launch_sitl(exe, workdir=tmp_path / "run", home=(0.0, 0.0, 0.0), instance=free_instance(start=7),
                    startup_timeout_s=10)
    assert "exited with code 3" in str(err.value) and "Unknown option --bogus" in str(err.value)


def test_bad_arguments_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="expected an executable arducopter binary"):
        launch_sitl(tmp_path / "nope", workdir=tmp_path, home=(0, 0, 0))
    exe = fake_tree(tmp_path)
    with pytest.raises(ConfigError, match="expected options among"):
        launch_sitl(exe, workdir=tmp_path, home=(0, 0, 0), gravity=3)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    alone = lonely / "arducopter"
    alone.write_text("#!/bin/sh\n")
    alone.chmod(0o755)
    with pytest.raises(ConfigError, match="copter.parm"):
        launch_sitl(alone, workdir=tmp_path / "w", home=(0, 0, 0))
