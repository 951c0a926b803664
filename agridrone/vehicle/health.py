"""Link health: the autopilot's HEARTBEAT stopped for ``timeout_s`` -> link lost; it came back -> recovered.

Checked every ~50 ms on the link's heartbeat thread. The state shows it as ``state.link_ok``; the
transitions are ``link_lost`` / ``link_recovered`` events (the recovery event's value is how long
the link was lost, in seconds). Waits that see the link go from ok to lost raise LinkLost.
"""

from __future__ import annotations

import threading

from agridrone.vehicle.events import EventBus, VehicleEvent
from agridrone.vehicle.telemetry import Telemetry

DEFAULT_LINK_TIMEOUT_S = 3.0


class LinkHealth:
    def __init__(self, telemetry: Telemetry, events: EventBus, timeout_s: float = DEFAULT_LINK_TIMEOUT_S) -> None:
        if not timeout_s > 0:
            raise ValueError(f"link timeout: expected > 0 s, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self._telemetry = telemetry
        self._events = events
        self._lock = threading.Lock()
        self._lost_since_ns: int | None = None
        self.lost_count = 0
        self.recovered_count = 0

    def on_message(self, msg, ts_ns: int) -> None:
        """Reader thread: an autopilot HEARTBEAT marks the link ok (and recovered, if it was lost)."""
        if msg.get_type() != "HEARTBEAT":
            return
        with self._lock:
            if self._telemetry.state.link_ok:
                return
            lost_since, self._lost_since_ns = self._lost_since_ns, None
            if lost_since is not None:
                self.recovered_count += 1
            self._telemetry.set_link_ok(True, ts_ns)
        if lost_since is not None:
            self._events.emit(VehicleEvent("link_recovered", ts_ns, (ts_ns - lost_since) / 1e9))

    def tick(self, now_ns: int) -> None:
        """Heartbeat thread: declare the link lost after ``timeout_s`` without a HEARTBEAT."""
        st = self._telemetry.state
        if not st.link_ok or st.last_heartbeat_ns is None:
            return
        silent_s = (now_ns - st.last_heartbeat_ns) / 1e9
        if silent_s <= self.timeout_s:
            return
        with self._lock:
            if self._lost_since_ns is not None:
                return
            if self._telemetry.state.last_heartbeat_ns != st.last_heartbeat_ns:
                return  # a HEARTBEAT arrived meanwhile
            self._lost_since_ns = st.last_heartbeat_ns
            self.lost_count += 1
            self._telemetry.set_link_ok(False, now_ns)
        self._events.emit(VehicleEvent("link_lost", now_ns, silent_s))
