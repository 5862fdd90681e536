"""Writing a detection data set out as a Pascal VOC root.

    keras-csp data export-voc shapes_voc/ --difficulty hard --num-train 1500 --num-validation 300

gives `shapes_voc/JPEGImages/train_000000.jpg ...`, one `Annotations/<id>.xml` per image and
`ImageSets/Main/{train,val,trainval}.txt`, which `voc_detection`, `keras-csp train --data voc`
and `keras-csp evaluate --data shapes_voc` read back. Coordinates are VOC's 1-based pixels
(`xmin = x1 + 1`, `xmax = x2`), written with two decimals as CVAT writes them, so the boxes read
back within 0.005 pixel of the data's; no object is `difficult`.
"""

import os
from xml.sax.saxutils import escape

from keras_csp.data.detection_export import (
    check_overwrite,
    check_write_arguments,
    save_jpeg,
    split_images,
    splits,
    synthetic_detection,
)


def _number(value):
    return f"{value:.2f}".rstrip("0").rstrip(".")


def annotation_xml(filename, width, height, boxes, classes, class_names):
    """The VOC annotation of one image (xyxy pixel boxes, class indices)."""
    objects = []
    for (x1, y1, x2, y2), k in zip(boxes, classes):
        objects.append(
            f"  <object>\n    <name>{escape(class_names[int(k)])}</name>\n"
            "    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n"
            "    <difficult>0</difficult>\n    <bndbox>\n"
            f"      <xmin>{_number(x1 + 1)}</xmin>\n      <ymin>{_number(y1 + 1)}</ymin>\n"
            f"      <xmax>{_number(x2)}</xmax>\n      <ymax>{_number(y2)}</ymax>\n"
            "    </bndbox>\n  </object>\n"
        )
    return (
        f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{escape(filename)}</filename>\n"
        f"  <size>\n    <width>{width}</width>\n    <height>{height}</height>\n"
        "    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n"
        + "".join(objects) + "</annotation>\n"
    )


def write_voc(data, out_dir, quality=95, overwrite=False):
    """Writes a detection `ImageData`'s splits as a Pascal VOC root under `out_dir`.

    Args:
        data: a detection `ImageData` (`synthetic_shapes("detection", ...)`, ...).
        out_dir: the folder to create (`Annotations/`, `JPEGImages/`, `ImageSets/Main/`; image
            ids `train_000000`, `val_000000`, ...). Written atomically: complete or not at all.
        quality: JPEG quality (1-100).
        overwrite: replace a non-empty `out_dir` (refused by default).

    Returns:
        A dict per split name (`"train"`, `"val"`): `{"root", "image_set": its .txt, "images":
        count, "boxes": count}`.
    """
    from keras_csp.files import atomic_folder

    check_write_arguments(data, quality)
    path = check_overwrite(out_dir, overwrite)
    written, every_id = {}, []
    with atomic_folder(path) as tmp:
        for folder in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
            os.makedirs(tmp / folder)
        for name, split in splits(data):
            ids, boxes_written = [], 0
            for image, boxes, classes in split_images(split):
                image_id = f"{name}_{len(ids):06d}"
                save_jpeg(image, tmp / "JPEGImages" / f"{image_id}.jpg", quality)
                height, width = image.shape[:2]
                xml = annotation_xml(f"{image_id}.jpg", width, height, boxes, classes,
                                     data.class_names)
                (tmp / "Annotations" / f"{image_id}.xml").write_text(xml, encoding="utf-8")
                ids.append(image_id)
                boxes_written += len(boxes)
            (tmp / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(i + "\n" for i in ids))
            every_id += ids
            written[name] = {
                "root": str(path),
                "image_set": str(path / "ImageSets" / "Main" / f"{name}.txt"),
                "images": len(ids),
                "boxes": boxes_written,
            }
        trainval = "".join(i + "\n" for i in every_id)
        (tmp / "ImageSets" / "Main" / "trainval.txt").write_text(trainval)
    return written


def export_voc(out_dir, difficulty="hard", quality=95, overwrite=False, **shapes_options):
    """`synthetic_shapes("detection", difficulty=..., **shapes_options)` written by `write_voc`.

    Example: `export_voc("shapes_voc", num_train=1500, num_validation=300, image_size=128)`;
    `shapes_options` as `export_coco`'s. Returns what `write_voc` returns.
    """
    data = synthetic_detection("voc", out_dir, overwrite, difficulty, shapes_options)
    return write_voc(data, out_dir, quality=quality, overwrite=overwrite)
