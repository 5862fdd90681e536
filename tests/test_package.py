import subprocess
import sys

import keras
import numpy as np

import keras_csp


def test_top_level_names():
    for name in keras_csp.__all__:
        assert getattr(keras_csp, name) is not None


def test_importing_the_package_loads_neither_tensorflow_nor_keras():
    code = "import keras_csp, sys; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_load_model_registers_the_custom_layers(tmp_path):
    model = keras_csp.CSPResNet50(include_top=False, input_shape=(64, 64, 3))
    model.save(tmp_path / "m.keras")
    code = (
        "import keras_csp, numpy as np\n"
        f"m = keras_csp.load_model({str(tmp_path / 'm.keras')!r})\n"
        "print(sorted(m(np.zeros((1, 64, 64, 3), 'float32'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # (keras-cv announces its backend on stdout when the detector module loads it.)
    assert out.stdout.strip().splitlines()[-1] == "['P2', 'P3', 'P4', 'P5']"
    assert isinstance(keras_csp.load_model(tmp_path / "m.keras"), keras.Model)
    x = np.zeros((1, 64, 64, 3), "float32")
    assert keras_csp.load_model(tmp_path / "m.keras")(x)["P5"].shape == (1, 2, 2, 1024)
