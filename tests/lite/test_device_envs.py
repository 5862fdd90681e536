"""keras_csp.lite on a "device": virtual environments without TensorFlow or Keras.

`.venv-device-tflite/` has numpy<2, tflite-runtime 2.14 and Pillow; `.venv-device-litert/` has
ai-edge-litert and Pillow (made by tools/device_venvs.py, reused while its requirements hold).
keras_csp is on their path through a .pth file, not installed. Set
KERAS_CSP_SKIP_DEVICE_ENVS=1 to skip these tests on a machine that cannot reach PyPI.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SIZE

from keras_csp import lite

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = {"tflite": "tflite-runtime", "litert": "litert"}

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("KERAS_CSP_SKIP_DEVICE_ENVS")), reason="KERAS_CSP_SKIP_DEVICE_ENVS is set"
)

DEVICE_SCRIPT = r"""
import json, sys
import numpy as np
import keras_csp.lite as lite

args = json.loads(sys.argv[1])
model = lite.LiteModel(args["float"])
images = np.stack([lite.load_image(p, model.input_size) for p in args["images"]])
detector = lite.LiteModel(args["detector"])
boxes = lite.detections(detector(images), 0, score_threshold=0.0)
lite.draw_boxes(images[0], boxes, args["draw"])
result = {
    "backend": model.backend,
    "float": model(images)["probabilities"].tolist(),
    "int8": lite.LiteModel(args["int8"])(images)["probabilities"].tolist(),
    "boxes": boxes,
    "evaluate": lite.evaluate(args["float"], args["folder"]),
}
errors = {}
for name, call in (
    ("truncated", lambda: lite.LiteModel(args["truncated"])),
    ("size", lambda: model(np.zeros((1, 8, 8, 3), np.uint8))),
):
    try:
        call()
    except ValueError as e:
        errors[name] = str(e)
result["errors"] = errors
result["gray"] = lite.load_image(args["gray"], model.input_size)[0, 0].tolist()
result["modules"] = sorted(m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules)
print(json.dumps(result))
"""


@pytest.fixture(scope="session", params=sorted(BACKENDS))
def device_python(request):
    """The Python of a device environment, created on first use (about 30 s with downloads)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "device_venvs.py"), request.param],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert out.returncode == 0, f"creating the {request.param} device venv failed:\n{out.stderr}"
    return request.param, out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def device_inputs(artifacts, tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("device")
    truncated = folder / "truncated.tflite"
    data = artifacts["float"].read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    Image.new("L", (SIZE, SIZE)).save(folder / "gray.png")
    return {
        "float": str(artifacts["float"]),
        "int8": str(artifacts["int8"]),
        "detector": str(artifacts["detector"]),
        "images": [str(p) for p in artifacts["images"]],
        "folder": str(artifacts["folder"]),
        "truncated": str(truncated),
        "gray": str(folder / "gray.png"),
        "draw": str(folder / "boxes.png"),
    }


def _run(python, *args, env=None):
    return subprocess.run([python, *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, **(env or {})})


def test_runtime_gives_the_main_environment_results(device_python, device_inputs, artifacts):
    name, python = device_python
    out = _run(python, "-c", DEVICE_SCRIPT, json.dumps(device_inputs))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == BACKENDS[name]
    assert result["modules"] == []  # neither TensorFlow nor Keras was imported

    # The same files through TensorFlow's interpreter in the main environment.
    images = np.stack([lite.load_image(p, (SIZE, SIZE)) for p in artifacts["images"]])
    expected_float = lite.LiteModel(artifacts["float"])(images)["probabilities"]
    expected_int8 = lite.LiteModel(artifacts["int8"])(images)["probabilities"]
    np.testing.assert_allclose(result["float"], expected_float, atol=1e-5)
    np.testing.assert_allclose(result["int8"], expected_int8, atol=1 / 256 + 1e-6)
    assert result["evaluate"] == lite.evaluate(artifacts["float"], artifacts["folder"])
    assert len(result["boxes"]) == 2 and Path(device_inputs["draw"]).exists()

    errors = result["errors"]
    assert "is truncated or corrupt" in errors["truncated"]  # not a crash of the runtime
    assert result["gray"] == [0, 0, 0]  # converted to RGB, as training converts it
    assert "images are 8x8; the model takes 32x32" in errors["size"]


def test_predict_and_evaluate_commands(device_python, device_inputs):
    _, python = device_python
    # `keras_csp.cli` is what the `keras-csp` console script runs; it must work on a device too.
    out = _run(python, "-m", "keras_csp.cli", "predict", device_inputs["int8"],
               *device_inputs["images"][:2])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == device_inputs["images"][0] and lines[1].lstrip().startswith("1. ")
    assert len(lines) == 2 * (1 + 3)  # three classes each

    draw = str(Path(device_inputs["draw"]).with_name("cli_boxes.png"))
    out = _run(python, "-m", "keras_csp.lite", "predict", device_inputs["detector"],
               device_inputs["images"][0], "--draw", draw, "--score-threshold", "0")
    assert out.returncode == 0, out.stderr
    assert "2 box(es) with score > 0.0" in out.stdout and Path(draw).exists()

    out = _run(python, "-m", "keras_csp.lite", "evaluate", device_inputs["float"],
               "--data", device_inputs["folder"])
    assert out.returncode == 0 and "top-1" in out.stdout
    assert "on 6 images of 3 classes" in out.stdout

    out = _run(python, "-m", "keras_csp.lite", "predict", device_inputs["truncated"],
               device_inputs["images"][0])
    assert out.returncode == 2 and "is truncated or corrupt" in out.stderr


def test_export_needs_tensorflow_and_says_so(device_python, tmp_path):
    _, python = device_python
    out = _run(python, "-m", "keras_csp.export.cli", "export", "cspresnet50",
               "-o", str(tmp_path / "m.tflite"))
    assert out.returncode == 2 and not (tmp_path / "m.tflite").exists()
    assert "`keras-csp export` needs TensorFlow and Keras" in out.stderr


def test_gpu_accelerator_without_ai_edge_litert_says_what_is_missing(device_python, device_inputs):
    name, python = device_python
    if name != "tflite":
        pytest.skip("only the tflite-runtime device lacks ai-edge-litert")
    args = ["-m", "keras_csp.lite", "predict", device_inputs["float"],
            device_inputs["images"][0], "--accelerator"]
    out = _run(python, *args, "gpu")
    assert out.returncode == 2, out.stderr
    assert ("--accelerator=gpu: the GPU accelerator needs ai-edge-litert >= 2.3 (No module named "
            "'ai_edge_litert'); allowed: pip install -U 'ai-edge-litert>=2.3'." in out.stderr)
    out = _run(python, *args, "auto")
    assert out.returncode == 0 and out.stdout.splitlines()[0] == device_inputs["images"][0]
    assert "keras-csp: note: accelerator='auto': running on the CPU: the GPU accelerator needs" \
        in out.stderr
