"""TEST MODE ONLY: ground-truth "detections" taken from a simulated world instead of a model.

For unit tests and for trying the loop's wiring before a detector exists. Never used by ``agridrone
fly``/``demo`` nor by the closed-loop acceptance tests, which run the shipped detector on the
simulated camera's frames. ``GroundTruthDetectorForTests(world)`` wraps the pose provider of the
``sim://`` camera (``wrap_pose_provider``) to know the pose each frame was rendered at, and returns
the world's obstacles in view with the boxes the simulated camera drew them with, score 1.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

import numpy as np

from agridrone.types import Detections, Frame, Pose


class GroundTruthDetectorForTests:
    def __init__(self, world_spec: str, size_wh: tuple[int, int]) -> None:
        from agridrone.sim.camera import SimCamera

        self.camera = SimCamera(world_spec, size_wh=size_wh, noise=False)
        self._poses: OrderedDict[int, Pose] = OrderedDict()

    def wrap_pose_provider(self, provider: Callable[[], Pose]) -> Callable[[], Pose]:
        def wrapped() -> Pose:
            pose = provider()
            self._poses[int(pose.ts_ns)] = pose
            while len(self._poses) > 64:
                self._poses.popitem(last=False)
            return pose
        return wrapped

    def detect_frame_timed(self, frame: Frame) -> tuple[Detections, dict[str, int]]:
        t0 = time.monotonic_ns()
        pose = self._poses.get(int(frame.ts_ns))
        wh = (frame.width, frame.height)
        if pose is None:
            return Detections.empty(wh), {"infer": time.monotonic_ns() - t0}
        seen = [o for o in self.camera.ground_truth_in_view(pose) if o.kind == "obstacle"]
        if not seen:
            return Detections.empty(wh), {"infer": time.monotonic_ns() - t0}
        boxes = np.array([o.box_xyxy for o in seen], np.float32)
        labels = tuple(o.cls for o in seen)
        return (Detections(boxes, np.zeros(len(seen), np.int32), np.ones(len(seen), np.float32), labels, wh),
                {"infer": time.monotonic_ns() - t0})
