"""The terminal report: a per-run, per-layer table and the findings with fixes.

Laid out by ``rich`` to fit ``width`` columns (80 by default); colour only
when asked for (the CLI asks when stdout is a terminal).
"""

from __future__ import annotations

import io

from keras_relu_doctor.render.common import (
    LAYER_COLUMNS,
    finding_place,
    fix_scope,
    layer_row,
    measurement_notes,
    run_heading,
    unit_list,
)
from keras_relu_doctor.report import Report

VERDICT_STYLES = {"healthy": "bold green", "no_data": "dim"}
FIXES_SHOWN = 4  # the terminal shows the run's best four; json/markdown/html show all
SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render_text(report: Report, *, color: bool = False, width: int = 80) -> str:
    """The report as plain (or, with ``color``, ANSI-coloured) text.

    >>> from keras_relu_doctor.report import Report
    >>> render_text(Report(logdir="runs", runs=())).splitlines()[0]
    'relu-doctor report of runs: 0 run(s)'
    """
    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    console = Console(
        file=io.StringIO(),
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        emoji=False,
        # Inside Jupyter rich would draw to the notebook and leave the string empty.
        force_jupyter=False,
    )
    console.print(Text(f"relu-doctor report of {report.logdir}: {len(report.runs)} run(s)", style="bold"))
    for run in report.runs:
        console.print()
        console.print(Text(run_heading(run), style=VERDICT_STYLES.get(run.verdict, "bold red")))
        for note in measurement_notes(run):
            console.print(Text(f"  {note}", style="dim"))
        for warning in run.warnings:
            console.print(Text(f"  warning: {warning}", style="yellow"))
        if run.layers:
            table = Table(*LAYER_COLUMNS, box=None, padding=(0, 1), pad_edge=False)
            for layer in run.layers:
                table.add_row(*(Text(cell) for cell in layer_row(layer)))  # names are not markup
            console.print(table)
        for finding in run.findings:
            header = Text(f"- {finding.severity} {finding.kind}{finding_place(finding)}: ", style=SEVERITY_STYLES[finding.severity])
            header.append(finding.summary, style="")
            console.print(header)
            details = []
            if finding.units:
                details.append(f"dead units: {unit_list(finding.units)}")
            if "per_unit_detail" in finding.evidence:
                details.append(f"per-unit detail {finding.evidence['per_unit_detail']}")
            for detail in details:
                console.print(Padding(Text(detail), (0, 0, 0, 2)))
        if run.fixes:
            console.print(Text("fixes, best first:", style="bold"))
            for rank, fix in enumerate(run.fixes[:FIXES_SHOWN], start=1):
                console.print(Padding(Text(f"{rank}. {fix.text} {fix_scope(fix)}"), (0, 0, 0, 2)))
            if len(run.fixes) > FIXES_SHOWN:
                console.print(Padding(Text(f"and {len(run.fixes) - FIXES_SHOWN} more: --format markdown or html lists all"), (0, 0, 0, 2)))
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"
