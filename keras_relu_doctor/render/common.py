"""Small formatting helpers shared by the renderers (layout only, no new numbers)."""

from __future__ import annotations

import re
from typing import Callable, TextIO

from keras_relu_doctor.diagnose.findings import Finding
from keras_relu_doctor.report import LayerSummary, RunFix, RunReport


def fraction(value: float | None) -> str:
    """``0.25`` as ``25%``; ``-`` when unknown.

    >>> fraction(0.25), fraction(None)
    ('25%', '-')
    """
    return "-" if value is None else f"{value:.0%}"


def number(value: float | None) -> str:
    """A gradient norm in 3 significant digits.

    >>> number(0.000123456), number(None)
    ('0.000123', '-')
    """
    return "-" if value is None else f"{value:.3g}"


def unit_list(units: tuple[int, ...], limit: int = 12) -> str:
    """Unit indices, shortened past ``limit``.

    >>> unit_list((0, 1, 2), limit=2)
    '0, 1, ... (3)'
    """
    if not units:
        return "-"
    shown = ", ".join(str(unit) for unit in units[:limit])
    return shown + (f", ... ({len(units)})" if len(units) > limit else "")


def dead_cell(layer: LayerSummary) -> str:
    """Dead units as ``count (share)``, ``0`` when none (saying how many came back, if any), or the
    histogram estimate marked ``~``.

    >>> from keras_relu_doctor.report import LayerSummary
    >>> dead_cell(LayerSummary("out", "relu", 1, True, (), (), (0,), 0.0, 0.0, 1.0, 0, 0.9, "ok"))
    '0 (1 revived)'
    """
    if not layer.per_unit:
        return f"~{fraction(layer.dead_fraction)}" if layer.dead_fraction is not None else "-"
    if layer.dead_units:
        return f"{len(layer.dead_units)} ({fraction(layer.dead_fraction)})"
    return f"0 ({len(layer.revived_units)} revived)" if layer.revived_units else "0"


def layer_row(layer: LayerSummary) -> tuple[str, ...]:
    """The cells of one row of the per-layer table (``LAYER_COLUMNS``)."""
    return (
        layer.name,
        str(layer.units) if layer.units is not None else "-",
        dead_cell(layer),
        str(len(layer.near_dead_units)) if layer.per_unit else "-",
        "-" if layer.first_dead_step is None else f"step {layer.first_dead_step}",
        gradient_cell(layer),
    )


def gradient_cell(layer: LayerSummary) -> str:
    """The last gradient norm, with its status where it is not ``ok``: of the layer's weights, or, for a
    layer without weights (an activation, a pooling), of its output, marked ``out``; ``-`` when not logged.

    >>> from keras_relu_doctor.report import LayerSummary
    >>> layer = LayerSummary("relu", "relu", 8, True, (), (), (), 0.0, 0.0, 0.0, None, None, "no_weights", last_output_grad_norm=0.012)
    >>> gradient_cell(layer)
    'out 0.012'
    """
    if layer.grad_status in ("nan", "zero"):
        return layer.grad_status
    if layer.grad_status == "no_weights":
        return "-" if layer.last_output_grad_norm is None else f"out {number(layer.last_output_grad_norm)}"
    if layer.last_grad_norm is None:
        return "-"
    shown = number(layer.last_grad_norm)
    return shown if layer.grad_status == "ok" else f"{layer.grad_status} {shown}"


GRADIENT_LEGEND = (
    "dead: at the last step, deaths carried from a layer upstream included (a finding counts the layer's own);"
    " gradient norm: of the weights' gradient at the last step; out: of the output's (no weights)"
)
PROBLEM_GRADIENTS = ("zero", "vanishing", "exploding", "nan")


def finding_layers(run: RunReport, *, problems_only: bool = False) -> set[str]:
    """Every layer a finding of ``run`` names (only problems, not ``info`` findings, with ``problems_only``)."""
    named = set()
    for finding in run.findings:
        if problems_only and not finding.problem:
            continue
        named.update(finding.layers)
        if finding.layer:
            named.add(finding.layer)  # a run-wide gradient finding's input-most layer, also when its evidence lists others
    return named


def noteworthy(layer: LayerSummary, named: set[str] = frozenset()) -> bool:
    """Whether a layer has something to say: named by a finding, with dead, near-dead or revived units,
    a dead share estimated above 0, or a gradient that is zero, vanishing, exploding or NaN.

    >>> from keras_relu_doctor.report import LayerSummary
    >>> noteworthy(LayerSummary("d", "relu", 8, True, (), (), (), 0.0, 0.0, 0.0, None, 0.3, "ok"))
    False
    """
    return (
        layer.name in named
        or bool(layer.dead_units or layer.near_dead_units or layer.revived_units)
        or (not layer.per_unit and bool(layer.dead_fraction))
        or layer.grad_status in PROBLEM_GRADIENTS
    )


def layers_line(run: RunReport) -> str:
    """One line on all of a run's layers: how many, dead units, the range of weight-gradient norms.

    >>> from keras_relu_doctor.report import LayerSummary
    >>> layer = LayerSummary("d", "relu", 8, True, (1,), (), (), 0.125, 0.0, 0.0, 2, 0.3, "ok")
    >>> layers_line(RunReport("train", "healthy", (), (), (layer,), "ok", "epoch", None, False))
    '1 layer measured: 1 dead unit in 1 layer (d); weight gradient norm 0.3'
    """
    count = len(run.layers)
    parts = [f"{count} layer{'s' * (count != 1)} measured"]
    dead = [layer for layer in run.layers if layer.dead_units]
    units = sum(len(layer.dead_units) for layer in dead)
    where = f" ({', '.join(layer.name.rpartition('/')[2] for layer in dead[:3])}{f' and {len(dead) - 3} more' if len(dead) > 3 else ''})"
    parts.append(f"{units} dead unit{'s' * (units != 1)} in {len(dead)} layer{'s' * (len(dead) != 1)}{where}" if dead else "no dead unit")
    span = gradient_span(run)
    if span:
        parts[-1] += f"; weight gradient norm{'s' * (' to ' in span)} {span}"
    return ": ".join(parts)


def gradient_span(run: RunReport) -> str:
    """The range of the last weight-gradient norms over the run's layers (``0.1 to 3``); ``""`` when none was logged.

    >>> from keras_relu_doctor.report import LayerSummary
    >>> layers = tuple(LayerSummary(n, "relu", 8, True, (), (), (), 0.0, 0.0, 0.0, None, g, "ok") for n, g in (("a", 0.1), ("b", 3.0)))
    >>> gradient_span(RunReport("train", "healthy", (), (), layers, "ok", "epoch", None, False))
    '0.1 to 3'
    """
    norms = [layer.last_grad_norm for layer in run.layers if layer.last_grad_norm is not None and layer.grad_status != "no_weights"]
    if not norms:
        return ""
    low, high = min(norms), max(norms)
    return number(low) if low == high else f"{number(low)} to {number(high)}"


STEP_WORDS = {"epoch": "epochs done", "batch": "batches done"}
LAYER_COLUMNS = ("layer", "units", "dead", "near-dead", "first dead", "gradient norm")


def run_heading(run: RunReport) -> str:
    """One line naming the run, its verdict and its problems."""
    problems = f" (problems: {', '.join(run.problems)})" if run.problems else ""
    unit = f", steps are {STEP_WORDS.get(run.step_unit, run.step_unit)}" if run.step_unit else ""
    return f"run {run.run}: {run.verdict}{problems}{unit}"


MODE_NOTES = {
    "training": "measured as trained: normalisation on batch statistics, Dropout off",
    "inference": "measured as deployed: normalisation on moving statistics (probe_mode='inference')",
}


def measurement_notes(run: RunReport) -> list[str]:
    """How the run was measured and what was not: one line each, for every renderer.

    >>> measurement_notes(RunReport("train", "healthy", (), (), (), "ok", "epoch", None, False, probe_mode="training"))
    ['measured as trained: normalisation on batch statistics, Dropout off']
    """
    notes = [MODE_NOTES[run.probe_mode]] if run.probe_mode in MODE_NOTES else []
    notes += [f"not measured: {item.layer} ({item.layer_class}): {item.reason}" for item in run.not_measured]
    if run.skipped_layers:
        notes.append(f"{run.skipped_layers} layer(s) only reshape, route, merge or drop values: not measured")
    if run.gradients_note:
        notes.append(f"gradients {run.gradients_note}")
    if run.source and run.source != "ReluDoctor":
        notes.append(f"logs written by {run.source}")
    notes += [f"lacks {lack}" for lack in run.lacks]
    if run.unread_tags:
        notes.append(f"tags not understood: {', '.join(run.unread_tags)}")
    return notes


def fix_scope(fix: RunFix, limit: int = 4) -> str:
    """``(a, b: dying_relu)``: the layers and kinds of finding a fix answers.

    >>> fix_scope(RunFix("x", ("a", "b"), ("dying_relu",))), fix_scope(RunFix("x", (), ("loss_plateau",)))
    ('(a, b: dying_relu)', '(loss_plateau)')
    """
    layers = ", ".join(fix.layers[:limit]) + (f" and {len(fix.layers) - limit} more" if len(fix.layers) > limit else "")
    where = f"{layers}: " if layers else ""
    return f"({where}{', '.join(fix.kinds)})"


def finding_place(finding: Finding, quote: Callable[[str], str] = str) -> str:
    """`` <layer> from step <n>``, each part only when known; ``quote`` marks up the layer.

    >>> finding_place(Finding("dying_relu", "dense", "error", 3))
    ' dense from step 3'
    """
    where = f" {quote(finding.layer)}" if finding.layer else ""
    onset = f" from step {finding.onset_step}" if finding.onset_step is not None else ""
    return where + onset


_SURROGATES = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    r"""``text`` with the lone surrogates Python uses for undecodable bytes in names replaced by U+FFFD.

    >>> printable("run_\udcff/train")
    'run_\ufffd/train'
    """
    return _SURROGATES.sub("\ufffd", text)


class PrintableStream:
    r"""A text stream that writes every string through :func:`printable`.

    >>> import io
    >>> buffer = io.StringIO(); _ = PrintableStream(buffer).write("a\udcffb"); buffer.getvalue()
    'a\ufffdb'
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(printable(text))


def severity_rank(run: RunReport) -> int:
    """0 for a run with an error finding, 1 a warning, 2 healthy, 3 no data: the order runs are shown in.

    >>> severity_rank(RunReport("train", "healthy", (), (), (), "ok", "epoch", None, False))
    2
    """
    if run.verdict == "no_data":
        return 3
    severities = {finding.severity for finding in run.findings if finding.problem}
    return 0 if "error" in severities else 1 if severities or run.problems else 2


def runs_by_severity(runs: tuple[RunReport, ...]) -> list[RunReport]:
    """``runs`` with problems first (errors, then warnings), then healthy runs, then those without data;
    in path order within each."""
    return sorted(runs, key=lambda run: (severity_rank(run), run.run))
