"""Forward passes every backend runs the same way: the probe's size, and a recorded, stateless pass.

:func:`recorded_pass` runs the model once inside a ``keras.StatelessScope``
(whatever a layer would assign, BatchNormalization's moving statistics or a
seed generator's state, is discarded) with every layer recorded
(:mod:`.recording`), and computes the loss; the JAX and PyTorch probes build
on it. :func:`probe_size_for` picks the probe's size from the cost of the model.

Example::

    size = probe_size_for(model, walk_layers(model), x, budget=2**25, smallest=64, largest=512)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import keras
import numpy as np

from keras_relu_doctor.probe.layers import LayerEntry
from keras_relu_doctor.probe.layout import MODE_TRAINING
from keras_relu_doctor.probe.recording import Trace, Watch, recording


@dataclass
class Pass:
    """What one recorded forward pass produced."""

    trace: Trace
    y_pred: Any
    loss: Any


def recorded_pass(
    model: keras.Model,
    entries: list[LayerEntry],
    loss_fn: Callable[..., Any] | None,
    batch: tuple[Any, Any, Any],
    *,
    mode: str,
    watch: Watch | None = None,
    state_mapping: Sequence[tuple[Any, Any]] | None = None,
) -> Pass:
    """``model(x)`` with every layer recorded and no state changed, and the loss (None without ``loss_fn``).

    ``state_mapping`` pairs variables with the values to use instead (JAX's
    stateless call); in ``mode`` training, normalisation layers use batch statistics.
    """
    x, y, sample_weight = batch
    with keras.StatelessScope(state_mapping=state_mapping):
        with recording(entries, watch, batch_statistics=mode == MODE_TRAINING) as trace:
            y_pred = model(x, training=False)
        loss = loss_fn(y, y_pred, sample_weight) if loss_fn is not None else None
    return Pass(trace, y_pred, loss)


def first_samples(batch: tuple[Any, Any, Any], limit: int | None) -> tuple[Any, Any, Any]:
    """The first ``limit`` samples of ``(x, y, sample_weight)`` (all when ``limit`` is None)."""
    if limit is None:
        return batch
    return tuple(None if part is None else keras.tree.map_structure(lambda t: t[:limit], part) for part in batch)


def sample_count(x: Any) -> int:
    return int(keras.tree.flatten(x)[0].shape[0])


def probe_size_for(model: keras.Model, entries: list[LayerEntry], x: Any, *, budget: int, smallest: int, largest: int) -> int:
    """How many probe samples keep one log near ``budget`` output values, within [smallest, largest].

    Counts the measured layers' output values for one sample by running it
    through the model (eagerly, nothing kept); rounds down to a multiple of 8.
    """
    one = keras.tree.map_structure(lambda tensor: tensor[:1], x)
    trace = recorded_pass(model, entries, None, (one, None, None), mode="inference").trace
    per_sample = sum(
        int(np.prod(record.output.shape[1:])) for record in trace.records.values() if record.output is not None
    )
    fits = budget // max(per_sample, 1)
    return int(min(largest, max(smallest, fits // 8 * 8)))
