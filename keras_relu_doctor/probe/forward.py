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
from keras_relu_doctor.probe.layout import MODE_TRAINING, ProbeSettings, new_layout
from keras_relu_doctor.probe.recording import INPUT, Trace, Watch, recording


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
            trace.register(x, INPUT)  # where no graph can be walked back (JAX), the inputs are known as such
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


class ProbeBase:
    """What every backend's probe holds: the model, its layers, the loss, the settings and the layout.

    Subclasses implement ``build`` and ``__call__`` (:class:`keras_relu_doctor.probe.layout.Probe`).
    """

    def __init__(
        self,
        model: keras.Model,
        entries: list[LayerEntry],
        loss_fn: Callable[..., Any] | None,
        settings: ProbeSettings,
    ) -> None:
        self.model, self.entries, self.loss_fn, self.settings = model, entries, loss_fn, settings
        self.layout = new_layout(entries, settings, gradients=loss_fn is not None)
        self._measured = [entry for entry in entries if entry.measured]
        self._reached: list[LayerEntry] = []
        self._previous: dict[str, list[Any]] = {}  # weights at the last measurement (update ratios)

    def release(self) -> None:
        """Nothing to do: what the probe holds is freed with it (the TensorFlow probe does more)."""

    def gradient_batch(self, batch: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        """The samples the gradients are taken on: ``batch`` itself when it holds no more than asked."""
        limit = self.settings.gradient_samples
        return batch if limit is None or sample_count(batch[0]) <= limit else first_samples(batch, limit)

    def values(self, outputs: list[dict[str, Any]], gradients: list[dict[str, Any]] | None, loss: Any) -> dict[str, Any]:
        """The logged values from the reached layers' reductions (:mod:`.reductions`), as numpy."""
        from keras_relu_doctor.probe.reductions import layer_values
        from keras_relu_doctor.probe.statistics import probe_values

        layers = layer_values(self._reached, outputs, gradients)
        loss = float(keras.ops.convert_to_numpy(loss)) if self.loss_fn is not None else None
        paths = [entry.path for entry in self._measured]
        return probe_values(layers, paths, loss, self._previous, self.settings, self.layout)

    def snapshot(self, read: Callable[[Any], Any]) -> None:
        """Keep samples of each measured layer's weights (``read(variable)``) as the last measurement's."""
        from keras_relu_doctor.probe.reductions import numpy_sample, sampled
        from keras_relu_doctor.probe.statistics import weight_snapshot

        self._previous = weight_snapshot(
            {e.path: [numpy_sample(sampled(read(v))) for _, v in e.weights] for e in self._measured}
        )
