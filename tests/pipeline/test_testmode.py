"""The TEST MODE ground-truth detector (never used by fly, demo or the acceptance tests)."""

from __future__ import annotations

from pathlib import Path

from agridrone.pipeline_parts import project_detections
from agridrone.pipeline_testmode import GroundTruthDetectorForTests
from agridrone.sim.camera_source import SimCameraSource
from agridrone.sim.world import load_world
from agridrone.types import Pose

WORLD = Path(__file__).resolve().parents[2] / "sitl" / "worlds" / "rectangular-cereal.yaml"


def test_ground_truth_detections_put_the_tree_where_the_world_has_it():
    """Above the world's first tree at survey height, the test-mode detector reports a tree whose ground
    projection (the loop's own projection code) lands within 2 m of the tree's position in the world."""
    world = load_world(WORLD)
    tree = world.obstacles[0]
    det = GroundTruthDetectorForTests(str(WORLD), (320, 240))
    pose = Pose(123, tree.lat_deg + 0.0001, tree.lon_deg, 172.0, 60.0, 0.0, 0.0, 0.0)
    source = SimCameraSource(str(WORLD), det.wrap_pose_provider(lambda: pose), size_wh=(320, 240), noise=False)
    with source:
        frame = source.read()
    dets, _ = det.detect_frame_timed(frame)
    assert "tree" in dets.labels
    frame_enu = det.camera.frame
    ground = project_detections(dets, pose, det.camera.projector, frame_enu, frame.ts_ns)
    te, tn, _ = frame_enu.to_enu(tree.lat_deg, tree.lon_deg)
    best = min(((g.east_m - te) ** 2 + (g.north_m - tn) ** 2) ** 0.5 for g in ground if g.label == "tree")
    assert best < 2.0
    unknown = frame.__class__(999, frame.image, 0, "x")  # a frame rendered at no recorded pose: nothing
    assert len(det.detect_frame_timed(unknown)[0]) == 0
