"""Vanishing and exploding gradients, from per-layer gradient norms.

Norms are ``||d loss / d weights||`` of each layer on the probe batch (the
callback's ``<layer>/grad_norm``, or estimated from gradient histograms).
Layers are in model order, so "towards the input" means towards index 0.
"""

from __future__ import annotations

import numpy as np

from keras_relu_doctor.diagnose.findings import (
    ERROR,
    EXPLODING_GRADIENTS,
    INFO,
    VANISHING_GRADIENTS,
    WARNING,
    Finding,
)
from keras_relu_doctor.diagnose.fixes import ranked
from keras_relu_doctor.diagnose.layers import LayerSeries

# float32 has ~7 significant digits: an update lr * 1e-7 to weights of order 1 is lost.
GRAD_NORM_FLOOR = 1e-7
# clipnorm values in common use are 1 to 10; a norm 100x past them is out of control.
GRAD_NORM_CEILING = 1e3
# Seed 003 sees gradients die "from the last layer towards the first": flag a
# factor of 10**3 between the output-most and the input-most layer.
LAYER_SPAN_ORDERS = 3.0
# Growing steadily: up at least this share of logged steps, by this many orders overall.
GROWTH_SHARE = 0.75
GROWTH_ORDERS = 2.0
MIN_GROWTH_STEPS = 3
# Growth is explosion only once it is past what healthy layers show: above
# clipnorm values in common use (1 to 10), and above every layer of the run that
# is not growing. A norm rising from 1e-6 to 0.1 is recovery from tiny, not explosion.
GROWTH_FLOOR = 10.0
# A norm past the ceiling at an earlier step is explosion when the weights
# jumped with it: moved by more than their own norm between two logs. Large
# early gradients that Adam tames while weights move a few percent (ResNet50 at
# initialisation: 1.8e3, falling, update ratio 0.13) are not.
UPDATE_JUMP = 1.0


def _norms_at(layers: list[LayerSeries], index: int) -> list[tuple[str, float]]:
    return [(layer.name, float(layer.grad_norm.values[index])) for layer in layers if len(layer.grad_norm.values)]


def _common_steps(layers: list[LayerSeries]) -> np.ndarray:
    steps = layers[0].grad_norm.steps
    for layer in layers[1:]:
        steps = np.intersect1d(steps, layer.grad_norm.steps)
    return steps


def _norm_table(layers: list[LayerSeries], steps: np.ndarray) -> np.ndarray:
    """Norms as ``[steps, layers]``, layers in model order."""
    columns = [layer.grad_norm.values[np.searchsorted(layer.grad_norm.steps, steps)] for layer in layers]
    return np.stack(columns, axis=1)


def vanishing_gradients(
    layers: tuple[LayerSeries, ...],
    *,
    floor: float = GRAD_NORM_FLOOR,
    span_orders: float = LAYER_SPAN_ORDERS,
    explained: frozenset[str] = frozenset(),
) -> Finding | None:
    """The input-most layers whose gradient norm is below ``floor``, or ``span_orders`` below the output-most layer's.

    ``explained`` names layers whose small gradient dead units already account
    for (a dead ReLU passes no gradient); they are left out. Only the leading
    run of such layers counts: vanishing starts at the input side.

    >>> import numpy as np
    >>> from keras_relu_doctor.events.series import ScalarSeries
    >>> def layer(name, norm):
    ...     return LayerSeries(name, grad_norm=ScalarSeries(np.array([0]), np.array([norm])))
    >>> vanishing_gradients((layer("d0", 1e-6), layer("d1", 1e-2), layer("d2", 1.0))).evidence["layers"]
    ['d0']
    """
    measured = [layer for layer in layers if layer.grad_norm is not None and len(layer.grad_norm.steps)]
    candidates = [layer for layer in measured if layer.name not in explained]
    if not candidates:
        return None
    steps = _common_steps(measured)
    if not len(steps):
        return None
    norms = _norm_table(measured, steps)
    # The output-most layer is the reference; a zero or non-finite one compares nothing.
    reference = np.where(np.isfinite(norms[:, -1:]) & (norms[:, -1:] > 0), norms[:, -1:], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        too_small = (norms < floor) | (np.log10(reference / norms) >= span_orders)
    keep = np.array([layer.name not in explained for layer in measured])
    too_small &= keep & np.isfinite(norms)
    # Gradients vanish from the output towards the input (Glorot & Bengio 2010), so
    # the affected layers are the input-most ones; a small gradient in a layer whose
    # upstream layers learn fine (an attention key projection) is not vanishing.
    affected = []
    for layer, small, kept in zip(measured, too_small[-1], keep):
        if small:
            affected.append(layer.name)
        elif kept:
            break
    if not affected:
        return None
    onset = int(steps[np.flatnonzero(too_small.any(axis=1))[0]])
    last = norms[-1]
    smallest = float(np.nanmin(np.where(keep & (last > 0), last, np.nan))) if np.any(keep & (last > 0)) else None
    orders_below = (
        float(np.log10(last[-1] / smallest)) if smallest and np.isfinite(last[-1]) and last[-1] > 0 else None
    )
    evidence = {
        "layers": affected,
        "grad_norms": {layer.name: float(norm) for layer, norm in zip(measured, last)},
        "floor": floor,
        "span_orders": span_orders,
        "orders_below_output_layer": orders_below,
        "estimated_from_histograms": any(layer.grad_norm_estimated for layer in measured),
    }
    activations = {layer.activation for layer in measured if layer.name in affected}
    bounded = bool(activations & {"sigmoid", "tanh", "hard_sigmoid", "softsign"})
    fixes = ("relu_family", "normalization", "residual", "he_init") if bounded else (
        "normalization", "residual", "he_init", "check_data")
    return Finding(
        kind=VANISHING_GRADIENTS,
        layer=affected[0],
        severity=WARNING,
        onset_step=onset,
        evidence=evidence,
        fixes=ranked(*fixes),
        summary=f"gradients of {len(affected)} layer(s) are "
        + (
            f"{orders_below:.1f} orders of magnitude below the output layer's or under the floor"
            if orders_below is not None
            else f"under the floor of {floor:g}"
        ),
    )


def exploding_gradients(
    layers: tuple[LayerSeries, ...],
    *,
    ceiling: float = GRAD_NORM_CEILING,
    span_orders: float = LAYER_SPAN_ORDERS,
    growth_share: float = GROWTH_SHARE,
    growth_orders: float = GROWTH_ORDERS,
) -> Finding | None:
    """NaN/Inf gradients, norms above ``ceiling`` at any step, growing steadily, or ``span_orders`` above the output's.

    >>> import numpy as np
    >>> from keras_relu_doctor.events.series import ScalarSeries
    >>> def layer(name, norm):
    ...     return LayerSeries(name, grad_norm=ScalarSeries(np.array([0]), np.array([norm])))
    >>> exploding_gradients((layer("d0", np.nan), layer("d1", 1.0))).severity
    'error'
    """
    measured = [layer for layer in layers if layer.grad_norm is not None and len(layer.grad_norm.steps)]
    reasons: dict[str, list[str]] = {}
    onsets: list[int] = []
    recovered: dict[str, tuple[float, float]] = {}
    for layer in layers:
        nonfinite_steps = _nonfinite_steps(layer)
        if len(nonfinite_steps):
            reasons.setdefault(layer.name, []).append("nan_or_inf")
            onsets.append(int(nonfinite_steps[0]))
    if measured and len(steps := _common_steps(measured)):
        norms = _norm_table(measured, steps)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(norms)
            above_output = logs - logs[:, -1:] >= span_orders
        growing = [_growing(logs[:, index], growth_share, growth_orders) for index in range(len(measured))]
        steady = norms[-1][~np.array(growing)]
        healthy_top = max(GROWTH_FLOOR, float(np.nanmax(steady, initial=0.0)))
        for index, layer in enumerate(measured):
            # A norm past the ceiling counts at any step: Adam may tame it later,
            # but the weights have already jumped.
            if _past_ceiling(layer, norms[:, index], steps, ceiling):
                reasons.setdefault(layer.name, []).append("above_ceiling")
                onsets.append(int(steps[np.flatnonzero(norms[:, index] > ceiling)[0]]))
            if above_output[-1, index]:
                reasons.setdefault(layer.name, []).append("orders_above_output_layer")
                onsets.append(int(steps[np.flatnonzero(above_output[:, index])[0]]))
            if growing[index] and norms[-1, index] > healthy_top:
                reasons.setdefault(layer.name, []).append("growing")
                onsets.append(int(steps[0]))
            elif growing[index]:
                recovered[layer.name] = (float(norms[0, index]), float(norms[-1, index]))
    if not reasons:
        return _recovery(recovered, int(steps[0])) if recovered else None
    order = [layer.name for layer in layers]
    affected = sorted(reasons, key=order.index)
    nonfinite = any("nan_or_inf" in why for why in reasons.values())
    return Finding(
        kind=EXPLODING_GRADIENTS,
        layer=affected[0],
        severity=ERROR if nonfinite else WARNING,
        onset_step=min(onsets),
        evidence={
            "layers": affected,
            "reasons": reasons,
            "grad_norms": {layer.name: float(layer.grad_norm.values[-1]) for layer in measured},
            "max_grad_norms": {layer.name: float(np.nanmax(layer.grad_norm.values, initial=0.0)) for layer in measured},
            "ceiling": ceiling,
            "span_orders": span_orders,
        },
        fixes=ranked("lower_lr", "clip_gradients", "initializer", "normalization", "residual"),
        summary=("NaN/Inf in gradients or activations" if nonfinite else "gradient norms too large or growing")
        + f" in {len(affected)} layer(s)",
    )


def _past_ceiling(layer: LayerSeries, norms: np.ndarray, steps: np.ndarray, ceiling: float) -> bool:
    """Above ``ceiling`` now; or earlier, then NaN/Inf or weights jumping (without update ratios: not falling)."""
    above = np.flatnonzero(norms > ceiling)
    if not above.size:
        return False
    if norms[-1] > ceiling or not np.isfinite(norms[above[0] :]).all():
        return True
    first = steps[above[0]]
    if layer.nonfinite is not None and bool((layer.nonfinite.values[layer.nonfinite.steps >= first] > 0).any()):
        return True  # it went on to NaN/Inf
    ratio = layer.update_ratio
    if ratio is not None and len(ratio.values):
        after = ratio.values[ratio.steps > first]
        return bool(after.size and (not np.isfinite(after).all() or after.max() > UPDATE_JUMP))
    return bool(norms[-1] >= norms[above].max() / 10)


def _recovery(recovered: dict[str, tuple[float, float]], onset: int) -> Finding:
    """An ``info`` line: gradient norms that grew from tiny to a healthy range."""
    first, last = min(start for start, _ in recovered.values()), max(end for _, end in recovered.values())
    return Finding(
        kind=EXPLODING_GRADIENTS,
        layer=next(iter(recovered)),
        severity=INFO,
        onset_step=onset,
        evidence={"layers": list(recovered), "recovered_from_to": {name: list(pair) for name, pair in recovered.items()},
                  "growth_floor": GROWTH_FLOOR},  # fmt: skip
        summary=f"gradient norms of {len(recovered)} layer(s) grew from {first:.2g} to {last:.2g}: recovery from"
        " tiny gradients, still in a healthy range, not explosion",
    )


def _nonfinite_steps(layer: LayerSeries) -> np.ndarray:
    steps = []
    if layer.nonfinite is not None:
        steps.append(layer.nonfinite.steps[layer.nonfinite.values > 0])
    if layer.grad_norm is not None:
        steps.append(layer.grad_norm.steps[~np.isfinite(layer.grad_norm.values)])
    return np.sort(np.concatenate(steps)) if steps else np.zeros(0, dtype=np.int64)


def _growing(log_norms: np.ndarray, share: float, orders: float) -> bool:
    finite = log_norms[np.isfinite(log_norms)]
    if finite.size < MIN_GROWTH_STEPS:
        return False
    rises = np.diff(finite) > 0
    return bool(rises.mean() >= share and finite[-1] - finite[0] >= orders)
