"""Gather, per layer, the series the rules read, from whatever the run holds.

Our callback's tags are read first; activation, gradient and weight
histograms from other tools (tensorboardX, PyTorch, Keras' ``histogram_freq``,
TF1's ``write_grads``; :mod:`.other_writers`) fill in where it did not write.

>>> from keras_relu_doctor.events.series import Run
>>> layer_series(Run(".", {}, {}, {}, (), ()))
()
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from keras_relu_doctor import tags
from keras_relu_doctor.diagnose import other_writers
from keras_relu_doctor.diagnose.fixes import SLOPED_ACTIVATIONS
from keras_relu_doctor.diagnose.other_writers import tag_role
from keras_relu_doctor.events.series import HistogramSeries, Run, ScalarSeries, UnitsSeries

# Kinds of layer, by what their units can do; the rules apply by kind.
RECTIFIER = "rectifier"  # relu, relu6: exactly 0 below the threshold, so units can die
SLOPED = "sloped"  # LeakyReLU, PReLU, ELU, SELU, GELU...: a slope below 0, units can only be near-dead
BOUNDED = "bounded"  # tanh, sigmoid: units can saturate at the bounds
SOFTMAX = "softmax"
LINEAR = "linear"  # everything else said by the writer: linear layers, normalisation, pooling, merges
UNKNOWN = "unknown"  # another writer's logs, with nothing that tells
LAYER_KINDS = (RECTIFIER, SLOPED, BOUNDED, SOFTMAX, LINEAR, UNKNOWN)
BOUNDED_ACTIVATIONS = ("tanh", "softsign", "hard_tanh", "sigmoid", "hard_sigmoid")


@dataclass(frozen=True)
class LayerSeries:
    """Everything known about one layer, over steps; any part may be missing."""

    name: str
    activation: str = ""
    kind: str = UNKNOWN
    layer_class: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)
    units: UnitsSeries | None = None
    activations: HistogramSeries | None = None
    preactivations: HistogramSeries | None = None
    kernel: HistogramSeries | None = None
    grad_norm: ScalarSeries | None = None
    grad_norm_estimated: bool = False
    # L2 norm of d loss / d layer output (ReluDoctor logs it for every measured layer).
    output_grad_norm: ScalarSeries | None = None
    # Its output's gradient was logged but it has no weight to have one (activation, pooling...).
    weightless: bool = False
    nonfinite: ScalarSeries | None = None
    dead_fraction: ScalarSeries | None = None
    update_ratio: ScalarSeries | None = None

    @property
    def can_die(self) -> bool:
        """Units of this layer can be dead (rectifiers) or near-dead (a slope below 0).

        A layer nothing is known about (its record's metadata was lost) may be a
        rectifier: a unit exactly 0 on every sample is a rectifier's signature.
        """
        return self.kind in (RECTIFIER, SLOPED, UNKNOWN)

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


def layer_kind(activation: str, layer_class: str, name: str = "", activations: HistogramSeries | None = None) -> str:
    """What the layer's units can do, from its activation, its class, or else its name and output.

    Without a word from the writer (another tool's logs), a name word such as
    ``relu`` decides; then an output never negative with exact zeros is a
    rectifier's.

    >>> layer_kind("relu6", "ReLU"), layer_kind("", "BatchNormalization"), layer_kind("", "", "activations/relu_1")
    ('rectifier', 'linear', 'rectifier')
    """
    for word in (activation, *([] if activation or layer_class else re.split(r"[^a-z0-9]+", name.lower()))):
        word = re.sub(r"_?\d+$", "", word)  # relu_1 -> relu
        if word in tags.RECTIFIERS:
            return RECTIFIER
        if word in SLOPED_ACTIVATIONS:
            return SLOPED
        if word in BOUNDED_ACTIVATIONS:
            return BOUNDED
        if word == "softmax":
            return SOFTMAX
    if activation or layer_class:
        return LINEAR
    if activations is not None and len(activations.min):
        minimum = np.nan_to_num(activations.min, nan=-1.0)
        if bool((minimum >= 0).all()) and bool((np.nan_to_num(activations.zero_fraction) > 0).any()):
            return RECTIFIER
    return UNKNOWN


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
        elif not parsed and (other := tag_role(full_tag)):
            layer, role, parameter = other
            if role == other_writers.GRADIENTS:
                gradients.setdefault(layer, []).append(histogram)
            elif role == other_writers.ACTIVATIONS:
                parts.setdefault(layer, {}).setdefault(tags.ACTIVATIONS, histogram)
            elif parameter in ("kernel", "weight", ""):
                parts.setdefault(layer, {}).setdefault("kernel", histogram)
    for name in gradients:
        parts.setdefault(name, {})  # a layer known only by its gradients
    layers = []
    facts = tags.facts_layers(run.model_facts)
    for name, found in parts.items():
        units = run.units.get(name)
        layer_facts = facts.get(name, {})
        activation = units.metadata.activation if units else str(layer_facts.get("activation", ""))
        layer_class = units.metadata.layer_class if units else str(layer_facts.get("class", ""))
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
            activation=activation,
            kind=layer_kind(activation, layer_class, name, found.get(tags.ACTIVATIONS)),
            layer_class=layer_class,
            facts=layer_facts,
            units=units,
            activations=found.get(tags.ACTIVATIONS),
            preactivations=found.get(tags.PREACTIVATIONS),
            kernel=found.get("kernel"),
            grad_norm=grad_norm,
            grad_norm_estimated=estimated,
            output_grad_norm=run.scalars.get(tags.tag(name, tags.OUTPUT_GRAD_NORM)),
            weightless=grad_norm is None and tags.tag(name, tags.OUTPUT_GRAD_NORM) in run.scalars,
            nonfinite=nonfinite,
            dead_fraction=run.scalars.get(tags.tag(name, tags.DEAD_FRACTION)),
            update_ratio=run.scalars.get(tags.tag(name, tags.UPDATE_RATIO)),
        )
        if series.has_data:
            layers.append(series)
    return tuple(layers)
