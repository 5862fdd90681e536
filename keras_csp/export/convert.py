"""`saved_model()` and `tflite()`: the two export formats, every TFLite quantization mode.

Conversion path (the same for every mode): the deploy model (`serving.py`) is traced into a
`tf.function` with a named signature, its variables are frozen into constants, and a function that
calls the frozen graph is converted with `TFLiteConverter.from_concrete_functions` and a trackable
owner. Freezing first matters: converting a Keras 3 model's SavedModel (or concrete function)
directly keeps its variables as VAR_HANDLE/READ_VARIABLE ops in TF 2.21, which leaves batch norm
unfolded and breaks int8 calibration. The owner keeps the signature, so the `.tflite` file has a
`serving_default` signature with input `images` and named outputs, which `keras_csp.lite` reads.

Quantization modes:

    none     float32 weights and activations.
    fp16     float16 weights (half the size), float32 I/O: what the mobile GPU delegate runs best.
    dynamic  int8 weights, float activations quantized on the fly (CPU).
    int8     full-integer: int8 weights and activations calibrated on `representative_data`;
             I/O float32 (io="float") or quantized pixels (io="int8" / "uint8"). Each split part
             or LeakyReLU output entering a concatenation gets a requantizing step first, and so
             does any LeakyReLU XNNPACK still refuses in the converted file (converted again),
             so XNNPACK runs every op of the backbones (see `int8.py`).
    qat      quantization-aware fine-tuning with tfmot on `train_data`, then full-integer export.

`prune=SPARSITY` (0..1) prunes conv and dense kernels by magnitude with tfmot during fine-tuning on
`train_data`, then exports with any mode.

`tflite()` in steps: check the arguments (`QuantizationOptions`, `quantization.py`), build the
deploy model and read the calibration images, run the rewrite passes (`passes.py`, in the
order of `keras_csp.registry.EXPORT_PASSES`), freeze and convert (for int8, once more if XNNPACK
refuses a LeakyReLU), write the file, and report what it does (`verify.py`).
"""

import collections
import textwrap

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_csp import files, registry
from keras_csp.export import checksum, int8
from keras_csp.export.passes import Plan, run_passes
# QUANTIZE_MODES, IO_TYPES, check_choice (export/cli.py) and configure (benchmarks/detection.py)
# are read from this module too.
from keras_csp.export.quantization import (  # noqa: F401
    IO_TYPES,
    QUANTIZE_MODES,
    QuantizationOptions,
    calibration_samples,
    check_choice,
    check_count,
    configure,
)
from keras_csp.export.report import ExportReport
from keras_csp.export.serving import DETECTOR, build_serving, resolve_model
from keras_csp.export.verify import tflite_report, xnnpack_notes


# The detector SavedModel's signature without non-max suppression.
BEFORE_NMS = "before_nms"
# What `tflite(batch=...)` takes besides a positive batch size: a file for any batch size.
DYNAMIC_BATCH = "dynamic"


def check_batch(batch, argument="batch"):
    """The batch dimension of the file: an int >= 1, or None for `DYNAMIC_BATCH` (any batch)."""
    if batch == DYNAMIC_BATCH:
        return None
    value = batch
    if isinstance(batch, str) and batch.isdigit():  # `--batch 4` arrives as text
        value = int(batch)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{argument}={batch!r} is not allowed; allowed: an integer >= 1 (1, the default, for "
            f"phones) or {DYNAMIC_BATCH!r} (any batch size; the interpreter resizes)."
        )
    return value


def batch_option(export_format, batch, argument="batch"):
    """`tflite`'s `batch` for an export command's batch option (None: not given, so batch 1); a
    SavedModel takes any batch, so with "savedmodel" only None or `DYNAMIC_BATCH` is allowed."""
    if export_format != "tflite":
        if batch not in (None, DYNAMIC_BATCH):
            raise ValueError(
                f"{argument}={batch!r} applies to .tflite files; a SavedModel takes any batch: "
                f"allowed with {export_format}: {DYNAMIC_BATCH} or no {argument}."
            )
        return DYNAMIC_BATCH
    value = check_batch(1 if batch is None else batch, argument)
    return DYNAMIC_BATCH if value is None else value


def load_or_build(spec, input_size=None, weights=None, classes=1000, argument="model"):
    """`(model, stem)`: a `.keras` file loaded, or an architecture name built at `input_size`
    (default: its own) with `weights` and `classes`; `stem` names the export's default file."""
    from pathlib import Path

    path = Path(spec)
    if path.suffix == ".keras":
        if not path.is_file():
            raise ValueError(f"{argument}={spec!r} does not exist; allowed: a .keras file.")
        from keras_csp.applications.saving import load_model

        return load_model(path), path.stem
    from keras_csp.applications import build_model
    from keras_csp.models.config import ARCHITECTURES, get_config

    if spec.lower() not in ARCHITECTURES:
        raise ValueError(
            f"{argument}={spec!r} is neither a .keras file nor an architecture; allowed: a "
            f".keras file or one of {', '.join(sorted(ARCHITECTURES))}."
        )
    size = input_size or get_config(spec).default_size
    model = build_model(spec, input_shape=(size, size, 3), weights=weights, classes=classes)
    return model, spec.lower()


# --------------------------------------------------------------------------------- SavedModel


def _graph_ops(concrete):
    """Op types of a traced function and of the functions it calls, plumbing left out."""
    plumbing = {
        "Const", "Identity", "IdentityN", "NoOp", "Placeholder", "ReadVariableOp",
        "PartitionedCall", "StatefulPartitionedCall", "VarHandleOp",
    }
    graph_def = concrete.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    return dict(collections.Counter(n.op for n in nodes if n.op not in plumbing))


def _folder_size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _uint8_function(serving):
    """The exported function of a `Serving`: uint8 images of any batch size -> named outputs."""
    h, w = serving.input_size

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
    def serve(images):
        pixels = tf.cast(images, tf.float32)
        return serving.named_outputs(serving.deploy(pixels, training=False), pixels)

    return serve


def saved_model(model, directory, *, input_size=None, decode=None, verbose=True):
    """Writes a SavedModel whose `serving_default` takes uint8 images of any batch size.

    Args:
        model: a functional `keras.Model` (or a `.keras` path).
        directory: the SavedModel folder; written under a temporary name and moved into place
            (an existing folder is replaced only once the new one is complete).
        input_size: (height, width) or an int, for a model that takes any size; `None` keeps the
            model's own (a dynamic size stays dynamic).
        decode: for detectors, `decode(outputs, images) -> {"boxes", "scores", ...}` (TF ops),
            run inside the exported function; automatic for detectors with a box decoding method
            (`decode_boxes`, keras-cv's `decode_predictions`; see `serving.py`).
        verbose: print the report.

    Returns:
        An `ExportReport`. `tf.saved_model.load(directory).signatures["serving_default"](
        images=uint8_batch)` returns `{"probabilities": ...}` (or boxes, or features). A
        `CSPDetector`'s SavedModel has a second signature, `"before_nms"` (`BEFORE_NMS`): the
        boxes and per-class scores of every anchor point, as its `.tflite` file returns them.
    """
    directory = files.check_output_path(directory, "directory", kind="folder")
    model = resolve_model(model)
    serving = build_serving(model, input_size, decode)
    module = tf.Module()
    module.deploy = serving.deploy
    module.serve = _uint8_function(serving)
    concrete = module.serve.get_concrete_function()
    signatures = {"serving_default": concrete}
    notes = ["signature serving_default: uint8 images of any batch size, preprocessing included"]
    if serving.kind == DETECTOR and decode is None and hasattr(model, "box_bins"):
        # What the .tflite file returns: COCO's protocol suppresses with its own thresholds.
        raw = build_serving(model, input_size, None, nms=False)
        module.deploy_before_nms = raw.deploy
        module.serve_before_nms = _uint8_function(raw)
        signatures[BEFORE_NMS] = module.serve_before_nms.get_concrete_function()
        notes.append(
            f"signature {BEFORE_NMS}: boxes and per-class scores of every anchor point before "
            "non-max suppression (as the .tflite file returns them)"
        )
    with files.atomic_folder(directory) as tmp:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
    outputs = [
        {"name": name, "shape": list(t.shape), "dtype": t.dtype.name, "quantization": None}
        for name, t in sorted(concrete.structured_outputs.items())
    ]
    report = ExportReport(
        path=str(directory),
        format="savedmodel",
        quantize="none",
        size_bytes=_folder_size(directory),
        ops=_graph_ops(concrete),
        kind=serving.kind,
        inputs=[{
            "name": "images", "shape": [None, *serving.input_size, 3], "dtype": "uint8",
            "quantization": None,
        }],
        outputs=outputs,
        gpu_compatible=None,
        analyzer_verdict="n/a for a SavedModel (the GPU-delegate check applies to .tflite files)",
        notes=notes,
    )
    if verbose:
        print(report.summary())
    return report


# ------------------------------------------------------------------------------------- TFLite


def freeze(model, input_size, named_outputs, batch=None):
    """A variable-free `tf.function` of `named_outputs(model(images))` and its trackable owner."""
    h, w = input_size
    spec = tf.TensorSpec([batch, h, w, 3], tf.float32, name="images")

    @tf.function(input_signature=[spec])
    def trace(images):
        return named_outputs(model(images, training=False), images)

    concrete = trace.get_concrete_function()
    # Keep control flow as v2 ops (While, If): lowered v1 ops do not convert.
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    structure = concrete.structured_outputs

    @tf.function(input_signature=[spec])
    def serve(images):
        return tf.nest.pack_sequence_as(structure, frozen(images))

    holder = tf.Module()  # a trackable owner gives the file its serving_default signature
    holder.serve = serve
    return holder


def to_tflite(holder, setup):
    """TFLite bytes of a `freeze` result, the converter set up by `setup(converter)`."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [holder.serve.get_concrete_function()], holder
    )
    setup(converter)
    try:
        return converter.convert()
    except Exception as e:  # the converter raises its own error types
        raise RuntimeError(f"TFLite conversion failed: {e}") from e


def tflite(
    model,
    path,
    quantize="none",
    *,
    input_size=None,
    batch=1,
    io="float",
    representative_data=None,
    calibration_steps=100,
    train_data=None,
    epochs=1,
    steps=None,
    learning_rate=1e-5,
    batch_size=8,
    prune=None,
    resize="none",
    decode=None,
    verbose=True,
    **switches,
):
    """Writes a `.tflite` file and returns (and prints) its `ExportReport`.

    Args:
        model: a functional `keras.Model` (or a `.keras` path).
        path: the `.tflite` file; written under a temporary name and renamed into place.
        quantize: one of `QUANTIZE_MODES` (see the module docstring).
        input_size: (height, width) or an int for a model that takes any size (TFLite needs one).
        batch: the file's batch size: 1 (the default: what phones run), another integer, or
            "dynamic" (`DYNAMIC_BATCH`: any batch size, the interpreter resizes; what servers
            batching requests want). A fixed batch lets the converter fold shape computations that
            some graphs (the detector's reshapes) otherwise keep as SHAPE ops, which the GPU
            delegate does not run: a dynamic-batch detector does not run whole on the GPU.
            `keras_csp.lite.LiteModel` runs a batch-1 file on any number of images, one at a time.
        io: "float" (float32 pixels in, float32 out), or "int8"/"uint8" quantized I/O for
            quantize="int8" or "qat".
        representative_data: calibration images for quantize="int8" (optional for "qat"): a folder
            of images, a tf.data.Dataset, or an iterable of arrays (see `export/data.py`).
        calibration_steps: at most this many calibration images are used.
        train_data: fine-tuning images (with labels, or without: the float model teaches) for
            quantize="qat" and for `prune`.
        epochs, steps, learning_rate, batch_size: fine-tuning schedule (`steps` per epoch, or the
            whole of `train_data` when None; `batch_size` applies to folders).
        prune: None, or the target sparsity of conv and dense kernels (0..1), via tfmot.
        resize: how folder images are fitted to the input size: "none" (must match), "crop",
            "stretch" (see `keras_csp.lite.load_image`).
        decode: for detectors, see `saved_model`.
        verbose: print the report.
        **switches: the export passes' switches, each a bool (`keras_csp.registry.EXPORT_PASSES`;
            any other keyword is an error):
SWITCHES
    """
    options = QuantizationOptions(  # checks every quantization and fine-tuning argument
        quantize="none" if quantize is None else quantize, io=io,
        representative_data=representative_data, calibration_steps=calibration_steps,
        train_data=train_data, epochs=epochs, steps=steps, learning_rate=learning_rate,
        batch_size=batch_size, prune=prune, resize=resize,
    )
    switches = registry.export_switches(switches)
    batch = check_batch(batch)
    path = files.check_output_path(path, "path", kind="file")
    serving = build_serving(
        resolve_model(model), input_size, decode, require_static=True, nms=False
    )
    # Calibration images are read (and refused) before any rewriting or fine-tuning.
    samples, calibration_notes = calibration_samples(options, serving.input_size)
    plan = Plan(options, serving, switches)
    export_model, notes = run_passes(serving.deploy, plan)
    content, conversion_notes = _convert(export_model, plan, samples, batch)
    content = checksum.add_checksum(content)  # keras_csp.lite refuses the file if it changes
    files.write_bytes_atomic(path, content)
    report = tflite_report(
        path, content, serving.kind, options.quantize, batch,
        notes + calibration_notes + conversion_notes,
    )
    if verbose:
        print(report.summary())
    return report


# The switches' lines of the docstring, from the registry (a new pass's switch is documented here).
tflite.__doc__ = tflite.__doc__.replace("SWITCHES", "\n".join(
    textwrap.fill(f"{p.switch}={p.default}: {p.help}.", 100, initial_indent=" " * 12,
                  subsequent_indent=" " * 16)
    for p in registry.EXPORT_PASSES.values() if p.switch
))


def _convert(model, plan, samples, batch):
    """`(content, notes)`: the `.tflite` bytes of `model`, and for full-integer files what XNNPACK
    leaves to the interpreter."""
    options, serving = plan.options, plan.serving

    def convert(model):
        holder = freeze(model, serving.input_size, serving.named_outputs, batch)
        return to_tflite(holder, configure(options.quantize, options.io, samples))

    content = convert(model)
    if not options.full_integer:
        return content, []
    outside_nodes = int8.nodes_outside_xnnpack(content)
    notes = []
    if options.quantize == "int8":
        content, outside_nodes, notes = _requantize_refused_leaky_relus(
            model, content, outside_nodes, convert
        )
    return content, notes + xnnpack_notes(outside_nodes)


def _requantize_refused_leaky_relus(model, content, outside_nodes, convert):
    """`(content, outside_nodes, notes)`, converted a second time if XNNPACK refused LeakyReLUs.

    The second freeze/convert round: which LeakyReLUs the converter gives an output scale far wider
    than the input's (elsewhere than before a concatenation, see `int8.py`) depends on the
    calibrated ranges, so it is only known from the converted file. Those layers get a
    requantizing step after them, and the model is converted once more.
    """
    refused = int8.refused_leaky_relus(outside_nodes, model)
    if not refused:
        return content, outside_nodes, []
    content = convert(int8.requantize_after(model, refused))
    note = (
        f"int8: XNNPACK refused {len(refused)} LEAKY_RELU op(s) whose output scale was "
        f"far wider than the input's ({', '.join(refused)}); converted again with a "
        "requantizing step after them"
    )
    return content, int8.nodes_outside_xnnpack(content), [note]
