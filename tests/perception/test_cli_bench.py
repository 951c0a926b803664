"""The `models inspect`, `health` and `bench perception` commands end to end on tiny models."""

from __future__ import annotations

import json

import cv2
import numpy as np

from agridrone.cli import main


def test_inspect_lists_tensors_quantisation_and_layout(tiny_models, capsys):
    assert main(["models", "inspect", str(tiny_models["yolov8_int8"].path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["detector_layout"] == "yolov8"
    assert info["inputs"][0]["dtype"] == "int8" and "quantization" in info["inputs"][0]
    assert info["outputs"][0]["shape"] == [1, 7, 24]
    assert info["card"] is None and info["xnnpack"] is True
    assert main(["models", "inspect", str(tiny_models["ssd_named"].path)]) == 0
    assert "detector layout: ssd" in capsys.readouterr().out


def test_health_command_prints_grid_and_json(tiny_models, tmp_path, capsys):
    img = np.empty((60, 80, 3), np.uint8)
    img[:, :40] = (40, 160, 60)
    img[:, 40:] = (60, 100, 150)
    p = tmp_path / "field.png"
    cv2.imwrite(str(p), img)
    assert main(["health", str(p), "--model", str(tiny_models["health"].path), "--rows", "2", "--cols", "2",
                 "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    labels = {(t["row"], t["col"]): t["label"] for t in rec["tiles"]}
    assert labels == {(0, 0): "healthy", (1, 0): "healthy", (0, 1): "bare_soil", (1, 1): "bare_soil"}
    assert main(["health", str(p), "--rows", "2", "--cols", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 tiles" in out and "exg" in out


def test_bench_perception_reports_stages_and_ratios(tiny_models, capsys):
    """The benchmark runs every configuration it promises and reports the naive loop as a ratio."""
    rc = main(["bench", "perception", "--detector", str(tiny_models["yolov8_int8"].path), "--health",
               str(tiny_models["health"].path), "--frames", "3", "--warmup", "1", "--naive-frames", "2", "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["litert"]) == {"pre", "infer", "decode", "health_tiles", "health_classify", "total"}
    for v in r["litert"].values():
        assert 0 <= v["median_ms"] <= v["p99_ms"]
    assert r["ratios"]["naive_total_over_litert"] > 0
    assert "tflite_runtime" in r and r["threads"] == 2


def test_bench_without_models_says_what_is_missing(tmp_path, capsys):
    rc = main(["bench", "perception", "--detector", str(tmp_path / "none.tflite")])
    assert rc == 6
    assert "expected a detector" in capsys.readouterr().err


def test_models_eval_hands_over_to_the_training_helper(monkeypatch, tmp_path, capsys):
    """`models eval` calls agridrone.training.evaluate.cli_eval(model, data, fmt, as_json, **options) and
    returns its code."""
    import sys
    import types

    calls = []
    fake = types.ModuleType("agridrone.training.evaluate")
    fake.cli_eval = lambda *a, **kw: (calls.append((a, kw)), 3)[1]
    monkeypatch.setitem(sys.modules, "agridrone.training.evaluate", fake)
    rc = main(["models", "eval", "m.tflite", "--data", str(tmp_path), "--format", "coco", "--json",
               "--tile-scale", "0.5", "--map", "car=vehicle", "--map", "cow=animal"])
    assert rc == 3
    assert calls == [(("m.tflite", str(tmp_path), "coco", True),
                      {"tile_scale": 0.5, "tile_overlap_px": None, "label_map": ["car=vehicle", "cow=animal"]})]


def test_detect_on_a_folder_of_images(tiny_models, tmp_path, capsys):
    for name in ("b.png", "a.jpg", "notes.txt"):
        if name.endswith("txt"):
            (tmp_path / name).write_text("not an image")
        else:
            cv2.imwrite(str(tmp_path / name), np.full((40, 50, 3), 100, np.uint8))
    assert main(["models", "detect", str(tiny_models["yolov8_float"].path), str(tmp_path), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in records] == [str(tmp_path / "a.jpg"), str(tmp_path / "b.png")]
