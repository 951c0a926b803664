"""The MAVLink 2 link: URL parsing, the transport, the reader thread and our own HEARTBEAT.

MAVLink 2 is chosen explicitly by using pymavlink's generated ``dialects.v20.ardupilotmega`` module
directly, for both parsing and sending. ``mavutil.mavlink_connection`` is not used: it picks the
protocol through the process-wide ``MAVLINK20`` environment variable (and rewrites it when it sees a
MAVLink 2 packet), its TCP connect has no timeout and prints to stdout while retrying, and it needs
pyserial for serial ports. The transports here are small: TCP (with a connect timeout, and
reconnection once the autopilot was found), UDP listen / send, and serial through termios.

One reader thread owns the socket: it parses, skips bytes that are not MAVLink (counting them),
drops unsigned or wrongly signed messages when signing is on (counting them), learns the
autopilot's system and component ids from the first HEARTBEAT whose ``autopilot`` is not
MAV_AUTOPILOT_INVALID, and hands every message from that autopilot to the handlers and
subscriptions. A second thread sends our HEARTBEAT at 1 Hz (MAV_TYPE_ONBOARD_CONTROLLER, component
191) and runs the periodic checks (link health).

System id: by default this companion uses system id 1 with component 191
(MAV_COMP_ID_ONBOARD_COMPUTER), the MAVLink convention for a component that sits on the same
vehicle as the autopilot. It deliberately does not use 255: that is ArduPilot's MAV_GCS_SYSID, and
HEARTBEATs from the companion under that id would count as ground-station heartbeats and keep the
GCS failsafe from ever triggering. Pass ``source_system`` to choose another.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.clock import Clock, MonotonicClock
from agridrone.errors import LinkError, WaitTimeout
from agridrone.vehicle.signing import Signing, is_signed_packet

COMPANION_COMPONENT_ID = mavlink.MAV_COMP_ID_ONBOARD_COMPUTER  # 191
DEFAULT_SOURCE_SYSTEM = 1
URL_FORMS = "tcp:HOST:PORT, udp:HOST:PORT (listen), udpin:HOST:PORT, udpout:HOST:PORT or serial:DEVICE:BAUD"
_READ_CHUNK = 4096
_log = logging.getLogger(__name__)
_POLL_S = 0.05


@dataclass(frozen=True)
class Endpoint:
    """A parsed link URL."""

    scheme: str  # "tcp", "udpin", "udpout" or "serial"
    host: str = ""
    port: int = 0
    device: str = ""
    baud: int = 0

    def __str__(self) -> str:
        if self.scheme == "serial":
            return f"serial:{self.device}:{self.baud}"
        return f"{self.scheme}:{self.host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """``tcp:HOST:PORT``, ``udp:``/``udpin:HOST:PORT`` (listen), ``udpout:HOST:PORT``, ``serial:DEV:BAUD``."""
    if not isinstance(url, str) or ":" not in url:
        raise LinkError(f"link URL: expected {URL_FORMS}, got {url!r}")
    scheme, rest = url.split(":", 1)
    scheme = scheme.strip().lower()
    if scheme in ("tcp", "udp", "udpin", "udpout"):
        host, sep, port_text = rest.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise LinkError(f"link URL: expected {scheme}:HOST:PORT with a port 1..65535, got {url!r}")
        return Endpoint("udpin" if scheme == "udp" else scheme, host=host, port=int(port_text))
    if scheme == "serial":
        device, sep, baud_text = rest.rpartition(":")
        if not sep or not device or not baud_text.isdigit() or int(baud_text) <= 0:
            raise LinkError(f"link URL: expected serial:DEVICE:BAUD (e.g. serial:/dev/ttyAMA0:921600), got {url!r}")
        return Endpoint("serial", device=device, baud=int(baud_text))
    raise LinkError(f"link URL: expected {URL_FORMS}, got {url!r}")


class ConnectionClosed(Exception):
    """The transport ended (peer closed, reset, device gone)."""


# --------------------------------------------------------------------------------------------- transports
class _TcpTransport:
    def __init__(self, ep: Endpoint, timeout_s: float) -> None:
        self.ep = ep
        self._sock = self._connect(timeout_s)

    def _connect(self, timeout_s: float) -> socket.socket:
        where = f"a MAVLink peer listening at {self.ep}"
        try:
            sock = socket.create_connection((self.ep.host, self.ep.port), timeout=max(0.05, timeout_s))
        except ConnectionRefusedError:
            raise LinkError(f"expected {where}, got connection refused (nothing listens on port {self.ep.port})") from None
        except socket.gaierror as err:
            raise LinkError(f"expected a resolvable host in {self.ep}, got {self.ep.host!r} ({err.strerror})") from None
        except (socket.timeout, TimeoutError):
            raise LinkError(f"expected {where}, got no answer within {timeout_s:g} s (host unreachable?)") from None
        except OSError as err:
            raise LinkError(f"expected {where}, got {err.strerror or err}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(2.0)  # bounds sendall() on a stalled peer; reads go through select()
        return sock

    def reconnect(self, timeout_s: float) -> None:
        self.close()
        self._sock = self._connect(timeout_s)

    def read(self, timeout_s: float) -> bytes:
        try:
            ready, _, _ = select.select([self._sock], [], [], timeout_s)
            if not ready:
                return b""
            data = self._sock.recv(_READ_CHUNK)
        except (ConnectionResetError, BrokenPipeError) as err:
            raise ConnectionClosed("the connection reset by the peer") from None
        except (OSError, ValueError) as err:  # closed socket
            raise ConnectionClosed(str(err)) from None
        if not data:
            raise ConnectionClosed("the connection closed by the peer")
        return data

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except (OSError, ValueError) as err:
            raise LinkError(f"cannot send to {self.ep}: {getattr(err, 'strerror', None) or err}") from None

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class _UdpTransport:
    """``udpin``: listen and answer the last sender. ``udpout``: send to a fixed address."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self._peer: tuple | None = None
        try:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if ep.scheme == "udpin":
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._sock.bind((ep.host, ep.port))
            else:
                self._peer = socket.getaddrinfo(ep.host, ep.port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
        except socket.gaierror as err:
            raise LinkError(f"expected a resolvable host in {ep}, got {ep.host!r} ({err.strerror})") from None
        except OSError as err:
            raise LinkError(f"expected to open {ep}, got {err.strerror or err}") from None

    def reconnect(self, timeout_s: float) -> None:  # datagrams have no connection to re-open
        return None

    def read(self, timeout_s: float) -> bytes:
        try:
            ready, _, _ = select.select([self._sock], [], [], timeout_s)
            if not ready:
                return b""
            data, addr = self._sock.recvfrom(65535)
        except ConnectionRefusedError:  # ICMP port unreachable from an earlier send
            return b""
        except (OSError, ValueError) as err:
            raise ConnectionClosed(str(err)) from None
        if self.ep.scheme == "udpin":
            self._peer = addr
        return data

    def write(self, data: bytes) -> None:
        if self._peer is None:  # udpin before anyone spoke to us: nobody to answer yet
            return
        try:
            self._sock.sendto(data, self._peer)
        except ConnectionRefusedError:
            pass
        except (OSError, ValueError) as err:
            raise LinkError(f"cannot send to {self.ep}: {getattr(err, 'strerror', None) or err}") from None

    def close(self) -> None:
        self._sock.close()


class _SerialTransport:
    def __init__(self, ep: Endpoint) -> None:
        import termios
        import tty

        self.ep = ep
        speed = getattr(termios, f"B{ep.baud}", None)
        if speed is None:
            raise LinkError(f"serial baud rate: expected one termios supports (e.g. 57600, 115200, 921600), got {ep.baud}")
        try:
            self._fd = os.open(ep.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as err:
            raise LinkError(f"expected a serial device at {ep.device}, got {err.strerror}") from None
        try:
            tty.setraw(self._fd)
            attrs = termios.tcgetattr(self._fd)
            attrs[4] = attrs[5] = speed
            termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
        except termios.error as err:
            os.close(self._fd)
            raise LinkError(f"expected a serial port at {ep.device}, got {err}") from None

    def reconnect(self, timeout_s: float) -> None:
        return None

    def read(self, timeout_s: float) -> bytes:
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout_s)
            return os.read(self._fd, _READ_CHUNK) if ready else b""
        except BlockingIOError:
            return b""
        except OSError as err:
            raise ConnectionClosed(err.strerror or str(err)) from None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                select.select([], [self._fd], [], 0.1)
                continue
            except OSError as err:
                raise LinkError(f"cannot write to {self.ep.device}: {err.strerror}") from None
            view = view[n:]

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass


def open_transport(ep: Endpoint, timeout_s: float):
    if ep.scheme == "tcp":
        return _TcpTransport(ep, timeout_s)
    if ep.scheme in ("udpin", "udpout"):
        return _UdpTransport(ep)
    return _SerialTransport(ep)


# --------------------------------------------------------------------------------------------- the link
@dataclass(frozen=True)
class LinkStats:
    """Counters of what came over the wire."""

    bytes_received: int
    packets_received: int
    bad_data: int          # runs of bytes that were not MAVLink, or packets with a bad CRC / length
    bad_bytes: int
    unsigned_dropped: int  # signing on: unsigned messages dropped
    badsig_dropped: int    # signing on: messages signed with another key (or replayed) dropped
    reconnects: int
    handler_errors: int
    first_bad_bytes: bytes = b""


class Subscription:
    """Messages from the autopilot that match a predicate, queued as ``(msg, receive_ts_ns)``."""

    def __init__(self, link: "Link", predicate: Callable[[Any], bool]) -> None:
        self._link = link
        self.predicate = predicate
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def put(self, item) -> None:
        self._queue.put(item)

    def get(self, timeout_s: float):
        """The next matching ``(msg, ts_ns)``; raises ``queue.Empty`` after ``timeout_s``.

        Also raises the link's LinkError at once if the link closed for good.
        """
        deadline = self._link.clock.monotonic_ns() + int(max(0.0, timeout_s) * 1e9)
        while True:
            self._link.raise_if_closed()
            remaining = (deadline - self._link.clock.monotonic_ns()) / 1e9
            try:
                return self._queue.get(timeout=max(0.0, min(remaining, 0.1)))
            except queue.Empty:
                if remaining <= 0:
                    raise

    def close(self) -> None:
        self._link.unsubscribe(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Writer:
    """The file object pymavlink's sender writes packed bytes to."""

    def __init__(self, link: "Link") -> None:
        self._link = link

    def write(self, data: bytes) -> None:
        self._link.write_bytes(data)


class Link:
    """One MAVLink 2 connection to one autopilot. Create with ``Link.open``; always ``close()``."""

    def __init__(self, endpoint: Endpoint, transport, *, source_system: int = DEFAULT_SOURCE_SYSTEM,
                 source_component: int = COMPANION_COMPONENT_ID, signing: Signing | None = None,
                 clock: Clock | None = None, heartbeat_period_s: float = 1.0, reconnect: bool = True) -> None:
        if not isinstance(source_system, int) or not 1 <= source_system <= 255:
            transport.close()
            raise LinkError(f"source_system: expected 1..255, got {source_system!r}")
        self.endpoint = endpoint
        self.clock: Clock = clock or MonotonicClock()
        self.source_system = int(source_system)
        self.source_component = int(source_component)
        self.signing = signing
        self._transport = transport
        self._reconnect_enabled = reconnect
        self._heartbeat_period_ns = int(heartbeat_period_s * 1e9)
        self._sender = mavlink.MAVLink(_Writer(self), srcSystem=self.source_system, srcComponent=self.source_component)
        self._parser = self._new_parser()
        self._stamp = signing.configure_sender(self._sender) if signing else None
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._subs: list[Subscription] = []
        self._handlers: list[Callable[[Any, int], None]] = []
        self._tick_hooks: list[Callable[[int], None]] = []
        self._stop = threading.Event()
        self._closed_error: LinkError | None = None
        self._closed_reason = ""
        self._connected = True
        self.target_system: int | None = None
        self.target_component: int | None = None
        self.last_packet_ns: int | None = None
        self._counts = dict(bytes_received=0, packets_received=0, bad_data=0, bad_bytes=0, unsigned_dropped=0,
                            badsig_dropped=0, reconnects=0, handler_errors=0)
        self._first_bad = b""
        self._threads = [threading.Thread(target=self._read_loop, name=f"mavlink-reader {endpoint}", daemon=True),
                         threading.Thread(target=self._tick_loop, name=f"mavlink-heartbeat {endpoint}", daemon=True)]

    @classmethod
    def open(cls, url: str, *, timeout_s: float = 10.0, **kwargs) -> "Link":
        ep = parse_url(url)
        link = cls(ep, open_transport(ep, timeout_s), **kwargs)
        link.start()
        return link

    def _new_parser(self):
        parser = mavlink.MAVLink(None, srcSystem=self.source_system, srcComponent=self.source_component)
        parser.robust_parsing = True
        if self.signing is not None:
            self.signing.configure_parser(parser)
        return parser

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for t in self._threads:
            t.start()

    def close(self) -> None:
        """Stop both threads and close the transport (idempotent)."""
        self._stop.set()
        for t in self._threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout=3.0)
        self._transport.close()
        with self._cond:
            if self._closed_error is None:
                self._closed_error = LinkError(f"link {self.endpoint} was closed")
            self._cond.notify_all()

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def raise_if_closed(self) -> None:
        if self._closed_error is not None:
            raise self._closed_error

    # ------------------------------------------------------------------ sending
    @property
    def mav(self):
        """The pymavlink MAVLink 2 object, for its ``*_encode`` helpers (send with ``send``)."""
        return self._sender

    def send(self, msg) -> None:
        """Pack (and sign, when signing is on) and write one message; LinkError if it cannot be sent."""
        self.raise_if_closed()
        with self._send_lock:
            if self._stamp is not None:
                self._stamp.stamp(self._sender)
            self._sender.send(msg)

    def write_bytes(self, data: bytes) -> None:
        if not self._connected:
            raise LinkError(f"cannot send to {self.endpoint}: the connection is down (reconnecting)")
        self._transport.write(data)

    def send_heartbeat(self) -> None:
        self.send(self._sender.heartbeat_encode(mavlink.MAV_TYPE_ONBOARD_CONTROLLER, mavlink.MAV_AUTOPILOT_INVALID,
                                                0, 0, mavlink.MAV_STATE_ACTIVE))

    # ------------------------------------------------------------------ receiving
    def add_handler(self, handler: Callable[[Any, int], None]) -> None:
        """``handler(msg, ts_ns)`` runs on the reader thread for every message from the autopilot."""
        self._handlers.append(handler)

    def remove_handler(self, handler: Callable[[Any, int], None]) -> None:
        """Stop calling ``handler`` (no error if it was not added)."""
        if handler in self._handlers:
            self._handlers.remove(handler)

    def add_tick_hook(self, hook: Callable[[int], None]) -> None:
        """``hook(now_ns)`` runs about every 50 ms on the heartbeat thread."""
        self._tick_hooks.append(hook)

    def subscribe(self, predicate: Callable[[Any], bool]) -> Subscription:
        sub = Subscription(self, predicate)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def stats(self) -> LinkStats:
        with self._lock:
            return LinkStats(**self._counts, first_bad_bytes=self._first_bad)

    def wait_autopilot(self, timeout_s: float) -> tuple[int, int]:
        """Block until the first autopilot HEARTBEAT; its (system, component) ids."""
        deadline = self.clock.monotonic_ns() + int(timeout_s * 1e9)
        with self._cond:
            while self.target_system is None:
                if self._closed_error is not None:
                    break
                remaining = (deadline - self.clock.monotonic_ns()) / 1e9
                if remaining <= 0:
                    break
                self._cond.wait(timeout=min(remaining, 0.1))
            if self.target_system is not None:
                return self.target_system, self.target_component
        raise self._no_autopilot_error(timeout_s)

    def _no_autopilot_error(self, timeout_s: float) -> Exception:
        st = self.stats()
        expected = f"expected a HEARTBEAT from an autopilot at {self.endpoint} within {timeout_s:g} s"
        if st.packets_received == 0 and st.bad_bytes > 0:
            return LinkError(f"{expected}, got {st.bad_bytes} bytes that are not MAVLink "
                             f"(starting {st.first_bad_bytes[:24]!r})")
        if st.packets_received == 0 and (st.badsig_dropped or st.unsigned_dropped):
            return LinkError(f"{expected} signed with our key, got {st.badsig_dropped} messages signed with another key "
                             f"and {st.unsigned_dropped} unsigned (all dropped)")
        if self._closed_reason:
            return LinkError(f"{expected}, got {self._closed_reason}")
        if st.packets_received:
            return WaitTimeout(f"{expected}, got {st.packets_received} MAVLink messages but no autopilot HEARTBEAT",
                               origin="autopilot HEARTBEAT", timeout_s=timeout_s)
        return WaitTimeout(f"{expected}, got no data at all", origin="autopilot HEARTBEAT", timeout_s=timeout_s)

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._transport.read(_POLL_S)
            except ConnectionClosed as err:
                if self._stop.is_set():
                    return
                if not (self._reconnect_enabled and self.target_system is not None):
                    with self._cond:
                        self._closed_reason = str(err)
                        self._closed_error = LinkError(f"MAVLink link {self.endpoint}: expected it open, got {err}")
                        self._cond.notify_all()
                    return
                self._reconnect()
                continue
            if data:
                self._feed(data, self.clock.monotonic_ns())

    def _reconnect(self) -> None:
        """Keep trying to re-open the transport (TCP) until it works or the link is closed."""
        self._connected = False
        while not self._stop.is_set():
            try:
                self._transport.reconnect(1.0)
            except LinkError:
                self._stop.wait(0.5)
                continue
            self._parser = self._new_parser()
            with self._lock:
                self._counts["reconnects"] += 1
            self._connected = True
            return

    def _feed(self, data: bytes, ts_ns: int) -> None:
        with self._lock:
            self._counts["bytes_received"] += len(data)
        parser = self._parser
        msg = parser.parse_char(data)
        while msg is not None:
            mtype = msg.get_type()
            reason = str(getattr(msg, "reason", ""))
            if mtype.startswith("UNKNOWN") or (mtype == "BAD_DATA" and reason != "Bad prefix"
                                               and "signature" not in reason.lower()):
                # A frame that failed (CRC, length, flags) or that we cannot check (unknown id): its
                # start byte may have been noise, so scan again from the byte after it rather than
                # dropping the good packets it swallowed.
                self._rescan(parser, bytes(msg.data))
                if mtype == "BAD_DATA":
                    self._count_bad(bytes(msg.data[:1]), reason)
            elif mtype == "BAD_DATA":
                self._count_bad(bytes(msg.data), reason)
            else:
                self._dispatch(msg, ts_ns)
            msg = parser.parse_char(b"")

    @staticmethod
    def _rescan(parser, frame: bytes) -> None:
        rest = parser.buf[parser.buf_index:]
        parser.buf = bytearray(frame[1:]) + rest
        parser.buf_index = 0
        parser.expected_length = mavlink.HEADER_LEN_V1 + 2

    def _dispatch(self, msg, ts_ns: int) -> None:
        mtype = msg.get_type()
        with self._lock:
            self._counts["packets_received"] += 1
        src = (msg.get_srcSystem(), msg.get_srcComponent())
        if src == (self.source_system, self.source_component):
            return
        if self.target_system is None:
            if mtype == "HEARTBEAT" and msg.autopilot != mavlink.MAV_AUTOPILOT_INVALID:
                with self._cond:
                    self.target_system, self.target_component = src
                    self._cond.notify_all()
            else:
                return
        if src != (self.target_system, self.target_component):
            return
        self.last_packet_ns = ts_ns
        for handler in list(self._handlers):
            try:
                handler(msg, ts_ns)
            except Exception:  # noqa: BLE001 - a handler bug must not kill the reader thread
                _log.exception("handler %r failed on %s", handler, mtype)
                with self._lock:
                    self._counts["handler_errors"] += 1
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if sub.predicate(msg):
                sub.put((msg, ts_ns))

    def _count_bad(self, raw: bytes, reason: str) -> None:
        with self._lock:
            if "signature" in reason.lower():
                key = "badsig_dropped" if is_signed_packet(raw) else "unsigned_dropped"
                self._counts[key] += 1
                return
            self._counts["bad_data"] += 1
            self._counts["bad_bytes"] += len(raw)
            if len(self._first_bad) < 24:
                self._first_bad += raw[:24 - len(self._first_bad)]

    def _tick_loop(self) -> None:
        next_heartbeat_ns = self.clock.monotonic_ns()
        while not self._stop.is_set():
            now = self.clock.monotonic_ns()
            if now >= next_heartbeat_ns:
                try:
                    self.send_heartbeat()
                except LinkError:
                    pass  # link down: the health monitor reports it
                next_heartbeat_ns = max(next_heartbeat_ns + self._heartbeat_period_ns, now)
            for hook in list(self._tick_hooks):
                try:
                    hook(now)
                except Exception:  # noqa: BLE001 - a hook bug must not stop our HEARTBEAT
                    _log.exception("tick hook %r failed", hook)
                    with self._lock:
                        self._counts["handler_errors"] += 1
            self._stop.wait(_POLL_S)

