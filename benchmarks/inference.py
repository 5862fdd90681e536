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
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_MODELS = ("cspresnext50", "resnext50", "cspdarknet53", "darknet53")
KERAS_IMPLS = ("keras", "keras-xla", "keras-optimized", "keras-optimized-xla", "keras-frozen")
TFLITE_IMPLS = ("tflite-fp32", "tflite-fp16", "tflite-int8")
IMPLS = KERAS_IMPLS + TFLITE_IMPLS
PEERS = ("keras-hub", "timm")
QUANTIZE = {"fp32": "none", "fp16": "fp16", "int8": "int8"}
# Architectures with a published checkpoint (keras_csp.weights.registry; weights="imagenet").
IMAGENET_MODELS = ("cspresnet50", "cspresnext50", "cspdarknet53", "darknet53")
# Impl names of the peers' rows.
PEER_IMPLS = ("keras-hub", "keras-hub-xla", "keras-hub-tflite-fp32", "timm")

# Targets of the performance issue (issue 8, item 1).
TARGET_CSPRESNEXT_PEAK = 70.0  # % of peak, Keras, batch 1
TARGET_OTHER_PEAK = 75.0  # % of peak, Keras, every other backbone, batch 1 and 8
TARGET_KERAS_HUB_SPEEDUP = 1.8
TARGET_TFLITE_PEAK = 85.0  # % of peak, TFLite fp32 (XNNPACK), every backbone
TARGET_INT8_MS = 13.0  # CSPResNeXt50 int8, batch 1
TARGET_AGREEMENT = 0.99
TARGET_RATIO_TOLERANCE = 0.05
# A row whose 90th-percentile run took this many times its fastest run is flagged as noisy.
NOISY_SPREAD = 1.5


def twin_of(name):
    """The non-CSP twin of a CSP model name ("cspresnext50" -> "resnext50"), or None."""
    return name[3:] if name.startswith("csp") else None


# ------------------------------------------------------------------------------- environments


def _python_ok(python, modules):
    if not python or not Path(python).exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", f"import {', '.join(modules)}"], cwd=REPO, capture_output=True,
        env=_env(), timeout=300,
    )
    return probe.returncode == 0


def _env():
    env = dict(os.environ)
    paths = [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


def find_environments(args):
    """{role: python or None} and notes on what was chosen."""
    main = args.python or sys.executable
    ref = (args.ref_python or os.environ.get("KERAS_CSP_REFERENCE_PYTHON")
           or REPO / ".venv-ref/bin/python")
    ref = Path(ref) if Path(ref).is_absolute() else REPO / ref
    envs = {"main": str(main)}
    notes = []
    envs["timm"] = str(ref) if _python_ok(ref, ["torch", "timm", "safetensors"]) else None
    envs["keras-hub"] = str(main) if _python_ok(main, ["keras_hub"]) else None
    if args.lite_python:
        envs["lite"], envs["lite_backend"] = str(args.lite_python), None
    elif _python_ok(main, ["ai_edge_litert.interpreter"]):
        envs["lite"], envs["lite_backend"] = str(main), "litert"
    elif _python_ok(REPO / ".venv-device-litert/bin/python",
                    ["ai_edge_litert.interpreter", "numpy"]):
        envs["lite"], envs["lite_backend"] = str(REPO / ".venv-device-litert/bin/python"), "litert"
    else:
        envs["lite"], envs["lite_backend"] = str(main), None
        notes.append("no ai-edge-litert found: TFLite rows use keras_csp.lite's fallback runtime")
    return envs, notes


# ------------------------------------------------------------------------------------ workers


class Runner:
    """Starts workers, keeps their logs in the work folder, collects failures instead of dying."""

    def __init__(self, workdir, timeout):
        self.workdir = Path(workdir)
        self.timeout = timeout
        self.count = 0
        self.errors = []

    def __call__(self, python, task, spec, label):
        self.count += 1
        stem = self.workdir / f"{self.count:03d}_{task}"
        spec_path, out_path, log_path = (
            Path(f"{stem}.{ext}") for ext in ("spec.json", "out.json", "log")
        )
        spec_path.write_text(json.dumps(spec))
        print(f"  [{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {label} ...",
              flush=True)
        start = time.perf_counter()
        with open(log_path, "w") as log:
            try:
                proc = subprocess.run(
                    [python, "-m", "benchmarks.inference_worker", task, str(spec_path),
                     str(out_path)],
                    cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                    timeout=self.timeout,
                )
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        elapsed = time.perf_counter() - start
        if code != 0 or not out_path.exists():
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            message = (f"{label}: worker {task} failed ({code}) after {elapsed:.0f} s; "
                       f"log {log_path}")
            print("    FAILED: " + message + "\n      " + "\n      ".join(tail), flush=True)
            self.errors.append({"what": label, "task": task, "code": str(code),
                                "log": str(log_path), "tail": tail})
            return None
        result = json.loads(out_path.read_text())
        if result.get("skipped"):
            print(f"    skipped: {result['skipped']}", flush=True)
        return result


# ---------------------------------------------------------------------------------- the run


def _row(model, impl, source, measured, **extra):
    row = {"model": model, "impl": impl, "source": source}
    row.update(measured)
    row.update(extra)
    return row


def _print_progress(row):
    print(f"    {row['impl']:<22} batch {row['batch']}: {row['ms']:9.2f} ms "
          f"(min {row['min_ms']:.2f}, p90 {row['p90_ms']:.2f})", flush=True)


def measure(args, envs, runner, workdir):
    """Runs every worker; returns the result dict (rows without derived metrics)."""
    result = {"rows": [], "models": {}, "versions": {}, "notes": [], "peak": {}}
    versions = result["versions"]
    base = {"size": args.input_size, "threads": args.threads, "runs": args.runs,
            "warmup": args.warmup, "batches": args.batches, "head": args.head}

    def merge_versions(out):
        if out and out.get("versions"):
            versions.update(out["versions"])

    peak_spec = {"threads": args.threads, "sizes": args.peak_sizes, "repeats": args.peak_repeats}
    out = runner(envs["main"], "peak", peak_spec, "fp32 matmul peak (start)")
    if out:
        result["peak"]["start"] = out
        merge_versions(out)
        print(f"    peak {out['gflops']:.1f} GFLOP/s", flush=True)

    # Model info and weights.
    for name in args.models:
        out = runner(envs["main"], "info",
                     {"model": name, "size": args.input_size, "head": args.head}, f"info {name}")
        result["models"][name] = {"flops": out["flops"] if out else None,
                                  "params": out["params"] if out else None}
        merge_versions(out)
    weights = {}
    wanted = list(args.models)
    if args.weights == "imagenet":
        imagenet = [m for m in wanted if m in IMAGENET_MODELS]
        weights.update({m: "imagenet" for m in imagenet})
        wanted = [m for m in wanted if m not in imagenet]
        if wanted:
            result["notes"].append(f"no ImageNet checkpoint for {', '.join(wanted)}: calibrated "
                                   "random weights instead")
    if args.weights != "random" and wanted:
        timm_wanted = {m: str(workdir / f"{m}.safetensors") for m in wanted
                       if m in _peers().TIMM_MODELS and envs["timm"]}
        if timm_wanted:
            out = runner(envs["timm"], "weights-timm",
                         {"models": timm_wanted, "seed": args.seed, "repo": str(REPO)},
                         f"timm-format checkpoints for {', '.join(timm_wanted)}")
            if out:
                weights.update(out["written"])
        keras_wanted = {m: str(workdir / f"{m}.weights.h5") for m in wanted if m not in weights}
        if keras_wanted:
            out = runner(envs["main"], "weights-keras", {"models": keras_wanted, "seed": args.seed},
                         f"Keras BN-calibrated weights for {', '.join(keras_wanted)}")
            if out:
                weights.update(out["written"])
    for name in args.models:
        result["models"][name]["weights"] = describe_weights(args.weights, weights.get(name))
    agreement_path = str(workdir / f"agreement_{args.input_size}.npy")
    for name in args.models:
        print(f"\n== {name}", flush=True)
        for impl in [i for i in args.impls if i in KERAS_IMPLS]:
            spec = {**base, "model": name, "impl": impl, "weights": weights.get(name),
                    "optimized": impl.startswith(("keras-optimized", "keras-frozen")),
                    "frozen": impl == "keras-frozen",
                    "jit_compile": impl.endswith("-xla")}
            out = runner(envs["main"], "keras", spec, f"{impl} {name}")
            merge_versions(out)
            for measured in (out or {}).get("rows", []):
                row = _row(name, impl, "keras_csp", measured, notes=out.get("notes", []))
                result["rows"].append(row)
                _print_progress(row)

        if "keras-hub" in args.compare and name in _peers().KERAS_HUB_MODELS:
            if not envs["keras-hub"]:
                result["notes"].append(
                    "keras-hub is not installed (pip install keras-hub): no keras-hub rows")
            else:
                for impl, jit in (("keras-hub", False), ("keras-hub-xla", True)):
                    out = runner(envs["keras-hub"], "keras-hub",
                                 {**base, "model": name, "impl": impl, "jit_compile": jit},
                                 f"{impl} {name}")
                    merge_versions(out)
                    if out:
                        result["models"][name]["keras_hub_params"] = out["params"]
                        result["models"][name]["keras_hub_config"] = out["config"]
                    for measured in (out or {}).get("rows", []):
                        row = _row(name, impl, "keras-hub", measured)
                        result["rows"].append(row)
                        _print_progress(row)
                if any(i in TFLITE_IMPLS for i in args.impls):
                    out = runner(envs["keras-hub"], "export-keras-hub",
                                 {**base, "model": name, "workdir": str(workdir)},
                                 f"TFLite fp32 conversion of keras-hub {name}")
                    if out:
                        files = [{"path": f["path"], "batch": f["batch"], "input": "normal"}
                                 for f in out["files"].values()]
                        _lite(runner, envs, base, name, "keras-hub-tflite-fp32", "keras-hub",
                              files, None, result)
        elif "keras-hub" in args.compare:
            result["notes"].append(f"keras-hub has no {name}: no keras-hub rows for it")

        if "timm" in args.compare and name in _peers().TIMM_MODELS:
            if not envs["timm"]:
                result["notes"].append("timm reference venv not found (.venv-ref): no timm rows")
            else:
                out = runner(envs["timm"], "timm",
                             {**base, "model": name, "weights": weights.get(name)
                              if str(weights.get(name)).endswith(".safetensors") else None},
                             f"timm {name} (eager PyTorch)")
                merge_versions(out)
                if out:
                    result["models"][name]["timm_params"] = out["params"]
                for measured in (out or {}).get("rows", []):
                    row = _row(name, "timm", "timm", measured)
                    result["rows"].append(row)
                    _print_progress(row)
        elif "timm" in args.compare:
            result["notes"].append(f"timm has no {name}: no timm rows for it")

        formats = {impl.split("-")[1]: QUANTIZE[impl.split("-")[1]]
                   for impl in args.impls if impl in TFLITE_IMPLS}
        if formats:
            if "fp32" not in formats:  # the float reference of the agreement check
                formats = {"fp32": "none", **formats}
            spec = {**base, "model": name, "weights": weights.get(name), "formats": formats,
                    "workdir": str(workdir), "calibration_images": args.calibration_images,
                    "agreement_images": args.agreement_images, "agreement_path": agreement_path,
                    "images": args.images}
            out = runner(envs["main"], "export", spec,
                         f"TFLite export of {name} ({', '.join(formats)})")
            merge_versions(out)
            if out:
                result["models"][name]["tflite_files"] = {
                    k: {kk: vv for kk, vv in v.items() if kk != "path"}
                    for k, v in out["files"].items()
                }
                for fmt in formats:
                    impl = f"tflite-{fmt}"
                    if impl not in args.impls:
                        continue
                    files = []
                    for batch in args.batches:
                        f = out["files"][f"{fmt}/{batch}"]
                        reference = (out["files"].get(f"fp32/{batch}", {}).get("path")
                                     if fmt != "fp32" and batch == 1 else None)
                        files.append({"path": f["path"], "batch": batch, "input": "pixels",
                                      "reference": reference})
                    _lite(runner, envs, base, name, impl, "keras_csp", files, agreement_path,
                          result)

    out = runner(envs["main"], "peak", peak_spec, "fp32 matmul peak (end)")
    if out:
        result["peak"]["end"] = out
        print(f"    peak {out['gflops']:.1f} GFLOP/s", flush=True)
    return result


def describe_weights(mode, weights):
    if weights == "imagenet":
        return "imagenet: the published timm checkpoint (keras_csp weights='imagenet')"
    if mode == "random":
        return "random init (--weights random)"
    if weights is None:
        return "random init (weight preparation failed)"
    if weights.endswith(".safetensors"):
        return ("calibrated: a timm checkpoint with random BN affine parameters, BN statistics "
                "measured on random data and perturbed, and a random head "
                "(tests/reference/timm_reference.py randomize), loaded with weights=path")
    return ("calibrated: the same recipe applied in Keras (BN statistics of random data, "
            "perturbed; random head), saved as .weights.h5 and loaded with weights=path")


def _lite(runner, envs, base, name, impl, source, files, agreement_path, result):
    spec = {**base, "model": name, "impl": impl, "files": files, "backend": envs["lite_backend"],
            "agreement_path": agreement_path}
    out = runner(envs["lite"], "lite", spec,
                 f"{impl} {name} ({envs['lite_backend'] or 'auto'} runtime)")
    if out and out.get("versions"):
        result["versions"].update(out["versions"])
    for measured in (out or {}).get("rows", []):
        row = _row(name, impl, source, measured)
        result["rows"].append(row)
        _print_progress(row)


def _peers():
    from benchmarks import peers

    return peers


# ------------------------------------------------------------------------------ derived numbers


def derive(result):
    """Adds images/s, GFLOP/s and % of peak to every row; sets result['peak_gflops']."""
    peaks = [p["gflops"] for p in result["peak"].values() if p]
    peak = max(peaks) if peaks else None
    result["peak_gflops"] = peak
    for row in result["rows"]:
        flops = result["models"].get(row["model"], {}).get("flops")
        seconds = row["ms"] / 1e3
        row["images_per_s"] = row["batch"] / seconds
        row["gflops_per_s"] = flops * row["batch"] / seconds / 1e9 if flops else None
        row["pct_peak"] = 100 * row["gflops_per_s"] / peak if flops and peak else None
    return result


def find(rows, model, impl, batch):
    for row in rows:
        if row["model"] == model and row["impl"] == impl and row["batch"] == batch:
            return row
    return None


def ratios(result):
    """CSP/twin latency ratio against the FLOPs ratio, per implementation of ours and batch."""
    models = result["models"]
    out = []
    for csp in models:
        twin = twin_of(csp)
        if twin not in models or not models[csp].get("flops") or not models[twin].get("flops"):
            continue
        flops_ratio = models[csp]["flops"] / models[twin]["flops"]
        for impl in IMPLS:
            for batch in sorted({r["batch"] for r in result["rows"]}):
                a = find(result["rows"], csp, impl, batch)
                b = find(result["rows"], twin, impl, batch)
                if a and b:
                    latency_ratio = a["ms"] / b["ms"]
                    out.append({"csp": csp, "twin": twin, "impl": impl, "batch": batch,
                                "flops_ratio": flops_ratio, "latency_ratio": latency_ratio,
                                "difference": latency_ratio - flops_ratio,
                                "met": abs(latency_ratio - flops_ratio) <= TARGET_RATIO_TOLERANCE})
    return out


def _fmt_pct(value):
    return "n/a" if value is None else f"{value:.0f}%"


def targets(result):
    """[(target text, verdict 'met'/'missed'/'n/a', detail)] for the targets of the issue."""
    rows = result["rows"]
    batches = sorted(set(result["args"].get("batches") or ()) | {r["batch"] for r in rows})
    models = list(result["models"])
    keras_impls = [i for i in KERAS_IMPLS if any(r["impl"] == i for r in rows)]
    out = []

    def best_of(candidates, key, better):
        """candidates: [(impl, value)] (value None = missing); verdict by the best one."""
        present = [(i, v) for i, v in candidates if v is not None]
        if not present:
            return "n/a", "not measured"
        detail = ", ".join(f"{i} {key(v)}" for i, v in present)
        winners = [i for i, v in present if better(v)]
        return ("met", f"{detail} (met by {winners[0]})") if winners else ("missed", detail)

    name = "cspresnext50"
    if name in models:
        for batch in [b for b in batches if b == 1]:
            pct = [(i, (find(rows, name, i, batch) or {}).get("pct_peak")) for i in keras_impls]
            out.append((f"Keras {name} batch {batch} >= {TARGET_CSPRESNEXT_PEAK:.0f}% of peak",
                        *best_of(pct, _fmt_pct, lambda v: v >= TARGET_CSPRESNEXT_PEAK)))
            speedups = []
            for impl in keras_impls:
                ours = find(rows, name, impl, batch)
                peer = "keras-hub-xla" if impl.endswith("xla") else "keras-hub"
                hub = find(rows, name, peer, batch)
                speedups.append((impl, hub["ms"] / ours["ms"] if ours and hub else None))
            out.append((f"Keras {name} batch {batch} >= {TARGET_KERAS_HUB_SPEEDUP}x faster than "
                        "keras-hub (graph vs graph, XLA vs XLA)",
                        *best_of(speedups, lambda v: f"{v:.2f}x",
                                 lambda v: v >= TARGET_KERAS_HUB_SPEEDUP)))
            timm = find(rows, name, "timm", batch)
            vs_timm = [(i, timm["ms"] / find(rows, name, i, batch)["ms"]
                        if timm and find(rows, name, i, batch) else None) for i in keras_impls]
            out.append((f"Keras {name} batch {batch} faster than timm (eager PyTorch)",
                        *best_of(vs_timm, lambda v: f"{v:.2f}x", lambda v: v > 1.0)))
    for model in models:
        for batch in batches:
            if model == name and batch == 1:
                continue
            pct = [(i, (find(rows, model, i, batch) or {}).get("pct_peak")) for i in keras_impls]
            out.append((f"Keras {model} batch {batch} >= {TARGET_OTHER_PEAK:.0f}% of peak",
                        *best_of(pct, _fmt_pct, lambda v: v >= TARGET_OTHER_PEAK)))
    for model in models:
        for batch in batches:
            row = find(rows, model, "tflite-fp32", batch)
            out.append((f"TFLite fp32 {model} batch {batch} >= {TARGET_TFLITE_PEAK:.0f}% of peak",
                        *best_of([("tflite-fp32", row and row["pct_peak"])], _fmt_pct,
                                 lambda v: v >= TARGET_TFLITE_PEAK)))
    if name in models:
        for batch in batches:
            ours = find(rows, name, "tflite-fp32", batch)
            hub = find(rows, name, "keras-hub-tflite-fp32", batch)
            pair = (ours["ms"], hub["ms"]) if ours and hub else None
            out.append((f"TFLite fp32 {name} batch {batch} no slower than keras-hub's conversion",
                        *best_of([("tflite-fp32", pair)],
                                 lambda v: f"{v[0]:.1f} ms vs {v[1]:.1f} ms",
                                 lambda v: v[0] <= v[1])))
    for model in models:
        for batch in batches:
            row = find(rows, model, "tflite-int8", batch)
            cov = row.get("xnnpack") if row else None
            if cov is None:
                out.append((f"TFLite int8 {model} batch {batch} fully delegated to XNNPACK", "n/a",
                            "not measured"))
            else:
                fallback = ", ".join(f"{k} x{v}" for k, v in cov["fallback_ops"].items()) or "none"
                out.append((f"TFLite int8 {model} batch {batch} fully delegated to XNNPACK",
                            "met" if cov["full"] else "missed",
                            f"{cov['delegated']}/{cov['nodes']} nodes, {cov['partitions']} "
                            f"partition(s), fallback: {fallback}"))
    if name in models:
        row = find(rows, name, "tflite-int8", 1)
        out.append((f"TFLite int8 {name} batch 1 <= {TARGET_INT8_MS:.0f} ms",
                    *best_of([("tflite-int8", row and row["ms"])], lambda v: f"{v:.1f} ms",
                             lambda v: v <= TARGET_INT8_MS)))
    for model in models:
        row = find(rows, model, "tflite-int8", 1)
        agreement = row.get("agreement") if row else None
        kind = result["models"][model].get("weights", "?").split(":")[0]
        caveat = "" if kind == "imagenet" else "; only meaningful with --weights imagenet"
        out.append((f"TFLite int8 {model} top-1 agreement with float >= {TARGET_AGREEMENT:.0%}",
                    *best_of([("tflite-int8", agreement)],
                             lambda v: f"{v['top1_agreement']:.1%} of {v['images']} images "
                                       f"(tie-aware {v['tie_aware_agreement']:.1%}, "
                                       f"{v['distinct_float_top1']} distinct float top-1 classes; "
                                       f"{kind} weights{caveat})",
                             lambda v: v["top1_agreement"] >= TARGET_AGREEMENT)))
    by_pair = {}
    for r in ratios(result):
        by_pair.setdefault((r["csp"], r["twin"], r["impl"]), []).append(r)
    for (csp, twin, impl), items in by_pair.items():
        detail = ", ".join(f"batch {r['batch']}: {r['latency_ratio']:.2f} vs FLOPs "
                           f"{r['flops_ratio']:.2f} ({r['difference']:+.2f})" for r in items)
        out.append((f"{impl} latency({csp})/latency({twin}) within {TARGET_RATIO_TOLERANCE} of "
                    "the FLOPs ratio", "met" if all(r["met"] for r in items) else "missed", detail))
    return out


# ------------------------------------------------------------------------------------ output


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


TABLE_COLUMNS = ("model", "impl", "batch", "ms", "img/s", "GFLOP/s", "% peak", "load", "notes")


def _notes(row):
    notes = []
    if row.get("backend"):
        notes.append(row["backend"])
    cov = row.get("xnnpack")
    if cov:
        notes.append(f"XNNPACK {cov['delegated']}/{cov['nodes']}"
                     + ("" if cov["partitions"] == 1 else f" in {cov['partitions']} parts")
                     + ("" if not cov["fallback_ops"] else
                        " (fallback " + ", ".join(cov["fallback_ops"]) + ")"))
    if row.get("agreement"):
        notes.append(f"top-1 {row['agreement']['top1_agreement']:.0%} vs fp32")
    if row.get("min_ms") and row["p90_ms"] / row["min_ms"] > NOISY_SPREAD:
        notes.append(f"noisy: p90/min x{row['p90_ms'] / row['min_ms']:.1f}")
    if row.get("first_call_s", 0) > 5:
        notes.append(f"1st call {row['first_call_s']:.0f} s")
    return "; ".join(notes)


def table_rows(result):
    out = []
    for r in result["rows"]:
        out.append([r["model"], r["impl"], str(r["batch"]), f"{r['ms']:.2f}",
                    f"{r['images_per_s']:.1f}",
                    "n/a" if r["gflops_per_s"] is None else f"{r['gflops_per_s']:.1f}",
                    _fmt_pct(r["pct_peak"]), f"{r['load1']:.2f}", _notes(r)])
    return out


def format_table(result):
    rows = table_rows(result)
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(TABLE_COLUMNS)]
    lines = ["  ".join(c.ljust(w) if i in (0, 1, 8) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(TABLE_COLUMNS, widths))).rstrip()]
    for r in rows:
        lines.append("  ".join(v.ljust(w) if i in (0, 1, 8) else v.rjust(w)
                               for i, (v, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def format_report(result):
    lines = [f"\nmatmul peak (fp32, TF, {result['args']['threads']} threads): "
             + ", ".join(f"{k} {v['gflops']:.1f}" for k, v in result["peak"].items() if v)
             + f" GFLOP/s; % of peak uses {result['peak_gflops'] or float('nan'):.1f}"]
    lines.append("models: " + "; ".join(
        f"{m} {v['flops'] / 1e9:.2f} GFLOPs, {v['params'] / 1e6:.2f}M params"
        + (f" (keras-hub {v['keras_hub_params'] / 1e6:.2f}M)" if v.get("keras_hub_params") else "")
        + (f" (timm {v['timm_params'] / 1e6:.2f}M)" if v.get("timm_params") else "")
        for m, v in result["models"].items() if v.get("flops")))
    lines.append("")
    lines.append(format_table(result))
    if result["ratios"]:
        lines.append("\nCSP / twin: latency ratio vs FLOPs ratio")
        for r in result["ratios"]:
            lines.append(f"  {r['csp']}/{r['twin']} {r['impl']:<20} batch {r['batch']}: latency "
                         f"{r['latency_ratio']:.3f}  FLOPs {r['flops_ratio']:.3f}  "
                         f"({r['difference']:+.3f}, {'met' if r['met'] else 'missed'})")
    lines.append("\ntargets")
    for text, verdict, detail in result["targets"]:
        lines.append(f"  [{verdict:^6}] {text}: {detail}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    for error in result["errors"]:
        lines.append(f"error: {error['what']} (log {error['log']})")
    return "\n".join(lines)


def markdown(result):
    m = result["machine"]
    load = result["load_average"]
    v = result["versions"]
    a = result["args"]
    versions = ", ".join(f"{k} {v[k]}" for k in sorted(v))
    out = [
        f"Inference latency (`{' '.join(['python -m benchmarks.inference'] + a['argv'])}`): "
        f"{result['date']}, {m['cpu']}, {m['cores']} cores, {a['threads']} threads, "
        f"{a['input_size']}x{a['input_size']}, median of {a['runs']} runs after {a['warmup']} "
        f"warm-up runs; load average {load['start'][0]:.2f} at the start, {load['end'][0]:.2f} at "
        f"the end; fp32 matmul peak {result['peak_gflops'] or float('nan'):.1f} GFLOP/s "
        f"(TensorFlow, {a['threads']} threads). Versions: {versions}.",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
    ]
    out.extend("| " + " | ".join(r) + " |" for r in table_rows(result))
    if result["targets"]:
        out += ["", "| target | verdict | measured |", "|---|---|---|"]
        out.extend(f"| {t} | {v_} | {d} |" for t, v_, d in result["targets"])
    return "\n".join(out) + "\n"


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    batches = sorted({r["batch"] for r in rows})
    impls = [i for i in IMPLS + PEER_IMPLS if any(r["impl"] == i for r in rows)]
    models = list(result["models"])
    fig, axes = plt.subplots(2, len(batches), figsize=(6 + 3 * len(models), 8), squeeze=False)
    width = 0.8 / max(1, len(impls))
    colors = plt.get_cmap("tab20")
    for col, batch in enumerate(batches):
        for row_index, (key, label) in enumerate((("ms", "median latency (ms)"),
                                                   ("pct_peak", "% of fp32 matmul peak"))):
            ax = axes[row_index][col]
            for k, impl in enumerate(impls):
                xs, ys = [], []
                for j, model in enumerate(models):
                    r = find(rows, model, impl, batch)
                    if r and r.get(key) is not None:
                        xs.append(j + k * width)
                        ys.append(r[key])
                ax.bar(xs, ys, width, label=impl, color=colors(k % 20))
            ax.set_xticks([j + width * (len(impls) - 1) / 2 for j in range(len(models))])
            ax.set_xticklabels(models)
            ax.set_ylabel(label)
            ax.set_title(f"batch {batch}")
            if key == "pct_peak":
                for level in (TARGET_CSPRESNEXT_PEAK, TARGET_OTHER_PEAK, TARGET_TFLITE_PEAK):
                    ax.axhline(level, color="grey", linewidth=0.6, linestyle="--")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"keras_csp inference, {result['args']['input_size']}px, "
                 f"{result['args']['threads']} threads, {result['date']}")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_atomic(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -------------------------------------------------------------------------------------- main


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
            # Keep the logs of failed workers.
            keep = Path(tempfile.mkdtemp(prefix="keras_csp_inference_logs_"))
            for error in runner.errors:
                shutil.copy(error["log"], keep)
                error["log"] = str(keep / Path(error["log"]).name)
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

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(output, json.dumps(result, indent=1, default=str))
    md = markdown(result)
    write_atomic(output.with_suffix(".md"), md)
    written = [str(output), str(output.with_suffix(".md"))]
    if result["rows"]:
        try:
            plot(result, output.with_suffix(".png"))
            written.append(str(output.with_suffix(".png")))
        except Exception as e:  # noqa: BLE001 - the JSON and markdown are written already
            print(f"no plot: {type(e).__name__}: {e}")
    if args.markdown:
        print("\n" + md)
    print("wrote " + ", ".join(written))
    if workdir_obj is not None:
        workdir_obj.cleanup()
    return 1 if runner.errors else 0


if __name__ == "__main__":
    sys.exit(main())
