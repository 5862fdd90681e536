"""Seeds of `benchmarks.detection`: every row is trained once per seed (`--seeds 0,1`) and reported
as the mean with its spread (half the range: with two seeds, mean ± half-range spans both runs).

One seed's record is what `detection.run_row` returns; `combine` merges a row's records into one:
the mean of each score, `spread` (half the range), `seeds` (each seed's scores, training time and
history, kept in the JSON) and the rest (parameters, FLOPs, `.tflite` files: those of the first
seed, the only one exported) from the first seed's record.
"""

# The per-seed numbers averaged; the others are properties of the row (size) or of the first
# seed's exported files.
SCORES = ("keras_mAP", "keras_mAP50", "train_images_per_second", "train_seconds")
PER_SEED = SCORES + ("history", "errors", "seed")


def parse_seeds(text):
    """`"0,1"` -> `[0, 1]`; distinct integers >= 0, else a ValueError naming `--seeds`."""
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip() != ""]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(
            f"--seeds {text!r} is not allowed; allowed: distinct integers >= 0, comma-separated "
            "(e.g. 0,1)."
        )
    return seeds


def combine(records):
    """One row's per-seed records (first seed first) -> the row's record (see the module)."""
    if not records:
        raise ValueError("records=[] is not allowed; allowed: one record per seed.")
    first = records[0]
    row = {k: v for k, v in first.items() if k not in PER_SEED}
    row["seeds"] = [{k: r.get(k) for k in PER_SEED if k in r} for r in records]
    row["errors"] = {f"seed {r.get('seed')}: {k}": v for r in records
                     for k, v in (r.get("errors") or {}).items()}
    row["spread"] = {}
    for key in SCORES:
        values = [r[key] for r in records if r.get(key) is not None]
        if not values:
            row[key] = None
            continue
        row[key] = sum(values) / len(values)
        row["spread"][key] = (max(values) - min(values)) / 2
    row["seed_count"] = sum(1 for r in records if r.get("keras_mAP50") is not None)
    return row


def mean_and_spread(row, key, spec=".3f"):
    """`"0.180 ± 0.012"` (mean ± half-range over the seeds), `"0.180"` for one seed, `"-"`."""
    value = row.get(key)
    if value is None:
        return "-"
    spread = (row.get("spread") or {}).get(key)
    if spread is None or row.get("seed_count", 1) < 2:
        return format(value, spec)
    return f"{format(value, spec)} ± {format(spread, spec)}"


def first_seed(row, key):
    """`key` of the row's first seed (the one whose `.tflite` files were made and scored)."""
    seeds = row.get("seeds") or [row]
    return seeds[0].get(key)
