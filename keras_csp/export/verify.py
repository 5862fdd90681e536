"""What a written `.tflite` file does on a device: its tensors, ops, delegates, as an `ExportReport`.

Read back from the file itself (not from the Keras model it came from): the signature's inputs
and outputs, the ops, the GPU delegate's verdict (the real GPU engine's where it starts, the
static analysis else), and for full-integer files which nodes XNNPACK leaves to the interpreter.
"""

import collections

from keras_csp.export import gpu
from keras_csp.export.report import ExportReport


# The report's hint for a dynamic-batch file whose graph keeps SHAPE ops (a test checks that the
# options it names exist).
SHAPE_OPS_HINT = (
    "SHAPE ops come from the dynamic batch (batch='dynamic', --batch dynamic); batch 1 (the "
    "default; batch=1, --batch 1) folds them"
)


def xnnpack_notes(outside_nodes):
    """A report note naming the ops XNNPACK leaves to the interpreter (none when it runs all)."""
    outside = collections.Counter(n["op_name"] for n in outside_nodes)
    if not outside:
        return []
    return [
        "XNNPACK (the CPU delegate) leaves to the interpreter: "
        + ", ".join(f"{count} {op}" for op, count in sorted(outside.items()))
        + (" (XNNPACK has no int8 SOFTMAX; it is the classifier's last op)"
           if "SOFTMAX" in outside else "")
    ]


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


def tflite_report(path, content, kind, quantize, batch, notes):
    """The `ExportReport` of the file at `path` whose bytes are `content`; `notes` are the
    export's own (a note on SHAPE ops is added where a fixed batch would fold them)."""
    notes = list(notes)
    check = gpu.gpu_check(content)
    if batch is None and any(" SHAPE:" in issue for issue in check["issues"]):
        notes.append(SHAPE_OPS_HINT)
    runner = gpu.interpreter_for(content).get_signature_runner("serving_default")
    # The real GPU engine's verdict where it starts (whole graph or not); the static one else.
    accelerator = gpu.accelerator_check(path)
    ran = accelerator.get("started") and "error" not in accelerator
    return ExportReport(
        path=str(path),
        format="tflite",
        quantize=quantize,
        size_bytes=path.stat().st_size,
        ops=check["ops"],
        kind=kind,
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
