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
    assert [r["format"] for r in summary["tflite"]] == ["keras", "fp16"]  # quick: no int8
    for row in summary["tflite"][1:]:
        assert os.path.exists(row["file"]) and 0.0 <= row["mAP50"] <= 1.0
    # fp16 keeps the Keras model's boxes.
    assert abs(summary["tflite"][1]["mAP50_drop"]) <= 0.02
    # The validation set written as COCO files is what `keras-csp evaluate` reads.
    assert main(["evaluate", summary["files"]["tflite"][0], "--data", summary["files"]["coco"],
                 "--images-dir", str(out / "demo_detection" / "coco" / "val")]) == 0
    assert "COCO mAP" in capsys.readouterr().out
    demo_detection.clean(str(out))
    assert os.listdir(out) == []
