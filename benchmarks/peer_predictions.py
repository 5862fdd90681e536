"""The ultralytics peer rows of `benchmarks.detection`, on our side: the YOLO-format copy of the
benchmark's COCO data, and the peer's predictions turned into COCO results and scored by
`keras_csp.coco_eval` (the metric of our rows). Pure Python (json, os): no TensorFlow, no torch.

    data_yaml = coco_to_yolo(work / "data", work / "yolo")   # same JPEGs, YOLO labels
    # .venv-yolo/bin/python -m benchmarks.ultralytics_peer ... writes predictions.json
    results = to_coco_results(predictions, work / "data" / "val.json")
    score_results(results, work / "data" / "val.json", work / "data" / "val")  # {"mAP", ...}

The copy links the COCO copy's JPEGs (the peer reads the very bytes our rows read) and writes one
label file per image: `class cx cy w h`, normalized, the class being the rank of the category id
among the sorted ids (training's rule, `keras_csp.lite.coco`). Predictions come back as ultralytics
gives them: xyxy pixel boxes in the original image's coordinates, a score and that class index
per box; `to_coco_results` maps the file name to the annotation's image id and the class index to
its category id.
"""

import json
import os
from pathlib import Path

SPLITS = ("train", "val")


def _load(annotations):
    with open(annotations, encoding="utf-8") as f:
        return json.load(f)


def category_ids(coco):
    """The category ids of a COCO dict in class order (sorted, as training ranks them)."""
    return sorted(int(c["id"]) for c in coco["categories"])


def _label_lines(coco):
    """`{image id: "class cx cy w h" lines}` of a COCO dict (crowd boxes left out, as training)."""
    rank = {c: k for k, c in enumerate(category_ids(coco))}
    sizes = {im["id"]: (float(im["width"]), float(im["height"])) for im in coco["images"]}
    lines = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        if a.get("iscrowd"):
            continue
        width, height = sizes[a["image_id"]]
        x, y, w, h = (float(v) for v in a["bbox"])
        lines[a["image_id"]].append(
            f"{rank[int(a['category_id'])]} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} "
            f"{w / width:.6f} {h / height:.6f}\n"
        )
    return lines


def coco_to_yolo(coco_root, out_dir, splits=SPLITS):
    """Writes the YOLO copy of `coco_root/{split}.json` + `coco_root/{split}/` into `out_dir`
    (`data.yaml`, `images/{split}/` links to the JPEGs, `labels/{split}/`), atomically; returns
    the YAML's path. The class names are the categories' in class order."""
    from keras_csp.files import atomic_folder

    coco_root, out_dir = Path(coco_root).resolve(), Path(out_dir).resolve()
    names = None
    with atomic_folder(out_dir) as tmp:
        for split in splits:
            coco = _load(coco_root / f"{split}.json")
            by_id = {int(c["id"]): c.get("name", str(c["id"])) for c in coco["categories"]}
            split_names = [by_id[c] for c in category_ids(coco)]
            if names is not None and split_names != names:
                raise ValueError(
                    f"{coco_root / f'{split}.json'} has categories {split_names}, the other split "
                    f"{names}; allowed: the same categories in every split."
                )
            names = split_names
            images, labels = tmp / "images" / split, tmp / "labels" / split
            os.makedirs(images)
            os.makedirs(labels)
            lines = _label_lines(coco)
            for im in coco["images"]:
                source = coco_root / split / im["file_name"]
                os.symlink(source, images / Path(im["file_name"]).name)
                stem = Path(im["file_name"]).stem
                (labels / f"{stem}.txt").write_text("".join(lines[im["id"]]))
        # `path` absolute: ultralytics resolves the splits against it wherever it runs.
        yaml_text = f"path: {out_dir}\n" + "".join(f"{s}: images/{s}\n" for s in splits)
        yaml_text += "names:\n" + "".join(f"  {k}: {json.dumps(n)}\n" for k, n in enumerate(names))
        (tmp / "data.yaml").write_text(yaml_text)
    return out_dir / "data.yaml"


def to_coco_results(predictions, annotations):
    """ultralytics' predictions -> COCO results (`image_id`, `category_id`, `bbox` xywh, `score`).

    Args:
        predictions: one dict per image: `{"file_name": the image's name (a path: its base name
            is used), "boxes": [[x1, y1, x2, y2], ...] pixels in the original image, "scores":
            [...], "classes": [class index, ...]}`.
        annotations: the COCO JSON whose images were predicted (its ids and categories are used).
    """
    coco = _load(annotations)
    image_ids = {Path(im["file_name"]).name: im["id"] for im in coco["images"]}
    ids = category_ids(coco)
    results = []
    for item in predictions:
        name = Path(item["file_name"]).name
        if name not in image_ids:
            raise ValueError(
                f"file_name={item['file_name']!r} is not an image of {annotations}; allowed: "
                "the file names of its 'images'."
            )
        boxes, scores, classes = item["boxes"], item["scores"], item["classes"]
        if not len(boxes) == len(scores) == len(classes):
            raise ValueError(
                f"{name}: {len(boxes)} boxes, {len(scores)} scores and {len(classes)} classes; "
                "allowed: one score and one class per box."
            )
        for (x1, y1, x2, y2), score, k in zip(boxes, scores, classes):
            if int(k) != k or not 0 <= int(k) < len(ids):
                raise ValueError(
                    f"{name}: class={k!r} is not allowed; allowed: a class index 0..{len(ids) - 1}."
                )
            results.append({
                "image_id": image_ids[name], "category_id": ids[int(k)],
                "bbox": [round(float(x1), 3), round(float(y1), 3),
                         round(float(x2 - x1), 3), round(float(y2 - y1), 3)],
                "score": round(float(score), 5),
            })
    return results


def score_results(results, annotations, images_dir):
    """`{"mAP", "mAP50", "images"}` of COCO results on a COCO set: `keras_csp.coco_eval`'s
    `coco_metrics` (keras-cv's BoxCOCOMetrics on pycocotools, the metric of our rows) on every
    image of `annotations`, ground truth as `keras_csp.lite.coco.read_coco` reads it."""
    from keras_csp.coco_eval import coco_metrics
    from keras_csp.lite.coco import read_coco

    coco = _load(annotations)
    id_of = {os.path.join(str(images_dir), im["file_name"]): im["id"] for im in coco["images"]}
    _, records, _ = read_coco(str(annotations), str(images_dir))
    found = {}
    for r in results:
        x, y, w, h = r["bbox"]
        found.setdefault(r["image_id"], []).append(
            (x, y, x + w, y + h, r["score"], r["category_id"])
        )
    ground_truth, detections = [], []
    for path, boxes, classes in records:
        ground_truth.append((boxes, classes))
        detections.append(found.get(id_of[path], []))
    return {**coco_metrics(ground_truth, detections), "images": len(records)}
