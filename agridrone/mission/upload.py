"""Upload a compiled mission, fence and rally points through the vehicle link (agridrone.vehicle)."""

from __future__ import annotations

from dataclasses import dataclass

from agridrone.types import MissionType


@dataclass(frozen=True)
class UploadReport:
    mission_items: int
    fence_items: int
    rally_items: int
    expected_params: dict


def upload_mission(vehicle, compiled, timeout_s: float = 30.0) -> UploadReport:
    """Upload FENCE and RALLY first (so the fence guards the mission), then MISSION (item 0 = home).

    Raises the vehicle's MissionTransferError / WaitTimeout / LinkError unchanged. FENCE_ALT_MAX and
    FENCE_ENABLE are parameters, not items: the report lists what the vehicle must have.
    """
    vehicle.missions.upload(list(compiled.fence), mission_type=MissionType.FENCE, timeout_s=timeout_s)
    vehicle.missions.upload(list(compiled.rally), mission_type=MissionType.RALLY, timeout_s=timeout_s)
    vehicle.missions.upload(list(compiled.items), mission_type=MissionType.MISSION, timeout_s=timeout_s)
    return UploadReport(len(compiled.items), len(compiled.fence), len(compiled.rally), dict(compiled.params))
