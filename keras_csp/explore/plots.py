"""The notebooks' figures: matplotlib `Figure`s made outside pyplot, and PNG bytes for widgets."""

import numpy as np

from keras_csp.explore.families import FAMILIES, FUSION_COLORS, FUSIONS, gamma_grid
from keras_csp.explore.paper import paper_points
from keras_csp.explore.profiles import ProfileResult


def _figure(size):
    """A matplotlib Figure outside pyplot: no backend, never shown twice; `display(fig)` in a
    notebook, or `figure_png(fig)` for a widget."""
    from matplotlib.figure import Figure

    return Figure(figsize=size)


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
