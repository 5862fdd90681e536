"""COCO mAP / mAP50 of a detector on a COCO-format set, without TensorFlow (numpy, pycocotools).

    from keras_csp import coco_eval, lite
    model = lite.LiteModel("det.tflite")
    coco_eval.evaluate_detector(model, "val.json", "val/")     # {"mAP", "mAP50", "count", ...}

`keras-csp evaluate det.tflite --data val.json --images-dir val/` runs this; `--data data.yaml`
(YOLO, its `val` split) and `--data VOC_ROOT` (its `val` image set) too: `read_detection_set`
reads any of the three into one shape. The Keras model is
measured the same way by `keras_csp.export.accuracy.evaluate_keras_detector`, so the two numbers
differ by conversion and quantization alone.

The steps are training's validation, step by step:

- the annotations are read and checked by `keras_csp.lite.coco.read_coco`, `lite.yolo.read_yolo`
  or `lite.voc.read_voc` (the readers of `coco_detection`, `yolo_detection`, `voc_detection`);
  classes are the category ids in sorted order; VOC's `difficult` objects are ignored (COCO's
  crowd flag: neither a miss nor, when found, a false positive);
- each image is letterboxed to the model's input as `coco_detection` does (longer side resized,
  bottom/right padded with zeros), its boxes scaled with it;
- boxes are suppressed as keras-cv's `NonMaxSuppression` does in `CSPDetector.predict`, with
  CSPDetector's IoU 0.5 and 100 boxes but COCO's score threshold 0.001 (as training's validation;
  `keras_csp.lite.detections`);
- the metric is `coco_metrics`, keras-cv's `BoxCOCOMetrics` (the training's `val_mAP`) rewritten
  on pycocotools without TensorFlow, quirks included (tested to give the same numbers).
"""

import contextlib
import io
import os
from typing import NamedTuple

import numpy as np

from keras_csp import lite
from keras_csp.images import letterbox  # noqa: F401  (coco_eval.letterbox: public before)
from keras_csp.lite.coco import read_coco
from keras_csp.lite.voc import read_voc
from keras_csp.lite.yolo import read_yolo

# The detection data formats, and how a path names one when no format is given.
DATA_FORMATS = ("coco", "yolo", "voc")

# COCO's evaluation protocol keeps every box scored above 0.001, so that mAP ranks all of a
# model's boxes. A deployment threshold (CSPDetector's 0.2) would score only confident boxes and,
# through keras-cv's quirk of evaluating only images with at least one box, reward a model for
# finding nothing in the hard images. Training's validation (`keras_csp.train.tasks`) uses it too.
COCO_SCORE_THRESHOLD = 0.001
# CSPDetector's non-max suppression defaults (iou_threshold, max_detections).
DEFAULT_IOU_THRESHOLD = 0.5
DEFAULT_MAX_DETECTIONS = 100


def coco_metrics(ground_truth, detections):
    """`{"mAP", "mAP50"}` of per-image detections, as keras-cv's `BoxCOCOMetrics` computes them.

    Args:
        ground_truth: per image, `(boxes (n, 4) xyxy, classes (n,))`, or `(boxes, classes,
            ignore (n,) flags)`: an ignored box (VOC's difficult) is given to pycocotools as a
            crowd box, which a detection may match without counting as found or false.
        detections: per image, a list of `(x1, y1, x2, y2, score, class)`.

    keras-cv's conventions, kept so the numbers equal training's: class indices are the category
    ids, a box's area is its width x height (COCO's small/medium/large split uses it), the
    categories are those in the ground truth, and only images with at least one detection are
    evaluated (keras-cv sets `imgIds` from the detections).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(detections):
        raise ValueError(
            f"ground_truth has {len(ground_truth)} images but detections {len(detections)}; "
            "allowed: one entry per image in both."
        )
    images, annotations, predictions = [], [], []
    for image_id, (truth, found) in enumerate(zip(ground_truth, detections), 1):
        images.append({"id": image_id})
        boxes, classes = truth[0], truth[1]
        ignore = truth[2] if len(truth) > 2 else [False] * len(classes)
        for (x1, y1, x2, y2), c, crowd in zip(
            np.asarray(boxes, np.float64).reshape(-1, 4), classes, ignore
        ):
            w, h = x2 - x1, y2 - y1
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(c),
                "iscrowd": int(bool(crowd)), "bbox": [x1, y1, w, h], "area": w * h,
            })
        for x1, y1, x2, y2, score, c in found:
            w, h = x2 - x1, y2 - y1
            predictions.append({
                "id": len(predictions) + 1, "image_id": image_id, "category_id": int(c),
                "score": float(score), "bbox": [x1, y1, w, h], "area": w * h,
                "segmentation": [[x1, y1, x1, y2, x2, y2, x2, y1]],
            })
    if not predictions or not annotations:
        return {"mAP": 0.0, "mAP50": 0.0}
    categories = [{"id": c} for c in sorted({a["category_id"] for a in annotations})]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations, "categories": categories}
        truth.createIndex()
        found = COCO()
        found.dataset = {"images": images, "annotations": predictions, "categories": categories}
        found.createIndex()
        evaluation = COCOeval(truth, found, iouType="bbox")
        evaluation.params.imgIds = sorted({p["image_id"] for p in predictions})
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    # keras-cv clips pycocotools' -1 (no ground truth in a category/area) to 0.
    return {"mAP": max(float(stats[0]), 0.0), "mAP50": max(float(stats[1]), 0.0)}


class DetectionSet(NamedTuple):
    """One split of a detection data set, as evaluation reads it (`read_detection_set`).

    `categories` is `{category id: name}` (a model's class index is the rank of the id, as in
    training); `records` a list of `(image path, boxes [[x1, y1, x2, y2] pixels], category ids,
    ignore flags)` per image; `data_format` one of `DATA_FORMATS`; `source` the path read.
    """

    categories: dict
    records: list
    data_format: str
    source: str


def detection_format(data, data_format=None):
    """The format of `data`: `data_format` if given, else from the path (`.json`: COCO,
    `.yaml`/`.yml`: YOLO, a folder with `Annotations/`: VOC)."""
    if data_format is not None:
        if data_format not in DATA_FORMATS:
            raise ValueError(
                f"data_format={data_format!r} is not allowed; allowed: {', '.join(DATA_FORMATS)}."
            )
        return data_format
    path = str(data)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".json":
        return "coco"
    if suffix in (".yaml", ".yml"):
        return "yolo"
    if os.path.isdir(os.path.join(path, "Annotations")):
        return "voc"
    raise ValueError(
        f"data={path!r} is not a detection set; allowed: a COCO .json file, a YOLO data .yaml, "
        "or a Pascal VOC root (a folder with Annotations/), or data_format= naming the format."
    )


def read_detection_set(data, images_dir=None, split="val", data_format=None, *,
                       clip_boxes=False, train_split="train", class_names=None):
    """One split of a COCO, YOLO or VOC detection set as a `DetectionSet`.

    Args:
        data: a COCO annotation `.json` (the split is the file), a YOLO data `.yaml` or a VOC
            root folder; a `DetectionSet` is returned as it is.
        images_dir: COCO only: the folder of the file's images (default: the JSON's folder).
        split: YOLO: the data YAML's key (`"val"`, `"train"`, `"test"`); VOC: the image set
            (`ImageSets/Main/<split>.txt`). Not used for COCO.
        data_format: `"coco"`, `"yolo"` or `"voc"`; default: from the path (`detection_format`).
        clip_boxes: COCO only, as `coco_detection`'s.
        train_split: VOC only: the image set whose sorted object names are the classes
            (training's).
        class_names: VOC only: the class names in the model's class order instead (a model
            trained on another format's data, or on VOC's 20 classes in their usual order).
    """
    if isinstance(data, DetectionSet):
        return data
    data_format = detection_format(data, data_format)
    if data_format != "voc" and class_names is not None:
        raise ValueError(
            f"class_names applies to VOC sets; a {data_format.upper()} set names its classes "
            "itself: allowed: class_names=None."
        )
    if data_format != "coco" and images_dir is not None:
        raise ValueError(
            f"images_dir={str(images_dir)!r} applies to COCO files; a {data_format.upper()} set "
            "finds its images itself: allowed: images_dir=None."
        )
    if data_format == "coco":
        folder = images_dir if images_dir is not None else os.path.dirname(os.path.abspath(data))
        categories, records, _ = read_coco(data, folder, clip_boxes=clip_boxes)
        records = [(p, b, c, [False] * len(c)) for p, b, c in records]
    elif data_format == "yolo":
        categories, records = read_yolo(data, split)
    else:
        categories, records = read_voc(data, split, class_names, train_set=train_split)
    return DetectionSet(categories, records, data_format, str(data))


def evaluate_detector(
    model,
    annotations,
    images_dir=None,
    *,
    split="val",
    data_format=None,
    score_threshold=COCO_SCORE_THRESHOLD,
    iou_threshold=DEFAULT_IOU_THRESHOLD,
    max_detections=DEFAULT_MAX_DETECTIONS,
    batch_size=16,
    clip_boxes=False,
    input_size=None,
):
    """COCO mAP and mAP50 of a detector on a COCO-format set (see the module docstring).

    Args:
        model: a detector `.tflite` path, a `keras_csp.lite.LiteModel`, or a function from uint8
            images (n, height, width, 3) to the exported detector outputs (`boxes` (n, A, 4) xyxy
            pixels and `scores` (n, A, classes), or after suppression with `classes`); a function
            needs `input_size`.
        annotations: the data: a COCO JSON, a YOLO data YAML, a VOC root or a `DetectionSet`
            (`read_detection_set`'s `data`).
        images_dir, split, data_format: as `read_detection_set`'s (COCO's images folder, the
            YOLO/VOC split, the format if its path does not say it).
        score_threshold, iou_threshold, max_detections: of the non-max suppression.
        clip_boxes: as `coco_detection`'s: clip ground-truth boxes that stick out of their image.

    Returns:
        `{"mAP", "mAP50", "count" (images evaluated), "boxes" (ground-truth boxes, ignored ones
        not counted), "ignored" (VOC's difficult boxes), "classes", "skipped", "skipped_files"}`;
        unreadable images are skipped and listed, as in training.
    """
    _check_arguments(batch_size, score_threshold, iou_threshold)
    predict, size = _predictor(model, input_size)
    categories, records, _, source = read_detection_set(
        annotations, images_dir, split, data_format, clip_boxes=clip_boxes
    )
    suppression = (score_threshold, iou_threshold, max_detections)
    ground_truth, found, skipped = _predict_all(
        predict, size, records, sorted(categories), suppression, batch_size
    )
    if not ground_truth:
        raise ValueError(
            f"none of the {len(records)} image(s) of {source!r} could be "
            f"decoded ({lite.describe_skipped(skipped)}); allowed: readable image files."
        )
    metrics = coco_metrics(ground_truth, found)
    return {
        **metrics,
        "count": len(ground_truth),
        "boxes": sum(len(t[1]) - sum(t[2]) for t in ground_truth),
        "ignored": sum(sum(t[2]) for t in ground_truth),
        "classes": len(categories),
        "skipped": len(skipped),
        "skipped_files": [path for path, _ in skipped],
    }


def _check_arguments(batch_size, score_threshold, iou_threshold):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not allowed; allowed: an integer >= 1.")
    for name, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name}={value!r} is not allowed; allowed: a number in [0, 1].")


def _predictor(model, input_size):
    """`(predict, (height, width))` of a detector path, `LiteModel` or function."""
    if callable(model) and not isinstance(model, lite.LiteModel):
        if input_size is None:
            raise ValueError("input_size=None is not allowed with a function; allowed: (h, w).")
        return model, lite.check_image_size(input_size, "input_size")
    model = model if isinstance(model, lite.LiteModel) else lite.LiteModel(model)
    if model.kind != "detector":
        raise ValueError(
            f"model={str(model.path)!r} is a {model.kind} (outputs {model.output_names}); "
            "allowed: a detector, whose outputs are 'boxes' and 'scores'."
        )
    return model, model.input_size


def _predict_all(predict, size, records, category_ids, suppression, batch_size):
    """`(ground truth, detections, skipped)` of every readable image of `records`, letterboxed
    to `size`; classes are the indices of `category_ids` (sorted), as in training."""
    class_of = {c: k for k, c in enumerate(category_ids)}
    ground_truth, found, skipped = [], [], []
    for start in range(0, len(records), batch_size):
        chunk, images = [], []
        for path, boxes, ids, ignore in records[start : start + batch_size]:
            try:
                image, scale = letterbox(lite.load_image(path), size)
            except lite.UnreadableImageError as e:
                skipped.append((path, str(e)))
                continue
            images.append(image)
            classes = [class_of[c] for c in ids]
            boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * scale
            chunk.append((boxes, classes, [bool(i) for i in ignore]))
        if not images:
            continue
        outputs = predict(np.stack(images))
        for i, truth in enumerate(chunk):
            ground_truth.append(truth)
            found.append(lite.detections(outputs, i, *suppression))
    return ground_truth, found, skipped
