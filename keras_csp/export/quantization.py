"""How a TFLite export quantizes and fine-tunes: one checked options object, and what it sets up.

`QuantizationOptions` holds every quantization and fine-tuning argument of `export.tflite` (mode,
I/O types, calibration data, fine-tuning data and schedule, pruning, how folder images are
fitted). It checks them when it is made, so an export refuses bad arguments before it builds or
loads anything; the conversion (`convert.py`), the calibration reader below, and the fine-tuning
(`optimize.py`) all read the same object.
"""

import dataclasses

import tensorflow as tf

from keras_csp.export import data as data_lib
from keras_csp.lite import check_resize, describe_skipped

QUANTIZE_MODES = ("none", "fp16", "dynamic", "int8", "qat")
IO_TYPES = ("float", "int8", "uint8")
FULL_INTEGER_MODES = ("int8", "qat")
_IO_DTYPES = {"int8": tf.int8, "uint8": tf.uint8}


def check_choice(value, allowed, argument):
    if value not in allowed:
        raise ValueError(
            f"{argument}={value!r} does not exist; allowed: {', '.join(repr(a) for a in allowed)}."
        )


def check_count(value, argument, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument}={value!r} is not allowed; allowed: an integer >= 1.")


def _check_prune(prune):
    if prune is None:
        return
    ok = isinstance(prune, (int, float)) and not isinstance(prune, bool) and 0.0 < prune < 1.0
    if not ok:
        raise ValueError(
            f"prune={prune!r} is not allowed; allowed: None or a sparsity strictly between 0 and 1 "
            "(the fraction of conv and dense weights set to zero)."
        )


@dataclasses.dataclass(frozen=True)
class QuantizationOptions:
    """The quantization and fine-tuning arguments of `export.tflite` (see its docstring), checked.

    A bad value raises a ValueError naming the argument, the value and what is allowed, in the
    order the arguments are listed here.
    """

    quantize: str = "none"  # one of QUANTIZE_MODES (see convert.py's docstring)
    io: str = "float"  # one of IO_TYPES; quantized I/O needs a full-integer mode
    representative_data: object = None  # calibration images (int8; optional for qat)
    calibration_steps: int = 100  # at most this many calibration images
    train_data: object = None  # fine-tuning images, for qat and prune
    epochs: int = 1
    steps: int = None  # per epoch; None: the whole of train_data
    learning_rate: float = 1e-5
    batch_size: int = 8  # for folders
    prune: float = None  # None, or the target sparsity of conv and dense kernels
    resize: str = "none"  # how folder images are fitted to the input size

    def __post_init__(self):
        check_choice(self.quantize, QUANTIZE_MODES, "quantize")
        check_choice(self.io, IO_TYPES, "io")
        if self.io != "float" and not self.full_integer:
            raise ValueError(
                f"io={self.io!r} needs a full-integer model; allowed: io='float' with "
                f"quantize={self.quantize!r}, or quantize='int8' / 'qat'."
            )
        _check_prune(self.prune)
        check_resize(self.resize)
        check_count(self.calibration_steps, "calibration_steps")
        check_count(self.epochs, "epochs")
        check_count(self.batch_size, "batch_size")
        check_count(self.steps, "steps", allow_none=True)
        self._check_data()

    def _check_data(self):
        """The data each mode needs is there."""
        if self.quantize == "int8" and self.representative_data is None:
            raise ValueError(
                "representative_data=None, but quantize='int8' calibrates on it; allowed: "
                f"{data_lib.SOURCES}."
            )
        if self.fine_tunes and self.train_data is None:
            what = "quantize='qat'" if self.quantize == "qat" else f"prune={self.prune}"
            raise ValueError(
                f"train_data=None, but {what} fine-tunes on it; allowed: {data_lib.SOURCES} (with "
                "or without labels)."
            )

    @property
    def full_integer(self):
        """Weights and activations in int8 (calibrated, or with ranges learnt by QAT)."""
        return self.quantize in FULL_INTEGER_MODES

    @property
    def fine_tunes(self):
        """The export trains the weights (QAT and/or pruning) on `train_data`."""
        return self.quantize == "qat" or self.prune is not None


def calibration_samples(options, input_size):
    """`(samples, notes)`: the calibration images a full-integer export uses (None for the other
    modes, or for QAT without `representative_data`), read and checked before any conversion."""
    if options.representative_data is None or not options.full_integer:
        return None, []
    skipped = []
    samples = data_lib.samples(
        options.representative_data, input_size, "representative_data",
        options.calibration_steps, options.resize, skipped=skipped,
    )
    notes = [f"calibrated on {len(samples)} image(s)"]
    if skipped:
        notes.append(f"calibration: {describe_skipped(skipped)}")
    return samples, notes


def configure(quantize, io="float", samples=None):
    """`configure(converter)` for a quantization mode (see convert.py's docstring)."""

    def apply(converter):
        if quantize == "none":
            return
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize in FULL_INTEGER_MODES:
            if samples is not None:
                converter.representative_dataset = lambda: ({"images": s} for s in samples)
            if quantize == "int8":
                # A QAT model brings its ranges; the converter refuses this flag without samples.
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io != "float":
                converter.inference_input_type = _IO_DTYPES[io]
                converter.inference_output_type = _IO_DTYPES[io]

    return apply
