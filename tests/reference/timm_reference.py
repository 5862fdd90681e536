"""Reference outputs of timm's CSP models, for the parity tests of keras_csp.

Run with the *reference* interpreter (torch + timm), not the package's:

    .venv-ref/bin/python tests/reference/timm_reference.py OUT_DIR [--models ...] [--sizes ...]

For every model it writes, into OUT_DIR:

* `<model>.safetensors`: the state dict of a timm model built with `pretrained=False` (nothing is
  downloaded) whose BatchNorm layers were made non-trivial: random gamma/beta, and running
  statistics measured on random data and then perturbed, so that a swapped or dropped tensor shows
  up in the outputs while activations keep a sane scale through the whole network;
* `<model>.npz`: for each size S, `input_S` (the NHWC input, 1xSxSx3, float32) and, for each
  precision D in `f32` and `f64`, `D_logits_S` (1x1000) and `D_P{k}_S` (NHWC), the outputs of
  timm's `features_only=True` model for each stage at nominal stride 2**k (the stem level that timm
  lists first is left out, as keras_csp's pyramid has only the stages). `f64` runs the same
  (float32-valued) weights in float64: it is what the parity test holds to tight tolerances,
  free of float32 rounding noise, which in these 50-70-layer networks alone reaches ~3e-5 of the
  output range (timm float32 against timm float64);
* `<model>.json`: versions, seed and the feature strides.

Everything is seeded; the same command gives the same files.
"""

import argparse
import json
import math
import os
import re
import sys

import numpy as np
import timm
import torch
from safetensors.torch import save_file

MODELS = ("cspresnet50", "cspresnext50", "cspdarknet53", "darknet53")
SIZES = (256, 225)


def _bn_layers(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def randomize(model, seed):
    """Random BN affine params, data-derived then perturbed running stats, a random head bias."""
    gen = torch.Generator().manual_seed(seed)
    bns = _bn_layers(model)
    for bn in bns:
        n = bn.num_features
        bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(n, generator=gen) * 0.2)
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches.
    model.train()
    model(torch.randn(4, 3, 96, 96, generator=gen))
    for bn in bns:
        bn.momentum = 0.1
        n = bn.num_features
        std = bn.running_var.sqrt()
        bn.running_mean.add_(torch.randn(n, generator=gen) * 0.1 * std)
        bn.running_var.mul_(torch.rand(n, generator=gen) * 0.5 + 0.75)
    fc = model.get_classifier()
    fc.weight.copy_(torch.randn(fc.weight.shape, generator=gen) / math.sqrt(fc.in_features))
    fc.bias.copy_(torch.randn(fc.bias.shape, generator=gen) * 0.1)
    model.eval()


def _features_key(name):
    # FeatureListNet flattens the `stem` and `stages` Sequentials: `stages_2.x` is `stages.2.x`.
    return re.sub(r"^(stem|stages)_", r"\1.", name)


def run(name, out_dir, sizes, seed):
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    randomize(model, seed)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, f"{name}.safetensors"))

    features = timm.create_model(name, pretrained=False, features_only=True)
    translated = {k: state[_features_key(k)] for k in features.state_dict()}
    features.load_state_dict(translated, strict=True)
    features.eval()
    reductions = features.feature_info.reduction()

    arrays = {}
    rng = np.random.RandomState(seed)
    inputs = {size: rng.standard_normal((1, size, size, 3)).astype(np.float32) for size in sizes}
    with torch.no_grad():
        for dtype, prefix in ((torch.float32, "f32"), (torch.float64, "f64")):
            model.to(dtype)
            features.to(dtype)
            for size, x in inputs.items():
                arrays[f"input_{size}"] = x
                xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(dtype)
                outs = features(xt)
                # CspNet.forward is forward_head(forward_features(x)), and forward_features is
                # the last stage's output, i.e. the last feature: one pass gives both.
                logits = model.forward_head(outs[-1])
                if prefix == "f32" and size == sizes[0]:
                    direct = model(xt)
                    assert torch.allclose(direct, logits, rtol=0, atol=1e-5), "forward mismatch"
                arrays[f"{prefix}_logits_{size}"] = logits.numpy()
                # timm lists the stem first; keras_csp's pyramid starts with the first stage.
                for reduction, out in zip(reductions[1:], outs[1:]):
                    level = int(round(math.log2(reduction)))
                    arrays[f"{prefix}_P{level}_{size}"] = out.numpy().transpose(0, 2, 3, 1).copy()
    np.savez(os.path.join(out_dir, f"{name}.npz"), **arrays)
    meta = {
        "model": name,
        "seed": seed,
        "sizes": list(sizes),
        "levels": [int(round(math.log2(r))) for r in reductions[1:]],
        "timm": timm.__version__,
        "torch": torch.__version__,
    }
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    for name in args.models:
        run(name, args.out_dir, args.sizes, args.seed)
        print(f"{name}: written", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
