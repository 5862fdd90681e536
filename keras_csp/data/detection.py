"""What the detection loaders share (`coco_detection`, `yolo_detection`, `voc_detection`): the
argument checks and the `ImageData` built from records read by a TF-free reader.

A record is `(image path, boxes [[x1, y1, x2, y2] pixels], category ids[, ignore flags])`.
Images are letterboxed to `image_size` (longer side resized, bottom/right padded) and their boxes
scaled with them, then converted to the requested keras-cv format. Category ids become contiguous
class indices in sorted id order. Ignored boxes (VOC's `difficult`) are left out of training, as
VOC's protocol and detectors trained on VOC do.
"""

from keras_csp.data.core import ImageData, Split, decode_image, letterbox, safe_load
from keras_csp.data.shapes import BOUNDING_BOX_FORMATS


def check_detection_arguments(image_size, bounding_box_format):
    if bounding_box_format not in BOUNDING_BOX_FORMATS:
        raise ValueError(
            f"bounding_box_format={bounding_box_format!r} is not allowed; allowed: "
            f"{', '.join(BOUNDING_BOX_FORMATS)}."
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size={image_size!r} is not allowed; allowed: an integer >= 32.")


def training_records(records):
    """The records without their ignored boxes, as `(path, boxes, category ids)`."""
    kept = []
    for record in records:
        path, boxes, ids = record[:3]
        ignore = record[3] if len(record) > 3 else [False] * len(ids)
        keep = [k for k, flag in enumerate(ignore) if not flag]
        kept.append((path, [boxes[k] for k in keep], [ids[k] for k in keep]))
    return kept


def make_split(name, records, image_size, class_of, fmt, max_boxes):
    """A detection `Split` of `records` (ignored boxes left out)."""
    records = training_records(records)
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


def detection_data(categories, records, val_records, image_size, bounding_box_format, max_boxes,
                   description, category_ids=False, clipped_boxes=0):
    """The `ImageData` of a training and a validation list of records (`val_records` may be
    empty: no validation split). `category_ids=True` keeps the ids (COCO's, for exports)."""
    ids = sorted(categories)
    class_of = {c: k for k, c in enumerate(ids)}
    args = (image_size, class_of, bounding_box_format, int(max_boxes))
    return ImageData(
        task="detection",
        class_names=[categories[c] for c in ids],
        train=make_split("train", records, *args),
        validation=make_split("validation", val_records, *args) if val_records else None,
        description=description,
        category_ids=ids if category_ids else None,
        clipped_boxes=clipped_boxes,
    )


def check_no_empty_training(records, source):
    """A training split needs at least one box (as COCO's reader requires)."""
    if not any(len(r[1]) - sum(r[3] if len(r) > 3 else []) for r in records):
        raise ValueError(
            f"{source}: the training split has no boxes ({len(records)} image(s)); allowed: a "
            "detection data set with at least one box."
        )
