"""What an exported model computes: pixels in, probabilities (or boxes, or features) out.

Every export wraps the Keras model into a *deploy model* that takes raw pixel values (0..255) and
does its own preprocessing, so an application feeds decoded images and nothing else:

    images (N, H, W, 3) pixels -> PixelNormalization (ImageNet mean/std) -> model -> head

The head depends on what the model returns:

- classifier (one (N, classes) output from a Dense layer): `{"probabilities": (N, classes)}`; a
  softmax is appended when the model ends in logits (or in log-probabilities).
- detector (a dict output with "boxes" and "scores", or any model exported with `decode=`):
  `{"boxes": (N, K, 4) as x1, y1, x2, y2 in input pixels, "scores": (N, K), "classes": (N, K)}`,
  plus an optional `"num_detections": (N,)`; entries past `num_detections` or with a score of 0 are
  padding. Before non-max suppression (TFLite, see `detector_decode`): `"boxes": (N, A, 4)` and
  `"scores": (N, A, classes)` per anchor, no "classes"; `keras_csp.lite` suppresses.
  `decode(outputs, images) -> dict` runs inside the exported function (TF ops are fine there;
  `images` are the float pixels). A model with a box decoding method, `decode_boxes(predictions,
  images)` (`keras_csp.detection.CSPDetector`) or keras-cv's `decode_predictions` (its detectors'),
  gets one automatically (`detector_decode`).
- backbone (anything else): the model's outputs by name (`P3`, `P4`, ... or `features`).

The SavedModel's `serving_default` takes uint8 images; a TFLite model takes float32 pixel values
(0..255, no cast op for the GPU delegate) or, with integer I/O, the quantized pixels.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_csp.export.graph import check_functional, is_functional
from keras_csp.preprocessing import IMAGENET_MEAN, IMAGENET_STD

CLASSIFIER, DETECTOR, BACKBONE = "classifier", "detector", "backbone"
DETECTOR_KEYS = ("boxes", "scores", "classes", "num_detections")
# Outputs that are already probabilities; anything else gets a softmax.
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


@keras.saving.register_keras_serializable(package="keras_csp")
class PixelNormalization(keras.layers.Layer):
    """`keras_csp.preprocessing.preprocess_input` as a layer: 0..255 pixels -> ImageNet-normalized.

    Kept as its own layer rather than folded into the first convolution, which would change the
    border: the stem pads with zeros in normalized space, and that is not zero in pixel space.

    Computed as one per-channel affine map, `x * (1 / (255 std)) + (-mean / std)`, written as a 1x1
    depthwise convolution with a bias, which TFLite keeps as one DEPTHWISE_CONV_2D. As SUB and MUL
    with a 3-wide per-channel constant, XNNPACK broadcasts over the narrow last axis: at 256x256
    that took 0.64 ms in int8 (0.21 ms fp32), the depthwise form 0.16 ms (LiteRT 2.3, 2 threads).
    """

    # Its tf_keras twin (keras_csp/export/twin.py): weightless arithmetic (scale and shift).
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "output"}

    def call(self, x):
        mean = np.array(IMAGENET_MEAN, np.float32) * 255.0
        std = np.array(IMAGENET_STD, np.float32) * 255.0
        kernel = ops.convert_to_tensor((1.0 / std).reshape(1, 1, 3, 1))
        bias = ops.convert_to_tensor(-mean / std)
        return ops.depthwise_conv(ops.cast(x, "float32"), kernel, strides=1, padding="valid") + bias

    def compute_output_shape(self, input_shape):
        return input_shape


@dataclasses.dataclass
class Serving:
    """The deploy model and how to name its outputs."""

    deploy: keras.Model  # float pixels (N, H, W, 3) -> raw outputs (normalization and head inside)
    kind: str
    input_size: tuple  # (height, width); entries may be None for a SavedModel
    decode: object = None  # optional callable (outputs, images) -> dict (detectors)

    def named_outputs(self, outputs, images):
        """Deploy-model outputs (or decoded ones) as the exported dict of named tensors."""
        if self.decode is not None:
            outputs = self.decode(outputs, images)
            if not isinstance(outputs, dict) or not {"boxes", "scores"} <= set(outputs):
                raise ValueError(
                    "decode= must return a dict with at least 'boxes' and 'scores' (and "
                    f"optionally 'classes', 'num_detections'); got {outputs!r:.200}."
                )
            return dict(outputs)
        if isinstance(outputs, dict):
            return dict(outputs)
        if self.kind == CLASSIFIER:
            return {"probabilities": outputs}
        if isinstance(outputs, (list, tuple)):
            return {f"output_{i}": o for i, o in enumerate(outputs)}
        return {"features": outputs}


def parse_input_size(input_size, argument="input_size"):
    """`None`, an int, or (height, width) -> (height, width) or None."""
    if input_size is None:
        return None
    if isinstance(input_size, bool):
        raise ValueError(f"{argument}={input_size!r}; allowed: None, an int or (height, width).")
    if isinstance(input_size, int):
        size = (input_size, input_size)
    else:
        try:
            size = tuple(int(s) for s in input_size)
        except (TypeError, ValueError):
            size = ()
    if len(size) != 2 or min(size) < 1:
        raise ValueError(
            f"{argument}={input_size!r} is not allowed; allowed: None, a positive int or "
            "(height, width)."
        )
    return size


def resolve_input_size(model, input_size=None, require_static=False):
    """(height, width) the export uses: the model's own, or `input_size` for a dynamic model."""
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError(
            f"model {model.name!r} has inputs {[tuple(t.shape) for t in model.inputs]}; allowed: "
            "one image input of shape (batch, height, width, 3)."
        )
    _, h, w, c = model.inputs[0].shape
    if c != 3:
        raise ValueError(
            f"model {model.name!r} takes {c}-channel images; allowed for export: 3 (RGB), since "
            "the exported model normalizes RGB pixels."
        )
    size = parse_input_size(input_size)
    if size is not None:
        for name, own, asked in (("height", h, size[0]), ("width", w, size[1])):
            if own is not None and own != asked:
                raise ValueError(
                    f"input_size={input_size!r} does not match the model's {name} {own}; allowed: "
                    f"None or the model's own size ({h}, {w})."
                )
        return size
    if require_static and (h is None or w is None):
        raise ValueError(
            f"input_size=None, but model {model.name!r} takes any image size; a TFLite model needs "
            "a fixed one: allowed: an int or (height, width), e.g. the size it was trained at."
        )
    return (h, w)


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


def _activation_name(layer):
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    name = keras.activations.serialize(fn)
    return name if isinstance(name, str) else getattr(fn, "__name__", None)


def output_kind(model, decode=None):
    """(kind, final activation name or None) of a functional model."""
    if decode is not None:
        return DETECTOR, None
    out = model.output
    if isinstance(out, dict):
        return (DETECTOR if {"boxes", "scores"} <= set(out) else BACKBONE), None
    if len(model.outputs) == 1 and len(model.outputs[0].shape) == 2:
        layer = _producer(model.outputs[0])
        while is_functional(layer):
            layer = _producer(layer.outputs[0]) if len(layer.outputs) == 1 else None
        activation = _activation_name(layer) if layer is not None else None
        if isinstance(layer, keras.layers.Dense):
            return CLASSIFIER, activation
        if isinstance(layer, (keras.layers.Activation, keras.layers.Softmax)):
            return CLASSIFIER, activation
    return BACKBONE, None


def box_decoder(model):
    """A detector's own decoding of raw head outputs into suppressed boxes: CSPDetector's
    `decode_boxes`, or `decode_predictions`, keras-cv's detectors' name for it (in keras_csp that
    name is ImageNet label decoding's, `keras_csp.decode_predictions`); `None` for other models."""
    for name in ("decode_boxes", "decode_predictions"):
        if callable(getattr(model, name, None)):
            return getattr(model, name)
    return None


def detector_decode(model, nms=True):
    """`decode` for `keras_csp.detection.CSPDetector` (or a detector with keras-cv's decoding).

    With `nms=True` (SavedModel) it is the model's own decoding with keras-cv's non-max
    suppression: `{"boxes" (N, K, 4) xyxy pixels, "scores" (N, K), "classes", "num_detections"}`.
    keras-cv's NMS does not convert to TFLite builtins (BitwiseAnd, loops), so with `nms=False`
    (TFLite) the boxes are decoded but not suppressed: `{"boxes" (N, A, 4), "scores" (N, A, C)}`
    per anchor point, and `keras_csp.lite.detections` runs the suppression on the device, in
    numpy, after a GPU-friendly graph.
    """

    def decode_all(outputs, images):
        result = box_decoder(model)(outputs, images)
        boxes = result["boxes"]
        box_format = getattr(model, "bounding_box_format", "xyxy")
        if box_format != "xyxy":
            import keras_cv

            boxes = keras_cv.bounding_box.convert_format(
                boxes, source=box_format, target="xyxy", images=images
            )
        named = {"boxes": boxes, "scores": result["confidence"], "classes": result["classes"]}
        if "num_detections" in result:
            named["num_detections"] = result["num_detections"]
        return named

    def decode_boxes(outputs, images):
        from keras_csp.detection import boxes as box_coding

        height, width = images.shape[1], images.shape[2]
        centers, strides = box_coding.anchor_points(height, width)
        distances = box_coding.decode_distances(outputs["boxes"], model.box_bins)
        boxes = box_coding.clip_boxes(
            box_coding.distances_to_boxes(
                distances, centers, strides, max_distance=max(height, width)
            ),
            height,
            width,
        )
        return {"boxes": boxes, "scores": ops.sigmoid(ops.cast(outputs["classes"], "float32"))}

    if nms:
        return decode_all
    if not hasattr(model, "box_bins"):
        raise ValueError(
            f"model {model.name!r} decodes with non-max suppression that TFLite cannot hold and "
            "has no box_bins to decode without it; allowed: pass decode=(outputs, images) -> dict."
        )
    return decode_boxes


def build_serving(model, input_size=None, decode=None, require_static=False, nms=True):
    """Wraps `model` into the deploy model (see the module docstring)."""
    check_functional(model)
    if decode is not None and not callable(decode):
        raise ValueError(f"decode={decode!r} is not callable; allowed: None or a function.")
    if decode is None and box_decoder(model) is not None:
        decode = detector_decode(model, nms=nms)
    size = resolve_input_size(model, input_size, require_static)
    kind, activation = output_kind(model, decode)
    images = keras.Input((size[0], size[1], 3), name="images", dtype="float32")
    x = PixelNormalization(name="preprocess")(images)
    outputs = model(x)
    if kind == CLASSIFIER and activation not in _PROBABILITY_ACTIVATIONS:
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
    deploy = keras.Model(images, outputs, name=f"{model.name}_deploy")
    return Serving(deploy=deploy, kind=kind, input_size=size, decode=decode)


def resolve_model(model, argument="model"):
    """A `keras.Model`, or a `.keras` file loaded with keras_csp's layers registered."""
    if isinstance(model, keras.Model):
        return model
    from pathlib import Path

    if isinstance(model, (str, Path)) and Path(model).suffix == ".keras":
        if not Path(model).is_file():
            raise ValueError(f"{argument}={str(model)!r} does not exist; allowed: a .keras file.")
        from keras_csp.applications.saving import load_model

        return load_model(model)
    raise ValueError(
        f"{argument}={model!r} is not allowed; allowed: a keras.Model or the path of a .keras file."
    )
