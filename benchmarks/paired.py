"""Latency of several models measured in turns, so that the ratios between them survive a noisy
machine (run by hand, never in CI).

    # TFLite files (e.g. the ones `python -m benchmarks.inference --workdir W` left in W):
    .venv-device-litert/bin/python benchmarks/paired.py tflite W/cspresnext50_256_fp32_b1.tflite \\
        W/resnext50_256_fp32_b1.tflite W/keras-hub_cspresnext50_256_fp32_b1.tflite
    # keras_csp models in TensorFlow, as `frozen_function(optimize_for_inference(model))`:
    .venv/bin/python benchmarks/paired.py keras cspresnext50 resnext50 cspdarknet53 darknet53

`benchmarks.inference` times one row after another, minutes apart; on a shared machine a row can
move by 25% between runs, and a ratio of two rows (CSP against its twin, ours against keras-hub)
takes the drift of both. Here every round runs each model `--runs` times, in a new random order
per round, for `--rounds` rounds; the medians and their ratios come from the same minutes. It
prints a table (median and fastest ms, and for keras mode GFLOP/s and the FLOPs ratio of each
CSP/twin pair) and writes JSON with every time if asked (`--json`).
"""

import argparse
import json
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_csp import timing  # noqa: E402 - standard library only: fine in the LiteRT venv
# CSP model -> its non-CSP twin (the pairs the paper and benchmarks.inference compare).
TWINS = {"cspresnext50": "resnext50", "cspresnet50": "resnet50", "cspdarknet53": "darknet53",
         "cspresnet10": "resnet10", "cspdensenet121": "densenet121", "csppeleenet": "peleenet"}


def tflite_callables(paths, threads):
    import numpy as np

    from keras_csp.lite import LiteModel

    result = {}
    for path in paths:
        lite = LiteModel(path, num_threads=threads)
        batch, *rest = lite.input.shape
        shape = (batch if batch and batch > 0 else 1, *rest)
        x = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
        result[Path(path).stem] = (lambda lite=lite, x=x: lite(x)), None
    return result


def keras_callables(names, size, batch, threads):
    import numpy as np
    import tensorflow as tf

    import keras_csp

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    x = tf.constant(np.random.default_rng(0).standard_normal((batch, size, size, 3)), tf.float32)
    result = {}
    for name in names:
        model = keras_csp.build_model(name, input_shape=(size, size, 3), weights=None,
                                      classifier_activation=None)
        flops = keras_csp.profile(model).flops
        fn = keras_csp.frozen_function(keras_csp.optimize_for_inference(model))
        result[name] = (lambda fn=fn: np.asarray(fn(x))), flops * batch
    return result


def measure(callables, rounds, runs, warmup, seed=0):
    """{label: [ms, ...]}: `rounds` rounds, each running every callable `runs` times (order
    shuffled per round), after `warmup` untimed calls of each."""
    for fn, _ in callables.values():
        for _ in range(warmup):
            fn()
    times = {label: [] for label in callables}
    order = list(callables)
    rng = random.Random(seed)
    for r in range(rounds):
        rng.shuffle(order)
        for label in order:
            times[label] += timing.time_calls(callables[label][0], runs=runs, warmup=0)
        print(f"round {r + 1}/{rounds} done (load {os.getloadavg()[0]:.2f})", file=sys.stderr,
              flush=True)
    return times


def summarize(callables, times):
    """(rows, pairs): per label the median and fastest ms (and GFLOP/s when FLOPs are known); per
    CSP label whose twin (`TWINS`, same suffix after the model name) was timed too, the ratios."""
    rows = {}
    for label, ts in times.items():
        flops = callables[label][1]
        timed = timing.summary(ts)
        median = timed["ms"]
        rows[label] = {"ms": median, "min_ms": timed["min_ms"],
                       "gflops_per_s": flops / median / 1e6 if flops else None, "flops": flops}
    pairs = []
    for label in rows:
        twin = next((other for other in rows
                     if _model_key(label) in TWINS
                     and _model_key(other) == TWINS[_model_key(label)]
                     and _variant(other) == _variant(label)), None)
        if twin is None:
            continue
        pair = {"csp": label, "twin": twin,
                "latency_ratio": rows[label]["ms"] / rows[twin]["ms"],
                "fastest_ratio": rows[label]["min_ms"] / rows[twin]["min_ms"]}
        if rows[label]["flops"] and rows[twin]["flops"]:
            pair["flops_ratio"] = rows[label]["flops"] / rows[twin]["flops"]
        pairs.append(pair)
    return rows, pairs


def _model_key(label):
    return label.split("_")[0]


def _variant(label):
    return label.split("_", 1)[1] if "_" in label else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("tflite", "keras"))
    parser.add_argument("items", nargs="+", help=".tflite files (tflite) or model names (keras)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3, help="calls per model per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256, help="keras mode: input side")
    parser.add_argument("--batch", type=int, default=1, help="keras mode: batch size")
    parser.add_argument("--json", default=None, help="also write every time here")
    args = parser.parse_args(argv)
    for name in ("rounds", "runs", "threads", "size", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} is not allowed; allowed: >= 1")
    if args.mode == "tflite":
        missing = [p for p in args.items if not Path(p).is_file()]
        if missing:
            parser.error(f"files do not exist: {', '.join(missing)}")
        callables = tflite_callables(args.items, args.threads)
    else:
        callables = keras_callables(args.items, args.size, args.batch, args.threads)
    load = {"start": os.getloadavg()[0]}
    times = measure(callables, args.rounds, args.runs, args.warmup)
    load["end"] = os.getloadavg()[0]
    rows, pairs = summarize(callables, times)
    print(f"\n{args.mode}: {args.rounds} rounds x {args.runs} runs, {args.threads} threads, load "
          f"{load['start']:.2f} -> {load['end']:.2f}")
    width = max(len(label) for label in rows) + 1
    for label, row in rows.items():
        rate = f"  {row['gflops_per_s']:6.1f} GFLOP/s" if row["gflops_per_s"] else ""
        print(f"{label:<{width}} median {row['ms']:8.2f} ms  fastest {row['min_ms']:8.2f} ms{rate}")
    for pair in pairs:
        flops = f", FLOPs ratio {pair['flops_ratio']:.3f}" if "flops_ratio" in pair else ""
        print(f"{pair['csp']}/{pair['twin']}: latency ratio {pair['latency_ratio']:.3f} "
              f"(fastest runs {pair['fastest_ratio']:.3f}){flops}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"mode": args.mode, "args": vars(args), "load_average": load, "rows": rows,
             "pairs": pairs, "times_ms": times}, indent=1))
    return rows, pairs


if __name__ == "__main__":
    main()
