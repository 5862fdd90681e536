"""Each format run as `keras-csp evaluate` runs a file: a predictor (uint8 images -> named outputs)
for accuracy, and a one-image call for latency.

- Keras: the export's deploy model (`keras_csp.export.build_serving`: the pixel normalization and,
  for detectors, the box decoding before suppression, as in the `.tflite` file), traced once with
  `tf.function`.
- SavedModel: its `serving_default` signature (a detector's `before_nms`, which returns what the
  `.tflite` file returns, so that the same non-max suppression follows).
- TFLite: `keras_csp.lite.LiteModel` with `threads` CPU threads (XNNPACK).

Latency is one image (batch 1), timed in turns (`in_turns`): each round calls every format once,
so a machine that slows down or speeds up during the run does so for all of them alike.
"""

import numpy as np

from keras_csp import lite, timing


class Runner:
    """A format's `predict(images) -> {name: array}` and `once()` (one image, for latency)."""

    def __init__(self, predict, size, pixels):
        self.predict = predict
        self.size = size
        self._pixels = pixels

    def once(self):
        return self.predict(self._pixels)


def _one_image(size):
    return np.random.default_rng(0).integers(0, 256, (1, *size, 3)).astype("uint8")


def keras_runner(model, kind, size):
    import tensorflow as tf

    from keras_csp.export.serving import DETECTOR, build_serving

    serving = build_serving(model, size, require_static=True, nms=kind != DETECTOR)
    h, w = serving.input_size

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])
    def run(pixels):
        return serving.named_outputs(serving.deploy(pixels, training=False), pixels)

    def predict(images):
        return {k: np.asarray(v) for k, v in run(tf.constant(images, tf.float32)).items()}

    return Runner(predict, (h, w), _one_image((h, w)))


def savedmodel_runner(path, kind):
    import tensorflow as tf

    from keras_csp.export.convert import BEFORE_NMS

    loaded = tf.saved_model.load(str(path))
    name = BEFORE_NMS if kind == "detector" and BEFORE_NMS in loaded.signatures else (
        "serving_default"
    )
    signature = loaded.signatures[name]
    _, h, w, _ = signature.structured_input_signature[1]["images"].shape.as_list()

    def predict(images):
        out = signature(images=tf.constant(images, tf.uint8))
        return {k: v.numpy() for k, v in out.items()}

    runner = Runner(predict, (h, w), _one_image((h, w)))
    runner.keep = loaded  # the signature's variables live as long as the object they came from
    return runner


def tflite_runner(path, threads=None):
    model = lite.LiteModel(path, num_threads=threads)
    return Runner(model, model.input_size, _one_image(model.input_size))


def in_turns(runners, runs=20, warmup=3):
    """`({name: timing.summary}, {name: error})` of `runners` ({name: Runner}) called in turns:
    `warmup` untimed calls each, then `runs` rounds in which each is called once."""
    times, errors = {}, {}
    for name, runner in runners.items():
        try:
            timing.time_calls(runner.once, runs=1, warmup=warmup)
            times[name] = []
        except Exception as e:  # a format that fails is a row with the reason
            errors[name] = f"{type(e).__name__}: {e}"
    for _ in range(runs):
        for name in times:
            times[name].extend(timing.time_calls(runners[name].once, runs=1, warmup=0))
    return {name: timing.summary(t) for name, t in times.items()}, errors
