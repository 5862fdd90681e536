"""LiteModel.undelegated_ops names the ops XNNPACK leaves to the interpreter."""

import numpy as np
import pytest
import tensorflow as tf

from keras_csp.lite import LiteModel


def _convert(fn, path, int8):
    fn = tf.function(fn, input_signature=[tf.TensorSpec((1, 16, 16, 8))])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(-1, 1, (1, 16, 16, 8)).astype("float32")] for _ in range(4)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())
    return path


def _conv(x):
    return tf.nn.conv2d(x, tf.fill((1, 1, 8, 8), 0.1), 1, "SAME")


@pytest.mark.parametrize("int8", [False, True])
def test_names_the_op_outside_the_delegate(tmp_path, int8):
    # XNNPACK runs unit-stride slices only: a subsampling slice between two convs stays outside.
    strided = _convert(lambda x: _conv(_conv(x)[:, ::2, ::2]), tmp_path / "s.tflite", int8)
    assert LiteModel(strided, num_threads=1, backend="tensorflow").undelegated_ops() == [
        "STRIDED_SLICE"
    ]
    plain = _convert(lambda x: _conv(_conv(x)), tmp_path / "p.tflite", int8)
    assert LiteModel(plain, num_threads=1, backend="tensorflow").undelegated_ops() == []
