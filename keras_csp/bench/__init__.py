"""`keras_csp.benchmark(model, data)` / `keras-csp benchmark MODEL.keras --data ...`: every
deployment format of one model, side by side.

    from keras_csp import benchmark
    result = benchmark("det.keras", "val.json", images_dir="val/", threads=2)
    print(result.table)          # size, accuracy, its difference to Keras, latency, GPU verdict
    result.row("tflite_int8")    # one format's numbers

Per format (`FORMATS`: Keras, SavedModel, TFLite fp32 / fp16 / int8, QAT on request): the file the
package's export writes (`formats.py`), its accuracy on the validation data through the code of
`keras-csp evaluate` (`data.py`: top-1/top-5, or COCO mAP/mAP50), its latency at batch 1 timed in
turns (`measure.py`), and the verdict of LiteRT's GPU engine from the export report; then a
markdown table, a JSON document and an accuracy-latency plot (`table.py`). `run.py` runs the
steps; a format that fails is a row with the reason.
"""

from keras_csp.lazy import lazy_attributes

_EXPORTS = {
    "benchmark": "keras_csp.bench.run",
    "BenchmarkResult": "keras_csp.bench.run",
    "FORMATS": "keras_csp.bench.formats",
    "DEFAULT_FORMATS": "keras_csp.bench.formats",
}

__getattr__, __dir__, __all__ = lazy_attributes(__name__, _EXPORTS, ())
