"""`coco_detection`: COCO-format annotation files to keras-cv bounding-box batches.

COCO boxes are `[x, y, width, height]` in pixels of the original image. Images are letterboxed to
`image_size` and their boxes scaled with them (`keras_csp.data.detection`, shared with the YOLO
and VOC loaders). Category ids (often sparse, e.g. 1..90) become contiguous class indices in
sorted id order; `ImageData.category_ids[k]` maps back.

The annotation file is read and checked up front, before any training, by
`keras_csp.lite.coco.read_coco` (TF-free: the on-device mAP reads files the same way).
"""

import os
import random
import warnings

from keras_csp.data.detection import check_detection_arguments, detection_data
from keras_csp.lite.coco import (  # noqa: F401  (BOX_TOLERANCE, SIZE_CHECKS, read_coco: data API)
    BOX_TOLERANCE,
    SIZE_CHECKS,
    first_items,
    read_coco,
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
    check_detection_arguments(image_size, bounding_box_format)
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(
            f"validation_split={validation_split!r} is not allowed; allowed: a number in [0, 1)."
        )
    if not os.path.isdir(images_dir):
        raise ValueError(f"images_dir={images_dir!r} is not a folder; allowed: the images' folder.")
    categories, records, clipped = read_coco(annotations, images_dir, clip_boxes=clip_boxes)
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
    return detection_data(
        categories, records, val_records, image_size, bounding_box_format, max_boxes,
        f"coco_detection({annotations!r})", category_ids=True, clipped_boxes=len(clipped),
    )
