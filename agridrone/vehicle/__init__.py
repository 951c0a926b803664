"""The vehicle link: one autopilot over MAVLink 2 (ArduCopter 4.5-4.7).

    from agridrone.vehicle import connect
    with connect("tcp:127.0.0.1:5760", timeout_s=10) as v:
        v.request_streams()
        v.wait_ready(timeout_s=60)
        v.set_mode("GUIDED"); v.arm(); v.takeoff(20)

One module per capability: link (URL, transport, reader thread, our HEARTBEAT), signing,
telemetry (state snapshot, stream rates), health (link lost / recovered), commands
(COMMAND_LONG/INT + ACK), offboard (GUIDED targets), mission (MISSION/FENCE/RALLY protocol),
events, modes; vehicle wires them. Importing this package only imports pymavlink's dialect.
"""

from agridrone.vehicle.events import VehicleEvent
from agridrone.vehicle.link import LinkStats, parse_url
from agridrone.vehicle.mission import same_items
from agridrone.vehicle.signing import Signing
from agridrone.vehicle.telemetry import StatusText, VehicleState
from agridrone.vehicle.vehicle import Vehicle, connect

__all__ = ["connect", "Vehicle", "Signing", "VehicleState", "VehicleEvent", "StatusText", "LinkStats", "parse_url",
           "same_items"]
