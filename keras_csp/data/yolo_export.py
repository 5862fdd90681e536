"""Writing a detection data set out in ultralytics' YOLO layout.

    keras-csp data export-yolo shapes_yolo/ --difficulty hard --num-train 1500 --num-validation 300

gives `shapes_yolo/data.yaml` (`train: images/train`, `val: images/val`, `names`), the JPEGs in
`images/{train,val}/` and one label file per image in `labels/{train,val}/` (`class cx cy w h`,
normalized; empty for an image without objects), which `yolo_detection`, `keras-csp train --data
yolo`, `keras-csp evaluate --data shapes_yolo/data.yaml` and ultralytics itself read. The YAML has
no `path`: readers take the YAML's folder, so the folder can be moved.
"""

import os

from keras_csp.data.detection_export import (
    check_overwrite,
    check_write_arguments,
    save_jpeg,
    split_images,
    splits,
    synthetic_detection,
)


def _label_rows(boxes, classes, width, height):
    rows = []
    for (x1, y1, x2, y2), k in zip(boxes, classes):
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        w, h = (x2 - x1) / width, (y2 - y1) / height
        rows.append(f"{int(k)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(rows)


def write_yolo(data, out_dir, quality=95, overwrite=False):
    """Writes a detection `ImageData`'s splits in YOLO's layout under `out_dir`.

    Args:
        data: a detection `ImageData` (`synthetic_shapes("detection", ...)`, `coco_detection`,
            ...); class `k` is written as class id `k`, named `data.class_names[k]`.
        out_dir: the folder to create (`data.yaml`, `images/`, `labels/`). Written atomically:
            complete or not at all.
        quality: JPEG quality (1-100).
        overwrite: replace a non-empty `out_dir` (refused by default).

    Returns:
        A dict per split name (`"train"`, `"val"`): `{"data": the YAML's path, "images_dir",
        "labels_dir", "images": count, "boxes": count}`.
    """
    import yaml

    from keras_csp.files import atomic_folder

    check_write_arguments(data, quality)
    path = check_overwrite(out_dir, overwrite)
    written, config = {}, {}
    with atomic_folder(path) as tmp:
        for name, split in splits(data):
            images, labels = tmp / "images" / name, tmp / "labels" / name
            os.makedirs(images)
            os.makedirs(labels)
            count = boxes_written = 0
            for image, boxes, classes in split_images(split):
                stem = f"{count:06d}"
                save_jpeg(image, images / f"{stem}.jpg", quality)
                height, width = image.shape[:2]
                (labels / f"{stem}.txt").write_text(_label_rows(boxes, classes, width, height))
                count, boxes_written = count + 1, boxes_written + len(boxes)
            config[name] = f"images/{name}"
            written[name] = {
                "data": str(path / "data.yaml"),
                "images_dir": str(path / "images" / name),
                "labels_dir": str(path / "labels" / name),
                "images": count,
                "boxes": boxes_written,
            }
        config["names"] = dict(enumerate(data.class_names))
        with open(tmp / "data.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)
    return written


def export_yolo(out_dir, difficulty="hard", quality=95, overwrite=False, **shapes_options):
    """`synthetic_shapes("detection", difficulty=..., **shapes_options)` written by `write_yolo`.

    Example: `export_yolo("shapes_yolo", num_train=1500, num_validation=300, image_size=128)`;
    `shapes_options` as `export_coco`'s. Returns what `write_yolo` returns.
    """
    data = synthetic_detection("yolo", out_dir, overwrite, difficulty, shapes_options)
    return write_yolo(data, out_dir, quality=quality, overwrite=overwrite)
