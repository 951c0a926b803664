"""Shortest paths inside a polygonal region (with holes): a lazily built visibility graph.

Shortest paths around obstacles bend only at reflex vertices of the free region, so the graph's
nodes are those vertices, taken from the region shrunk by a few centimetres (so legs never graze an
edge). Visibility from a node is computed on demand, vectorised (one ``covers`` call per node), and
queries run A* with the straight-line distance as heuristic.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.polygon import orient

NODE_INSET_M = 0.1
CHECK_SLACK_M = 1e-3


def _parts(geom):
    if geom.is_empty:
        return []
    return list(geom.geoms) if hasattr(geom, "geoms") else [geom]


def reflex_vertices(region) -> np.ndarray:
    """Vertices where the free region turns right (interior on the left): the only places a shortest path bends."""
    out = []
    for poly in _parts(region):
        if poly.geom_type != "Polygon":
            continue
        poly = orient(poly, 1.0)
        for ring in [poly.exterior, *poly.interiors]:
            c = np.asarray(ring.coords)[:-1]
            if len(c) < 3:
                continue
            prev, nxt = np.roll(c, 1, axis=0), np.roll(c, -1, axis=0)
            a, b = c - prev, nxt - c
            cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
            out.append(c[cross < 0])
    return np.concatenate(out) if out else np.zeros((0, 2))


class Router:
    """Shortest paths that stay inside ``region`` (a Polygon or MultiPolygon in metres)."""

    def __init__(self, region) -> None:
        self.region = region
        self._check = region.buffer(CHECK_SLACK_M, join_style="mitre")
        shapely.prepare(self._check)
        inner = region.buffer(-NODE_INSET_M, join_style="mitre")
        self.nodes = reflex_vertices(inner)

    def contains(self, p) -> bool:
        return bool(shapely.covers(self._check, shapely.points(p[0], p[1])))

    def clear(self, a, b) -> bool:
        """True when the straight leg a-b lies inside the region."""
        if math.dist(a, b) < 1e-9:
            return self.contains(a)
        return bool(shapely.covers(self._check, LineString([a, b])))

    def _visible(self, p, idx: np.ndarray) -> np.ndarray:
        """Which of the nodes ``idx`` are visible from ``p``."""
        if len(idx) == 0:
            return np.zeros(0, bool)
        seg = np.empty((len(idx), 2, 2))
        seg[:, 0] = p
        seg[:, 1] = self.nodes[idx]
        same = np.all(np.abs(seg[:, 0] - seg[:, 1]) < 1e-9, axis=1)
        seg[same, 1] += 1e-6
        return shapely.covers(self._check, shapely.linestrings(seg))

    def route(self, a, b) -> list[tuple[float, float]] | None:
        """The shortest polyline a -> ... -> b inside the region, or None when b cannot be reached.

        Searches first among the nodes inside an ellipse around a and b (a detour rarely goes far),
        then among all nodes.
        """
        a = (float(a[0]), float(a[1]))
        b = (float(b[0]), float(b[1]))
        if self.clear(a, b):
            return [a, b]
        if len(self.nodes) == 0:
            return None
        nodes = self.nodes
        d_a = np.hypot(nodes[:, 0] - a[0], nodes[:, 1] - a[1])
        d_b = np.hypot(nodes[:, 0] - b[0], nodes[:, 1] - b[1])
        direct = math.dist(a, b)
        for limit in (1.5 * direct + 150.0, math.inf):
            idx = np.flatnonzero(d_a + d_b <= limit)
            path = self._astar(a, b, idx, d_a[idx], d_b[idx])
            if path is not None or len(idx) == len(nodes):
                return path
        return None

    def _astar(self, a, b, idx, d_a, to_goal):
        sub = self.nodes[idx]
        vis_b = self._visible(b, idx)
        vis_a = self._visible(a, idx)
        dist: dict[int, float] = {}
        prev: dict[int, int] = {}
        heap: list = []
        for j in np.flatnonzero(vis_a):
            j = int(j)
            dist[j] = float(d_a[j])
            prev[j] = -1
            heapq.heappush(heap, (d_a[j] + to_goal[j], j))
        best_goal, best_last = math.inf, None
        done = set()
        while heap:
            f, i = heapq.heappop(heap)
            if f >= best_goal:
                break
            if i in done:
                continue
            done.add(i)
            gi = dist[i]
            if vis_b[i] and gi + to_goal[i] < best_goal:
                best_goal, best_last = gi + to_goal[i], i
            vis = self._visible(sub[i], idx)
            vis[i] = False
            d = np.hypot(sub[:, 0] - sub[i, 0], sub[:, 1] - sub[i, 1])
            for j in np.flatnonzero(vis):
                j = int(j)
                nd = gi + float(d[j])
                if nd < dist.get(j, math.inf) - 1e-9:
                    dist[j] = nd
                    prev[j] = i
                    heapq.heappush(heap, (nd + to_goal[j], j))
        if best_last is None:
            return None
        chain = []
        i = best_last
        while i != -1:
            chain.append((float(sub[i, 0]), float(sub[i, 1])))
            i = prev[i]
        return [a, *chain[::-1], b]
