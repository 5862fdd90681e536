"""`coco_detection`: COCO-format annotation files to keras-cv bounding-box batches.

COCO boxes are `[x, y, width, height]` in pixels of the original image. Images are letterboxed to
`image_size` (longer side resized, bottom/right padded) and their boxes scaled with them, then
converted to the requested keras-cv format. Category ids (often sparse, e.g. 1..90) become
contiguous class indices in sorted id order; `ImageData.category_ids[k]` maps back.

The annotation file is read and checked up front, before any training, by
`keras_csp.lite.coco.read_coco` (TF-free: the on-device mAP reads files the same way).
"""

import os
import random
import warnings

from keras_csp.data.core import ImageData, Split, decode_image, letterbox, safe_load
from keras_csp.data.shapes import BOUNDING_BOX_FORMATS
from keras_csp.lite.coco import (  # noqa: F401  (BOX_TOLERANCE, SIZE_CHECKS, read_coco: data API)
    BOX_TOLERANCE,
    SIZE_CHECKS,
    first_items,
    read_coco,
)


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
            f"than {BOX_TOLERANCE} pixel (clip_boxes=True): {first_items(clipped, 3)}.",
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
