"""The applications layer: `build_model` (graph + weights), the `keras.applications`-style
functions (`CSPResNeXt50(...)`) and `load_model`.

It sits above `keras_csp.weights` and the architectures of `keras_csp.models` (ARCHITECTURE.md).
The names load lazily, as `keras_csp`'s do: `load_model` registers the detector, which needs
keras-cv, and building a classifier should not pay for that.
"""

from keras_csp.lazy import lazy_attributes

_FUNCTIONS = (
    "ALL_APPLICATIONS", "APPLICATIONS", "EXTRA_APPLICATIONS", "CSPDarknet53", "CSPDenseNet121",
    "CSPDenseNet201", "CSPPeleeNet", "CSPResNet10", "CSPResNet50", "CSPResNeXt50", "Darknet53",
    "DenseNet121", "DenseNet201", "PeleeNet", "ResNet10", "ResNet50", "ResNeXt50",
)
_EXPORTS = {
    **{name: "keras_csp.applications.functions" for name in _FUNCTIONS},
    "build_model": "keras_csp.applications.factory",
    "load_model": "keras_csp.applications.saving",
}

__getattr__, __dir__, __all__ = lazy_attributes(__name__, _EXPORTS)
