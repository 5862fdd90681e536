"""The peer implementations `benchmarks.inference` compares against: keras-hub and timm.

Both are built with random weights (presets and pretrained checkpoints cannot be downloaded here,
and latency does not depend on the weights); timm can load the same timm-format checkpoint as
keras_csp. Only architectures that exist in the peer are compared: `resnext50`, `resnet50` etc. of
this package are the authors' darknet-cfg baselines, which neither keras-hub nor timm has.

Imports are inside the functions: this module is imported in venvs that have only one of the
peers (timm lives in `.venv-ref`, keras-hub in the main `.venv`).
"""

# keras_csp name -> timm model name (the same architecture; keras_csp's layer names are timm's
# module paths, so a timm state dict loads with `keras_csp.build_model(name, weights=path)`).
TIMM_MODELS = {
    "cspresnet50": "cspresnet50",
    "cspresnext50": "cspresnext50",
    "cspdarknet53": "cspdarknet53",
    "darknet53": "darknet53",
}

# keras_csp name -> timm architecture whose config keras-hub's timm converter knows; the presets
# csp_resnet_50_ra_imagenet, csp_resnext_50_ra_imagenet, csp_darknet_53_ra_imagenet and
# darknet_53_imagenet are built from exactly these configs
# (keras_hub/src/utils/timm/convert_cspnet.py, `convert_backbone_config`).
KERAS_HUB_MODELS = {
    "cspresnet50": "cspresnet50",
    "cspresnext50": "cspresnext50",
    "cspdarknet53": "cspdarknet53",
    "darknet53": "darknet53",
}

# A copy of keras-hub 0.32's `convert_backbone_config`, used only if that private module moves.
_KERAS_HUB_FALLBACK = {
    "cspresnet50": dict(
        stem_filters=64, stem_kernel_size=7, stem_strides=4, stackwise_depth=[3, 3, 5, 2],
        stackwise_strides=[1, 2, 2, 2], stackwise_num_filters=[128, 256, 512, 1024],
        block_type="bottleneck_block", stage_type="csp", bottle_ratio=[0.5], block_ratio=[1.0],
        expand_ratio=[2.0], stem_padding="valid", stem_pooling="max", avg_down=False, groups=1,
        down_growth=False, cross_linear=True,
    ),
    "cspresnext50": dict(
        stem_filters=64, stem_kernel_size=7, stem_strides=4, stackwise_depth=[3, 3, 5, 2],
        stackwise_num_filters=[256, 512, 1024, 2048], bottle_ratio=[1.0], block_ratio=[0.5],
        expand_ratio=[1.0], stage_type="csp", block_type="bottleneck_block", stem_pooling="max",
        stackwise_strides=[1, 2, 2, 2], groups=32, stem_padding="valid", avg_down=False,
        down_growth=False, cross_linear=True,
    ),
    "cspdarknet53": dict(
        stem_filters=32, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 2, 8, 8, 4],
        stackwise_num_filters=[64, 128, 256, 512, 1024], bottle_ratio=(0.5, 1.0),
        block_ratio=(1.0, 0.5), expand_ratio=(2.0, 1.0), stem_padding="same", stem_pooling=None,
        stage_type="csp", groups=1, block_type="dark_block", down_growth=True,
        stackwise_strides=[2, 2, 2, 2, 2], avg_down=False, cross_linear=False,
    ),
    "darknet53": dict(
        stem_filters=32, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 2, 8, 8, 4],
        stackwise_num_filters=[64, 128, 256, 512, 1024], bottle_ratio=[0.5], block_ratio=[1.0],
        groups=1, expand_ratio=[1.0], stage_type="dark", block_type="dark_block",
        stem_pooling=None, stackwise_strides=[2, 2, 2, 2, 2], stem_padding="same", avg_down=False,
        down_growth=False, cross_linear=False,
    ),
}


def keras_hub_config(name):
    """CSPNetBackbone keyword arguments of keras-hub's preset for `name` (a keras_csp name)."""
    arch = KERAS_HUB_MODELS[name]
    try:
        from keras_hub.src.utils.timm.convert_cspnet import convert_backbone_config
    except ImportError:
        return dict(_KERAS_HUB_FALLBACK[name])
    return convert_backbone_config({"architecture": arch})


def build_keras_hub(name, input_size, classes=1000, activation=None):
    """keras-hub's CSPNetImageClassifier (CSPNetBackbone + average pooling + Dense), random init.

    The classifier head matches keras_csp's `include_top=True` model (global average pooling and
    a 1000-way Dense), so both compute the same network.
    """
    import keras_hub

    backbone = keras_hub.models.CSPNetBackbone(
        **keras_hub_config(name), image_shape=(input_size, input_size, 3)
    )
    return keras_hub.models.CSPNetImageClassifier(
        backbone=backbone, num_classes=classes, activation=activation
    )


def build_timm(name, checkpoint=None):
    """timm's model for `name` (eval mode), random init or the given safetensors state dict."""
    import timm

    model = timm.create_model(TIMM_MODELS[name], pretrained=False)
    if checkpoint:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(checkpoint), strict=True)
    return model.eval()
