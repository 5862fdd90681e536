"""Random weights that behave like trained ones: `benchmarks.inference --weights calibrated`.

A freshly initialized network gives nearly the same top-1 for every input, so int8 agreement says
nothing about it. These weights have random BatchNorm affine parameters, running statistics
measured on random data and then perturbed, and a random classifier: activations keep a sane scale
through the network and the logits depend on the input.

Run inside `benchmarks.inference_worker` (tasks `weights-timm` and `weights-keras`); only the
standard library is imported at module level, as there.
"""

import os


def timm_checkpoints(models, seed, repo, log):
    """timm state dicts (`{name: output .safetensors path}`) with such statistics; returns
    `{name: path}` of the files written.

    Uses `randomize` of tests/reference/timm_reference.py (the parity tests' checkpoints).
    """
    import importlib.util

    import torch
    from safetensors.torch import save_file

    from benchmarks.peers import build_timm

    path = os.path.join(repo, "tests", "reference", "timm_reference.py")
    module_spec = importlib.util.spec_from_file_location("timm_reference", path)
    reference = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(reference)
    written = {}
    for name, out in models.items():
        torch.manual_seed(seed)
        model = build_timm(name)
        reference.randomize(model, seed)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, out)
        written[name] = out
        log(f"{name}: wrote {out}")
    return written


def keras_weights(models, seed, log):
    """Keras `.weights.h5` files (`{name: output path}`) with the same kind of statistics, for
    models timm lacks; returns `{name: path}` of the files written."""
    import keras_csp

    written = {}
    for name, out in models.items():
        model = keras_csp.build_model(name, input_shape=(96, 96, 3))
        calibrate_keras_model(model, seed)
        model.save_weights(out)
        written[name] = out
        log(f"{name}: wrote {out}")
    return written


def calibrate_keras_model(model, seed):
    """Gives `model`'s BatchNorm layers random affine parameters and the perturbed statistics of
    one random batch, and its Dense layers random weights (in place)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    bns = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = {}
    for bn in bns:
        n = bn.moving_mean.shape[0]
        if bn.scale:
            bn.gamma.assign((rng.random(n) + 0.5).astype("float32"))
        if bn.center:
            bn.beta.assign((rng.standard_normal(n) * 0.2).astype("float32"))
        momenta[id(bn)] = bn.momentum
        bn.momentum = 0.0  # the moving statistics become those of the calibration batch
    model(rng.standard_normal((4, 96, 96, 3)).astype("float32"), training=True)
    for bn in bns:
        bn.momentum = momenta[id(bn)]
        n = bn.moving_mean.shape[0]
        std = np.sqrt(np.asarray(bn.moving_variance.numpy()))
        bn.moving_mean.assign(
            (bn.moving_mean.numpy() + rng.standard_normal(n) * 0.1 * std).astype("float32")
        )
        bn.moving_variance.assign(
            (bn.moving_variance.numpy() * (rng.random(n) * 0.5 + 0.75)).astype("float32")
        )
    for layer in layers:
        if isinstance(layer, keras.layers.Dense):
            fan_in = layer.kernel.shape[0]
            layer.kernel.assign(
                (rng.standard_normal(layer.kernel.shape) / np.sqrt(fan_in)).astype("float32")
            )
            if layer.use_bias:
                bias = rng.standard_normal(layer.bias.shape) * 0.1
                layer.bias.assign(bias.astype("float32"))
