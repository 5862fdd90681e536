"""Notebook 03: a classifier's TFLite files per format, their GPU verdicts, accuracy and latency."""

import dataclasses
from pathlib import Path

import numpy as np

from keras_csp.explore.latency import lite_latency


EXPORT_MODES = {"fp32": "none", "fp16": "fp16", "int8": "int8"}


@dataclasses.dataclass
class ExportRow:
    format: str
    path: str
    size_bytes: int
    gpu_compatible: bool
    gpu_verdict: str
    gpu_issues: list
    latency_ms: float = None
    top1: float = None
    gpu_accelerator: dict = None  # the report's run on LiteRT's GPU accelerator


def export_variants(model, out_dir, calibration_images, formats=("fp32", "fp16", "int8"),
                    name="model", batch=1):
    """Exports `model` to TFLite once per format with `keras_csp.export.tflite`; returns
    `ExportRow`s (file size, the GPU-delegate verdict of the export report and its run on LiteRT's
    GPU accelerator)."""
    import logging
    import warnings

    from keras_csp import export

    for fmt in formats:
        if fmt not in EXPORT_MODES:
            raise ValueError(f"format={fmt!r} is not allowed; allowed: {', '.join(EXPORT_MODES)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    tf_logger = logging.getLogger("tensorflow")
    for fmt in formats:
        kwargs = {"representative_data": list(calibration_images)} if fmt == "int8" else {}
        path = out / f"{name}_{fmt}.tflite"
        level = tf_logger.level
        try:  # without TensorFlow's "Assets written to ..." lines and its interpreter notice
            tf_logger.setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                report = export.tflite(model, str(path), quantize=EXPORT_MODES[fmt], batch=batch,
                                       verbose=False, **kwargs)
        finally:
            tf_logger.setLevel(level)
        rows.append(ExportRow(fmt, str(path), report.size_bytes, bool(report.gpu_compatible),
                              report.analyzer_verdict, list(report.gpu_issues),
                              gpu_accelerator=report.gpu_accelerator))
    return rows


def lite_predict(path, images, num_threads=None):
    """The first output (probabilities, or the detector's dict) of a `.tflite` file on images."""
    from keras_csp.lite import LiteModel

    return LiteModel(path, num_threads=num_threads)(np.asarray(images))


def evaluate_exports(rows, images, labels, latency_runs=20):
    """Fills `latency_ms` and `top1` of each `ExportRow` (classifiers), running keras_csp.lite."""
    for row in rows:
        probs = lite_predict(row.path, images)["probabilities"]
        row.top1 = float(np.mean(np.argmax(probs, axis=-1) == labels))
        row.latency_ms = lite_latency(row.path, images[0], runs=latency_runs)
    return rows


def accelerator_cell(check):
    """One table cell for an export report's GPU-accelerator run: whole graph or not, and how
    close to the CPU (quantization steps for int8 files)."""
    if check is None:
        return "–"
    if not check.get("started"):
        return "did not start: " + check.get("reason", "")
    if "error" in check:
        return "failed: " + check["error"]
    if check["max_steps"]:
        diff = f"{max(check['max_steps'].values()):g} quantization step(s)"
    else:
        diff = f"{max(check['max_difference'].values(), default=0.0):.2g}"
    agrees = "agrees" if check["agrees"] else "DISAGREES"
    return f"{check['summary']}; {agrees} with the CPU (max difference {diff})"


def export_table_rows(rows, keras_top1=None):
    table = []
    if keras_top1 is not None:
        table.append({"format": "Keras (float32)", "size KiB": "–", "GPU delegate": "–",
                      "GPU accelerator": "–", "latency ms": "–", "top-1": round(keras_top1, 4)})
    for r in rows:
        verdict = "compatible" if r.gpu_compatible else "NOT compatible: " + "; ".join(r.gpu_issues)
        table.append({
            "format": r.format,
            "size KiB": round(r.size_bytes / 1024, 1),
            "GPU delegate": verdict,
            "GPU accelerator": accelerator_cell(r.gpu_accelerator),
            "latency ms": "–" if r.latency_ms is None else round(r.latency_ms, 2),
            "top-1": "–" if r.top1 is None else round(r.top1, 4),
        })
    return table
