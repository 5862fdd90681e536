"""One builder for every `ModelConfig`: the network's graph, with the `keras.applications` checks.

Weights are not this module's business: `keras_csp.build_model` (applications/factory.py, above
`keras_csp.weights`) builds the network here and then loads them, so the weights package may use
this builder without an import circle.

Models are functional `keras.Model`s of plain layers named after timm's modules (`stem.conv1`,
`stages.2.blocks.0.conv2`, `head.fc`), or torchvision's for DenseNet and PeleeNet
(`features.denseblock1.denselayer1.conv1`, `classifier`). With `include_top=False` and no pooling
the model returns a dict of pyramid features keyed `P{k}` for stride 2**k (`P3`, `P4`, `P5` at
strides 8, 16, 32, and the earlier levels), the contract between backbones and necks.

For DenseNet and PeleeNet, whose stages end by pooling, `P{k}` is the last tensor at stride 2**k:
the transition's output before its pool (the concatenation before the pool in a CSP stage), and
the final block's output (after `features.norm5` in DenseNet) for `P5`. This is where Pelee's
detector takes its features (stage 3 at stride 16, stage 4 at stride 32); the maps after a pool
are only a subsampled copy of the previous stage's. torchvision/timm tap DenseNet one step
earlier, at the dense block outputs.
"""

import functools
import math

import keras

from keras_csp.layers.blocks import BLOCKS
from keras_csp.layers.conv import (
    ACTIVATIONS,
    activation_layer,
    batch_norm,
    bn_act_conv,
    conv_bn_act,
)
from keras_csp.layers.dense import (
    DENSE_LAYERS,
    dense_block,
    densenet_stem,
    densenet_transition,
    pelee_stem_block,
    peleenet_bottleneck,
    peleenet_transition,
)
from keras_csp.layers.ops import EdgePadMaxPooling2D
from keras_csp.layers.stages import (
    check_fusion,
    check_part_ratio,
    csp_stage,
    partial_dense_stage,
    plain_stage,
    residual_stage,
    split_channels,
)
from keras_csp.models.config import ModelConfig, get_config
from keras_csp.registry import MODEL_FUSIONS

POOLINGS = (None, "avg", "max")
# MODEL_FUSIONS (keras_csp/registry.py): a CSP fusion, or "none", which swaps every CSP stage for
# the plain stage with the same blocks, for comparison.


def total_stride(config):
    stride = config.stem.strides * (2 if config.stem.pool else 1)
    for s in config.stages.per_stage("strides"):
        stride *= s
    return stride


def _stem(x, config):
    stem = config.stem
    if stem.kind == "densenet":
        return densenet_stem(x, stem.filters, config.activation)
    if stem.kind == "pelee":
        return pelee_stem_block(x, stem.filters, config.activation)
    if stem.kind != "conv":
        raise ValueError(f"stem kind={stem.kind!r}; allowed: 'conv', 'densenet' or 'pelee'.")
    x = conv_bn_act(
        x, stem.filters, stem.kernel_size, stem.strides, activation=config.activation,
        name="stem.conv1",
    )
    if stem.pool == "edge_max3":
        x = EdgePadMaxPooling2D(3, 2, 1, name="stem.pool")(x)
    elif stem.pool == "max2":
        # Darknet's [maxpool] size=2 pads bottom/right by one and ignores the pad on odd sizes,
        # which is exactly Keras' "same" pooling.
        x = keras.layers.MaxPooling2D(2, 2, padding="same", name="stem.pool")(x)
    elif stem.pool is not None:
        raise ValueError(f"stem pool={stem.pool!r}; allowed: 'edge_max3', 'max2' or None.")
    return x


def _stage(x, config, i, part_ratio, fusion):
    stages = config.stages
    filters = stages.per_stage("filters")[i]
    depth = stages.per_stage("depth")[i]
    strides = stages.per_stage("strides")[i]
    bottle_ratio = stages.per_stage("bottle_ratio")[i]
    act = config.activation
    name = f"stages.{i}"
    stage_type = stages.per_stage("stage_type")[i]
    if stage_type == "residual":
        return residual_stage(
            x, filters, depth, name, strides, bottle_ratio, stages.groups, activation=act,
            block_type=stages.block_type,
        )
    block = functools.partial(
        BLOCKS[stages.block_type], bottle_ratio=bottle_ratio, groups=stages.groups, activation=act
    )
    if stage_type == "dark" or fusion == "none":
        return plain_stage(x, filters, depth, block, name, strides, stages.groups, act)
    return csp_stage(
        x,
        filters,
        depth,
        block,
        name,
        strides=strides,
        part_ratio=part_ratio,
        fusion=fusion,
        expand_ratio=stages.per_stage("expand_ratio")[i],
        down_groups=stages.groups,
        down_growth=stages.down_growth,
        cross_linear=stages.cross_linear,
        channel_multiple=stages.groups,
        activation=act,
        conv_exp=stages.conv_exp,
    )


def _preact_unit(x, filters, name, activation):
    return bn_act_conv(x, filters, 1, activation=activation, name=name)


def _postact_unit(x, filters, name, activation):
    return conv_bn_act(x, filters, 1, activation=activation, name=name, norm_name="norm")


def _dense_layer_name(stage, index):
    # torchvision counts dense blocks and layers from 1.
    return f"features.denseblock{stage}.denselayer{index + 1}"


def _check_pelee_split(channels, part_ratio, stages, i, name):
    """PeleeNet's dense layers need 8 input channels; say which part_ratio starves them."""
    _, dense_channels = split_channels(channels, part_ratio, 1, name)
    width = stages.per_stage("bottleneck_width")[i]
    if peleenet_bottleneck(dense_channels, stages.growth_rate, width) < 1:
        raise ValueError(
            f"part_ratio={part_ratio} leaves {dense_channels} of the {channels} channels of "
            f"{name!r} to its partial dense block, but PeleeNet's two-way dense layers need at "
            "least 8; allowed: a smaller part_ratio."
        )


def _densenet_ending(x, filters=None, name=None, activation="relu"):
    """DenseNet's `features.norm5` and its ReLU after the last dense block (no transition)."""
    x = batch_norm("features.norm5")(x)
    act = activation_layer(activation, "features.relu5")
    return act(x) if act is not None else x


def _dense_pyramid(x, config, part_ratio, fusion):
    """Dense blocks and transitions of DenseNet/PeleeNet and their CSP variants.

    A CSP stage that pools ends with the partial transition that `fusion` names. The last stage
    does not pool and has no partial transition: its two paths are concatenated and go through the
    plain network's own ending over the full width (PeleeNet's `transition4` 1x1 conv, DenseNet's
    `norm5`), i.e. it always fuses "first". The partial transition is the CSP form of the pooling
    transitions between dense blocks (the paper's Sec. 3.1); the ending is the projection that
    feeds the classifier, and a second transition there would only add cost.
    """
    stages = config.stages
    act = config.activation
    layer_fn = DENSE_LAYERS[stages.layer_type]
    transition = densenet_transition if stages.preactivation else peleenet_transition
    if stages.preactivation:
        unit = functools.partial(_preact_unit, activation=act)
        ending = functools.partial(_densenet_ending, activation=act)
    else:
        unit = ending = functools.partial(_postact_unit, activation=act)
    stride = config.stem.strides * (2 if config.stem.pool else 1)
    features = {}
    for i in range(stages.num_stages):
        last = i == stages.num_stages - 1
        depth = stages.depth[i]
        layer = functools.partial(
            layer_fn,
            growth_rate=stages.growth_rate,
            bottleneck_width=stages.per_stage("bottleneck_width")[i],
            activation=act,
        )
        grown = x.shape[-1] + depth * stages.growth_rate
        filters = grown if last else int(grown * stages.compression)
        if stages.per_stage("stage_type")[i] == "csp" and fusion != "none":
            name = f"features.csp{i + 1}"
            if stages.layer_type == "two_way":
                _check_pelee_split(x.shape[-1], part_ratio, stages, i, name)
            x, tap = partial_dense_stage(
                x,
                filters,
                depth,
                layer,
                name,
                part_ratio=part_ratio,
                fusion="first" if last else fusion,
                activation=act,
                transition_b_filters="complement",
                pool=None if last else "avg",
                unit=ending if last else unit,
                block_name=functools.partial(_dense_layer_name, i + 1),
                return_unpooled=True,
            )
        else:
            x = tap = dense_block(x, depth, layer, f"features.denseblock{i + 1}")
            if last and stages.preactivation:
                x = tap = ending(x)
            else:
                x, tap = transition(
                    x, filters, f"features.transition{i + 1}", pool=not last, activation=act
                )
        features[f"P{int(math.log2(stride))}"] = tap
        stride *= stages.strides[i]
    return features


def pyramid_features(inputs, config, part_ratio=0.5, fusion="full"):
    """Builds stem and stages on `inputs`; returns `{"P{k}": tensor}` for each stage's stride 2**k."""
    if config.is_dense:
        return _dense_pyramid(_stem(inputs, config), config, part_ratio, fusion)
    x = _stem(inputs, config)
    stride = total_stride(config) // math.prod(config.stages.per_stage("strides"))
    features = {}
    for i in range(config.stages.num_stages):
        x = _stage(x, config, i, part_ratio, fusion)
        stride *= config.stages.per_stage("strides")[i]
        features[f"P{int(math.log2(stride))}"] = x
    return features


def _check_input_shape(input_shape, min_size, weights):
    if input_shape is None:
        return (None, None, 3)
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"input_shape={input_shape!r} must have 3 entries (height, width, channels)."
        )
    height, width, channels = shape
    if weights is not None and channels != 3:
        raise ValueError(
            f"input_shape={input_shape!r} has {channels} channels, but weights={weights!r} were "
            "trained on RGB images; allowed: 3 channels, or weights=None."
        )
    if channels is None or channels < 1:
        raise ValueError(f"input_shape={input_shape!r} needs a positive channel count.")
    for size in (height, width):
        if size is not None and size < min_size:
            raise ValueError(
                f"input_shape={input_shape!r} is smaller than the network's total stride; "
                f"allowed: height and width >= {min_size} (or None)."
            )
    return shape


def check_arguments(include_top, pooling, classes, classifier_activation):
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not allowed; allowed: None, 'avg' or 'max'.")
    if include_top:
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise ValueError(
                f"classes={classes!r} is not allowed with include_top=True; allowed: an integer >= 1."
            )
        keras.activations.get(classifier_activation)


def build_network(
    model,
    include_top=True,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    part_ratio=0.5,
    fusion="full",
    name=None,
    weights=None,
):
    """The network of a named architecture (or a `ModelConfig`), randomly initialized.

    The graph alone: `build_model` (applications/factory.py) calls this, then loads `weights`.
    `weights` is only checked here against the input's channels (pretrained weights need RGB), so
    that a wrong input shape fails before anything is built. See `keras_csp.CSPResNeXt50` for the
    other arguments.
    """
    config = model if isinstance(model, ModelConfig) else get_config(model)
    arch = None if isinstance(model, ModelConfig) else str(model).lower()
    check_part_ratio(part_ratio)
    check_fusion(fusion, MODEL_FUSIONS)
    check_arguments(include_top, pooling, classes, classifier_activation)
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"activation={config.activation!r}; allowed: {', '.join(ACTIVATIONS)}.")
    if input_tensor is not None and input_shape is None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = _check_input_shape(input_shape, total_stride(config), weights)

    if input_tensor is None:
        inputs = keras.Input(shape=input_shape, name="images")
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, shape=input_shape, name="images")

    features = pyramid_features(inputs, config, part_ratio, fusion)
    x = features[max(features, key=lambda k: int(k[1:]))]
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name=config.global_pool_name)(x)
        if config.head_dropout:
            x = keras.layers.Dropout(config.head_dropout, name="dropout")(x)
        outputs = keras.layers.Dense(
            classes, activation=classifier_activation, name=config.classifier_name
        )(x)
    elif pooling == "avg":
        outputs = keras.layers.GlobalAveragePooling2D(name=config.global_pool_name)(x)
    elif pooling == "max":
        outputs = keras.layers.GlobalMaxPooling2D(name=config.global_pool_name)(x)
    else:
        outputs = features

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    return keras.Model(inputs, outputs, name=name or arch or "csp_model")
