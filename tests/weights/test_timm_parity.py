"""Numerical parity with timm: the four reference architectures, at 256x256 and 225x225.

`tests/reference/timm_reference.py` runs in the reference interpreter (torch + timm; path from
`$KERAS_CSP_REFERENCE_PYTHON`, default `<repo>/.venv-ref/bin/python`). It builds each timm model
with `pretrained=False`, randomizes its BatchNorm layers, saves the state dict as .safetensors and
the logits and `features_only` stage outputs for a fixed random input as .npz. Here the Keras
models load that checkpoint (`weights=<path>` and `from_timm`) and must reproduce:

* in float64 (both sides): max |diff| <= 1e-4 and max |diff| / max |ref| <= 1e-5 for the logits
  and every pyramid level. Float64 removes rounding noise, so any mapping or layout error shows
  up as a large difference;
* in float32 (what users run): max |diff| / max |ref| <= 2e-4. Float32 rounding alone moves these
  50-70-layer networks by up to ~3e-5 of the output range (timm float32 against timm float64 on
  the same input), so the float64 tolerances cannot hold for any float32 implementation, timm's
  included.

Without the reference interpreter the tests are skipped, except on CI (`CI=true`), where they fail.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_csp
from keras_csp.weights import from_timm

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "reference" / "timm_reference.py"
MODELS = ("cspresnet50", "cspresnext50", "cspdarknet53", "darknet53")
SIZES = (256, 225)
LEVELS = {"cspresnet50": (2, 3, 4, 5), "cspresnext50": (2, 3, 4, 5),
          "cspdarknet53": (1, 2, 3, 4, 5), "darknet53": (1, 2, 3, 4, 5)}
F64_ABS, F64_REL = 1e-4, 1e-5
F32_REL = 2e-4


def reference_python():
    path = Path(os.environ.get("KERAS_CSP_REFERENCE_PYTHON") or ".venv-ref/bin/python")
    return path if path.is_absolute() else REPO / path


def _unavailable(reason):
    message = (
        f"timm reference unavailable: {reason}. Set KERAS_CSP_REFERENCE_PYTHON to a Python with "
        "torch, timm and safetensors (python3.11 tools/dev.py setup creates .venv-ref/)."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def timm_reference(tmp_path_factory):
    """Runs the reference script once per session; returns the folder with its outputs."""
    python = reference_python()
    if not python.exists():
        _unavailable(f"{python} does not exist")
    probe = subprocess.run(
        [str(python), "-c", "import torch, timm, safetensors"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        _unavailable(f"{python} cannot import torch/timm/safetensors: {probe.stderr.strip()[-300:]}")
    out = tmp_path_factory.mktemp("timm_reference")
    result = subprocess.run(
        [str(python), str(SCRIPT), str(out), "--models", *MODELS,
         "--sizes", *map(str, SIZES)],
        capture_output=True, text=True, timeout=1800,
    )
    if result.returncode != 0:
        pytest.fail(f"{SCRIPT.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return out


@pytest.fixture
def float64_models():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy(previous)


def _outputs(name, checkpoint, x):
    """Logits (model built with weights=<checkpoint>) and pyramid features (from_timm)."""
    classifier = keras_csp.build_model(name, weights=checkpoint, classifier_activation=None)
    backbone = keras_csp.build_model(name, include_top=False)
    from_timm(backbone, checkpoint)
    results = {}
    for size, image in x.items():
        image = image.astype(keras.config.dtype_policy().compute_dtype)
        out = {"logits": classifier(image, training=False)}
        out.update(backbone(image, training=False))
        results[size] = {k: np.asarray(keras.ops.convert_to_numpy(v), np.float64) for k, v in out.items()}
    return results


def _compare(name, precision, reference, results):
    report = []
    for size in SIZES:
        keys = ["logits"] + [f"P{k}" for k in LEVELS[name]]
        assert sorted(results[size]) == sorted(keys)
        for key in keys:
            ref = reference[f"{precision}_{key}_{size}"].astype(np.float64)
            got = results[size][key]
            assert got.shape == ref.shape, (name, size, key, got.shape, ref.shape)
            diff = float(np.max(np.abs(got - ref)))
            rel = diff / float(np.max(np.abs(ref)))
            report.append((size, key, diff, rel))
    for size, key, diff, rel in report:
        print(f"parity {precision} {name} {size} {key}: max|diff| {diff:.2e}  rel {rel:.2e}")
    return report


@pytest.mark.parametrize("name", MODELS)
def test_float64_parity(name, timm_reference, float64_models):
    reference = np.load(timm_reference / f"{name}.npz")
    x = {size: reference[f"input_{size}"] for size in SIZES}
    results = _outputs(name, str(timm_reference / f"{name}.safetensors"), x)
    report = _compare(name, "f64", reference, results)
    bad = [r for r in report if r[2] > F64_ABS or r[3] > F64_REL]
    assert not bad, f"{name}: over max|diff| {F64_ABS} or rel {F64_REL}: {bad}"


@pytest.mark.parametrize("name", MODELS)
def test_float32_parity(name, timm_reference):
    reference = np.load(timm_reference / f"{name}.npz")
    x = {size: reference[f"input_{size}"] for size in SIZES}
    results = _outputs(name, str(timm_reference / f"{name}.safetensors"), x)
    report = _compare(name, "f32", reference, results)
    bad = [r for r in report if r[3] > F32_REL]
    assert not bad, f"{name}: over rel {F32_REL}: {bad}"
    # What a classifier is used for: the same top class (where the reference is not a near tie).
    for size in SIZES:
        ref = reference[f"f32_logits_{size}"][0]
        order = np.argsort(-ref)
        if ref[order[0]] - ref[order[1]] > 1e-3:
            assert int(np.argmax(results[size]["logits"][0])) == int(order[0])


def test_reference_python_default_is_inside_the_repository(monkeypatch):
    monkeypatch.delenv("KERAS_CSP_REFERENCE_PYTHON", raising=False)
    assert reference_python() == REPO / ".venv-ref" / "bin" / "python"
    monkeypatch.setenv("KERAS_CSP_REFERENCE_PYTHON", "elsewhere/bin/python")
    assert reference_python() == REPO / "elsewhere" / "bin" / "python"
    monkeypatch.setenv("KERAS_CSP_REFERENCE_PYTHON", sys.executable)
    assert reference_python() == Path(sys.executable)
