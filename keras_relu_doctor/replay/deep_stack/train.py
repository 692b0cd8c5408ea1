"""Train one deep-stack run (the only part of this experiment that runs Keras).

Example (needs a Keras backend):

```python
result = train_stack_run(StackSpec("sigmoid", 8), "logs/deep-stack")
result.accuracy  # 0.1: learnt nothing
```
"""

from __future__ import annotations

import os
import time

from keras_relu_doctor.replay.deep_stack.data import make_images
from keras_relu_doctor.replay.deep_stack.grid import StackSpec
from keras_relu_doctor.replay.deep_stack.results import StackResult
from keras_relu_doctor.replay.train import fit_and_save, save_result, start_run


def train_stack_run(spec: StackSpec, logdir: str | os.PathLike[str]) -> StackResult:
    """Train ``spec`` into ``<logdir>/<spec.name>/`` with ReluDoctor and Keras' TensorBoard callback."""
    from keras_relu_doctor.replay.deep_stack.model import build_stack_model

    started = time.perf_counter()
    run_dir = start_run(spec, logdir)
    data = make_images(spec.samples, data_seed=spec.data_seed)
    model = build_stack_model(spec)
    history = fit_and_save(model, spec, run_dir, data, data.probe(spec.probe_samples))
    result = StackResult(
        spec=spec,
        train_loss=tuple(float(value) for value in history.history["loss"]),
        val_loss=tuple(float(value) for value in history.history["val_loss"]),
        val_accuracy=tuple(float(value) for value in history.history["val_accuracy"]),
        chance_accuracy=data.chance_accuracy,
        seconds=round(time.perf_counter() - started, 2),
    )
    save_result(result, run_dir)
    return result
