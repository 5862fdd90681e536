import json
import os

from PIL import Image

from keras_csp.cli import main
from keras_csp.train import demo_detection


def test_detection_demo_quick(tmp_path, capsys):
    out = tmp_path / "saved_models"
    assert main(["demo", "--task", "detection", "--quick", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Training CSPDetector" in printed and "mAP50" in printed
    summary = json.loads((out / demo_detection.SUMMARY).read_text())
    assert 0.0 <= summary["val_mAP50"] <= 1.0
    picture = Image.open(out / demo_detection.PICTURE)
    assert picture.size == (4 * 256, 2 * 256)  # 8 validation images of 64 px, drawn at 256
    # The demo ends with the benchmark's table (quick: Keras and fp16 only).
    assert "| Keras |" in printed and "| TFLite fp16 |" in printed
    rows = summary["benchmark"]
    assert [r["format"] for r in rows] == ["keras", "tflite_fp16"]
    for row in rows:
        assert os.path.exists(row["file"]) and 0.0 <= row["mAP50"] <= 1.0
        assert row["latency"]["ms"] > 0 and not row["error"]
    # fp16 keeps the Keras model's boxes.
    assert abs(rows[1]["difference"]) <= 0.02
    assert os.path.exists(summary["files"]["benchmark"]["plot"])
    # The validation set written as COCO files is what `keras-csp evaluate` reads.
    assert main(["evaluate", summary["files"]["tflite"][0], "--data", summary["files"]["coco"],
                 "--images-dir", str(out / "demo_detection" / "coco" / "val")]) == 0
    assert "COCO mAP" in capsys.readouterr().out
    demo_detection.clean(str(out))
    assert os.listdir(out) == []
