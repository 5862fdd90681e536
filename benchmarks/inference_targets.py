"""The numbers `benchmarks.inference` derives from its rows (images/s, GFLOP/s, % of the matmul
peak, CSP/twin latency ratios) and the targets of the performance issue they are held against."""

from benchmarks.inference_impls import IMPLS, KERAS_IMPLS, twin_of

# Targets of the performance issue (issue 8, item 1).
TARGET_CSPRESNEXT_PEAK = 70.0  # % of peak, Keras, batch 1
TARGET_OTHER_PEAK = 75.0  # % of peak, Keras, every other backbone, batch 1 and 8
TARGET_KERAS_HUB_SPEEDUP = 1.8
TARGET_TFLITE_PEAK = 85.0  # % of peak, TFLite fp32 (XNNPACK), every backbone
TARGET_INT8_MS = 13.0  # CSPResNeXt50 int8, batch 1
TARGET_AGREEMENT = 0.99
TARGET_RATIO_TOLERANCE = 0.05


def derive(result):
    """Adds images/s, GFLOP/s and % of peak to every row; sets result['peak_gflops']."""
    peaks = [p["gflops"] for p in result["peak"].values() if p]
    peak = max(peaks) if peaks else None
    result["peak_gflops"] = peak
    for row in result["rows"]:
        flops = result["models"].get(row["model"], {}).get("flops")
        seconds = row["ms"] / 1e3
        row["images_per_s"] = row["batch"] / seconds
        row["gflops_per_s"] = flops * row["batch"] / seconds / 1e9 if flops else None
        row["pct_peak"] = 100 * row["gflops_per_s"] / peak if flops and peak else None
    return result


def find(rows, model, impl, batch):
    for row in rows:
        if row["model"] == model and row["impl"] == impl and row["batch"] == batch:
            return row
    return None


def ratios(result):
    """CSP/twin latency ratio against the FLOPs ratio, per implementation of ours and batch."""
    models = result["models"]
    out = []
    for csp in models:
        twin = twin_of(csp)
        if twin not in models or not models[csp].get("flops") or not models[twin].get("flops"):
            continue
        flops_ratio = models[csp]["flops"] / models[twin]["flops"]
        for impl in IMPLS:
            for batch in sorted({r["batch"] for r in result["rows"]}):
                a = find(result["rows"], csp, impl, batch)
                b = find(result["rows"], twin, impl, batch)
                if a and b:
                    latency_ratio = a["ms"] / b["ms"]
                    out.append({"csp": csp, "twin": twin, "impl": impl, "batch": batch,
                                "flops_ratio": flops_ratio, "latency_ratio": latency_ratio,
                                "difference": latency_ratio - flops_ratio,
                                "met": abs(latency_ratio - flops_ratio) <= TARGET_RATIO_TOLERANCE})
    return out


def fmt_pct(value):
    return "n/a" if value is None else f"{value:.0f}%"


# The model most targets are about: CSPResNeXt50, the paper's and the headline.
HEADLINE = "cspresnext50"


def targets(result):
    """[(target text, verdict 'met'/'missed'/'n/a', detail)] for the targets of the issue."""
    rows = result["rows"]
    batches = sorted(set(result["args"].get("batches") or ()) | {r["batch"] for r in rows})
    models = list(result["models"])
    keras_impls = [i for i in KERAS_IMPLS if any(r["impl"] == i for r in rows)]
    out = []
    if HEADLINE in models:
        out += _headline_keras_targets(rows, [b for b in batches if b == 1], keras_impls)
    out += _keras_peak_targets(rows, models, batches, keras_impls)
    out += _tflite_fp32_targets(rows, models, batches)
    out += _int8_targets(result, models, batches)
    out += _ratio_targets(result)
    return out


def best_of(candidates, key, better):
    """`(verdict, detail)` of candidates `[(impl, value)]` (value None: not measured): met when
    the best one is `better`; the detail lists every measured value, formatted by `key`."""
    present = [(i, v) for i, v in candidates if v is not None]
    if not present:
        return "n/a", "not measured"
    detail = ", ".join(f"{i} {key(v)}" for i, v in present)
    winners = [i for i, v in present if better(v)]
    return ("met", f"{detail} (met by {winners[0]})") if winners else ("missed", detail)


def _headline_keras_targets(rows, batches, keras_impls):
    """CSPResNeXt50 in Keras: % of peak, speed-up over keras-hub, and over timm."""
    name, out = HEADLINE, []
    for batch in batches:
        pct = [(i, (find(rows, name, i, batch) or {}).get("pct_peak")) for i in keras_impls]
        out.append((f"Keras {name} batch {batch} >= {TARGET_CSPRESNEXT_PEAK:.0f}% of peak",
                    *best_of(pct, fmt_pct, lambda v: v >= TARGET_CSPRESNEXT_PEAK)))
        speedups = []
        for impl in keras_impls:
            ours = find(rows, name, impl, batch)
            peer = "keras-hub-xla" if impl.endswith("xla") else "keras-hub"
            hub = find(rows, name, peer, batch)
            speedups.append((impl, hub["ms"] / ours["ms"] if ours and hub else None))
        out.append((f"Keras {name} batch {batch} >= {TARGET_KERAS_HUB_SPEEDUP}x faster than "
                    "keras-hub (graph vs graph, XLA vs XLA)",
                    *best_of(speedups, lambda v: f"{v:.2f}x",
                             lambda v: v >= TARGET_KERAS_HUB_SPEEDUP)))
        timm = find(rows, name, "timm", batch)
        vs_timm = [(i, timm["ms"] / find(rows, name, i, batch)["ms"]
                    if timm and find(rows, name, i, batch) else None) for i in keras_impls]
        out.append((f"Keras {name} batch {batch} faster than timm (eager PyTorch)",
                    *best_of(vs_timm, lambda v: f"{v:.2f}x", lambda v: v > 1.0)))
    return out


def _keras_peak_targets(rows, models, batches, keras_impls):
    """Every other model and batch in Keras: % of peak."""
    out = []
    for model in models:
        for batch in batches:
            if model == HEADLINE and batch == 1:
                continue
            pct = [(i, (find(rows, model, i, batch) or {}).get("pct_peak")) for i in keras_impls]
            out.append((f"Keras {model} batch {batch} >= {TARGET_OTHER_PEAK:.0f}% of peak",
                        *best_of(pct, fmt_pct, lambda v: v >= TARGET_OTHER_PEAK)))
    return out


def _tflite_fp32_targets(rows, models, batches):
    """TFLite fp32: % of peak per model and batch; CSPResNeXt50 against keras-hub's conversion."""
    out = []
    for model in models:
        for batch in batches:
            row = find(rows, model, "tflite-fp32", batch)
            out.append((f"TFLite fp32 {model} batch {batch} >= {TARGET_TFLITE_PEAK:.0f}% of peak",
                        *best_of([("tflite-fp32", row and row["pct_peak"])], fmt_pct,
                                 lambda v: v >= TARGET_TFLITE_PEAK)))
    if HEADLINE in models:
        for batch in batches:
            ours = find(rows, HEADLINE, "tflite-fp32", batch)
            hub = find(rows, HEADLINE, "keras-hub-tflite-fp32", batch)
            pair = (ours["ms"], hub["ms"]) if ours and hub else None
            out.append((f"TFLite fp32 {HEADLINE} batch {batch} no slower than keras-hub's "
                        "conversion",
                        *best_of([("tflite-fp32", pair)],
                                 lambda v: f"{v[0]:.1f} ms vs {v[1]:.1f} ms",
                                 lambda v: v[0] <= v[1])))
    return out


def _int8_targets(result, models, batches):
    """TFLite int8: full XNNPACK delegation, CSPResNeXt50's latency, top-1 agreement with float."""
    rows, out = result["rows"], []
    for model in models:
        for batch in batches:
            out.append(_delegation_target(model, batch, find(rows, model, "tflite-int8", batch)))
    if HEADLINE in models:
        row = find(rows, HEADLINE, "tflite-int8", 1)
        out.append((f"TFLite int8 {HEADLINE} batch 1 <= {TARGET_INT8_MS:.0f} ms",
                    *best_of([("tflite-int8", row and row["ms"])], lambda v: f"{v:.1f} ms",
                             lambda v: v <= TARGET_INT8_MS)))
    for model in models:
        row = find(rows, model, "tflite-int8", 1)
        agreement = row.get("agreement") if row else None
        kind = result["models"][model].get("weights", "?").split(":")[0]
        caveat = "" if kind == "imagenet" else "; only meaningful with --weights imagenet"
        out.append((f"TFLite int8 {model} top-1 agreement with float >= {TARGET_AGREEMENT:.0%}",
                    *best_of([("tflite-int8", agreement)],
                             lambda v: f"{v['top1_agreement']:.1%} of {v['images']} images "
                                       f"(tie-aware {v['tie_aware_agreement']:.1%}, "
                                       f"{v['distinct_float_top1']} distinct float top-1 classes; "
                                       f"{kind} weights{caveat})",
                             lambda v: v["top1_agreement"] >= TARGET_AGREEMENT)))
    return out


def _delegation_target(model, batch, row):
    text = f"TFLite int8 {model} batch {batch} fully delegated to XNNPACK"
    cov = row.get("xnnpack") if row else None
    if cov is None:
        return (text, "n/a", "not measured")
    fallback = ", ".join(f"{k} x{v}" for k, v in cov["fallback_ops"].items()) or "none"
    return (text, "met" if cov["full"] else "missed",
            f"{cov['delegated']}/{cov['nodes']} nodes, {cov['partitions']} partition(s), "
            f"fallback: {fallback}")


def _ratio_targets(result):
    """Per implementation of ours: CSP/twin latency ratio within the tolerance of the FLOPs one."""
    out, by_pair = [], {}
    for r in ratios(result):
        by_pair.setdefault((r["csp"], r["twin"], r["impl"]), []).append(r)
    for (csp, twin, impl), items in by_pair.items():
        detail = ", ".join(f"batch {r['batch']}: {r['latency_ratio']:.2f} vs FLOPs "
                           f"{r['flops_ratio']:.2f} ({r['difference']:+.2f})" for r in items)
        out.append((f"{impl} latency({csp})/latency({twin}) within {TARGET_RATIO_TOLERANCE} of "
                    "the FLOPs ratio", "met" if all(r["met"] for r in items) else "missed", detail))
    return out
