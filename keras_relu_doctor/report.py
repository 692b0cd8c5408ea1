"""The library entry point: read a logdir, diagnose each run, return a ``Report``.

>>> report = build_report("runs/experiment")  # doctest: +SKIP
>>> run = report.run("train")  # doctest: +SKIP
>>> run.verdict, run.layer("dense").dead_units, run.layer("dense").first_dead_step  # doctest: +SKIP
('dying_relu', (0, 3), 2)
"""

from __future__ import annotations

import math
import os
from functools import partial
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np

from keras_relu_doctor.diagnose import Diagnosis, Thresholds, diagnose
from keras_relu_doctor.diagnose.dying import estimated_dead_fraction
from keras_relu_doctor.diagnose.findings import EXPLODING_GRADIENTS, VANISHING_GRADIENTS, Finding
from keras_relu_doctor.diagnose.layers import LayerSeries
from keras_relu_doctor.events import Logdir, Run
from keras_relu_doctor.events.logdir import map_runs
from keras_relu_doctor.events.series import ScalarSeries
from keras_relu_doctor.heatmap import LivenessMap, liveness_map
from keras_relu_doctor.tags import QUIET_NOT_MEASURED_REASONS, facts_layers

REPORT_SCHEMA = "keras_relu_doctor.report/1"
GRADIENT_STATUSES = ("ok", "zero", "vanishing", "exploding", "nan", "no_weights", "unknown")


@dataclass(frozen=True)
class LayerSummary:
    """One layer of one run: the last step's state, and the series behind the plots.

    ``dead_fraction`` is at the last step, ``initial_dead_fraction`` at the first.
    Without per-unit records (``per_unit`` False) both are estimated from the
    activation histogram's mass at 0 and the unit lists are empty.
    ``steps``, ``dead_fraction_by_step``, ``grad_norm_by_step`` and
    ``output_grad_norm_by_step`` line up, with None where a value was not
    logged. ``last_grad_norm`` is the norm of the gradient of the layer's
    weights; ``last_output_grad_norm`` that of its output (the one a weightless
    layer, an activation or a pooling, has). ``liveness`` is the units x steps
    heatmap of a layer with per-unit records (which unit died when).
    """

    name: str
    activation: str
    units: int | None
    per_unit: bool
    dead_units: tuple[int, ...]
    near_dead_units: tuple[int, ...]
    revived_units: tuple[int, ...]
    dead_fraction: float | None
    near_dead_fraction: float | None
    initial_dead_fraction: float | None
    first_dead_step: int | None
    last_grad_norm: float | None
    grad_status: str
    steps: tuple[int, ...] = ()
    dead_fraction_by_step: tuple[float | None, ...] = ()
    grad_norm_by_step: tuple[float | None, ...] = ()
    last_output_grad_norm: float | None = None
    output_grad_norm_by_step: tuple[float | None, ...] = ()
    liveness: LivenessMap | None = None


@dataclass(frozen=True)
class RunFix:
    """One recommended change for a run, said once, with the layers and kinds of finding it answers."""

    text: str
    layers: tuple[str, ...]
    kinds: tuple[str, ...]


_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def collect_fixes(findings: tuple[Finding, ...]) -> tuple[RunFix, ...]:
    """Every fix of the run's findings once, best first: problems before ``info`` lines, and within
    them each fix where it first ranks.

    >>> found = (Finding("dying_relu", "a", "warning", 0, fixes=("x", "y")), Finding("saturation", "b", "warning", 0, fixes=("y",)))
    >>> [(fix.text, fix.layers) for fix in collect_fixes(found)]
    [('x', ('a',)), ('y', ('a', 'b'))]
    """
    order = sorted(findings, key=lambda finding: _SEVERITY_ORDER.get(finding.severity, 3))
    collected: dict[str, tuple[list[str], list[str]]] = {}
    for finding in order:
        for fix in finding.fixes:
            known_layers, kinds = collected.setdefault(fix, ([], []))
            known_layers.extend(name for name in finding.layers if name not in known_layers)
            if finding.kind not in kinds:
                kinds.append(finding.kind)
    return tuple(RunFix(text, tuple(layers), tuple(kinds)) for text, (layers, kinds) in collected.items())


@dataclass(frozen=True)
class NotMeasured:
    """A layer the callback could not measure, and why (from the model facts)."""

    layer: str
    layer_class: str
    reason: str


@dataclass(frozen=True)
class RunReport:
    """The diagnosis of one run (one folder of event files).

    ``probe_mode`` says which network the callback measured (``training``:
    normalisation on batch statistics; ``inference``: moving statistics);
    ``not_measured`` lists the layers it could not measure, with the reason;
    ``skipped_layers`` counts those that only reshape, route, merge or drop
    values; ``gradients_note`` says why no gradient was logged, when none was.
    All four come from the model facts and are empty for other writers' logs.
    ``fixes`` lists every finding's fixes once, best first, with the layers each
    applies to. ``source`` says which tool wrote the logs, ``lacks`` what they
    do not hold (and so what could not be checked), ``unread_tags`` the
    histogram tags whose layer or role could not be told.
    """

    run: str
    verdict: str
    problems: tuple[str, ...]
    findings: tuple[Finding, ...]
    layers: tuple[LayerSummary, ...]
    gradient_status: str
    step_unit: str | None
    loss_tag: str | None
    truncated: bool
    truncated_files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    probe_mode: str | None = None
    not_measured: tuple[NotMeasured, ...] = ()
    skipped_layers: int = 0
    gradients_note: str = ""
    fixes: tuple[RunFix, ...] = ()
    source: str = ""
    lacks: tuple[str, ...] = ()
    unread_tags: tuple[str, ...] = ()

    def layer(self, name: str) -> LayerSummary:
        """The summary of layer ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in run {self.run!r}; layers: {[layer.name for layer in self.layers]}")


@dataclass(frozen=True)
class Report:
    """The report over a logdir: one ``RunReport`` per run, in path order."""

    logdir: str
    runs: tuple[RunReport, ...]
    thresholds: dict[str, float] = field(default_factory=dict)
    schema: str = REPORT_SCHEMA

    def run(self, path: str) -> RunReport:
        """The report of the run at ``path`` (relative to the logdir)."""
        for run in self.runs:
            if run.run == path:
                return run
        raise KeyError(f"no run {path!r}; runs: {[run.run for run in self.runs]}")

    def problems(self) -> set[str]:
        """Every problem kind found in any run."""
        return {kind for run in self.runs for kind in run.problems}


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _layer_grad_status(layer: LayerSeries, findings: tuple[Finding, ...]) -> str:
    for finding in findings:
        if finding.problem and layer.name in finding.evidence.get("layers", ()):
            if finding.kind == EXPLODING_GRADIENTS:
                return "nan" if "nan_or_inf" in finding.evidence["reasons"][layer.name] else "exploding"
            if finding.kind == VANISHING_GRADIENTS:
                return "vanishing"
    if layer.weightless:
        return "no_weights"  # an activation or pooling layer: nothing of its own to update
    if layer.grad_norm is None or not len(layer.grad_norm.values):
        return "unknown"
    return "zero" if layer.grad_norm.values[-1] == 0 else "ok"


def _summarize_layer(layer: LayerSeries, diagnosis: Diagnosis, heatmaps: bool = True) -> LayerSummary:
    deaths = diagnosis.deaths.get(layer.name)
    if deaths is not None:
        dead_steps, dead_values = deaths.steps, deaths.dead_fraction
    elif layer.activations is not None:
        dead_steps = layer.activations.steps
        dead_values = np.array([estimated_dead_fraction(v) for v in np.nan_to_num(layer.activations.zero_fraction)])
    else:
        dead_steps, dead_values = np.zeros(0, np.int64), np.zeros(0)
    grad_steps, grad_values = _steps_and_values(layer.grad_norm)
    output_steps, output_values = _steps_and_values(layer.output_grad_norm)
    steps = np.union1d(np.union1d(dead_steps, grad_steps), output_steps)
    by_dead = dict(zip(dead_steps.tolist(), dead_values.tolist()))
    first_dead = None
    if deaths is not None:
        first_dead = deaths.first_dead_step
    elif np.any(dead_values > 0):
        first_dead = int(dead_steps[np.flatnonzero(dead_values > 0)[0]])
    return LayerSummary(
        name=layer.name,
        activation=layer.activation,
        units=layer.units.units if layer.units is not None else None,
        per_unit=deaths is not None,
        dead_units=deaths.dead_units if deaths else (),
        near_dead_units=deaths.near_dead_units if deaths else (),
        revived_units=deaths.revived if deaths else (),
        dead_fraction=float(dead_values[-1]) if len(dead_values) else None,
        near_dead_fraction=float(deaths.near_dead_fraction[-1]) if deaths else None,
        initial_dead_fraction=float(dead_values[0]) if len(dead_values) else None,
        first_dead_step=first_dead,
        last_grad_norm=_finite_or_none(grad_values[-1]) if len(grad_values) else None,
        grad_status=_layer_grad_status(layer, diagnosis.findings),
        steps=tuple(int(step) for step in steps),
        dead_fraction_by_step=tuple(by_dead.get(step) for step in steps.tolist()),
        grad_norm_by_step=_aligned(steps, grad_steps, grad_values),
        last_output_grad_norm=_finite_or_none(output_values[-1]) if len(output_values) else None,
        output_grad_norm_by_step=_aligned(steps, output_steps, output_values),
        liveness=liveness_map(layer.units) if heatmaps and layer.units is not None else None,
    )


def _steps_and_values(series: ScalarSeries | None) -> tuple[np.ndarray, np.ndarray]:
    return (series.steps, series.values) if series is not None else (np.zeros(0, np.int64), np.zeros(0))


def _aligned(steps: np.ndarray, known_steps: np.ndarray, values: np.ndarray) -> tuple[float | None, ...]:
    """``values`` at ``steps``: None where not logged, None for NaN/Inf."""
    by_step = dict(zip(known_steps.tolist(), values.tolist()))
    return tuple(_finite_or_none(by_step[step]) if step in by_step else None for step in steps.tolist())


def _run_gradient_status(layers: tuple[LayerSummary, ...]) -> str:
    """The worst layer status: a healthy output layer must not hide a hidden layer with zero gradients."""
    statuses = {layer.grad_status for layer in layers}
    for status in ("nan", "exploding", "vanishing", "zero", "ok"):
        if status in statuses:
            return status
    return "unknown"


def _measurement(run: Run) -> dict[str, Any]:
    """What the model facts say about how the run was measured (nothing for other writers)."""
    facts = run.model_facts or {}
    layers = list(facts_layers(facts).values())
    unmeasured = [layer for layer in layers if not layer.get("measured", True)]
    probe = facts.get("probe") if isinstance(facts.get("probe"), dict) else {}
    note = str(probe.get("gradients_note") or "") if probe.get("gradients") is False else ""
    return {
        "probe_mode": run.probe_mode,
        "not_measured": tuple(
            NotMeasured(str(layer.get("path", "")), str(layer.get("class", "")), str(layer.get("reason", "")))
            for layer in unmeasured
            if layer.get("reason") not in QUIET_NOT_MEASURED_REASONS
        ),
        "skipped_layers": sum(1 for layer in unmeasured if layer.get("reason") in QUIET_NOT_MEASURED_REASONS),
        "gradients_note": note,
    }


SOURCE_RELU_DOCTOR = "ReluDoctor"
SOURCE_KERAS = "Keras' TensorBoard callback"
SOURCE_LEGACY = "tensorboardX, PyTorch's SummaryWriter or TF1 summaries"
SOURCE_TF2 = "TensorFlow summaries"
UNREAD_SHOWN = 20  # unread tags listed per run; the count says how many more


def _provenance(run: Run, layers: tuple[LayerSeries, ...], loss_tag: str | None) -> dict[str, Any]:
    """Who wrote the run, what it lacks, and which histogram tags were not understood."""
    from keras_relu_doctor.diagnose.other_writers import tag_role
    from keras_relu_doctor.tags import parse_tag

    unread = [tag for tag in run.histograms if parse_tag(tag) is None and tag_role(tag) is None]
    if run.units or run.facts:
        source = SOURCE_RELU_DOCTOR
    elif any(tag.endswith("/histogram") for tag in run.histograms):
        source = SOURCE_KERAS
    elif {"histo", "simple_value"} & set(run.formats):
        source = SOURCE_LEGACY
    else:
        source = SOURCE_TF2 if run.histograms or run.scalars else ""
    lacks = []
    if not layers and run.histograms:
        lacks.append("activation and gradient histograms (only weights): nothing about dead units or gradients can be"
                     " said; add ReluDoctor to the callbacks")  # fmt: skip
    elif layers:
        if not any(layer.units is not None for layer in layers):
            lacks.append("per-unit records: dead shares are estimated from activation histograms and dead units are"
                         " not named; ReluDoctor logs them")  # fmt: skip
        if not any(layer.activations is not None for layer in layers):
            lacks.append("activation histograms: no check for dead or saturated units")
        if not any(layer.grad_norm is not None for layer in layers):
            lacks.append("gradients: no check for vanishing or exploding gradients")
    if not layers and not run.histograms and run.scalars:
        lacks.append("layer measurements: only scalars, such as the loss curves Keras writes to validation/;"
                     " ReluDoctor's are in the train/ folder beside it")  # fmt: skip
    if (layers or run.histograms) and loss_tag is None:
        lacks.append("a loss curve: no check of the loss against chance, plateaus or spikes")
    if len(unread) > UNREAD_SHOWN:
        unread = [*unread[:UNREAD_SHOWN], f"... and {len(unread) - UNREAD_SHOWN} more"]
    return {"source": source, "lacks": tuple(lacks), "unread_tags": tuple(unread)}


def report_run(run: Run, thresholds: Thresholds = Thresholds(), heatmaps: bool = True) -> RunReport:
    """Diagnose one run that has been read; without ``heatmaps``, layers carry no ``liveness`` map."""
    diagnosis = diagnose(run, thresholds)
    layers = tuple(_summarize_layer(layer, diagnosis, heatmaps) for layer in diagnosis.layers)
    return RunReport(
        run=run.path,
        verdict=diagnosis.verdict,
        problems=diagnosis.problems,
        findings=diagnosis.findings,
        layers=layers,
        gradient_status=_run_gradient_status(layers),
        step_unit=run.step_unit,
        loss_tag=diagnosis.loss_tag,
        truncated=bool(run.truncated_files),
        truncated_files=run.truncated_files,
        warnings=run.warnings,
        fixes=collect_fixes(diagnosis.findings),
        **_measurement(run),
        **_provenance(run, diagnosis.layers, diagnosis.loss_tag),
    )


def build_report(
    logdir: str | os.PathLike | Logdir,
    *,
    dead_threshold: float = 0.5,
    run_glob: str | None = None,
    jobs: int | None = None,
    heatmaps: bool = True,
    **thresholds: float,
) -> Report:
    """Read ``logdir`` (a path, or a ``Logdir`` already read) and diagnose every run.

    ``dead_threshold`` is the dead share that flags a layer; ``run_glob`` keeps
    runs whose relative path matches (``"*/train"``); other keyword arguments
    are the rule thresholds of :class:`keras_relu_doctor.diagnose.Thresholds`
    (``grad_floor``, ``grad_ceiling``, ``span_orders``, ``saturated_share``,
    ``plateau_change``, ``spike_rise``). Runs are read (and diagnosed) by
    ``jobs`` worker processes, every core by default; memory holds a run's
    series per worker. ``heatmaps=False`` leaves out each layer's liveness
    map (the text report draws none; for a 50-layer run they are 9 MB).

    Raises a ``ReluDoctorError`` subclass for a missing or empty logdir,
    unreadable files or a bad option.
    """
    options = Thresholds.from_options(dead_threshold=dead_threshold, **thresholds)
    if isinstance(logdir, Logdir):
        from fnmatch import fnmatchcase

        runs = (run for run in logdir.runs if run_glob is None or fnmatchcase(run.path, run_glob))
        reports = tuple(report_run(run, options, heatmaps) for run in runs)
        return Report(logdir=logdir.path, runs=reports, thresholds=asdict(options))
    reports = tuple(map_runs(logdir, run_glob, partial(report_run, thresholds=options, heatmaps=heatmaps), jobs))
    return Report(logdir=os.fspath(logdir), runs=reports, thresholds=asdict(options))


def json_ready(value: Any) -> Any:
    """``value`` with NaN/Inf as None, tuples as lists, keys as strings, numpy values as Python ones,
    and dataclasses as dicts of their fields (as ``asdict``, without its deep copy).
    """
    if isinstance(value, float):
        return _finite_or_none(value)
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: json_ready(getattr(value, item.name)) for item in fields(value)}
    return value


def report_to_dict(report: Report) -> dict[str, Any]:
    """The JSON document of ``report`` (schema ``keras_relu_doctor.report/1``): ``asdict``
    with NaN/Inf turned into null. ``last_grad_norm`` is the layer's last gradient norm.
    """
    document = json_ready(report)
    return {"schema": document.pop("schema"), **document}
