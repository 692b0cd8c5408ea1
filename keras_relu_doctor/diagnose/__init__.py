"""Diagnosis rules: pure functions from series to findings.

:func:`diagnose` runs every rule on one run and picks the verdict.

>>> from keras_relu_doctor.events.series import Run
>>> diagnose(Run(".", {}, {}, {}, (), ())).verdict
'no_data'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

import numpy as np

from keras_relu_doctor import tags
from keras_relu_doctor.diagnose.cascade import inherited_deaths
from keras_relu_doctor.diagnose.dying import DEAD_LAYER_FRACTION, UnitDeaths, dying_units, unit_deaths
from keras_relu_doctor.diagnose.findings import (
    DYING_RELU,
    EXPLODING_GRADIENTS,
    HEALTHY,
    LOSS_AT_CHANCE,
    LOSS_OSCILLATION,
    LOSS_SPIKES,
    KINDS,
    NO_DATA,
    VERDICT_KINDS,
    VERDICTS,
    Finding,
)
from keras_relu_doctor.diagnose.gradients import (
    GRAD_NORM_CEILING,
    GRAD_NORM_FLOOR,
    LAYER_SPAN_ORDERS,
    exploding_gradients,
    vanishing_gradients,
)
from keras_relu_doctor.diagnose.fixes import ModelContext, tailor
from keras_relu_doctor.diagnose.layers import LayerSeries, layer_series
from keras_relu_doctor.diagnose.loss import (
    PLATEAU_CHANGE,
    SPIKE_RISE,
    chance_loss,
    loss_at_chance,
    loss_curve,
    loss_spikes,
)
from keras_relu_doctor.diagnose.saturation import SATURATED_SHARE, saturation
from keras_relu_doctor.errors import BadOption
from keras_relu_doctor.events.series import Run, ScalarSeries

__all__ = [
    "Diagnosis",
    "Finding",
    "KINDS",
    "LayerSeries",
    "Thresholds",
    "UnitDeaths",
    "VERDICTS",
    "diagnose",
]


@dataclass(frozen=True)
class Thresholds:
    """Every rule's threshold; the defaults are explained where each rule defines them."""

    dead_threshold: float = DEAD_LAYER_FRACTION
    grad_floor: float = GRAD_NORM_FLOOR
    grad_ceiling: float = GRAD_NORM_CEILING
    span_orders: float = LAYER_SPAN_ORDERS
    saturated_share: float = SATURATED_SHARE
    plateau_change: float = PLATEAU_CHANGE
    spike_rise: float = SPIKE_RISE

    @classmethod
    def from_options(cls, **options: float) -> Thresholds:
        """Thresholds from keyword options, with a ``BadOption`` for a wrong name or value.

        >>> Thresholds.from_options(dead_threshold=2)
        Traceback (most recent call last):
        ...
        keras_relu_doctor.errors.BadOption: dead_threshold must be a number in (0, 1], got 2
        """
        names = {field.name for field in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise BadOption(f"unknown threshold(s) {', '.join(unknown)}: use {', '.join(sorted(names))}")
        for name, value in options.items():
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise BadOption(f"{name} must be a positive number, got {value!r}")
        for name in ("dead_threshold", "saturated_share"):
            if options.get(name, 0.5) > 1:
                raise BadOption(f"{name} must be a number in (0, 1], got {options[name]!r}")
        return cls(**options)


@dataclass(frozen=True)
class Diagnosis:
    """All findings for one run, its verdict and the series they were read from."""

    layers: tuple[LayerSeries, ...]
    deaths: dict[str, UnitDeaths]
    findings: tuple[Finding, ...]
    verdict: str
    problems: tuple[str, ...]
    loss_tag: str | None


def _loss(run: Run) -> tuple[str, ScalarSeries] | tuple[None, None]:
    """The loss curve on the same step axis as the callback's records, when there is one."""
    candidates = (tags.KERAS_EPOCH_LOSS, tags.PROBE_LOSS, tags.KERAS_BATCH_LOSS)
    if run.step_unit == tags.STEP_BATCH:
        candidates = (tags.PROBE_LOSS, tags.KERAS_BATCH_LOSS, tags.KERAS_EPOCH_LOSS)
    others = sorted(
        (tag for tag in run.scalars if _is_training_loss(tag)), key=lambda tag: ("train" not in tag.lower(), tag)
    )
    for tag in (*candidates, *others):
        if tag in run.scalars:
            series = run.scalars[tag]
            if tag == tags.KERAS_EPOCH_LOSS and run.step_unit == tags.STEP_EPOCH and (run.schema or 1) >= (
                tags.FIRST_SCHEMA_WITH_BASELINE
            ):
                # Keras logs epoch index e at step e; our records of it come after e + 1 epochs.
                series = ScalarSeries(steps=series.steps + 1, values=series.values)
            return tag, series
    return None, None


def _is_training_loss(tag: str) -> bool:
    """Another writer's training loss: ``loss``, ``Loss/train``, ``train/loss``; not validation or test."""
    words = {word for word in re.split(r"[^a-z]+", tag.lower()) if word}
    return "loss" in words and not words & {"val", "valid", "validation", "test", "eval", "evaluation"}


def verdict_of(findings: tuple[Finding, ...], has_data: bool) -> str:
    """The most serious kind among the problems, ``healthy`` without one, ``no_data`` without series."""
    if not has_data:
        return NO_DATA
    kinds = {finding.kind for finding in findings if finding.problem}
    return next((kind for kind in VERDICT_KINDS if kind in kinds), HEALTHY)


def _heads(run: Run, layers: tuple[LayerSeries, ...]) -> set[str]:
    """The output heads: from the model facts, else the last layer (other writers' logs)."""
    facts = run.model_facts or {}
    heads = {str(head.get("layer")) for head in facts.get("outputs", ()) if isinstance(head, dict)}
    return heads or ({layers[-1].name} if layers else set())


def _chance(run: Run) -> float | None:
    """The constant predictor's loss for the compiled loss and the (single) head, when known."""
    facts = run.model_facts or {}
    losses = [loss for loss in facts.get("loss", ()) if isinstance(loss, dict)]
    heads = [head for head in facts.get("outputs", ()) if isinstance(head, dict)]
    if len(losses) != 1 or len(heads) != 1:
        return None
    units = heads[0].get("units")
    return chance_loss(str(losses[0].get("name", "")), str(heads[0].get("activation", "")),
                       int(units) if isinstance(units, int) else None)  # fmt: skip


def diagnose(run: Run, thresholds: Thresholds = Thresholds()) -> Diagnosis:
    """Run every rule on ``run``, and fit each finding's fixes to the model facts."""
    layers = layer_series(run)
    loss_tag, loss = _loss(run)
    spikes = loss_spikes(loss, rise=thresholds.spike_rise) if loss is not None else ()
    deaths = {layer.name: unit_deaths(layer.units) for layer in layers if layer.units is not None}
    facts = run.model_facts or {}
    inheritance = inherited_deaths(tags.facts_layers(facts), {name: run.units[name] for name in deaths})
    at_chance = loss_at_chance(loss, _chance(run), tag=loss_tag or "")
    stuck = at_chance is not None
    heads = _heads(run, layers)
    findings: list[Finding] = []
    for index, layer in enumerate(layers):
        found = dying_units(
            layer,
            threshold=thresholds.dead_threshold,
            spike_steps=spikes,
            first_layer=index == 0,
            inherited=inheritance.inherited.get(layer.name, ()),
            consequences=inheritance.consequences.get(layer.name),
        )
        if found:
            findings.append(found)
        found = saturation(layer, share=thresholds.saturated_share, head=layer.name in heads and not stuck)
        if found:
            findings.append(found)
    dying = [finding for finding in findings if finding.kind == DYING_RELU and finding.problem]
    findings.extend(_gradient_findings(layers, dying, deaths, thresholds))
    deaths_at_spikes = any(finding.evidence.get("deaths_at_loss_spikes") for finding in dying)
    if at_chance is not None:
        findings.append(at_chance)
    findings.extend(
        loss_curve(
            loss,
            tag=loss_tag or "",
            plateau_change=thresholds.plateau_change,
            spike_rise=thresholds.spike_rise,
            deaths_at_spikes=deaths_at_spikes,
        )
    )
    context = ModelContext.from_facts(facts)
    findings = [_fit_fixes(finding, context) for finding in findings]
    has_data = bool(layers)
    verdict = verdict_of(tuple(findings), has_data)
    problems = tuple(kind for kind in KINDS if any(f.kind == kind and f.problem for f in findings))
    return Diagnosis(layers, deaths, tuple(findings), verdict, problems, loss_tag)


# Findings whose fixes put the learning rate first when the optimizer's is high.
_LEARNING_RATE_KINDS = (EXPLODING_GRADIENTS, LOSS_AT_CHANCE, LOSS_SPIKES, LOSS_OSCILLATION)


def _fit_fixes(finding: Finding, context: ModelContext) -> Finding:
    """The finding's fixes without what the model already has; the learning rate first when it is high
    and the problem came with training (units that died after the first update, explosion, a stuck loss).
    """
    layers = finding.layers
    trained_into_it = finding.kind in _LEARNING_RATE_KINDS or (
        finding.kind == DYING_RELU and finding.evidence.get("died_in_training", False)
    )
    lr_first = context.high_learning_rate and trained_into_it
    fixes = tailor(finding.fixes, layers, context, lr_first=lr_first)
    evidence = dict(finding.evidence)
    if context.learning_rate is not None and lr_first:
        evidence["learning_rate"] = context.learning_rate
    return replace(finding, fixes=fixes, evidence=evidence)


def _gradient_findings(
    layers: tuple[LayerSeries, ...],
    dying: list[Finding],
    deaths: dict[str, UnitDeaths],
    thresholds: Thresholds,
) -> list[Finding]:
    # A fully dead layer passes no gradient back, so it and every layer before
    # it have small gradients for a reason the dying finding already gives.
    dead_names = {finding.layer for finding in dying}
    names = [layer.name for layer in layers]
    fully_dead = [i for i, name in enumerate(names) if name in deaths and deaths[name].dead_fraction[-1] == 1.0]
    explained = set(dead_names) | (set(names[: fully_dead[-1] + 1]) if fully_dead else set())
    found = [
        exploding_gradients(layers, ceiling=thresholds.grad_ceiling, span_orders=thresholds.span_orders),
        vanishing_gradients(
            layers, floor=thresholds.grad_floor, span_orders=thresholds.span_orders, explained=frozenset(explained)
        ),
    ]
    return [finding for finding in found if finding is not None]
