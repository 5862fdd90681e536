"""Which TFLite interpreter runs a model: LiteRT, tflite-runtime or TensorFlow's, the first that
imports (or the one `KERAS_CSP_LITE_BACKEND` or the caller names)."""

import importlib
import os

BACKENDS = ("litert", "tflite-runtime", "tensorflow")
_BACKEND_MODULES = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow",
}


def interpreter_class(backend=None):
    """`(backend name, Interpreter class)`: the first runtime that imports, or the one asked for."""
    backend = backend or os.environ.get("KERAS_CSP_LITE_BACKEND") or None
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} does not exist; allowed: {', '.join(BACKENDS)}.")
    for name in (backend,) if backend else BACKENDS:
        try:
            module = importlib.import_module(_BACKEND_MODULES[name])
        except ImportError:
            continue
        return name, (module.lite.Interpreter if name == "tensorflow" else module.Interpreter)
    raise ImportError(
        "no TFLite runtime found; install one: pip install ai-edge-litert (or tflite-runtime, or "
        "tensorflow)" + (f" (asked for backend={backend!r})" if backend else "")
    )

