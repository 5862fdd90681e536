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

Only NumPy is imported at module level; TensorFlow, Keras and matplotlib load on first use.
"""

import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

# --- the families of notebook 01 -----------------------------------------------------------------

# Family shown in the notebook -> (CSP model, its non-CSP baseline), names of keras_csp.models.
FAMILIES = {
    "ResNeXt": ("cspresnext50", "resnext50"),
    "Darknet": ("cspdarknet53", "darknet53"),
    "DenseNet": ("cspdensenet121", "densenet121"),
    "PeleeNet": ("csppeleenet", "peleenet"),
}
FUSIONS = ("full", "first", "last")
# The γ range the widgets allow: strictly inside (0, 1), as `build_model` requires.
GAMMA_MIN, GAMMA_MAX, GAMMA_STEP = 0.05, 0.95, 0.05
FUSION_COLORS = {"full": "tab:blue", "first": "tab:orange", "last": "tab:green", "none": "black"}


def _figure(size):
    """A matplotlib Figure outside pyplot: no backend, never shown twice; `display(fig)` in a
    notebook, or `figure_png(fig)` for a widget."""
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def check_family(family):
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not allowed; allowed: {', '.join(FAMILIES)}.")
    return family


def gamma_grid(step=GAMMA_STEP, low=GAMMA_MIN, high=GAMMA_MAX):
    """The γ values from `low` to `high` in steps of `step`, rounded to 4 places."""
    if not (0.0 < low <= high < 1.0) or not step > 0:
        raise ValueError(
            f"gamma_grid(step={step!r}, low={low!r}, high={high!r}); allowed: 0 < low <= high < 1 "
            "and step > 0."
        )
    count = int(np.floor((high - low) / step + 1e-9)) + 1
    return tuple(round(low + i * step, 4) for i in range(count))


def clamp_gamma(gamma):
    """γ snapped into the widgets' range and onto their step (what a slider would allow)."""
    gamma = min(max(float(gamma), GAMMA_MIN), GAMMA_MAX)
    return round(round(gamma / GAMMA_STEP) * GAMMA_STEP, 4)


def default_input_size(family):
    from keras_csp.models.config import get_config

    return get_config(FAMILIES[check_family(family)][0]).default_size


# --- the paper's numbers --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PaperPoint:
    table: str
    family: str
    label: str
    fusion: str  # "full" / "first" / "last" in this package's terms, "" when the paper does not say
    gamma: float
    bflops: float
    top1: float
    baseline_bflops: float

    @property
    def flops_ratio(self):
        return self.bflops / self.baseline_bflops


_PELEE_BASELINE_BFLOPS = 1.017  # PeleeNet [37], Table 1 (70.7 % top-1)
# CSPNet paper (arXiv 1911.11929), Table 1 "Ablation of CSPNet on ImageNet" (PeleeNet backbone),
# as transcribed in the project's fact sheet of the paper's numbers (shared/reference/
# paper_tables.md, section 1). The paper's rows map to this package's fusions as README.md's
# Table-1 reproduction does: "CSP (fusion first)" -> "first", "CSP (fusion last)" -> "last",
# "CSPPeleeNet" -> "full".
# BFLOPs count 2 per multiply-add, probably at 224x224 (inferred in paper_tables.md).
PAPER_TABLE1 = tuple(
    PaperPoint("Table 1", "PeleeNet", label, fusion, gamma, bflops, top1, _PELEE_BASELINE_BFLOPS)
    for label, fusion, gamma, top1, bflops in (
        ("CSP (fusion first)", "first", 0.75, 68.4, 0.649),
        ("CSP (fusion first)", "first", 0.5, 69.2, 0.755),
        ("CSP (fusion first)", "first", 0.25, 70.0, 0.861),
        ("CSP (fusion last)", "last", 0.75, 69.2, 0.716),
        ("CSP (fusion last)", "last", 0.5, 70.6, 0.804),
        ("CSP (fusion last)", "last", 0.25, 70.8, 0.902),
        ("CSPPeleeNet", "full", 0.75, 70.4, 0.800),
        ("CSPPeleeNet", "full", 0.5, 70.9, 0.888),
        ("CSPPeleeNet", "full", 0.25, 71.5, 0.986),
    )
)
# The same paper, Table 3 (paper_tables.md, section 3): CSPResNeXt-50 7.93 BFLOPs (77.9 %) against
# ResNeXt-50 10.11 (77.8 %), at the authors' 256x256, with their default split γ = 0.5. The paper
# does not name its fusion, so the point is drawn without one.
PAPER_TABLE3 = (PaperPoint("Table 3", "ResNeXt", "CSPResNeXt-50", "", 0.5, 7.93, 77.9, 10.11),)
PAPER_POINTS = PAPER_TABLE1 + PAPER_TABLE3


def paper_points(family):
    return [p for p in PAPER_POINTS if p.family == family]


# --- profiles, cached -----------------------------------------------------------------------------

@dataclasses.dataclass
class ProfileResult:
    """One (family, γ, fusion) point: `keras_csp.profile`'s numbers, or why it cannot be built."""

    family: str
    model: str
    part_ratio: float
    fusion: str  # "full" / "first" / "last", or "none" for the non-CSP baseline
    input_size: int
    params: int = None
    flops: int = None
    activation_bytes: int = None
    stages: list = dataclasses.field(default_factory=list)
    error: str = None
    seconds: float = 0.0

    @property
    def ok(self):
        return self.error is None

    @property
    def gflops(self):
        return None if self.flops is None else self.flops / 1e9

    @property
    def activation_mib(self):
        return None if self.activation_bytes is None else self.activation_bytes / 2**20


def _profile_quietly(name, input_size, **kwargs):
    """`keras_csp.profile` of a model built in a `StatelessScope`: weights are never initialized."""
    import keras

    from keras_csp.profiler import profile

    with keras.StatelessScope():
        return profile(name, (input_size, input_size, 3), **kwargs)


class ProfileCache:
    """`keras_csp.profile` results per (family, γ, fusion, input size), each computed once.

    Building a full-size model to profile it takes a second or two on a CPU; a cached point answers
    in microseconds. A γ that leaves a CSP path empty (the `ValueError` of `build_model`) is cached
    as a `ProfileResult` with `error` set, so that callers show the message instead of a traceback.
    """

    def __init__(self, input_size=None):
        self.input_size = input_size
        self._results = {}
        self._latency = {}

    def size_of(self, family):
        return self.input_size or default_input_size(family)

    def _key(self, family, part_ratio, fusion):
        check_family(family)
        if fusion == "none":
            return (family, None, "none", self.size_of(family))
        if fusion not in FUSIONS:
            raise ValueError(
                f"fusion={fusion!r} is not allowed; allowed: {', '.join(FUSIONS)} or 'none'."
            )
        return (family, round(float(part_ratio), 4), fusion, self.size_of(family))

    def cached(self, family, part_ratio, fusion):
        return self._key(family, part_ratio, fusion) in self._results

    def __len__(self):
        return len(self._results)

    def get(self, family, part_ratio=0.5, fusion="full"):
        """The `ProfileResult` of one point (`fusion="none"`: the family's non-CSP baseline)."""
        key = self._key(family, part_ratio, fusion)
        if key not in self._results:
            self._results[key] = self._compute(*key)
        return self._results[key]

    def baseline(self, family):
        return self.get(family, None, "none")

    def _compute(self, family, part_ratio, fusion, size):
        csp, plain = FAMILIES[family]
        name = plain if fusion == "none" else csp
        kwargs = {} if fusion == "none" else {"part_ratio": part_ratio, "fusion": fusion}
        result = ProfileResult(family, name, part_ratio, fusion, size)
        start = time.perf_counter()
        try:
            p = _profile_quietly(name, size, **kwargs)
        except ValueError as e:
            result.error = str(e)
        else:
            result.params, result.flops = p.params, p.flops
            result.activation_bytes = p.activation_bytes
            result.stages = [dataclasses.asdict(s) for s in p.stages]
        result.seconds = time.perf_counter() - start
        return result

    def sweep(self, family, gammas, fusions=FUSIONS, progress=None):
        """`{fusion: [ProfileResult for each γ]}`, computing only what is not cached yet.

        `progress(done, total)` is called after each point (e.g. to move a progress bar).
        """
        todo = [(g, f) for f in fusions for g in gammas]
        for i, (g, f) in enumerate(todo):
            self.get(family, g, f)
            if progress is not None:
                progress(i + 1, len(todo))
        return {f: [self.get(family, g, f) for g in gammas] for f in fusions}

    def latency(self, family, part_ratio=0.5, fusion="full", runs=10, warmup=2):
        """Measured batch-1 CPU latency (a `LatencyResult`) of a point, cached; None if it cannot
        be built (see `get(...).error`)."""
        key = self._key(family, part_ratio, fusion)
        if not self.get(family, part_ratio, fusion).ok:
            return None
        if key not in self._latency or self._latency[key].runs < runs:
            csp, plain = FAMILIES[family]
            kwargs = {} if fusion == "none" else {"part_ratio": key[1], "fusion": fusion}
            name = plain if fusion == "none" else csp
            self._latency[key] = measure_latency(name, key[3], runs=runs, warmup=warmup, **kwargs)
        return self._latency[key]

    def cached_latency(self, family, part_ratio, fusion):
        return self._latency.get(self._key(family, part_ratio, fusion))


# --- latency --------------------------------------------------------------------------------------

@dataclasses.dataclass
class LatencyResult:
    model: str
    input_size: int
    runs: int
    median_ms: float
    min_ms: float
    times_ms: list

    def __str__(self):
        return (
            f"{self.model} at {self.input_size}x{self.input_size}, batch 1: median "
            f"{self.median_ms:.1f} ms (min {self.min_ms:.1f}) over {self.runs} runs"
        )


def time_calls(fn, runs=10, warmup=2):
    """Wall-clock milliseconds of `runs` calls of `fn()` after `warmup` untimed ones."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs!r}, warmup={warmup!r}; allowed: runs >= 1, warmup >= 0.")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure_latency(model, input_size=None, runs=10, warmup=2, **build_kwargs):
    """Median batch-1 latency on this machine's CPU of a traced forward pass (inference mode).

    Args:
        model: a model name (built with `build_kwargs`, random weights: latency does not depend on
            them) or a `keras.Model`.
        input_size: square input side (default: the name's default size, or the model's input).
    """
    import tensorflow as tf

    if isinstance(model, str):
        from keras_csp.models.builder import build_model
        from keras_csp.models.config import get_config

        input_size = input_size or get_config(model).default_size
        name = model
        model = build_model(model, input_shape=(input_size, input_size, 3), **build_kwargs)
    else:
        name = model.name
        input_size = input_size or model.input_shape[1]
    forward = tf.function(lambda x: model(x, training=False))
    x = tf.random.uniform((1, input_size, input_size, 3), seed=0)

    def call():
        out = forward(x)
        # Wait for the result: the first output's values reach the host.
        tf.nest.flatten(out)[0].numpy()

    times = time_calls(call, runs=runs, warmup=max(1, warmup))
    return LatencyResult(name, input_size, runs, statistics.median(times), min(times), times)


# --- what notebook 01 shows -----------------------------------------------------------------------

def _fmt(value, spec, suffix=""):
    return "–" if value is None else f"{value:{spec}}{suffix}"


def _ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.3f}"


_TABLE_STYLE = (
    "<style>.csp-table{border-collapse:collapse;margin:4px 0}"
    ".csp-table td,.csp-table th{padding:3px 12px;border-bottom:1px solid #ddd}"
    ".csp-table td{text-align:right;font-variant-numeric:tabular-nums}</style>"
)


def profile_html(result, baseline, latency=None, baseline_latency=None):
    """The notebook-01 table of one point against its baseline, as HTML.

    Stable classes for tests and styling: `csp-table`, `csp-params` (the CSP model's parameter
    count, formatted `21,616,168`), `csp-flops`, `csp-memory`, `csp-latency`, and `csp-message`
    for a point that cannot be built.
    """
    import html

    title = (
        f"{html.escape(result.model)} (γ = {result.part_ratio:.2f}, fusion "
        f"{html.escape(result.fusion)}) against {html.escape(baseline.model)} at "
        f"{result.input_size}x{result.input_size}"
    )
    if not result.ok:
        return (
            f'<div class="csp-message" style="color:#a00"><b>{html.escape(result.model)}: '
            f"γ = {result.part_ratio:.2f} with fusion {html.escape(result.fusion)} gives no model."
            f"</b><br>{html.escape(result.error)}<br>Move the γ slider: other values work.</div>"
        )
    lat = latency.median_ms if latency else None
    base_lat = baseline_latency.median_ms if baseline_latency else None
    rows = [
        ("parameters", "csp-params", _fmt(result.params, ","), _fmt(baseline.params, ","),
         _ratio(result.params, baseline.params)),
        ("GFLOPs", "csp-flops", _fmt(result.gflops, ".3f"), _fmt(baseline.gflops, ".3f"),
         _ratio(result.flops, baseline.flops)),
        ("activation memory (MiB)", "csp-memory", _fmt(result.activation_mib, ".1f"),
         _fmt(baseline.activation_mib, ".1f"),
         _ratio(result.activation_bytes, baseline.activation_bytes)),
        ("CPU latency, batch 1 (ms)", "csp-latency",
         _fmt(lat, ".1f") if latency else "not measured", _fmt(base_lat, ".1f")
         if baseline_latency else "not measured", _ratio(lat, base_lat)),
    ]
    body = "".join(
        f'<tr><th style="text-align:left">{label}</th><td class="{cls}">{ours}</td>'
        f'<td class="{cls}-baseline">{base}</td><td>{ratio}</td></tr>'
        for label, cls, ours, base, ratio in rows
    )
    return (
        _TABLE_STYLE
        + f'<table class="csp-table"><caption style="text-align:left">{title}</caption>'
        f"<tr><th></th><th>CSP</th><th>non-CSP baseline</th><th>ratio</th></tr>{body}</table>"
        "<small>FLOPs: 2 per multiply-add (the paper's count); memory: every layer output of one "
        "forward pass at batch 1, float32.</small>"
    )


def plot_sweep(cache, family, gammas, current=None, fusions=FUSIONS, figure=None):
    """FLOPs (as a fraction of the baseline's) and measured latency against γ for each fusion.

    The baseline is the line at 1.0 (its absolute FLOPs in the axis label); the paper's points for
    the family are overlaid as their own ratio to the paper's baseline (Table 1 for PeleeNet,
    Table 3 for ResNeXt). `current`: a `(γ, fusion)` to mark. Latency shows only measured points.
    """
    fig = figure or _figure((11, 4))
    fig.clear()
    ax_flops, ax_lat = fig.subplots(1, 2)
    base = cache.baseline(family)
    sweep = cache.sweep(family, gammas, fusions)
    for fusion, results in sweep.items():
        xs = [r.part_ratio for r in results if r.ok]
        ys = [r.flops / base.flops for r in results if r.ok]
        ax_flops.plot(xs, ys, "o-", ms=3, color=FUSION_COLORS[fusion], label=f"fusion {fusion}")
    ax_flops.axhline(1.0, color="black", lw=1.5, label=f"{base.model} (no CSP)")
    for i, p in enumerate(paper_points(family)):
        ax_flops.plot(
            p.gamma, p.flops_ratio, marker="*" if p.fusion else "P", ms=11, ls="none",
            color=FUSION_COLORS.get(p.fusion, "purple"), mec="black",
            label=(f"paper {p.table}" + (" (colour: fusion)" if p.fusion else ""))
            if i == 0 or p.table != paper_points(family)[i - 1].table else None,
        )
    if current is not None:
        point = cache.get(family, *current)
        if point.ok:
            ax_flops.plot(point.part_ratio, point.flops / base.flops, "s", ms=12, mfc="none",
                          mec="red", mew=2, label="selected")
    ax_flops.set_xlabel("γ (fraction of channels that bypasses each stage's blocks)")
    ax_flops.set_ylabel(f"FLOPs / baseline ({base.gflops:.2f} GFLOPs)")
    ax_flops.set_title(f"{FAMILIES[family][0]} at {base.input_size}x{base.input_size}")
    ax_flops.set_xlim(0, 1)
    ax_flops.grid(alpha=0.3)
    ax_flops.legend(fontsize=7, loc="lower left", framealpha=0.85)

    measured = False
    for fusion in fusions:
        pts = [(g, cache.cached_latency(family, g, fusion)) for g in gamma_grid()]
        pts = [(g, lat.median_ms) for g, lat in pts if lat is not None]
        if pts:
            measured = True
            xs, ys = zip(*pts)
            ax_lat.plot(xs, ys, "o-", ms=4, color=FUSION_COLORS[fusion], label=f"fusion {fusion}")
    base_lat = cache.cached_latency(family, None, "none")
    if base_lat is not None:
        measured = True
        ax_lat.axhline(base_lat.median_ms, color="black", lw=1.5, label=f"{base.model} (no CSP)")
    ax_lat.set_xlim(0, 1)
    ax_lat.set_xlabel("γ")
    ax_lat.set_ylabel("CPU latency, batch 1 (ms, median)")
    ax_lat.set_title("measured latency")
    ax_lat.grid(alpha=0.3)
    if measured:
        ax_lat.legend(fontsize=8)
    else:
        ax_lat.text(0.5, 0.5, "not measured yet:\npress a 'measure latency' button",
                    ha="center", va="center", transform=ax_lat.transAxes, color="gray")
    fig.tight_layout()
    return fig


def plot_stages(profiles, figure=None, title=None):
    """Per-stage bars of FLOPs and activation memory for several models.

    `profiles`: `{label: keras_csp.profiler.Profile or ProfileResult}` (same stage names).
    """
    def stages_of(p):
        if isinstance(p, ProfileResult):
            return [(s["name"], s["flops"], s["activation_bytes"]) for s in p.stages]
        return [(s.name, s.flops, s.activation_bytes) for s in p.stages]

    table = {label: stages_of(p) for label, p in profiles.items()}
    names = []
    for rows in table.values():
        names += [n for n, _, _ in rows if n not in names]
    fig = figure or _figure((11, 3.8))
    fig.clear()
    axes = fig.subplots(1, 2)
    width = 0.8 / max(1, len(table))
    x = np.arange(len(names))
    for i, (label, rows) in enumerate(table.items()):
        by_name = {n: (f, m) for n, f, m in rows}
        color = FUSION_COLORS.get(label, None)
        for ax, j, scale in ((axes[0], 0, 1e6), (axes[1], 1, 2**20)):
            values = [by_name.get(n, (0, 0))[j] / scale for n in names]
            ax.bar(x + (i - (len(table) - 1) / 2) * width, values, width, label=str(label),
                   color=color)
    for ax, ylabel in zip(axes, ("MFLOPs (2 per multiply-add)", "activation memory (MiB)")):
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("FLOPs per stage")
    axes[1].set_title("activation memory per stage (batch 1)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def figure_png(fig, dpi=90):
    """The figure as PNG bytes (for an `ipywidgets.Image`)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# --- notebook 02: the same small model with each fusion -------------------------------------------

VARIANTS = ("full", "first", "last", "none")
VARIANT_LABELS = {"full": "CSP, fusion full", "first": "CSP, fusion first",
                  "last": "CSP, fusion last", "none": "no CSP (plain twin)"}


@dataclasses.dataclass
class VariantRun:
    fusion: str
    label: str
    history: list
    summary: dict
    profile: object  # keras_csp.profiler.Profile of the trained model
    model: object = dataclasses.field(repr=False, default=None)


def train_variants(
    model="cspdarknet_small",
    part_ratio=0.5,
    epochs=3,
    image_size=64,
    train_size=3000,
    val_size=500,
    batch_size=64,
    fusions=VARIANTS,
    learning_rate=0.1,
    seed=0,
    on_progress=None,
    output_dir=None,
    verbose=0,
):
    """Trains `model` once per fusion (`"none"`: the plain twin) on the same `synthetic_shapes`
    data, schedule and seed; returns `{fusion: VariantRun}`.

    `on_progress(run_index, step, steps_per_run, label)` is called after every training step.
    Runs write their checkpoints under `output_dir` (a temporary folder by default).
    """
    import keras

    from keras_csp.data import synthetic_shapes
    from keras_csp.profiler import profile
    from keras_csp.train.loop import fit_classifier

    for f in fusions:
        if f not in VARIANTS:
            raise ValueError(f"fusion={f!r} is not allowed; allowed: {', '.join(VARIANTS)}.")
    if not 0.0 < float(part_ratio) < 1.0:
        raise ValueError(f"part_ratio={part_ratio!r}; allowed: strictly between 0 and 1.")
    data = synthetic_shapes(
        num_train=train_size, num_validation=val_size, image_size=image_size, seed=seed
    )
    steps = epochs * (train_size // batch_size)
    root = output_dir or tempfile.mkdtemp(prefix="keras_csp_variants_")

    class _Progress(keras.callbacks.Callback):
        def __init__(self, index, label):
            super().__init__()
            self.index, self.label, self.done = index, label, 0

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            on_progress(self.index, self.done, steps, self.label)

    runs = {}
    for i, fusion in enumerate(fusions):
        label = VARIANT_LABELS[fusion]
        callbacks = [_Progress(i, label)] if on_progress is not None else None
        result = fit_classifier(
            data=data,
            model=model,
            part_ratio=part_ratio,
            fusion=fusion,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_epochs=min(1.0, epochs / 3),
            optimizer="sgd",
            augment="none",
            seed=seed,
            output_dir=os.path.join(root, fusion),
            overwrite=True,
            save_model=False,
            verbose=verbose,
            callbacks=callbacks,
        )
        runs[fusion] = VariantRun(
            fusion, label, result.history, result.summary, profile(result.model), result.model
        )
    return runs


def variants_table(runs):
    """Rows (dicts) comparing the trained variants: params, FLOPs, memory, accuracy, speed."""
    rows = []
    for fusion, run in runs.items():
        s = run.summary
        rows.append({
            "variant": run.label,
            "params": run.profile.params,
            "MFLOPs": round(run.profile.flops / 1e6, 2),
            "activation MiB": round(run.profile.activation_bytes / 2**20, 2),
            "val accuracy": round(float(s["val_accuracy"]), 4),
            "train images/s": round(s["train_images_per_second"] or 0.0, 1),
            "seconds": round(s["wall_time_seconds"], 1),
        })
    return rows


def html_table(rows, css_class="csp-table"):
    """A list of same-keyed dicts as an HTML table."""
    import html

    if not rows:
        return "<p>(no rows)</p>"
    keys = list(rows[0])

    def cell(v):
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{cell(r[k])}</td>" for k in keys) + "</tr>" for r in rows)
    return _TABLE_STYLE + f'<table class="{css_class}"><tr>{head}</tr>{body}</table>'


def plot_learning_curves(runs, figure=None):
    """Training loss and validation accuracy per epoch of each variant, on shared axes."""
    from matplotlib.ticker import MaxNLocator

    fig = figure or _figure((11, 3.8))
    fig.clear()
    ax_loss, ax_acc = fig.subplots(1, 2)
    for fusion, run in runs.items():
        epochs = [h["epoch"] for h in run.history]
        color = FUSION_COLORS.get(fusion)
        ax_loss.plot(epochs, [h["loss"] for h in run.history], "o-", color=color, label=run.label)
        ax_acc.plot(epochs, [h["val_accuracy"] for h in run.history], "o-", color=color,
                    label=run.label)
    ax_loss.set_title("training loss")
    ax_acc.set_title("validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- notebook 03: a trained model, its TFLite files, predictions ----------------------------------

# synthetic_shapes draws image i of a data set from (seed, i); images of this seed were not used to
# train any model of the notebooks or of the demo (which use seed 0), so they are held out.
HELD_OUT_SEED = 7919
# Looked for, in this order, in the model folder of notebook 03 (notebook 02 saves the first;
# `keras-csp demo` writes the others).
TRAINED_MODEL_FILES = ("notebook02_model.keras", "cspdarknet_small.keras", "cspdarknet_tiny.keras")


@dataclasses.dataclass
class LoadedModel:
    model: object = dataclasses.field(repr=False)
    path: str  # the file it came from; None when it was trained just now
    trained_now: bool
    message: str

    @property
    def image_size(self):
        return int(self.model.input_shape[1])


def held_out_images(count, image_size, seed=HELD_OUT_SEED):
    """`(images float32 0-255 (N, S, S, 3), labels (N,), class names)` from `synthetic_shapes`."""
    from keras_csp.data import synthetic_shapes

    data = synthetic_shapes(num_train=count, num_validation=0, image_size=image_size, seed=seed)
    images, labels = [], []
    for x, y in data.train.as_dataset(min(count, 64), shuffle=False, drop_remainder=False):
        images.append(x.numpy())
        labels.append(np.argmax(y.numpy(), axis=-1))
    return np.concatenate(images), np.concatenate(labels), list(data.class_names)


def load_or_train(model_dir, quick=False, names=TRAINED_MODEL_FILES, seed=0, verbose=0):
    """A trained `synthetic_shapes` classifier from `model_dir`, or a quick one trained now.

    The first of `names` that exists and loads as a 6-class classifier is used. Without one, a
    small CSPDarknet is trained on the spot (`quick`: a tiny one for a few seconds, which is barely
    better than chance) and `message` says so.
    """
    from keras_csp.data import SHAPES
    from keras_csp.models import load_model

    folder = Path(model_dir) if model_dir else None
    problems = []
    if folder is not None and folder.is_dir():
        for name in names:
            path = folder / name
            if not path.is_file():
                continue
            try:
                model = load_model(str(path))
            except Exception as e:  # a corrupt or incompatible file: say so, try the next
                problems.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                continue
            if tuple(model.output_shape) != (None, len(SHAPES)):
                problems.append(f"{name}: outputs {model.output_shape}, not {len(SHAPES)} shapes")
                continue
            return LoadedModel(model, str(path), False, f"Loaded the trained model {path}.")
    where = f"{folder}" if folder is not None else "(no folder given)"
    looked = ", ".join(names)
    why = "does not exist" if folder is None or not folder.is_dir() else f"has none of {looked}"
    if problems:
        why += " that loads (" + "; ".join(problems) + ")"
    settings = (
        dict(model="cspdarknet_tiny", image_size=32, train_size=256, val_size=64, epochs=2)
        if quick
        else dict(model="cspdarknet_small", image_size=64, train_size=2000, val_size=400, epochs=3)
    )
    from keras_csp.data import synthetic_shapes
    from keras_csp.train.loop import fit_classifier

    data = synthetic_shapes(
        num_train=settings["train_size"], num_validation=settings["val_size"],
        image_size=settings["image_size"], seed=seed,
    )
    result = fit_classifier(
        data=data, model=settings["model"], epochs=settings["epochs"], batch_size=32,
        learning_rate=0.05, warmup_epochs=0.0 if quick else 1.0, optimizer="sgd",
        augment="none", seed=seed, output_dir=tempfile.mkdtemp(prefix="keras_csp_quick_"),
        save_model=False, verbose=verbose,
    )
    message = (
        f"No trained model: {where} {why}. Trained a quick {settings['model']} now instead "
        f"({settings['train_size']} synthetic_shapes images at {settings['image_size']}px, "
        f"{settings['epochs']} epochs, {result.summary['wall_time_seconds']:.0f} s; validation "
        f"accuracy {result.summary['val_accuracy']:.2f}). Run notebook 02 or `keras-csp demo` for "
        "a better one."
    )
    return LoadedModel(result.model, None, True, message)


EXPORT_MODES = {"fp32": "none", "fp16": "fp16", "int8": "int8"}


@dataclasses.dataclass
class ExportRow:
    format: str
    path: str
    size_bytes: int
    gpu_compatible: bool
    gpu_verdict: str
    gpu_issues: list
    latency_ms: float = None
    top1: float = None
    gpu_accelerator: dict = None  # the report's run on LiteRT's GPU accelerator


def export_variants(model, out_dir, calibration_images, formats=("fp32", "fp16", "int8"),
                    name="model", batch=None):
    """Exports `model` to TFLite once per format with `keras_csp.export.tflite`; returns
    `ExportRow`s (file size, the GPU-delegate verdict of the export report and its run on LiteRT's
    GPU accelerator)."""
    import logging
    import warnings

    from keras_csp import export

    for fmt in formats:
        if fmt not in EXPORT_MODES:
            raise ValueError(f"format={fmt!r} is not allowed; allowed: {', '.join(EXPORT_MODES)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    tf_logger = logging.getLogger("tensorflow")
    for fmt in formats:
        kwargs = {"representative_data": list(calibration_images)} if fmt == "int8" else {}
        path = out / f"{name}_{fmt}.tflite"
        level = tf_logger.level
        try:  # without TensorFlow's "Assets written to ..." lines and its interpreter notice
            tf_logger.setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                report = export.tflite(model, str(path), quantize=EXPORT_MODES[fmt], batch=batch,
                                       verbose=False, **kwargs)
        finally:
            tf_logger.setLevel(level)
        rows.append(ExportRow(fmt, str(path), report.size_bytes, bool(report.gpu_compatible),
                              report.analyzer_verdict, list(report.gpu_issues),
                              gpu_accelerator=report.gpu_accelerator))
    return rows


def lite_latency(path, image, runs=20, warmup=2, num_threads=None):
    """Median batch-1 latency (ms) of a `.tflite` file run by `keras_csp.lite.LiteModel`."""
    from keras_csp.lite import LiteModel

    lite_model = LiteModel(path, num_threads=num_threads)
    batch = np.asarray(image)[None] if np.ndim(image) == 3 else np.asarray(image)[:1]
    return statistics.median(time_calls(lambda: lite_model(batch), runs=runs, warmup=warmup))


def lite_predict(path, images, num_threads=None):
    """The first output (probabilities, or the detector's dict) of a `.tflite` file on images."""
    from keras_csp.lite import LiteModel

    return LiteModel(path, num_threads=num_threads)(np.asarray(images))


def evaluate_exports(rows, images, labels, latency_runs=20):
    """Fills `latency_ms` and `top1` of each `ExportRow` (classifiers), running keras_csp.lite."""
    for row in rows:
        probs = lite_predict(row.path, images)["probabilities"]
        row.top1 = float(np.mean(np.argmax(probs, axis=-1) == labels))
        row.latency_ms = lite_latency(row.path, images[0], runs=latency_runs)
    return rows


def accelerator_cell(check):
    """One table cell for an export report's GPU-accelerator run: whole graph or not, and how
    close to the CPU (quantization steps for int8 files)."""
    if check is None:
        return "–"
    if not check.get("started"):
        return "did not start: " + check.get("reason", "")
    if "error" in check:
        return "failed: " + check["error"]
    if check["max_steps"]:
        diff = f"{max(check['max_steps'].values()):g} quantization step(s)"
    else:
        diff = f"{max(check['max_difference'].values(), default=0.0):.2g}"
    agrees = "agrees" if check["agrees"] else "DISAGREES"
    return f"{check['summary']}; {agrees} with the CPU (max difference {diff})"


def export_table_rows(rows, keras_top1=None):
    table = []
    if keras_top1 is not None:
        table.append({"format": "Keras (float32)", "size KiB": "–", "GPU delegate": "–",
                      "GPU accelerator": "–", "latency ms": "–", "top-1": round(keras_top1, 4)})
    for r in rows:
        verdict = "compatible" if r.gpu_compatible else "NOT compatible: " + "; ".join(r.gpu_issues)
        table.append({
            "format": r.format,
            "size KiB": round(r.size_bytes / 1024, 1),
            "GPU delegate": verdict,
            "GPU accelerator": accelerator_cell(r.gpu_accelerator),
            "latency ms": "–" if r.latency_ms is None else round(r.latency_ms, 2),
            "top-1": "–" if r.top1 is None else round(r.top1, 4),
        })
    return table


def plot_predictions(images, probabilities, labels, class_names, count=8, title=None):
    """A row of images with the predicted class and probability (green: right, red: wrong)."""
    count = min(count, len(images))
    fig = _figure((1.6 * count, 2.1))
    axes = fig.subplots(1, count, squeeze=False)
    for ax, image, p, label in zip(axes[0], images, probabilities, labels):
        guess = int(np.argmax(p))
        ax.imshow(np.clip(np.asarray(image), 0, 255).astype("uint8"))
        ax.set_title(f"{class_names[guess]} {p[guess]:.2f}", fontsize=8,
                     color="green" if guess == int(label) else "red")
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# --- notebook 03: a small detector ---------------------------------------------------------------

def detector_backbone():
    """A small CSPDarknet (5 levels, stride 32) that gives CSPDetector the P3-P5 it needs."""
    from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

    return ModelConfig(
        stem=StemConfig(filters=16, kernel_size=3, strides=2),
        stages=StagesConfig(filters=(24, 32, 64, 96), depth=(1, 1, 1, 1), strides=2,
                            block_type="dark", bottle_ratio=1.0, down_growth=True),
        default_size=64,
        reference="keras_csp.explore: a small CSPDarknet backbone for a CPU-sized detector",
    )


@dataclasses.dataclass
class DetectorRun:
    model: object = dataclasses.field(repr=False)
    summary: dict
    class_names: list
    image_size: int
    message: str


def train_detector(image_size=64, train_size=2048, val_size=64, epochs=12, batch_size=16,
                   learning_rate=4e-3, max_objects=2, seed=0, verbose=0):
    """A small `CSPDetector` (the backbone above, FPN neck, 32-wide head) trained with
    `keras_csp.train.fit_detector` on `synthetic_shapes` detection data; its `message` gives the
    validation mAP50 it reached, so a short run is labelled as what it is."""
    from keras_csp.data import synthetic_shapes
    from keras_csp.detection import CSPDetector
    from keras_csp.train.loop import fit_detector

    data = synthetic_shapes("detection", num_train=train_size, num_validation=val_size,
                            image_size=image_size, max_objects=max_objects, seed=seed)
    backbone = detector_backbone()

    def build(classes, size):
        return CSPDetector(backbone=backbone, num_classes=classes, neck="fpn", attention=None,
                           input_shape=(size, size, 3), neck_filters=32, head_filters=32)

    result = fit_detector(
        data=data, model=build, epochs=epochs, batch_size=batch_size, optimizer="adamw",
        learning_rate=learning_rate, warmup_epochs=min(1.0, epochs / 3), augment="none",
        seed=seed, output_dir=tempfile.mkdtemp(prefix="keras_csp_detector_"), save_model=False,
        verbose=verbose,
    )
    s = result.summary
    map50 = s.get("val_mAP50")
    quality = "n/a" if map50 is None else f"{map50:.3f}"
    message = (
        f"Trained a small CSPDetector ({s['params']:,} parameters) for {epochs} epoch(s) on "
        f"{train_size} synthetic_shapes detection images at {image_size}px in "
        f"{s['wall_time_seconds']:.0f} s: validation mAP50 {quality}."
    )
    if map50 is None or map50 < 0.1:
        message += " That is a barely trained detector: expect few or wrong boxes."
    return DetectorRun(result.model, s, list(data.class_names), image_size, message)


def held_out_detection_images(count, image_size, max_objects=2, seed=HELD_OUT_SEED):
    """`(images float32 0-255, [ground-truth boxes (K, 4) xyxy], [classes (K,)], class names)`."""
    from keras_csp.data import synthetic_shapes

    data = synthetic_shapes("detection", num_train=count, num_validation=0, image_size=image_size,
                            max_objects=max_objects, seed=seed)
    batch = next(iter(data.train.as_dataset(count, shuffle=False, drop_remainder=False)))
    images = batch["images"].numpy()
    boxes = batch["bounding_boxes"]["boxes"].numpy()
    classes = batch["bounding_boxes"]["classes"].numpy()
    keep = [c >= 0 for c in classes]
    return images, [b[k] for b, k in zip(boxes, keep)], [c[k] for c, k in zip(classes, keep)], \
        list(data.class_names)


def plot_detections(images, detections, class_names, truth=None, title=None):
    """Images with detected boxes (`keras_csp.lite.detections` tuples) drawn; `truth`: optional
    ground-truth boxes per image, drawn dashed (white on black)."""
    import matplotlib
    from matplotlib.patches import Rectangle

    count = len(images)
    fig = _figure((2.2 * count, 2.5))
    axes = fig.subplots(1, count, squeeze=False)
    palette = matplotlib.colormaps["tab10"]
    for i, (ax, image, found) in enumerate(zip(axes[0], images, detections)):
        ax.imshow(np.clip(np.asarray(image), 0, 255).astype("uint8"))
        if truth is not None:  # dashed white on black: visible on light and dark backgrounds
            for x1, y1, x2, y2 in truth[i]:
                for color, style, width in (("black", "-", 2.2), ("white", "--", 1.2)):
                    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color,
                                           ls=style, lw=width))
        for x1, y1, x2, y2, score, cls in found:
            color = palette(cls % 10)
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, lw=2))
            ax.text(x1, y1, f"{class_names[cls]} {score:.2f}", fontsize=6, color="black",
                    va="bottom", bbox=dict(fc=color, ec="none", pad=0.5))
        shown = f"{len(found)} found" + (f", {len(truth[i])} true" if truth is not None else "")
        ax.set_title(shown, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# --- notebooks: quick mode -----------------------------------------------------------------------

QUICK_ENV = "KERAS_CSP_NOTEBOOK_QUICK"


def quick_mode():
    """True when `KERAS_CSP_NOTEBOOK_QUICK=1` (CI): the notebooks use their small settings."""
    return os.environ.get(QUICK_ENV, "0").strip().lower() in ("1", "true", "yes")
