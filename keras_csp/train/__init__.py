"""Training CSP classifiers and detectors: `fit_classifier`, `fit_detector`, `keras-csp train`.

    result = keras_csp.train.fit_classifier(model="cspdarknet_small", data="shapes", epochs=5,
                                            output_dir="runs/shapes")
    result.summary["val_accuracy"], result.model          # trained float32 softmax model

One loop serves every strategy (`default`, `mirrored`, `multiworker`): a custom step run by
`strategy.run`, per-epoch data order fixed by the seed, atomic checkpoints each epoch (and every
`save_every_steps` steps) with lossless resume, TensorBoard logs, a Keras progress bar, and at the end
`learning_curves.png`, `summary.json` and `model.keras`. Options: `TrainConfig` (YAML keys, keyword
arguments and `keras-csp train` flags are the same names). Names load lazily, so importing this
package does not start TensorFlow.
"""

from keras_csp.lazy import lazy_attributes

_EXPORTS = {
    "TrainConfig": "keras_csp.train.config",
    "load_config": "keras_csp.train.config",
    "fit_classifier": "keras_csp.train.loop",
    "fit_detector": "keras_csp.train.loop",
    "TrainResult": "keras_csp.train.loop",
    "SMALL_MODELS": "keras_csp.train.models",
    "plot_curves": "keras_csp.train.report",
}
_SUBMODULES = ("config", "loop", "models", "checkpoint", "distribute", "report", "tasks", "cli", "demo")

__getattr__, __dir__, __all__ = lazy_attributes(__name__, _EXPORTS, _SUBMODULES)
