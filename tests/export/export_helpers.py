"""Models, configs and images shared by the export tests."""

import dataclasses
import os
import stat

import keras
import numpy as np
from PIL import Image

import keras_csp
from keras_csp.models.config import (
    MODEL_CONFIGS,
    DenseStagesConfig,
    ModelConfig,
    StagesConfig,
    StemConfig,
)

SIZE = 32
# tests/conftest.py's TINY_CONFIG (kept here too: module-scoped fixtures cannot use its fixture).
TINY = ModelConfig(
    stem=StemConfig(filters=16, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(32, 64), depth=(1, 2), strides=2, bottle_ratio=0.5),
    default_size=32,
)


def randomize_batchnorm(model, seed=0):
    """Non-trivial BN statistics, so that a wrong fold or a skipped layer shows in the outputs."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            randomize_batchnorm(layer, seed + 1)
        elif isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0, 0.1, beta.shape).astype("float32"),
                rng.normal(0, 0.1, mean.shape).astype("float32"),
                rng.uniform(0.5, 1.5, var.shape).astype("float32"),
            ])
    return model


def tiny_classifier(config, size=SIZE, classes=5, **kwargs):
    model = keras_csp.build_model(config, input_shape=(size, size, 3), classes=classes, **kwargs)
    return randomize_batchnorm(model)


def slim_config(name):
    """A family's config at depth 1 and a quarter of the width: the same layer types, fast."""
    config = MODEL_CONFIGS[name]
    stages = config.stages
    depth = (1,) * stages.num_stages
    stem = dataclasses.replace(config.stem, filters=max(8, config.stem.filters // 4))
    if isinstance(stages, DenseStagesConfig):
        growth = max(8, stages.growth_rate // 4)
        stages = dataclasses.replace(stages, depth=depth, growth_rate=growth)
    else:
        groups = stages.groups
        filters = tuple(max(4 * groups, f // 4) for f in stages.per_stage("filters"))
        stages = dataclasses.replace(stages, filters=filters, depth=depth)
    return dataclasses.replace(config, stem=stem, stages=stages)


def variant_configs(tiny_config):
    """Tiny configs that together use every layer kind of the package's families."""
    return {
        "csp": tiny_config,
        "residual-max2": dataclasses.replace(
            tiny_config,
            stem=StemConfig(16, 3, 2, pool="max2"),
            stages=dataclasses.replace(
                tiny_config.stages, stage_type="residual", bottle_ratio=0.25
            ),
        ),
        "edge-pool-grouped": dataclasses.replace(
            tiny_config,
            stem=StemConfig(16, 3, 2, pool="edge_max3"),
            stages=dataclasses.replace(tiny_config.stages, groups=4, cross_linear=True),
        ),
        "dark": dataclasses.replace(
            tiny_config,
            stages=dataclasses.replace(tiny_config.stages, stage_type="dark", block_type="dark"),
        ),
    }


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def mode(path):
    """The permission bits of a file or folder."""
    return stat.S_IMODE(os.stat(path).st_mode)


def open_mode(directory=False):
    """The mode `open()` (0666) or `mkdir()` (0777) gives a new file or folder under the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask
