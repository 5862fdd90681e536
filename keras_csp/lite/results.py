"""What a model's outputs mean: top-k classes, detections (with the non-max suppression the TFLite
detectors leave to the device), and boxes drawn onto an image."""

import os
from pathlib import Path

import numpy as np

from keras_csp.images import pil



def top_k(probabilities, k=5):
    """`[(class index, probability)]`, highest first."""
    p = np.asarray(probabilities).reshape(-1)
    order = np.argsort(-p, kind="stable")[:k]
    return [(int(i), float(p[i])) for i in order]


def detections(outputs, index=0, score_threshold=0.25, iou_threshold=0.5, max_detections=100):
    """`[(x1, y1, x2, y2, score, class)]` of one image from a detector's outputs, best first.

    Outputs after non-max suppression (`boxes` (N, K, 4), `scores` (N, K), `classes`) are read as
    they are; outputs before it (`scores` (N, A, classes), no `classes`: what a TFLite detector
    returns) are suppressed here, as keras-cv's NonMaxSuppression does: each anchor keeps its best
    class, then boxes overlapping a better one by more than `iou_threshold` are dropped.
    """
    boxes = np.asarray(outputs["boxes"], dtype="float32")[index].reshape(-1, 4)
    scores = np.asarray(outputs["scores"], dtype="float32")[index]
    if "classes" not in outputs and scores.ndim == 2:
        classes = np.argmax(scores, axis=-1)
        scores = scores[np.arange(len(scores)), classes]
        keep = _suppress(boxes, scores, score_threshold, iou_threshold, max_detections)
        return [(*map(float, boxes[i]), float(scores[i]), int(classes[i])) for i in keep]
    scores = scores.reshape(-1)
    classes = np.asarray(outputs.get("classes", np.zeros_like(scores)))[index].reshape(-1)
    count = len(scores)
    if "num_detections" in outputs:
        count = min(count, int(np.asarray(outputs["num_detections"]).reshape(-1)[index]))
    result = [
        (*map(float, boxes[i]), float(scores[i]), int(round(float(classes[i]))))
        for i in range(count)
        if scores[i] > score_threshold
    ]
    return sorted(result, key=lambda d: -d[4])[:max_detections]


def _suppress(boxes, scores, score_threshold, iou_threshold, max_detections):
    """Greedy non-max suppression: indices of the kept boxes, best score first."""
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > score_threshold]
    x1, y1, x2, y2 = boxes.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    order = np.array(order, dtype=int)
    while order.size and len(keep) < max_detections:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0)
        overlap = w * h
        iou = overlap / np.maximum(area[best] + area[rest] - overlap, 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


def draw_boxes(image, boxes, path, class_names=None):
    """Draws `detections(...)` onto a copy of `image` (uint8 HxWx3) and writes it as PNG."""
    Image = pil()
    from PIL import ImageDraw

    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"draw={str(path)!r}: the folder {str(path.parent)!r} does not exist.")
    canvas = Image.fromarray(np.asarray(image, dtype=np.uint8))
    pen = ImageDraw.Draw(canvas)
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)]
    for x1, y1, x2, y2, score, cls in boxes:
        color = palette[cls % len(palette)]
        left, right = sorted((x1, x2))
        top, bottom = sorted((y1, y2))
        pen.rectangle([left, top, right, bottom], outline=color, width=2)
        label = class_names[cls] if class_names and 0 <= cls < len(class_names) else str(cls)
        pen.text((left + 2, top + 1), f"{label} {score:.2f}", fill=color)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        canvas.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path

