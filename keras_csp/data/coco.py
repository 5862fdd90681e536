"""`coco_detection`: COCO-format annotation files to keras-cv bounding-box batches.

COCO boxes are `[x, y, width, height]` in pixels of the original image. Images are letterboxed to
`image_size` (longer side resized, bottom/right padded) and their boxes scaled with them, then
converted to the requested keras-cv format. Category ids (often sparse, e.g. 1..90) become
contiguous class indices in sorted id order; `ImageData.category_ids[k]` maps back.

The annotation file is checked up front: a box outside its image, a category id that the file does
not declare, an annotation of an unknown image, or an image file that does not exist is a
`ValueError` naming it. Crowd annotations (`iscrowd: 1`) are left out, as detectors usually do.
"""

import json
import os
import random

from keras_csp.data.core import ImageData, Split, decode_image, letterbox, safe_load
from keras_csp.data.shapes import BOUNDING_BOX_FORMATS

# COCO's own boxes are float and may overshoot the image by rounding; beyond this is an error.
BOX_TOLERANCE = 1.0


def _first(items, limit=5):
    items = list(items)
    return ", ".join(str(i) for i in items[:limit]) + (", ..." if len(items) > limit else "")


def read_coco(annotations, images_dir, categories=None):
    """Parses and checks one annotation file; returns (categories, records).

    `records` is a list of `(path, boxes [[x1, y1, x2, y2], ...], category ids)` per image.
    `categories` (id -> name), when given, is the category set the file must stay within.
    """
    arg = f"annotations={annotations!r}"
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
    declared = {int(c["id"]): str(c.get("name", c["id"])) for c in coco.get("categories", [])}
    if categories is None:
        categories = declared
        if not categories:
            raise ValueError(f"{arg} declares no categories; allowed: a non-empty 'categories' list.")
    images = {}
    for im in coco["images"]:
        images[int(im["id"])] = im
    if not images:
        raise ValueError(f"{arg} lists no images; allowed: a non-empty 'images' list.")

    missing = [
        im["file_name"]
        for im in images.values()
        if not os.path.isfile(os.path.join(images_dir, im["file_name"]))
    ]
    if missing:
        raise ValueError(
            f"{arg}: {len(missing)} image file(s) missing from images_dir={images_dir!r}: "
            f"{_first(missing)}; allowed: every file_name in 'images' exists under images_dir."
        )

    boxes = {i: [] for i in images}
    classes = {i: [] for i in images}
    unknown_category, unknown_image, outside = [], [], []
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        image_id, category = int(ann["image_id"]), int(ann["category_id"])
        if image_id not in images:
            unknown_image.append(ann.get("id", "?"))
            continue
        if category not in categories:
            unknown_category.append(category)
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        im = images[image_id]
        width, height = float(im["width"]), float(im["height"])
        t = BOX_TOLERANCE
        if w <= 0 or h <= 0 or x < -t or y < -t or x + w > width + t or y + h > height + t:
            outside.append(
                f"annotation {ann.get('id', '?')} box {[x, y, w, h]} in {im['file_name']} "
                f"({int(width)}x{int(height)})"
            )
            continue
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, width), min(y + h, height)
        boxes[image_id].append([x1, y1, x2, y2])
        classes[image_id].append(category)
    if unknown_category:
        raise ValueError(
            f"{arg}: category id(s) {_first(sorted(set(unknown_category)))} are not declared; "
            f"allowed: {_first(sorted(categories), 20)}."
        )
    if unknown_image:
        raise ValueError(
            f"{arg}: annotation(s) {_first(unknown_image)} refer to image ids not in 'images'; "
            "allowed: image ids listed in 'images'."
        )
    if outside:
        raise ValueError(
            f"{arg}: {len(outside)} box(es) lie outside their image or are empty: "
            f"{_first(outside, 3)}; "
            f"allowed: 0 <= x, y and x + width <= image width, y + height <= image height "
            f"(within {BOX_TOLERANCE} pixel), width and height > 0."
        )
    records = [
        (os.path.join(images_dir, images[i]["file_name"]), boxes[i], classes[i])
        for i in sorted(images)
    ]
    return categories, records


def _make_split(name, records, image_size, class_of, fmt, max_boxes):
    path_list = [r[0] for r in records]
    lengths = [len(r[1]) for r in records]
    flat_boxes = [b for r in records for b in r[1]]
    flat_classes = [float(class_of[c]) for r in records for c in r[2]]

    def load(index_ds, blank):
        import tensorflow as tf

        # Created here, not when the data set is made: TF must not start before a strategy is.
        paths = tf.constant(path_list)
        boxes = tf.RaggedTensor.from_row_lengths(
            tf.reshape(tf.constant(flat_boxes, tf.float32), [-1, 4]), tf.constant(lengths, tf.int64)
        )
        classes = tf.RaggedTensor.from_row_lengths(
            tf.constant(flat_classes, tf.float32), tf.constant(lengths, tf.int64)
        )

        def decode(index):
            image, scale = letterbox(decode_image(paths[index]), image_size)
            return {
                "images": image,
                "bounding_boxes": {"boxes": boxes[index] * scale, "classes": classes[index]},
            }

        return safe_load(index_ds, decode, lambda index: paths[index], blank)

    return Split(
        name,
        len(records),
        load,
        "detection",
        image_size,
        len(class_of),
        bounding_box_format=fmt,
        source_format="xyxy",
        max_boxes=max_boxes,
    )


def coco_detection(
    annotations,
    images_dir,
    image_size=416,
    validation_annotations=None,
    validation_images_dir=None,
    validation_split=0.0,
    bounding_box_format="xyxy",
    max_boxes=100,
    seed=0,
):
    """A COCO-format detection data set as an `ImageData` of keras-cv box dicts.

    Args:
        annotations: the training annotation JSON (`images`, `annotations`, `categories`).
        images_dir: folder the `file_name`s of `annotations` are relative to.
        image_size: images are letterboxed to this square size; boxes follow.
        validation_annotations, validation_images_dir: an optional separate validation file (its
            categories must be among the training file's). Without it, `validation_split` of the
            training images (seeded by `seed`) are held out.
        bounding_box_format: keras-cv format of the labels (`"xyxy"`, `"xywh"`, `"rel_xyxy"`, ...).
        max_boxes: boxes per image after padding; extra boxes are dropped.

    Returns:
        `ImageData` whose splits yield `{"images", "bounding_boxes": {"boxes", "classes"}}`.
    """
    if bounding_box_format not in BOUNDING_BOX_FORMATS:
        raise ValueError(
            f"bounding_box_format={bounding_box_format!r} is not allowed; allowed: "
            f"{', '.join(BOUNDING_BOX_FORMATS)}."
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size={image_size!r} is not allowed; allowed: an integer >= 32.")
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(
            f"validation_split={validation_split!r} is not allowed; allowed: a number in [0, 1)."
        )
    if not os.path.isdir(images_dir):
        raise ValueError(f"images_dir={images_dir!r} is not a folder; allowed: the images' folder.")
    categories, records = read_coco(annotations, images_dir)
    ids = sorted(categories)
    class_of = {c: k for k, c in enumerate(ids)}
    if validation_annotations is not None:
        _, val_records = read_coco(
            validation_annotations, validation_images_dir or images_dir, categories
        )
    else:
        n_val = int(round(len(records) * float(validation_split)))
        held = set(random.Random(seed).sample(range(len(records)), n_val))
        val_records = [r for i, r in enumerate(records) if i in held]
        records = [r for i, r in enumerate(records) if i not in held]
        if not records:
            raise ValueError(
                f"validation_split={validation_split} leaves no training images; allowed: a "
                "smaller fraction."
            )
    args = (image_size, class_of, bounding_box_format, int(max_boxes))
    train = _make_split("train", records, *args)
    validation = _make_split("validation", val_records, *args) if val_records else None
    return ImageData(
        task="detection",
        class_names=[categories[c] for c in ids],
        train=train,
        validation=validation,
        description=f"coco_detection({annotations!r})",
        category_ids=ids,
    )
