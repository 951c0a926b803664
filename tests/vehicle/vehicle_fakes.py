"""Test peers over real local sockets: a scripted fake autopilot and a TCP proxy that can cut a link.

``FakeAutopilot`` listens on 127.0.0.1, accepts one client, writes canned MAVLink 2 bytes
(encoded with pymavlink as system 1 component 1: a HEARTBEAT every ``heartbeat_period_s``, plus
whatever the test's ``on_message(peer, msg)`` answers), and records what it receives.

``TcpProxy`` forwards between a client and an upstream TCP server; ``cut()`` drops everything
both ways (the sockets stay open, as when a radio link fades), ``restore()`` resumes.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink


class _Out:
    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data


class FakeAutopilot:
    def __init__(self, *, on_message: Callable | None = None, heartbeat: bool = True,
                 heartbeat_period_s: float = 0.2, preamble: bytes = b"", custom_mode: int = 0,
                 signing_key: bytes | None = None, verify_key: bytes | None = None, close_at_once: bool = False,
                 raw_stream: bytes | None = None, port: int = 0) -> None:
        self.on_message = on_message
        self.heartbeat = heartbeat
        self.heartbeat_period_s = heartbeat_period_s
        self.preamble = preamble
        self.custom_mode = custom_mode
        self.base_mode = mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        self.close_at_once = close_at_once
        self.raw_stream = raw_stream
        self.received: list = []
        self.rejected = 0
        self._out = _Out()
        self.mav = mavlink.MAVLink(self._out, srcSystem=1, srcComponent=1)
        self._parser = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
        self._parser.robust_parsing = True
        if signing_key is not None:
            self.mav.signing.secret_key = signing_key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.timestamp = int((time.time() - 1420070400) * 100_000)
        if verify_key is not None:
            self._parser.signing.secret_key = verify_key
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port))
        self._server.listen(1)
        self.port = self._server.getsockname()[1]
        self.url = f"tcp:127.0.0.1:{self.port}"
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-autopilot", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ used by tests / handlers
    def send(self, msg) -> None:
        with self._lock:
            self._out.buf.clear()
            self.mav.send(msg)
            data = bytes(self._out.buf)
        self.send_raw(data)

    def encode(self, msg) -> bytes:
        with self._lock:
            self._out.buf.clear()
            self.mav.send(msg)
            return bytes(self._out.buf)

    def send_raw(self, data: bytes) -> None:
        conn = self._conn
        if conn is not None:
            try:
                conn.sendall(data)
            except OSError:
                pass

    def send_heartbeat(self) -> None:
        self.send(self.mav.heartbeat_encode(mavlink.MAV_TYPE_QUADROTOR, mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA,
                                            self.base_mode, self.custom_mode, mavlink.MAV_STATE_STANDBY))

    def ack(self, command: int, result: int) -> None:
        self.send(self.mav.command_ack_encode(command, result, 0, 0, 1, 191))

    def text(self, text: str, severity: int = 2) -> None:
        self.send(self.mav.statustext_encode(severity, text.encode(), 0, 0))

    def of_type(self, mtype: str) -> list:
        return [m for m in list(self.received) if m.get_type() == mtype]

    def wait_received(self, mtype: str, count: int = 1, timeout_s: float = 3.0) -> list:
        """The messages of this type received so far, once there are ``count`` of them (or the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        while len(self.of_type(mtype)) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.of_type(mtype)

    def stop(self) -> None:
        # the listening socket goes first, as when the autopilot's process dies: closing the connection while
        # it still listened let the link's reconnect land in its backlog (a connect that then resets), so
        # a test counted two reconnects for one restart
        self._stop.set()
        try:
            self._server.close()
        except OSError:
            pass
        self._thread.join(timeout=3)
        for s in (self._conn, self._server):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass

    def __enter__(self) -> "FakeAutopilot":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ the peer's thread
    def _run(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
                break
            except socket.timeout:
                continue
            except OSError:  # stop() closed the listening socket
                return
        else:
            return
        if self.close_at_once:
            conn.close()
            return
        self._conn = conn
        if self.preamble:
            self.send_raw(self.preamble)
        next_hb = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if self.raw_stream is not None:
                self.send_raw(self.raw_stream)
            elif self.heartbeat and now >= next_hb:
                self.send_heartbeat()
                next_hb = now + self.heartbeat_period_s
            try:
                ready, _, _ = select.select([conn], [], [], 0.02)
                data = conn.recv(4096) if ready else b""
            except OSError:
                return
            if ready and not data:
                return
            for msg in self._parser.parse_buffer(data) or []:
                if msg.get_type() == "BAD_DATA":
                    self.rejected += 1
                    continue
                self.received.append(msg)
                if self.on_message is not None:
                    self.on_message(self, msg)


class TcpProxy:
    """127.0.0.1:<port> -> upstream; ``cut()`` / ``restore()`` the traffic both ways."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.port = self._server.getsockname()[1]
        self.url = f"tcp:127.0.0.1:{self.port}"
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        self._cut.clear()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        for s in self._sockets + [self._server]:
            try:
                s.close()
            except OSError:
                pass

    def _run(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
                break
            except socket.timeout:
                continue
        else:
            return
        upstream = socket.create_connection(self._upstream, timeout=5)
        self._sockets += [client, upstream]
        peers = {client: upstream, upstream: client}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if not self._cut.is_set():
                        peers[s].sendall(data)
            except OSError:
                return
