"""COCO-format annotation files, read and checked without TensorFlow: the one reader of training
(`keras_csp.data.coco_detection`) and of the TF-free mAP (`keras_csp.coco_eval`).

A malformed file (not UTF-8/16/32 JSON, nested too deep, a list that is not one, an image or
annotation without its fields or with values of the wrong type: ids must be integers, booleans and
strings are not, a bbox is 4 finite numbers, widths and heights whole numbers >= 1, a duplicate
image id), a `file_name` that leads out of the images folder, a box outside its image (unless
`clip_boxes=True`), a category id that the file does not declare, an annotation of an unknown
image, an image file that does not exist, image files whose sizes are not the ones the file records
(an annotation file for another image set), or a data set with no boxes at all is a one-line
`ValueError` naming the file, the annotation or image, the value and what is allowed. Crowd
annotations (`iscrowd: 1`) are left out, as detectors usually do. Image files that cannot be
read (corrupt, no regular file, decompression bombs) are left to the readers, which skip and count
them.
"""

import json
import math
import os

from keras_csp.images import UnreadableImageError, image_header, not_regular, path_inside

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
    listed = [images[i] for i in sorted(images)]
    step = max(1, len(listed) // SIZE_CHECKS)
    wrong, unreadable = [], 0
    for im in listed[::step]:
        try:  # the header only: a decompression bomb is refused before any pixel is decoded
            width, height = image_header(os.path.join(images_dir, im["file_name"]))
        except UnreadableImageError:  # skipped at load time and counted there, with the reason
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
    special = not_regular(annotations)
    if special:  # /dev/zero would be read forever
        raise ValueError(f"{arg} is {special}; allowed: a COCO-format JSON file.")
    try:
        with open(annotations, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ValueError(f"{arg}: no such file; allowed: a COCO-format JSON file.") from None
    except OSError as e:
        raise ValueError(
            f"{arg} cannot be read ({e.strerror}); allowed: a COCO-format JSON file."
        ) from None
    try:  # bytes: json detects UTF-8, UTF-16 and UTF-32 (with or without a byte order mark)
        coco = json.loads(raw)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{arg} is not UTF-8 text (byte {e.start}: {e.reason}); allowed: a COCO-format JSON "
            "file in UTF-8, UTF-16 or UTF-32."
        ) from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{arg} is not valid JSON ({e}); allowed: a COCO-format JSON file.") from None
    except RecursionError:
        raise ValueError(
            f"{arg} nests arrays or objects deeper than Python's JSON reader can follow; allowed: "
            "a COCO-format JSON file (a few levels deep)."
        ) from None
    if not isinstance(coco, dict) or not {"images", "annotations"} <= set(coco):
        raise ValueError(
            f"{arg} lacks the COCO keys; allowed: a JSON object with 'images', 'annotations' and "
            "'categories' lists."
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key, []), list):
            raise ValueError(
                f"{arg}: {key!r} is a JSON {_json_type(coco[key])}; allowed: a list of objects."
            )
    return coco


# ------------------------------------------------------------------------- fields, one by one

_MISSING = object()


def _json_type(value):
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _shown(value, limit=60):
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_id(value):
    # JSON's true is Python's True, an int: ids are integers, and booleans and "1" are not.
    return type(value) is int


def _is_size(value):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 1 and float(value).is_integer()


def _is_box(value):
    # type(), not isinstance: a bool is an int. json.loads gives exactly int and float.
    return (
        type(value) is list
        and len(value) == 4
        and all(type(v) in (int, float) for v in value)
        and all(map(math.isfinite, value))
    )


def _field(arg, where, item, key, valid, allowed):
    """`item[key]`, or a one-line ValueError naming the file, the item (`where`, or a function
    giving it: made only for the error), the value and `allowed`."""
    value = item.get(key, _MISSING)
    if value is not _MISSING and valid(value):
        return value
    where = where() if callable(where) else where
    if value is _MISSING:
        raise ValueError(f"{arg}: {where} has no {key!r}; allowed: {allowed}.")
    raise ValueError(f"{arg}: {where} has {key}={_shown(value)}; allowed: {allowed}.")


def _objects(arg, coco, key):
    """`(index, item)` of the list `coco[key]`, each a JSON object."""
    for index, item in enumerate(coco.get(key, [])):
        if not isinstance(item, dict):
            raise ValueError(
                f"{arg}: {key}[{index}] is a JSON {_json_type(item)} ({_shown(item)}); allowed: "
                "an object."
            )
        yield index, item


def _categories(arg, coco):
    """`{id: name}` of the declared categories."""
    declared = {}
    for index, c in _objects(arg, coco, "categories"):
        cid = _field(arg, f"categories[{index}]", c, "id", _is_id, "an integer category id")
        if cid in declared:
            raise ValueError(
                f"{arg}: categories[{index}] repeats category id {cid}; allowed: each id once."
            )
        declared[cid] = str(c.get("name", cid))
    return declared


def _images(arg, coco, images_dir):
    """`{id: image}` of the listed images, their fields checked."""
    images, seen = {}, {}
    for index, im in _objects(arg, coco, "images"):
        image_id = _field(arg, f"images[{index}]", im, "id", _is_id,
                          "an integer image id (not a string or a boolean)")
        where = f"image {image_id} (images[{index}])"
        if image_id in images:
            raise ValueError(
                f"{arg}: {where} repeats the id of images[{seen[image_id]}]; allowed: each image "
                "id once."
            )
        name = _field(arg, where, im, "file_name", lambda v: isinstance(v, str) and v,
                      "a file name (a non-empty string) relative to images_dir")
        if path_inside(images_dir, name) is None:
            raise ValueError(
                f"{arg}: {where} has file_name={name!r}, which leads out of images_dir="
                f"{images_dir!r}; allowed: a relative path that stays inside images_dir (no "
                "absolute path, no '..' out of it)."
            )
        for key in ("width", "height"):
            _field(arg, where, im, key, _is_size, "a whole number of pixels >= 1")
        images[image_id], seen[image_id] = im, index
    return images


def _annotation(arg, index, ann):
    """`(image id, category id, [x, y, w, h], crowd)` of one annotation, its fields checked."""
    def where():
        return f"annotation {_shown(ann.get('id', '?'), 20)} (annotations[{index}])"

    image_id = _field(arg, where, ann, "image_id", _is_id, "an integer image id")
    category = _field(arg, where, ann, "category_id", _is_id, "an integer category id")
    box = _field(arg, where, ann, "bbox", _is_box,
                 "[x, y, width, height]: 4 finite numbers")
    crowd = ann.get("iscrowd", 0)
    if isinstance(crowd, (dict, list)) or crowd not in (0, 1):  # false and true are 0 and 1
        raise ValueError(
            f"{arg}: {where()} has iscrowd={_shown(crowd)}; allowed: 0 or 1 (or false, true)."
        )
    return image_id, category, [float(v) for v in box], bool(crowd)


def _check_image_files(arg, images, images_dir):
    missing = [
        im["file_name"]
        for im in images.values()
        # Special files and broken links are no missing files: the readers skip and count them.
        if not os.path.lexists(os.path.join(images_dir, im["file_name"]))
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


def _read_boxes(arg, coco, images, categories, clip_boxes):
    """`(boxes, classes, problems)`: per image id its xyxy boxes and category ids, and the
    annotations refused or clipped, by kind."""
    boxes = {i: [] for i in images}
    classes = {i: [] for i in images}
    problems = {"unknown_category": [], "unknown_image": [], "outside": [], "clipped": []}
    for index, ann in _objects(arg, coco, "annotations"):
        image_id, category, (x, y, w, h), crowd = _annotation(arg, index, ann)
        if crowd:
            continue
        if image_id not in images:
            problems["unknown_image"].append(ann.get("id", "?"))
            continue
        if category not in categories:
            problems["unknown_category"].append((category, ann.get("id", "?")))
            continue
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
    declared = _categories(arg, coco)
    if categories is None:
        categories = declared
        if not categories:
            raise ValueError(f"{arg} declares no categories; allowed: a non-empty 'categories' list.")
    images = _images(arg, coco, images_dir)
    if not images:
        raise ValueError(f"{arg} lists no images; allowed: a non-empty 'images' list.")
    _check_image_files(arg, images, images_dir)
    boxes, classes, problems = _read_boxes(arg, coco, images, categories, clip_boxes)
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
