"""The benchmark's outputs: the markdown table, the JSON document and the accuracy-latency plot."""

import json

from keras_csp import files

# task -> (the metrics of a row, the one the plot and the difference column use)
METRICS = {"classification": (("top1", "top5"), "top1"), "detection": (("mAP", "mAP50"), "mAP50")}
_HEADINGS = {"top1": "top-1", "top5": "top-5", "mAP": "mAP", "mAP50": "mAP50"}


def _number(value, digits=4, sign=""):
    return "-" if value is None else f"{value:{sign}.{digits}f}"


def size_text(size_bytes):
    if size_bytes is None:
        return "-"
    return f"{size_bytes / 2**20:.2f} MB" if size_bytes >= 2**20 else f"{size_bytes / 1024:.1f} KB"


def markdown(rows, task, threads=None):
    """A markdown table of the rows (`benchmark`'s row dicts), one per format."""
    metrics, _ = METRICS[task]
    where = f"{threads} thread(s)" if threads else "default threads"
    columns = (
        ["format", "size"] + [_HEADINGS[m] for m in metrics]
        + [f"{_HEADINGS[m]} - Keras" for m in metrics]
        + [f"latency ms (batch 1, {where})", "GPU engine", "GPU vs CPU"]
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        if row.get("error"):
            cells = [row["label"], size_text(row.get("size_bytes"))] + ["-"] * (len(columns) - 3)
            cells.append(f"FAILED: {_one_line(row['error'])}")
            lines.append("| " + " | ".join(cells) + " |")
            continue
        differences = row.get("differences") or {}
        latency = row.get("latency")
        cells = (
            [row["label"], size_text(row.get("size_bytes"))]
            + [_number(row.get(m)) for m in metrics]
            + [_number(differences.get(m), sign="+") for m in metrics]
            + [
                "-" if latency is None else f"{latency['ms']:.2f} (p90 {latency['p90_ms']:.2f})",
                _one_line(row.get("gpu", "")),
                _one_line(row.get("gpu_agreement", "")) or "-",
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _one_line(text, limit=160):
    text = " ".join(str(text).replace("|", "/").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_json(path, document):
    with files.atomic_file(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def write_markdown(path, text):
    with files.atomic_file(path, suffix=".md") as tmp:
        tmp.write_text(text + "\n")
    return path


def plot(path, rows, task, title):
    """Accuracy (top-1, or COCO's mAP, which saturates later than mAP50) against median
    latency, one labeled point per measured format; a PNG written atomically."""
    from matplotlib.figure import Figure  # outside pyplot: no backend, no global state

    main = METRICS[task][0][0]
    points = [
        (row["latency"]["ms"], row[main], row["label"]) for row in rows
        if not row.get("error") and row.get("latency") and row.get(main) is not None
    ]
    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.subplots()
    for i, (x, y, label) in enumerate(points):
        axes.scatter([x], [y], s=36)
        # Staggered labels: formats often share an accuracy and lie close in latency.
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4 + 11 * (i % 3)),
                      fontsize=8)
    axes.set_xlabel("latency, ms (median, batch 1)")
    axes.set_ylabel(_HEADINGS[main])
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with files.atomic_file(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return path
