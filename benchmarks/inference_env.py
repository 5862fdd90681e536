"""Where `benchmarks.inference` runs its workers: the venv of each role, and a runner that starts
one worker process per measurement and keeps its log."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
