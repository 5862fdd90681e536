import json
import os

from keras_csp.train import demo


def test_demo_quick(tmp_path, capsys):
    out = str(tmp_path / "saved_models")
    summary = demo.run(quick=True, output_dir=out)
    printed = capsys.readouterr().out
    # The profile table of the paper's models is part of the output.
    assert "CSP models against their baselines" in printed and "cspdarknet53" in printed
    # The side-by-side table of the trained pair.
    assert "val top-1" in printed and "(plain twin)" in printed
    rows = summary["rows"]
    assert [r["fusion"] for r in rows] == ["full", "none"]
    assert rows[0]["flops"] < rows[1]["flops"] and rows[0]["params"] < rows[1]["params"]
    for r in rows:
        assert 0.0 <= r["val_accuracy"] <= 1.0 and os.path.exists(r["model_file"])
    assert os.path.exists(os.path.join(out, "demo_learning_curves.png"))
    # The CSP model is exported and each .tflite run with keras_csp.lite on the validation images.
    assert "Keras vs its TFLite exports" in printed
    exports = summary["tflite"]
    assert [e["format"] for e in exports] == ["keras", "fp16", "int8", "qat"]
    for e in exports[1:]:
        assert os.path.exists(e["file"]) and 0.0 <= e["top1"] <= 1.0
    # fp16 weights barely move the probabilities.
    assert exports[1]["max_prob_diff"] < 1e-2
    assert json.load(open(os.path.join(out, "demo_summary.json")))["rows"][0]["model"] == "cspdarknet_tiny"
    demo.clean(out)
    assert os.listdir(out) == []
