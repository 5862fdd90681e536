"""One table from several `benchmarks.detection` runs (run by hand, never in CI).

On 2 cores two single-core runs side by side (`taskset -c 0 ...` and `taskset -c 1 ...`, each
with its own `--out`) train more images per second than one run on both cores; this puts their
rows back into one table, with the targets recomputed over all of them:

    python -m benchmarks.detection_merge results-n results-peers results-default \\
        --recipe results-ema results-hsv --out results-23

A row found in several folders with different seeds (`--seeds 0,1` in one run, `--seeds 2,3` in
another) becomes one row over all its seeds; a seed found twice is refused.

A folder given under `--recipe` holds a recipe run (`--set KEY=VALUE` on a CSP row): its rows are
renamed `ROW [KEY=VALUE ...]` so that they sit beside the baseline row without replacing it, and
they count for no target. Writes `detection.json` (every row, each folder's command), `detection.md`
(the table, the targets, and per recipe row its mAP against the baseline row's on the same seeds)
and `detection.png` (mAP against GFLOPs, the bars spanning the seeds; beside it each recipe
row's difference from its baseline).
"""

import argparse
import json
import sys
from pathlib import Path

from benchmarks.detection import table, targets
from benchmarks.detection_seeds import combine, mean_and_spread
from benchmarks.detection_ultralytics import ULTRALYTICS_ROWS


def read_run(folder):
    """`FOLDER/detection.json` as written by `benchmarks.detection`, or a ValueError naming it."""
    path = Path(folder) / "detection.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a benchmarks.detection result ({e}).") from None
    if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
        raise ValueError(f"{path}: not a benchmarks.detection result (no 'rows' list).")
    return result


def recipe_label(result):
    """`"ema=True aug_hsv=True"`: the run's `--set` overrides, or `""`."""
    return " ".join(result.get("args", {}).get("set") or [])


def seed_records(row):
    """A combined row back into its per-seed records (each with the row's other properties)."""
    props = {k: v for k, v in row.items() if k not in ("seeds", "spread", "seed_count")}
    return [{**props, **seed} for seed in row.get("seeds") or [row]]


def join_seeds(rows):
    """Rows of one name from several runs -> one row over all their seeds (first run's first)."""
    records = [record for row in rows for record in seed_records(row)]
    seeds = [r.get("seed") for r in records]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1}, key=str)
    if repeated:
        raise ValueError(f"row {rows[0]['row']!r} has seeds {repeated} in more than one folder; "
                         "allowed: each seed of a row once.")
    return combine(records)


def merge(baselines, recipes=()):
    """Results of `read_run` -> one result: rows of every baseline run, then the recipe rows
    renamed `ROW [overrides]`, a row of several runs joined over their seeds; `args` of the first
    baseline (size, epochs, ... must agree; seeds may differ)."""
    if not baselines:
        raise ValueError("baselines=[] is not allowed; allowed: at least one result folder.")
    budget = ("size", "train", "val", "epochs", "batch", "difficulty", "data_seed")
    first = baselines[0]["args"]
    by_name, commands = {}, []
    for result in list(baselines) + list(recipes):
        differs = {k: result["args"].get(k) for k in budget
                   if result["args"].get(k) != first.get(k)}
        if differs:
            raise ValueError(f"{result['command']!r} differs from {baselines[0]['command']!r} "
                             f"in {differs}; allowed: runs of one budget ({', '.join(budget)}).")
        commands.append(result["command"])
        label = recipe_label(result) if any(result is r for r in recipes) else ""
        for row in result["rows"]:
            row = dict(row)
            if label:
                row["baseline"], row["row"] = row["row"], f"{row['row']} [{label}]"
                row["change"] = label
                row["recipe"] = f"{row['recipe']} + {label}"
            by_name.setdefault(row["row"], []).append(row)
    rows = [group[0] if len(group) == 1 else join_seeds(group) for group in by_name.values()]
    merged = {"date": max(r["date"] for r in list(baselines) + list(recipes)),
              "command": " ; ".join(commands), "commands": commands, "complete": True,
              "args": first, "rows": rows}
    merged["targets"] = targets({**merged, "rows": [r for r in rows if "baseline" not in r]})
    return merged


def recipe_pairs(merged):
    """(recipe row, its baseline row) for every recipe row whose baseline is in `merged`."""
    by_name = {r["row"]: r for r in merged["rows"]}
    return [(r, by_name[r["baseline"]]) for r in merged["rows"]
            if r.get("baseline") in by_name]


def same_seeds(base, row):
    """The baseline row over the recipe row's seeds only (all of its seeds if it lacks some), so
    that a two-seed recipe run is compared with the same two seeds of a four-seed baseline."""
    wanted = [r.get("seed") for r in seed_records(row)]
    records = [r for r in seed_records(base) if r.get("seed") in wanted]
    return combine(records) if len(records) == len(wanted) else base


def recipe_lines(merged):
    """Per recipe row: its mAP and mAP50 against its baseline row's on the same seeds, as markdown
    list items."""
    lines = []
    for r, base in recipe_pairs(merged):
        if r.get("keras_mAP") is None or base.get("keras_mAP") is None:
            continue
        base = same_seeds(base, r)
        seeds = ",".join(str(s.get("seed")) for s in base.get("seeds") or [base])
        delta = r["keras_mAP"] - base["keras_mAP"]
        lines.append(f"- {r['row']}: mAP {mean_and_spread(r, 'keras_mAP')} vs "
                     f"{mean_and_spread(base, 'keras_mAP')} ({delta * 100:+.1f} points), mAP50 "
                     f"{mean_and_spread(r, 'keras_mAP50')} vs "
                     f"{mean_and_spread(base, 'keras_mAP50')}; seeds {seeds}")
    return lines


def markdown(merged):
    verdicts = "\n".join(f"- {what}: **{verdict}** ({numbers})"
                         for what, verdict, numbers in merged["targets"])
    recipes = "\n".join(recipe_lines(merged))
    commands = "\n".join(f"    {c}" for c in merged["commands"])
    text = (f"{merged['date']}, merged from:\n\n{commands}\n\n{table(merged)}\n\n{verdicts}\n")
    return text + (f"\nRecipe rows against their baseline:\n\n{recipes}\n" if recipes else "")


def recipe_differences(merged):
    """Per recipe row: (its change, [its mAP minus its baseline's, seed by seed]) for the seeds
    both have; the order of `merged["rows"]`."""
    found = []
    for r, base in recipe_pairs(merged):
        base_by_seed = {s.get("seed"): s.get("keras_mAP") for s in seed_records(base)}
        diffs = [s["keras_mAP"] - base_by_seed[s.get("seed")] for s in seed_records(r)
                 if s.get("keras_mAP") is not None
                 and base_by_seed.get(s.get("seed")) is not None]
        if diffs:
            found.append((r["change"], diffs))
    return found


def plot(merged, path):
    """Left: mAP (0.5:0.95) against GFLOPs, one point per row that is not a recipe row, the bar
    spanning its seeds. Right, when there are recipe rows: each one's mAP minus its baseline's on
    the same seed, the bar at the mean and the whiskers spanning the seeds."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    differences = recipe_differences(merged)
    fig = Figure(figsize=(12.5 if differences else 7.5, 5.0))
    axes = fig.subplots(1, 2 if differences else 1, squeeze=False)[0]
    ax = axes[0]
    rows = [r for r in merged["rows"] if "baseline" not in r]
    for r in rows:
        x, y = r.get("bflops"), r.get("keras_mAP")
        if x is None or y is None:
            continue
        peer = r["row"] in ULTRALYTICS_ROWS
        spread = (r.get("spread") or {}).get("keras_mAP") or 0.0
        ax.errorbar([x], [y], yerr=[spread], fmt="o", capsize=3,
                    color="tab:red" if peer else "tab:blue")
        ax.annotate(f"{r['row']} ({r.get('seed_count') or 1} seeds)", (x, y),
                    textcoords="offset points", xytext=(5, 3), fontsize=7)
    args = merged["args"]
    ax.set_xlabel(f"GFLOPs at {args['size']}x{args['size']} (2 per multiply-add)")
    ax.set_ylabel("val mAP 0.5:0.95 (mean of seeds)")
    ax.set_title(f"{args['train']} images x {args['epochs']} epochs, red: ultralytics",
                 fontsize=9)
    ax.grid(alpha=0.3)
    if differences:
        ax = axes[1]
        ys = range(len(differences))
        means = [100 * sum(d) / len(d) for _, d in differences]
        low = [m - 100 * min(d) for m, (_, d) in zip(means, differences)]
        high = [100 * max(d) - m for m, (_, d) in zip(means, differences)]
        ax.barh(list(ys), means, xerr=[low, high], capsize=3,
                color=["tab:green" if m > 0 else "tab:gray" for m in means])
        labels = [change.replace(" ", "\n") for change, _ in differences]
        ax.set_yticks(list(ys), labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("mAP points against the baseline on the same seeds")
        ax.set_title("the recipe, one change at a time (whiskers: the seeds)", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="--out folders of benchmarks.detection runs")
    parser.add_argument("--recipe", nargs="*", default=[],
                        help="--out folders of recipe runs (rows with --set overrides)")
    parser.add_argument("--out", required=True, help="folder of the merged files")
    args = parser.parse_args(argv)
    try:
        merged = merge([read_run(f) for f in args.folders], [read_run(f) for f in args.recipe])
    except ValueError as e:
        parser.exit(2, f"detection_merge: error: {e}\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    merged["markdown"] = markdown(merged)
    (out / "detection.json").write_text(json.dumps(merged, indent=1, default=str))
    (out / "detection.md").write_text(merged["markdown"])
    plot(merged, out / "detection.png")
    print(merged["markdown"])
    return merged


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
