"""The probe's values from per-layer reductions, in numpy: what the JAX and PyTorch probes write.

The same quantities, tags, order and edge rules as the TensorFlow probe's
in-graph statistics (:mod:`.tf_probe`): per-unit liveness from each sample's
extremes, histograms as ``tensorboard.plugins.histogram.summary_v2`` buckets
them (NaN/Inf left out, a large tensor bucketed on its sample with
counts scaled to its size, an activation's edges its exact range), norms,
update ratios and NaN/Inf counts. A test runs both on one model and compares.

>>> live = liveness(np.array([[0.0, 1.0], [0.0, 2.0]]), np.array([[0.0, 1.0], [0.0, -3.0]]), 1e-6)
>>> live["dead_fraction"], live["max_abs"].tolist()
(0.5, [0.0, 3.0])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_relu_doctor import tags
from keras_relu_doctor.probe.layout import ProbeLayout, ProbeSettings


@dataclass(frozen=True)
class Sampled:
    """A tensor's histogram sample (at most the sample size), its length and half its sum of squares."""

    values: np.ndarray
    length: int
    half_squares: float = 0.0



@dataclass
class LayerValues:
    """What one reached layer's reductions hold, as numpy arrays.

    ``weight_gradients`` and ``output_gradient`` are None without a loss;
    ``weights`` are samples of the layer's trainable weights as they are now.
    """

    path: str
    highest: np.ndarray  # [samples, units]
    lowest: np.ndarray
    activations: Sampled
    preactivations: Sampled | None
    weight_names: list[str]
    weights: list[Sampled]
    weight_gradients: list[Sampled] | None = None
    output_gradient: Sampled | None = None


def liveness(highest: np.ndarray, lowest: np.ndarray, tolerance: float) -> dict[str, Any]:
    """Per-unit statistics from each sample's largest and smallest output (``[samples, units]``).

    As :func:`keras_relu_doctor.probe.tf_probe.liveness_from_extremes` and
    :func:`~keras_relu_doctor.probe.tf_probe.unit_liveness`: NaN/Inf counts as
    active; ``range`` is the layer's lowest and highest finite output (NaN where none).
    """
    highest, lowest = highest.astype(np.float32), lowest.astype(np.float32)
    finite_high, finite_low = np.isfinite(highest), np.isfinite(lowest)
    with np.errstate(invalid="ignore"):
        magnitude = np.maximum(highest, -lowest) + np.float32(0.0)  # -0.0 (max of 0 and -0) is 0
    magnitude = np.where(np.isnan(magnitude), np.float32(np.inf), magnitude)
    top = np.max(np.where(finite_high, highest, -np.inf), axis=0).astype(np.float32)
    bottom = np.min(np.where(finite_low, lowest, np.inf), axis=0).astype(np.float32)
    max_abs = np.max(magnitude, axis=0)
    with np.errstate(invalid="ignore"):
        output_range = np.where(top >= bottom, top - bottom, np.float32(0.0))
    low, high = (float(bottom.min()), float(top.max())) if bottom.size else (np.nan, np.nan)
    known = np.isfinite(low) and np.isfinite(high) and low <= high
    return {
        "active_fraction": np.mean(magnitude > tolerance, axis=0, dtype=np.float32),
        "max_abs": max_abs,
        "output_range": output_range.astype(np.float32),
        "nonfinite": float(np.sum(~(finite_high & finite_low))),
        "dead_fraction": float(np.mean(max_abs == 0.0)),
        "near_dead_fraction": float(np.mean((max_abs > 0.0) & (max_abs <= tolerance))),
        "range": (low, high) if known else (np.nan, np.nan),
    }


def bucketed(sample: Sampled, buckets: int, value_range: tuple[float, float] = (np.nan, np.nan)) -> dict[str, Any]:
    """One histogram ``[buckets, (left, right, count)]`` and the estimates its sample gives.

    Edges span the sample's finite values, or ``value_range`` where finite;
    counts are scaled to the whole tensor; ``nonfinite``, ``squares`` (sum of
    squares of the finite values) and ``zero_share`` are estimated from the sample.
    """
    values = sample.values.reshape(-1)
    dtype = np.float32 if values.dtype == np.float32 else np.float64
    values = values.astype(dtype)
    finite = np.isfinite(values)
    kept = values[finite]
    counted = float(kept.size)
    low, high = (float(kept.min()), float(kept.max())) if kept.size else (0.0, 0.0)
    if np.isfinite(value_range[0]):
        low = float(value_range[0])
    if np.isfinite(value_range[1]):
        high = float(value_range[1])
    if not kept.size:
        low = high = 0.0
    spread = high - low
    scale = sample.length / max(values.size, 1)  # a sample stands for this many values
    counts = np.zeros(buckets, np.float64)
    if spread == 0.0:
        counts[-1] = counted * scale
    else:
        index = np.floor((kept - dtype(low)) / dtype(spread / buckets)).astype(np.int64)
        counts = np.bincount(np.clip(index, 0, buckets - 1), minlength=buckets).astype(np.float64) * scale
    left = low + spread * (np.arange(buckets, dtype=np.float64) / buckets)
    right = np.append(left[1:], high)
    return {
        "histogram": np.stack([left, right, counts], axis=1),
        "nonfinite": (values.size - counted) * scale,
        "squares": float(np.sum(np.square(kept, dtype=np.float64))) * scale,
        "zero_share": float(np.sum(values == 0.0)) / max(counted, 1.0),
    }


@dataclass
class _Written:
    """The values of one probe in writing order, with their tags."""

    histogram_tags: list[str] = field(default_factory=list)
    histograms: list[np.ndarray] = field(default_factory=list)
    scalar_tags: list[str] = field(default_factory=list)
    scalars: list[float] = field(default_factory=list)
    unit_tags: list[tuple[str, str]] = field(default_factory=list)
    units: list[np.ndarray] = field(default_factory=list)

    def scalar(self, tag: str, value: float) -> None:
        self.scalar_tags.append(tag)
        self.scalars.append(float(value))

    def histogram(self, tag: str, sample: Sampled, buckets: int, value_range: tuple = (np.nan, np.nan)) -> dict:
        stats = bucketed(sample, buckets, value_range)
        self.histogram_tags.append(tag)
        self.histograms.append(stats["histogram"])
        return stats


def _norm(half_squares: list[float], estimates: list[dict] | None) -> tuple[float, bool]:
    """A norm from whole tensors' half sums of squares; from the histogram samples where those met NaN/Inf.

    Returns the norm and whether the whole tensors held NaN.
    """
    exact = 2.0 * float(np.sum(np.asarray(half_squares, np.float64)))
    if np.isfinite(exact):
        return float(np.sqrt(exact)), False
    estimate = sum(stats["squares"] for stats in estimates) if estimates else 0.0
    return float(np.sqrt(estimate)), bool(np.isnan(exact))


def _change_half_squares(now: Sampled, then: np.ndarray) -> float:
    """Half the sum of squares of a weight's change, estimated from its sample and scaled to its size (as the TensorFlow probe)."""
    change = np.asarray(now.values, np.float32) - then
    return 0.5 * float(np.sum(np.square(change), dtype=np.float32) * np.float32(now.length / max(change.size, 1)))


def probe_values(
    layers: list[LayerValues],
    measured_paths: list[str],
    loss: float | None,
    previous: dict[str, list[np.ndarray]],
    settings: ProbeSettings,
    layout: ProbeLayout,
) -> dict[str, Any]:
    """The probe's result (as the TensorFlow probe returns it) from the reached layers' values.

    Fills ``layout``'s tags in the same order; ``previous`` holds each layer's
    weights at the last measurement, for the update ratio, and is updated.
    """
    written, buckets = _Written(), settings.buckets
    if loss is not None:
        written.scalar(tags.PROBE_LOSS, loss)
    lives = [liveness(layer.highest, layer.lowest, settings.tolerance) for layer in layers]
    for layer, live in zip(layers, lives):
        written.unit_tags.append((tags.tag(layer.path, tags.UNITS), layer.path))
        written.units.append(np.stack([live["active_fraction"], live["max_abs"], live["output_range"]]))
        activity = live["active_fraction"]
        written.histogram(tags.tag(layer.path, tags.UNIT_ACTIVITY), Sampled(activity, activity.size), buckets)
    for key, tag in (("dead_fraction", tags.DEAD_FRACTION), ("near_dead_fraction", tags.NEAR_DEAD_FRACTION),
                     ("nonfinite", tags.NONFINITE_ACTIVATIONS)):  # fmt: skip
        for layer, live in zip(layers, lives):
            written.scalar(tags.tag(layer.path, tag), live[key])
    zero_shares = []
    for layer, live in zip(layers, lives):
        zero_shares.append(written.histogram(tags.tag(layer.path, tags.ACTIVATIONS), layer.activations, buckets,
                                             live["range"])["zero_share"])  # fmt: skip
        if layer.preactivations is not None:
            written.histogram(tags.tag(layer.path, tags.PREACTIVATIONS), layer.preactivations, buckets)
    norms: list[tuple[str, float]] = []
    ratios: list[tuple[str, float]] = []
    nonfinite_gradients: dict[str, float] = {}
    for layer in layers:
        if layer.output_gradient is not None and layer.weight_gradients is not None:
            weight_stats = [
                written.histogram(tags.gradient_tag(layer.path, name), grad, buckets)
                for name, grad in zip(layer.weight_names, layer.weight_gradients)
            ]
            output_stats = written.histogram(tags.tag(layer.path, tags.OUTPUT_GRADIENT), layer.output_gradient, buckets)
            output_norm, output_nan = _norm([layer.output_gradient.half_squares], [output_stats])
            norms.append((tags.tag(layer.path, tags.OUTPUT_GRAD_NORM), output_norm))
            missed = output_nan
            if layer.weights:
                grad_norm, grad_nan = _norm([grad.half_squares for grad in layer.weight_gradients], weight_stats)
                norms.append((tags.tag(layer.path, tags.GRAD_NORM), grad_norm))
                missed = missed or grad_nan
            counted = sum(stats["nonfinite"] for stats in [*weight_stats, output_stats])
            nonfinite_gradients[layer.path] = max(counted, 1.0 if missed else 0.0)
        if not layer.weights:
            continue
        weight_norm, _ = _norm([weight.half_squares for weight in layer.weights], None)
        norms.append((tags.tag(layer.path, tags.WEIGHT_NORM), weight_norm))
        before = previous.get(layer.path)
        if before:
            change_norm, _ = _norm([_change_half_squares(now, then) for now, then in zip(layer.weights, before)], None)
            ratios.append((tags.tag(layer.path, tags.UPDATE_RATIO), change_norm / (weight_norm + 1e-12)))
            previous.update(weight_snapshot({layer.path: layer.weights}))
    for tag, value in [*norms, *ratios]:
        written.scalar(tag, value)
    for layer, share in zip(layers, zero_shares):
        written.scalar(tags.tag(layer.path, tags.ZERO_FRACTION), share)
    for path, count in nonfinite_gradients.items():
        written.scalar(tags.tag(path, tags.NONFINITE_GRADIENTS), count)
    layout.histogram_tags[:] = written.histogram_tags
    layout.scalar_tags[:] = written.scalar_tags
    layout.unit_tags[:] = written.unit_tags
    by_path = {layer.path: (live, nonfinite_gradients.get(layer.path, 0.0)) for layer, live in zip(layers, lives)}
    per_layer = lambda value: np.array([value(by_path[p]) if p in by_path else 0.0 for p in measured_paths], np.float32)  # noqa: E731
    return {
        "histograms": np.stack(written.histograms) if written.histograms else np.zeros((0, buckets, 3)),
        "scalars": np.array(written.scalars, np.float32),
        "units": tuple(written.units),
        "dead_fraction": per_layer(lambda item: item[0]["dead_fraction"]),
        "nonfinite": per_layer(lambda item: item[0]["nonfinite"] + item[1]),
        "measured": per_layer(lambda item: 1.0),
        "loss": np.float32(loss if loss is not None else 0.0),
    }


def weight_snapshot(layers: dict[str, list[Sampled]]) -> dict[str, list[np.ndarray]]:
    """Each layer's weight samples (``{path: [Sampled]}``) as float32 arrays: the last measurement's, for the update ratio."""
    return {path: [np.array(weight.values, np.float32) for weight in weights] for path, weights in layers.items() if weights}
