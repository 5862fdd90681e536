"""One measurement of `benchmarks.inference`, run in its own process (and venv).

    python -m benchmarks.inference_worker TASK SPEC.json OUT.json

`benchmarks.inference` writes SPEC.json, starts this module with the interpreter of the venv that
has what TASK needs, and reads OUT.json. Tasks:

    info             FLOPs and parameters of a keras_csp model (main venv)
    peak             fp32 matmul GFLOP/s in TensorFlow, best of several runs (main venv)
    weights-timm     timm checkpoints with pretrained-like BatchNorm statistics (.venv-ref)
    weights-keras    the same for models timm lacks, made in Keras (main venv)
    keras            keras_csp in TF: graph / XLA / optimize_for_inference (main venv)
    keras-hub        keras-hub's CSPNetImageClassifier: graph / XLA (main venv + keras-hub)
    export           keras_csp TFLite fp32/fp16/int8 files (main venv)
    export-keras-hub keras-hub's classifier as TFLite fp32 (main venv + keras-hub)
    lite             latency, XNNPACK coverage and top-1 agreement of .tflite files (LiteRT venv)
    timm             timm, eager PyTorch (.venv-ref)

Only the standard library (and benchmarks/keras_csp modules that import nothing else at module
level, such as `keras_csp.timing`) is imported at module level: each venv has a different set of
packages.
Progress goes to stderr, which the driver keeps in a log file.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# TF-free, standard library only underneath: importable in every venv.
from benchmarks import calibrated_weights  # noqa: E402
from benchmarks.inference_checks import agreement, xnnpack_coverage  # noqa: E402
from keras_csp.files import write_bytes_atomic  # noqa: E402
from keras_csp.timing import summary, time_calls  # noqa: E402


def log(message):
    print(message, file=sys.stderr, flush=True)


def time_runs(fn, runs, warmup):
    """Runs `fn` `warmup` times untimed, then `runs` times; per-run milliseconds and a summary."""
    times = time_calls(fn, runs=runs, warmup=warmup)
    return {**summary(times), "times_ms": [round(t, 3) for t in times], "warmup": warmup}


def _load1():
    return os.getloadavg()[0]


def _tf_threads(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf


def _activation(spec):
    """The classifier activation of `--head`: "softmax" (probabilities) or None (logits)."""
    return None if spec.get("head") == "logits" else "softmax"


def _tf_versions():
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__}


# ------------------------------------------------------------------------------------- tasks


def task_info(spec):
    import keras_csp

    size = spec["size"]
    profile = keras_csp.profile(spec["model"], (size, size, 3),
                                classifier_activation=_activation(spec))
    return {"flops": int(profile.flops), "params": int(profile.params), "versions": _tf_versions()}


def task_peak(spec):
    tf = _tf_threads(spec["threads"])
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    per_size = {}
    for n in spec["sizes"]:
        a = tf.random.normal((n, n))
        b = tf.random.normal((n, n))
        # the best of `repeats` timed products, after one untimed (tracing) call
        best_ms = min(time_calls(lambda: matmul(a, b).numpy(), runs=spec["repeats"], warmup=1))
        per_size[str(n)] = 2 * n**3 / (best_ms / 1e3) / 1e9
        log(f"matmul {n}x{n}: {per_size[str(n)]:.1f} GFLOP/s")
    return {"gflops": max(per_size.values()), "per_size": per_size, "load1": _load1(),
            "versions": _tf_versions()}


def task_weights_timm(spec):
    """timm checkpoints with pretrained-like BatchNorm statistics (see calibrated_weights)."""
    written = calibrated_weights.timm_checkpoints(spec["models"], spec["seed"], spec["repo"], log)
    return {"written": written}


def task_weights_keras(spec):
    """The same for models timm lacks, as Keras `.weights.h5` files."""
    return {"written": calibrated_weights.keras_weights(spec["models"], spec["seed"], log)}


def _keras_input(size, batch, seed=0):
    import numpy as np

    # keras_csp models take preprocessed images (`keras_csp.preprocess_input`): ~N(0, 1).
    return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype("float32")


def _time_keras(predict, spec, label):
    import numpy as np

    tf = _tf_threads(spec["threads"])
    rows = []
    for batch in spec["batches"]:
        x = tf.constant(_keras_input(spec["size"], batch))
        log(f"{label} batch {batch}: compiling and warming up")
        load1 = _load1()
        start = time.perf_counter()
        np.asarray(predict(x))
        first_s = time.perf_counter() - start
        result = time_runs(lambda: np.asarray(predict(x)), spec["runs"], spec["warmup"])
        rows.append({"batch": batch, "first_call_s": first_s, "load1": load1, **result})
        log(f"{label} batch {batch}: {result['ms']:.2f} ms")
    return rows


def _graph_function(model, jit_compile):
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)


def task_keras(spec):
    import numpy as np

    import keras_csp

    _tf_threads(spec["threads"])
    size = spec["size"]
    model = keras_csp.build_model(spec["model"], input_shape=(size, size, 3),
                                  weights=spec.get("weights"),
                                  classifier_activation=_activation(spec))
    notes = []
    reference = np.asarray(model(_keras_input(size, 2, seed=1), training=False))
    if spec["optimized"]:
        if not hasattr(keras_csp, "optimize_for_inference"):
            return {"skipped": "keras_csp.optimize_for_inference does not exist in this checkout"}
        start = time.perf_counter()
        model = keras_csp.optimize_for_inference(model)
        notes.append(f"optimize_for_inference took {time.perf_counter() - start:.1f} s")
    if spec.get("frozen"):
        if not hasattr(keras_csp, "frozen_function"):
            return {"skipped": "keras_csp.frozen_function does not exist in this checkout"}
        predict = keras_csp.frozen_function(model)
    else:
        predict = _graph_function(model, spec["jit_compile"])
    # The function that is timed, against the eager model as built: graph rewrites (grappler's
    # oneDNN fusions) are where outputs can go wrong.
    got = np.asarray(predict(_keras_input(size, 2, seed=1)))
    notes.append(f"max |output diff| vs the model as built: {np.max(np.abs(got - reference)):.2e}")
    rows = _time_keras(predict, spec, spec["impl"])
    return {"rows": rows, "notes": notes, "versions": _tf_versions()}


def _trainable_params(model):
    import numpy as np

    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def task_keras_hub(spec):
    import keras_hub

    from benchmarks.peers import build_keras_hub, keras_hub_config

    _tf_threads(spec["threads"])
    model = build_keras_hub(spec["model"], spec["size"], activation=_activation(spec))
    rows = _time_keras(_graph_function(model, spec["jit_compile"]), spec, spec["impl"])
    return {
        "rows": rows,
        "params": _trainable_params(model),
        "config": {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in keras_hub_config(spec["model"]).items()},
        "versions": {**_tf_versions(), "keras-hub": keras_hub.__version__},
    }


def _pixels(size, batch, seed=0):
    import numpy as np

    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _folder_images(folder, size, start, count):
    """Images `start..start+count` of a folder (sorted names), center-cropped to size x size."""
    import numpy as np

    from keras_csp.lite import IMAGE_EXTENSIONS, load_image

    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    chosen = names[start : start + count]
    if not chosen:
        raise ValueError(f"{folder} has {len(names)} images; needed more than {start}")
    return np.stack([load_image(os.path.join(folder, n), size=(size, size), resize="crop")
                     for n in chosen]).astype("float32")


def _shape_images(size, count, offset_split):
    """`count` synthetic-shape images (pixels 0..255), training or validation split."""
    import numpy as np

    from keras_csp.data import synthetic_shapes

    data = synthetic_shapes(num_train=max(count, 1), num_validation=max(count, 1),
                            image_size=size, seed=12345)
    split = data.validation if offset_split == "validation" else data.train
    images = [x.numpy() for x, _ in split.as_dataset(min(count, 16))]
    return np.concatenate(images)[:count].astype("float32")


def task_export(spec):
    import numpy as np

    import keras_csp
    from keras_csp import export

    size = spec["size"]
    model = keras_csp.build_model(spec["model"], input_shape=(size, size, 3),
                                  weights=spec.get("weights"),
                                  classifier_activation=_activation(spec))
    if spec.get("head") == "logits":
        # keras_csp's export appends a softmax to a classifier (an output of a Dense layer); an
        # Identity after it makes the export see a "backbone" and keep the logits (a diagnostic).
        import keras

        model = keras.Model(model.inputs, keras.layers.Identity(name="logits")(model.outputs[0]))
    if spec.get("images"):
        calibration = list(_folder_images(spec["images"], size, 0, spec["calibration_images"]))
        agreement_set = lambda: _folder_images(  # noqa: E731
            spec["images"], size, len(calibration), spec["agreement_images"])
    else:
        calibration = list(_shape_images(size, spec["calibration_images"], "train"))
        agreement_set = lambda: _shape_images(  # noqa: E731
            size, spec["agreement_images"], "validation")
    if spec.get("agreement_path") and not os.path.exists(spec["agreement_path"]):
        np.save(spec["agreement_path"], agreement_set())
    files = {}
    for fmt, quantize in spec["formats"].items():
        for batch in spec["batches"]:
            path = os.path.join(spec["workdir"], f"{spec['model']}_{size}_{fmt}_b{batch}.tflite")
            log(f"export {spec['model']} {fmt} batch {batch}")
            start = time.perf_counter()
            report = export.tflite(
                model, path, quantize=quantize, batch=batch,
                representative_data=calibration if quantize == "int8" else None,
                calibration_steps=len(calibration), verbose=False,
            )
            files[f"{fmt}/{batch}"] = {
                "path": path, "format": fmt, "batch": batch, "ops": report.ops,
                "size_bytes": report.size_bytes, "export_s": time.perf_counter() - start,
            }
    return {"files": files, "versions": _tf_versions()}


def task_export_keras_hub(spec):
    import keras_hub
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    from benchmarks.peers import build_keras_hub

    size = spec["size"]
    model = build_keras_hub(spec["model"], size, activation=_activation(spec))
    files = {}
    for batch in spec["batches"]:
        tensor_spec = tf.TensorSpec([batch, size, size, 3], tf.float32, name="images")
        concrete = tf.function(
            lambda images: {"outputs": model(images, training=False)}, input_signature=[tensor_spec]
        ).get_concrete_function()
        frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
        start = time.perf_counter()
        content = converter.convert()
        path = os.path.join(spec["workdir"],
                            f"keras-hub_{spec['model']}_{size}_fp32_b{batch}.tflite")
        with open(path, "wb") as f:
            f.write(content)
        files[f"fp32/{batch}"] = {"path": path, "format": "fp32", "batch": batch,
                                  "size_bytes": len(content),
                                  "export_s": time.perf_counter() - start}
        log(f"export keras-hub {spec['model']} fp32 batch {batch}: {len(content)} bytes")
    return {"files": files, "versions": {**_tf_versions(), "keras-hub": keras_hub.__version__}}


def _litert_version(backend):
    from importlib import metadata

    package = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime",
               "tensorflow": "tensorflow"}[backend]
    try:
        return {backend: metadata.version(package)}
    except metadata.PackageNotFoundError:
        return {}


def _outputs(lite, images):
    import numpy as np

    return np.concatenate([next(iter(lite(image[None]).values())) for image in images])


def task_lite(spec):
    import numpy as np

    from keras_csp.lite import LiteModel

    size = spec["size"]
    rows = []
    backend = None
    for item in spec["files"]:
        lite = LiteModel(item["path"], num_threads=spec["threads"], backend=spec.get("backend"))
        backend = lite.backend
        batch = item["batch"]
        if item.get("input") == "normal":
            x = _keras_input(size, batch)
        else:
            x = _pixels(size, batch)
        log(f"{spec['impl']} {spec['model']} batch {batch}: warming up ({lite.backend})")
        load1 = _load1()
        lite(x)  # allocates tensors and applies the default delegate
        coverage = xnnpack_coverage(lite._interpreter._get_ops_details())
        result = time_runs(lambda: lite(x), spec["runs"], spec["warmup"])
        row = {"batch": batch, "load1": load1, "backend": lite.backend, "xnnpack": coverage,
               **result}
        if item.get("reference") and spec.get("agreement_path"):
            images = np.load(spec["agreement_path"])
            float_model = LiteModel(item["reference"], num_threads=spec["threads"],
                                    backend=spec.get("backend"))
            row["agreement"] = {
                **agreement(_outputs(float_model, images), _outputs(lite, images)),
                "reference": "the fp32 TFLite export of the same model (batch 1)",
            }
        rows.append(row)
        log(f"{spec['impl']} {spec['model']} batch {batch}: {result['ms']:.2f} ms, XNNPACK "
            f"{coverage['delegated']}/{coverage['nodes']} nodes in {coverage['partitions']} "
            "partition(s)")
    return {"rows": rows, "versions": _litert_version(backend) if backend else {}}


def task_timm(spec):
    import numpy as np
    import timm
    import torch

    from benchmarks.peers import build_timm

    torch.set_num_threads(spec["threads"])
    model = build_timm(spec["model"], spec.get("weights"))
    params = int(sum(p.numel() for p in model.parameters()))
    rows = []
    for batch in spec["batches"]:
        x = torch.from_numpy(_keras_input(spec["size"], batch).transpose(0, 3, 1, 2).copy())
        load1 = _load1()

        def run():
            with torch.inference_mode():
                logits = model(x)
                if spec.get("head") != "logits":
                    torch.softmax(logits, dim=-1)

        log(f"timm {spec['model']} batch {batch}: warming up")
        result = time_runs(run, spec["runs"], spec["warmup"])
        rows.append({"batch": batch, "load1": load1, **result})
        log(f"timm {spec['model']} batch {batch}: {result['ms']:.2f} ms")
    return {"rows": rows, "params": params,
            "versions": {"torch": torch.__version__, "timm": timm.__version__,
                         "numpy (ref venv)": np.__version__}}


TASKS = {
    "info": task_info,
    "peak": task_peak,
    "weights-timm": task_weights_timm,
    "weights-keras": task_weights_keras,
    "keras": task_keras,
    "keras-hub": task_keras_hub,
    "export": task_export,
    "export-keras-hub": task_export_keras_hub,
    "lite": task_lite,
    "timm": task_timm,
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] not in TASKS:
        print(__doc__, file=sys.stderr)
        return 2
    task, spec_path, out_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    result = TASKS[task](spec)
    write_bytes_atomic(out_path, json.dumps(result).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
