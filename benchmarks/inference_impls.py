"""The names of `benchmarks.inference`'s rows: our implementations, the peers', and the models."""


KERAS_IMPLS = ("keras", "keras-xla", "keras-optimized", "keras-optimized-xla", "keras-frozen")
TFLITE_IMPLS = ("tflite-fp32", "tflite-fp16", "tflite-int8")
IMPLS = KERAS_IMPLS + TFLITE_IMPLS
PEERS = ("keras-hub", "timm")
QUANTIZE = {"fp32": "none", "fp16": "fp16", "int8": "int8"}
# Architectures with a published checkpoint (keras_csp.weights.registry; weights="imagenet").
IMAGENET_MODELS = ("cspresnet50", "cspresnext50", "cspdarknet53", "darknet53")
# Impl names of the peers' rows.
PEER_IMPLS = ("keras-hub", "keras-hub-xla", "keras-hub-tflite-fp32", "timm")


def twin_of(name):
    """The non-CSP twin of a CSP model name ("cspresnext50" -> "resnext50"), or None."""
    return name[3:] if name.startswith("csp") else None
