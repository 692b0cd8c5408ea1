"""Train one loss-spikes run (the only part of this experiment that runs Keras).

Example (needs a Keras backend):

```python
result = train_spike_run(SpikeSpec(pool="max"), "logs/spikes")
```
"""

from __future__ import annotations

import os
import time

from keras_relu_doctor.replay.deep_stack.data import make_images
from keras_relu_doctor.replay.spikes.grid import SpikeSpec
from keras_relu_doctor.replay.spikes.results import SpikeResult
from keras_relu_doctor.replay.train import fit_and_save, save_result, start_run


def train_spike_run(spec: SpikeSpec, logdir: str | os.PathLike[str]) -> SpikeResult:
    """Train ``spec`` into ``<logdir>/<spec.name>/``, ReluDoctor logging every ``spec.log_every`` batches."""
    from keras_relu_doctor.replay.spikes.model import build_spike_model

    started = time.perf_counter()
    run_dir = start_run(spec, logdir)
    data = make_images(spec.samples, data_seed=spec.data_seed)
    model = build_spike_model(spec)
    history = fit_and_save(model, spec, run_dir, data, data.probe(spec.probe_samples), update_freq=spec.log_every)
    result = SpikeResult(
        spec=spec,
        train_loss=tuple(float(value) for value in history.history["loss"]),
        val_accuracy=tuple(float(value) for value in history.history["val_accuracy"]),
        seconds=round(time.perf_counter() - started, 2),
    )
    save_result(result, run_dir)
    return result
