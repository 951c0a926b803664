"""The CLI maps errors to one line and an exit code, never a traceback."""

import subprocess
import sys

from agridrone import cli
from agridrone.errors import LinkError, WaitTimeout


def test_agridrone_error_becomes_one_line(capsys, monkeypatch):
    def boom(args):
        raise LinkError("tcp:127.0.0.1:1: expected a MAVLink peer,\n got connection refused")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.add_parser("boom").set_defaults(func=boom)
    assert cli.main(["boom"]) == LinkError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a MAVLink peer, got connection refused" in err


def test_internal_error_is_one_line_without_debug(capsys, monkeypatch):
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.add_parser("crash").set_defaults(func=lambda a: 1 / 0)
    assert cli.main(["crash"]) == cli.EXIT_INTERNAL
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_wait_timeout_carries_origin():
    e = WaitTimeout("expected HEARTBEAT within 5 s, got nothing", origin="heartbeat", timeout_s=5)
    assert e.origin == "heartbeat" and e.result == "timeout" and e.exit_code == 5


def test_console_script_help_runs():
    out = subprocess.run([sys.executable, "-m", "agridrone", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage: agridrone" in out.stdout
