"""Root causes: which dead units only carry a death from upstream.

A unit of a channel-wise layer (an activation, BatchNorm, depthwise convolution,
pooling, dropout or padding layer keeps channel c in channel c) is dead because
of what feeds it when channel c upstream is dead or carries no signal (a
constant: a depthwise channel fed only zeros outputs its bias, which BatchNorm
in training mode turns into its beta). Such a death is *inherited*: the finding
belongs on the layer where the deaths start, and the layers that only carry
them are its consequences. A layer that mixes channels (Dense, Conv) inherits its
dead units only when its whole input carries no signal (every unit of every
input dead or constant): its output is then its bias, whatever it learnt. The
layer graph comes from the model facts (``inputs`` of every layer); without
them nothing is inherited.

>>> inherited_deaths({}, {}).inherited
{}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from keras_relu_doctor.events.series import UnitsSeries

# Layer classes that map channel c of their input to channel c of their output.
CHANNELWISE_CLASSES = (
    "ReLU", "LeakyReLU", "PReLU", "ELU", "Activation", "BatchNormalization", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout", "GaussianDropout", "GaussianNoise", "Identity",
    "Rescaling", "Lambda",
)  # fmt: skip
CHANNELWISE_PREFIXES = ("DepthwiseConv", "ZeroPadding", "Cropping", "UpSampling")
CHANNELWISE_SUFFIXES = ("Pooling1D", "Pooling2D", "Pooling3D")
# Element-wise merges: a channel is signal-free when it is so in every input.
ELEMENTWISE_MERGES = ("Add", "Average", "Maximum", "Minimum", "Subtract")


def is_channelwise(layer: Mapping[str, Any]) -> bool:
    """True for a layer whose channel c depends on input channel c only.

    >>> is_channelwise({"class": "DepthwiseConv2D"}), is_channelwise({"class": "Conv2D"})
    (True, False)
    """
    name = str(layer.get("class", ""))
    if name == "Activation" and layer.get("activation") == "softmax":
        return False  # softmax mixes the channels
    return name in CHANNELWISE_CLASSES or name.startswith(CHANNELWISE_PREFIXES) or name.endswith(CHANNELWISE_SUFFIXES)


@dataclass(frozen=True)
class Inheritance:
    """Dead units that only carry a death from upstream.

    ``inherited[layer]`` are that layer's inherited dead units; ``roots[layer]``
    maps each of them to the layer where its death starts; ``consequences[root]``
    counts, per downstream layer, the dead units it carries from ``root``.
    """

    inherited: dict[str, tuple[int, ...]] = field(default_factory=dict)
    roots: dict[str, dict[int, str]] = field(default_factory=dict)
    consequences: dict[str, dict[str, int]] = field(default_factory=dict)


def _signal_free(units: UnitsSeries) -> np.ndarray:
    """Per unit at the last step: dead (exactly 0) or constant (no range)."""
    dead = units.max_abs_output[-1] == 0
    if units.output_range is not None:
        dead = dead | (units.output_range[-1] == 0)
    return dead


def inherited_deaths(graph: Mapping[str, Mapping[str, Any]], units: Mapping[str, UnitsSeries]) -> Inheritance:
    """Which dead units of which layers are inherited, and from where.

    ``graph`` is the model facts' layers by path (class, activation, inputs);
    ``units`` the per-unit records by layer.
    """
    walk = _Walk(graph, units, {name: _signal_free(series) for name, series in units.items()})
    inherited: dict[str, tuple[int, ...]] = {}
    roots: dict[str, dict[int, str]] = {}
    consequences: dict[str, dict[str, int]] = {}
    mixing: list[str] = []
    for name, series in units.items():
        layer = graph.get(name)
        if layer is None:
            continue
        if not is_channelwise(layer):
            mixing.append(name)
            continue
        origin: dict[int, str] = {}
        for unit in np.flatnonzero(series.max_abs_output[-1] == 0).tolist():
            root = walk.root(name, unit, series.units, frozenset())
            if root is not None:
                origin[unit] = root
        _record(name, origin, inherited, roots, consequences)
    # A layer that mixes channels inherits its deaths only when its whole input carries no signal.
    for name in mixing:
        producer = walk.silent_input(name)
        if producer is not None:
            root = next(iter(roots.get(producer, {}).values()), producer)
            dead = np.flatnonzero(units[name].max_abs_output[-1] == 0).tolist()
            _record(name, {unit: root for unit in dead}, inherited, roots, consequences)
    return Inheritance(inherited, roots, consequences)


def _record(
    name: str,
    origin: dict[int, str],
    inherited: dict[str, tuple[int, ...]],
    roots: dict[str, dict[int, str]],
    consequences: dict[str, dict[str, int]],
) -> None:
    if origin:
        inherited[name] = tuple(sorted(origin))
        roots[name] = origin
        for root in origin.values():
            consequences.setdefault(root, {})
            consequences[root][name] = consequences[root].get(name, 0) + 1


@dataclass(frozen=True)
class _Walk:
    """Walks the layer graph upstream along one channel."""

    graph: Mapping[str, Mapping[str, Any]]
    units: Mapping[str, UnitsSeries]
    free: Mapping[str, np.ndarray]  # per layer and unit: dead or constant at the last step

    def root(self, name: str, unit: int, width: int, seen: frozenset[str]) -> str | None:
        """The furthest upstream layer where ``unit`` is dead, if every path to it carries no signal."""
        inputs = [producer for producer in self.graph.get(name, {}).get("inputs", ()) if producer in self.graph]
        if not inputs or name in seen:
            return None
        found: list[str] = []
        for producer in inputs:
            root = self._carried_from(producer, unit, width, seen | {name})
            if root is None:
                return None  # one input still carries a signal in this channel
            found.append(root)
        return found[0]

    def silent_input(self, name: str) -> str | None:
        """The first producer of ``name``, when every producer is measured and carries no signal in any unit."""
        inputs = [producer for producer in self.graph.get(name, {}).get("inputs", ()) if producer in self.graph]
        if not inputs or not all(producer in self.free and bool(self.free[producer].all()) for producer in inputs):
            return None
        return inputs[0]

    def _carried_from(self, producer: str, unit: int, width: int, seen: frozenset[str]) -> str | None:
        layer = self.graph[producer]
        series = self.units.get(producer)
        if series is not None:
            if series.units != width or not self.free[producer][unit]:
                return None
            dead = bool(series.max_abs_output[-1][unit] == 0)
            if not is_channelwise(layer):
                return producer if dead else None  # a layer that mixes channels: a death starts here
            deeper = self.root(producer, unit, width, seen)
            if deeper is not None:
                return deeper
            return producer if dead else None
        # Not measured: look through it when it keeps channels (dropout, padding, element-wise merges).
        if is_channelwise(layer) or layer.get("class") in ELEMENTWISE_MERGES:
            return self.root(producer, unit, width, seen)
        return None
