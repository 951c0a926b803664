"""Loaders (YOLO, COCO, VOC, class folders), split/merge, and validation of broken datasets."""

import json

import cv2
import numpy as np
import pytest

from agridrone.errors import DatasetError
from agridrone.training.datasets import (load_classification, load_detection, merge_detection, resplit,
                                         write_yolo)
from agridrone.training.validate import validate_classification, validate_detection


def _img(path, w=100, h=50):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))


def _yolo(root, labels: dict, names=("a", "b"), split="train"):
    (root).mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(f"{split}: images/{split}\nnames: [" + ", ".join(names) + "]\n")
    for stem, text in labels.items():
        _img(root / "images" / split / f"{stem}.jpg")
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / f"{stem}.txt").write_text(text)
    return root


def _coco(root, anns, images=(("x.jpg", 100, 50),), cats=((1, "a"), (2, "b")), write_images=True):
    root.mkdir(parents=True, exist_ok=True)
    for fn, w, h in images:
        if write_images:
            _img(root / "images" / fn, w, h)
    data = {"images": [{"id": i + 1, "file_name": fn, "width": w, "height": h} for i, (fn, w, h) in enumerate(images)],
            "annotations": [{"id": k, "image_id": a[0], "category_id": a[1], "bbox": a[2], "iscrowd": 0}
                            for k, a in enumerate(anns)],
            "categories": [{"id": i, "name": n} for i, n in cats]}
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data))
    return root


def _voc(root, objects, size=(100, 50), stem="x", write_image=True):
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    if write_image:
        _img(root / "JPEGImages" / f"{stem}.jpg", *size)
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    (root / "Annotations" / f"{stem}.xml").write_text(
        f"<annotation><filename>{stem}.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"<depth>3</depth></size>{objs}</annotation>")
    return root


def test_yolo_boxes_are_normalised_xyxy(tmp_path):
    ds = load_detection(_yolo(tmp_path / "y", {"i1": "0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.2 0.2\n"}))
    assert ds.fmt == "yolo" and ds.names == ("a", "b")
    it = ds.items[0]
    assert it.boxes[0] == pytest.approx([0.4, 0.3, 0.6, 0.7])
    assert it.classes.tolist() == [0, 1]
    assert validate_detection(ds).ok


def test_coco_boxes_are_normalised_by_the_image_size(tmp_path):
    ds = load_detection(_coco(tmp_path / "c", [(1, 2, [10, 5, 20, 10]), (1, 1, [0, 0, 100, 50])]))
    assert ds.fmt == "coco" and ds.names == ("a", "b")
    assert ds.items[0].boxes[0] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    assert ds.items[0].classes.tolist() == [1, 0]
    assert validate_detection(ds).ok


def test_voc_boxes_and_names(tmp_path):
    ds = load_detection(_voc(tmp_path / "v", [("b", (10, 5, 30, 15)), ("a", (0, 0, 50, 50))]))
    assert ds.fmt == "voc" and ds.names == ("a", "b")
    assert ds.items[0].boxes[0] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    assert ds.items[0].classes.tolist() == [1, 0]


@pytest.mark.parametrize("text, expect", [
    ("7 0.5 0.5 0.2 0.2\n", "class id 7 out of range"),
    ("0 0.95 0.5 0.2 0.2\n", "box outside the image"),
    ("0 0.5 0.5 0.2\n", "expected 5 fields"),
    ("0 0.5 zero 0.2 0.2\n", "expected numbers"),
])
def test_broken_yolo_labels_are_reported_with_their_place(tmp_path, text, expect):
    root = _yolo(tmp_path / "y", {"good": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.1 0.1\n", "bad": text})
    report = validate_detection(load_detection(root))
    assert not report.ok
    hits = [i for i in report.errors if expect in i.what]
    assert hits and "bad.txt:1" in hits[0].where
    with pytest.raises(DatasetError, match="refusing to train"):
        report.raise_if_broken()


def test_label_without_image_is_a_missing_image(tmp_path):
    root = _yolo(tmp_path / "y", {"good": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.1 0.1\n"})
    (root / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = validate_detection(load_detection(root))
    assert any("missing image" in i.what and "ghost.txt" in i.where for i in report.errors)


def test_empty_class_is_an_error(tmp_path):
    root = _yolo(tmp_path / "y", {"good": "0 0.5 0.5 0.2 0.2\n"}, names=("a", "b", "c"))
    report = validate_detection(load_detection(root))
    assert {i.what for i in report.errors} >= {"empty class 'b': no instance anywhere in the dataset",
                                              "empty class 'c': no instance anywhere in the dataset"}


def test_coco_missing_image_bad_category_and_box_outside(tmp_path):
    root = _coco(tmp_path / "c", [(1, 9, [0, 0, 5, 5]), (1, 1, [90, 0, 30, 10]), (1, 2, [0, 0, 5, 5])],
                 images=(("x.jpg", 100, 50), ("gone.jpg", 100, 50)), write_images=False)
    _img(root / "images" / "x.jpg")
    errors = " | ".join(str(i) for i in validate_detection(load_detection(root)).errors)
    assert "category_id 9 out of range" in errors
    assert "box outside the image" in errors
    assert "missing image file gone.jpg" in errors


def test_voc_box_outside_and_missing_image(tmp_path):
    root = _voc(tmp_path / "v", [("a", (10, 5, 130, 15)), ("b", (1, 1, 5, 5))])
    _voc(root, [("a", (1, 1, 5, 5))], stem="y", write_image=False)
    errors = " | ".join(str(i) for i in validate_detection(load_detection(root)).errors)
    assert "box outside the image" in errors and "missing image JPEGImages/y.jpg" in errors


def test_mixed_formats_are_refused(tmp_path):
    root = _yolo(tmp_path / "m", {"good": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.1 0.1\n"})
    _voc(root, [("a", (1, 1, 5, 5))])
    report = validate_detection(load_detection(root, "yolo"))
    assert any("mixed formats" in i.what for i in report.errors)


def test_not_a_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="expected YOLO"):
        load_detection(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_detection(tmp_path / "nope")


def test_unsplit_dataset_gets_a_stable_split(tmp_path):
    labels = {f"i{k}": "0 0.5 0.5 0.2 0.2\n" for k in range(40)}
    root = tmp_path / "y"
    root.mkdir()
    (root / "classes.txt").write_text("a\n")
    for stem, text in labels.items():
        _img(root / "images" / f"{stem}.jpg", 8, 8)
        (root / "labels").mkdir(exist_ok=True)
        (root / "labels" / f"{stem}.txt").write_text(text)
    a, b = load_detection(root), load_detection(root)
    assert [i.split for i in a.items] == [i.split for i in b.items]
    assert {"train", "val", "test"} >= {i.split for i in a.items} and len(a.split("train")) > 20
    c = resplit(a, (0.5, 0.25, 0.25), seed=3)
    assert len(c.items) == 40 and len(c.split("train")) < len(a.split("train"))


def test_merge_unites_class_names_and_round_trips_through_yolo(tmp_path):
    y = load_detection(_yolo(tmp_path / "y", {"i1": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.1 0.1\n"}, names=("a", "b")))
    v = load_detection(_voc(tmp_path / "v", [("c", (10, 5, 30, 15)), ("b", (0, 0, 50, 50))]))
    m = merge_detection([y, v])
    assert m.names == ("a", "b", "c")
    assert sorted(np.concatenate([it.classes for it in m.items]).tolist()) == [0, 1, 1, 2]
    back = load_detection(write_yolo(m, tmp_path / "merged"))
    assert back.names == ("a", "b", "c") and len(back.items) == 2
    assert sorted(np.concatenate([it.classes for it in back.items]).tolist()) == [0, 1, 1, 2]
    assert not back.issues


def test_class_folders(tmp_path):
    for split in ("train", "val"):
        for c in ("weeds", "healthy"):
            for k in range(2):
                _img(tmp_path / split / c / f"{k}.png", 8, 8)
    (tmp_path / "train" / "weeds" / "notes.txt").write_text("x")
    ds = load_classification(tmp_path)
    assert ds.names == ("healthy", "weeds") and len(ds.split("train")) == 4
    report = validate_classification(ds)
    assert report.ok and any("not an image" in i.what for i in report.issues)
    canon = load_classification(tmp_path, canonical=("weeds", "healthy"))
    assert canon.names == ("weeds", "healthy")


def test_empty_class_folder_is_refused(tmp_path):
    _img(tmp_path / "a" / "0.png", 8, 8)
    (tmp_path / "b").mkdir()
    report = validate_classification(load_classification(tmp_path))
    assert any("empty class 'b'" in i.what for i in report.errors)


def test_cli_merge_and_split(tmp_path, capsys):
    from agridrone.cli import main

    y = _yolo(tmp_path / "y", {f"i{k}": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.1 0.1\n" for k in range(6)})
    v = _voc(tmp_path / "v", [("c", (10, 5, 30, 15))])
    assert main(["train", "merge", "--data", str(y), "--data", str(v), "--out", str(tmp_path / "m"),
                 "--split", "0.5,0.25,0.25"]) == 0
    merged = load_detection(tmp_path / "m")
    assert merged.names == ("a", "b", "c") and len(merged.items) == 7
    assert main(["train", "merge", "--data", str(y), "--out", str(tmp_path / "n"), "--split", "1,2"]) == 2
    assert "--split: expected three numbers" in capsys.readouterr().err
