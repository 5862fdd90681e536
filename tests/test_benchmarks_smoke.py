"""The bookkeeping of benchmarks/inference.py on made-up numbers (no timing, no subprocesses)."""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import inference, inference_worker  # noqa: E402


def _op(index, name, inputs, outputs):
    return {"index": index, "op_name": name, "inputs": inputs, "outputs": outputs}


def test_xnnpack_coverage_finds_the_fallback_op():
    # 0: conv(t0 -> t1), 1: add(t1 -> t2), 2: softmax(t2 -> t3), 3: dequantize(t3 -> t4);
    # XNNPACK took {0, 1} (delegate t0 -> t2) and {3} (delegate t3 -> t4); softmax fell back.
    ops = [
        _op(0, "CONV_2D", [0, 10], [1]),
        _op(1, "ADD", [1, 11], [2]),
        _op(2, "SOFTMAX", [2], [3]),
        _op(3, "DEQUANTIZE", [3], [4]),
        _op(4, "DELEGATE", [0, 10, 11], [2]),
        _op(5, "DELEGATE", [3], [4]),
    ]
    coverage = inference_worker.xnnpack_coverage(ops)
    assert coverage == {"nodes": 4, "delegated": 3, "partitions": 2,
                        "fallback_ops": {"SOFTMAX": 1}, "full": False}
    whole = inference_worker.xnnpack_coverage(ops[:2] + [_op(2, "DELEGATE", [0, 10, 11], [2])])
    assert whole["full"] and whole["fallback_ops"] == {}


def test_agreement_counts_ties():
    expected = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    got = np.array([[0.5, 0.5, 0.0], [0.9, 0.0, 0.1]])  # image 0: a tie that argmax breaks wrongly
    result = inference_worker.agreement(expected, got)
    assert result["top1_agreement"] == 0.5
    assert result["tie_aware_agreement"] == 1.0
    assert result["images_with_tied_top1"] == 1


def _row(model, impl, batch, ms, **extra):
    return {"model": model, "impl": impl, "batch": batch, "ms": ms, "min_ms": ms, "p90_ms": ms,
            "load1": 0.5, "source": "x", **extra}


def test_report_targets_and_outputs(tmp_path):
    full = {"nodes": 3, "delegated": 3, "partitions": 1, "fallback_ops": {}, "full": True}
    result = {
        "peak": {"start": {"gflops": 100.0}, "end": {"gflops": 90.0}},
        "models": {"cspresnext50": {"flops": 8e9, "params": 20e6, "weights": "calibrated: x"},
                   "resnext50": {"flops": 10e9, "params": 25e6, "weights": "calibrated: x"}},
        "rows": [
            _row("cspresnext50", "keras", 1, 100.0),
            _row("cspresnext50", "keras-hub", 1, 200.0),
            _row("cspresnext50", "timm", 1, 120.0),
            _row("resnext50", "keras", 1, 125.0),
            _row("cspresnext50", "tflite-int8", 1, 12.0, xnnpack=full,
                 agreement={"images": 100, "top1_agreement": 0.99, "tie_aware_agreement": 0.99,
                            "images_with_tied_top1": 0, "distinct_float_top1": 40}),
        ],
        "notes": [], "errors": [], "versions": {"tensorflow": "2.21.0"},
        "machine": inference.machine(), "date": "2026-01-01",
        "load_average": {"start": (0.1, 0.1, 0.1), "end": (0.2, 0.2, 0.2)},
        "args": {"threads": 2, "input_size": 256, "runs": 20, "warmup": 5, "argv": []},
    }
    inference.derive(result)
    row = inference.find(result["rows"], "cspresnext50", "keras", 1)
    assert row["gflops_per_s"] == 80.0 and row["pct_peak"] == 80.0  # peak: the higher one
    result["ratios"] = inference.ratios(result)
    assert result["ratios"][0]["latency_ratio"] == 0.8 and result["ratios"][0]["met"]
    result["targets"] = inference.targets(result)
    verdicts = {text: verdict for text, verdict, _ in result["targets"]}
    assert verdicts["Keras cspresnext50 batch 1 >= 70% of peak"] == "met"
    assert verdicts["Keras cspresnext50 batch 1 >= 1.8x faster than keras-hub (graph vs graph, "
                    "XLA vs XLA)"] == "met"
    assert verdicts["Keras cspresnext50 batch 1 faster than timm (eager PyTorch)"] == "met"
    assert verdicts["Keras resnext50 batch 1 >= 75% of peak"] == "met"
    assert verdicts["TFLite int8 cspresnext50 batch 1 <= 13 ms"] == "met"
    assert verdicts["TFLite fp32 cspresnext50 batch 1 >= 85% of peak"] == "n/a"
    assert "cspresnext50" in inference.format_report(result)
    assert inference.markdown(result).count("| cspresnext50 |") == 4
    inference.plot(result, tmp_path / "inference.png")
    assert (tmp_path / "inference.png").stat().st_size > 0


def test_arguments():
    args = inference.parse_args(["--impls", "none", "--compare", "timm", "--runs", "20"])
    assert args.impls == [] and args.compare == ["timm"]
    args = inference.parse_args(["--impls", "keras,tflite-int8"])
    assert args.impls == ["keras", "tflite-int8"] and args.compare == ["keras-hub", "timm"]


def test_paired_measures_every_model_in_turns_and_pairs_csp_with_its_twin():
    from benchmarks import paired

    calls = []
    callables = {label: ((lambda label=label: calls.append(label)), flops) for label, flops in
                 [("cspresnext50_fp32", 8e9), ("resnext50_fp32", 10e9), ("resnext50_int8", None)]}
    times = paired.measure(callables, rounds=3, runs=2, warmup=1)
    assert calls.count("resnext50_int8") == 1 + 3 * 2
    assert {len(ts) for ts in times.values()} == {6}
    times = {"cspresnext50_fp32": [8.0, 9.0, 10.0], "resnext50_fp32": [12.0, 10.0, 11.0],
             "resnext50_int8": [3.0]}
    rows, pairs = paired.summarize(callables, times)
    assert rows["cspresnext50_fp32"]["ms"] == 9.0 and rows["resnext50_fp32"]["min_ms"] == 10.0
    assert rows["resnext50_fp32"]["gflops_per_s"] == 10e9 / 11.0 / 1e6
    (pair,) = pairs  # the int8 file has no CSP partner of the same variant
    assert (pair["csp"], pair["twin"]) == ("cspresnext50_fp32", "resnext50_fp32")
    assert pair["latency_ratio"] == 9.0 / 11.0 and pair["fastest_ratio"] == 8.0 / 10.0
    assert pair["flops_ratio"] == 0.8


def _detection_row(row, map50, bflops, fp16, int8, int8_ms):
    from benchmarks import detection

    backbone, neck, attention, recipe = detection.ROWS[row]
    return {"row": row, "backbone": backbone, "neck": neck, "attention": attention,
            "recipe": recipe, "keras_mAP": map50 / 2, "keras_mAP50": map50, "params": 1000,
            "bflops": bflops, "bflops_416": bflops * 10, "train_images_per_second": 20.0,
            "tflite": {"fp16": {"val_mAP50": fp16}, "int8": {"val_mAP50": int8}},
            "latency": {"fp32": int8_ms * 2, "int8": int8_ms}}


def test_detection_targets_and_table_on_made_up_rows(tmp_path):
    from benchmarks import detection

    result = {"args": {"size": 128, "epochs": 6, "train": 1000}, "date": "2026-01-01", "rows": [
        _detection_row("efm-sam", 0.40, 0.10, 0.399, 0.36, 4.0),
        _detection_row("yolov8-xs", 0.38, 0.12, 0.38, 0.37, 5.0),
        _detection_row("efm-sam-old", 0.20, 0.10, 0.20, 0.19, 4.0),
        _detection_row("fpn", 0.30, 0.08, 0.30, 0.29, 3.0),
        _detection_row("gfm", 0.30, 0.09, 0.30, 0.29, 3.5),
    ]}
    verdicts = {what: (verdict, numbers) for what, verdict, numbers in detection.targets(result)}
    assert verdicts["CSPPeleeNet+EFM(SAM) mAP50 >= YOLOv8-xs at fewer BFLOPs or lower "
                    "latency"][0] == "met"
    assert verdicts["CSPPeleeNet+EFM(SAM) mAP50 >= 1.5x today's (old) defaults"] == (
        "met", "0.400 / 0.200 = 2.00x")
    assert verdicts["efm-sam fp16 .tflite mAP50 within 0.5 points"][0] == "met"
    assert verdicts["efm-sam int8 .tflite mAP50 within 3.0 points"][0] == "missed"  # 4 points
    # mAP50 per BFLOP: EFM(SAM) 4.0, FPN 3.75, GFM 3.33
    assert verdicts["EFM(SAM) beats FPN and GFM in mAP50 per BFLOP"][0] == "yes"
    text = detection.table(result)
    assert text.count("\n") == len(result["rows"]) + 1
    assert "| efm-sam | csppeleenet | EFM(SAM) | defaults | 0.200 | 0.400 |" in text
    assert "4.00 (1.00)" in text and "5.00 (1.25)" in text  # int8 ms and the ratio to efm-sam
    detection.plot(result, tmp_path / "detection.png")
    assert (tmp_path / "detection.png").stat().st_size > 0


def test_detection_quick_trains_exports_evaluates_and_times_a_row(tmp_path):
    from benchmarks import detection

    result = detection.main(["--quick", "--out", str(tmp_path)])
    (row,) = result["rows"]
    assert row["errors"] == {} and row["keras_mAP50"] is not None
    assert row["params"] > 0 and row["bflops_416"] > row["bflops"] > 0
    assert row["tflite"]["int8"]["images"] == 8 and row["tflite"]["int8"]["val_mAP50"] >= 0
    assert row["latency"]["fp32"] > 0 and row["latency"]["int8"] > 0
    for name in ("detection.json", "detection.md", "detection.png"):
        assert (tmp_path / name).stat().st_size > 0
