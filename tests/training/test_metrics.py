"""Detection mAP and classification scores on hand-made cases with known answers."""

import numpy as np
import pytest

from agridrone.training.metrics import box_iou, classification_report, detection_map


def _img(boxes, classes, scores=None):
    b = np.array(boxes, np.float32).reshape(-1, 4)
    c = np.array(classes, np.int32)
    return (b, np.array(scores, np.float32), c) if scores is not None else (b, c)


def test_iou_of_known_boxes():
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert iou[0] == pytest.approx([1.0, 50 / 150, 0.0])


def test_perfect_detections_score_one():
    gts = [_img([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1])]
    preds = [_img([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1], [0.9, 0.8])]
    r = detection_map(preds, gts, 2)
    assert r["map50"] == pytest.approx(1.0)
    assert r["map50_95"] == pytest.approx(1.0)


def test_false_positive_ranked_first_halves_precision_at_full_recall():
    # class 0: FP (score 0.9) then TP (0.8): precision at recall 1 is 0.5 -> AP = 0.5 (101-point)
    gts = [_img([[0, 0, 10, 10]], [0])]
    preds = [_img([[50, 50, 60, 60], [0, 0, 10, 10]], [0, 0], [0.9, 0.8])]
    assert detection_map(preds, gts, 1)["map50"] == pytest.approx(0.5)


def test_half_recall_gives_about_half_ap():
    gts = [_img([[0, 0, 10, 10], [30, 30, 40, 40]], [0, 0])]
    preds = [_img([[0, 0, 10, 10]], [0], [0.9])]
    # precision 1 up to recall 0.5: 51 of 101 recall points
    assert detection_map(preds, gts, 1)["map50"] == pytest.approx(51 / 101)


def test_iou_threshold_matters_for_map50_95():
    # IoU 0.6 with the ground truth: a hit at 0.50 and 0.55 and 0.60, a miss above -> AP50-95 = 3/10
    gts = [_img([[0, 0, 10, 10]], [0])]
    preds = [_img([[0, 0, 10, 6]], [0], [0.9])]
    r = detection_map(preds, gts, 1)
    assert r["map50"] == pytest.approx(1.0)
    assert r["map50_95"] == pytest.approx(0.3)


def test_duplicate_detection_is_a_false_positive_and_wrong_class_does_not_count():
    gts = [_img([[0, 0, 10, 10]], [0])]
    preds = [_img([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0, 0, 1], [0.9, 0.8, 0.95])]
    r = detection_map(preds, gts, 2)
    assert r["ap50"][0] == pytest.approx(1.0)   # the duplicate comes after full recall
    assert r["ap50"][1] is None                 # no ground truth of class 1: left out of the mean
    assert r["map50"] == pytest.approx(1.0)


def test_missing_class_predictions_score_zero():
    gts = [_img([[0, 0, 10, 10]], [0]), _img([[0, 0, 10, 10]], [1])]
    preds = [_img([[0, 0, 10, 10]], [0], [0.9]), _img([], [], [])]
    r = detection_map(preds, gts, 2)
    assert r["ap50"] == [pytest.approx(1.0), 0.0]
    assert r["map50"] == pytest.approx(0.5)


def test_classification_report_known_confusion():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 1, 0])
    r = classification_report(y, p, 3)
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert r["precision"][0] == pytest.approx(2 / 3)
    assert r["recall"][1] == pytest.approx(1.0)
    assert r["f1"][2] == 0.0
    assert r["f1"][1] == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))


def test_ap_by_size_scores_each_bucket_on_its_own_ground_truth():
    # one image: a 6 px object found, a 12 px object missed, a 40 px object found; plus a 12 px false alarm
    # in another image. tiny: AP 1; small: the miss and the false alarm, AP 0; large: AP 1.
    gts = [_img([[0, 0, 6, 6], [20, 20, 32, 32], [50, 50, 90, 90]], [0, 0, 0]), _img([], [])]
    preds = [_img([[0, 0, 6, 6], [50, 50, 90, 90]], [0, 0], [0.9, 0.8]), _img([[0, 0, 12, 12]], [0], [0.95])]
    r = detection_map(preds, gts, 1)["by_size"]
    assert r["tiny"]["map50"] == pytest.approx(1.0) and r["tiny"]["gt"] == 1
    assert r["small"]["map50"] == pytest.approx(0.0) and r["small"]["gt"] == 1
    assert r["medium"]["map50"] is None and r["medium"]["gt"] == 0
    assert r["large"]["map50"] == pytest.approx(1.0)


def test_ap_by_size_ignores_detections_of_other_sizes_and_matches_to_other_sizes():
    # a 40 px false alarm ranked first does not hurt the tiny bucket; a detection that matches a large
    # object does not count as a tiny false positive even when it is drawn small enough to be "tiny"
    gts = [_img([[0, 0, 6, 6], [100, 100, 108, 108]], [0, 0])]
    preds = [_img([[50, 50, 90, 90], [0, 0, 6, 6]], [0, 0], [0.99, 0.5])]
    r = detection_map(preds, gts, 1)["by_size"]
    assert r["tiny"]["gt"] == 1 and r["tiny"]["map50"] == pytest.approx(1.0)
    assert r["small"]["gt"] == 1 and r["small"]["map50"] == pytest.approx(0.0)
    gts = [_img([[0, 0, 9, 9]], [0])]                # 9 px: small
    preds = [_img([[0, 0, 7, 7]], [0], [0.9])]       # 7 px box on it, IoU 0.6: a hit, not a tiny false alarm
    r = detection_map(preds, gts, 1)["by_size"]
    assert r["small"]["map50"] == pytest.approx(1.0)
    assert r["tiny"]["gt"] == 0 and r["tiny"]["map50"] is None


def test_ap_by_size_can_be_left_out_for_a_quick_look():
    gts = [_img([[0, 0, 6, 6]], [0])]
    preds = [_img([[0, 0, 6, 6]], [0], [0.9])]
    quick = detection_map(preds, gts, 1, by_size=False)
    assert "by_size" not in quick and quick["map50"] == pytest.approx(1.0)
