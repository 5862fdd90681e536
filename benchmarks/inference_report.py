"""What `benchmarks.inference` prints and writes: the machine, the table of rows, the report, its
markdown and its plot."""

import os
import platform

from benchmarks.inference_impls import IMPLS, PEER_IMPLS
from benchmarks.inference_targets import (
    TARGET_CSPRESNEXT_PEAK,
    TARGET_OTHER_PEAK,
    TARGET_TFLITE_PEAK,
    find,
    fmt_pct,
)
from keras_csp.files import atomic_file


# A row whose 90th-percentile run took this many times its fastest run is flagged as noisy.
NOISY_SPREAD = 1.5


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


TABLE_COLUMNS = ("model", "impl", "batch", "ms", "img/s", "GFLOP/s", "% peak", "load", "notes")


def _notes(row):
    notes = []
    if row.get("backend"):
        notes.append(row["backend"])
    cov = row.get("xnnpack")
    if cov:
        notes.append(f"XNNPACK {cov['delegated']}/{cov['nodes']}"
                     + ("" if cov["partitions"] == 1 else f" in {cov['partitions']} parts")
                     + ("" if not cov["fallback_ops"] else
                        " (fallback " + ", ".join(cov["fallback_ops"]) + ")"))
    if row.get("agreement"):
        notes.append(f"top-1 {row['agreement']['top1_agreement']:.0%} vs fp32")
    if row.get("min_ms") and row["p90_ms"] / row["min_ms"] > NOISY_SPREAD:
        notes.append(f"noisy: p90/min x{row['p90_ms'] / row['min_ms']:.1f}")
    if row.get("first_call_s", 0) > 5:
        notes.append(f"1st call {row['first_call_s']:.0f} s")
    return "; ".join(notes)


def table_rows(result):
    out = []
    for r in result["rows"]:
        out.append([r["model"], r["impl"], str(r["batch"]), f"{r['ms']:.2f}",
                    f"{r['images_per_s']:.1f}",
                    "n/a" if r["gflops_per_s"] is None else f"{r['gflops_per_s']:.1f}",
                    fmt_pct(r["pct_peak"]), f"{r['load1']:.2f}", _notes(r)])
    return out


def format_table(result):
    rows = table_rows(result)
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(TABLE_COLUMNS)]
    lines = ["  ".join(c.ljust(w) if i in (0, 1, 8) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(TABLE_COLUMNS, widths))).rstrip()]
    for r in rows:
        lines.append("  ".join(v.ljust(w) if i in (0, 1, 8) else v.rjust(w)
                               for i, (v, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def format_report(result):
    lines = [f"\nmatmul peak (fp32, TF, {result['args']['threads']} threads): "
             + ", ".join(f"{k} {v['gflops']:.1f}" for k, v in result["peak"].items() if v)
             + f" GFLOP/s; % of peak uses {result['peak_gflops'] or float('nan'):.1f}"]
    lines.append("models: " + "; ".join(
        f"{m} {v['flops'] / 1e9:.2f} GFLOPs, {v['params'] / 1e6:.2f}M params"
        + (f" (keras-hub {v['keras_hub_params'] / 1e6:.2f}M)" if v.get("keras_hub_params") else "")
        + (f" (timm {v['timm_params'] / 1e6:.2f}M)" if v.get("timm_params") else "")
        for m, v in result["models"].items() if v.get("flops")))
    lines.append("")
    lines.append(format_table(result))
    if result["ratios"]:
        lines.append("\nCSP / twin: latency ratio vs FLOPs ratio")
        for r in result["ratios"]:
            lines.append(f"  {r['csp']}/{r['twin']} {r['impl']:<20} batch {r['batch']}: latency "
                         f"{r['latency_ratio']:.3f}  FLOPs {r['flops_ratio']:.3f}  "
                         f"({r['difference']:+.3f}, {'met' if r['met'] else 'missed'})")
    lines.append("\ntargets")
    for text, verdict, detail in result["targets"]:
        lines.append(f"  [{verdict:^6}] {text}: {detail}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    for error in result["errors"]:
        lines.append(f"error: {error['what']} (log {error['log']})")
    return "\n".join(lines)


def markdown(result):
    m = result["machine"]
    load = result["load_average"]
    v = result["versions"]
    a = result["args"]
    versions = ", ".join(f"{k} {v[k]}" for k in sorted(v))
    out = [
        f"Inference latency (`{' '.join(['python -m benchmarks.inference'] + a['argv'])}`): "
        f"{result['date']}, {m['cpu']}, {m['cores']} cores, {a['threads']} threads, "
        f"{a['input_size']}x{a['input_size']}, median of {a['runs']} runs after {a['warmup']} "
        f"warm-up runs; load average {load['start'][0]:.2f} at the start, {load['end'][0]:.2f} at "
        f"the end; fp32 matmul peak {result['peak_gflops'] or float('nan'):.1f} GFLOP/s "
        f"(TensorFlow, {a['threads']} threads). Versions: {versions}.",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
    ]
    out.extend("| " + " | ".join(r) + " |" for r in table_rows(result))
    if result["targets"]:
        out += ["", "| target | verdict | measured |", "|---|---|---|"]
        out.extend(f"| {t} | {v_} | {d} |" for t, v_, d in result["targets"])
    return "\n".join(out) + "\n"


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    batches = sorted({r["batch"] for r in rows})
    impls = [i for i in IMPLS + PEER_IMPLS if any(r["impl"] == i for r in rows)]
    models = list(result["models"])
    fig, axes = plt.subplots(2, len(batches), figsize=(6 + 3 * len(models), 8), squeeze=False)
    width = 0.8 / max(1, len(impls))
    colors = plt.get_cmap("tab20")
    for col, batch in enumerate(batches):
        for row_index, (key, label) in enumerate((("ms", "median latency (ms)"),
                                                   ("pct_peak", "% of fp32 matmul peak"))):
            ax = axes[row_index][col]
            for k, impl in enumerate(impls):
                xs, ys = [], []
                for j, model in enumerate(models):
                    r = find(rows, model, impl, batch)
                    if r and r.get(key) is not None:
                        xs.append(j + k * width)
                        ys.append(r[key])
                ax.bar(xs, ys, width, label=impl, color=colors(k % 20))
            ax.set_xticks([j + width * (len(impls) - 1) / 2 for j in range(len(models))])
            ax.set_xticklabels(models)
            ax.set_ylabel(label)
            ax.set_title(f"batch {batch}")
            if key == "pct_peak":
                for level in (TARGET_CSPRESNEXT_PEAK, TARGET_OTHER_PEAK, TARGET_TFLITE_PEAK):
                    ax.axhline(level, color="grey", linewidth=0.6, linestyle="--")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"keras_csp inference, {result['args']['input_size']}px, "
                 f"{result['args']['threads']} threads, {result['date']}")
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:  # savefig picks the format from the suffix
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
