"""What the notebooks in `notebooks/` compute: cached γ/fusion sweeps, latency, plots, training.

The notebooks hold widgets and prose only; every number they show comes from here, and from
`keras_csp.profile`, `keras_csp.train`, `keras_csp.export` and `keras_csp.lite` underneath.

    from keras_csp import explore
    cache = explore.ProfileCache()
    cache.get("PeleeNet", 0.5, "last").params           # profiled once, then read from the cache
    cache.sweep("PeleeNet", explore.gamma_grid(0.25))   # {fusion: [ProfileResult per γ]}
    explore.plot_sweep(cache, "PeleeNet", explore.gamma_grid(0.25))

    runs = explore.train_variants(epochs=1, train_size=256)   # full / first / last / none
    explore.plot_learning_curves(runs); explore.plot_stages({f: r.profile for f, r in runs.items()})

    loaded = explore.load_or_train("saved_models")   # a trained classifier, or a quick one
    rows = explore.export_variants(loaded.model, "out/", calibration_images)

One module per idea: `families` (the models and the γ range), `paper` (the paper's points),
`profiles` (the profile cache), `latency`, `tables` (HTML), `plots`, `variants` (notebook 02's
training), `classifier`, `exports` and `detector` (notebook 03), `quick` (the notebooks' CI mode).
Every public name is here, as `explore.NAME`.

Only NumPy is imported at module level; TensorFlow, Keras and matplotlib load on first use.
"""

from keras_csp.explore.classifier import (
    HELD_OUT_SEED,
    TRAINED_MODEL_FILES,
    LoadedModel,
    held_out_images,
    load_or_train,
)
from keras_csp.explore.detector import (
    DetectorRun,
    detector_backbone,
    held_out_detection_images,
    train_detector,
)
from keras_csp.explore.exports import (
    EXPORT_MODES,
    ExportRow,
    accelerator_cell,
    evaluate_exports,
    export_table_rows,
    export_variants,
    lite_predict,
)
from keras_csp.explore.families import (
    FAMILIES,
    FUSION_COLORS,
    FUSIONS,
    GAMMA_MAX,
    GAMMA_MIN,
    GAMMA_STEP,
    check_family,
    clamp_gamma,
    default_input_size,
    gamma_grid,
)
from keras_csp.explore.latency import LatencyResult, lite_latency, measure_latency, time_calls
from keras_csp.explore.paper import (
    PAPER_POINTS,
    PAPER_TABLE1,
    PAPER_TABLE3,
    PaperPoint,
    paper_points,
)
from keras_csp.explore.plots import (
    figure_png,
    plot_detections,
    plot_learning_curves,
    plot_predictions,
    plot_stages,
    plot_sweep,
)
from keras_csp.explore.profiles import ProfileCache, ProfileResult
from keras_csp.explore.quick import QUICK_ENV, quick_mode
from keras_csp.explore.tables import html_table, profile_html
from keras_csp.explore.variants import (
    VARIANT_LABELS,
    VARIANTS,
    VariantRun,
    train_variants,
    variants_table,
)

__all__ = [
    "DetectorRun", "EXPORT_MODES", "ExportRow", "FAMILIES", "FUSIONS", "FUSION_COLORS",
    "GAMMA_MAX", "GAMMA_MIN", "GAMMA_STEP", "HELD_OUT_SEED", "LatencyResult", "LoadedModel",
    "PAPER_POINTS", "PAPER_TABLE1", "PAPER_TABLE3", "PaperPoint", "ProfileCache", "ProfileResult",
    "QUICK_ENV", "TRAINED_MODEL_FILES", "VARIANTS", "VARIANT_LABELS", "VariantRun",
    "accelerator_cell", "check_family", "clamp_gamma", "default_input_size", "detector_backbone",
    "evaluate_exports", "export_table_rows", "export_variants", "figure_png", "gamma_grid",
    "held_out_detection_images", "held_out_images", "html_table", "lite_latency", "lite_predict",
    "load_or_train", "measure_latency", "paper_points", "plot_detections", "plot_learning_curves",
    "plot_predictions", "plot_stages", "plot_sweep", "profile_html", "quick_mode", "time_calls",
    "train_detector", "train_variants", "variants_table",
]
