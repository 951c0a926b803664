"""Real ArduCopter 4.7 SITL bytes (the recorded .tlog files in ../shared/testdata) through the link and telemetry.

The recorded packets are written by a fake peer, with the console text SITL mixes into its port at boot, and
the telemetry must come out as the transcripts' README states it (facts 2, 3, 7, 13, 14).
"""

from __future__ import annotations

import pytest

from test_vehicle_link import connect_when_ready
from vehicle_fakes import FakeAutopilot

SITL_HOME = (-35.363261, 149.165230, 584.0)


def tlog_packets(path) -> list[bytes]:
    """The raw MAVLink packets of a .tlog (each record: 8-byte big-endian µs timestamp, then the packet)."""
    data = path.read_bytes()
    out, i = [], 0
    while i + 10 <= len(data):
        start = i + 8
        if data[start] == 0xFD:
            size = 12 + data[start + 1] + (13 if data[start + 2] & 1 else 0)
        elif data[start] == 0xFE:
            size = 8 + data[start + 1]
        else:
            raise AssertionError(f"{path.name}: expected a MAVLink start byte at offset {start}, got {data[start]:#x}")
        out.append(data[start:start + size])
        i = start + size
    return out


def test_boot_and_denials_stream_gives_the_documented_state(shared_testdata):
    """The boot_and_denials recording (59 s of a real boot, denials, arming and auto-disarm) with console text
    mixed in: the vehicle becomes ready (EKF 0x33f, GPS fix 6, home at the SITL home), the mode is GUIDED,
    it ended disarmed, the PreArm and Arm texts were kept, and the console bytes were counted as bad data."""
    packets = tlog_packets(shared_testdata / "arducopter-transcripts" / "boot_and_denials.tlog")
    assert len(packets) > 1000
    stream = b"".join(packets[:40]) + b"Init Gyro**\n" + b"".join(packets[40:])
    with FakeAutopilot(heartbeat=False) as peer:
        with connect_when_ready(peer, stream, heartbeat_after=False) as v:
            st = v.wait_until(lambda s: s.ready and not s.armed and "Disarming motors" in [t.text for t in s.statustexts],
                              10.0, "the whole recording", raise_on_link_lost=False)
            assert st.ekf_flags == 0x33F and st.gps_fix == 6 and st.gps_sats == 10
            assert st.home.lat_deg == pytest.approx(SITL_HOME[0], abs=1e-6)
            assert st.home.alt_m == pytest.approx(SITL_HOME[2], abs=0.5)
            assert st.mode == "GUIDED" and st.vehicle_type == 2 and st.autopilot == 3
            texts = [t.text for t in st.statustexts]
            # 30 texts were recorded; the 2 sent before the autopilot's first HEARTBEAT cannot be attributed to it.
            assert len(texts) == 28 and texts[0] == "Barometer 1 calibration complete"
            assert "Arming motors" in texts and "PreArm: Need Position Estimate" in texts
            assert any(t.severity == 2 and t.text.startswith("Arm: ") for t in st.statustexts)
            v.wait_until(lambda s: v.link_stats().packets_received >= len(packets), 10.0, "every packet parsed",
                         raise_on_link_lost=False)
            stats = v.link_stats()
            assert (stats.packets_received, stats.bad_data, stats.bad_bytes) == (len(packets), 1, len(b"Init Gyro**\n"))


def test_mission_stream_reports_progress(shared_testdata):
    """The mission_fence_rally recording: MISSION_CURRENT ends at seq 7 of 7, MISSION_ITEM_REACHED events came for
    the waypoints (not for the take-off, which completed with the next item), and the fence breach was seen."""
    packets = tlog_packets(shared_testdata / "arducopter-transcripts" / "mission_fence_rally.tlog")
    with FakeAutopilot(heartbeat=False) as peer:
        reached: list[int] = []
        first_heartbeat = next(i for i, p in enumerate(packets) if p[0] == 0xFD and p[7:10] == b"\x00\x00\x00")
        with connect_when_ready(peer, b"".join(packets[:first_heartbeat + 1]), heartbeat_after=False) as v:
            cancel = v.events.on(lambda e: reached.append(e.value), "mission_item_reached")
            with v.events.subscribe("fence_breach") as breaches:
                peer.send_raw(b"".join(packets[first_heartbeat + 1:]))
                st = v.wait_until(lambda s: s.mission_total == 7 and "Fence breach cleared" in
                                  [t.text for t in s.statustexts] and s.mode == "RTL", 10.0, "the whole recording",
                                  raise_on_link_lost=False)
                assert breaches.get(5.0).value == 1
            cancel()
    assert st.fence_breached is not None
    assert {2, 3, 4, 5, 6} <= set(reached) and 1 not in reached
