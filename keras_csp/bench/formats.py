"""The formats a benchmark measures, and the export step that writes each one's file.

Each format is a row of the table: the Keras model itself (`.keras`), its SavedModel, and the
`.tflite` files of `keras_csp.export.tflite` in fp32, fp16, full-integer int8 (calibrated on
training images) and, on request, QAT. Every file is written by the package's own export
functions, with their defaults (a `.tflite` file has batch 1, what phones run).
"""

import dataclasses
from pathlib import Path

# name -> (what the row is called in the table, the export's quantize mode or None)
FORMATS = {
    "keras": ("Keras", None),
    "savedmodel": ("SavedModel", None),
    "tflite_fp32": ("TFLite fp32", "none"),
    "tflite_fp16": ("TFLite fp16", "fp16"),
    "tflite_int8": ("TFLite int8", "int8"),
    "tflite_qat": ("TFLite QAT int8", "qat"),
}
DEFAULT_FORMATS = ("keras", "savedmodel", "tflite_fp32", "tflite_fp16", "tflite_int8")


def check_formats(formats, qat=False, argument="formats"):
    """The formats to measure, in table order: `formats` (names, or one comma-separated string;
    None: `DEFAULT_FORMATS`), plus QAT with `qat`. Keras comes first: the others are compared to
    it, so it is always measured."""
    if formats is None:
        names = list(DEFAULT_FORMATS)
    else:
        given = formats.split(",") if isinstance(formats, str) else formats
        names = [str(name).strip().lower() for name in given if str(name).strip()]
        unknown = [name for name in names if name not in FORMATS]
        if unknown or not names:
            raise ValueError(
                f"{argument}={formats!r} names no format or an unknown one "
                f"({', '.join(unknown) or 'none given'}); allowed: a comma-separated choice of "
                f"{', '.join(FORMATS)}."
            )
    if qat:
        names.append("tflite_qat")
    names.append("keras")
    return [name for name in FORMATS if name in names]


@dataclasses.dataclass
class Exported:
    """A format's file: its path, size and (for exports) the `ExportReport`."""

    path: Path
    size_bytes: int
    report: object = None


def _size(path):
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def export_format(name, model, folder, stem, calibration, qat_steps=None):
    """Writes format `name` of `model` into `folder`; returns an `Exported`.

    `calibration`: uint8 training images (n, h, w, 3), for int8 (and QAT's fine-tuning, taught by
    the float model) at the model's input size.
    """
    from keras_csp import export

    quantize = FORMATS[name][1]
    if name == "keras":
        path = folder / f"{stem}.keras"
        from keras_csp.files import atomic_file

        with atomic_file(path, suffix=".keras") as tmp:  # Keras saves only to .keras names
            model.save(tmp)
        return Exported(path, _size(path))
    if name == "savedmodel":
        path = folder / f"{stem}_savedmodel"
        report = export.saved_model(model, path, verbose=False)
        return Exported(path, report.size_bytes, report)
    path = folder / f"{stem}_{name.split('_', 1)[1]}.tflite"
    options = {}
    if quantize in ("int8", "qat"):
        options["representative_data"] = [calibration]
        options["calibration_steps"] = len(calibration)
    if quantize == "qat":
        options.update(train_data=[calibration], steps=qat_steps)
    report = export.tflite(model, path, quantize=quantize, verbose=False, **options)
    return Exported(path, report.size_bytes, report)


def gpu_verdict(report):
    """`(verdict, agreement)` of an export report's run on LiteRT's GPU accelerator, as text.

    The verdict is "whole graph (N ops)", "K of N ops left on the CPU: ...", or why it did not
    run; the agreement is the largest |GPU - CPU| output difference (in quantization steps for
    quantized outputs), or "" where it did not run.
    """
    check = getattr(report, "gpu_accelerator", None)
    if check is None:
        return "n/a", ""  # the GPU engine runs .tflite files only
    if not check.get("started"):
        return f"did not start: {check.get('reason', '')}", ""
    if "error" in check:
        return f"failed: {check['error']}", ""
    steps = check.get("max_steps", {})
    worst = ", ".join(
        f"{name} {steps[name]:g} steps" if name in steps else f"{name} {value:.2g}"
        for name, value in check["max_difference"].items()
    )
    agrees = "agrees" if check["agrees"] else "DISAGREES"
    return check["summary"], f"{agrees} ({worst})"
