"""Export for deployment: SavedModel and TFLite (float, fp16, dynamic-range, int8, QAT, pruned).

    from keras_csp import export
    export.saved_model(model, "out/cspresnext50")            # serving_default: uint8 images in
    export.tflite(model, "m.tflite", quantize="fp16")        # the mobile-GPU choice, batch 1
    export.tflite(model, "m.tflite", batch="dynamic")        # any batch size (servers)
    export.tflite(model, "m.tflite", quantize="int8", representative_data="calib/", io="int8")
    export.tflite(model, "m.tflite", quantize="qat", train_data=ds, prune=0.5)

Each returns an `ExportReport` (size, ops, GPU-delegate verdict) and prints it. Names load lazily,
so `keras_csp.export.cli` (and through it `keras-csp --help`) imports neither TensorFlow nor
Keras; see `keras_csp.lite` (and its commands, `keras_csp/lite/cli.py`) for the on-device side.
"""

from keras_csp.lazy import lazy_attributes

_EXPORTS = {
    "saved_model": "keras_csp.export.convert",
    "tflite": "keras_csp.export.convert",
    "check_batch": "keras_csp.export.convert",
    "DYNAMIC_BATCH": "keras_csp.export.convert",
    "QUANTIZE_MODES": "keras_csp.export.quantization",
    "IO_TYPES": "keras_csp.export.quantization",
    "ExportReport": "keras_csp.export.report",
    "evaluate_keras": "keras_csp.export.accuracy",
    "compare_accuracy": "keras_csp.export.accuracy",
    "evaluate_keras_detector": "keras_csp.export.accuracy",
    "compare_detector_map": "keras_csp.export.accuracy",
    "to_tf_keras": "keras_csp.export.twin",
    "TWINS": "keras_csp.export.twin",
    "PixelNormalization": "keras_csp.export.serving",
    "build_serving": "keras_csp.export.serving",
    "gpu_check": "keras_csp.export.gpu",
}

__getattr__, __dir__, __all__ = lazy_attributes(__name__, _EXPORTS, ())
