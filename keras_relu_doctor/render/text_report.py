"""The terminal report: per run, the verdict and root causes first, each fix once, then the layers
with something to say.

Laid out by ``rich`` to fit ``width`` columns (80 by default; the CLI passes
the terminal's); colour only when asked for (the CLI asks when stdout is a
terminal). Runs with problems come first. Nested models' prefixes are printed
once above their layers, and names too long for the column are cut in the
middle, staying unique. ``all_layers`` lists every layer instead of the
noteworthy ones (``common.noteworthy``).
"""

from __future__ import annotations

import io
import os
from typing import Any

from keras_relu_doctor.render.common import (
    GRADIENT_LEGEND,
    PROBLEM_GRADIENTS,
    LAYER_COLUMNS,
    MODE_NOTES,
    finding_layers,
    fraction,
    finding_place,
    fix_scope,
    layer_row,
    layers_line,
    measurement_notes,
    noteworthy,
    gradient_span,
    STEP_WORDS,
    runs_by_severity,
    unit_list,
)
from keras_relu_doctor.diagnose.findings import Finding
from keras_relu_doctor.render.names import grouped, shorten_middle, shorten_unique
from keras_relu_doctor.report import LayerSummary, Report, RunReport

VERDICT_STYLES = {"healthy": "bold green", "no_data": "dim"}
FIXES_SHOWN = 4  # the terminal shows the run's best four; json/markdown/html show all
TABLE_ROWS = 20  # layer rows shown by default; --all-layers shows all
INFO_ONE_BY_ONE = 3  # info findings of one kind said one by one; past this, in one line
NOTES_SHOWN = 4  # measurement notes per run; the rest counted
NO_DATA_NAMED = 4  # runs without data named on their one line; the rest counted
SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}
NAME_WIDTH_MIN = 16  # the layer column never gets narrower than this
INDENT = "  "


def render_text(report: Report, *, color: bool = False, width: int = 80, all_layers: bool = False) -> str:
    """The report as plain (or, with ``color``, ANSI-coloured) text, ``width`` columns wide.

    >>> from keras_relu_doctor.report import Report
    >>> render_text(Report(logdir="runs", runs=())).splitlines()[0]
    'relu-doctor report of runs: 0 runs'
    """
    from rich.console import Console
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
    console.print(Text(_title(report), style="bold"))
    with_data = [run for run in runs_by_severity(report.runs) if run.verdict != "no_data"]
    quiet = [run for run in with_data if _quiet(run, all_layers)]
    for run in with_data:
        if run not in quiet:
            console.print()
            _print_run(console, run, report.logdir, all_layers)
    _print_quiet(console, quiet, report.logdir)
    _print_no_data(console, [run for run in report.runs if run.verdict == "no_data"], report.logdir, bool(with_data))
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"


def _title(report: Report) -> str:
    count = len(report.runs)
    title = f"relu-doctor report of {report.logdir}: {count} run{'s' * (count != 1)}"
    if count > 1:
        problems = sum(1 for run in report.runs if run.problems)
        healthy = sum(1 for run in report.runs if run.verdict == "healthy")
        parts = [f"{problems} with problems", f"{healthy} healthy"]
        if count - problems - healthy:
            parts.append(f"{count - problems - healthy} without data")
        title += f" ({', '.join(parts)})"
    return title


def _print_quiet(console: Any, runs: list[RunReport], logdir: str) -> None:
    """Healthy runs with nothing to add: one table row each."""
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    if not runs:
        return
    console.print()
    count = len(runs)
    console.print(Text(f"{count} healthy run{'s' * (count != 1)} with nothing to add (no dead unit, gradients ok):", style="green"))
    table = Table("run", "layers", "weight gradient norms", box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    spans = [gradient_span(run) or "-" for run in runs]
    room = console.width - 2 - len("layers ") - max(len("weight gradient norms"), *map(len, spans)) - 1
    short = shorten_unique((run_name(run, logdir) for run in runs), max(NAME_WIDTH_MIN, room))  # cut in the middle
    names = {run.run: short[run_name(run, logdir)] for run in runs}
    for run in runs:
        table.add_row(Text(names[run.run]), str(len(run.layers)), gradient_span(run) or "-")
    console.print(Padding(table, (0, 0, 0, 2)))


def _quiet(run: RunReport, all_layers: bool) -> bool:
    """A healthy run with nothing to add: said in one line."""
    if run.verdict != "healthy" or run.findings or run.warnings or all_layers:
        return False
    named = finding_layers(run)
    notes = measurement_notes(run)
    return not any(noteworthy(layer, named) for layer in run.layers) and notes == [MODE_NOTES["training"]][: len(notes)]


def run_name(run: RunReport, logdir: str) -> str:
    """The run's path, or the logdir's own name when the logdir is the run.

    >>> from keras_relu_doctor.report import RunReport
    >>> run_name(RunReport(".", "no_data", (), (), (), "unknown", None, None, False), "logs/run1/validation/")
    'validation'
    """
    return os.path.basename(os.path.normpath(logdir)) or run.run if run.run == "." else run.run


def _print_run(console: Any, run: RunReport, logdir: str, all_layers: bool) -> None:
    from rich.padding import Padding
    from rich.text import Text

    also = [kind for kind in run.problems if kind != run.verdict]
    heading = f"run {run_name(run, logdir)}: {run.verdict}" + (f" (also {', '.join(also)})" if also else "")
    console.print(Text(heading, style=VERDICT_STYLES.get(run.verdict, "bold red")))
    notes = measurement_notes(run)
    if run.step_unit:
        notes = [f"steps are {STEP_WORDS.get(run.step_unit, run.step_unit)}; " + (notes[0] if notes else ""), *notes[1:]]
    if run.verdict == "healthy" and not all_layers:
        notes = notes[1:]  # a healthy run: no step is quoted below
    findings = []
    shown, grouped_info = _split_info(run.findings, all_layers)
    for finding in shown:
        line = Text(f"{finding.severity} {finding.kind}{finding_place(finding)}: ", style=SEVERITY_STYLES[finding.severity])
        line.append(finding.summary, style="")
        if finding.units:
            line.append(f" (dead units: {unit_list(finding.units)})")
        findings.append(("-", line))
    for kind, group in grouped_info.items():
        findings.append(("-", _info_group(kind, group)))
    if findings:
        console.print(_hanging(findings, 2))
    if run.verdict == "healthy" and not all_layers:  # info findings at most: said in a few lines
        _print_notes(console, [*notes, *(f"warning: {warning}" for warning in run.warnings)])
        summary = layers_line(run)
        if run.fixes:
            summary += f"; {len(run.fixes)} fix(es): --all-layers, or --format markdown or html"
        console.print(Padding(Text(summary, style="dim"), (0, 0, 0, 2)))
        return
    if run.fixes:
        console.print(Padding(Text("fixes, best first:", style="bold"), (0, 0, 0, 2)))
        fixes = [(f"{rank}.", Text(f"{fix.text} {fix_scope(fix)}")) for rank, fix in enumerate(run.fixes[:FIXES_SHOWN], 1)]
        console.print(_hanging(fixes, 4))
        if len(run.fixes) > FIXES_SHOWN:
            more = f"and {len(run.fixes) - FIXES_SHOWN} more: --format markdown or html lists all"
            console.print(Padding(Text(more, style="dim"), (0, 0, 0, 4)))
    _print_notes(console, [*notes, *(f"warning: {warning}" for warning in run.warnings)])
    if run.layers:
        _print_layers(console, run, all_layers)


def _print_notes(console: Any, notes: list[str]) -> None:
    from rich.padding import Padding
    from rich.text import Text

    if len(notes) > NOTES_SHOWN:
        notes = [*notes[: NOTES_SHOWN - 1], f"and {len(notes) - NOTES_SHOWN + 1} more notes: --format markdown lists all"]
    for note in notes:
        console.print(Padding(Text(note.rstrip("; "), style="yellow" if note.startswith("warning:") else "dim"), (0, 0, 0, 2)))


def _split_info(findings: tuple[Finding, ...], all_layers: bool) -> tuple[list[Finding], dict[str, list[Finding]]]:
    """Findings said one by one, and ``info`` findings of a kind said together when there are more than
    ``INFO_ONE_BY_ONE`` of them (a network where a third of every block's units died reads in one line)."""
    by_kind: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.severity == "info":
            by_kind.setdefault(finding.kind, []).append(finding)
    grouped_kinds = {kind: group for kind, group in by_kind.items() if len(group) > INFO_ONE_BY_ONE and not all_layers}
    return [finding for finding in findings if not (finding.severity == "info" and finding.kind in grouped_kinds)], grouped_kinds


def _info_group(kind: str, group: list[Finding]) -> Any:
    from rich.text import Text

    line = Text(f"info {kind} in {len(group)} layers: ", style=SEVERITY_STYLES["info"])
    shares = [float(finding.evidence["dead_fraction"]) for finding in group if "dead_fraction" in finding.evidence]
    if shares:
        line.append(f"{fraction(min(shares))} to {fraction(max(shares))} of their units dead, capacity lost, not blocked", style="")
    else:
        line.append(group[0].summary, style="")
    names = [finding.layer for finding in group if finding.layer]
    line.append(f" ({', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''})", style="")
    return line


def _hanging(items: list[tuple[str, Any]], indent: int) -> Any:
    """Marked items (``-``, ``1.``) whose wrapped lines start under their text, not under the mark."""
    from rich.padding import Padding
    from rich.table import Table

    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for mark, text in items:
        grid.add_row(mark, text)
    return Padding(grid, (0, 0, 0, indent))


def _print_layers(console: Any, run: RunReport, all_layers: bool) -> None:
    from rich.padding import Padding
    from rich.text import Text

    shown, left_out = (list(run.layers), []) if all_layers else _table_layers(run)
    summary = layers_line(run)
    if len(shown) < len(run.layers):
        summary += f". {'None' if not shown else len(shown)} with something to say"
        summary += " below" if shown else ""
        summary += "; --all-layers lists all"
    console.print(Padding(Text(summary), (0, 0, 0, 2)))
    if shown:
        console.print(Padding(_layer_table(shown, console.width - 2), (0, 0, 0, 2)))
        if left_out:
            shares = [layer.dead_fraction or 0.0 for layer in left_out]
            more = f"and {len(left_out)} more layers with dead or near-dead units (up to {fraction(max(shares))} dead)"
            console.print(Padding(Text(more, style="dim"), (0, 0, 0, 2)))
        console.print(Padding(Text(GRADIENT_LEGEND, style="dim"), (0, 0, 0, 2)))


def _table_layers(run: RunReport) -> tuple[list[LayerSummary], list[LayerSummary]]:
    """The noteworthy layers for the table, and those left out of it past ``TABLE_ROWS``.

    Layers that only carry deaths from a root (a finding lists them as its
    consequences, and none is about them) are left to that finding. Past ``TABLE_ROWS``, layers a
    problem names and layers with a bad gradient stay, then the largest dead
    shares; the table keeps the model's order.
    """
    named = finding_layers(run)
    problem_named = finding_layers(run, problems_only=True)
    own = {finding.layer for finding in run.findings}
    carried = {str(name) for finding in run.findings for name in finding.evidence.get("consequences", {})} - own
    candidates = [
        layer for layer in run.layers
        if noteworthy(layer, named) and (layer.name not in carried or layer.grad_status in PROBLEM_GRADIENTS)
    ]  # fmt: skip
    if len(candidates) <= TABLE_ROWS:
        return candidates, []
    must = [layer for layer in candidates if layer.name in problem_named or layer.grad_status in PROBLEM_GRADIENTS]
    rest = sorted((layer for layer in candidates if layer not in must), key=lambda layer: -(layer.dead_fraction or 0.0))
    kept = {layer.name for layer in must + rest[: max(0, TABLE_ROWS - len(must))]}
    return [layer for layer in candidates if layer.name in kept], [layer for layer in candidates if layer.name not in kept]


def _layer_table(layers: list[LayerSummary], width: int) -> Any:
    """The rows of ``layers`` under their nested prefixes (each said once, on a line of its own), names
    cut in the middle to what the other columns leave, as lines of fixed-width text."""
    from rich.console import Group
    from rich.text import Text

    rows = {layer.name: layer_row(layer) for layer in layers}
    others = [max(len(header), *(len(row[index]) for row in rows.values())) for index, header in enumerate(LAYER_COLUMNS) if index]
    groups = grouped(rows)
    indent = INDENT if any(prefix for prefix, _ in groups) else ""
    longest = max(len(indent) + len(leaf) for _, names in groups for leaf in names)
    name_width = min(longest, max(NAME_WIDTH_MIN, width - sum(others) - len(others)))  # a space between columns
    leaves = shorten_unique((leaf for _, names in groups for leaf in names), name_width - len(indent))
    widths = [name_width, *others]

    def line(cells: list[str]) -> str:
        return " ".join(cell.ljust(size) for cell, size in zip(cells, widths)).rstrip()

    lines = [Text(line(list(LAYER_COLUMNS)), style="bold", no_wrap=True, overflow="ellipsis")]
    full_names = iter(rows)
    for prefix, names in groups:
        if prefix:
            lines.append(Text(shorten_middle(prefix, width), style="dim"))
        for leaf in names:
            cells = rows[next(full_names)]
            row = line([(indent if prefix else "") + leaves[leaf], *cells[1:]])
            lines.append(Text(row, no_wrap=True, overflow="ellipsis"))  # names are not markup
    return Group(*lines)


def _print_no_data(console: Any, runs: list[RunReport], logdir: str, after_others: bool) -> None:
    """Runs without data: one line for them all, with what they lack (Keras' validation runs: loss curves only)."""
    from rich.padding import Padding
    from rich.text import Text

    if not runs:
        return
    if after_others:
        console.print()
    if len(runs) == 1:
        run = runs[0]
        console.print(Text(f"run {run_name(run, logdir)}: no_data", style="dim"))
        for note in measurement_notes(run):
            console.print(Padding(Text(note, style="dim"), (0, 0, 0, 2)))
        return
    names = [run_name(run, logdir) for run in runs]
    listed = ", ".join(names[:NO_DATA_NAMED]) + (f" and {len(names) - NO_DATA_NAMED} more" if len(names) > NO_DATA_NAMED else "")
    reasons = sorted({note for run in runs for note in measurement_notes(run)})
    console.print(Text(f"{len(runs)} runs without layer data: {listed}", style="dim"))
    for reason in reasons[:NOTES_SHOWN]:
        console.print(Padding(Text(reason, style="dim"), (0, 0, 0, 2)))
