"""The loss curve: at chance, flat, spiking or oscillating (``epoch_loss`` from Keras' TensorBoard)."""

from __future__ import annotations

import numpy as np

from keras_relu_doctor.diagnose.findings import (
    INFO,
    LOSS_AT_CHANCE,
    LOSS_OSCILLATION,
    LOSS_PLATEAU,
    LOSS_SPIKES,
    WARNING,
    Finding,
)
from keras_relu_doctor.diagnose.fixes import ranked
from keras_relu_doctor.events.series import ScalarSeries

# Seed 001: with dead units "the loss is flat"; flag a total change under 0.1%.
PLATEAU_CHANGE = 1e-3
# Seed 000 watches for a batch whose loss is far above the ones before: a rise
# of 50% over the previous value, and over the best so far, is a spike.
SPIKE_RISE = 0.5
# Seed 002: oscillation at the end of training means the LR is too high for the
# mini-batch noise; flag the last half of the curve when its direction flips on
# most steps and each move is at least 5% of the loss.
OSCILLATION_FLIPS = 0.6
OSCILLATION_AMPLITUDE = 0.05
MIN_STEPS = 3
MIN_OSCILLATION_STEPS = 6
# Two epoch losses both at chance already say the model learnt nothing so far.
MIN_CHANCE_STEPS = 2
# A classifier that predicts the same distribution for every input scores the
# entropy of the labels, ln K for K balanced classes (ln 2 per binary output);
# Karpathy's recipe (2019) checks the loss at initialisation against -log(1/K).
# Labels whose largest class is twice the smallest bring that entropy only ~2%
# below ln K, so a loss never 5% below ln K has learnt next to nothing.
CHANCE_MARGIN = 0.05
# Compiled losses whose constant-predictor value is known, by normalised name.
CATEGORICAL_LOSSES = ("categoricalcrossentropy", "sparsecategoricalcrossentropy", "categoricalfocalcrossentropy")
BINARY_LOSSES = ("binarycrossentropy", "binaryfocalcrossentropy")


def chance_loss(loss_name: str, head_activation: str, classes: int | None) -> float | None:
    """The loss of a constant predictor with uniform classes: ln K, or ln 2 for binary; None if unknown.

    >>> round(chance_loss("sparse_categorical_crossentropy", "softmax", 10), 4)
    2.3026
    >>> chance_loss("mse", "linear", 1) is None
    True
    """
    name = loss_name.lower().replace("_", "")
    if name in CATEGORICAL_LOSSES and classes and classes > 1:
        return float(np.log(classes))
    if name in BINARY_LOSSES:
        return float(np.log(2.0))
    return None


def loss_at_chance(
    loss: ScalarSeries | None, chance: float | None, *, tag: str = "epoch_loss", margin: float = CHANCE_MARGIN
) -> Finding | None:
    """The loss never got more than ``margin`` below the constant predictor's ``chance`` value.

    >>> import numpy as np
    >>> loss_at_chance(ScalarSeries(np.arange(4), np.array([2.31, 2.30, 2.31, 2.30])), float(np.log(10))).kind
    'loss_at_chance'
    """
    if loss is None or chance is None or len(loss.values) < MIN_CHANCE_STEPS:
        return None
    finite = loss.values[np.isfinite(loss.values)]
    if finite.size < MIN_CHANCE_STEPS or float(finite.min()) < chance * (1 - margin):
        return None
    return Finding(
        kind=LOSS_AT_CHANCE,
        layer="",
        severity=WARNING,
        onset_step=int(loss.steps[0]),
        evidence={"tag": tag, "chance_loss": chance, "best_loss": float(finite.min()), "last_loss": float(finite[-1]),
                  "margin": margin},  # fmt: skip
        fixes=ranked("check_data", "lower_lr", "normalize_inputs"),
        summary=f"{tag} never gets below chance: best {float(finite.min()):.4g} against {chance:.4g} for a constant"
        " prediction; the model has learnt next to nothing",
    )


def loss_spikes(loss: ScalarSeries, *, rise: float = SPIKE_RISE) -> tuple[int, ...]:
    """Steps at which the loss jumps, or turns NaN/Inf.

    >>> import numpy as np
    >>> loss_spikes(ScalarSeries(np.arange(5), np.array([1.0, 0.8, 2.0, 0.7, 0.6])))
    (2,)
    """
    values = loss.values
    best = np.minimum.accumulate(np.where(np.isfinite(values), values, np.inf))
    spikes = []
    for index in range(1, len(values)):
        value, before = values[index], values[index - 1]
        if not np.isfinite(value) and np.isfinite(before):
            spikes.append(int(loss.steps[index]))
        elif before > 0 and value > before * (1 + rise) and value > best[index - 1] * (1 + rise):
            spikes.append(int(loss.steps[index]))
    return tuple(spikes)


def loss_curve(
    loss: ScalarSeries | None,
    *,
    tag: str = "epoch_loss",
    plateau_change: float = PLATEAU_CHANGE,
    spike_rise: float = SPIKE_RISE,
    deaths_at_spikes: bool = False,
) -> tuple[Finding, ...]:
    """Findings about the loss curve; ``info`` unless spikes left dead units behind.

    >>> import numpy as np
    >>> [f.kind for f in loss_curve(ScalarSeries(np.arange(4), np.full(4, 0.69)))]
    ['loss_plateau']
    """
    if loss is None or len(loss.values) < MIN_STEPS:
        return ()
    values = loss.values
    findings = []
    finite = values[np.isfinite(values)]
    scale = max(float(np.abs(finite).mean()) if finite.size else 0.0, 1e-12)
    if finite.size == values.size and (finite.max() - finite.min()) / scale < plateau_change:
        findings.append(Finding(
            kind=LOSS_PLATEAU, layer="", severity=INFO, onset_step=int(loss.steps[0]),
            evidence={"tag": tag, "first": float(values[0]), "last": float(values[-1]),
                      "relative_change": float((finite.max() - finite.min()) / scale)},
            fixes=ranked("check_data", "he_init", "normalize_inputs"),
            summary=f"{tag} does not move ({values[0]:.4g} to {values[-1]:.4g})",
        ))  # fmt: skip
    spikes = loss_spikes(loss, rise=spike_rise)
    if spikes:
        findings.append(Finding(
            kind=LOSS_SPIKES, layer="", severity=WARNING if deaths_at_spikes else INFO,
            onset_step=spikes[0], evidence={"tag": tag, "spike_steps": list(spikes), "rise": spike_rise},
            fixes=ranked("lower_lr", "normalization", "check_data"),
            summary=f"{tag} spikes at step(s) {', '.join(map(str, spikes))}"
            + ("; units died at the spikes" if deaths_at_spikes else ""),
        ))  # fmt: skip
    tail = finite[len(finite) // 2 :]
    if len(finite) >= MIN_OSCILLATION_STEPS and len(tail) >= MIN_STEPS:
        moves = np.diff(tail)
        flips = float(np.mean(np.sign(moves[1:]) != np.sign(moves[:-1])))
        amplitude = float(np.abs(moves).mean() / max(np.abs(tail).mean(), 1e-12))
        if flips >= OSCILLATION_FLIPS and amplitude >= OSCILLATION_AMPLITUDE:
            findings.append(Finding(
                kind=LOSS_OSCILLATION, layer="", severity=INFO, onset_step=int(loss.steps[len(finite) // 2]),
                evidence={"tag": tag, "direction_flips": flips, "relative_amplitude": amplitude},
                fixes=ranked("lr_decay", "lower_lr", "normalization"),
                summary=f"{tag} oscillates at the end of training (moves of {amplitude:.0%})",
            ))  # fmt: skip
    return tuple(findings)
