"""Sockets and the real-time loop: a TCP (or UDP) server where every client is a MAVLink channel
with its own stream rates, and the pacing of simulated time at ``speedup`` times wall time.

Single-threaded: ``select`` waits for bytes until the next physics step is due; every timer lives
in simulated time. Garbage, truncated or wrongly signed bytes are dropped by the parser and
counted; a client that misbehaves is closed, never the simulator.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from dataclasses import dataclass

from pymavlink.dialects.v20 import ardupilotmega as mav

from agridrone.clock import MonotonicClock
from agridrone.errors import ConfigError, LinkError
from agridrone.sim.autopilot import Autopilot
from agridrone.sim.commands import MessageHandler
from agridrone.sim.streams import StreamSchedule

MAX_OUT_BYTES = 4 * 1024 * 1024
RADIO_STATUS_ID = 109
SIGNING_EPOCH_UNIX_S = 1420070400  # MAVLink signing timestamps count 10 us units from 2015-01-01


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "tcp" or "udp"
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Endpoint":
        parts = text.split(":")
        if len(parts) != 3 or parts[0] not in ("tcp", "udp", "udpin") or not parts[2].isdigit():
            raise ConfigError(f"--listen: expected tcp:HOST:PORT, udpin:HOST:PORT or udp:HOST:PORT, got {text!r}")
        port = int(parts[2])
        if not 0 <= port <= 65535:
            raise ConfigError(f"--listen: expected a port 0..65535, got {port}")
        return cls("tcp" if parts[0] == "tcp" else "udp", parts[1] or "0.0.0.0", port)


def load_signing_key(path: str) -> bytes:
    """32 raw bytes, or 64 hex digits (whitespace ignored)."""
    try:
        data = open(path, "rb").read()
    except OSError as err:
        raise ConfigError(f"--signing-key: cannot read {path}: {err.strerror}") from None
    if len(data) == 32:
        return data
    text = data.decode("ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"--signing-key: expected 32 raw bytes or 64 hex digits in {path}, got {len(data)} bytes")
    return key


class _Sink:
    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data


class Channel:
    """One client: its parser/encoder (sequence numbers, signing) and its stream schedule."""

    def __init__(self, server: "SimServer", sock: socket.socket | None, addr, link_id: int) -> None:
        self.server, self.sock, self.addr = server, sock, addr
        self.out = _Sink()
        self.mav = mav.MAVLink(self.out, srcSystem=1, srcComponent=1)
        self.link_id = link_id
        self.schedule = StreamSchedule(server.ap.now_s)
        self.rejected = 0  # wrongly signed or unsigned messages dropped
        self.garbage_bytes = 0
        self.inbuf = bytearray()
        self.closed = False
        self.apply_signing(server.signing_key)

    def apply_signing(self, key: bytes | None) -> None:
        s = self.mav.signing
        if key is None:
            s.secret_key, s.sign_outgoing, s.allow_unsigned_callback = None, False, None
            return
        s.secret_key = key
        s.sign_outgoing = True
        s.link_id = self.link_id & 0xFF
        s.timestamp = max(s.timestamp, int((time.time() - SIGNING_EPOCH_UNIX_S) * 100_000))
        s.allow_unsigned_callback = lambda _mav, msg_id: msg_id == RADIO_STATUS_ID

    def send(self, msg) -> None:
        if self.closed:
            return
        try:
            self.mav.send(msg)
        except Exception as err:  # noqa: BLE001 - a bad field must not stop the simulator
            self.server.log(f"could not encode {msg.get_type()}: {err}")
        if len(self.out.buf) > MAX_OUT_BYTES:
            self.server.log(f"client {self.addr} is not reading; closing it")
            self.server.close_channel(self)

    def feed(self, data: bytes, handler: MessageHandler) -> None:
        self.inbuf += data
        for msg in self._frames():
            self.server.started = True
            try:
                handler.handle(self, msg)
            except Exception as err:  # noqa: BLE001
                self.server.log(f"error handling {msg.get_type()}: {type(err).__name__}: {err}")

    def _frames(self):
        """Cut MAVLink 1/2 frames out of the byte stream. Unlike a plain parser, a frame that fails
        its CRC or signature only costs its first byte, so valid frames hidden behind a garbage
        header are still found (resynchronisation at the next start marker)."""
        buf = self.inbuf
        while buf:
            found = [i for i in (buf.find(b"\xfd"), buf.find(b"\xfe")) if i >= 0]
            start = min(found) if found else None
            if start is None:
                self.garbage_bytes += len(buf)
                buf.clear()
                return
            if start:
                self.garbage_bytes += start
                del buf[:start]
            if len(buf) < 3:
                return
            if buf[0] == 0xFD:
                need = 12 + buf[1] + (13 if buf[2] & 0x01 else 0)
            else:
                need = 8 + buf[1]
            if len(buf) < need:
                return
            try:
                if buf[0] == 0xFD and buf[2] & ~0x01:
                    raise ValueError("unknown incompat flags")
                msg = self.mav.decode(bytearray(buf[:need]))
            except Exception as err:  # noqa: BLE001 - bad CRC, bad signature, unknown id, truncated
                if "signature" in str(err).lower():
                    self.rejected += 1
                self.garbage_bytes += 1
                del buf[:1]
                continue
            del buf[:need]
            yield msg


class SimServer:
    """Owns the listening socket, the channels and the loop."""

    def __init__(self, ap: Autopilot, endpoint: Endpoint, speedup: float = 1.0, *, signing_key: bytes | None = None,
                 clock=None, log_stream=None, wait_client: bool = False) -> None:
        if not speedup > 0:
            raise ConfigError(f"--speedup: expected a positive number, got {speedup}")
        self.ap, self.endpoint, self.speedup = ap, endpoint, float(speedup)
        self.clock = clock or MonotonicClock()
        self.signing_key = signing_key
        self.log_stream = log_stream if log_stream is not None else sys.stderr
        self.handler = MessageHandler(ap)
        self.channels: list[Channel] = []
        self.udp_peers: dict = {}
        self._next_link_id = 0
        self._stop = False
        self.started = not wait_client  # with wait_client, time starts at the first MAVLink message
        ap.signing_callback = self.set_signing_key
        self.sock = self._listen()

    def log(self, text: str) -> None:
        try:
            print(f"agridrone sim: {text}", file=self.log_stream, flush=True)
        except Exception:  # noqa: BLE001
            pass

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{'tcp' if self.endpoint.kind == 'tcp' else 'udpin'}:{host}:{port}"

    def _listen(self) -> socket.socket:
        ep = self.endpoint
        try:
            if ep.kind == "tcp":
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((ep.host, ep.port))
                s.listen(8)
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((ep.host, ep.port))
        except OSError as err:
            raise LinkError(f"cannot listen on {ep.kind}:{ep.host}:{ep.port}: {err.strerror or err}") from None
        s.setblocking(False)
        return s

    def set_signing_key(self, key: bytes | None) -> None:
        self.signing_key = key
        for ch in self.channels:
            ch.apply_signing(key)
        self.log("signing " + ("enabled" if key else "disabled") + " by SETUP_SIGNING")

    def _new_channel(self, sock, addr) -> Channel:
        ch = Channel(self, sock, addr, self._next_link_id)
        self._next_link_id += 1
        self.channels.append(ch)
        self.ap.channels.append(ch)
        return ch

    def close_channel(self, ch: Channel) -> None:
        if ch.closed:
            return
        ch.closed = True
        if ch.rejected:
            self.log(f"client {ch.addr}: {ch.rejected} messages dropped for a missing or wrong signature")
        if ch in self.channels:
            self.channels.remove(ch)
        if ch in self.ap.channels:
            self.ap.channels.remove(ch)
        if ch.sock is not None:
            try:
                ch.sock.close()
            except OSError:
                pass
        else:
            self.udp_peers.pop(ch.addr, None)

    def stop(self) -> None:
        self._stop = True

    # ------------------------------------------------------------------ I/O
    def _read(self, readable) -> None:
        for s in readable:
            if s is self.sock and self.endpoint.kind == "tcp":
                try:
                    conn, addr = self.sock.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._new_channel(conn, addr)
            elif s is self.sock:
                while True:
                    try:
                        data, addr = self.sock.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    ch = self.udp_peers.get(addr) or self.udp_peers.setdefault(addr, self._new_channel(None, addr))
                    ch.feed(data, self.handler)
            else:
                ch = next((c for c in self.channels if c.sock is s), None)
                if ch is None:
                    continue
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.close_channel(ch)
                    continue
                ch.feed(data, self.handler)

    def _write(self) -> None:
        for ch in list(self.channels):
            if not ch.out.buf:
                continue
            try:
                if ch.sock is not None:
                    n = ch.sock.send(ch.out.buf)
                else:
                    self.sock.sendto(bytes(ch.out.buf), ch.addr)
                    n = len(ch.out.buf)
                del ch.out.buf[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close_channel(ch)

    # ------------------------------------------------------------------ the loop
    def serve(self, duration_s: float | None = None) -> None:
        """Run until ``stop()`` (or for ``duration_s`` simulated seconds)."""
        ap = self.ap
        base_wall_ns = self.clock.monotonic_ns()
        base_sim_s = ap.now_s
        while not self._stop and (duration_s is None or ap.now_s < duration_s):
            if not self.started:
                base_wall_ns = self.clock.monotonic_ns()
            target_s = base_sim_s + (self.clock.monotonic_ns() - base_wall_ns) / 1e9 * self.speedup
            steps = 0
            while ap.now_s + ap.dt_s <= target_s and steps < 4:  # small batches keep replies prompt
                try:
                    ap.step()
                except Exception as err:  # noqa: BLE001 - log a bug, keep the vehicle alive
                    self.log(f"error in the physics step at {ap.now_s:.2f} s: {type(err).__name__}: {err}")
                steps += 1
            if target_s - ap.now_s > max(0.25 * self.speedup, 1.0):
                # can't keep up: let simulated time run slower rather than burst to catch up
                base_wall_ns, base_sim_s = self.clock.monotonic_ns(), ap.now_s
            self._write()
            wait_s = max(0.0, (ap.now_s + ap.dt_s - target_s) / self.speedup)
            rlist = [self.sock] + [c.sock for c in self.channels if c.sock is not None]
            wlist = [c.sock for c in self.channels if c.sock is not None and c.out.buf]
            try:
                readable, writable, _ = select.select(rlist, wlist, [], min(wait_s, 0.05))
            except (OSError, ValueError):
                readable = []
                for ch in list(self.channels):
                    if ch.sock is not None and ch.sock.fileno() < 0:
                        self.close_channel(ch)
            self._read(readable)
            self._write()

    def close(self) -> None:
        for ch in list(self.channels):
            self._write()
            self.close_channel(ch)
        try:
            self.sock.close()
        except OSError:
            pass
