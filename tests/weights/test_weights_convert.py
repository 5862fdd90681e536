"""from_timm / to_timm, weights=<file>, bad checkpoints and the convert-timm command."""

import argparse
import os
import re
import stat
import sys

import h5py
import keras
import numpy as np
import pytest
from safetensors.numpy import save_file
from weights_helpers import SMALL, assert_same_weights, assert_unchanged, snapshot

import keras_csp
from keras_csp.weights import from_timm, read_checkpoint, to_timm
from keras_csp.weights import cli as weights_cli


def _timm_like(model):
    """A timm-style state dict of `model`, with the BatchNorm counters timm also saves."""
    state = to_timm(model)
    for name in list(state):
        if name.endswith(".running_var"):
            state[name[: -len("running_var")] + "num_batches_tracked"] = np.array(7, np.int64)
    return state


@pytest.fixture(scope="module")
def resnext_state(tmp_path_factory):
    """A random cspresnext50 (grouped convs) as a timm state dict and .safetensors file."""
    model = keras_csp.CSPResNeXt50(input_shape=SMALL)
    state = _timm_like(model)
    path = tmp_path_factory.mktemp("ckpt") / "cspresnext50.safetensors"
    save_file(state, str(path))
    return state, str(path)


def test_to_timm_gives_timm_names_and_shapes():
    model = keras_csp.CSPResNeXt50(input_shape=SMALL)
    state = to_timm(model)
    # timm's state dict holds 277 tensors besides num_batches_tracked (architectures.md §3.3).
    assert len(state) == 277
    assert state["stem.conv1.conv.weight"].shape == (64, 3, 7, 7)
    # Grouped conv: (out, in/groups, kh, kw) with 32 groups.
    assert state["stages.0.blocks.0.conv2.conv.weight"].shape == (128, 4, 3, 3)
    assert state["stages.1.conv_down.conv.weight"].shape == (256, 8, 3, 3)
    assert state["head.fc.weight"].shape == (1000, 2048)
    assert set(state) >= {
        "stem.conv1.bn.weight", "stem.conv1.bn.bias", "stem.conv1.bn.running_mean",
        "stem.conv1.bn.running_var", "stages.0.conv_transition_b.conv.weight", "head.fc.bias",
    }


def test_from_timm_round_trip_sets_every_weight(resnext_state):
    state, path = resnext_state
    model = keras_csp.CSPResNeXt50(input_shape=SMALL)
    assert from_timm(model, state) is model
    back = to_timm(model)
    for name, value in back.items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    # The same through a file and through the builder's weights=.
    from_file = keras_csp.CSPResNeXt50(input_shape=SMALL, weights=path)
    assert len(assert_same_weights(model, from_file)) == len(model.weights)


def test_include_top_false_loads_everything_but_the_classifier(resnext_state):
    state, path = resnext_state
    full = keras_csp.CSPResNeXt50(input_shape=SMALL, weights=path)
    backbone = keras_csp.CSPResNeXt50(
        include_top=False, pooling="avg", input_shape=SMALL, weights=path
    )
    assert not any(v.path.startswith("head.fc") for v in backbone.weights)
    assert len(assert_same_weights(full, backbone)) == len(backbone.weights)
    # from_timm skips head.fc by default when the model has none, and refuses it on request.
    other = keras_csp.CSPResNeXt50(include_top=False, input_shape=SMALL)
    before = snapshot(other)
    with pytest.raises(ValueError, match=r"tensors not used \(2\): head.fc.weight \(1000, 2048\), head.fc.bias \(1000,\)"):
        from_timm(other, state, ignore_classifier=False)
    assert_unchanged(other, before)


def test_missing_and_extra_tensors_are_listed_and_the_model_is_unchanged(resnext_state):
    state, _ = resnext_state
    model = keras_csp.CSPResNeXt50(input_shape=SMALL)
    before = snapshot(model)

    broken = dict(state)
    del broken["stages.2.blocks.3.conv2.conv.weight"]
    broken["stages.9.extra.weight"] = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError) as info:
        from_timm(model, broken)
    message = str(info.value)
    assert "does not fit the model 'cspresnext50'; the model is unchanged" in message
    assert "checkpoint tensors not used (1): stages.9.extra.weight (3, 5)" in message
    assert "Keras model weights not set (1): stages.2.blocks.3.conv2.conv/kernel (3, 3, 16, 512)" in message
    assert_unchanged(model, before)


def test_checkpoint_of_another_model_is_refused_with_names_and_shapes(tmp_path):
    darknet_state = to_timm(keras_csp.Darknet53(input_shape=SMALL))
    path = tmp_path / "darknet53.safetensors"
    save_file(darknet_state, str(path))
    model = keras_csp.CSPResNet50(input_shape=SMALL)
    before = snapshot(model)
    with pytest.raises(ValueError) as info:
        from_timm(model, str(path))
    message = str(info.value)
    assert f"checkpoint {str(path)!r} does not fit the model 'cspresnet50'" in message
    assert "checkpoint tensors not used (" in message
    assert "Keras model weights not set (" in message
    assert "shape mismatches (" in message
    assert re.search(r"stages\.\S+ \(\d+(, \d+)*,?\) -> stages\.\S+ expects \(\d+", message)
    # Lists are capped: "... and N more".
    assert "more" in message
    assert_unchanged(model, before)
    # The same through the builder.
    with pytest.raises(ValueError, match=r"does not fit the model 'cspresnet50'"):
        keras_csp.CSPResNet50(input_shape=SMALL, weights=str(path))


def test_classifier_of_another_size(resnext_state):
    _, path = resnext_state
    with pytest.raises(ValueError) as info:
        keras_csp.CSPResNeXt50(input_shape=SMALL, classes=10, weights=path)
    message = str(info.value)
    assert "head.fc.weight (1000, 2048) -> head.fc/kernel expects (2048, 10)" in message
    assert "head.fc.bias (1000,) -> head.fc/bias expects (10,)" in message


def test_layers_in_front_of_the_network_keep_their_weights(resnext_state):
    _, path = resnext_state
    inputs = keras.Input(SMALL)
    normalize = keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 5.0, 6.0], name="norm")
    model = keras_csp.CSPResNeXt50(input_tensor=normalize(inputs), weights=path)
    assert model.get_layer("norm") is normalize
    np.testing.assert_allclose(np.ravel(normalize.mean), [1.0, 2.0, 3.0])
    assert_same_weights(keras_csp.CSPResNeXt50(input_shape=SMALL, weights=path), model)
    assert len(to_timm(model)) == 277


def test_from_timm_rejects_other_inputs():
    model = keras_csp.Darknet53(input_shape=SMALL)
    with pytest.raises(ValueError, match=r"takes a checkpoint path or a mapping"):
        from_timm(model, 42)
    with pytest.raises(ValueError, match=r"has dtype <U|has dtype object"):
        from_timm(model, {"stem.conv1.conv.weight": np.array(["a"])})


@pytest.mark.parametrize(
    "name, pattern",
    [
        ("broken.safetensors", r"is not a readable \.safetensors file"),
        ("broken.weights.h5", r"is not a readable \.weights\.h5 file"),
        ("broken.keras", r"is not a readable \.keras file"),
    ],
)
def test_corrupt_files_give_a_clear_error(tmp_path, name, pattern):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=pattern) as info:
        keras_csp.Darknet53(input_shape=SMALL, weights=str(path))
    # A one-line cause, not a chained stack trace from inside h5py/safetensors/zipfile.
    assert info.value.__cause__ is None and info.value.__suppress_context__
    if name.endswith(".safetensors"):
        with pytest.raises(ValueError, match=pattern):
            read_checkpoint(path)


def test_truncated_safetensors(tmp_path, resnext_state):
    _, path = resnext_state
    cut = tmp_path / "cut.safetensors"
    with open(path, "rb") as f:
        cut.write_bytes(f.read(100_000))
    with pytest.raises(ValueError, match=r"is not a readable \.safetensors file"):
        read_checkpoint(cut)


def test_pth_without_torch_asks_for_safetensors(tmp_path, monkeypatch):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"not really")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError.
    with pytest.raises(ValueError, match=r"needs PyTorch, which is not installed.*\.safetensors"):
        keras_csp.Darknet53(input_shape=SMALL, weights=str(path))


class _FakeTensor:
    def __init__(self, array):
        self.array, self.dtype = array, "torch.float32"

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.array


def test_pth_is_read_with_weights_only(tmp_path, monkeypatch):
    """The .pth path without torch installed here: a stand-in module records how it is called."""
    model = keras_csp.Darknet53(input_shape=SMALL)
    state = to_timm(model)
    calls = []

    def load(path, map_location=None, weights_only=False):
        calls.append((str(path), map_location, weights_only))
        # A training checkpoint: wrapped in "state_dict", keys prefixed by DataParallel.
        return {"epoch": 3, "state_dict": {f"module.{k}": _FakeTensor(v) for k, v in state.items()}}

    monkeypatch.setitem(sys.modules, "torch", type(sys)("torch"))
    sys.modules["torch"].load = load
    path = tmp_path / "checkpoint.pth"
    path.write_bytes(b"stand-in")
    loaded = keras_csp.Darknet53(input_shape=SMALL, weights=str(path))
    assert calls == [(str(path), "cpu", True)]
    assert len(assert_same_weights(model, loaded)) == len(model.weights)


def test_pth_with_torch(tmp_path):
    torch = pytest.importorskip("torch")
    model = keras_csp.Darknet53(input_shape=SMALL)
    state = {k: torch.from_numpy(v) for k, v in to_timm(model).items()}
    path = tmp_path / "model.pth"
    torch.save({"state_dict": state}, path)
    loaded = keras_csp.Darknet53(input_shape=SMALL, weights=str(path))
    assert_same_weights(model, loaded)


def test_weights_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"weights=3 is not allowed; allowed: None, 'imagenet'"):
        keras_csp.Darknet53(input_shape=SMALL, weights=3)
    other = tmp_path / "weights.npz"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"has an unknown extension; allowed: None, 'imagenet'"):
        keras_csp.Darknet53(input_shape=SMALL, weights=str(other))


# --------------------------------------------------------------------------- Keras files


def test_keras_weights_file_loads_by_name_with_and_without_the_head(tmp_path):
    source = keras_csp.CSPDarknet53(input_shape=SMALL)
    path = tmp_path / "full.weights.h5"
    source.save_weights(path)
    same = keras_csp.CSPDarknet53(input_shape=SMALL, weights=str(path))
    assert len(assert_same_weights(source, same)) == len(source.weights)
    # A file with the classifier fits the same backbone without it (include_top=False)...
    backbone = keras_csp.CSPDarknet53(include_top=False, input_shape=SMALL, weights=str(path))
    assert len(assert_same_weights(source, backbone)) == len(backbone.weights)
    # ...but a backbone file does not give a classifier.
    backbone_path = tmp_path / "backbone.weights.h5"
    backbone.save_weights(backbone_path)
    with pytest.raises(ValueError, match=r"weights not set \(2\): head.fc/kernel \(1024, 1000\)"):
        keras_csp.CSPDarknet53(input_shape=SMALL, weights=str(backbone_path))


def test_keras_archive_loads(tmp_path):
    source = keras_csp.CSPResNet50(input_shape=SMALL, classes=7)
    path = tmp_path / "model.keras"
    source.save(path)
    loaded = keras_csp.CSPResNet50(input_shape=SMALL, classes=7, weights=str(path))
    assert len(assert_same_weights(source, loaded)) == len(source.weights)


def test_weights_file_without_layer_names_is_loaded_by_order(tmp_path):
    source = keras_csp.Darknet53(input_shape=SMALL)
    path = tmp_path / "legacy.weights.h5"
    source.save_weights(path)
    with h5py.File(path, "r+") as f:
        groups = []
        f.visititems(lambda key, obj: groups.append(obj) if isinstance(obj, h5py.Group) else None)
        for group in groups:
            if "name" in group.attrs:
                del group.attrs["name"]
    loaded = keras_csp.Darknet53(input_shape=SMALL, weights=str(path))
    assert len(assert_same_weights(source, loaded)) == len(source.weights)
    # Without names, a file with a classifier only fits the same layout.
    with pytest.raises(ValueError, match=r"does not fit the architecture"):
        keras_csp.Darknet53(include_top=False, input_shape=SMALL, weights=str(path))


# --------------------------------------------------------------------------- convert-timm


def _run_cli(argv):
    parser = argparse.ArgumentParser(prog="keras-csp")
    sub = parser.add_subparsers(dest="command", required=True)
    weights_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return weights_cli.run(args)


def test_convert_timm_command(tmp_path, resnext_state, capsys):
    state, checkpoint = resnext_state
    out = tmp_path / "out" / "cspresnext50.weights.h5"
    out.parent.mkdir()
    assert _run_cli(["convert-timm", checkpoint, str(out), "--model", "cspresnext50"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert os.listdir(out.parent) == [out.name]  # no temporary file left behind
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask  # as open() makes it, not 0600
    reference = keras_csp.CSPResNeXt50(input_shape=SMALL)
    from_timm(reference, state)
    loaded = keras_csp.CSPResNeXt50(input_shape=SMALL, weights=str(out))
    assert len(assert_same_weights(reference, loaded)) == len(loaded.weights)
    # Keras itself reads the file too (same architecture, by order).
    plain = keras_csp.CSPResNeXt50(input_shape=SMALL)
    plain.load_weights(out)
    assert_same_weights(reference, plain)


def test_convert_timm_failure_leaves_no_file(tmp_path, resnext_state):
    _, checkpoint = resnext_state
    out = tmp_path / "wrong.weights.h5"
    out.write_bytes(b"previous content")
    with pytest.raises(ValueError, match=r"does not fit the model 'darknet53'"):
        _run_cli(["convert-timm", checkpoint, str(out), "--model", "darknet53", "--quiet"])
    assert out.read_bytes() == b"previous content"
    assert sorted(os.listdir(tmp_path)) == ["wrong.weights.h5"]
    with pytest.raises(ValueError, match=r"must end in \.weights\.h5"):
        _run_cli(["convert-timm", checkpoint, str(tmp_path / "x.h5"), "--model", "cspresnext50"])
    with pytest.raises(ValueError, match=r"is not a file"):
        _run_cli(["convert-timm", str(tmp_path / "nope.safetensors"), str(out), "--model", "darknet53"])
