"""Writing a detection data set out as COCO files: one annotation JSON and one JPEG folder per split.

    keras-csp data export-coco shapes_coco/ --difficulty hard --num-train 1500 --num-validation 300

gives `shapes_coco/train.json`, `shapes_coco/train/000000.jpg ...`, `shapes_coco/val.json` and
`shapes_coco/val/...`, which `coco_detection`, `keras-csp train --data coco` and `keras-csp
evaluate` read back, so the COCO path runs on exactly the data the synthetic path draws.
"""

import json
import os

from keras_csp.data.detection_export import (
    check_overwrite,
    check_write_arguments,
    save_jpeg,
    split_images,
    splits,
    synthetic_detection,
)


def _split_to_coco(split, class_ids, class_names, folder, quality):
    """Writes the split's images as JPEGs under `folder`; returns its COCO dict."""
    images, annotations = [], []
    for image, image_boxes, image_classes in split_images(split):
        image_id = len(images) + 1
        name = f"{image_id - 1:06d}.jpg"
        save_jpeg(image, os.path.join(folder, name), quality)
        height, width = image.shape[:2]
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for (x1, y1, x2, y2), k in zip(image_boxes, image_classes):
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": class_ids[int(k)],
                    "bbox": [round(float(v), 3) for v in (x1, y1, w, h)],
                    "area": round(float(w * h), 3),
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": i, "name": n, "supercategory": "object"} for i, n in zip(class_ids, class_names)
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(data, out_dir, quality=95, overwrite=False):
    """Writes a detection `ImageData`'s splits as COCO JSON + JPEG folders under `out_dir`.

    Args:
        data: a detection `ImageData` (`synthetic_shapes("detection", ...)`, `coco_detection`).
        out_dir: the folder to create; it holds `train.json` + `train/` and, with a validation
            split, `val.json` + `val/`. Written atomically: complete or not at all.
        quality: JPEG quality (1-100).
        overwrite: replace a non-empty `out_dir` (refused by default).

    Returns:
        A dict per split name (`"train"`, `"val"`): `{"annotations": path, "images_dir": path,
        "images": count, "boxes": count}`.
    """
    from keras_csp.files import atomic_folder

    check_write_arguments(data, quality)
    path = check_overwrite(out_dir, overwrite)
    class_ids = list(data.category_ids or range(1, data.num_classes + 1))
    written = {}
    with atomic_folder(path) as tmp:
        for name, split in splits(data):
            os.makedirs(tmp / name)
            coco = _split_to_coco(split, class_ids, data.class_names, tmp / name, quality)
            with open(tmp / f"{name}.json", "w", encoding="utf-8") as f:
                json.dump(coco, f)
            written[name] = {
                "annotations": str(path / f"{name}.json"),
                "images_dir": str(path / name),
                "images": len(coco["images"]),
                "boxes": len(coco["annotations"]),
            }
    return written


def export_coco(out_dir, difficulty="hard", quality=95, overwrite=False, **shapes_options):
    """`synthetic_shapes("detection", difficulty=..., **shapes_options)` written by `write_coco`.

    Example: `export_coco("shapes_coco", num_train=1500, num_validation=300, image_size=128)`.
    `shapes_options` are `synthetic_shapes`' arguments (`num_train`, `num_validation`,
    `image_size`, `seed`, `max_objects`, ...). Returns what `write_coco` returns.
    """
    data = synthetic_detection("coco", out_dir, overwrite, difficulty, shapes_options)
    return write_coco(data, out_dir, quality=quality, overwrite=overwrite)
