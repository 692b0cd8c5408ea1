"""The README's Python snippets run as written, in order, on a tiny model (what they call ``model``, ``x``...)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def _given(keras) -> dict:
    """The names the snippets take as the reader's own: a compiled model and its data."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (256, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu", name="dense"), keras.layers.Dense(1, name="head")]
    )
    model.compile("adam", "mse")
    return {"model": model, "x": x[:192], "y": y[:192], "x_train": x[:192], "y_train": y[:192], "x_val": x[192:], "y_val": y[192:]}


def test_every_python_snippet_runs(keras_mod, tmp_path, monkeypatch):
    snippets = _snippets()
    assert len(snippets) >= 3, "the README lost its Python snippets (or this test's pattern no longer finds them)"
    monkeypatch.chdir(tmp_path)
    namespace = _given(keras_mod)
    outputs = []
    for number, code in enumerate(snippets, start=1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"README.md python block {number}", "exec"), namespace)  # noqa: S102
        outputs.append(printed.getvalue())
    assert (tmp_path / "logs" / "run1" / "train").is_dir()
    reading = next(output for output, code in zip(outputs, snippets) if "build_report" in code)
    assert "relu-doctor report of logs/" in reading  # the From Python snippet printed the report
    assert reading.split()[0] in ("healthy", "dying_relu")  # run.verdict, the first thing it prints
