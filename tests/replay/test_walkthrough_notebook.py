"""The walkthrough notebook runs top to bottom (at a small size) and shows what it promises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "dying_relu_walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_notebook_executes_at_a_small_size(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("RELU_DOCTOR_NB_SAMPLES", "600")
    monkeypatch.setenv("RELU_DOCTOR_NB_EPOCHS", "1")
    monkeypatch.setenv("RELU_DOCTOR_NB_LOGDIR", str(tmp_path / "logs"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # "python3" must resolve to this interpreter's ipykernel (the project's venv), not another Python.
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel:', sys.executable)"))
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    text = "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "") for output in outputs)
    html = "".join(output.get("data", {}).get("text/html", "") for output in outputs)
    assert "relu-doctor report of" in text
    assert "relu/train" in text and "selu/train" in text
    assert "<svg" in html
    assert f"tensorboard --logdir {tmp_path / 'logs'}" in text
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == ["negative_3_layers", "relu", "selu"]
    assert "negative_3_layers/train: dying_relu" in text
    assert "measured on the model: {'dense_1': 0.0, 'dense_2': 1.0, 'dense_3': 1.0}" in text
    assert f"kernel: {sys.executable}" in text
