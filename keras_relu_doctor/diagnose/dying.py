"""Dying ReLU: layers whose share of dead units passes a threshold.

A unit is dead at a step when its largest |output| over the probe batch is
exactly 0, near-dead when it is above 0 but at most the callback's tolerance
(PReLU/LeakyReLU units parked at ~1e-7 after loss spikes, as a reported case of
dead ReLUs in a max-pooling network showed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from keras_relu_doctor.diagnose.findings import DYING_RELU, ERROR, INFO, WARNING, Finding
from keras_relu_doctor.diagnose.fixes import ranked
from keras_relu_doctor.diagnose.layers import RECTIFIER, SLOPED, LayerSeries
from keras_relu_doctor.events.series import HistogramSeries, UnitsSeries

DEAD_LAYER_FRACTION = 0.5  # SageMaker Debugger's dead_relu and TheDeepChecker flag a layer above 50%
# Below the threshold, a dead share above a tenth is said as capacity lost: a
# symmetric initializer on inputs of one sign leaves about 1 unit in 16 dead at
# initialisation (the replay's one-layer He/LeCun rows: 0.06), so a tenth is
# past what initialisation alone explains.
PARTIAL_DEAD_FRACTION = 0.1
# A live ReLU unit is zero on about half the samples (DESIGN.md: sparsity is not
# death), so a zero fraction z from a histogram suggests a dead share of 2z - 1.
LIVE_RELU_ZERO_FRACTION = 0.5


@dataclass(frozen=True)
class UnitDeaths:
    """Dead and near-dead units of one layer, and when each died.

    ``death_steps[u]`` is the first step of the last stretch in which unit ``u``
    stayed dead; ``revived`` are units dead at some step and alive at the last.
    """

    steps: np.ndarray
    dead_fraction: np.ndarray
    near_dead_fraction: np.ndarray
    dead_units: tuple[int, ...]
    near_dead_units: tuple[int, ...]
    death_steps: dict[int, int]
    revived: tuple[int, ...]
    first_dead_step: int | None


def unit_deaths(units: UnitsSeries) -> UnitDeaths:
    """Read deaths off the per-unit records.

    >>> import numpy as np
    >>> from keras_relu_doctor.tags import UnitsMetadata
    >>> record = np.array([[1.0, 2.0], [0.0, 2.0], [0.0, 0.0]])  # max |output|, steps x units
    >>> deaths = unit_deaths(UnitsSeries(np.arange(3), record, record, UnitsMetadata(1e-6, "epoch")))
    >>> deaths.dead_units, deaths.death_steps, deaths.first_dead_step
    ((0, 1), {0: 1, 1: 2}, 1)
    """
    max_abs = units.max_abs_output
    dead = max_abs == 0
    near_dead = (max_abs > 0) & (max_abs <= units.metadata.tolerance)
    steps = units.steps
    dead_now = np.flatnonzero(dead[-1])
    # Index of the last step each unit was alive; it died at the step after.
    alive_at = np.where(~dead, np.arange(len(steps))[:, None], -1).max(axis=0)
    death_steps = {int(unit): int(steps[alive_at[unit] + 1]) for unit in dead_now}
    ever_dead = dead.any(axis=0)
    dead_rows = np.flatnonzero(dead.any(axis=1))
    return UnitDeaths(
        steps=steps,
        dead_fraction=dead.mean(axis=1),
        near_dead_fraction=near_dead.mean(axis=1),
        dead_units=tuple(int(unit) for unit in dead_now),
        near_dead_units=tuple(int(unit) for unit in np.flatnonzero(near_dead[-1])),
        death_steps=death_steps,
        revived=tuple(int(unit) for unit in np.flatnonzero(ever_dead & ~dead[-1])),
        first_dead_step=int(steps[dead_rows[0]]) if dead_rows.size else None,
    )


def dying_units(
    layer: LayerSeries,
    *,
    threshold: float = DEAD_LAYER_FRACTION,
    partial: float = PARTIAL_DEAD_FRACTION,
    spike_steps: tuple[int, ...] = (),
    first_layer: bool = False,
    inherited: tuple[int, ...] = (),
    consequences: Mapping[str, int] | None = None,
) -> Finding | None:
    """Dead units of one layer at the last step, with the step each one died.

    Only rectifiers die (exact zeros); layers with a slope below zero (LeakyReLU,
    PReLU, ELU...) count near-dead units instead; every other kind of layer is
    never dying. Units in ``inherited`` only carry a death from upstream
    (:mod:`.cascade`) and are left to the layer where it starts, whose finding
    lists the ``consequences`` (downstream layer -> dead units it carries).
    Above ``threshold`` the finding is a problem; above ``partial`` it is an
    ``info`` line (capacity lost, not blocked). ``spike_steps`` (loss spikes)
    and ``first_layer`` pick the fixes: deaths at a spike point to the learning
    rate first; units dead from the first step to the initializer and inputs.

    >>> import numpy as np
    >>> from keras_relu_doctor.tags import UnitsMetadata
    >>> record = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    >>> units = UnitsSeries(np.arange(3), record, record, UnitsMetadata(1e-6, "epoch"))
    >>> dying_units(LayerSeries("dense", kind="rectifier", units=units)).units
    (0, 1, 3)
    """
    if not layer.can_die:
        return None
    if layer.units is None:
        return _dying_from_histogram(layer.name, layer.activations, threshold) if layer.kind == RECTIFIER else None
    if layer.nonfinite is not None and len(layer.nonfinite.values) and layer.nonfinite.values[-1] > 0:
        return None  # NaN/Inf outputs are recorded as 0: not death but explosion, reported as such
    deaths = unit_deaths(layer.units)
    total = layer.units.units
    if total == 0:
        return None
    carried = set(inherited)
    own = [unit for unit in deaths.dead_units if unit not in carried]
    near_dead = list(deaths.near_dead_units) if layer.kind == SLOPED else []
    lifeless = own + near_dead
    lifeless_share = len(lifeless) / total
    if lifeless_share <= partial:
        return None
    by_step = _lifeless_by_step(layer.units, lifeless)
    severity = (ERROR if lifeless_share == 1.0 else WARNING) if lifeless_share > threshold else INFO
    over = np.flatnonzero(by_step > (threshold if severity != INFO else partial))
    onset = int(deaths.steps[over[0]]) if over.size else None
    own_deaths = {unit: step for unit, step in deaths.death_steps.items() if unit not in carried}
    at_spike = {
        step: sum(1 for died in own_deaths.values() if 0 <= _steps_after(deaths.steps, step, died) <= 1)
        for step in spike_steps
    }
    at_spike = {step: count for step, count in at_spike.items() if count}
    dead_from_start = bool(by_step[0] > threshold) if severity != INFO else bool(by_step[0] > partial)
    died_in_training = any(step > int(deaths.steps[0]) for step in own_deaths.values())
    negative_kernel = layer.kernel is not None and bool(layer.kernel.max[0] <= 0)
    if at_spike:
        fixes = ranked("lower_lr", "normalization", "leaky_relu", "check_data")
    elif negative_kernel:
        fixes = ranked("initializer", "normalize_inputs", "normalization", "selu")
    elif dead_from_start:
        first = ("normalize_inputs", "initializer") if first_layer else ("initializer", "normalize_inputs")
        fixes = ranked(*first, "normalization", "leaky_relu", "selu")
    else:
        fixes = ranked("normalization", "leaky_relu", "lower_lr", "he_init", "selu")
    carried_by = dict(consequences or {})
    evidence = {
        "units": total,
        "dead_fraction": len(own) / total,
        "near_dead_fraction": len(near_dead) / total,
        "threshold": threshold,
        "partial_threshold": partial,
        "near_dead_units": near_dead,
        "death_steps": {str(unit): step for unit, step in own_deaths.items()},
        "revived_units": list(deaths.revived),
        "dead_from_first_step": dead_from_start,
        "died_in_training": died_in_training,
        "deaths_at_loss_spikes": {str(step): count for step, count in at_spike.items()},
        "negative_kernel_at_start": negative_kernel,
        "tolerance": layer.units.metadata.tolerance,
        "inherited_units": sorted(carried & set(deaths.dead_units)),
        "consequences": carried_by,
    }
    if severity == INFO:
        summary = f"{lifeless_share:.0%} of units dead ({len(lifeless)} of {total}): capacity lost, not blocked"
    else:
        summary = f"{len(own)} of {total} units dead"
        if near_dead:
            summary += f", {len(near_dead)} near-dead"
    if at_spike:
        summary += f"; units died at the loss spikes of steps {', '.join(map(str, at_spike))}"
    if carried_by:
        carried = sum(carried_by.values())
        summary += (
            f"; {carried} dead unit{'s' * (carried != 1)} downstream, in"
            f" {', '.join(list(carried_by)[:3])}{f' and {len(carried_by) - 3} more' if len(carried_by) > 3 else ''}, only carr{'y' if carried != 1 else 'ies'} these deaths"
        )
    return Finding(
        kind=DYING_RELU,
        layer=layer.name,
        severity=severity,
        onset_step=onset,
        units=tuple(own),
        evidence=evidence,
        fixes=fixes,
        summary=summary,
    )


def _lifeless_by_step(units: UnitsSeries, lifeless: list[int]) -> np.ndarray:
    """Share of all units that are among ``lifeless`` and dead or near-dead, per step."""
    if not lifeless:
        return np.zeros(len(units.steps))
    values = units.max_abs_output[:, lifeless]
    return (values <= units.metadata.tolerance).sum(axis=1) / units.units


def _steps_after(steps: np.ndarray, start: int, end: int) -> int:
    """How many logged steps ``end`` comes after ``start`` (negative if before)."""
    return int(np.searchsorted(steps, end) - np.searchsorted(steps, start))


def estimated_dead_fraction(zero_fraction: float) -> float:
    """Dead share implied by a layer's zero fraction, if live units are zero half the time.

    >>> estimated_dead_fraction(0.5), estimated_dead_fraction(1.0)
    (0.0, 1.0)
    """
    return float(np.clip((zero_fraction - LIVE_RELU_ZERO_FRACTION) / (1 - LIVE_RELU_ZERO_FRACTION), 0.0, 1.0))


def _dying_from_histogram(name: str, activations: HistogramSeries | None, threshold: float) -> Finding | None:
    if activations is None or not np.isfinite(activations.zero_fraction[-1]):
        return None
    zero_fraction = float(activations.zero_fraction[-1])
    estimate = estimated_dead_fraction(zero_fraction)
    if estimate <= threshold:
        return None
    estimates = np.array([estimated_dead_fraction(value) for value in np.nan_to_num(activations.zero_fraction)])
    onset = int(activations.steps[np.flatnonzero(estimates > threshold)[0]])
    return Finding(
        kind=DYING_RELU,
        layer=name,
        severity=ERROR if estimate == 1.0 else WARNING,
        onset_step=onset,
        evidence={
            "zero_fraction": zero_fraction,
            "estimated_dead_fraction": estimate,
            "threshold": threshold,
            "per_unit_detail": "unavailable: only activation histograms were logged; "
            "train with ReluDoctor to name the dead units",
        },
        fixes=ranked("normalization", "leaky_relu", "lower_lr", "he_init", "selu"),
        summary=f"{zero_fraction:.0%} of outputs are zero (about {estimate:.0%} of units dead, "
        "estimated from the histogram; no per-unit detail)",
    )
