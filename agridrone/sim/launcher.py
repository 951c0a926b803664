"""Start the built-in simulator as a subprocess (``python -m agridrone.sim``) for tests and tools.

``launch_builtin`` waits until the TCP port accepts connections; if the process dies first, or
never listens, it raises LinkError with the last lines of the simulator's stderr.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agridrone.errors import ConfigError, LinkError

_KNOWN_EXTRA = {"startup_timeout_s", "physics_hz", "wait_client"}


class ProcessHandle:
    """A flight-controller process we started (built-in simulator or real SITL); ``stop()`` is idempotent."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path, *, keep_log: bool = False) -> None:
        self.proc = proc
        self.url = url
        self.log_path = log_path
        self.keep_log = keep_log

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): its heartbeats stop, as on a lost link. POSIX only."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue after ``pause()``; simulated time resumes where it stopped (no catch-up burst)."""
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        if not self.keep_log:
            try:
                self.log_path.unlink()
            except OSError:
                pass

    def wait_listening(self, port: int, timeout_s: float, name: str, *, ready_text: str | None = None,
                       poll_s: float = 0.05) -> None:
        """Wait until tcp:127.0.0.1:PORT accepts; LinkError with the log's tail if the process dies or never
        listens. With ``ready_text``, the process's own log must say it first (so that a port someone else
        holds is not mistaken for ours)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running:
                raise LinkError(f"{name} exited with code {self.proc.returncode} before listening on port {port}: "
                                f"{self.log_tail() or 'no output'}")
            if ready_text is None or ready_text in self.log_tail(50):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise LinkError(f"{name} did not listen on tcp:127.0.0.1:{port} within {timeout_s:g} s: "
                                f"{tail or 'no output'}")
            time.sleep(poll_s)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class SimHandle(ProcessHandle):
    """The built-in simulator's process; its stderr is the log (deleted on stop)."""

    @property
    def stderr_path(self) -> Path:
        return self.log_path

    def stderr_tail(self, lines: int = 15) -> str:
        return self.log_tail(lines)


def launch_builtin(port: int, *, home=(-35.363261, 149.165230, 584.0), speedup: float = 10.0,
                   signing_key_path=None, boot_s: float | None = None, wind=None, **extra) -> SimHandle:
    """Start ``python -m agridrone.sim`` on tcp:127.0.0.1:PORT and wait until it accepts connections.

    ``wind`` is (north, east) m/s. Extra options: ``startup_timeout_s`` (default 20), ``physics_hz``,
    ``wait_client`` (simulated time starts at the first client's first MAVLink message).
    """
    unknown = set(extra) - _KNOWN_EXTRA
    if unknown:
        raise ConfigError(f"launch_builtin: expected options among {sorted(_KNOWN_EXTRA)}, got {sorted(unknown)}")
    if not 0 < int(port) < 65536:
        raise ConfigError(f"launch_builtin: expected a TCP port 1..65535, got {port}")
    lat, lon, alt = home
    cmd = [sys.executable, "-m", "agridrone.sim", "--listen", f"tcp:127.0.0.1:{int(port)}",
           f"--home={lat!r},{lon!r},{alt!r}", "--speedup", repr(float(speedup))]
    if boot_s is not None:
        cmd += ["--boot-s", repr(float(boot_s))]
    if wind is not None:
        cmd += [f"--wind={float(wind[0])!r},{float(wind[1])!r}"]
    if signing_key_path is not None:
        cmd += ["--signing-key", os.fspath(signing_key_path)]
    if "physics_hz" in extra:
        cmd += ["--physics-hz", repr(float(extra["physics_hz"]))]
    if extra.get("wait_client"):
        cmd += ["--wait-client"]
    fd, stderr_name = tempfile.mkstemp(prefix="agridrone-sim-", suffix=".log")
    with os.fdopen(fd, "wb") as stderr_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr_file)
    handle = SimHandle(proc, f"tcp:127.0.0.1:{int(port)}", Path(stderr_name))
    handle.wait_listening(int(port), float(extra.get("startup_timeout_s", 20.0)), "simulator",
                          ready_text="listening on")
    return handle
