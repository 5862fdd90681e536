"""The detection benchmark's ultralytics adapter and seed bookkeeping, on a tiny made-up set (no
torch, no TensorFlow, no training)."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import detection_seeds, peer_predictions  # noqa: E402

# Two 100x50 images, non-contiguous category ids (class index = rank of the id: 3 -> 0, 7 -> 1).
COCO = {
    "images": [{"id": 11, "file_name": "a.jpg", "width": 100, "height": 50},
               {"id": 12, "file_name": "b.jpg", "width": 100, "height": 50}],
    "categories": [{"id": 7, "name": "star"}, {"id": 3, "name": "ring"}],
    "annotations": [
        {"id": 1, "image_id": 11, "category_id": 3, "bbox": [10, 5, 20, 10], "area": 200,
         "iscrowd": 0},
        {"id": 2, "image_id": 11, "category_id": 7, "bbox": [50, 20, 40, 30], "area": 1200,
         "iscrowd": 0},
        {"id": 3, "image_id": 12, "category_id": 7, "bbox": [0, 0, 30, 30], "area": 900,
         "iscrowd": 0},
    ],
}


@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for im in COCO["images"]:
            (root / split / im["file_name"]).write_bytes(b"\xff\xd8 not decoded here")
        (root / f"{split}.json").write_text(json.dumps(COCO))
    return root


# What ultralytics gives back: xyxy pixels of the original image, a score, a class index.
PERFECT = [
    {"file_name": "/elsewhere/a.jpg", "boxes": [[10, 5, 30, 15], [50, 20, 90, 50]],
     "scores": [0.9, 0.8], "classes": [0, 1]},
    {"file_name": "b.jpg", "boxes": [[0, 0, 30, 30]], "scores": [0.7], "classes": [1]},
]


def test_yolo_copy_links_the_same_images_and_writes_normalized_labels(coco_root, tmp_path):
    yaml_path = peer_predictions.coco_to_yolo(coco_root, tmp_path / "yolo")
    yolo = tmp_path / "yolo"
    text = yaml_path.read_text()
    assert f"path: {yolo.resolve()}" in text and "val: images/val" in text
    assert '0: "ring"' in text and '1: "star"' in text  # class order: sorted category ids
    linked = yolo / "images" / "val" / "a.jpg"
    assert linked.is_symlink() and linked.resolve() == (coco_root / "val" / "a.jpg").resolve()
    lines = (yolo / "labels" / "val" / "a.txt").read_text().splitlines()
    assert lines == ["0 0.200000 0.200000 0.200000 0.200000",
                     "1 0.700000 0.700000 0.400000 0.600000"]
    assert (yolo / "labels" / "train" / "b.txt").read_text() == (
        "1 0.150000 0.300000 0.300000 0.600000\n")


def test_predictions_become_coco_results_with_the_annotations_ids(coco_root):
    results = peer_predictions.to_coco_results(PERFECT, coco_root / "val.json")
    assert results[0] == {"image_id": 11, "category_id": 3, "bbox": [10.0, 5.0, 20.0, 10.0],
                          "score": 0.9}
    assert [(r["image_id"], r["category_id"]) for r in results] == [(11, 3), (11, 7), (12, 7)]


def test_results_are_scored_by_coco_eval_as_our_rows(coco_root):
    val = coco_root / "val.json"
    perfect = peer_predictions.score_results(
        peer_predictions.to_coco_results(PERFECT, val), val, coco_root / "val")
    assert perfect == {"mAP": 1.0, "mAP50": 1.0, "images": 2}
    swapped = [dict(PERFECT[0], classes=[1, 0]), PERFECT[1]]  # a's two classes exchanged
    worse = peer_predictions.score_results(
        peer_predictions.to_coco_results(swapped, val), val, coco_root / "val")
    assert worse["mAP50"] < 1.0
    shifted = [dict(PERFECT[0], boxes=[[15, 5, 35, 15], [50, 20, 90, 50]]), PERFECT[1]]
    half = peer_predictions.score_results(  # IoU 0.6: found at 0.5, missed from 0.65 up
        peer_predictions.to_coco_results(shifted, val), val, coco_root / "val")
    assert half["mAP50"] == 1.0 and half["mAP"] < 1.0


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"file_name": "c.jpg"}, r"file_name='c.jpg' is not an image of .*val.json"),
        ({"classes": [0, 2]}, r"a.jpg: class=2 is not allowed; allowed: a class index 0..1"),
        ({"scores": [0.5]}, r"a.jpg: 2 boxes, 1 scores and 2 classes"),
    ],
)
def test_bad_predictions_are_named(coco_root, bad, message):
    with pytest.raises(ValueError, match=message):
        peer_predictions.to_coco_results([{**PERFECT[0], **bad}], coco_root / "val.json")


def test_seeds_are_combined_into_mean_and_half_range():
    assert detection_seeds.parse_seeds("0,1") == [0, 1]
    for bad in ("", "0,0", "a", "-1"):
        with pytest.raises(ValueError, match="--seeds .* is not allowed; allowed: distinct"):
            detection_seeds.parse_seeds(bad)
    first = {"row": "efm-sam", "seed": 0, "keras_mAP": 0.10, "keras_mAP50": 0.20, "params": 5,
             "tflite": {"int8": {"val_mAP50": 0.19}}, "errors": {}, "history": [1]}
    second = {"row": "efm-sam", "seed": 1, "keras_mAP": 0.14, "keras_mAP50": 0.30, "params": 5,
              "tflite": {}, "errors": {"x": "y"}}
    row = detection_seeds.combine([first, second])
    assert row["keras_mAP"] == pytest.approx(0.12) and row["spread"]["keras_mAP50"] == (
        pytest.approx(0.05))
    assert row["tflite"] == first["tflite"] and row["params"] == 5  # the first seed's
    assert [s["keras_mAP50"] for s in row["seeds"]] == [0.20, 0.30]  # each seed kept
    assert row["errors"] == {"seed 1: x": "y"}
    assert detection_seeds.mean_and_spread(row, "keras_mAP50") == "0.250 ± 0.050"
    assert detection_seeds.first_seed(row, "keras_mAP50") == 0.20
    assert detection_seeds.mean_and_spread(detection_seeds.combine([first]), "keras_mAP") == "0.100"


def test_table_and_targets_of_two_seed_rows_with_the_ultralytics_peers():
    from benchmarks import detection

    def row(name, maps, bflops):
        return detection_seeds.combine([
            {"row": name, "backbone": detection.ROWS[name][0], "neck": detection.ROWS[name][1],
             "attention": detection.ROWS[name][2], "recipe": detection.ROWS[name][3],
             "seed": seed, "keras_mAP": m, "keras_mAP50": 2 * m, "params": 10, "bflops": bflops,
             "errors": {}} for seed, m in enumerate(maps)])

    result = {"args": {"size": 128}, "rows": [
        row("efm-sam-n", (0.50, 0.54), 0.303), row("efm-sam", (0.62, 0.64), 0.474),
        row("yolov8n", (0.50, 0.52), 0.328), row("yolo11n", (0.54, 0.56), 0.260)]}
    text = detection.table(result)
    assert "| yolov8n | yolov8n | ultralytics | ultralytics | 0.510 ± 0.010 | 1.020 ± 0.020 |" in text
    verdicts = {what: (v, numbers) for what, v, numbers in detection.targets(result)}
    assert verdicts["efm-sam-n (scale n, at most YOLOv8n's BFLOPs) mAP above yolov8n's"] == (
        "met", "mAP 0.520 vs 0.510; BFLOPs 0.303 vs YOLOv8n's 0.328 (yolov8n: 0.328)")
    # YOLO11n has fewer BFLOPs (0.260), but the budget is YOLOv8n's; here its mAP is higher.
    assert verdicts["efm-sam-n (scale n, at most YOLOv8n's BFLOPs) mAP above yolo11n's"][0] == (
        "missed")
    assert verdicts["efm-sam (the defaults) mAP >= 1.2x YOLOv8n's"] == (
        "met", "0.630 / 0.510 = 1.24x")
