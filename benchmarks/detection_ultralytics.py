"""The ultralytics rows of `benchmarks.detection` (`yolov8n`, `yolo11n`) and issue 23's targets.

A row trains in `.venv-yolo` (`python3.11 tools/make_ultralytics_env.py`) through
`benchmarks/ultralytics_peer.py`, on the YOLO copy of the benchmark's COCO files
(`peer_predictions.coco_to_yolo`: the same JPEGs), with ultralytics' own recipe at the
benchmark's size, epochs, batch and seed; its predictions on the validation images (score
threshold 0.001) become COCO results and are scored by `keras_csp.coco_eval.coco_metrics` on the
same `val.json` as our rows (`peer_predictions`). No `.tflite` file is made for these rows.
"""

import json
import subprocess
import time
from pathlib import Path

from benchmarks.detection_seeds import first_seed
from benchmarks.peer_predictions import coco_to_yolo, score_results, to_coco_results

REPO = Path(__file__).resolve().parents[1]
YOLO_PYTHON = REPO / ".venv-yolo" / "bin" / "python"
# row -> the model name of benchmarks/ultralytics_peer.py
ULTRALYTICS_ROWS = {"yolov8n": "yolov8n", "yolo11n": "yolo11n"}


def run_peer_row(row, args, record):
    """Trains and scores one ultralytics row for `args.seed`; fills and returns `record`."""
    work = Path(args.workdir)
    if not YOLO_PYTHON.exists():
        record["errors"]["environment"] = (
            f"{YOLO_PYTHON} does not exist; make it with `python3.11 tools/make_ultralytics_env.py`"
        )
        return record
    data = work / "data"
    yaml_path = coco_to_yolo(data, work / "yolo")
    out = work / row / f"seed{args.seed}" / "peer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(YOLO_PYTHON), "-m", "benchmarks.ultralytics_peer", "--model", ULTRALYTICS_ROWS[row],
        "--data", str(yaml_path), "--imgsz", str(args.size), "--epochs", str(args.epochs),
        "--batch", str(args.batch), "--seed", str(args.seed), "--workdir", str(out.parent),
        "--out", str(out), "--conf", str(args.eval_confidence),
    ]
    record["command"] = " ".join(command)
    started = time.time()
    log = out.parent / "peer.log"
    with open(log, "w") as f:
        proc = subprocess.run(command, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode or not out.is_file():
        record["errors"]["ultralytics"] = log.read_text(errors="replace")[-1500:]
        return record
    peer = json.loads(out.read_text())
    results = to_coco_results(peer["predictions"], data / "val.json")
    scores = score_results(results, data / "val.json", data / "val")
    record.update(
        keras_mAP=scores["mAP"], keras_mAP50=scores["mAP50"], val_images=scores["images"],
        params=peer["params"], bflops=peer["flops"] / 1e9, bflops_416=None,
        train_seconds=peer["train_seconds"], wall_seconds=round(time.time() - started, 1),
        train_images_per_second=round(args.train * args.epochs / peer["train_seconds"], 1),
        versions=peer["versions"], nms=peer["nms"], tflite={},
    )
    record["notes"].append(
        "ultralytics' own recipe and PyTorch model on the CPU; scored by keras_csp.coco_eval on "
        "the same val.json (`keras_mAP` here is that model's mAP); no .tflite file; training "
        "images/s over ultralytics' whole train() call (set-up and its final validation included)"
    )
    return record


def issue23_targets(rows, m):
    """(what, verdict, numbers) of issue 23's targets where their rows are present."""
    out = []
    n, default = rows.get("efm-sam-n"), rows.get("efm-sam")
    peers = {k: rows.get(k) for k in ULTRALYTICS_ROWS}
    v8 = peers["yolov8n"]
    # The issue's budget is YOLOv8n's FLOPs for both comparisons (YOLO11n has fewer).
    budget = (v8 or {}).get("bflops")
    for name, peer in peers.items():
        if n and peer and budget and m(n) is not None and m(peer) is not None:
            within = n["bflops"] <= budget
            out.append((f"efm-sam-n (scale n, at most YOLOv8n's BFLOPs) mAP above {name}'s",
                        "met" if m(n) > m(peer) and within else "missed",
                        f"mAP {m(n):.3f} vs {m(peer):.3f}; BFLOPs {n['bflops']:.3f} vs YOLOv8n's "
                        f"{budget:.3f} ({name}: {peer['bflops']:.3f})"))
    if default and v8 and m(default) is not None and m(v8):
        ratio = m(default) / m(v8)
        out.append(("efm-sam (the defaults) mAP >= 1.2x YOLOv8n's",
                    "met" if ratio >= 1.2 else "missed",
                    f"{m(default):.3f} / {m(v8):.3f} = {ratio:.2f}x"))
    int8 = (n or {}).get("tflite", {}).get("int8", {}).get("val_mAP50")
    keras50 = first_seed(n or {}, "keras_mAP50")  # the exported files are the first seed's
    if int8 is not None and keras50 is not None:
        drop = keras50 - int8
        out.append(("efm-sam-n int8 .tflite mAP50 within 1 point of Keras",
                    "met" if drop <= 0.01 else "missed",
                    f"{int8:.3f} vs {keras50:.3f} ({-drop * 100:+.1f} points)"))
    return out


def check_environment():
    """A line for the log: whether `.venv-yolo` exists (the rows fail with that error if not)."""
    if YOLO_PYTHON.exists():
        return f"ultralytics rows run in {YOLO_PYTHON}"
    return f"{YOLO_PYTHON} is missing: run `python3.11 tools/make_ultralytics_env.py`"
