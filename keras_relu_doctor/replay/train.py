"""Train one run of the grid: the only part of the replay that runs Keras.

``train_run`` is what each worker process calls: it seeds everything with the
run's seed, trains with ``ReluDoctor`` and Keras' ``TensorBoard`` callback into
``<logdir>/<run>/``, saves ``model.keras``, ``run.json`` (the spec) and
``result.json`` (what was measured), and returns a :class:`RunResult`.

Example (needs a Keras backend):

```python
result = train_run(RunSpec(activation="relu", initializer="random_uniform", depth=1, seed=0), "logs")
result.dead_last  # {'dense_1': 1.0}
```
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from keras_relu_doctor.replay.data import make_data
from keras_relu_doctor.replay.grid import RunSpec
from keras_relu_doctor.replay.results import SCHEMA_VERSION, RunResult

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
MODEL_FILE = "model.keras"


def start_run(spec: Any, logdir: str | os.PathLike[str]) -> Path:
    """Make the run's folder with its ``run.json`` (the spec and the Keras backend), and a fresh Keras session seeded with the run's seed."""
    import keras

    run_dir = Path(logdir) / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    recorded = {"schema": SCHEMA_VERSION, "backend": keras.config.backend(), **asdict(spec)}
    (run_dir / RUN_FILE).write_text(json.dumps(recorded, indent=2) + "\n")
    keras.backend.clear_session()
    keras.utils.set_random_seed(spec.seed)
    return run_dir


def fit_and_save(
    model: Any, spec: Any, run_dir: Path, data: Any, probe: tuple[Any, Any], extra: tuple[Any, ...] = (), **doctor: Any
) -> Any:
    """``fit`` on ``data``'s split with Keras' TensorBoard callback (loss curves) and ReluDoctor
    (outputs, gradients, dead units) logging into ``run_dir``; save the model; return the history."""
    import keras

    from keras_relu_doctor import ReluDoctor

    history = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(str(run_dir)),
            ReluDoctor(str(run_dir), probe_data=probe, on_dead="ignore", **doctor),
            *extra,
        ],
    )
    model.save(run_dir / MODEL_FILE)
    return history


def train_run(spec: RunSpec, logdir: str | os.PathLike[str]) -> RunResult:
    """Train ``spec`` into ``<logdir>/<spec.name>/`` and return what it measured."""
    import keras

    from keras_relu_doctor.replay.model import TOLERANCE, build_model, dead_fractions, hidden_outputs

    started = time.perf_counter()
    run_dir = start_run(spec, logdir)
    data = make_data(spec.samples, target=spec.target, data_seed=spec.data_seed)
    x_probe, y_probe = data.probe(spec.probe_samples)
    model = build_model(spec)

    probe_model = hidden_outputs(model, spec.head)
    per_epoch: list[dict[str, float]] = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs=None: per_epoch.append(
            dead_fractions(model, x_probe, probe_model=probe_model)
        )
    )
    history = fit_and_save(model, spec, run_dir, data, (x_probe, y_probe), (recorder,), tolerance=TOLERANCE)
    result = RunResult(
        spec=spec,
        dead_first=per_epoch[0],
        dead_last=per_epoch[-1],
        train_loss=tuple(float(value) for value in history.history["loss"]),
        val_loss=tuple(float(value) for value in history.history["val_loss"]),
        baseline_val_loss=data.baseline_val_loss,
        seconds=round(time.perf_counter() - started, 2),
    )
    save_result(result, run_dir)
    return result


def save_result(result: Any, run_dir: str | os.PathLike[str]) -> None:
    """Write ``result.json`` whole or not at all (a temporary file renamed over it)."""
    path = Path(run_dir) / RESULT_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    os.replace(partial, path)


def load_result(run_dir: str | os.PathLike[str], result_type: type = RunResult) -> Any:
    """The result a finished run left in its folder (a ``result_type``); None if it did not finish."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return result_type.from_dict(json.loads(path.read_text()))
