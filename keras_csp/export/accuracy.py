"""Top-1 (classifiers) or COCO mAP (detectors) of the Keras model and of its `.tflite` export on the
same data, computed the same way.

Both sides decode and resize images with `keras_csp.lite.load_image` and feed raw pixels to a model
that normalizes them itself (the deploy model on the Keras side), so the difference between the
two numbers is the cost of conversion and quantization alone.
"""

import numpy as np

from keras_csp import lite
from keras_csp.export.serving import CLASSIFIER, build_serving, resolve_model


def evaluate_keras(model, folder, *, input_size=None, resize="none", batch_size=32,
                   crop_fraction=lite.DEFAULT_CROP_FRACTION):
    """`{"top1", "top5", "count", "classes", "skipped", "skipped_files"}` of a Keras classifier
    on a class-per-folder set (see `keras_csp.lite.evaluate`)."""
    lite.check_resize(resize)
    model = resolve_model(model)
    serving = build_serving(model, input_size, require_static=True)
    if serving.kind != CLASSIFIER:
        raise ValueError(
            f"model {model.name!r} is a {serving.kind}; allowed: a classifier (a Dense head)."
        )
    files, labels, class_names = lite.image_folder(folder)

    def predict(images):
        return np.asarray(serving.deploy(images.astype("float32"), training=False))

    return lite._accuracy(
        predict, serving.input_size, files, labels, class_names, resize, batch_size, crop_fraction
    )


def compare_accuracy(model, tflite_path, folder, *, resize="none", batch_size=32):
    """`{"keras": {...}, "tflite": {...}, "top1_drop": keras top-1 - tflite top-1}`."""
    lite_model = lite.LiteModel(tflite_path)
    keras_result = evaluate_keras(
        model, folder, input_size=lite_model.input_size, resize=resize, batch_size=batch_size
    )
    lite_result = lite.evaluate(lite_model, folder, resize=resize, batch_size=batch_size)
    return {
        "keras": keras_result,
        "tflite": lite_result,
        "top1_drop": keras_result["top1"] - lite_result["top1"],
    }


def evaluate_keras_detector(model, annotations, images_dir, *, input_size=None, **options):
    """COCO mAP / mAP50 of a Keras detector, measured as `keras_csp.coco_eval.evaluate_detector`
    measures its `.tflite` export: the same letterboxed images, the deploy model's decoded boxes
    before suppression (what the TFLite file returns), the same suppression and metric.

    `options` are `evaluate_detector`'s (`score_threshold`, `iou_threshold`, ...).
    """
    from keras_csp.coco_eval import evaluate_detector
    from keras_csp.export.serving import DETECTOR

    model = resolve_model(model)
    serving = build_serving(model, input_size, require_static=True, nms=False)
    if serving.kind != DETECTOR:
        raise ValueError(
            f"model {model.name!r} is a {serving.kind}; allowed: a detector (CSPDetector, or "
            "outputs 'boxes' and 'scores')."
        )

    def predict(images):
        pixels = images.astype("float32")
        outputs = serving.named_outputs(serving.deploy(pixels, training=False), pixels)
        return {k: np.asarray(v) for k, v in outputs.items()}

    return evaluate_detector(
        predict, annotations, images_dir, input_size=serving.input_size, **options
    )


def compare_detector_map(model, tflite_path, annotations, images_dir, **options):
    """`{"keras": {...}, "tflite": {...}, "mAP50_drop": keras - tflite}` on one COCO-format set."""
    from keras_csp.coco_eval import evaluate_detector

    lite_model = lite.LiteModel(tflite_path)
    keras_result = evaluate_keras_detector(
        model, annotations, images_dir, input_size=lite_model.input_size, **options
    )
    lite_result = evaluate_detector(lite_model, annotations, images_dir, **options)
    return {
        "keras": keras_result,
        "tflite": lite_result,
        "mAP50_drop": keras_result["mAP50"] - lite_result["mAP50"],
    }
