"""Gather, per layer, the series the rules read, from whatever the run holds.

Our callback's tags are read first; activation histograms and gradient
histograms from other tools (tensorboardX, PyTorch, Keras' ``histogram_freq``)
fill in where it did not write.

>>> from keras_relu_doctor.events.series import Run
>>> layer_series(Run(".", {}, {}, {}, (), ()))
()
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_relu_doctor import tags
from keras_relu_doctor.events.series import HistogramSeries, Run, ScalarSeries, UnitsSeries

# Names other tools give to a layer's output histogram: ``<layer>/<alias>``.
ACTIVATION_ALIASES = (tags.ACTIVATIONS, "activation", "outputs", "output")
# Keras' TensorBoard(histogram_freq=...) writes ``<weight path>/histogram``;
# old Keras ``write_grads=True`` wrote ``<layer>/<weight>_grad``.
WEIGHT_HISTOGRAM_SUFFIX = "/histogram"
LEGACY_GRADIENT_SUFFIX = "_grad"


@dataclass(frozen=True)
class LayerSeries:
    """Everything known about one layer, over steps; any part may be missing."""

    name: str
    activation: str = ""
    units: UnitsSeries | None = None
    activations: HistogramSeries | None = None
    preactivations: HistogramSeries | None = None
    kernel: HistogramSeries | None = None
    grad_norm: ScalarSeries | None = None
    grad_norm_estimated: bool = False
    nonfinite: ScalarSeries | None = None
    dead_fraction: ScalarSeries | None = None

    @property
    def has_data(self) -> bool:
        return any(
            part is not None for part in (self.units, self.activations, self.grad_norm, self.dead_fraction)
        )


def _sum_scalars(parts: list[ScalarSeries]) -> ScalarSeries | None:
    if not parts:
        return None
    steps = parts[0].steps
    for part in parts[1:]:
        steps = np.intersect1d(steps, part.steps)
    total = sum(part.values[np.searchsorted(part.steps, steps)] for part in parts)
    return ScalarSeries(steps=steps, values=np.asarray(total, dtype=np.float64))


def _gradient_norm_from_histograms(histograms: list[HistogramSeries]) -> ScalarSeries | None:
    squares = [ScalarSeries(h.steps, h.sum_squares) for h in histograms]
    summed = _sum_scalars(squares)
    return None if summed is None else ScalarSeries(summed.steps, np.sqrt(summed.values))


def _layer_of_other_tag(full_tag: str) -> tuple[str, str] | None:
    """``(layer, role)`` for histogram tags other tools write; None if not one."""
    head, _, last = full_tag.rpartition("/")
    if not head:
        return None
    if last in ACTIVATION_ALIASES:
        return head, "activations"
    if full_tag.endswith(WEIGHT_HISTOGRAM_SUFFIX):
        layer, _, weight = head.rpartition("/")
        return (layer, "kernel") if layer and weight == "kernel" else None
    if last.endswith(LEGACY_GRADIENT_SUFFIX):
        return head, "gradient"
    return None


def layer_series(run: Run) -> tuple[LayerSeries, ...]:
    """The layers of ``run`` in model order (input first), each with its series."""
    parts: dict[str, dict] = {name: {} for name in run.layers}
    gradients: dict[str, list[HistogramSeries]] = {}
    for full_tag, histogram in run.histograms.items():
        parsed = tags.parse_tag(full_tag)
        if parsed and parsed[1] in (tags.ACTIVATIONS, tags.PREACTIVATIONS):
            parts.setdefault(parsed[0], {})[parsed[1]] = histogram
        elif parsed and parsed[1].startswith(tags.GRADIENTS + "/") and parsed[1] != tags.OUTPUT_GRADIENT:
            gradients.setdefault(parsed[0], []).append(histogram)
        elif not parsed and (other := _layer_of_other_tag(full_tag)):
            layer, role = other
            if role == "gradient":
                gradients.setdefault(layer, []).append(histogram)
            else:
                parts.setdefault(layer, {}).setdefault(role, histogram)
    layers = []
    for name, found in parts.items():
        units = run.units.get(name)
        grad_norm = run.scalars.get(tags.tag(name, tags.GRAD_NORM))
        estimated = grad_norm is None and name in gradients
        if estimated:
            grad_norm = _gradient_norm_from_histograms(gradients[name])
        nonfinite = _sum_scalars(
            [
                run.scalars[tags.tag(name, quantity)]
                for quantity in (tags.NONFINITE_GRADIENTS, tags.NONFINITE_ACTIVATIONS)
                if tags.tag(name, quantity) in run.scalars
            ]
        )
        series = LayerSeries(
            name=name,
            activation=units.metadata.activation if units else "",
            units=units,
            activations=found.get(tags.ACTIVATIONS),
            preactivations=found.get(tags.PREACTIVATIONS),
            kernel=found.get("kernel"),
            grad_norm=grad_norm,
            grad_norm_estimated=estimated,
            nonfinite=nonfinite,
            dead_fraction=run.scalars.get(tags.tag(name, tags.DEAD_FRACTION)),
        )
        if series.has_data:
            layers.append(series)
    return tuple(layers)
