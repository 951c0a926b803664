"""Shortest paths in a 2-D free space by visibility graph and Dijkstra (used by agridrone.planning).

Pure geometry in local metres: no state, no I/O. The free space is a shapely (Multi)Polygon; an
edge between two nodes exists when the free space ``covers`` the straight segment. Discs (centre,
radius) that the free space excludes are used as a fast numpy pre-filter before the exact shapely
check, which is the expensive part.
"""

from __future__ import annotations

import heapq
import math
from typing import Sequence

import numpy as np
import shapely
from shapely.geometry import Point, Polygon

XY = tuple[float, float]


def shortest_path(start: XY, goal: XY, candidates: Sequence[XY], free_ends, free_middle,
                  discs: Sequence[tuple[float, float, float]] = (), free_goal=None) -> tuple[list[XY], float] | None:
    """The shortest polyline from ``start`` to ``goal`` through ``candidates`` (those inside ``free_middle``).

    Edges touching ``start`` must lie in ``free_ends``, edges touching ``goal`` in ``free_goal`` (default:
    ``free_ends``; an edge from start to goal in both), the others in ``free_middle`` (usually the same
    space shrunk by a fence margin). ``discs`` are (east, north, radius) that no edge may enter.
    Returns (nodes after start, ending with goal; length) or None.
    """
    free_goal = free_ends if free_goal is None else free_goal
    if not free_ends.covers(Point(start)) or not free_goal.covers(Point(goal)):
        return None
    nodes = [tuple(start), tuple(goal)]
    if len(candidates):
        arr = np.asarray(candidates, dtype=float)
        ok = shapely.covers(free_middle, shapely.points(arr))
        nodes.extend(map(tuple, arr[ok]))
    n = len(nodes)
    xy = np.asarray(nodes, dtype=float)
    ii, jj = np.triu_indices(n, k=1)
    a, b = xy[ii], xy[jj]
    maybe = _clear_of_discs(a, b, discs)
    start_edge, goal_edge = ii == 0, (ii == 1) | (jj == 1)
    valid = maybe.copy()
    for space in (free_ends, free_goal, free_middle):
        shapely.prepare(space)  # a no-op on one already prepared
    for mask, space in ((start_edge, free_ends), (goal_edge, free_goal), (~start_edge & ~goal_edge, free_middle)):
        mask = mask & valid
        if mask.any():
            lines = shapely.linestrings(np.stack([a[mask], b[mask]], axis=1))
            valid[mask] = shapely.covers(space, lines)
    cost = np.full((n, n), np.inf)
    lengths = np.hypot(*(a - b).T)
    cost[ii[valid], jj[valid]] = lengths[valid]
    cost[jj[valid], ii[valid]] = lengths[valid]
    return _dijkstra(cost, xy)


def _clear_of_discs(a: np.ndarray, b: np.ndarray, discs) -> np.ndarray:
    """Which segments a[i]-b[i] stay out of every disc (vectorised point-segment distance)."""
    if not len(discs):
        return np.ones(len(a), dtype=bool)
    d = np.asarray(discs, dtype=float)
    centres, radii = d[:, :2], d[:, 2]
    ab = b - a
    ll = np.maximum((ab * ab).sum(axis=1), 1e-12)[:, None]
    ac = centres[None, :, :] - a[:, None, :]
    t = np.clip((ac * ab[:, None, :]).sum(axis=2) / ll, 0.0, 1.0)
    closest = a[:, None, :] + t[:, :, None] * ab[:, None, :]
    dist = np.hypot(*(closest - centres[None, :, :]).transpose(2, 0, 1))
    return (dist >= radii[None, :] - 1e-9).all(axis=1)


def _dijkstra(cost: np.ndarray, xy: np.ndarray) -> tuple[list[XY], float] | None:
    """Node 0 to node 1 over a dense cost matrix (inf: no edge)."""
    n = len(xy)
    dist = np.full(n, np.inf)
    prev = np.full(n, -1)
    dist[0] = 0.0
    heap = [(0.0, 0)]
    done = np.zeros(n, dtype=bool)
    while heap:
        d, u = heapq.heappop(heap)
        if done[u]:
            continue
        done[u] = True
        if u == 1:
            break
        nd = d + cost[u]
        for v in np.nonzero((nd < dist) & ~done)[0]:
            dist[v] = nd[v]
            prev[v] = u
            heapq.heappush(heap, (float(nd[v]), int(v)))
    if not math.isfinite(dist[1]):
        return None
    path = []
    u = 1
    while u != 0:
        path.append((float(xy[u, 0]), float(xy[u, 1])))
        u = int(prev[u])
    return path[::-1], float(dist[1])


def polygon_vertices(geom) -> list[XY]:
    """Every exterior and hole vertex of a (Multi)Polygon (empty geometry: none)."""
    if geom.is_empty:
        return []
    polys = geom.geoms if hasattr(geom, "geoms") else [geom]
    out: list[tuple[float, float]] = []
    for p in polys:
        if not isinstance(p, Polygon):
            continue
        out.extend(p.exterior.coords[:-1])
        for hole in p.interiors:
            out.extend(hole.coords[:-1])
    return out


def segment_point_distance(a: XY, b: XY, p: XY) -> float:
    """Distance from point ``p`` to the segment a-b."""
    px, py = project_on_segment(p, a, b)
    return math.hypot(p[0] - px, p[1] - py)


def project_on_segment(p: XY, a: XY, b: XY) -> XY:
    """The point of segment a-b closest to ``p``."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    ll = dx * dx + dy * dy
    if ll < 1e-12:
        return a
    t = max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / ll))
    return ax + t * dx, ay + t * dy
