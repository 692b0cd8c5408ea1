"""The report as Markdown, for pasting into an issue (and for TensorBoard's Text tab)."""

from __future__ import annotations

from keras_relu_doctor.render.common import (
    LAYER_COLUMNS,
    finding_place,
    fix_scope,
    layer_row,
    measurement_notes,
    run_heading,
    unit_list,
)
from keras_relu_doctor.report import Report, RunReport


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_run_markdown(run: RunReport) -> str:
    """One run: heading, per-layer table, findings, then each fix once with what it applies to."""
    lines = [f"### {_cell(run_heading(run))}", ""]
    notes = measurement_notes(run)
    lines += [f"- {_cell(note)}" for note in notes]
    if notes:
        lines.append("")
    lines += [f"> warning: {warning}" for warning in run.warnings]
    if run.warnings:
        lines.append("")
    if run.layers:
        lines.append("| " + " | ".join(LAYER_COLUMNS) + " |")
        lines.append("|" + "---|" * len(LAYER_COLUMNS))
        lines += ["| " + " | ".join(_cell(cell) for cell in layer_row(layer)) + " |" for layer in run.layers]
        lines.append("")
    for finding in run.findings:
        place = finding_place(finding, lambda layer: f"`{layer}`")
        lines.append(f"- **{finding.kind}**{place} ({finding.severity}): {finding.summary}")
        if finding.units:
            lines.append(f"  - dead units: {unit_list(finding.units, limit=32)}")
    if run.fixes:
        lines += ["", "Fixes, best first:", ""]
        lines += [f"{rank}. {_cell(fix.text)} {_cell(fix_scope(fix))}" for rank, fix in enumerate(run.fixes, start=1)]
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(report: Report) -> str:
    """The whole report as Markdown.

    >>> from keras_relu_doctor.report import Report
    >>> render_markdown(Report(logdir="runs", runs=())).splitlines()[0]
    '## relu-doctor report of `runs`'
    """
    parts = [f"## relu-doctor report of `{report.logdir}`", ""]
    parts += [render_run_markdown(run) for run in report.runs]
    return "\n".join(parts)
