"""`benchmarks.detection_merge`: rows of side-by-side benchmark runs put into one table, targets
recomputed, recipe rows beside their baseline (made-up records; no training, no TensorFlow)."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import detection_merge, detection_seeds  # noqa: E402

ARGS = {"size": 128, "train": 1500, "val": 300, "epochs": 12, "batch": 16, "difficulty": "hard",
        "data_seed": 0, "seeds": [0, 1], "set": []}


def record(row, seed, m, m50, bflops, recipe="defaults"):
    return {"row": row, "backbone": row, "neck": "efm", "attention": "sam", "recipe": recipe,
            "seed": seed, "keras_mAP": m, "keras_mAP50": m50, "params": 1000, "bflops": bflops,
            "errors": {}, "tflite": {}}


def write_run(folder, rows, **args):
    folder.mkdir()
    result = {"date": "2026-12-07 07:00 UTC", "args": {**ARGS, **args},
              "command": f"python -m benchmarks.detection --out {folder.name}",
              "rows": [detection_seeds.combine(seeds) for seeds in rows]}
    (folder / "detection.json").write_text(json.dumps(result))
    return folder


def test_merge_recomputes_targets_and_places_recipe_rows(tmp_path):
    n = write_run(tmp_path / "n", [[record("efm-sam-n", 0, 0.20, 0.30, 0.303),
                                    record("efm-sam-n", 1, 0.18, 0.28, 0.303)]])
    peers = write_run(tmp_path / "peers", [[record("yolov8n", 0, 0.15, 0.25, 0.328),
                                            record("yolov8n", 1, 0.13, 0.23, 0.328)]])
    ema = write_run(tmp_path / "ema", [[record("efm-sam-n", 0, 0.23, 0.33, 0.303),
                                        record("efm-sam-n", 1, 0.21, 0.31, 0.303)]],
                    set=["ema=True"])
    out = tmp_path / "merged"
    merged = detection_merge.main([str(n), str(peers), "--recipe", str(ema), "--out", str(out)])
    assert [r["row"] for r in merged["rows"]] == ["efm-sam-n", "yolov8n", "efm-sam-n [ema=True]"]
    recipe_row = merged["rows"][2]
    assert recipe_row["baseline"] == "efm-sam-n" and recipe_row["recipe"] == "defaults + ema=True"
    verdicts = {what: verdict for what, verdict, _ in merged["targets"]}
    # the baseline n row (0.19) against YOLOv8n (0.14), not the recipe row
    assert verdicts["efm-sam-n (scale n, at most YOLOv8n's BFLOPs) mAP above yolov8n's"] == "met"
    text = (out / "detection.md").read_text()
    assert "mAP 0.190 ± 0.010 vs 0.190" not in text
    assert "- efm-sam-n [ema=True]: mAP 0.220 ± 0.010 vs 0.190 ± 0.010 (+3.0 points)" in text
    assert "mAP50 0.320 ± 0.010 vs 0.290 ± 0.010; seeds 0,1" in text
    assert (out / "detection.png").stat().st_size > 0
    assert json.loads((out / "detection.json").read_text())["commands"][1].endswith("peers")


def test_merge_joins_a_rows_seeds_from_several_runs(tmp_path):
    a = write_run(tmp_path / "a", [[record("efm-sam-n", 0, 0.20, 0.30, 0.303),
                                    record("efm-sam-n", 1, 0.18, 0.28, 0.303)]])
    b = write_run(tmp_path / "b", [[record("efm-sam-n", 2, 0.24, 0.34, 0.303),
                                    record("efm-sam-n", 3, 0.22, 0.32, 0.303)]], seeds=[2, 3])
    merged = detection_merge.merge([detection_merge.read_run(a), detection_merge.read_run(b)])
    (row,) = merged["rows"]
    assert [s["seed"] for s in row["seeds"]] == [0, 1, 2, 3] and row["seed_count"] == 4
    assert row["keras_mAP"] == pytest.approx(0.21)
    assert row["spread"]["keras_mAP"] == pytest.approx(0.03)
    assert detection_seeds.mean_and_spread(row, "keras_mAP") == "0.210 ± 0.030"
    # a recipe run of seeds 2 and 3 is compared with the baseline's seeds 2 and 3 only
    hsv = write_run(tmp_path / "hsv", [[record("efm-sam-n", 2, 0.21, 0.31, 0.303),
                                        record("efm-sam-n", 3, 0.21, 0.31, 0.303)]],
                    seeds=[2, 3], set=["aug_hsv=True"])
    merged = detection_merge.merge([detection_merge.read_run(a), detection_merge.read_run(b)],
                                   [detection_merge.read_run(hsv)])
    (line,) = detection_merge.recipe_lines(merged)
    assert line.startswith("- efm-sam-n [aug_hsv=True]: mAP 0.210 ± 0.000 vs 0.230 ± 0.010 (-2.0 "
                           "points)")
    assert line.endswith("; seeds 2,3")
    ((change, diffs),) = detection_merge.recipe_differences(merged)
    assert change == "aug_hsv=True" and diffs == pytest.approx([-0.03, -0.01])


def test_merge_refuses_other_budgets_and_repeated_seeds(tmp_path):
    a = write_run(tmp_path / "a", [[record("efm-sam-n", 0, 0.2, 0.3, 0.303)]])
    b = write_run(tmp_path / "b", [[record("yolov8n", 0, 0.1, 0.2, 0.328)]], epochs=6)
    c = write_run(tmp_path / "c", [[record("efm-sam-n", 0, 0.2, 0.3, 0.303)]])
    with pytest.raises(ValueError, match=r"differs .* in \{'epochs': 6\}"):
        detection_merge.merge([detection_merge.read_run(a), detection_merge.read_run(b)])
    with pytest.raises(ValueError, match=r"row 'efm-sam-n' has seeds \[0\] in more than one"):
        detection_merge.merge([detection_merge.read_run(a), detection_merge.read_run(c)])
    with pytest.raises(ValueError, match="not a benchmarks.detection result"):
        detection_merge.read_run(tmp_path / "missing")
