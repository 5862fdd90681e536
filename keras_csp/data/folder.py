"""`image_folder`: one sub-folder per class of image files, with a stratified validation split."""

import concurrent.futures
import os
import random

from keras_csp.data.core import (
    IMAGE_EXTENSIONS,
    ImageData,
    SkipLog,
    Split,
    decode_image,
    resize_and_crop,
    safe_load,
)
from keras_csp.images import class_folders, unreadable_reason

# `verify="auto"` decodes every file up front when a folder holds at most this many images (a few
# seconds on one core for small images); larger folders are checked at decode time only.
VERIFY_LIMIT = 20_000


def _list_classes(root):
    if not os.path.isdir(root):
        raise ValueError(
            f"path={root!r} is not a folder; allowed: a folder with one sub-folder per class."
        )
    classes, files = class_folders(root)
    total = sum(len(v) for v in files.values())
    if total == 0:
        raise ValueError(
            f"path={root!r} holds no images; allowed: a folder with one sub-folder per class, "
            f"each holding {', '.join(IMAGE_EXTENSIONS)} files."
        )
    empty = [name for name, v in files.items() if not v]
    if empty:
        raise ValueError(
            f"path={root!r}: class folder(s) {', '.join(repr(e) for e in empty)} hold no images "
            f"({', '.join(IMAGE_EXTENSIONS)}); allowed: every class folder holds at least one image "
            "(remove the empty ones)."
        )
    if len(files) < 2:
        raise ValueError(
            f"path={root!r} has {len(files)} class folder ({', '.join(files)}); allowed: at least two "
            "class sub-folders (classification needs two classes)."
        )
    return classes, files


def _drop_unreadable(root, files, skip_log):
    """Removes the files Pillow cannot decode (recorded in `skip_log` with the reason); refuses
    classes left with none, so that split sizes, batch-size checks and summaries count readable
    images only."""
    paths = [p for found in files.values() for p in found]
    workers = min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # Pillow decodes without the GIL
        reasons = dict(zip(paths, pool.map(unreadable_reason, paths)))
    for path in paths:
        if reasons[path]:
            skip_log.record(path, reasons[path])
    kept = {name: [p for p in found if not reasons[p]] for name, found in files.items()}
    if not any(kept.values()):
        raise ValueError(
            f"path={root!r}: none of its {len(paths)} image file(s) can be decoded ("
            f"{skip_log.report(limit=3)}); allowed: a folder with readable "
            f"{', '.join(IMAGE_EXTENSIONS)} files."
        )
    empty = [name for name, found in kept.items() if not found]
    if empty:
        raise ValueError(
            f"path={root!r}: class folder(s) {', '.join(repr(e) for e in empty)} hold no readable "
            f"image ({skip_log.report(limit=3)}); allowed: every class folder holds at least one "
            "image that can be decoded (fix or remove the unreadable files, or the class folder)."
        )
    return kept


def _split(classes, files, validation_split, seed):
    """Per class, a seeded shuffle; the last `round(n * split)` files go to validation."""
    train, validation = [], []
    for label, name in enumerate(classes):
        items = list(files[name])
        random.Random(f"{seed}/{name}").shuffle(items)
        n_val = int(round(len(items) * validation_split))
        if validation_split > 0 and n_val == 0 and len(items) >= 2:
            n_val = 1
        n_val = min(n_val, len(items) - 1) if len(items) > 1 else 0
        cut = len(items) - n_val
        train.extend((path, label) for path in items[:cut])
        validation.extend((path, label) for path in items[cut:])
    # Interleave classes in a fixed order so an unshuffled pass is not sorted by class.
    random.Random(seed).shuffle(train)
    return train, validation


def _make_split(name, items, image_size, num_classes):
    path_list = [p for p, _ in items]
    label_list = [label for _, label in items]

    def load(index_ds, blank):
        import tensorflow as tf

        # Created here, not when the data set is made: TF must not start before a strategy is.
        paths = tf.constant(path_list)
        labels = tf.constant(label_list, tf.int32)

        def decode(index):
            image = resize_and_crop(decode_image(paths[index]), image_size)
            return image, labels[index]

        return safe_load(index_ds, decode, lambda index: paths[index], blank)

    return Split(name, len(items), load, "classification", image_size, num_classes)


def image_folder(path, image_size=224, validation_split=0.1, seed=0, verify="auto"):
    """Class-per-folder images (`path/<class>/**`, files of `IMAGE_EXTENSIONS`) as an `ImageData`.

    Args:
        path: the root folder; each sub-folder is a class (sorted names give the labels).
        image_size: images are resized (shorter side) and center-cropped to this square size.
        validation_split: fraction of each class held out for validation (0 for none). The split is
            stratified and fixed by `seed`.
        seed: seed of the split.
        verify: decode every file now and leave out the unreadable ones (True), don't (False), or
            "auto": verify when the folder holds at most `VERIFY_LIMIT` images. A verified folder
            whose class has no readable image is refused, naming the class.

    Returns:
        `ImageData`; unreadable files are counted in `.skipped`: found by `verify` (and then not
        in the splits' sizes), or skipped at decode time.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size={image_size!r} is not allowed; allowed: an integer >= 8.")
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or not (
        0.0 <= validation_split < 1.0
    ):
        raise ValueError(
            f"validation_split={validation_split!r} is not allowed; allowed: a number in [0, 1)."
        )
    if verify not in (True, False, "auto"):
        raise ValueError(f"verify={verify!r} is not allowed; allowed: True, False or 'auto'.")
    root = os.fspath(path)
    classes, files = _list_classes(root)
    skipped = SkipLog()
    count = sum(len(found) for found in files.values())
    if verify is True or (verify == "auto" and count <= VERIFY_LIMIT):
        files = _drop_unreadable(root, files, skipped)
    train_items, val_items = _split(classes, files, validation_split, seed)
    train = _make_split("train", train_items, image_size, len(classes))
    validation = (
        _make_split("validation", val_items, image_size, len(classes)) if val_items else None
    )
    return ImageData(
        task="classification",
        class_names=classes,
        train=train,
        validation=validation,
        description=f"image_folder({root!r})",
        skipped=skipped,
    )


def split_files(path, validation_split=0.1, seed=0):
    """`(class_names, train, validation)`: the `(file, label)` lists `image_folder(path,
    validation_split=..., seed=...)` trains and validates on (what `keras-csp benchmark` measures
    a classifier on)."""
    root = os.fspath(path)
    classes, files = _list_classes(root)
    if sum(len(found) for found in files.values()) <= VERIFY_LIMIT:  # as verify="auto"
        files = _drop_unreadable(root, files, SkipLog())
    train, validation = _split(classes, files, validation_split, seed)
    return classes, train, validation
