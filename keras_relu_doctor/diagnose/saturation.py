"""Saturation: tanh/sigmoid outputs piled at their bounds, where the slope is ~0."""

from __future__ import annotations

import numpy as np

from keras_relu_doctor.diagnose.findings import SATURATION, WARNING, Finding
from keras_relu_doctor.diagnose.fixes import ranked
from keras_relu_doctor.diagnose.layers import LayerSeries

# Glorot & Bengio (2010) saw sigmoid top layers stuck at their bound; we call a
# layer saturated when most of its outputs (over half) sit within 5% of a bound,
# where tanh' < 0.1 and sigmoid' < 0.05 (a tenth and a fifth of their peaks).
SATURATED_SHARE = 0.5
TANH_LIKE = ("tanh", "softsign", "hard_tanh")
SIGMOID_LIKE = ("sigmoid", "hard_sigmoid")


def saturated_share(layer: LayerSeries) -> np.ndarray | None:
    """Share of outputs within 5% of the activation's bounds, per step; None if unknown."""
    histogram = layer.activations
    if histogram is None:
        return None
    if layer.activation in TANH_LIKE:
        return histogram.fraction_below_minus_0_95 + histogram.fraction_above_0_95
    if layer.activation in SIGMOID_LIKE:
        return histogram.fraction_below_0_05 + histogram.fraction_above_0_95
    return None


def saturation(layer: LayerSeries, *, share: float = SATURATED_SHARE, head: bool = False) -> Finding | None:
    """A hidden tanh/sigmoid layer with more than ``share`` of its outputs at a bound at the last step.

    An output ``head`` is confident by design (a good classifier puts its
    sigmoid outputs near 0 and 1), so it is left out; the caller passes
    ``head=False`` for it only when the loss shows the head is stuck.

    >>> import numpy as np
    >>> from keras_relu_doctor.events.writer import histogram_buckets
    >>> from keras_relu_doctor.events.histograms import bucket_stats
    >>> from keras_relu_doctor.events.series import HistogramSeries
    >>> stats = bucket_stats(histogram_buckets(np.tanh(np.linspace(-50, 50, 1000)))[None])
    >>> layer = LayerSeries("dense", activation="tanh", activations=HistogramSeries(np.array([0]), **stats))
    >>> round(saturation(layer).evidence["saturated_share"], 2)  # 0.96 in truth; buckets blur it
    0.72
    """
    if head:
        return None
    shares = saturated_share(layer)
    if shares is None or not np.isfinite(shares[-1]) or shares[-1] <= share:
        return None
    onset = int(layer.activations.steps[np.flatnonzero(np.nan_to_num(shares) > share)[0]])
    last = float(shares[-1])
    return Finding(
        kind=SATURATION,
        layer=layer.name,
        severity=WARNING,
        onset_step=onset,
        evidence={"activation": layer.activation, "saturated_share": last, "threshold": share},
        fixes=ranked("initializer", "normalization", "normalize_inputs", "relu_family"),
        summary=f"{last:.0%} of {layer.activation} outputs within 5% of a bound",
    )
