"""What the detection exporters share (`write_coco`, `write_yolo`, `write_voc`): the checks, the
images and boxes of a split as NumPy, JPEG writing, and drawing a synthetic set to export.

Every writer builds its files in a temporary folder (`keras_csp.files.atomic_folder`) that
replaces the output folder only once complete.
"""

import numpy as np

# Names of the split files and folders inside the output folder (COCO's and YOLO's `val`).
SPLIT_NAMES = {"train": "train", "validation": "val"}


def check_overwrite(out_dir, overwrite):
    from keras_csp.files import check_output_path

    path = check_output_path(out_dir, "out_dir", kind="folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(
            f"out_dir={str(path)!r} is not empty; allowed: a new or empty folder, or "
            "overwrite=True (--overwrite) to replace it."
        )
    return path


def check_write_arguments(data, quality):
    if getattr(data, "task", None) != "detection":
        raise ValueError(
            f"data={data!r} is not allowed; allowed: a detection ImageData (task='detection')."
        )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality={quality!r} is not allowed; allowed: an integer in 1..100.")


def splits(data):
    """`(file name of the split, Split)` of the data's splits that exist."""
    return [(SPLIT_NAMES[s.name], s) for s in (data.train, data.validation) if s is not None]


def split_images(split, batch_size=64):
    """Yields `(uint8 image (h, w, 3), xyxy pixel boxes (n, 4), class indices (n,))` per image,
    padding left out."""
    import keras_cv

    for batch in split.as_dataset(batch_size, shuffle=False):
        pixels = np.clip(np.round(batch["images"].numpy()), 0, 255).astype(np.uint8)
        boxes = batch["bounding_boxes"]["boxes"]
        if split.bounding_box_format != "xyxy":
            boxes = keras_cv.bounding_box.convert_format(
                boxes, source=split.bounding_box_format, target="xyxy", images=batch["images"]
            )
        boxes = np.asarray(boxes, np.float64)
        classes = batch["bounding_boxes"]["classes"].numpy()
        for image, image_boxes, image_classes in zip(pixels, boxes, classes):
            keep = image_classes >= 0  # padding is class -1
            yield image, image_boxes[keep], image_classes[keep].astype(int)


def save_jpeg(image, path, quality):
    from PIL import Image

    # 4:4:4 chroma: the default 4:2:0 smears the colours of objects a few pixels wide.
    Image.fromarray(image).save(path, quality=quality, subsampling=0)


def synthetic_detection(what, out_dir, overwrite, difficulty, shapes_options):
    """`synthetic_shapes("detection", ...)` for an `export_<format>`, its options checked and
    `out_dir` checked before any drawing."""
    from keras_csp.data.synthetic import synthetic_shapes

    if "task" in shapes_options:
        raise ValueError(
            f"task={shapes_options['task']!r} is not allowed; export_{what} always writes "
            "detection data."
        )
    if "bounding_box_format" in shapes_options:
        raise ValueError(
            f"bounding_box_format is not allowed; the {what.upper()} files have their own box "
            "format."
        )
    check_overwrite(out_dir, overwrite)
    return synthetic_shapes("detection", difficulty=difficulty, **shapes_options)
