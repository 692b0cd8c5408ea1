"""Shrink a layer's tensors to what the statistics need, in ``keras.ops`` (JAX and PyTorch probes).

A layer's output becomes each sample's largest and smallest value per unit
(``[samples, units]``, the only two passes over it); any tensor becomes a
sample of at most ``HISTOGRAM_SAMPLE`` values (:func:`.layout.sample_positions`), its length,
and (for norms) half its sum of squares. They run inside the backend's
compiled function (``jax.jit``) or eagerly (PyTorch); :mod:`.statistics`
takes it from there in numpy. The sample positions are those of the
TensorFlow probe, so every backend buckets the same values.

>>> import numpy as np
>>> high, low = extremes(np.array([[1.0, -2.0], [0.0, 3.0]], "float32"), None)
>>> np.asarray(high).tolist(), np.asarray(low).tolist()
([[1.0, -2.0], [0.0, 3.0]], [[1.0, -2.0], [0.0, 3.0]])
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_relu_doctor.probe.layers import LayerEntry
from keras_relu_doctor.probe.layout import sample_positions
from keras_relu_doctor.probe.recording import Trace
from keras_relu_doctor.probe.statistics import LayerValues, Sampled

ops = keras.ops


def units_last(output: Any, layer: Any) -> Any:
    """``output`` as float32 ``[samples, positions, units]``; units are the channel axis."""
    output = ops.cast(output, "float32")
    rank = len(output.shape)
    if rank == 1:
        return ops.reshape(output, (-1, 1, 1))
    if rank > 2 and getattr(layer, "data_format", "channels_last") == "channels_first":
        output = ops.transpose(output, (0, *range(2, rank), 1))
    return ops.reshape(output, (output.shape[0], -1, output.shape[-1]))


def extremes(output: Any, layer: Any) -> tuple[Any, Any]:
    """Each sample's largest and smallest output per unit, ``[samples, units]`` each (NaN propagates)."""
    by_unit = units_last(output, layer)
    return ops.max(by_unit, axis=1), ops.min(by_unit, axis=1)


def sampled(tensor: Any, *, squares: bool = False) -> dict[str, Any]:
    """``tensor``'s histogram sample (``values``), its ``length`` and, with ``squares``, ``half_squares``.

    ``half_squares`` is half the sum of squares of the whole tensor in float32,
    as ``tf.nn.l2_loss`` computes it for the TensorFlow probe.
    """
    flat = ops.reshape(tensor, (-1,))
    length = int(flat.shape[0])
    positions = sample_positions(length)
    reduced = {"values": flat if positions is None else ops.take(flat, positions, axis=0), "length": length}
    if squares:
        as_float = flat if flat.dtype == "float64" else ops.cast(flat, "float32")
        reduced["half_squares"] = 0.5 * ops.sum(ops.square(as_float))
    return reduced


def output_reductions(trace: Trace, reached: list[LayerEntry]) -> list[dict[str, Any]]:
    """Per reached layer: its output's ``highest``/``lowest`` per sample and unit, and histogram samples."""
    reduced = []
    for entry in reached:
        record = trace.records[entry.path]
        highest, lowest = extremes(record.output, entry.layer)
        own_preactivation = record.preactivation is not None and not record.preactivation_is_measured
        reduced.append(
            {
                "highest": highest,
                "lowest": lowest,
                "activations": sampled(record.output),
                "preactivations": sampled(record.preactivation) if own_preactivation else None,
            }
        )
    return reduced


def gradient_reductions(weight_gradients: list[list[Any]], output_gradients: list[Any]) -> list[dict[str, Any]]:
    """Per reached layer: its weights' and output's gradient samples, with half sums of squares."""
    return [
        {
            "weights": [sampled(gradient, squares=True) for gradient in weights],
            "output": sampled(output, squares=True),
        }
        for weights, output in zip(weight_gradients, output_gradients)
    ]


def layer_values(
    reached: list[LayerEntry],
    outputs: list[dict[str, Any]],
    gradients: list[dict[str, Any]] | None,
) -> list[LayerValues]:
    """The reductions (arrays of any backend) as numpy :class:`LayerValues`, with samples of each layer's current weights."""
    values = []
    for index, (entry, output) in enumerate(zip(reached, outputs)):
        gradient = gradients[index] if gradients is not None else None
        values.append(
            LayerValues(
                path=entry.path,
                highest=ops.convert_to_numpy(output["highest"]),
                lowest=ops.convert_to_numpy(output["lowest"]),
                activations=numpy_sample(output["activations"]),
                preactivations=None if output["preactivations"] is None else numpy_sample(output["preactivations"]),
                weight_names=[name for name, _ in entry.weights],
                weights=[numpy_sample(sampled(variable.value, squares=True)) for _, variable in entry.weights],
                weight_gradients=None if gradient is None else [numpy_sample(g) for g in gradient["weights"]],
                output_gradient=None if gradient is None else numpy_sample(gradient["output"]),
            )
        )
    return values


def numpy_sample(reduced: dict[str, Any]) -> Sampled:
    return Sampled(
        ops.convert_to_numpy(reduced["values"]),
        int(reduced["length"]),
        float(ops.convert_to_numpy(reduced.get("half_squares", 0.0))),
    )
