"""`benchmark(model, data, ...)`: every format of one model, exported, measured and compared.

The steps (`keras-csp benchmark` runs this): check the arguments and read the data (bad input is
refused in one line before anything is written), then per format export its file
(`formats.export_format`), measure its accuracy on the validation data (`data.evaluate`, the code
of `keras-csp evaluate`) and its GPU verdict (the export report's run on LiteRT's GPU engine),
then time every format at batch 1 in turns (`measure.in_turns`), and write the table, the JSON
and the plot into the output folder. A format that fails becomes a row with the reason.
"""

import dataclasses
import os
import sys
import time
from pathlib import Path

from keras_csp.bench import data as bench_data
from keras_csp.bench import formats as bench_formats
from keras_csp.bench import measure, table

# What a benchmark writes into its output folder (besides the format files).
RESULTS = "benchmark.json"
TABLE = "benchmark.md"
PLOT = "benchmark.png"


@dataclasses.dataclass
class BenchmarkResult:
    """The rows (one dict per format), the markdown table and the files written."""

    rows: list
    task: str
    table: str
    document: dict
    files: dict

    def row(self, name):
        return next(r for r in self.rows if r["format"] == name)

    def __str__(self):
        return self.table


class Progress:
    """A textual progress bar on stderr, one line per step (`quiet`: none)."""

    def __init__(self, total, quiet=False, width=24):
        self.total, self.done, self.quiet, self.width = total, 0, quiet, width
        self.start = time.perf_counter()

    def step(self, text):
        self.done += 1
        if self.quiet:
            return
        filled = round(self.width * self.done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        print(f"benchmark [{bar}] {self.done}/{self.total} {elapsed:6.1f} s  {text}",
              file=sys.stderr, flush=True)


def _check_int(value, argument, smallest):
    if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
        raise ValueError(f"{argument}={value!r} is not allowed; allowed: an integer >= {smallest}.")


def _output_folder(output_dir, stem, overwrite):
    from keras_csp import files

    folder = Path(output_dir) if output_dir is not None else Path("runs", "benchmark", stem)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output_dir={str(folder)!r} is a file; allowed: a folder.")
    if (folder / RESULTS).exists() and not overwrite:
        raise ValueError(
            f"output_dir={str(folder)!r} holds an earlier benchmark ({RESULTS}); allowed: "
            "overwrite=True (--overwrite) to replace its files, or another output_dir."
        )
    missing = folder  # the first folder to make (runs/ for the default, if it does not exist)
    while not missing.parent.exists():
        missing = missing.parent
    if not missing.exists():
        files.check_output_path(missing, "output_dir", kind="folder")
    return folder


def _read_data(kind, data, options):
    if kind == "detector":
        return bench_data.detection_data(
            data, options["images_dir"], options["split"], options["data_format"],
            options["calibration_data"],
        )
    if kind != "classifier":
        raise ValueError(
            f"model is a {kind}; allowed: a classifier (probabilities) or a detector (boxes)."
        )
    for name in ("images_dir", "data_format"):
        if options[name] is not None:
            raise ValueError(
                f"{name}={options[name]!r} applies to detection sets; a classifier's data is a "
                f"folder of class subfolders: allowed: {name}=None."
            )
    return bench_data.classification_data(
        data, options["validation_split"], options["seed"], options["calibration_data"]
    )


def _set_threads(threads):
    """TensorFlow's thread pools at `threads` (a note where TF started already)."""
    if threads is None:
        return []
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        return []
    except RuntimeError:  # set once per process, before TF runs anything
        return [f"Keras and SavedModel rows: TensorFlow had started; its threads are not {threads}"]


def benchmark(
    model,
    data,
    *,
    images_dir=None,
    data_format=None,
    split="val",
    formats=None,
    qat=False,
    output_dir=None,
    overwrite=False,
    threads=None,
    runs=20,
    warmup=3,
    calibration_data=None,
    calibration_steps=100,
    validation_split=0.1,
    seed=0,
    resize="none",
    qat_steps=None,
    json_path=None,
    plot_path=None,
    name=None,
    progress=True,
    verbose=True,
):
    """Exports `model` to every format, measures each, and returns a `BenchmarkResult`.

    Args:
        model: a `.keras` file or a `keras.Model` (a classifier or a detector).
        data: classifiers: a folder of class subfolders; detectors: a COCO JSON (`images_dir`), a
            YOLO data YAML or a VOC root (see `keras_csp.bench.data`).
        images_dir, data_format, split: the detection set's images folder (COCO), format, and
            the split measured (YOLO/VOC; default "val").
        formats: names of `FORMATS` (a list or a comma-separated string); default
            `DEFAULT_FORMATS`. `qat`: add QAT (tfmot fine-tuning on the calibration images,
            `qat_steps` steps, taught by the float model).
        output_dir: where the files go (default runs/benchmark/<model name>); a folder holding an
            earlier benchmark is refused unless `overwrite`.
        threads: CPU threads of every format (XNNPACK's, and TensorFlow's process-wide pools if
            TF has not run yet); `runs` rounds in turns after `warmup` untimed calls each.
        calibration_data, calibration_steps: int8's calibration images (default: the training
            split) and how many are read.
        validation_split, seed: classifiers: the split `keras-csp train` makes of the folder
            (0: measure the whole folder).
        resize: classifiers: how images are fitted to the input ("none", "crop", "stretch").
        json_path, plot_path: default `benchmark.json` and `benchmark.png` in the output folder;
            `name`: the files' stem (default: the .keras file's, or the model's name).
        progress: a progress bar on stderr. verbose: print the table.
    """
    from keras_csp.export.serving import build_serving, resolve_model

    names = bench_formats.check_formats(formats, qat)
    _check_arguments(runs, warmup, calibration_steps, threads, qat_steps, resize,
                     (json_path, plot_path))
    notes = _set_threads(threads)
    stem = name or (Path(model).stem if isinstance(model, (str, os.PathLike)) else model.name)
    model = resolve_model(model)
    serving = build_serving(model, None, require_static=True, nms=False)
    bench = _read_data(serving.kind, data, dict(
        images_dir=images_dir, split=split, data_format=data_format, seed=seed,
        calibration_data=calibration_data, validation_split=validation_split))
    quantized = [n for n in names if bench_formats.FORMATS[n][1] in ("int8", "qat")]
    calibration = (
        bench.calibration(serving.input_size, resize, calibration_steps) if quantized else None
    )
    folder = _output_folder(output_dir, stem, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    load = [os.getloadavg()[0]]
    options = {"threads": threads, "resize": resize, "qat_steps": qat_steps, "stem": stem,
               "runs": runs, "warmup": warmup, "progress": progress}
    rows = _measure_all(names, model, serving.kind, bench, folder, calibration, options)
    load.append(os.getloadavg()[0])
    return _write_results(rows, bench, folder, {
        "model": stem, "task": bench.task, "data": bench.description,
        "input_size": list(serving.input_size), "threads": threads, "runs": runs,
        "warmup": warmup, "formats": names, "cpu_count": os.cpu_count(),
        "load_average_1min": {"start": round(load[0], 2), "end": round(load[1], 2)},
        "notes": bench.notes + ([bench.calibration_note] if quantized else []) + notes,
    }, json_path, plot_path, verbose)


def _check_arguments(runs, warmup, calibration_steps, threads, qat_steps, resize, paths):
    from keras_csp import files, lite

    for value, argument, smallest in ((runs, "runs", 1), (warmup, "warmup", 0),
                                      (calibration_steps, "calibration_steps", 1)):
        _check_int(value, argument, smallest)
    for value, argument in ((threads, "threads"), (qat_steps, "qat_steps")):
        if value is not None:
            _check_int(value, argument, 1)
    lite.check_resize(resize)
    for path, argument in zip(paths, ("json_path", "plot_path")):
        if path is not None:
            files.check_output_path(path, argument)


def _measure_all(names, model, kind, bench, folder, calibration, options):
    """Every format's row: exported and measured one after the other, then timed in turns."""
    bar = Progress(2 * len(names) + 1, quiet=not options["progress"])
    rows, runners = [], {}
    for name in names:
        row, runner = _measure_format(name, model, kind, bench, folder, calibration, options, bar)
        rows.append(row)
        if runner is not None:
            runners[name] = runner
    latencies, errors = measure.in_turns(runners, options["runs"], options["warmup"])
    bar.step(f"latency: {options['runs']} rounds in turns, batch 1")
    _finish_rows(rows, latencies, errors, bench.task)
    return rows


def _reason(stage, error):
    text = str(error).strip().splitlines()
    return f"{stage}: {type(error).__name__}: {text[0] if text else ''}"


def _measure_format(name, model, kind, bench, folder, calibration, options, bar):
    """`(row, runner)` of one format: its file, accuracy and GPU verdict (runner None: failed)."""
    row = {"format": name, "label": bench_formats.FORMATS[name][0], "file": None,
           "size_bytes": None, "error": None}
    try:
        exported = bench_formats.export_format(
            name, model, folder, options["stem"], calibration, options["qat_steps"]
        )
        row.update(file=str(exported.path), size_bytes=exported.size_bytes)
        row["gpu"], row["gpu_agreement"] = bench_formats.gpu_verdict(exported.report)
        row["export_notes"] = list(getattr(exported.report, "notes", []))
        bar.step(f"{name}: written, {table.size_text(exported.size_bytes)}")
    except Exception as e:  # a format that fails is a row with the reason, not an abort
        row["error"] = _reason("export", e)
        bar.step(f"{name}: export FAILED ({row['error']})")
        bar.step(f"{name}: skipped")
        return row, None
    try:
        if name == "keras":
            runner = measure.keras_runner(model, kind, None)
        elif name == "savedmodel":
            runner = measure.savedmodel_runner(exported.path, kind)
        else:
            runner = measure.tflite_runner(exported.path, options["threads"])
        row.update(bench_data.evaluate(bench, runner.predict, runner.size, options["resize"]))
    except Exception as e:
        row["error"] = _reason("accuracy", e)
        bar.step(f"{name}: accuracy FAILED ({row['error']})")
        return row, None
    metrics, _ = table.METRICS[bench.task]
    bar.step(f"{name}: " + ", ".join(f"{m} {row[m]:.4f}" for m in metrics))
    return row, runner


def _finish_rows(rows, latencies, errors, task):
    """Latency (or its failure) and the differences to the Keras row's metrics (`difference`:
    of the main one, top-1 or mAP50)."""
    metrics, main = table.METRICS[task]
    keras = next((r for r in rows if r["format"] == "keras" and not r["error"]), None)
    for row in rows:
        row.pop("skipped_files", None)
        if row["format"] in errors:
            row["error"] = _reason("latency", RuntimeError(errors[row["format"]]))
        row["latency"] = latencies.get(row["format"])
        ok = keras is not None and not row["error"] and row.get(main) is not None
        row["differences"] = {m: row[m] - keras[m] for m in metrics} if ok else None
        row["difference"] = row[main] - keras[main] if ok else None


def _write_results(rows, bench, folder, document, json_path, plot_path, verbose):
    document = dict(document, rows=rows)
    text = table.markdown(rows, bench.task, document["threads"])
    paths = {
        "json": Path(json_path) if json_path is not None else folder / RESULTS,
        "table": folder / TABLE,
        "plot": Path(plot_path) if plot_path is not None else folder / PLOT,
    }
    table.write_json(paths["json"], document)
    table.write_markdown(paths["table"], text)
    title = f"{document['model']} on {bench.description}"
    table.plot(paths["plot"], rows, bench.task, title)
    if verbose:
        print(text)
        for note in document["notes"]:
            print(f"note: {note}")
        print(f"wrote {paths['json']}, {paths['table']} and {paths['plot']}")
    return BenchmarkResult(rows, bench.task, text, document, {k: str(v) for k, v in paths.items()})
