"""Training-step throughput: CSP models against their baselines (not a test).

    python benchmarks/train_throughput.py                      # 256x256, batch 8, the two pairs
    python benchmarks/train_throughput.py --steps 20 --jit-compile --mixed-precision bfloat16
    python benchmarks/train_throughput.py --pairs cspresnext50:resnext50 --json out.json

For each model: one SGD training step (forward, loss, backward, update) on random data, the same
`tf.function` step the trainer runs (run by the default strategy), timed over `--steps` steps after
`--warmup` untimed ones. Reports images/s, ms/step and the FLOPs of a forward pass (2 per
multiply-add). Numbers are only comparable between models measured in the same run on an otherwise
quiet machine; the order of models alternates between repeats to spread out drift.

Peak memory is measured apart: each model trains `--warmup` + 1 steps in a fresh process of its own,
which then reports its peak resident memory (VmHWM), next to the peak of a process that imports
TensorFlow and keras_csp and builds nothing ("runtime"). A shared process would flatter whichever
model runs second, since the allocator reuses the first one's pools.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_PAIRS = ("cspresnext50:resnext50", "cspdarknet53:darknet53")


def build_step(name, size, batch, classes, jit_compile):
    import keras
    import tensorflow as tf

    from keras_csp.train.models import build_classifier

    model = build_classifier(name, classes, size)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)
    optimizer.build(model.trainable_variables)
    images = tf.random.normal((batch, size, size, 3))
    labels = tf.one_hot(tf.random.uniform((batch,), 0, classes, tf.int32), classes)

    @tf.function(jit_compile=jit_compile)
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, logits, from_logits=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def run_once():
        return float(step(images, labels))  # float() waits for the step to finish

    return model, run_once


def _peak_rss_mb():
    """Peak resident memory of this process so far (Linux /proc VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_memory_mb(name, args):
    """Peak RSS of a fresh process that trains `name` (or builds nothing for name=None)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--peak-memory-of", name or "runtime"]
    cmd += ["--size", str(args.size), "--batch", str(args.batch), "--warmup", str(args.warmup)]
    cmd += ["--classes", str(args.classes), "--mixed-precision", args.mixed_precision]
    cmd += ["--jit-compile"] if args.jit_compile else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]))


def _report_peak_memory(args):
    """The child side of `peak_memory_mb`: prints the peak RSS as the last line."""
    import keras_csp.models  # noqa: F401 - the runtime a training process always loads

    if args.peak_memory_of != "runtime":
        _, run_once = build_step(
            args.peak_memory_of, args.size, args.batch, args.classes, args.jit_compile
        )
        for _ in range(args.warmup + 1):
            run_once()
    print(_peak_rss_mb())
    return 0


def measure(names, size, batch, steps, warmup, repeats, classes, jit_compile):
    from keras_csp.profiler import profile

    runners, results = {}, {}
    for name in names:
        model, run_once = build_step(name, size, batch, classes, jit_compile)
        t = time.perf_counter()
        run_once()  # trace (and compile)
        compile_s = time.perf_counter() - t
        for _ in range(warmup):
            run_once()
        runners[name] = run_once
        results[name] = {
            "model": name,
            "params": model.count_params(),
            "flops": profile(model).flops,
            "first_step_s": round(compile_s, 2),
            "step_s": [],
        }
    for r in range(repeats):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            run_once = runners[name]
            t = time.perf_counter()
            for _ in range(steps):
                run_once()
            results[name]["step_s"].append((time.perf_counter() - t) / steps)
    for res in results.values():
        step_s = res.pop("step_s")
        per_step = statistics.median(step_s)
        res["ms_per_step"] = round(per_step * 1000, 1)
        res["images_per_second"] = round(batch / per_step, 1)
        # Every repeat's mean, so the spread of a run (shared CPUs drift) is on record.
        res["repeat_ms_per_step"] = [round(s * 1000, 1) for s in step_s]
        res["min_ms_per_step"] = round(min(step_s) * 1000, 1)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), help="csp:baseline names")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--mixed-precision", choices=("none", "float16", "bfloat16"), default="none")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--peak-memory-of", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    if args.mixed_precision != "none":
        keras.config.set_dtype_policy(f"mixed_{args.mixed_precision}")
    if args.peak_memory_of:
        return _report_peak_memory(args)
    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s)" if gpus else f"CPU ({os.cpu_count()} cores)"
    print(
        f"Training step at {args.size}x{args.size}, batch {args.batch}, on {device}; "
        f"jit_compile={args.jit_compile}, precision={args.mixed_precision}, median of "
        f"{args.repeats} x {args.steps} steps\n",
        flush=True,
    )
    runtime_mb = peak_memory_mb(None, args)
    print(f"load average {os.getloadavg()}; a process with TF and keras_csp loaded peaks at "
          f"{runtime_mb} MB resident\n", flush=True)
    header = (
        f"{'model':<14} {'params':>12} {'GFLOPs':>8} {'ms/step':>9} {'min ms':>8} "
        f"{'images/s':>9} {'speed-up':>9} {'(of mins)':>9} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    report = {"device": device, "args": vars(args), "runtime_peak_mb": runtime_mb, "pairs": []}
    for pair in args.pairs:
        csp, base = pair.split(":")
        res = measure(
            [base, csp], args.size, args.batch, args.steps, args.warmup, args.repeats,
            args.classes, args.jit_compile,
        )
        for name in (base, csp):
            r = res[name]
            r["peak_memory_mb"] = peak_memory_mb(name, args)
            ratio = r["images_per_second"] / res[base]["images_per_second"]
            min_ratio = res[base]["min_ms_per_step"] / r["min_ms_per_step"]
            speedup = "" if name == base else f"x{ratio:.2f}"
            min_speedup = "" if name == base else f"x{min_ratio:.2f}"
            print(
                f"{name:<14} {r['params']:>12,} {r['flops'] / 1e9:>8.2f} {r['ms_per_step']:>9.1f} "
                f"{r['min_ms_per_step']:>8.1f} {r['images_per_second']:>9.1f} {speedup:>9} "
                f"{min_speedup:>9} {r['peak_memory_mb']:>8}",
                flush=True,
            )
        report["pairs"].append({"csp": res[csp], "baseline": res[base]})
        keras.backend.clear_session()
    print(f"\nload average {os.getloadavg()}")
    if args.json:
        tmp = f"{args.json}.tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
