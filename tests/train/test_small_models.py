"""The small CSPDarknets that `train` accepts are ordinary registry entries: `build_model`,
`profile` and `keras-csp models` / `profile` know them too."""

import keras_csp
from keras_csp.cli import main
from keras_csp.models.config import ARCHITECTURES, MODEL_CONFIGS, get_config
from keras_csp.train import SMALL_MODELS
from keras_csp.train.models import model_names, resolve_model_config


def test_one_registry(capsys):
    assert set(SMALL_MODELS) == {"cspdarknet_small", "cspdarknet_tiny"}
    assert not set(SMALL_MODELS) & set(MODEL_CONFIGS)  # the paper's tables stay the paper's
    assert model_names() == sorted(ARCHITECTURES)
    for name in SMALL_MODELS:
        assert resolve_model_config(name) == (name, get_config(name))
    model = keras_csp.build_model("cspdarknet_tiny", input_shape=(32, 32, 3), classes=3)
    assert model.output_shape == (None, 3)
    assert keras_csp.profile("cspdarknet_small", (64, 64, 3)).params == model_params("small")
    assert main(["models"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(ARCHITECTURES) and "cspdarknet_tiny" in listed
    assert main(["profile", "cspdarknet_tiny", "--json"]) == 0
    assert '"params"' in capsys.readouterr().out


def model_params(size):
    model = keras_csp.build_model(f"cspdarknet_{size}", input_shape=(64, 64, 3))
    return sum(int(w.numpy().size) for w in model.trainable_weights)
