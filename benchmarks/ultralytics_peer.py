"""Trains and runs one ultralytics peer (YOLOv8n or YOLO11n) for `benchmarks.detection`; runs in
`.venv-yolo` (`python3.11 tools/make_ultralytics_env.py`), never in the package's environment.

    .venv-yolo/bin/python -m benchmarks.ultralytics_peer --model yolov8n --data yolo/data.yaml \
        --imgsz 128 --epochs 12 --batch 16 --seed 0 --workdir W --out W/yolov8n.json

The model is built from ultralytics' own yaml (`yolov8n.yaml`, `yolo11n.yaml`: random weights,
`pretrained=False`) and trained with ultralytics' default recipe (its optimizer choice, EMA,
mosaic closed for the last 10 epochs, HSV and flip augmentation, its loss and assigner) at the
benchmark's size, epochs, batch and seed, on the CPU; `plots=False` and `amp=False` because both
would download files (a font, a checkpoint for the AMP check), and validation runs at the end
only (`val=False`: ultralytics then validates the last epoch, whose weights it keeps). It then
predicts every validation image at COCO's score threshold 0.001 (ultralytics' NMS IoU 0.7, at
most 100 boxes, as the metric reads) and writes `--out`: `{"predictions": [{"file_name",
"boxes" xyxy pixels of the original image, "scores", "classes"}], "params", "flops" (2 per
multiply-add, at --imgsz), "train_seconds", "versions"}`. `benchmarks.peer_predictions` turns the
predictions into COCO results and scores them as our rows are scored.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

MODELS = {"yolov8n": "yolov8n.yaml", "yolo11n": "yolo11n.yaml"}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--data", required=True, help="the YOLO copy's data.yaml")
    parser.add_argument("--imgsz", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="data loader processes")
    parser.add_argument("--workdir", required=True, help="ultralytics' run folder goes here")
    parser.add_argument("--out", required=True, help="the JSON written")
    parser.add_argument("--conf", type=float, default=0.001)
    parser.add_argument("--iou", type=float, default=0.7)
    parser.add_argument("--max-det", type=int, default=100)
    return parser.parse_args(argv)


def val_images(data_yaml):
    """The validation images of the YOLO copy, sorted by name."""
    import yaml

    config = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(config.get("path") or Path(data_yaml).parent)
    folder = root / config["val"]
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def size_of(model, imgsz):
    """(params, FLOPs at imgsz x imgsz, 2 per multiply-add): ultralytics' own count."""
    from ultralytics.utils.torch_utils import get_flops

    params = sum(p.numel() for p in model.model.parameters())
    return params, get_flops(model.model, imgsz) * 1e9


def predict(model, images, args):
    out = []
    for result in model.predict(source=images, imgsz=args.imgsz, conf=args.conf, iou=args.iou,
                                max_det=args.max_det, device="cpu", verbose=False, stream=True):
        boxes = result.boxes
        out.append({
            "file_name": Path(result.path).name,
            "boxes": boxes.xyxy.cpu().numpy().round(3).tolist(),
            "scores": boxes.conf.cpu().numpy().round(5).tolist(),
            "classes": boxes.cls.cpu().numpy().astype(int).tolist(),
        })
    return out


def main(argv=None):
    args = parse(argv)
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # ultralytics keeps its settings file in the user's config folder; keep it in the run's.
    os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "ultralytics_config"))
    import torch
    import ultralytics
    from ultralytics import YOLO

    torch.manual_seed(args.seed)
    model = YOLO(MODELS[args.model])
    started = time.time()
    model.train(
        data=str(args.data), imgsz=args.imgsz, epochs=args.epochs, batch=args.batch,
        seed=args.seed, pretrained=False, plots=False, amp=False, val=False, device="cpu",
        workers=args.workers, project=str(work), name=args.model, exist_ok=True, verbose=False,
    )
    train_seconds = time.time() - started
    params, flops = size_of(model, args.imgsz)  # trained: the data's classes, not the yaml's 80
    images = val_images(args.data)
    record = {
        "model": args.model, "yaml": MODELS[args.model], "params": params, "flops": flops,
        "imgsz": args.imgsz, "epochs": args.epochs, "batch": args.batch, "seed": args.seed,
        "train_seconds": round(train_seconds, 1),
        "nms": {"conf": args.conf, "iou": args.iou, "max_det": args.max_det},
        "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__,
                     "python": sys.version.split()[0]},
        "predictions": predict(model, images, args),
    }
    from keras_csp.files import atomic_file  # standard library only: importable in .venv-yolo

    with atomic_file(args.out) as tmp:
        Path(tmp).write_text(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
