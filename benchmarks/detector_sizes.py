"""`keras-csp benchmark` of one trained detector rebuilt at several input sizes (issue 22, item 4).

    python benchmarks/detector_sizes.py /tmp/demo_full/csp_detector_demo.keras \
        --val /tmp/demo_full/demo_detection/coco/val.json --sizes 128 320 416 --out /tmp/det_sizes

Run by hand, never in CI. The detector is fully convolutional, so the same weights run at any
input size that is a multiple of 32: its config is rebuilt with `input_shape` changed and the
weights copied (same shapes). The weights were trained at the validation images' size (the demo:
128 px), so the shapes keep the scale they were trained at: an image of `size` px holds
(size // 128)^2 validation images pasted side by side at their own size (zeros around them, as
the letterbox pads), not one image scaled up, which would show the detector objects 2.5-3x larger
than it ever saw. Int8 calibrates on training images pasted the same way (the demo's training set,
`synthetic_shapes("detection", seed=0, difficulty="easy")`, which the demo does not write).

Each size runs `keras-csp benchmark` (a subprocess, `--threads 2`, Keras and TFLite fp32 / fp16 /
int8) and the JSONs are collected into one markdown table (printed, and written to
`<out>/detector_sizes.md`).
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FORMATS = "keras,tflite_fp32,tflite_fp16,tflite_int8"


def resized_detector(path, size, out_path):
    """The detector at `path` rebuilt with a `size` x `size` input, its weights copied; saved."""
    import keras_csp
    from keras_csp.detection.detector import CSPDetector

    model = keras_csp.load_model(path)
    config = model.get_config()
    config["input_shape"] = [size, size, 3]
    resized = CSPDetector.from_config(config)
    resized.set_weights(model.get_weights())
    resized.save(out_path)
    return out_path


def tiled(images, boxes, size, tile):
    """Groups of (size // tile)^2 tile images pasted on zero size x size canvases, with boxes."""
    import numpy as np

    per_side = size // tile
    per_image = per_side * per_side
    for start in range(0, len(images) - per_image + 1, per_image):
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas_boxes = []
        for k in range(per_image):
            y, x = (k // per_side) * tile, (k % per_side) * tile
            canvas[y:y + tile, x:x + tile] = images[start + k]
            for category, (bx, by, bw, bh) in boxes[start + k]:
                canvas_boxes.append((category, [bx + x, by + y, bw, bh]))
        yield canvas, canvas_boxes


def write_val_set(val_json, size, folder):
    """The validation COCO set tiled to `size` (see the module docstring); returns its JSON path."""
    import numpy as np
    from PIL import Image

    from keras_csp.files import atomic_file

    with open(val_json) as f:
        coco = json.load(f)
    root = os.path.dirname(val_json)
    images_dir = os.path.join(root, os.path.splitext(os.path.basename(val_json))[0])
    if not os.path.isdir(images_dir):
        images_dir = root
    tile = coco["images"][0]["width"]
    by_image = {image["id"]: [] for image in coco["images"]}
    for ann in coco["annotations"]:
        by_image[ann["image_id"]].append((ann["category_id"], ann["bbox"]))
    pixels = [np.asarray(Image.open(os.path.join(images_dir, image["file_name"])).convert("RGB"))
              for image in coco["images"]]
    boxes = [by_image[image["id"]] for image in coco["images"]]
    os.makedirs(os.path.join(folder, "val"), exist_ok=True)
    out = {"images": [], "annotations": [], "categories": coco["categories"]}
    for i, (canvas, canvas_boxes) in enumerate(tiled(pixels, boxes, size, tile)):
        name = f"{i:06d}.png"
        Image.fromarray(canvas).save(os.path.join(folder, "val", name))
        out["images"].append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for category, box in canvas_boxes:
            out["annotations"].append({
                "id": len(out["annotations"]) + 1, "image_id": i + 1, "category_id": category,
                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    path = os.path.join(folder, "val.json")
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        json.dump(out, f)
    return path


def write_calibration(size, count, folder, tile=128):
    """`count` tiled training images of the demo's set (seed 0, easy) in `folder`."""
    from PIL import Image

    from keras_csp.data import synthetic_shapes

    per_image = (size // tile) ** 2
    data = synthetic_shapes("detection", num_train=count * per_image, num_validation=0,
                            image_size=tile, seed=0, difficulty="easy")
    batch = next(iter(data.train.as_dataset(count * per_image, shuffle=False)))
    pixels = batch["images"].numpy().astype("uint8")
    os.makedirs(folder, exist_ok=True)
    no_boxes = [[] for _ in pixels]
    for i, (canvas, _) in enumerate(tiled(pixels, no_boxes, size, tile)):
        Image.fromarray(canvas).save(os.path.join(folder, f"{i:06d}.png"))
    return folder


def run_size(args, size):
    folder = os.path.join(args.out, str(size))
    os.makedirs(folder, exist_ok=True)
    model = resized_detector(args.model, size, os.path.join(folder, f"csp_detector_{size}.keras"))
    val = write_val_set(args.val, size, os.path.join(folder, "data"))
    calibration = write_calibration(size, args.calibration, os.path.join(folder, "calibration"))
    command = [sys.executable, "-m", "keras_csp.cli", "benchmark", model, "--data", val,
               "--images-dir", os.path.join(os.path.dirname(val), "val"),
               "--calibration-data", calibration, "--threads", str(args.threads),
               "--formats", FORMATS, "--runs", str(args.runs), "-o",
               os.path.join(folder, "benchmark"), "--overwrite", "--no-progress"]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    with open(os.path.join(folder, "benchmark", "benchmark.json")) as f:
        return json.load(f)


def table(results):
    lines = ["| size | format | file | mAP | mAP50 | mAP - Keras | mAP50 - Keras | median ms (p90) "
             "| int8 speed-up vs fp32 | load (1 min, start/end) |", "|---" * 10 + "|"]
    for size, result in results:
        rows = {row["format"]: row for row in result["rows"]}
        fp32, int8, keras = (rows.get(name) for name in ("tflite_fp32", "tflite_int8", "keras"))
        speedup = (f"{fp32['latency']['ms'] / int8['latency']['ms']:.2f}x"
                   if fp32 and int8 and fp32.get("latency") and int8.get("latency") else "-")
        load = result.get("load_average_1min", {})
        for row in result["rows"]:
            if row.get("error"):
                lines.append(f"| {size} | {row['label']} | - | error: {row['error']} ||||||||")
                continue
            latency = row["latency"]
            map_diff = row["mAP"] - keras["mAP"] if keras and not keras.get("error") else None
            lines.append(
                f"| {size} | {row['label']} | {row['size_bytes'] / 2**20:.2f} MiB "
                f"| {row['mAP']:.4f} | {row['mAP50']:.4f} "
                f"| {'-' if map_diff is None else f'{map_diff:+.4f}'} | {row['difference']:+.4f} "
                f"| {latency['ms']:.2f} ({latency['p90_ms']:.2f}) "
                f"| {speedup if row['format'] == 'tflite_int8' else ''} "
                f"| {load.get('start', '-')}/{load.get('end', '-')} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a trained CSPDetector .keras file")
    parser.add_argument("--val", required=True, help="its validation COCO JSON")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 320, 416])
    parser.add_argument("--out", default="runs/detector_sizes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--calibration", type=int, default=100,
                        help="int8 calibration images (tiled) per size")
    args = parser.parse_args(argv)
    results = [(size, run_size(args, size)) for size in args.sizes]
    text = table(results)
    print(text)
    from keras_csp.files import atomic_file

    with atomic_file(os.path.join(args.out, "detector_sizes.md")) as tmp, open(tmp, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
