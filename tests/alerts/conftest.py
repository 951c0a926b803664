"""A real mosquitto broker on loopback for the alert tests.

``mosquitto_factory`` starts brokers that a test may stop and restart (same ports, same persistence
folder); ``mosquitto`` is one broker shared by the whole session. Each broker has three listeners:
anonymous plain, password-protected plain (user ``farmer`` / ``s3cret``), and TLS with a self-signed
CA made by ``openssl`` (when openssl is present). Tests skip, saying why, only where the mosquitto
binary is absent.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

USER, PASSWORD = "farmer", "s3cret"


def _mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                              if Path(p).exists()), None)


def _make_tls(folder: Path) -> dict[str, Path] | None:
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run = lambda *a: subprocess.run([openssl, *a], check=True, capture_output=True, timeout=30)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "2",
        "-subj", "/CN=agridrone test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
        "-extfile", ext)
    return {"ca": ca_crt, "cert": crt, "key": key}


@dataclass
class Broker:
    binary: str
    folder: Path
    port: int
    auth_port: int
    tls_port: int | None
    ca_file: Path | None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}/agritest"

    @property
    def auth_url(self) -> str:
        return f"mqtt://{USER}:{PASSWORD}@127.0.0.1:{self.auth_port}/agritest"

    def tls_url(self) -> str:
        return f"mqtts://localhost:{self.tls_port}/agritest?ca={self.ca_file}"

    def start(self, timeout_s: float = 10.0) -> None:
        log = open(self.folder / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.folder / "mosquitto.conf")], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: "
                                   f"{(self.folder / 'mosquitto.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop gracefully (SIGTERM: the broker saves its persistent sessions and queued messages)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout_s)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _make_broker(folder: Path, *, tls: bool = True) -> Broker:
    binary = _mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto binary not found (apt-get install mosquitto; .ci/run installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    port, auth_port = free_tcp_port(), free_tcp_port()
    passwd = folder / "passwd"
    passwd_tool = shutil.which("mosquitto_passwd")
    lines = ["per_listener_settings true", "user root", "persistence true", f"persistence_location {folder}/",
             "log_type error", "log_type warning", "log_type notice",
             f"listener {port} 127.0.0.1", "allow_anonymous true"]
    if passwd_tool:
        subprocess.run([passwd_tool, "-b", "-c", str(passwd), USER, PASSWORD], check=True, capture_output=True,
                       timeout=30)
        lines += [f"listener {auth_port} 127.0.0.1", "allow_anonymous false", f"password_file {passwd}"]
    else:
        auth_port = 0
    tls = _make_tls(folder) if tls else None
    tls_port = None
    if tls:
        tls_port = free_tcp_port()
        lines += [f"listener {tls_port} 127.0.0.1", "allow_anonymous true", f"cafile {tls['ca']}",
                  f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
    (folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    return Broker(binary, folder, port, auth_port, tls_port, tls["ca"] if tls else None)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory) -> Broker:
    """One broker for the session (tests that stop a broker use ``mosquitto_factory``)."""
    broker = _make_broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()
    assert not broker.running


@pytest.fixture
def mosquitto_factory(tmp_path):
    brokers: list[Broker] = []

    def make() -> Broker:
        b = _make_broker(tmp_path / f"broker{len(brokers)}", tls=False)
        b.start()
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        b.stop()
        assert not b.running
