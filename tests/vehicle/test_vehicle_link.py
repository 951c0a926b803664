"""Unit tests of the link: URLs, bad peers, bad bytes, signing, link health, STATUSTEXT, cleanup.

Every test talks to a fake peer over a real local socket (tests/vehicle/vehicle_fakes.py).
"""

from __future__ import annotations

import socket
import time

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from agridrone.errors import LinkError, LinkLost, WaitTimeout
from agridrone.vehicle import Signing, connect, parse_url
from agridrone.vehicle.signing import read_key_file
from vehicle_fakes import FakeAutopilot


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("url, scheme, where", [
    ("tcp:127.0.0.1:5760", "tcp", ("127.0.0.1", 5760)),
    ("udp:0.0.0.0:14550", "udpin", ("0.0.0.0", 14550)),
    ("udpin:0.0.0.0:14550", "udpin", ("0.0.0.0", 14550)),
    ("udpout:10.0.0.2:14550", "udpout", ("10.0.0.2", 14550)),
    ("TCP:localhost:1", "tcp", ("localhost", 1)),
])
def test_parse_url_network(url, scheme, where):
    ep = parse_url(url)
    assert (ep.scheme, (ep.host, ep.port)) == (scheme, where)


def test_parse_url_serial():
    ep = parse_url("serial:/dev/ttyAMA0:921600")
    assert (ep.scheme, ep.device, ep.baud) == ("serial", "/dev/ttyAMA0", 921600)
    assert str(ep) == "serial:/dev/ttyAMA0:921600"


@pytest.mark.parametrize("url", ["", "localhost", "tcp:host", "tcp::5760", "tcp:host:0", "tcp:host:70000",
                                 "tcp:host:port", "http://x:1", "serial:/dev/ttyS0", "serial:/dev/ttyS0:fast", None])
def test_parse_url_rejects(url):
    with pytest.raises(LinkError) as err:
        parse_url(url)
    assert "expected" in str(err.value) and "got" in str(err.value)


def test_refused_port_is_a_link_error():
    port = closed_port()
    with pytest.raises(LinkError, match="connection refused"):
        connect(f"tcp:127.0.0.1:{port}", timeout_s=2)


def test_unknown_host_is_a_link_error():
    with pytest.raises(LinkError, match="resolvable host"):
        connect("tcp:no-such-host.invalid:5760", timeout_s=2)


def test_peer_that_is_not_mavlink():
    http = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    with FakeAutopilot(raw_stream=http) as peer:
        with pytest.raises(LinkError) as err:
            connect(peer.url, timeout_s=1.0)
    text = str(err.value)
    assert "not MAVLink" in text and "HTTP/1.1" in text and "expected a HEARTBEAT" in text


def test_silent_peer_times_out_naming_what_it_waited_for():
    with FakeAutopilot(heartbeat=False) as peer:
        with pytest.raises(WaitTimeout) as err:
            connect(peer.url, timeout_s=0.5)
    assert err.value.origin == "autopilot HEARTBEAT" and "no data at all" in str(err.value)


def test_peer_that_closes_at_once():
    with FakeAutopilot(close_at_once=True) as peer:
        with pytest.raises(LinkError, match="got the connection (closed|reset) by the peer"):
            connect(peer.url, timeout_s=2.0)


def test_garbage_and_truncated_bytes_are_skipped_and_counted():
    """Console text, a truncated packet and random bytes before/among valid messages: the link keeps working."""
    with FakeAutopilot(heartbeat=False, custom_mode=4) as peer:
        hb = peer.encode(peer.mav.heartbeat_encode(2, 3, 81, 4, 3))
        pos = peer.encode(peer.mav.global_position_int_encode(1000, -353632610, 1491652300, 584000, 0, 0, 0, 0, 0))
        garbage = b"Init Gyro**\n" + hb[:7] + bytes(range(0, 250, 7)) + b"\xfd\x09"
        with connect_when_ready(peer, garbage + hb + hb + garbage + hb + pos + hb) as v:
            st = v.wait_until(lambda s: s.pose is not None, 2.0, "a position")
            assert st.mode == "GUIDED" and st.pose.lat_deg == pytest.approx(-35.363261)
            stats = v.link_stats()
            assert stats.bad_data >= 2 and stats.bad_bytes >= len(b"Init Gyro**\n")
            assert stats.packets_received >= 2


class connect_when_ready:
    """Connect to a fake peer that writes ``payload`` once the client is there, then (optionally) heartbeats."""

    def __init__(self, peer: FakeAutopilot, payload: bytes, heartbeat_after: bool = True) -> None:
        self.peer, self.payload, self.heartbeat_after = peer, payload, heartbeat_after

    def __enter__(self):
        import threading

        def feed():
            deadline = time.monotonic() + 2
            while self.peer._conn is None and time.monotonic() < deadline:
                time.sleep(0.01)
            self.peer.send_raw(self.payload)
            self.peer.heartbeat = self.heartbeat_after

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        self.vehicle = connect(self.peer.url, timeout_s=3)
        t.join()
        return self.vehicle

    def __exit__(self, *exc):
        self.vehicle.close()


def test_learns_autopilot_ids_and_sends_its_own_heartbeat():
    camera = mavlink.MAVLink(None, srcSystem=1, srcComponent=100)
    camera_hb = camera.heartbeat_encode(mavlink.MAV_TYPE_CAMERA, mavlink.MAV_AUTOPILOT_INVALID, 0, 0, 4).pack(camera)
    # A camera's HEARTBEAT (autopilot INVALID) comes first: it must not be taken for the autopilot.
    with FakeAutopilot(custom_mode=4, preamble=camera_hb * 3) as peer:
        with connect(peer.url, timeout_s=2) as v:
            assert (v.target_system, v.target_component) == (1, 1)
            assert v.state.mode == "GUIDED" and v.state.link_ok
            hb = peer.wait_received("HEARTBEAT")[0]
            assert (hb.type, hb.autopilot) == (mavlink.MAV_TYPE_ONBOARD_CONTROLLER, mavlink.MAV_AUTOPILOT_INVALID)
            assert (hb.get_srcSystem(), hb.get_srcComponent()) == (1, 191)
        assert v.running_threads() == []


def test_outgoing_frames_are_mavlink2():
    with FakeAutopilot() as peer, connect(peer.url, timeout_s=2) as v:
        v.send_statustext("hello")
        msg = peer.wait_received("STATUSTEXT")[0]
        assert msg.get_msgbuf()[0] == 0xFD  # the MAVLink 2 start byte


def test_long_statustext_goes_in_chunks():
    text = "Weed patch at 12 m N 40 m E of the field corner, 3.1 m2, confidence 0.87, spraying advised"
    with FakeAutopilot() as peer, connect(peer.url, timeout_s=2) as v:
        v.send_statustext(text, severity=5)
        chunks = peer.wait_received("STATUSTEXT", 2)
    assert len(chunks) == 2 and {c.id for c in chunks} == {chunks[0].id} and chunks[0].id != 0
    assert [c.chunk_seq for c in chunks] == [0, 1] and all(c.severity == 5 for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_incoming_chunked_statustext_is_reassembled():
    with FakeAutopilot() as peer, connect(peer.url, timeout_s=2) as v:
        long_text = "A" * 50 + "B" * 20
        with v.events.subscribe("statustext") as sub:
            peer.send(peer.mav.statustext_encode(4, long_text[:50].encode(), 7, 0))
            peer.send(peer.mav.statustext_encode(4, long_text[50:].encode(), 7, 1))
            event = sub.get(2.0)
    assert event.value.text == long_text and event.value.severity == 4


def test_link_lost_and_recovered():
    """Heartbeats stop: the state says link lost, an event comes, a wait raises LinkLost; they resume: recovered."""
    with FakeAutopilot(heartbeat_period_s=0.1) as peer, connect(peer.url, timeout_s=2, link_timeout_s=0.5) as v:
        with v.events.subscribe({"link_lost", "link_recovered"}) as sub:
            peer.heartbeat = False
            with pytest.raises(LinkLost, match="link lost"):
                v.wait_until(lambda st: st.armed, 5.0, "armed")
            assert sub.get(1.0).kind == "link_lost" and not v.state.link_ok
            peer.heartbeat = True
            event = sub.get(2.0)
            assert event.kind == "link_recovered" and event.value >= 0.5
            assert v.state.link_ok and v.health.lost_count == 1 and v.health.recovered_count == 1


def test_wait_until_times_out_with_what_and_state():
    with FakeAutopilot() as peer, connect(peer.url, timeout_s=2) as v:
        with pytest.raises(WaitTimeout) as err:
            v.wait_until(lambda st: st.pose.alt_rel_home_m > 19, 0.3, "altitude above 19 m")
    assert err.value.origin == "altitude above 19 m"
    assert "no position yet" in str(err.value) and "AttributeError" in str(err.value)


# ------------------------------------------------------------------------------------------- signing
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def test_key_file_forms(tmp_path):
    raw = tmp_path / "raw.key"
    raw.write_bytes(KEY)
    hexa = tmp_path / "hex.key"
    hexa.write_text(KEY.hex() + "\n")
    assert read_key_file(raw) == KEY and read_key_file(hexa) == KEY
    assert Signing.from_file(hexa, link_id=3).link_id == 3
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(LinkError, match="expected 32 raw bytes or 64 hex characters, got 9 bytes"):
        read_key_file(bad)
    with pytest.raises(LinkError, match="readable key file"):
        read_key_file(tmp_path / "missing.key")


def test_signed_link_with_the_right_key():
    with FakeAutopilot(signing_key=KEY, verify_key=KEY) as peer:
        with connect(peer.url, timeout_s=2, signing=Signing(KEY, link_id=2)) as v:
            v.send_statustext("signed")
            msg = peer.wait_received("STATUSTEXT")[0]
            assert msg.get_signed() and msg.get_link_id() == 2 and peer.rejected == 0
            assert v.link_stats().badsig_dropped == 0 and v.state.link_ok


def test_wrongly_signed_peer_is_dropped_and_counted():
    with FakeAutopilot(signing_key=OTHER_KEY) as peer:
        with pytest.raises(LinkError) as err:
            connect(peer.url, timeout_s=1.0, signing=Signing(KEY))
    assert "signed with another key" in str(err.value)


def test_unsigned_peer_is_dropped_when_signing_is_on():
    with FakeAutopilot() as peer:
        with pytest.raises(LinkError) as err:
            connect(peer.url, timeout_s=1.0, signing=Signing(KEY))
    assert "unsigned" in str(err.value) and "0 messages signed with another key" in str(err.value)


def test_signing_off_by_default_sends_unsigned():
    with FakeAutopilot(verify_key=KEY) as peer:  # a peer that requires signatures rejects us
        with connect(peer.url, timeout_s=2) as v:
            deadline = time.monotonic() + 2
            while peer.rejected == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert peer.rejected >= 1 and not peer.of_type("HEARTBEAT")
            assert v.link.signing is None


def _udp_autopilot(sock: socket.socket, peer_addr, stop, heard: list) -> None:
    """A UDP autopilot: HEARTBEATs every 50 ms to ``peer_addr`` (or to whoever spoke last), recording what comes."""
    ap = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    parser = mavlink.MAVLink(None)
    sock.settimeout(0.05)
    while not stop.is_set():
        if peer_addr[0] is not None:
            sock.sendto(ap.heartbeat_encode(2, 3, 81, 4, 3).pack(ap), peer_addr[0])
        try:
            data, addr = sock.recvfrom(2048)
        except socket.timeout:
            continue
        peer_addr[0] = addr
        heard.extend(parser.parse_buffer(data) or [])


@pytest.mark.parametrize("scheme", ["udpin", "udpout"])
def test_udp_links(scheme):
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    if scheme == "udpin":  # we listen; the autopilot sends to our port
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        peer_addr, url = [("127.0.0.1", port)], f"udpin:127.0.0.1:{port}"
    else:  # we send to the autopilot's port; it answers whoever spoke
        peer_addr, url = [None], f"udpout:127.0.0.1:{sock.getsockname()[1]}"
    stop, heard = threading.Event(), []
    t = threading.Thread(target=_udp_autopilot, args=(sock, peer_addr, stop, heard), daemon=True)
    t.start()
    try:
        with connect(url, timeout_s=3) as v:
            assert v.state.mode == "GUIDED" and (v.target_system, v.target_component) == (1, 1)
            deadline = time.monotonic() + 3
            while not any(m.get_type() == "HEARTBEAT" for m in heard) and time.monotonic() < deadline:
                time.sleep(0.02)
        assert any(m.get_type() == "HEARTBEAT" and m.type == mavlink.MAV_TYPE_ONBOARD_CONTROLLER for m in heard)
    finally:
        stop.set()
        t.join()
        sock.close()


def test_tcp_reconnects_after_the_autopilot_restarts():
    """The autopilot's TCP server goes away (process restart): link lost; it listens again: the link reconnects."""
    first = FakeAutopilot(heartbeat_period_s=0.1, custom_mode=4)
    port = first.port
    try:
        with connect(first.url, timeout_s=2, link_timeout_s=0.5) as v:
            with v.events.subscribe({"link_lost", "link_recovered"}) as sub:
                first.stop()
                assert sub.get(3.0).kind == "link_lost"
                with FakeAutopilot(heartbeat_period_s=0.1, custom_mode=5, port=port):
                    assert sub.get(5.0).kind == "link_recovered"
                    v.wait_until(lambda st: st.mode == "LOITER", 2.0, "the restarted autopilot's mode")
                    assert v.link_stats().reconnects == 1
        assert v.running_threads() == []
    finally:
        first.stop()
