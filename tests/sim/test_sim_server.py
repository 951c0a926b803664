"""The simulator as a process over TCP: garbage on the wire, several clients with their own
stream rates, MAVLink 2 signing, the launcher's errors and the command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mav

from agridrone.errors import ConfigError, LinkError
from agridrone.sim.launcher import launch_builtin
from sim_harness import free_tcp_port


class Client:
    """A raw MAVLink 2 client over TCP (system 255, component 191)."""

    def __init__(self, url: str, key: bytes | None = None) -> None:
        _, host, port = url.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.settimeout(0.05)
        self.mav = mav.MAVLink(None, srcSystem=255, srcComponent=191)
        self.mav.robust_parsing = True
        if key is not None:
            self.mav.signing.secret_key = key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.link_id = 7
            self.mav.signing.timestamp = int((time.time() - 1420070400) * 100_000)
        self.got: list = []

    def send(self, msg) -> None:
        self.sock.sendall(msg.pack(self.mav))

    def raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def pump(self, wall_s: float) -> list:
        end = time.monotonic() + wall_s
        new = []
        while time.monotonic() < end:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise ConnectionError("simulator closed the connection")
            new += [m for m in (self.mav.parse_buffer(data) or []) if m.get_type() != "BAD_DATA"]
        self.got += new
        return new

    def wait(self, type_: str, wall_s: float = 5.0, cond=lambda m: True):
        end = time.monotonic() + wall_s
        while time.monotonic() < end:
            for m in self.pump(0.05):
                if m.get_type() == type_ and cond(m):
                    return m
        raise AssertionError(f"expected {type_} within {wall_s} s")

    def command(self, cmd: int, *params, wall_s: float = 3.0):
        p = list(params) + [0.0] * (7 - len(params))
        self.send(mav.MAVLink_command_long_message(1, 1, cmd, 0, *p))
        return self.wait("COMMAND_ACK", wall_s, lambda m: m.command == cmd)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sim():
    handle = launch_builtin(free_tcp_port(), speedup=10.0)
    yield handle
    handle.stop()
    handle.stop()  # idempotent
    assert not handle.running


def test_garbage_and_truncated_bytes_do_not_kill_the_simulator(sim):
    """Random bytes, a truncated frame, a frame with a bad CRC and a console line before a valid
    command: the simulator stays up and still answers the valid command on the same connection."""
    c = Client(sim.url)
    c.wait("HEARTBEAT")
    good = mav.MAVLink_command_long_message(1, 1, 511, 0, 33, 100000, 0, 0, 0, 0, 0).pack(
        mav.MAVLink(None, 255, 191))
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    c.raw(os.urandom(2000) + b"\xfd\x20\x00\x00" + good[:9] + bytes(bad_crc) + b"Init Gyro**\n")
    c.raw(b"\xfd\xff" + os.urandom(300))  # a header claiming a long payload, then noise
    c.pump(0.3)
    c.raw(good * 8)
    ack = c.wait("COMMAND_ACK", 5, lambda m: m.command == 511)
    assert ack.result == 0
    assert sim.running
    c.close()
    c2 = Client(sim.url)
    c2.raw(os.urandom(5000))
    c2.close()  # a client vanishing mid-frame
    c3 = Client(sim.url)
    assert c3.command(512, 148).result == 0
    assert sim.running
    sim.pause()  # a frozen vehicle sends nothing ...
    c3.pump(0.2)
    c3.got.clear()
    c3.pump(0.5)
    assert c3.got == []
    sim.resume()  # ... and answers again after
    assert c3.command(512, 148).result == 0
    c3.close()


def test_two_clients_have_their_own_stream_rates(sim):
    """Each TCP client is a channel: SET_MESSAGE_INTERVAL on one does not change the other, the ACK
    goes to the asker only, and both see HEARTBEAT and STATUSTEXT."""
    a, b = Client(sim.url), Client(sim.url)
    a.wait("HEARTBEAT")
    b.wait("HEARTBEAT")
    assert a.command(511, 33, 100000).result == 0
    a.got.clear()
    b.got.clear()
    a.pump(1.0)
    b.pump(1.0)
    a_types = [m.get_type() for m in a.got]
    b_types = [m.get_type() for m in b.got]
    assert 80 <= _median_interval_ms(a.got, "GLOBAL_POSITION_INT") <= 120  # 10 Hz, simulated time
    assert "GLOBAL_POSITION_INT" not in b_types and "COMMAND_ACK" not in b_types
    assert "HEARTBEAT" in a_types and "HEARTBEAT" in b_types
    b.send(mav.MAVLink_request_data_stream_message(1, 1, 10, 4, 1))  # legacy EXTRA1 (ATTITUDE) at 4 Hz
    b.got.clear()
    b.pump(1.0)
    assert 240 <= _median_interval_ms(b.got, "ATTITUDE") <= 260
    a.close()
    b.close()


def _median_interval_ms(msgs, type_: str) -> int:
    stamps = [m.time_boot_ms for m in msgs if m.get_type() == type_]
    assert len(stamps) >= 5, f"expected a stream of {type_}, got {len(stamps)} messages"
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    return gaps[len(gaps) // 2]


def _key_file(tmp_path, key: bytes, as_hex: bool) -> str:
    path = tmp_path / ("key.hex" if as_hex else "key.bin")
    path.write_bytes(key.hex().encode() + b"\n" if as_hex else key)
    return str(path)


def test_signing_accepts_right_key_rejects_unsigned_and_wrong_key(tmp_path):
    """With --signing-key the simulator signs what it sends and ignores unsigned or wrongly signed
    commands; the right key gets answers."""
    key = bytes(range(32))
    handle = launch_builtin(free_tcp_port(), speedup=10.0, signing_key_path=_key_file(tmp_path, key, True))
    try:
        good = Client(handle.url, key)
        hb = good.wait("HEARTBEAT")
        assert hb.get_signed() and good.mav.signing.goodsig_count > 0
        assert good.command(512, 148).result == 0
        unsigned = Client(handle.url)
        unsigned.send(mav.MAVLink_command_long_message(1, 1, 512, 0, 148, 0, 0, 0, 0, 0, 0))
        wrong = Client(handle.url, bytes(32 * [7]))
        wrong.send(mav.MAVLink_command_long_message(1, 1, 512, 0, 148, 0, 0, 0, 0, 0, 0))
        time.sleep(0.5)
        unsigned.mav.signing.secret_key = key  # so its parser can read the signed replies
        for c in (unsigned, wrong):
            c.pump(0.5)
        assert not [m for m in unsigned.got if m.get_type() == "COMMAND_ACK"]
        assert not [m for m in wrong.got if m.get_type() == "COMMAND_ACK"]
        assert handle.running
    finally:
        handle.stop()


def test_setup_signing_turns_signing_on_and_off(sim):
    """SETUP_SIGNING installs a key at run time (ArduPilot's way); all-zero disables signing again."""
    key = os.urandom(32)
    c = Client(sim.url)
    c.wait("HEARTBEAT")
    c.send(mav.MAVLink_setup_signing_message(1, 1, list(key), int((time.time() - 1420070400) * 100_000)))
    c.mav.signing.secret_key = key
    c.mav.signing.sign_outgoing = True
    c.mav.signing.link_id = 3
    c.mav.signing.timestamp = int((time.time() - 1420070400) * 100_000)
    hb = c.wait("HEARTBEAT", 5, lambda m: m.get_signed())
    assert hb.get_signed()
    assert c.command(512, 148).result == 0
    plain = Client(sim.url)
    plain.mav.signing.secret_key = key
    plain.mav.signing.sign_outgoing = False
    plain.send(mav.MAVLink_command_long_message(1, 1, 512, 0, 148, 0, 0, 0, 0, 0, 0))
    plain.pump(0.5)
    assert not [m for m in plain.got if m.get_type() == "COMMAND_ACK"]
    c.send(mav.MAVLink_setup_signing_message(1, 1, [0] * 32, 0))
    c.pump(0.3)
    c.mav.signing.sign_outgoing = False
    c.mav.signing.secret_key = None
    ack = c.command(512, 148)
    assert ack.result == 0 and not ack.get_signed()
    c.close()
    plain.close()


def test_launcher_reports_a_simulator_that_cannot_listen():
    """A port already in use: the process exits, and launch_builtin raises LinkError with its stderr."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(LinkError, match="cannot listen"):
            launch_builtin(port, speedup=10.0, startup_timeout_s=10)
    with pytest.raises(ConfigError, match="expected options"):
        launch_builtin(free_tcp_port(), no_such_option=1)


@pytest.mark.parametrize("argv, expected", [
    (["--listen", "serial:/dev/x"], "expected tcp:HOST:PORT"),
    (["--home", "-35.3,149.1"], "--home: expected 3"),
    (["--wind=a,b"], "--wind: expected 2"),
    (["--boot-s", "1"], "boot_s: expected at least"),
])
def test_command_line_rejects_bad_options_in_one_line(argv, expected):
    """Bad options give one line saying what was expected and a non-zero exit, never a traceback."""
    proc = subprocess.run([sys.executable, "-m", "agridrone", "sim", *argv], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_autopilot_fixture_starts_and_stops_the_builtin_simulator(autopilot):
    """The shared ``autopilot`` fixture (tests/conftest.py) gets a running simulator from
    launch_builtin: its URL answers MAVLink as system 1 component 1 (the fixture checks the stop)."""
    if autopilot.kind != "builtin":
        pytest.skip("this checks the built-in simulator's launcher")
    c = Client(autopilot.url)
    hb = c.wait("HEARTBEAT", autopilot.wall_s(2))
    assert (hb.get_srcSystem(), hb.get_srcComponent(), hb.type, hb.autopilot) == (1, 1, 2, 3)
    assert autopilot.handle.running
    c.close()
