"""Quantization-aware fine-tuning and magnitude pruning with tensorflow-model-optimization.

Both work on the tf_keras twin of the deploy model (`twin.py`), since tfmot 0.8 refuses Keras 3
models. tfmot's default 8-bit scheme knows the plain layers (conv + BN folding, add, concat,
pooling, dense); keras_csp's own layers get a QuantizeConfig by their twin entry (`TF_KERAS_TWIN`):

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
from keras_csp.export.quantization import QuantizationOptions
from keras_csp.export.serving import CLASSIFIER
from keras_csp.export.twin import KerasOp, to_tf_keras
from keras_csp.lite import describe_skipped

_qk = tfmot.quantization.keras
_DEFAULT_SCHEDULE = QuantizationOptions()  # fine-tuning's defaults: 1 epoch, lr 1e-5, batch 8


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


def _scope(twin):
    # The twin's own tf_keras layer classes (KerasOp, a neck's WeightedFusion, ...): tfmot
    # rebuilds the model from its config.
    own = {type(layer).__name__: type(layer) for layer in twin.layers
           if type(layer).__module__.startswith("keras_csp.")}
    return _qk.quantize_scope(
        {
            **own,
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
    with _scope(twin):
        try:
            if scheme is None:
                return _qk.quantize_apply(annotated)
            return _qk.quantize_apply(annotated, scheme)
        except (ValueError, RuntimeError, TypeError) as e:
            raise ValueError(
                f"tfmot could not quantize the model: {e}. A layer tfmot does not know needs "
                "quantize='passthrough' or 'output' in its TF_KERAS_TWIN (keras_csp/export/"
                "twin.py)."
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


class _TrainingData:
    """`train_data` as a tf.data pipeline of (images, targets): labels where it has them, else
    the teacher's outputs. Unreadable folder images are collected in `unreadable`; an error of the
    source raised inside tf.data's generator is kept in `failures` (tf.data wraps it)."""

    def __init__(self, train_data, input_size, options, teacher):
        self.train_data, self.input_size, self.options = train_data, input_size, options
        self.teacher = teacher
        self.unreadable, self.failures = [], []
        sample = next(iter(self._read()), None)
        if sample is None:
            what = f" ({describe_skipped(self.unreadable)})" if self.unreadable else ""
            raise ValueError(
                f"train_data={data_lib.describe(train_data)} yielded no images{what}; allowed: "
                f"{data_lib.SOURCES} that yields at least one readable image."
            )
        self.labeled = sample[1] is not None
        self.first_targets = self._targets(*sample)
        spec = tf.nest.map_structure(
            lambda a: tf.TensorSpec(
                (None,) + tuple(np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype)
            ),
            (sample[0], self.first_targets),
        )
        self.dataset = tf.data.Dataset.from_generator(self._generate, output_signature=spec)

    def _read(self):
        return data_lib.batches(
            self.train_data, self.input_size, "train_data", self.options.resize,
            self.options.batch_size, skipped=self.unreadable,
        )

    def _targets(self, images, labels):
        if labels is not None:
            return labels
        out = self.teacher(images, training=False)
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        return np.asarray(out)

    def _generate(self):
        try:
            for images, labels in self._read():
                yield images, self._targets(images, labels)
        except ValueError as e:
            self.failures.append(e)
            raise


def _loss(kind, data):
    """Cross-entropy on labels, KL divergence to the teacher's probabilities, else squared error."""
    if kind == CLASSIFIER and data.labeled:
        if np.ndim(data.first_targets) == 1:
            return tf_keras.losses.SparseCategoricalCrossentropy()
        return tf_keras.losses.CategoricalCrossentropy()
    if kind == CLASSIFIER:
        return tf_keras.losses.KLDivergence()
    return tf_keras.losses.MeanSquaredError()


def finetune(
    model, teacher, kind, train_data, input_size, options=_DEFAULT_SCHEDULE, callbacks=(),
    skipped=None,
):
    """Fits a tf_keras model on `train_data`, with labels if given, else on `teacher`'s outputs.

    The schedule (epochs, steps, learning_rate, batch_size, resize) is read from `options`, a
    `QuantizationOptions`. Returns the loss of each epoch. Unreadable folder images are skipped
    and appended to `skipped` (a list, if given) as `(path, reason)`, once each.
    """
    data = _TrainingData(train_data, input_size, options, teacher)
    optimizer = tf_keras.optimizers.Adam(options.learning_rate)
    # Slot variables made up front: created inside the first trace, they force a second one.
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer, loss=_loss(kind, data))
    dataset = data.dataset.repeat() if options.steps is not None else data.dataset
    try:
        history = model.fit(
            dataset, epochs=options.epochs, steps_per_epoch=options.steps,
            callbacks=list(callbacks), verbose=0,
        )
    except tf.errors.OpError:
        if data.failures:  # tf.data wraps it with a traceback: give the package's error itself
            raise data.failures[0] from None
        raise
    if skipped is not None:
        skipped.extend(dict(data.unreadable).items())  # each file once, however many epochs
    return history.history.get("loss", [])


def pruning_callbacks():
    return [tfmot.sparsity.keras.UpdatePruningStep()]


def fine_tune_for_export(model, kind, input_size, options):
    """`(twin, notes)`: the tf_keras twin of `model` to convert, pruned and/or quantization-aware
    fine-tuned on `options.train_data` as `options` asks; `model` is the teacher."""
    twin, layer_map = to_tf_keras(model)
    skipped = []
    fit = dict(
        teacher=model, kind=kind, train_data=options.train_data, input_size=input_size,
        options=options, skipped=skipped,
    )
    notes = []
    if options.prune is not None:
        pruned = prune(twin, options.prune)
        losses = finetune(pruned, callbacks=pruning_callbacks(), **fit)
        twin = strip_pruning(pruned)
        notes.append(
            f"pruned to {sparsity_of(twin):.1%} zeros in conv/dense kernels (target "
            f"{options.prune:.0%}), fine-tuned {len(losses)} epoch(s), last loss {losses[-1]:.4g}"
        )
    if options.quantize == "qat":
        # A pruned twin keeps its zeros through QAT with tfmot's prune-preserving scheme.
        scheme = (
            _qk.collab_opts.Default8BitPrunePreserveQuantizeScheme()
            if options.prune is not None else None
        )
        twin = quantize_aware(twin, layer_map, scheme)
        losses = finetune(twin, **fit)
        notes.append(
            f"quantization-aware fine-tuning: {len(losses)} epoch(s), last loss {losses[-1]:.4g}"
        )
    if skipped:  # pruning and QAT read the same files: each one named once
        notes.append(f"fine-tuning: {describe_skipped(list(dict(skipped).items()))}")
    return twin, notes
