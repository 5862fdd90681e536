"""TFLite latency of CSP models against their non-CSP twins (run by hand, never in CI).

    python -m benchmarks.tflite_latency                       # cspresnext50 vs resnext50
    python -m benchmarks.tflite_latency --models cspdarknet53 darknet53 --runs 50

For each model: the Keras model in TF (a compiled tf.function, batch 1), and its TFLite exports in
fp32, fp16 and full-integer int8 under the best available runtime (`keras_csp.lite`, XNNPACK, 2
threads), median latency over `--runs` runs after warm-up, at batch 1 and 256x256. Weights are random:
latency does not depend on them (int8 accuracy does; that is measured elsewhere). Prints a table and
writes `benchmarks/results/tflite_latency.json` and `.png`. The load average is printed so a noisy run
shows.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FORMATS = ("fp32", "fp16", "int8")
QUANTIZE = {"fp32": "none", "fp16": "fp16", "int8": "int8"}


def _median_ms(fn, runs, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(name, size, runs, threads, workdir):
    import numpy as np
    import tensorflow as tf

    import keras_csp
    from keras_csp import export
    from keras_csp.lite import LiteModel

    model = keras_csp.build_model(name, input_shape=(size, size, 3))
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, size=(1, size, size, 3)).astype("float32")
    calibration = [rng.uniform(0, 255, size=(size, size, 3)).astype("float32") for _ in range(8)]
    row = {"model": name, "gflops": keras_csp.profile(name, (size, size, 3)).flops / 1e9}

    predict = tf.function(lambda x: model(x, training=False))
    row["keras_ms"] = _median_ms(lambda: predict(image), runs)
    for fmt in FORMATS:
        path = os.path.join(workdir, f"{name}_{fmt}.tflite")
        export.tflite(
            model, path, quantize=QUANTIZE[fmt], batch=1,
            representative_data=calibration if fmt == "int8" else None, verbose=False,
        )
        lite = LiteModel(path, num_threads=threads)
        row[f"{fmt}_ms"] = _median_ms(lambda: lite(image), runs)
        row[f"{fmt}_backend"] = lite.backend
    return row


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["keras_ms"] + [f"{f}_ms" for f in FORMATS]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        xs = [j + i * width for j in range(len(columns))]
        ax.bar(xs, [row[c] for c in columns], width, label=row["model"])
    ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(columns))])
    ax.set_xticklabels(["Keras (TF)", "TFLite fp32", "TFLite fp16", "TFLite int8"])
    ax.set_ylabel("median latency, batch 1 (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cspresnext50", "resnext50"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as workdir:
        rows = [measure(m, args.size, args.runs, args.threads, workdir) for m in args.models]
    print(f"load average after: {os.getloadavg()}")
    header = f"{'model':<14} {'GFLOPs':>7} {'Keras ms':>9}" + "".join(f" {f + ' ms':>9}" for f in FORMATS)
    print(header)
    for r in rows:
        print(f"{r['model']:<14} {r['gflops']:>7.2f} {r['keras_ms']:>9.1f}"
              + "".join(f" {r[f + '_ms']:>9.1f}" for f in FORMATS))
    if len(rows) == 2:
        a, b = rows
        print(f"\n{a['model']}/{b['model']}: FLOPs x{a['gflops'] / b['gflops']:.2f}, latency "
              + ", ".join(f"{c.split('_')[0]} x{a[c] / b[c]:.2f}" for c in ["keras_ms"] + [f"{f}_ms" for f in FORMATS]))
    RESULTS.mkdir(exist_ok=True)
    result = {"rows": rows, "load_average": os.getloadavg(), "threads": args.threads,
              "size": args.size, "runs": args.runs, "date": time.strftime("%Y-%m-%d")}
    (RESULTS / "tflite_latency.json").write_text(json.dumps(result, indent=2))
    _plot(rows, RESULTS / "tflite_latency.png")
    print(f"wrote {RESULTS / 'tflite_latency.json'} and .png")


if __name__ == "__main__":
    main()
