"""COCO-format annotation files, read and checked without TensorFlow: the one reader of training
(`keras_csp.data.coco_detection`) and of the TF-free mAP (`keras_csp.coco_eval`).

A box outside its image (unless `clip_boxes=True`), a category id that the file does not declare,
an annotation of an unknown image, an image file that does not exist, image files whose sizes are
not the ones the file records (an annotation file for another image set), or a data set with no
boxes at all is a `ValueError` naming the file, the annotation or image, and what is allowed. Crowd
annotations (`iscrowd: 1`) are left out, as detectors usually do.
"""

import json
import os

from keras_csp.images import pil

# COCO's own boxes are float and may overshoot the image by rounding; beyond this is an error
# (or, with clip_boxes=True, clipped and counted).
BOX_TOLERANCE = 1.0
# Image files whose size is compared with the annotation file's width/height (evenly spread): enough
# to catch an annotation file of another image set, while reading only headers of large sets.
SIZE_CHECKS = 500


def first_items(items, limit=5):
    """'a, b, c, ...': the first `limit` items for an error message."""
    items = list(items)
    return ", ".join(str(i) for i in items[:limit]) + (", ..." if len(items) > limit else "")


def _check_image_sizes(arg, images, images_dir):
    """The files' sizes must be the annotation file's (read from headers, for a spread sample)."""
    Image = pil()
    listed = [images[i] for i in sorted(images)]
    step = max(1, len(listed) // SIZE_CHECKS)
    wrong, unreadable = [], 0
    for im in listed[::step]:
        try:
            with Image.open(os.path.join(images_dir, im["file_name"])) as f:
                width, height = f.size
        except OSError:  # corrupt files are skipped at load time and counted there
            unreadable += 1
            continue
        if (width, height) != (int(im["width"]), int(im["height"])):
            wrong.append(f"{im['file_name']} ({width}x{height}, recorded {im['width']}x{im['height']})")
    if wrong:
        checked = len(listed[::step]) - unreadable
        raise ValueError(
            f"{arg}: {len(wrong)} of {checked} image file(s) checked under images_dir="
            f"{images_dir!r} have another size than the file records: {first_items(wrong, 3)}; is "
            "it the annotation file of another image set? allowed: width and height of each image "
            "as its file has them."
        )


def _load_json(arg, annotations):
    try:
        with open(annotations, encoding="utf-8") as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{arg}: no such file; allowed: a COCO-format JSON file.") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{arg} is not valid JSON ({e}); allowed: a COCO-format JSON file.") from None
    if not isinstance(coco, dict) or not {"images", "annotations"} <= set(coco):
        raise ValueError(
            f"{arg} lacks the COCO keys; allowed: a JSON object with 'images', 'annotations' and "
            "'categories' lists."
        )
    return coco


def _check_image_files(arg, images, images_dir):
    missing = [
        im["file_name"]
        for im in images.values()
        if not os.path.isfile(os.path.join(images_dir, im["file_name"]))
    ]
    if missing and len(missing) == len(images):
        raise ValueError(
            f"{arg}: none of its {len(images)} image files is in images_dir={images_dir!r} (e.g. "
            f"{first_items(missing, 3)}); is it the annotation file of another image set, or the "
            "wrong folder? allowed: every file_name in 'images' exists under images_dir."
        )
    if missing:
        raise ValueError(
            f"{arg}: {len(missing)} image file(s) missing from images_dir={images_dir!r}: "
            f"{first_items(missing)}; allowed: every file_name in 'images' exists under images_dir."
        )
    _check_image_sizes(arg, images, images_dir)


def _read_boxes(coco, images, categories, clip_boxes):
    """`(boxes, classes, problems)`: per image id its xyxy boxes and category ids, and the
    annotations refused or clipped, by kind."""
    boxes = {i: [] for i in images}
    classes = {i: [] for i in images}
    problems = {"unknown_category": [], "unknown_image": [], "outside": [], "clipped": []}
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        image_id, category = int(ann["image_id"]), int(ann["category_id"])
        if image_id not in images:
            problems["unknown_image"].append(ann.get("id", "?"))
            continue
        if category not in categories:
            problems["unknown_category"].append((category, ann.get("id", "?")))
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        im = images[image_id]
        width, height = float(im["width"]), float(im["height"])
        t = BOX_TOLERANCE
        where = (
            f"annotation {ann.get('id', '?')} box {[x, y, w, h]} in {im['file_name']} "
            f"({int(width)}x{int(height)})"
        )
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, width), min(y + h, height)
        sticks_out = x < -t or y < -t or x + w > width + t or y + h > height + t
        if w <= 0 or h <= 0 or x2 <= x1 or y2 <= y1 or (sticks_out and not clip_boxes):
            problems["outside"].append(where)
            continue
        if sticks_out:
            problems["clipped"].append(where)
        boxes[image_id].append([x1, y1, x2, y2])
        classes[image_id].append(category)
    return boxes, classes, problems


def _raise_problems(arg, problems, categories, own_categories, clip_boxes):
    unknown_category = problems["unknown_category"]
    if unknown_category:
        raise ValueError(
            f"{arg}: category id(s) {first_items(sorted({c for c, _ in unknown_category}))} are "
            f"not declared{'' if own_categories else ' by the training annotations'}; allowed: "
            f"{first_items(sorted(categories), 20)} (annotation(s) "
            f"{first_items(a for _, a in unknown_category)})."
        )
    if problems["unknown_image"]:
        raise ValueError(
            f"{arg}: annotation(s) {first_items(problems['unknown_image'])} refer to image ids not "
            "in 'images'; allowed: image ids listed in 'images'."
        )
    outside = problems["outside"]
    if outside:
        raise ValueError(
            f"{arg}: {len(outside)} box(es) lie outside their image or are empty: "
            f"{first_items(outside, 3)}; "
            f"allowed: 0 <= x, y and x + width <= image width, y + height <= image height "
            f"(within {BOX_TOLERANCE} pixel), width and height > 0"
            + ("." if clip_boxes else "; or clip_boxes=True (--clip-boxes) to clip boxes that "
               "stick out (empty ones stay an error).")
        )


def read_coco(annotations, images_dir, categories=None, clip_boxes=False):
    """Parses and checks one annotation file; returns (categories, records, clipped).

    `records` is a list of `(path, boxes [[x1, y1, x2, y2], ...], category ids)` per image.
    `categories` (id -> name), when given, is the category set the file must stay within.
    `clipped` lists the boxes that stuck out by more than `BOX_TOLERANCE` and were clipped
    (`clip_boxes=True`; without it they are an error).
    """
    arg = f"annotations={annotations!r}"
    coco = _load_json(arg, annotations)
    declared = {int(c["id"]): str(c.get("name", c["id"])) for c in coco.get("categories", [])}
    if categories is None:
        categories = declared
        if not categories:
            raise ValueError(f"{arg} declares no categories; allowed: a non-empty 'categories' list.")
    images = {int(im["id"]): im for im in coco["images"]}
    if not images:
        raise ValueError(f"{arg} lists no images; allowed: a non-empty 'images' list.")
    _check_image_files(arg, images, images_dir)
    boxes, classes, problems = _read_boxes(coco, images, categories, clip_boxes)
    _raise_problems(arg, problems, categories, categories is declared, clip_boxes)
    if not any(boxes.values()):
        raise ValueError(
            f"{arg} has no boxes: {len(images)} image(s), none with a non-crowd annotation of "
            f"{len(coco['annotations'])}; allowed: a detection data set with at least one box."
        )
    records = [
        (os.path.join(images_dir, images[i]["file_name"]), boxes[i], classes[i])
        for i in sorted(images)
    ]
    return categories, records, problems["clipped"]
