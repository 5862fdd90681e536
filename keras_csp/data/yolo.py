"""`yolo_detection`: ultralytics' YOLO layout (a data YAML, `images/`, `labels/*.txt`) to keras-cv
bounding-box batches, the same `ImageData` as `coco_detection`'s.

The YAML and every label file are read and checked up front, before any training, by
`keras_csp.lite.yolo.read_yolo` (TF-free: `keras-csp evaluate --data data.yaml` reads them the
same way); `keras_csp.data.detection` letterboxes the images and their boxes.
"""

from keras_csp.data.detection import (
    check_detection_arguments,
    check_no_empty_training,
    detection_data,
)
from keras_csp.lite.yolo import read_yolo


def yolo_detection(
    data_yaml,
    image_size=416,
    bounding_box_format="xyxy",
    max_boxes=100,
    train_split="train",
    val_split="val",
):
    """A YOLO-format detection data set as an `ImageData` of keras-cv box dicts.

        data = keras_csp.data.yolo_detection("shapes_yolo/data.yaml", image_size=128)

    Args:
        data_yaml: ultralytics' data YAML: `path` (the root; default the YAML's folder),
            `train`, `val` (image folders, `.txt` lists of images, or lists of those, relative
            to `path`) and `names` (a list, or a mapping 0..n-1 -> name). Labels are found as
            ultralytics finds them (`/images/` -> `/labels/`, `.txt`): rows `class cx cy w h`
            normalized to 0..1; a missing or empty label file is an image without objects.
        image_size: images are letterboxed to this square size; boxes follow.
        bounding_box_format: keras-cv format of the labels (`"xyxy"`, `"xywh"`, `"rel_xyxy"`, ...).
        max_boxes: boxes per image after padding; extra boxes are dropped.
        train_split, val_split: the YAML keys of the splits (`val_split=None`: no validation).

    Returns:
        `ImageData` whose splits yield `{"images", "bounding_boxes": {"boxes", "classes"}}`;
        class `k` is `names[k]`.
    """
    check_detection_arguments(image_size, bounding_box_format)
    categories, records = read_yolo(data_yaml, train_split)
    check_no_empty_training(records, f"{data_yaml} ({train_split!r})")
    val_records = read_yolo(data_yaml, val_split)[1] if val_split is not None else []
    return detection_data(
        categories, records, val_records, image_size, bounding_box_format, max_boxes,
        f"yolo_detection({str(data_yaml)!r})",
    )
