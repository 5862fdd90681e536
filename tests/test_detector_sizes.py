"""benchmarks/detector_sizes.py's tiled validation set: boxes follow their tile (no timing)."""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import detector_sizes  # noqa: E402


def test_tiles_keep_scale_and_shift_boxes():
    images = [np.full((4, 4, 3), value, np.uint8) for value in (10, 20, 30, 40, 50)]
    boxes = [[(1, [0, 0, 2, 2])], [], [(2, [1, 1, 3, 3])], [], [(3, [0, 0, 1, 1])]]
    out = list(detector_sizes.tiled(images, boxes, size=9, tile=4))
    assert len(out) == 1  # 4 tiles per 9x9 canvas; the fifth image makes no full canvas
    canvas, canvas_boxes = out[0]
    assert canvas.shape == (9, 9, 3)
    assert canvas[0, 0, 0] == 10 and canvas[0, 4, 0] == 20 and canvas[4, 0, 0] == 30
    assert canvas[4, 4, 0] == 40 and canvas[8, 8, 0] == 0  # the margin stays zero
    assert canvas_boxes == [(1, [0, 0, 2, 2]), (2, [1, 5, 3, 3])]


def test_val_set_is_coco_with_shifted_boxes(tmp_path):
    source = tmp_path / "src"
    (source / "val").mkdir(parents=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(source / "val" / f"{i}.png")
        coco["images"].append({"id": i + 1, "file_name": f"{i}.png", "width": 8, "height": 8})
        coco["annotations"].append({"id": i + 1, "image_id": i + 1, "category_id": 1,
                                    "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0})
    (source / "val.json").write_text(json.dumps(coco))
    path = detector_sizes.write_val_set(str(source / "val.json"), 20, str(tmp_path / "out"))
    written = json.loads(Path(path).read_text())
    assert [(image["width"], image["height"]) for image in written["images"]] == [(20, 20)]
    assert [ann["bbox"] for ann in written["annotations"]] == [
        [1, 2, 3, 4], [9, 2, 3, 4], [1, 10, 3, 4], [9, 10, 3, 4]]
    pixels = np.asarray(Image.open(tmp_path / "out" / "val" / written["images"][0]["file_name"]))
    assert pixels[9, 9, 0] == 180 and pixels[19, 19, 0] == 0
