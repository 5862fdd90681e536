"""The three notebooks run top to bottom (quick settings, KERAS_CSP_NOTEBOOK_QUICK=1) with nbclient,
in a temporary folder: the repository's notebooks are read, never written. A check cell appended
to each copy drives its widgets from code and compares what they show with the package's numbers.
"""

import re

import pytest

pytest.importorskip("nbclient", reason="the notebook tests need `pip install -e .[notebooks]`")
pytest.importorskip("ipywidgets", reason="the notebook tests need `pip install -e .[notebooks]`")

import notebook_helpers as nbh  # noqa: E402


@pytest.mark.parametrize("name", nbh.NAMES)
def test_notebooks_are_committed_clean_with_a_parameters_cell(name):
    nb = nbh.load(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # Committed without outputs (and so without saved widget state or execution counts).
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, cell.source[:80]
    assert "widgets" not in nb.metadata
    # The first code cell holds the parameters, tagged for papermill, with the CI switch.
    assert nb.cells.index(code[0]) == nbh.parameters_index(nb)
    assert "KERAS_CSP_NOTEBOOK_QUICK" in code[0].source and "QUICK" in code[0].source
    # No model code in the notebooks: layers and models are built by keras_csp.
    source = "\n".join(c.source for c in code)
    assert not re.search(r"keras\.(layers|Sequential|Model)\b|Conv2D|\bimport keras\b", source)
    assert nb.metadata["kernelspec"]["name"] == "python3"


CHECK_01 = r'''
import keras_csp

size = explore.default_input_size(family.value)
before = table.value
gamma.value = 0.55   # what the browser test does with the slider's handle
expected = keras_csp.profile("csppeleenet", (size, size, 3), part_ratio=0.55, fusion="full")
assert f'<td class="csp-params">{expected.params:,}</td>' in table.value, table.value
assert table.value != before
fusion.value = "last"
expected = keras_csp.profile("csppeleenet", (size, size, 3), part_ratio=0.55, fusion="last")
assert f'<td class="csp-params">{expected.params:,}</td>' in table.value, table.value
assert f"{expected.flops / 1e9:.3f}" in table.value
# A γ that leaves a partial dense block without enough channels: a message, no traceback.
gamma.value = 0.95
assert "csp-message" in table.value and "part_ratio=0.95" in table.value, table.value
assert "Error" not in status.value, status.value
# The widgets keep values in range.
gamma.value = 1.7
assert gamma.value == explore.GAMMA_MAX
gamma.value = -3.0
assert gamma.value == explore.GAMMA_MIN
# Latency is measured on demand, then shown.
gamma.value = 0.5
assert "not measured" in table.value
measure_point.click()
assert "not measured" not in table.value and "Error" not in status.value, status.value
lat = cache.cached_latency(family.value, 0.5, "last")
assert lat.median_ms > 0 and f"{lat.median_ms:.1f}" in table.value
print("CHECK 01 PASSED")
'''


def test_01_split_ratio_explorer_runs_and_its_widgets_drive_the_table(tmp_path):
    nb = nbh.inject_parameters(nbh.load(nbh.NAMES[0]), FAMILY="PeleeNet", GAMMA=0.5, FUSION="full")
    nbh.append_cell(nb, CHECK_01, "test-check")
    nbh.execute(nb, tmp_path / "work", tmp_path / "home")
    assert "CHECK 01 PASSED" in nbh.text_outputs(nb)


CHECK_02 = r'''
import os

assert list(RUNS) == ["full", "first", "last", "none"], list(RUNS)
flops = {f: r.profile.flops for f, r in RUNS.items()}
params = {f: r.profile.params for f, r in RUNS.items()}
# The plain twin costs the most; the partial transitions of "first"/"last" save on "full".
assert flops["none"] > flops["full"] > max(flops["first"], flops["last"]), flops
assert params["none"] > params["full"], params
for run in RUNS.values():
    assert len(run.history) == EPOCHS and 0.0 <= run.history[-1]["val_accuracy"] <= 1.0
assert os.path.isfile(os.path.join(SAVE_DIR, "notebook02_model.keras"))
assert "trained 4 variants" in status.value, status.value
print("CHECK 02 PASSED")
'''


def test_02_fusion_strategies_trains_the_four_variants(tmp_path):
    save_dir = tmp_path / "saved_models"
    nb = nbh.inject_parameters(nbh.load(nbh.NAMES[1]), SAVE_DIR=str(save_dir))
    nbh.append_cell(nb, CHECK_02, "test-check")
    nbh.execute(nb, tmp_path / "work", tmp_path / "home")
    assert "CHECK 02 PASSED" in nbh.text_outputs(nb)


CHECK_03 = r'''
import os

assert loaded.trained_now and loaded.path is None
assert [r.format for r in rows] == ["fp32", "fp16", "int8"]
sizes = {r.format: r.size_bytes for r in rows}
assert sizes["int8"] < sizes["fp16"] < sizes["fp32"], sizes
for r in rows:
    assert os.path.isfile(r.path) and r.latency_ms > 0 and 0.0 <= r.top1 <= 1.0
    assert isinstance(r.gpu_compatible, bool)
# Each file ran whole on LiteRT's GPU accelerator (SwiftShader here) and agreed with the CPU.
for r in rows + det_rows:
    assert r.gpu_accelerator["whole"] and r.gpu_accelerator["agrees"], r.gpu_accelerator
    assert "whole graph" in explore.accelerator_cell(r.gpu_accelerator)
assert det_rows[0].format == "fp32" and det_rows[0].latency_ms > 0
assert len(found) == len(det_images)
for boxes in found:
    for x1, y1, x2, y2, score, cls in boxes:
        assert 0 <= x1 <= x2 <= det.image_size and 0 <= y1 <= y2 <= det.image_size
        assert 0.3 < score <= 1.0 and 0 <= cls < len(det.class_names)
print("CHECK 03 PASSED")
'''


def test_03_export_falls_back_to_a_quick_model_and_runs_through_lite(tmp_path):
    empty = tmp_path / "no_models"
    empty.mkdir()
    nb = nbh.inject_parameters(
        nbh.load(nbh.NAMES[2]), MODEL_DIR=str(empty), EXPORT_DIR=str(tmp_path / "export")
    )
    nbh.append_cell(nb, CHECK_03, "test-check")
    nbh.execute(nb, tmp_path / "work", tmp_path / "home")
    text = nbh.text_outputs(nb)
    assert "CHECK 03 PASSED" in text
    # The fallback says what happened, in the notebook's output.
    assert f"No trained model: {empty} has none of notebook02_model.keras" in text
    assert "Trained a quick cspdarknet_tiny now instead" in text
    assert "Trained a small CSPDetector" in text
    # The predictions of the int8 classifier and the detector's boxes are drawn.
    assert nbh.png_outputs(nb) == 2
    assert "Assets written to" not in text  # TensorFlow's export chatter is kept out
