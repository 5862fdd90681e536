"""Quantization-aware fine-tuning and magnitude pruning with tensorflow-model-optimization.

Both work on the tf_keras twin of the deploy model (`twin.py`), since tfmot 0.8 refuses Keras 3
models. tfmot's default 8-bit scheme knows the plain layers (conv + BN folding, add, concat,
pooling, dense); keras_csp's own layers get a QuantizeConfig by their `TWINS` entry:

- "passthrough" (`PassThroughQuantizeConfig`): the channel split, the edge-padded max-pool. Slices,
  copies and maxima of int8 values are int8 values on the same scale; a quantizer would only add
  rounding.
- "output" (`OutputQuantizeConfig`): the partial shortcut (an add) and the pixel normalization (a
  multiply-add), whose results need a range of their own.

Fine-tuning data may carry labels (`(images, labels)`); without labels the float Keras model is the
teacher (its outputs are the targets: KL divergence for probabilities, mean squared error else).
"""

import os

import keras_cv  # noqa: F401  before tfmot: see below
import numpy as np
import tensorflow as tf

# Importing tfmot sets TF_USE_LEGACY_KERAS=1 for the whole process, after which a first
# `import keras_cv` picks Keras 2 and fails (so a QAT export would break loading a detector
# later in the same process). keras_cv is imported above, and the variable is put back once
# tfmot has bound tf_keras.
_legacy_keras = os.environ.get("TF_USE_LEGACY_KERAS")
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras  # noqa: E402

if _legacy_keras is None:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
else:
    os.environ["TF_USE_LEGACY_KERAS"] = _legacy_keras

from keras_csp.export import data as data_lib
from keras_csp.export.serving import CLASSIFIER
from keras_csp.export.twin import KerasOp
from keras_csp.lite import describe_skipped

_qk = tfmot.quantization.keras


class PassThroughQuantizeConfig(_qk.QuantizeConfig):
    """No quantizers: the layer moves quantized values without changing their scale."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


class OutputQuantizeConfig(PassThroughQuantizeConfig):
    """One 8-bit moving-average quantizer on the output (as tfmot does for Add)."""

    def get_output_quantizers(self, layer):
        return [
            _qk.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]


_CONFIGS = {"passthrough": PassThroughQuantizeConfig, "output": OutputQuantizeConfig}


def _scope():
    return _qk.quantize_scope(
        {
            "KerasOp": KerasOp,
            "PassThroughQuantizeConfig": PassThroughQuantizeConfig,
            "OutputQuantizeConfig": OutputQuantizeConfig,
        }
    )


def quantize_aware(twin, layer_map, scheme=None):
    """The twin with fake-quantization inserted (not yet fine-tuned)."""

    def annotate(layer):
        entry = layer_map.get(layer.name)
        if entry is not None and entry.quantize in _CONFIGS:
            return _qk.quantize_annotate_layer(layer, quantize_config=_CONFIGS[entry.quantize]())
        return _qk.quantize_annotate_layer(layer)

    annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
    with _scope():
        try:
            if scheme is None:
                return _qk.quantize_apply(annotated)
            return _qk.quantize_apply(annotated, scheme)
        except (ValueError, RuntimeError, TypeError) as e:
            raise ValueError(
                f"tfmot could not quantize the model: {e}. A layer tfmot does not know needs "
                "quantize='passthrough' or 'output' in its TWINS entry (keras_csp/export/twin.py)."
            ) from e


def prune(twin, sparsity):
    """The twin wrapped for magnitude pruning to `sparsity`, from the first step on."""
    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=1)
    try:
        return tfmot.sparsity.keras.prune_low_magnitude(twin, pruning_schedule=schedule)
    except ValueError as e:
        raise ValueError(
            f"tfmot could not wrap the model for pruning: {e}. A custom layer needs a "
            "`get_prunable_weights()` method (KerasOp has one)."
        ) from e


def strip_pruning(model):
    return tfmot.sparsity.keras.strip_pruning(model)


def sparsity_of(model):
    """Fraction of zeros in the conv and dense kernels of a tf_keras model."""
    zeros = total = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None and hasattr(layer, "layer"):
            kernel = getattr(layer.layer, "kernel", None)
        if kernel is not None:
            value = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel)
            zeros += int(np.sum(value == 0))
            total += value.size
    return zeros / total if total else 0.0


def finetune(
    model,
    teacher,
    kind,
    train_data,
    input_size,
    epochs=1,
    steps=None,
    learning_rate=1e-5,
    batch_size=8,
    resize="none",
    callbacks=(),
    skipped=None,
):
    """Fits a tf_keras model on `train_data`, with labels if given, else on `teacher`'s outputs.

    Returns the loss of each epoch. Unreadable folder images are skipped and appended to
    `skipped` (a list, if given) as `(path, reason)`, once each.
    """
    unreadable = []
    failures = []  # an error of the data source, raised inside tf.data's generator

    def read():
        return data_lib.batches(
            train_data, input_size, "train_data", resize, batch_size, skipped=unreadable
        )

    sample = next(iter(read()), None)
    if sample is None:
        what = f" ({describe_skipped(unreadable)})" if unreadable else ""
        raise ValueError(
            f"train_data={data_lib.describe(train_data)} yielded no images{what}; allowed: "
            f"{data_lib.SOURCES} that yields at least one readable image."
        )
    labeled = sample[1] is not None

    def targets(images, labels):
        if labels is not None:
            return labels
        out = teacher(images, training=False)
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        return np.asarray(out)

    def generate():
        try:
            for images, labels in read():
                yield images, targets(images, labels)
        except ValueError as e:
            failures.append(e)
            raise

    first_y = targets(*sample)
    spec = tf.nest.map_structure(
        lambda a: tf.TensorSpec((None,) + tuple(np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype)),
        (sample[0], first_y),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    if kind == CLASSIFIER and labeled:
        sparse = np.ndim(first_y) == 1
        loss = (
            tf_keras.losses.SparseCategoricalCrossentropy()
            if sparse
            else tf_keras.losses.CategoricalCrossentropy()
        )
    elif kind == CLASSIFIER:
        loss = tf_keras.losses.KLDivergence()
    else:
        loss = tf_keras.losses.MeanSquaredError()
    optimizer = tf_keras.optimizers.Adam(learning_rate)
    # Slot variables made up front: created inside the first trace, they force a second one.
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer, loss=loss)
    if steps is not None:
        dataset = dataset.repeat()
    try:
        history = model.fit(
            dataset, epochs=epochs, steps_per_epoch=steps, callbacks=list(callbacks), verbose=0
        )
    except tf.errors.OpError:
        if failures:  # tf.data wraps it with a traceback: give the package's error itself
            raise failures[0] from None
        raise
    if skipped is not None:
        skipped.extend(dict(unreadable).items())  # each file once, however many epochs
    return history.history.get("loss", [])


def pruning_callbacks():
    return [tfmot.sparsity.keras.UpdatePruningStep()]
