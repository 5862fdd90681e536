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
"""

import collections

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_csp import files
from keras_csp.export import data as data_lib
from keras_csp.export import checksum, gpu, groups, int8
from keras_csp.export.report import ExportReport
from keras_csp.export.serving import build_serving, resolve_model
from keras_csp.lite import check_resize, describe_skipped

QUANTIZE_MODES = ("none", "fp16", "dynamic", "int8", "qat")
IO_TYPES = ("float", "int8", "uint8")
_IO_DTYPES = {"int8": tf.int8, "uint8": tf.uint8}


def check_choice(value, allowed, argument):
    if value not in allowed:
        raise ValueError(
            f"{argument}={value!r} does not exist; allowed: {', '.join(repr(a) for a in allowed)}."
        )


def _check_prune(prune):
    if prune is None:
        return
    ok = isinstance(prune, (int, float)) and not isinstance(prune, bool) and 0.0 < prune < 1.0
    if not ok:
        raise ValueError(
            f"prune={prune!r} is not allowed; allowed: None or a sparsity strictly between 0 and 1 "
            "(the fraction of conv and dense weights set to zero)."
        )


def _check_count(value, argument, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument}={value!r} is not allowed; allowed: an integer >= 1.")


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


def saved_model(model, directory, *, input_size=None, decode=None, verbose=True):
    """Writes a SavedModel whose `serving_default` takes uint8 images of any batch size.

    Args:
        model: a functional `keras.Model` (or a `.keras` path).
        directory: the SavedModel folder; written under a temporary name and moved into place
            (an existing folder is replaced only once the new one is complete).
        input_size: (height, width) or an int, for a model that takes any size; `None` keeps the
            model's own (a dynamic size stays dynamic).
        decode: for detectors, `decode(outputs, images) -> {"boxes", "scores", ...}` (TF ops),
            run inside the exported function; automatic for models with a keras-cv style
            `decode_predictions` (see `serving.py`).
        verbose: print the report.

    Returns:
        An `ExportReport`. `tf.saved_model.load(directory).signatures["serving_default"](
        images=uint8_batch)` returns `{"probabilities": ...}` (or boxes, or features).
    """
    directory = files.check_output_path(directory, "directory", kind="folder")
    model = resolve_model(model)
    serving = build_serving(model, input_size, decode)
    h, w = serving.input_size

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
    def serve(images):
        pixels = tf.cast(images, tf.float32)
        return serving.named_outputs(serving.deploy(pixels, training=False), pixels)

    module = tf.Module()
    module.deploy = serving.deploy
    module.serve = serve
    concrete = serve.get_concrete_function()
    with files.atomic_folder(directory) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": concrete})
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
        inputs=[
            {"name": "images", "shape": [None, h, w, 3], "dtype": "uint8", "quantization": None}
        ],
        outputs=outputs,
        gpu_compatible=None,
        analyzer_verdict="n/a for a SavedModel (the GPU-delegate check applies to .tflite files)",
        notes=["signature serving_default: uint8 images of any batch size, preprocessing included"],
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


def configure(quantize, io="float", samples=None):
    """`configure(converter)` for a quantization mode (see the module docstring)."""

    def apply(converter):
        if quantize == "none":
            return
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize in ("int8", "qat"):
            if samples is not None:
                converter.representative_dataset = lambda: ({"images": s} for s in samples)
            if quantize == "int8":
                # A QAT model brings its ranges; the converter refuses this flag without samples.
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io != "float":
                converter.inference_input_type = _IO_DTYPES[io]
                converter.inference_output_type = _IO_DTYPES[io]

    return apply


def _tensor_rows(details):
    rows = []
    for name, d in details.items():
        scale, zero_point = d.get("quantization", (0.0, 0))
        rows.append(
            {
                "name": name,
                "shape": [int(s) for s in d.get("shape_signature", d["shape"])],
                "dtype": getattr(d["dtype"], "__name__", str(d["dtype"])),
                "quantization": [float(scale), int(zero_point)] if scale else None,
            }
        )
    return rows


def tflite(
    model,
    path,
    quantize="none",
    *,
    input_size=None,
    batch=None,
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
    gpu_substitutes=True,
    widen_groups=True,
    decode=None,
    verbose=True,
):
    """Writes a `.tflite` file and returns (and prints) its `ExportReport`.

    Args:
        model: a functional `keras.Model` (or a `.keras` path).
        path: the `.tflite` file; written under a temporary name and renamed into place.
        quantize: one of `QUANTIZE_MODES` (see the module docstring).
        input_size: (height, width) or an int for a model that takes any size (TFLite needs one).
        batch: None (any batch; the interpreter resizes) or a fixed batch size. A fixed batch lets
            the converter fold shape computations that some graphs (the detector's reshapes)
            otherwise keep as SHAPE ops, which the GPU delegate does not run.
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
        gpu_substitutes: replace layers the GPU delegate cannot run by equivalents (reported).
        widen_groups: give grouped convolutions with few channels per group block-diagonal
            groups of 16+ channels, which XNNPACK runs faster (same outputs; see `groups.py`).
            Not with quantize="qat" or `prune`, which train the weights.
        decode: for detectors, see `saved_model`.
        verbose: print the report.
    """
    quantize = "none" if quantize is None else quantize
    check_choice(quantize, QUANTIZE_MODES, "quantize")
    check_choice(io, IO_TYPES, "io")
    if io != "float" and quantize not in ("int8", "qat"):
        raise ValueError(
            f"io={io!r} needs a full-integer model; allowed: io='float' with "
            f"quantize={quantize!r}, or quantize='int8' / 'qat'."
        )
    _check_prune(prune)
    check_resize(resize)
    _check_count(calibration_steps, "calibration_steps")
    _check_count(epochs, "epochs")
    _check_count(batch_size, "batch_size")
    _check_count(steps, "steps", allow_none=True)
    _check_count(batch, "batch", allow_none=True)
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "representative_data=None, but quantize='int8' calibrates on it; allowed: "
            f"{data_lib.SOURCES}."
        )
    if (quantize == "qat" or prune is not None) and train_data is None:
        what = "quantize='qat'" if quantize == "qat" else f"prune={prune}"
        raise ValueError(
            f"train_data=None, but {what} fine-tunes on it; allowed: {data_lib.SOURCES} (with or "
            "without labels)."
        )
    path = files.check_output_path(path, "path", kind="file")
    model = resolve_model(model)
    serving = build_serving(model, input_size, decode, require_static=True, nms=False)
    notes = []
    if gpu_substitutes:
        serving.deploy, substitution_notes = gpu.substitute(serving.deploy)
        notes.extend(f"GPU equivalent: {n}" for n in substitution_notes)
    else:
        notes.extend(
            f"GPU equivalent available (gpu_substitutes=True): {name}: {why}"
            for name, why in gpu.planned_substitutions(serving.deploy)
        )

    if widen_groups and quantize != "qat" and prune is None:
        serving.deploy, widening_notes = groups.widen_groups(serving.deploy)
        notes.extend(widening_notes)

    if quantize == "int8":
        serving.deploy, int8_notes = int8.separate_concat_scales(serving.deploy)
        notes.extend(int8_notes)

    samples = None
    if representative_data is not None and quantize in ("int8", "qat"):
        skipped = []
        samples = data_lib.samples(
            representative_data, serving.input_size, "representative_data", calibration_steps,
            resize, skipped=skipped,
        )
        notes.append(f"calibrated on {len(samples)} image(s)")
        if skipped:
            notes.append(f"calibration: {describe_skipped(skipped)}")

    export_model = serving.deploy
    if quantize == "qat" or prune is not None:
        export_model = _optimize(
            serving, quantize, prune, train_data, epochs, steps, learning_rate, batch_size,
            resize, notes,
        )

    holder = freeze(export_model, serving.input_size, serving.named_outputs, batch)
    content = to_tflite(holder, configure(quantize, io, samples))
    if quantize in ("int8", "qat"):
        outside_nodes = int8.nodes_outside_xnnpack(content)
        refused = []
        if quantize == "int8":
            refused = int8.refused_leaky_relus(outside_nodes, export_model)
        if refused:
            # LeakyReLUs the converter gave too wide a scale elsewhere (see int8.py): once more,
            # with a requantizing step after exactly those.
            export_model = int8.requantize_after(export_model, refused)
            holder = freeze(export_model, serving.input_size, serving.named_outputs, batch)
            content = to_tflite(holder, configure(quantize, io, samples))
            outside_nodes = int8.nodes_outside_xnnpack(content)
            notes.append(
                f"int8: XNNPACK refused {len(refused)} LEAKY_RELU op(s) whose output scale was "
                f"far wider than the input's ({', '.join(refused)}); converted again with a "
                "requantizing step after them"
            )
        outside = collections.Counter(n["op_name"] for n in outside_nodes)
        if outside:
            notes.append(
                "XNNPACK (the CPU delegate) leaves to the interpreter: "
                + ", ".join(f"{count} {op}" for op, count in sorted(outside.items()))
                + (" (XNNPACK has no int8 SOFTMAX; it is the classifier's last op)"
                   if "SOFTMAX" in outside else "")
            )
    content = checksum.add_checksum(content)  # keras_csp.lite refuses the file if it changes
    files.write_bytes_atomic(path, content)

    check = gpu.gpu_check(content)
    if batch is None and any(" SHAPE:" in issue for issue in check["issues"]):
        notes.append("SHAPE ops come from the dynamic batch; batch=1 (--batch 1) folds them")
    runner = gpu.interpreter_for(content).get_signature_runner("serving_default")
    # The real GPU engine's verdict where it starts (whole graph or not); the static one else.
    accelerator = gpu.accelerator_check(path)
    ran = accelerator.get("started") and "error" not in accelerator
    report = ExportReport(
        path=str(path),
        format="tflite",
        quantize=quantize,
        size_bytes=path.stat().st_size,
        ops=check["ops"],
        kind=serving.kind,
        inputs=_tensor_rows(runner.get_input_details()),
        outputs=_tensor_rows(runner.get_output_details()),
        gpu_compatible=(accelerator["whole"] and accelerator["agrees"]) if ran
        else check["compatible"],
        gpu_accelerator=accelerator,
        analyzer_verdict=check["analyzer_verdict"],
        gpu_issues=check["issues"],
        notes=notes,
        analyzer_output=check["analyzer_output"],
    )
    if verbose:
        print(report.summary())
    return report


def _optimize(serving, quantize, prune, train_data, epochs, steps, learning_rate, batch_size,
              resize, notes):
    """The tf_keras model to convert: the twin, pruned and/or quantization-aware fine-tuned."""
    from keras_csp.export import optimize
    from keras_csp.export.twin import to_tf_keras

    twin, layer_map = to_tf_keras(serving.deploy)
    fit = dict(
        teacher=serving.deploy, kind=serving.kind, train_data=train_data,
        input_size=serving.input_size, epochs=epochs, steps=steps, learning_rate=learning_rate,
        batch_size=batch_size, resize=resize, skipped=[],
    )
    scheme = None
    if prune is not None:
        pruned = optimize.prune(twin, prune)
        losses = optimize.finetune(pruned, callbacks=optimize.pruning_callbacks(), **fit)
        twin = optimize.strip_pruning(pruned)
        notes.append(
            f"pruned to {optimize.sparsity_of(twin):.1%} zeros in conv/dense kernels (target "
            f"{prune:.0%}), fine-tuned {len(losses)} epoch(s), last loss {losses[-1]:.4g}"
        )
        if quantize == "qat":
            import tensorflow_model_optimization as tfmot

            scheme = tfmot.quantization.keras.collab_opts.Default8BitPrunePreserveQuantizeScheme()
    if quantize == "qat":
        qat = optimize.quantize_aware(twin, layer_map, scheme)
        losses = optimize.finetune(qat, **fit)
        notes.append(
            f"quantization-aware fine-tuning: {len(losses)} epoch(s), last loss {losses[-1]:.4g}"
        )
    if fit["skipped"]:  # pruning and QAT read the same files: each one named once
        notes.append(f"fine-tuning: {describe_skipped(list(dict(fit['skipped']).items()))}")
    return qat if quantize == "qat" else twin
