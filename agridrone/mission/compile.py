"""SurveyPlan -> MAVLink mission, geofence and rally lists (agridrone.types.MissionItem).

MISSION: 0 home (frame GLOBAL, AMSL; ArduPilot overwrites it), NAV_TAKEOFF, DO_CHANGE_SPEED,
then per survey line NAV_WAYPOINT start, DO_SET_CAM_TRIGG_DIST d (trigger at once), NAV_WAYPOINT end,
DO_SET_CAM_TRIGG_DIST 0 (no photos in turns), with NAV_WAYPOINTs for detours; back to home, then
RTL (or NAV_LAND at home).
FENCE: the inclusion polygon (boundary grown by ``fence_margin_m``, 5001), one exclusion polygon per
polygon zone (5002) and one exclusion circle per circle zone (5004), each grown by half its buffer so
that the path (which keeps the full buffer) never trips it. The altitude limit is a parameter
(FENCE_ALT_MAX), returned in ``params`` as what the vehicle must be set to.
RALLY: home plus the file's rally points (5100).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from agridrone.mission import geometry as g
from agridrone.mission import mav
from agridrone.mission.model import Mission
from agridrone.mission.survey import SurveyPlan, plan_survey
from agridrone.types import AltFrame, GeoPoint, MissionItem, MissionType

FENCE_SIMPLIFY_M = 0.5
RALLY_ALT_M = 15.0
FENCE_TYPE_ALT_POLYGON = 1 | 4  # max altitude + polygon fences (5001-5004); no circle around home


@dataclass(frozen=True)
class CompiledMission:
    mission: Mission
    plan: SurveyPlan
    items: tuple[MissionItem, ...]
    fence: tuple[MissionItem, ...]
    rally: tuple[MissionItem, ...]
    params: dict = field(default_factory=dict)

    @property
    def home(self) -> GeoPoint:
        m = self.mission
        return GeoPoint(m.home_lat_deg, m.home_lon_deg, m.home_ground_alt_amsl_m, AltFrame.AMSL)

    def path_geo(self) -> list[tuple[float, float, float]]:
        """(lat, lon, alt above home) of every navigation point, home first and last."""
        out = [(self.mission.home_lat_deg, self.mission.home_lon_deg, 0.0)]
        for it in self.items[1:]:
            if it.command in (mav.NAV_WAYPOINT, mav.NAV_TAKEOFF, mav.NAV_LAND) and (it.x, it.y) != (0, 0):
                out.append((it.lat_deg, it.lon_deg, 0.0 if it.command == mav.NAV_LAND else it.z))
        out.append((self.mission.home_lat_deg, self.mission.home_lon_deg, 0.0))
        return out

    def fence_inclusion_latlon(self) -> list[tuple[float, float]]:
        return [(it.lat_deg, it.lon_deg) for it in self.fence if it.command == mav.FENCE_POLYGON_VERTEX_INCLUSION]


def compile_mission(m: Mission, plan: SurveyPlan | None = None) -> CompiledMission:
    plan = plan if plan is not None else plan_survey(m)
    frame = plan.frame
    alt = m.altitude_agl_m
    items: list[MissionItem] = [MissionItem.at(mav.NAV_WAYPOINT, m.home_lat_deg, m.home_lon_deg,
                                               m.home_ground_alt_amsl_m, frame=mav.FRAME_GLOBAL)]
    items.append(MissionItem.at(mav.NAV_TAKEOFF, m.home_lat_deg, m.home_lon_deg, alt))
    items.append(MissionItem(command=mav.DO_CHANGE_SPEED, frame=mav.FRAME_MISSION, param1=1.0, param2=m.speed_m_s,
                             param3=-1.0))
    if plan.waypoints:
        ll = g.to_latlon(frame, np.array([(x, y) for x, y, _ in plan.waypoints]))
    else:
        ll = np.zeros((0, 2))
    for (lat, lon), (_, _, kind) in zip(ll, plan.waypoints):
        items.append(MissionItem.at(mav.NAV_WAYPOINT, float(lat), float(lon), alt))
        if kind == "line_start":
            items.append(MissionItem(command=mav.DO_SET_CAM_TRIGG_DIST, frame=mav.FRAME_MISSION,
                                     param1=round(plan.trigger_distance_m, 2), param3=1.0))
        elif kind == "line_end":
            items.append(MissionItem(command=mav.DO_SET_CAM_TRIGG_DIST, frame=mav.FRAME_MISSION))
    items.append(MissionItem.at(mav.NAV_WAYPOINT, m.home_lat_deg, m.home_lon_deg, alt))
    if m.end_action == "land":
        items.append(MissionItem.at(mav.NAV_LAND, m.home_lat_deg, m.home_lon_deg, 0.0))
    else:
        items.append(MissionItem(command=mav.NAV_RETURN_TO_LAUNCH, frame=mav.FRAME_GLOBAL_RELATIVE_ALT))

    fence = _fence(m, plan)
    rally = [MissionItem.at(mav.NAV_RALLY_POINT, lat, lon, RALLY_ALT_M, mission_type=MissionType.RALLY)
             for lat, lon in [(m.home_lat_deg, m.home_lon_deg), *m.rally_points]]
    params = {"FENCE_ENABLE": 1, "FENCE_TYPE": FENCE_TYPE_ALT_POLYGON,
              "FENCE_ALT_MAX": float(m.fence_alt_max_effective_m), "FENCE_ACTION": 1}
    return CompiledMission(m, plan, tuple(items), tuple(fence), tuple(rally), params)


def _ring_items(frame, poly, command: int) -> list[MissionItem]:
    poly = poly.simplify(FENCE_SIMPLIFY_M)
    coords = np.asarray(poly.exterior.coords)[:-1]
    ll = g.to_latlon(frame, coords)
    n = float(len(ll))
    return [MissionItem.at(command, float(lat), float(lon), 0.0, frame=mav.FRAME_GLOBAL, params=(n, 0.0, 0.0, 0.0),
                           mission_type=MissionType.FENCE) for lat, lon in ll]


def _fence(m: Mission, plan: SurveyPlan) -> list[MissionItem]:
    frame = plan.frame
    inclusion = g.grow(plan.field, m.fence_margin_m)
    items = _ring_items(frame, shapely.geometry.polygon.orient(inclusion, 1.0), mav.FENCE_POLYGON_VERTEX_INCLUSION)
    for z in m.zones:
        if z.kind == "circle":
            items.append(MissionItem.at(mav.FENCE_CIRCLE_EXCLUSION, z.center[0], z.center[1], 0.0,
                                        frame=mav.FRAME_GLOBAL, params=(z.radius_m + 0.5 * z.buffer_m, 0, 0, 0),
                                        mission_type=MissionType.FENCE))
        else:
            items += _ring_items(frame, g.keepout(z, frame, 0.5), mav.FENCE_POLYGON_VERTEX_EXCLUSION)
    return items
