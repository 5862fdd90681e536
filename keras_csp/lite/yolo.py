"""Ultralytics' YOLO detection layout, read and checked without TensorFlow: the reader of
`keras_csp.data.yolo_detection` (training) and of `keras_csp.coco_eval` (mAP on a device).

    data.yaml                       path: ../shapes   # the root (default: the YAML's folder)
                                    train: images/train     # a folder, a .txt list of images,
                                    val: images/val         # or a list of those
                                    names: {0: circle, 1: square}   # or [circle, square]
    images/train/0001.jpg
    labels/train/0001.txt           one row per object: `class cx cy w h`, normalized to 0..1

A label file is found as ultralytics' `img2label_paths` finds it: the last `/images/` of the
image's path becomes `/labels/` and the extension `.txt`. A missing or empty label file is an
image without objects. Boxes come back as xyxy pixels of the image (its size read from the file's
header), class ids as the `names` ids, so `keras_csp.coco_eval` scores them as it scores COCO.

A relative `path` is taken from the YAML's folder (ultralytics takes it from the working folder,
then its datasets folder: the YAML's folder is the one that does not depend on where the command
runs; a `path` that exists only from the working folder is still found). Bad input is a
`ValueError` naming the file and line: a label row without 5 values, a class id outside `names`,
a coordinate outside 0..1 (by more than a pixel) or not finite, an image a list names that does
not exist, a YAML without `names` or the split.
"""

import math
import os

from keras_csp.images import IMAGE_EXTENSIONS, image_header, image_paths, not_regular

# Rows whose box edges overshoot 0..1 by up to one pixel of the image are clipped (rounding of
# the tool that wrote them; COCO's reader allows the same pixel); beyond it the file is refused.
EDGE_TOLERANCE_PIXELS = 1.0


def load_yaml(path, what="data YAML"):
    """The mapping in a YAML file; pyyaml is imported here, so the rest of the runtime (and a
    device without pyyaml) does not need it."""
    try:
        import yaml
    except ImportError:
        raise ImportError(
            f"reading the {what} {str(path)!r} needs pyyaml (pip install pyyaml), which this "
            "environment lacks."
        ) from None
    special = not_regular(path)
    if special:  # /dev/zero would be read forever, a FIFO waits for a writer
        raise ValueError(f"{what} {str(path)!r} is {special}; allowed: a YAML file.")
    try:
        with open(path, "rb") as f:  # bytes: pyyaml detects UTF-8 and UTF-16, refuses the rest
            loaded = yaml.safe_load(f)
    except FileNotFoundError:
        raise ValueError(
            f"{what} {str(path)!r}: no such file; allowed: an existing YAML file."
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{path}{line}: not valid YAML ({problem}); allowed: a {what}.") from None
    except RecursionError:
        raise ValueError(
            f"{path}: nests deeper than the YAML reader can follow; allowed: a {what}."
        ) from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: holds no mapping; allowed: a {what} with keys.")
    return loaded


def _names(data, path):
    """`{class id: name}` from `names` (a list, or a mapping of ids 0..n-1 to names)."""
    names = data.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise ValueError(
            f"{path}: 'names' is {'missing' if names is None else repr(names)[:60]}; allowed: a "
            "non-empty list of class names or a mapping {0: name, 1: name, ...}."
        )
    if not all(isinstance(v, (str, int, float)) for v in names.values()):
        # a nested value (a YAML alias chain can be exponentially large) is no class name
        raise ValueError(f"{path}: 'names' holds a list or mapping as a name; allowed: names as "
                         "strings.")
    try:
        categories = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        categories = {}
    if sorted(categories) != list(range(len(names))):
        raise ValueError(
            f"{path}: 'names' has the ids {sorted(names, key=str)[:10]}; allowed: the ids 0..n-1, "
            "each once (ultralytics' class indices)."
        )
    if "nc" in data and data["nc"] != len(categories):
        raise ValueError(
            f"{path}: nc={data['nc']!r} but 'names' lists {len(categories)} classes; allowed: "
            "nc equal to the number of names (or no nc)."
        )
    return categories


def _root(data, path):
    folder = os.path.dirname(os.path.abspath(path))
    root = data.get("path")
    if root is None or root == "":
        return folder
    root = os.path.expanduser(str(root))
    if os.path.isabs(root):
        return root
    beside = os.path.normpath(os.path.join(folder, root))
    return beside if os.path.exists(beside) or not os.path.exists(root) else os.path.abspath(root)


def _lines(path):
    """`(number, line)` of a UTF-8 text file (a BOM is allowed); bytes that are not UTF-8 are a
    ValueError naming the file and line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path} line {number}: not UTF-8 text (byte {e.start}: {e.reason}); "
                    "allowed: a UTF-8 text file."
                ) from None


def _list_file(listing):
    """The images a `.txt` list names. `./x` is relative to the list's folder, as ultralytics
    reads it; other relative paths too (ultralytics takes them from the working folder, which
    depends on where the command runs)."""
    parent = os.path.dirname(os.path.abspath(listing))
    found = []
    for number, line in _lines(listing):
        entry = line.strip()
        if not entry:
            continue
        image = os.path.join(parent, entry[2:]) if entry.startswith("./") else entry
        if not os.path.isabs(image):
            image = os.path.join(parent, image)
        if not os.path.isfile(image):
            raise ValueError(
                f"{listing} line {number}: the image {entry!r} does not exist (looked for "
                f"{image}); allowed: paths of existing images, './' ones relative to the list."
            )
        found.append(os.path.normpath(image))
    return found


def _images_of(source, root, path, key):
    """The image files of one entry of a split: a folder (recursively) or a `.txt` list."""
    full = source if os.path.isabs(source) else os.path.join(root, source)
    if not os.path.exists(full) and str(source).startswith("../"):
        full = os.path.join(root, source[3:])  # ultralytics' second try
    if os.path.isdir(full):
        return image_paths(full)
    if os.path.isfile(full) and full.lower().endswith(".txt"):
        return _list_file(full)
    if os.path.isfile(full) and full.lower().endswith(IMAGE_EXTENSIONS):
        return [full]
    raise ValueError(
        f"{path}: {key}: {source!r} is not a folder or a .txt list of images (looked for {full}); "
        "allowed: a folder of images, a .txt file listing images, or a list of those, relative "
        "to 'path'."
    )


def label_path(image):
    """ultralytics' `img2label_paths`: the last `/images/` becomes `/labels/`, the extension
    `.txt`."""
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return labels.join(image.rsplit(images, 1)).rsplit(".", 1)[0] + ".txt"


def _number(text, where, what):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{where}: {what} {text!r} is not a finite number; allowed: {what}s "
                         "as finite numbers.")
    return value


def _parse_row(fields, where, categories):
    """`(class id, (cx, cy, w, h))` of one label row, checked."""
    if len(fields) != 5:
        raise ValueError(
            f"{where}: {len(fields)} values ({' '.join(fields)[:60]}); allowed: 5, `class cx cy "
            "w h` (segment and keypoint rows are not read)."
        )
    try:
        category = int(fields[0])
    except ValueError:
        raise ValueError(
            f"{where}: class {fields[0]!r} is not an integer; allowed: a class id 0.."
            f"{len(categories) - 1}."
        ) from None
    if category not in categories:
        raise ValueError(
            f"{where}: class {category} is not in 'names'; allowed: 0..{len(categories) - 1}."
        )
    return category, [_number(v, where, "coordinate") for v in fields[1:]]


def read_labels(label_file, width, height, categories):
    """`(boxes [[x1, y1, x2, y2] pixels], class ids)` of one label file (none if it is missing)."""
    if not os.path.isfile(label_file):
        return [], []
    boxes, classes = [], []
    for number, line in _lines(label_file):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_file} line {number}"
        category, (cx, cy, w, h) = _parse_row(fields, where, categories)
        edges = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        tx, ty = EDGE_TOLERANCE_PIXELS / max(width, 1), EDGE_TOLERANCE_PIXELS / max(height, 1)
        inside = (edges[0] >= -tx and edges[2] <= 1 + tx and edges[1] >= -ty
                  and edges[3] <= 1 + ty)
        if w <= 0 or h <= 0 or not inside:
            raise ValueError(
                f"{where}: box cx={cx:g} cy={cy:g} w={w:g} h={h:g} "
                + ("is empty" if w <= 0 or h <= 0 else "lies outside the image")
                + f" ({width}x{height}); allowed: values normalized to 0..1, w and h > 0, "
                "the box inside the image (within a pixel)."
            )
        boxes.append([
            min(max(edges[0], 0.0), 1.0) * width, min(max(edges[1], 0.0), 1.0) * height,
            min(max(edges[2], 0.0), 1.0) * width, min(max(edges[3], 0.0), 1.0) * height,
        ])
        classes.append(category)
    return boxes, classes


def _image_size(path):
    """(width, height) from the header; None if the file cannot be read (it is skipped and
    counted when loaded, as training skips unreadable images). Without EXIF rotation: the
    loaders do not rotate either."""
    try:  # image_header: a decompression bomb or a FIFO is unreadable, never decoded or opened
        return image_header(path)
    except ValueError:  # UnreadableImageError, or a missing file: as before, for the loaders
        return None


def split_images(data_yaml, split="val"):
    """`(categories, image paths)` of one split of a data YAML."""
    path = str(data_yaml)
    data = load_yaml(path)
    categories = _names(data, path)
    sources = data.get(split)
    if not sources:
        raise ValueError(
            f"{path}: the split {split!r} is {'missing' if sources is None else 'empty'}; "
            f"allowed: a data YAML with '{split}' (keys: {', '.join(map(str, data))})."
        )
    sources = sources if isinstance(sources, list) else [sources]
    if not all(isinstance(s, str) for s in sources):  # nested: never printed (alias chains)
        raise ValueError(f"{path}: {split!r} holds a list or mapping as a path; allowed: a path or "
                         "a list of paths.")
    root = _root(data, path)
    images = []
    for source in sources:
        images.extend(_images_of(str(source), root, path, split))
    if not images:
        raise ValueError(
            f"{path}: the split {split!r} ({', '.join(sources)[:200]}) holds no images; allowed: "
            f"{', '.join(IMAGE_EXTENSIONS)} files."
        )
    return categories, images


def read_yolo(data_yaml, split="val"):
    """Parses and checks one split of a YOLO data set; returns `(categories, records)`.

    `categories` is `{class id: name}` from `names`; `records` a list of `(path, boxes [[x1, y1,
    x2, y2] pixels], class ids, ignore flags)` per image (no box of YOLO's is ignored).
    """
    categories, images = split_images(data_yaml, split)
    records = []
    for image in images:
        size = _image_size(image)
        if size is None:
            records.append((image, [], [], []))
            continue
        boxes, classes = read_labels(label_path(image), *size, categories)
        records.append((image, boxes, classes, [False] * len(boxes)))
    return categories, records
