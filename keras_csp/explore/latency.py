"""Measured batch-1 latency: a Keras model in TensorFlow, or a `.tflite` file in keras_csp.lite.

The timing loop itself is `keras_csp.timing.time_calls` (re-exported here as `explore.time_calls`).
"""

import dataclasses

import numpy as np

from keras_csp.timing import summary, time_calls


@dataclasses.dataclass
class LatencyResult:
    model: str
    input_size: int
    runs: int
    median_ms: float
    min_ms: float
    times_ms: list

    def __str__(self):
        return (
            f"{self.model} at {self.input_size}x{self.input_size}, batch 1: median "
            f"{self.median_ms:.1f} ms (min {self.min_ms:.1f}) over {self.runs} runs"
        )


def measure_latency(model, input_size=None, runs=10, warmup=2, **build_kwargs):
    """Median batch-1 latency on this machine's CPU of a traced forward pass (inference mode).

    Args:
        model: a model name (built with `build_kwargs`, random weights: latency does not depend on
            them) or a `keras.Model`.
        input_size: square input side (default: the name's default size, or the model's input).
    """
    import tensorflow as tf

    if isinstance(model, str):
        from keras_csp.applications.factory import build_model
        from keras_csp.models.config import get_config

        input_size = input_size or get_config(model).default_size
        name = model
        model = build_model(model, input_shape=(input_size, input_size, 3), **build_kwargs)
    else:
        name = model.name
        input_size = input_size or model.input_shape[1]
    forward = tf.function(lambda x: model(x, training=False))
    x = tf.random.uniform((1, input_size, input_size, 3), seed=0)

    def call():
        out = forward(x)
        # Wait for the result: the first output's values reach the host.
        tf.nest.flatten(out)[0].numpy()

    times = time_calls(call, runs=runs, warmup=max(1, warmup))
    timed = summary(times)
    return LatencyResult(name, input_size, runs, timed["ms"], timed["min_ms"], times)


def lite_latency(path, image, runs=20, warmup=2, num_threads=None):
    """Median batch-1 latency (ms) of a `.tflite` file run by `keras_csp.lite.LiteModel`."""
    from keras_csp.lite import LiteModel

    lite_model = LiteModel(path, num_threads=num_threads)
    batch = np.asarray(image)[None] if np.ndim(image) == 3 else np.asarray(image)[:1]
    return summary(time_calls(lambda: lite_model(batch), runs=runs, warmup=warmup))["ms"]
