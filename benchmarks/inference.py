"""Inference latency of keras_csp against its peers, side by side (run by hand, never in CI).

    python -m benchmarks.inference                                   # everything, 256x256
    python -m benchmarks.inference --models cspresnext50 resnext50 cspdarknet53 darknet53 \\
        --compare keras-hub,timm
    python -m benchmarks.inference --models cspresnet50 --input-size 64 --runs 2 --batches 1
    python -m benchmarks.inference --models cspresnext50 --impls none --compare timm --batches 1

For every model and batch size (1 and 8) it measures the median latency over `--runs` runs after
`--warmup` untimed runs of:

* keras_csp in Keras/TF: `keras` (the model as built, `tf.function(model(x, training=False))`),
  `keras-xla` (the same with `jit_compile=True`), and, when `keras_csp.optimize_for_inference`
  exists, `keras-optimized` and `keras-optimized-xla` (its result, graph and XLA), and
  `keras-frozen` (its result through `keras_csp.frozen_function`: weights as graph constants);
* keras_csp's TFLite exports `tflite-fp32`, `tflite-fp16` and full-integer `tflite-int8` (float
  I/O), one file per batch size, run by `keras_csp.lite.LiteModel` under LiteRT (XNNPACK) with
  `--threads` threads. For each file it reports how many nodes XNNPACK delegated and which ops fell
  back; for int8 and fp16 the top-1 agreement with the fp32 export on fixed synthetic images;
* peers (`--compare`, where installed): keras-hub's CSPNetImageClassifier (graph and XLA, and its
  TFLite fp32 conversion under the same runtime), and timm in eager PyTorch (`torch.inference_mode`,
  `--threads` threads);
* the fp32 matmul peak of TensorFlow with `--threads` threads, at the start and at the end.

Every measurement runs in its own process, in the venv that has what it needs (see README.md in
this folder). It prints a table (ms, images/s, achieved GFLOP/s, % of the matmul peak, the load
average when the row started), the CSP/twin latency ratios against their FLOPs ratios, and the
targets of the performance issue (met/missed), and writes `benchmarks/results/inference.json`,
`.png` and `.md`. The load average is printed at the start and the end so a noisy run shows.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.inference_env import REPO, Runner, find_environments
from benchmarks.inference_impls import IMPLS, PEERS
from benchmarks.inference_measure import measure
from benchmarks.inference_report import format_report, machine, markdown, plot
# `find` is unused here: it stays `benchmarks.inference.find`, as before the split into modules.
from benchmarks.inference_targets import derive, find, ratios, targets  # noqa: F401
from keras_csp.files import write_bytes_atomic

RESULTS = REPO / "benchmarks" / "results"
DEFAULT_MODELS = ("cspresnext50", "resnext50", "cspdarknet53", "darknet53")


def _csv(values, allowed, argument):
    items = []
    for value in values:
        items.extend(v.strip() for v in value.split(",") if v.strip())
    if items in (["none"], []):
        return []
    if items == ["all"]:
        return list(allowed)
    bad = [i for i in items if i not in allowed]
    if bad:
        raise SystemExit(f"{argument}: {', '.join(bad)} not allowed; allowed: "
                         f"{', '.join(allowed)}, all, none")
    return items


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--impls", nargs="+", default=["all"],
                        help=f"of ours, comma/space separated: {', '.join(IMPLS)}; all; none")
    parser.add_argument("--compare", nargs="+", default=["all"],
                        help="peers, where installed: keras-hub, timm; all (default); none")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=20,
                        help="timed runs per row (>= 20 for the report)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--head", choices=("probabilities", "logits"), default="probabilities",
                        help="classifier output: probabilities (as built and as exported, default) "
                             "or logits (no softmax anywhere; a diagnostic, see README.md here)")
    parser.add_argument("--weights", choices=("calibrated", "imagenet", "random"),
                        default="calibrated",
                        help="calibrated (default): random weights with pretrained-like BN "
                             "statistics; imagenet: the published checkpoints (a download, or "
                             "the cache / $KERAS_CSP_WEIGHTS_URL), the only setting under which "
                             "int8 top-1 agreement means much; random: plain random init")
    parser.add_argument("--images", help="folder of images for int8 calibration and the "
                        "agreement check (default: synthetic shapes); center-cropped to size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--agreement-images", type=int, default=100)
    parser.add_argument("--peak-sizes", nargs="+", type=int, default=[1024, 2048, 3072])
    parser.add_argument("--peak-repeats", type=int, default=8)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per worker")
    parser.add_argument("--python", help="interpreter with keras_csp + TF (default: this one)")
    parser.add_argument("--ref-python", help="interpreter with torch + timm (default .venv-ref)")
    parser.add_argument("--lite-python", help="interpreter for the TFLite rows (default: LiteRT)")
    parser.add_argument("--workdir", help="keep exports, checkpoints and worker logs here")
    parser.add_argument("--output", default=str(RESULTS / "inference.json"))
    parser.add_argument("--markdown", action="store_true", help="also print the markdown table")
    args = parser.parse_args(argv)
    args.impls = _csv(args.impls, IMPLS, "--impls")
    args.compare = _csv(args.compare, PEERS, "--compare")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.runs < 20:
        print(f"warning: --runs {args.runs} < 20: fine for a smoke run, not for the report")
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}"
          f"  ({os.cpu_count()} cores)", flush=True)
    envs, env_notes = find_environments(args)
    for role in ("main", "lite", "timm", "keras-hub"):
        print(f"  {role:<9} {envs[role] or 'not available'}"
              + (f" (backend {envs['lite_backend']})" if role == "lite" else ""), flush=True)

    workdir_obj = None
    if args.workdir:
        workdir = Path(args.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir_obj = tempfile.TemporaryDirectory(prefix="keras_csp_inference_")
        workdir = Path(workdir_obj.name)
    runner = Runner(workdir, args.timeout)
    try:
        result = measure(args, envs, runner, workdir)
    finally:
        if workdir_obj is not None and runner.errors:
            _keep_failed_logs(runner.errors)
    load_end = os.getloadavg()
    result.update({
        "date": datetime.date.today().isoformat(),
        "elapsed_s": time.time() - started,
        "machine": machine(),
        "environments": envs,
        "load_average": {"start": load_start, "end": load_end},
        "args": {k: v for k, v in vars(args).items()},
        "errors": runner.errors,
    })
    result["notes"] = env_notes + list(dict.fromkeys(result["notes"]))
    derive(result)
    result["ratios"] = ratios(result)
    result["targets"] = targets(result)

    print(format_report(result))
    print(f"\nload average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} "
          f"(at start {load_start[0]:.2f}); {result['elapsed_s'] / 60:.1f} min")
    write_outputs(result, Path(args.output), args.markdown)
    if workdir_obj is not None:
        workdir_obj.cleanup()
    return 1 if runner.errors else 0


def _keep_failed_logs(errors):
    """Copies the logs of failed workers out of the temporary work folder (it is removed)."""
    keep = Path(tempfile.mkdtemp(prefix="keras_csp_inference_logs_"))
    for error in errors:
        shutil.copy(error["log"], keep)
        error["log"] = str(keep / Path(error["log"]).name)


def write_outputs(result, output, print_markdown=False):
    """The JSON, the markdown and (with rows) the plot next to `output`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(output, json.dumps(result, indent=1, default=str).encode())
    md = markdown(result)
    write_bytes_atomic(output.with_suffix(".md"), md.encode())
    written = [str(output), str(output.with_suffix(".md"))]
    if result["rows"]:
        try:
            plot(result, output.with_suffix(".png"))
            written.append(str(output.with_suffix(".png")))
        except Exception as e:  # noqa: BLE001 - the JSON and markdown are written already
            print(f"no plot: {type(e).__name__}: {e}")
    if print_markdown:
        print("\n" + md)
    print("wrote " + ", ".join(written))


if __name__ == "__main__":
    sys.exit(main())
