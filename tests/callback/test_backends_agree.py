"""Every backend writes the same events: one model, the same weights and data, trained on each backend.

Each backend runs in its own process (KERAS_BACKEND is fixed at import); the
event files are then compared tag by tag, and the report's verdicts too, so
TensorBoard and ``relu-doctor report`` cannot tell which backend wrote them.
A backend whose framework is not installed is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_relu_doctor import tags

# It starts every backend itself: once per suite, in the TensorFlow run (`make test` runs tests/callback
# again under KERAS_BACKEND=jax and torch).
pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason="runs every backend in its own process"
)
BACKENDS = ("tensorflow", "jax", "torch")
# A dying layer (bias -3 on inputs in (0, 1)), a healthy one, BatchNorm before a ReLU, and a Conv1D,
# with fixed weights, plain SGD (no random stream) and no shuffling: every backend trains the same.
SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, os, sys, traceback

    class ImportsByUs(importlib.abc.MetaPathFinder):
        # Notes each framework import that code of keras_relu_doctor starts (Keras and TensorFlow start some).
        seen = set()

        def find_spec(self, name, path, target=None):
            if name in ("tensorflow", "jax", "torch") and any(
                os.sep + "keras_relu_doctor" + os.sep in frame.filename for frame in traceback.extract_stack()
            ):
                self.seen.add(name)
            return None

    sys.meta_path.insert(0, ImportsByUs())
    import numpy as np
    import keras
    from keras_relu_doctor import ReluDoctor

    log_dir = sys.argv[1]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (96, 6, 2)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None]
    model = keras.Sequential([
        keras.Input((6, 2)),
        keras.layers.Conv1D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(8, activation="relu", name="dying"),
        keras.layers.Dense(8, use_bias=False, name="dense"),  # a bias before BatchNorm has no gradient but noise
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(name="relu"),
        keras.layers.Dense(1, name="head"),
    ])
    weights = np.random.default_rng(1)
    for variable in model.weights:
        variable.assign(weights.normal(0.0, 0.5, variable.shape).astype("float32"))
    model.get_layer("dying").bias.assign(np.full(8, -30.0, "float32"))
    model.compile(keras.optimizers.SGD(1e-2), "mse")
    callback = ReluDoctor(log_dir, probe_data=(x, y), update_freq=2, on_dead="ignore")
    model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0, callbacks=[callback])
    print(json.dumps({"imported_by_us": sorted(ImportsByUs.seen)}))
    """
)


def _installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[str, dict]]:
    found = {}
    for backend in BACKENDS:
        if not _installed(backend):
            continue
        log_dir = str(tmp_path_factory.mktemp(backend))
        env = {**os.environ, "KERAS_BACKEND": backend}
        done = subprocess.run([sys.executable, "-c", SCRIPT, log_dir], env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        found[backend] = (log_dir, json.loads(done.stdout.strip().splitlines()[-1]))
    if len(found) < 2:
        pytest.skip(f"needs two backends installed, found {sorted(found)}")
    return found


def _assert_close(ours: np.ndarray, theirs: np.ndarray, *, histogram: bool, what: tuple) -> None:
    """Equal up to float32 sums taken in another order; a histogram's values may cross a bucket edge."""
    if not histogram:
        np.testing.assert_allclose(theirs, ours, rtol=1e-3, atol=1e-5, err_msg=str(what))
        return
    scale = max(float(np.abs(ours[:, :2]).max(initial=0.0)), 1e-6)
    np.testing.assert_allclose(theirs[:, :2], ours[:, :2], rtol=1e-3, atol=1e-3 * scale, err_msg=str(what))
    assert theirs[:, 2].sum() == pytest.approx(ours[:, 2].sum()), what
    assert np.abs(theirs[:, 2] - ours[:, 2]).sum() <= max(2.0, 0.02 * ours[:, 2].sum()), what


@pytest.mark.slow
def test_every_backend_writes_the_same_tags_steps_and_values(runs, read_events):
    events = {backend: read_events(log_dir) for backend, (log_dir, _) in runs.items()}
    reference_backend, reference = next(iter(events.items()))
    for backend, other in events.items():
        assert sorted(other.values) == sorted(reference.values), backend
        for tag, values in reference.values.items():
            assert other.steps(tag) == [step for step, _ in values], (backend, tag)
            assert other.plugin(tag) == reference.plugin(tag), (backend, tag)
            if tag == tags.MODEL_FACTS:
                continue
            for (_, ours), (_, theirs) in zip(values, other.values[tag]):
                _assert_close(ours, theirs, histogram=other.plugin(tag) == tags.HISTOGRAMS_PLUGIN, what=(backend, tag))
    facts = {backend: json.loads(str(e.last(tags.MODEL_FACTS).item(), "utf-8")) for backend, e in events.items()}
    for backend, document in facts.items():
        assert document["model"]["backend"] == backend
        for key in ("layers", "merges", "outputs", "optimizer", "loss", "probe"):
            assert document[key] == facts[reference_backend][key], (backend, key)


@pytest.mark.slow
def test_every_backend_gets_the_same_report(runs):
    from keras_relu_doctor.report import build_report

    verdicts = {}
    for backend, (log_dir, _) in runs.items():
        run = build_report(log_dir).run("train")
        verdicts[backend] = (sorted(run.problems), run.gradient_status, [f.kind for f in run.findings])
    assert "dying_relu" in next(iter(verdicts.values()))[0]
    assert len(set(map(repr, verdicts.values()))) == 1, verdicts


@pytest.mark.slow
def test_the_callback_imports_only_the_active_backends_framework(runs):
    for backend, (_, output) in runs.items():
        assert set(output["imported_by_us"]) <= {backend}, (backend, output)
