"""Every measurement of `benchmarks.inference`, each a worker process: the matmul peak, model
information and weights, then per model the Keras, peer and TFLite rows."""

from benchmarks.inference_env import REPO
from benchmarks.inference_impls import IMAGENET_MODELS, KERAS_IMPLS, QUANTIZE, TFLITE_IMPLS


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
    return Measurement(args, envs, runner, workdir).run()


class Measurement:
    """One run of `benchmarks.inference`: what the workers return, gathered into `result`."""

    def __init__(self, args, envs, runner, workdir):
        self.args, self.envs, self.runner, self.workdir = args, envs, runner, workdir
        self.result = {"rows": [], "models": {}, "versions": {}, "notes": [], "peak": {}}
        # What every timing worker is told.
        self.base = {"size": args.input_size, "threads": args.threads, "runs": args.runs,
                     "warmup": args.warmup, "batches": args.batches, "head": args.head}
        self.agreement_path = str(workdir / f"agreement_{args.input_size}.npy")

    def run(self):
        self.peak("start")
        self.model_info()
        weights = self.prepare_weights()
        for name in self.args.models:
            print(f"\n== {name}", flush=True)
            self.keras_rows(name, weights.get(name))
            self.keras_hub_rows(name)
            self.timm_rows(name, weights.get(name))
            self.tflite_rows(name, weights.get(name))
        self.peak("end")
        return self.result

    def worker(self, role, task, spec, label):
        """The output of one worker (None if it failed); its library versions are kept."""
        out = self.runner(self.envs[role], task, spec, label)
        if out and out.get("versions"):
            self.result["versions"].update(out["versions"])
        return out

    def add_rows(self, out, name, impl, source, **extra):
        for measured in (out or {}).get("rows", []):
            row = _row(name, impl, source, measured, **extra)
            self.result["rows"].append(row)
            _print_progress(row)

    def peak(self, when):
        spec = {"threads": self.args.threads, "sizes": self.args.peak_sizes,
                "repeats": self.args.peak_repeats}
        out = self.worker("main", "peak", spec, f"fp32 matmul peak ({when})")
        if out:
            self.result["peak"][when] = out
            print(f"    peak {out['gflops']:.1f} GFLOP/s", flush=True)

    def model_info(self):
        for name in self.args.models:
            out = self.worker("main", "info", {"model": name, "size": self.args.input_size,
                                               "head": self.args.head}, f"info {name}")
            self.result["models"][name] = {"flops": out["flops"] if out else None,
                                           "params": out["params"] if out else None}

    def prepare_weights(self):
        """`{model: weights}` as `--weights` asks: "imagenet", a checkpoint path written by a
        worker, or none (random init); each model's `weights` entry says which."""
        args, weights = self.args, {}
        wanted = list(args.models)
        if args.weights == "imagenet":
            imagenet = [m for m in wanted if m in IMAGENET_MODELS]
            weights.update({m: "imagenet" for m in imagenet})
            wanted = [m for m in wanted if m not in imagenet]
            if wanted:
                self.result["notes"].append(f"no ImageNet checkpoint for {', '.join(wanted)}: "
                                            "calibrated random weights instead")
        if args.weights != "random" and wanted:
            weights.update(self.calibrated_weights(wanted))
        for name in args.models:
            self.result["models"][name]["weights"] = describe_weights(args.weights,
                                                                      weights.get(name))
        return weights

    def calibrated_weights(self, wanted):
        """Checkpoints for `wanted` models: timm's format where timm has the model, else Keras'."""
        weights = {}
        timm_wanted = {m: str(self.workdir / f"{m}.safetensors") for m in wanted
                       if m in _peers().TIMM_MODELS and self.envs["timm"]}
        if timm_wanted:
            out = self.runner(self.envs["timm"], "weights-timm",
                              {"models": timm_wanted, "seed": self.args.seed, "repo": str(REPO)},
                              f"timm-format checkpoints for {', '.join(timm_wanted)}")
            if out:
                weights.update(out["written"])
        keras_wanted = {m: str(self.workdir / f"{m}.weights.h5") for m in wanted
                        if m not in weights}
        if keras_wanted:
            out = self.runner(self.envs["main"], "weights-keras",
                              {"models": keras_wanted, "seed": self.args.seed},
                              f"Keras BN-calibrated weights for {', '.join(keras_wanted)}")
            if out:
                weights.update(out["written"])
        return weights

    def keras_rows(self, name, weights):
        for impl in [i for i in self.args.impls if i in KERAS_IMPLS]:
            spec = {**self.base, "model": name, "impl": impl, "weights": weights,
                    "optimized": impl.startswith(("keras-optimized", "keras-frozen")),
                    "frozen": impl == "keras-frozen",
                    "jit_compile": impl.endswith("-xla")}
            out = self.worker("main", "keras", spec, f"{impl} {name}")
            self.add_rows(out, name, impl, "keras_csp", notes=(out or {}).get("notes", []))

    def peer_can_run(self, peer, name, models, missing):
        """Whether `peer` was asked for (`--compare`), has model `name` (in `benchmarks.peers`'
        list `models`) and has its venv; a note says why not (`missing`: why the venv is not)."""
        if peer not in self.args.compare:
            return False
        if name not in getattr(_peers(), models):
            self.result["notes"].append(f"{peer} has no {name}: no {peer} rows for it")
            return False
        if not self.envs[peer]:
            self.result["notes"].append(f"{missing}: no {peer} rows")
            return False
        return True

    def keras_hub_rows(self, name):
        """keras-hub's classifier, graph and XLA, and its TFLite fp32 conversion."""
        if not self.peer_can_run("keras-hub", name, "KERAS_HUB_MODELS",
                                 "keras-hub is not installed (pip install keras-hub)"):
            return
        for impl, jit in (("keras-hub", False), ("keras-hub-xla", True)):
            out = self.worker("keras-hub", "keras-hub",
                              {**self.base, "model": name, "impl": impl, "jit_compile": jit},
                              f"{impl} {name}")
            if out:
                self.result["models"][name]["keras_hub_params"] = out["params"]
                self.result["models"][name]["keras_hub_config"] = out["config"]
            self.add_rows(out, name, impl, "keras-hub")
        if any(i in TFLITE_IMPLS for i in self.args.impls):
            out = self.runner(self.envs["keras-hub"], "export-keras-hub",
                              {**self.base, "model": name, "workdir": str(self.workdir)},
                              f"TFLite fp32 conversion of keras-hub {name}")
            if out:
                files = [{"path": f["path"], "batch": f["batch"], "input": "normal"}
                         for f in out["files"].values()]
                self.lite_rows(name, "keras-hub-tflite-fp32", "keras-hub", files, None)

    def timm_rows(self, name, weights):
        """timm in eager PyTorch, with the timm-format checkpoint when there is one."""
        if not self.peer_can_run("timm", name, "TIMM_MODELS",
                                 "timm reference venv not found (.venv-ref)"):
            return
        checkpoint = weights if str(weights).endswith(".safetensors") else None
        out = self.worker("timm", "timm", {**self.base, "model": name, "weights": checkpoint},
                          f"timm {name} (eager PyTorch)")
        if out:
            self.result["models"][name]["timm_params"] = out["params"]
        self.add_rows(out, name, "timm", "timm")

    def tflite_rows(self, name, weights):
        """keras_csp's TFLite exports (fp32 always, as the agreement reference), then one lite
        worker per format."""
        args = self.args
        formats = {impl.split("-")[1]: QUANTIZE[impl.split("-")[1]]
                   for impl in args.impls if impl in TFLITE_IMPLS}
        if not formats:
            return
        if "fp32" not in formats:  # the float reference of the agreement check
            formats = {"fp32": "none", **formats}
        spec = {**self.base, "model": name, "weights": weights, "formats": formats,
                "workdir": str(self.workdir), "calibration_images": args.calibration_images,
                "agreement_images": args.agreement_images, "agreement_path": self.agreement_path,
                "images": args.images}
        out = self.worker("main", "export", spec, f"TFLite export of {name} ({', '.join(formats)})")
        if not out:
            return
        self.result["models"][name]["tflite_files"] = {
            k: {kk: vv for kk, vv in v.items() if kk != "path"} for k, v in out["files"].items()
        }
        for fmt in formats:
            impl = f"tflite-{fmt}"
            if impl in args.impls:
                files = [_lite_file(out["files"], fmt, batch) for batch in args.batches]
                self.lite_rows(name, impl, "keras_csp", files, self.agreement_path)

    def lite_rows(self, name, impl, source, files, agreement_path):
        envs = self.envs
        spec = {**self.base, "model": name, "impl": impl, "files": files,
                "backend": envs["lite_backend"], "agreement_path": agreement_path}
        out = self.worker("lite", "lite", spec,
                          f"{impl} {name} ({envs['lite_backend'] or 'auto'} runtime)")
        self.add_rows(out, name, impl, source)


def _lite_file(files, fmt, batch):
    """What the lite worker needs of one exported file; batch 1 of a quantized format is checked
    against the fp32 file of the same batch."""
    reference = (files.get(f"fp32/{batch}", {}).get("path")
                 if fmt != "fp32" and batch == 1 else None)
    return {"path": files[f"{fmt}/{batch}"]["path"], "batch": batch, "input": "pixels",
            "reference": reference}


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


def _peers():
    from benchmarks import peers

    return peers
