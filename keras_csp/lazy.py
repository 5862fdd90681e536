"""Lazy package attributes: names that import their module on first use.

`keras_csp`, `keras_csp.export` and `keras_csp.train` list their public names here instead of
importing them, so that importing the package (and `keras_csp.lite`, the on-device runtime) starts
neither TensorFlow nor Keras.
"""

import importlib


def lazy_attributes(package, exports, submodules=()):
    """`(__getattr__, __dir__, __all__)` for `package`.

    Args:
        package: the package's `__name__`.
        exports: `{name: module}`: `package.name` is `module.name`, imported on first use.
        submodules: names of submodules that `package.name` imports on first use.
    """
    namespace = importlib.import_module(package).__dict__
    names = sorted(exports) + list(submodules)

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__, names
