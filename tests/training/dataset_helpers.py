"""Datasets as users bring them, generated for tests: camera frames of the training renderer written as
COCO under class names of another dataset."""

import json

import cv2

from agridrone.training.synth import render_scene

REAL_NAMES = ["tree", "pedestrian", "cow", "car", "utility_pole", "barn"]  # the model's classes, as named elsewhere


def coco_frames(root, n, size_hw=(720, 960), seed=7, names=REAL_NAMES):
    """``n`` nadir camera frames of the training renderer (a seed it was not trained on) as COCO."""
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        sc = render_scene(seed, i, size_hw, view="nadir")
        name = f"frame_{i:04d}.jpg"
        cv2.imwrite(str(root / "images" / name), cv2.cvtColor(sc.image, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": name, "width": size_hw[1], "height": size_hw[0]})
        for (x1, y1, x2, y2), c in zip(sc.boxes, sc.classes):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1, "iscrowd": 0,
                         "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                         "area": float((x2 - x1) * (y2 - y1))})
    cats = [{"id": k + 1, "name": nm} for k, nm in enumerate(names)]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return len(anns)
