"""Will a `.tflite` file run on the mobile GPU delegate, and what to export instead when not.

First, whenever it can start, the real thing: `accelerator_check` runs the file on LiteRT's GPU
accelerator (ML Drift, the engine of LiteRT's GPU path on phones; see `keras_csp/lite/gpu.py`)
and on the CPU, and reports whether the whole graph is on the GPU, which ops stayed on the CPU,
and the largest difference between the two. It runs in a child process kept for the session
(imports and Vulkan start once; a crashing driver cannot take the export down), on SwiftShader
where the machine's Vulkan gives the engine no device (no driver, or only Mesa's lavapipe, which
Dawn refuses); the result's `note` then says so.

Then two static checks, reported always (alone, and said to be only static, when the accelerator
cannot start):

1. The verdict of `tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)` (it prints;
   its output is captured). Caution: with TensorFlow 2.21 (and ai-edge-litert 2.3) its GPU check
   says "compatible" for every model tried, including NON_MAX_SUPPRESSION_V5, TOPK_V2 and
   symmetric MIRROR_PAD, which the delegate's own compatibility table refuses; so it is reported
   but not trusted alone.
2. Our own check of each op against the builtin ops the GPU delegate implements (the cases of
   its compatibility table, tensorflow/lite/tools/versioning/gpu_compatibility.cc) and against
   tensors of more than 4 dimensions (the delegate works on BHWC tensors). It checks op names and
   ranks, not every per-op argument condition of that table.

A model is called GPU-compatible when both agree. Before conversion, `substitute` replaces layers
whose TFLite lowering the delegate does not run by equivalents that it does (the `EQUIVALENTS`
table) and returns a note for each, which the export report prints.
"""

import collections
import contextlib
import io
import json
import math
import os
import select
import subprocess
import sys
import warnings

import keras
from keras import ops

from keras_csp.export.graph import replace_layers

# Builtin ops of the GPU delegate's compatibility table (op names as the interpreter reports them).
GPU_DELEGATE_OPS = frozenset(
    """
    ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM
    DENSIFY DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU
    EMBEDDING_LOOKUP EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER
    GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGISTIC LSTM MAXIMUM
    MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE
    REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT
    SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE STABLEHLO_CLAMP STRIDED_SLICE SUB SUM TANH TILE
    TRANSPOSE TRANSPOSE_CONV
    """.split()
)
GPU_DELEGATE_CUSTOM_OPS = frozenset(
    ("Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler")
)


def analyzer_report(model_content):
    """`(compatible, verdict line, full text)` from TFLite's analyzer, whose output is captured."""
    import tensorflow as tf

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tf.lite.experimental.Analyzer.analyze(model_content=model_content, gpu_compatibility=True)
    text = buffer.getvalue()
    lines = [line.strip() for line in text.splitlines()]
    compatible = any(line.startswith("Your model looks compatible with GPU") for line in lines)
    warnings_ = [line for line in lines if line.startswith("GPU COMPATIBILITY WARNING")]
    if compatible:
        verdict = next(line for line in lines if line.startswith("Your model looks compatible"))
    elif warnings_:
        verdict = warnings_[-1]
    else:
        verdict = "the analyzer gave no GPU verdict"
    return compatible and not warnings_, verdict, text


def interpreter_for(model_content):
    """A TFLite interpreter for reading the op list (never invoked)."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return tf.lite.Interpreter(
            model_content=model_content, experimental_op_resolver_type=resolver
        )


def op_issues(interpreter):
    """(op counts, [issue]) against the GPU delegate's op table and its 4-D tensor limit."""
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    counts = collections.Counter()
    issues = []
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        counts[name] += 1
        if name not in GPU_DELEGATE_OPS and name not in GPU_DELEGATE_CUSTOM_OPS:
            issues.append(f"op #{op['index']} {name}: not an op the GPU delegate implements")
            continue
        for index in list(op["inputs"]) + list(op["outputs"]):
            if index >= 0 and index in tensors and len(tensors[index]["shape"]) > 4:
                issues.append(
                    f"op #{op['index']} {name}: {len(tensors[index]['shape'])}-D tensor "
                    f"{tensors[index]['name']!r} (the GPU delegate handles at most 4-D)"
                )
                break
    return dict(counts), issues


def gpu_check(model_content):
    """A dict: `compatible`, `analyzer_verdict`, `issues`, `ops`, `analyzer_output`."""
    analyzer_ok, verdict, text = analyzer_report(model_content)
    counts, issues = op_issues(interpreter_for(model_content))
    return {
        "compatible": analyzer_ok and not issues,
        "analyzer_compatible": analyzer_ok,
        "analyzer_verdict": verdict,
        "issues": issues,
        "ops": counts,
        "analyzer_output": text,
    }


# ------------------------------------------------------------------------- the real accelerator

# Seconds one file may take on the accelerator (compile, a CPU and a GPU run): a full-size
# CSPResNeXt50 runs in 3-10 s on SwiftShader.
ACCELERATOR_TIMEOUT = 300
_worker = None


def _start_worker():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    return subprocess.Popen(
        [sys.executable, "-m", "keras_csp.lite.gpu", "--serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=env,
    )


def accelerator_check(path, timeout=ACCELERATOR_TIMEOUT):
    """The file run on LiteRT's GPU accelerator and on the CPU (`keras_csp.lite.gpu.compare`).

    A dict: `started` False with `reason` where the accelerator cannot start; else `whole`, `ops`,
    `cpu_ops`, `refused`, `adapter`, `summary`, `max_difference`, `max_steps`; or `error` when the
    run failed (a crash or a timeout included); `note` says why it ran on SwiftShader, if so.
    """
    global _worker
    if _worker is None or _worker.poll() is not None:
        _worker = _start_worker()
    worker = _worker
    try:
        worker.stdin.write(f"{os.path.abspath(path)}\n")
        worker.stdin.flush()
        ready, _, _ = select.select([worker.stdout], [], [], timeout)
        line = worker.stdout.readline() if ready else ""
    except OSError:
        line = ""
    if line:
        return json.loads(line)
    if ready:
        code = worker.wait()
        what = f"signal {-code}" if code < 0 else f"exit status {code}"
        error = f"the accelerator's process ended ({what}) on this file"
    else:
        error = f"no answer from the accelerator in {timeout} s"
    worker.kill()
    _worker = None
    return {"started": True, "error": error}


# ------------------------------------------------------------------------------- substitutions


@keras.saving.register_keras_serializable(package="keras_csp")
class StableLogSoftmax(keras.layers.Layer):
    """log_softmax from ops the GPU delegate runs: `x - max - (log(mean(exp(x - max))) + log n)`.

    The mean (not a sum) is deliberate: the converter recognizes `x - max - log(sum(exp(x -
    max)))` and `log(softmax(x))` and fuses them back into LOG_SOFTMAX, which the delegate lacks.
    Ops: REDUCE_MAX, SUB, EXP, MEAN, LOG, ADD.
    """

    # Its tf_keras twin (keras_csp/export/twin.py): weightless arithmetic.
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "output"}

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        shifted = x - ops.max(x, axis=self.axis, keepdims=True)
        log_n = math.log(x.shape[self.axis])
        mean = ops.mean(ops.exp(shifted), axis=self.axis, keepdims=True)
        return shifted - (ops.log(mean) + log_n)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@keras.saving.register_keras_serializable(package="keras_csp")
class NearestUpSampling2D(keras.layers.Layer):
    """`UpSampling2D(interpolation="nearest")` as one RESIZE_NEAREST_NEIGHBOR op.

    Keras lowers nearest upsampling to a repeat: EXPAND_DIMS, a 5-D TILE and a RESHAPE (plus
    SHAPE ops with a dynamic batch), none of which the GPU delegate runs. For integer factors the
    nearest resize picks the same source pixel (floor(i / factor)), so values are identical.
    """

    # Its tf_keras twin (keras_csp/export/twin.py): weightless; values move without arithmetic.
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "passthrough"}

    def __init__(self, size=(2, 2), **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(s) for s in size)

    def call(self, x):
        height, width = x.shape[1], x.shape[2]
        return ops.image.resize(
            x, (height * self.size[0], width * self.size[1]), interpolation="nearest"
        )

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, h * self.size[0] if h else None, w * self.size[1] if w else None, c)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


# activation name -> (layer class computing it with GPU-delegate ops, why)
ACTIVATION_EQUIVALENTS = {
    "log_softmax": (
        StableLogSoftmax,
        "LOG_SOFTMAX is not a GPU-delegate op; computed as "
        "x - max - log(mean(exp(x - max))) - log n",
    ),
}


def _activation_of(layer):
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    name = keras.activations.serialize(fn)
    return name if isinstance(name, str) else getattr(fn, "__name__", None)


def _activation_rule(layer):
    activation = _activation_of(layer)
    if activation not in ACTIVATION_EQUIVALENTS:
        return None
    equivalent_class, why = ACTIVATION_EQUIVALENTS[activation]

    def make(args):
        equivalent = equivalent_class(name=f"{layer.name}.gpu_{activation}")
        if isinstance(layer, keras.layers.Activation):
            return lambda x: equivalent(x)
        # A layer with a fused activation: the same layer made linear, then the equivalent.
        linear = type(layer).from_config({**layer.get_config(), "activation": "linear"})
        linear.build(args[0].shape)
        linear.set_weights(layer.get_weights())
        return lambda x: equivalent(linear(x))

    return f"{activation} -> {why}", make


def _upsampling_rule(layer):
    if not isinstance(layer, keras.layers.UpSampling2D) or layer.interpolation != "nearest":
        return None
    if layer.data_format != "channels_last":
        return None

    def make(args):
        equivalent = NearestUpSampling2D(layer.size, name=f"{layer.name}.gpu_resize")
        return lambda x: equivalent(x)

    why = (
        "nearest UpSampling2D lowers to a 5-D TILE; exported as RESIZE_NEAREST_NEIGHBOR (same "
        "values)"
    )
    return why, make


# Each rule: layer -> None, or (why, make) where make(args) returns a function of the layer's
# input that computes the same values with GPU-delegate ops. A new case is one more rule.
EQUIVALENTS = [_activation_rule, _upsampling_rule]


def planned_substitutions(model):
    """`[(layer name, why)]` that `substitute` would make."""
    from keras_csp.export.graph import layers_in_graph

    result = []
    for layer in layers_in_graph(model):
        for rule in EQUIVALENTS:
            found = rule(layer)
            if found is not None:
                result.append((layer.name, found[0]))
                break
    return result


def substitute(model):
    """`(model, notes)`: `model` with GPU-delegate equivalents swapped in (or itself, no notes)."""
    plan = dict(planned_substitutions(model))
    if not plan:
        return model, []

    def make(layer, args):
        equivalent = next(
            found[1] for found in (rule(layer) for rule in EQUIVALENTS) if found is not None
        )(args)
        return lambda inputs, *rest, **kwargs: equivalent(inputs)

    notes = [f"{name}: {why}" for name, why in plan.items()]
    return replace_layers(model, plan, make), notes
