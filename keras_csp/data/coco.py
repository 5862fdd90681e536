"""`coco_detection`: COCO-format annotation files to keras-cv bounding-box batches.

COCO boxes are `[x, y, width, height]` in pixels of the original image. Images are letterboxed to
`image_size` (longer side resized, bottom/right padded) and their boxes scaled with them, then
converted to the requested keras-cv format. Category ids (often sparse, e.g. 1..90) become
contiguous class indices in sorted id order; `ImageData.category_ids[k]` maps back.

The annotation file is checked up front, before any training: a box outside its image (unless
`clip_boxes=True`), a category id that the file does not declare, an annotation of an unknown image,
an image file that does not exist, image files whose sizes are not the ones the file records (an
annotation file for another image set), or a data set with no boxes at all is a `ValueError` naming
the file, the annotation or image, and what is allowed. Crowd annotations (`iscrowd: 1`) are left
out, as detectors usually do.
"""

import json
import os
import random
import warnings

from keras_csp.data.core import ImageData, Split, decode_image, letterbox, safe_load
from keras_csp.data.shapes import BOUNDING_BOX_FORMATS

# COCO's own boxes are float and may overshoot the image by rounding; beyond this is an error
# (or, with clip_boxes=True, clipped and counted).
BOX_TOLERANCE = 1.0
# Image files whose size is compared with the annotation file's width/height (evenly spread): enough
# to catch an annotation file of another image set, while reading only headers of large sets.
SIZE_CHECKS = 500


def _first(items, limit=5):
    items = list(items)
    return ", ".join(str(i) for i in items[:limit]) + (", ..." if len(items) > limit else "")


def _check_image_sizes(arg, images, images_dir):
    """The files' sizes must be the annotation file's (read from headers, for a spread sample)."""
    from PIL import Image

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
            f"{images_dir!r} have another size than the file records: {_first(wrong, 3)}; is it "
            "the annotation file of another image set? allowed: width and height of each image as "
            "its file has them."
        )


def read_coco(annotations, images_dir, categories=None, clip_boxes=False):
    """Parses and checks one annotation file; returns (categories, records, clipped).

    `records` is a list of `(path, boxes [[x1, y1, x2, y2], ...], category ids)` per image.
    `categories` (id -> name), when given, is the category set the file must stay within.
    `clipped` lists the boxes that stuck out by more than `BOX_TOLERANCE` and were clipped
    (`clip_boxes=True`; without it they are an error).
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
    if missing and len(missing) == len(images):
        raise ValueError(
            f"{arg}: none of its {len(images)} image files is in images_dir={images_dir!r} (e.g. "
            f"{_first(missing, 3)}); is it the annotation file of another image set, or the wrong "
            "folder? allowed: every file_name in 'images' exists under images_dir."
        )
    if missing:
        raise ValueError(
            f"{arg}: {len(missing)} image file(s) missing from images_dir={images_dir!r}: "
            f"{_first(missing)}; allowed: every file_name in 'images' exists under images_dir."
        )
    _check_image_sizes(arg, images, images_dir)

    boxes = {i: [] for i in images}
    classes = {i: [] for i in images}
    unknown_category, unknown_image, outside, clipped = [], [], [], []
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        image_id, category = int(ann["image_id"]), int(ann["category_id"])
        if image_id not in images:
            unknown_image.append(ann.get("id", "?"))
            continue
        if category not in categories:
            unknown_category.append((category, ann.get("id", "?")))
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
            outside.append(where)
            continue
        if sticks_out:
            clipped.append(where)
        boxes[image_id].append([x1, y1, x2, y2])
        classes[image_id].append(category)
    if unknown_category:
        raise ValueError(
            f"{arg}: category id(s) {_first(sorted({c for c, _ in unknown_category}))} are not "
            f"declared{'' if categories is declared else ' by the training annotations'}; allowed: "
            f"{_first(sorted(categories), 20)} (annotation(s) "
            f"{_first(a for _, a in unknown_category)})."
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
            f"(within {BOX_TOLERANCE} pixel), width and height > 0"
            + ("." if clip_boxes else "; or clip_boxes=True (--clip-boxes) to clip boxes that "
               "stick out (empty ones stay an error).")
        )
    if not any(boxes.values()):
        raise ValueError(
            f"{arg} has no boxes: {len(images)} image(s), none with a non-crowd annotation of "
            f"{len(coco['annotations'])}; allowed: a detection data set with at least one box."
        )
    records = [
        (os.path.join(images_dir, images[i]["file_name"]), boxes[i], classes[i])
        for i in sorted(images)
    ]
    return categories, records, clipped


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
    clip_boxes=False,
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
        clip_boxes: clip boxes that stick out of their image by more than `BOX_TOLERANCE` (1 pixel)
            instead of refusing the file; how many were clipped is warned about and kept in
            `ImageData.clipped_boxes`. Empty boxes stay an error.

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
    categories, records, clipped = read_coco(annotations, images_dir, clip_boxes=clip_boxes)
    ids = sorted(categories)
    class_of = {c: k for k, c in enumerate(ids)}
    if validation_annotations is not None:
        _, val_records, val_clipped = read_coco(
            validation_annotations, validation_images_dir or images_dir, categories, clip_boxes
        )
        clipped += val_clipped
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
    if clipped:
        warnings.warn(
            f"coco_detection: clipped {len(clipped)} box(es) that stuck out of their image by more "
            f"than {BOX_TOLERANCE} pixel (clip_boxes=True): {_first(clipped, 3)}.",
            stacklevel=2,
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
        clipped_boxes=len(clipped),
    )
