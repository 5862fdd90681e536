"""Data for training: loaders that build tf.data pipelines, and keras-cv augmentation presets.

    data = keras_csp.data.synthetic_shapes()                        # no download, from a seed
    data = keras_csp.data.image_folder("flowers/", image_size=224)  # class-per-folder JPEG/PNG
    data = keras_csp.data.coco_detection("instances.json", "images/", image_size=416)
    data = keras_csp.data.yolo_detection("data.yaml", image_size=416)    # ultralytics' layout
    data = keras_csp.data.voc_detection("VOCdevkit/VOC2012", image_size=416)  # Pascal VOC
    data = keras_csp.data.synthetic_shapes("detection", difficulty="hard")  # shapes on photos
    keras_csp.data.export_coco("shapes_coco/", num_train=1500)  # the same, as COCO JSON + JPEGs
    keras_csp.data.export_yolo("shapes_yolo/", num_train=1500)  # ... as YOLO (export_voc: VOC)
    train = data.train.as_dataset(32, augment=keras_csp.data.augmenter("classification",
                                                                       data.num_classes, 224))

Every loader returns an `ImageData` (`.train`, `.validation`, `.class_names`, `.skipped`);
`Split.as_dataset(batch_size)` gives a shuffled, parallel-decoded, prefetched pipeline. Unreadable
images are skipped and counted in `ImageData.skipped`, never raised.
"""

from keras_csp.data.augment import (
    AUGMENTATION_PRESETS,
    ClassificationAugmentation,
    DetectionAugmentation,
    augmenter,
    augmentation_options,
)
from keras_csp.data.coco import coco_detection
from keras_csp.data.coco_export import export_coco, write_coco
from keras_csp.data.core import (
    IMAGE_EXTENSIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TASKS,
    ImageData,
    SkipLog,
    Split,
    normalize_images,
)
from keras_csp.data.folder import image_folder
from keras_csp.data.shapes import SHAPES
from keras_csp.data.synthetic import synthetic_shapes
from keras_csp.data.voc import voc_detection
from keras_csp.data.voc_export import export_voc, write_voc
from keras_csp.data.yolo import yolo_detection
from keras_csp.data.yolo_export import export_yolo, write_yolo

__all__ = [
    "AUGMENTATION_PRESETS",
    "ClassificationAugmentation",
    "DetectionAugmentation",
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageData",
    "SHAPES",
    "SkipLog",
    "Split",
    "TASKS",
    "augmentation_options",
    "augmenter",
    "coco_detection",
    "export_coco",
    "export_voc",
    "export_yolo",
    "image_folder",
    "normalize_images",
    "synthetic_shapes",
    "voc_detection",
    "write_coco",
    "write_voc",
    "write_yolo",
    "yolo_detection",
]
