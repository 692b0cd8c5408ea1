"""Runs side by side: a run that dies next to the setting that fixes it, in a few lines.

>>> from keras_relu_doctor.report import Report, RunReport
>>> runs = (RunReport("a", "dying_relu", ("dying_relu",), (), (), "zero", "epoch", None, False),
...         RunReport("b", "healthy", (), (), (), "ok", "epoch", None, False))
>>> print(render_comparison(Report("logs", runs), ["a", "b"]))
         a           b
verdict  dying_relu  healthy
<BLANKLINE>
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from keras_relu_doctor.render.common import gradient_span, runs_by_severity
from keras_relu_doctor.render.names import shorten_unique
from keras_relu_doctor.report import Report, RunReport

COMPARED = (
    ("verdict", lambda run: run.verdict),
    ("also", lambda run: ", ".join(kind for kind in run.problems if kind != run.verdict)),
    ("dead units", lambda run: _dead(run)),
    ("first death", lambda run: _first_death(run)),
    ("gradient norms", lambda run: _gradients(run)),
    ("best fix", lambda run: _best_fix(run)),
)
FIX_WORDS = 12  # the best fix is cut to its first words; the report has it whole


def _dead(run: RunReport) -> str:
    counted = [layer for layer in run.layers if layer.units is not None and layer.per_unit]
    if not counted:
        return ""
    dead = sum(len(layer.dead_units) for layer in counted)
    total = sum(layer.units or 0 for layer in counted)
    where = [layer.name for layer in counted if layer.dead_units]
    return f"{dead} of {total}" + (f" ({', '.join(where[:2])}{' ...' if len(where) > 2 else ''})" if where else "")


def _first_death(run: RunReport) -> str:
    steps = [layer.first_dead_step for layer in run.layers if layer.dead_units and layer.first_dead_step is not None]
    return f"step {min(steps)}" if steps else "-"


def _gradients(run: RunReport) -> str:
    span = gradient_span(run)
    return span if not span or run.gradient_status in ("ok", "unknown") else f"{run.gradient_status}: {span}"


def _best_fix(run: RunReport) -> str:
    if not run.problems or not run.fixes:
        return "-"
    words = run.fixes[0].text.split()
    return " ".join(words[:FIX_WORDS]) + (" ..." if len(words) > FIX_WORDS else "")


def render_comparison(report: Report, paths: Sequence[str] | None = None, *, width: int = 80) -> str:
    """The runs at ``paths`` (all runs, problems first, when None) as columns, one row per aspect.

    Rows that are unknown (``-``) for every run are left out; a ``/train`` ending all runs share is not repeated.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    runs = [report.run(path) for path in paths] if paths else runs_by_severity(report.runs)
    console = Console(file=io.StringIO(), width=width, color_system=None, no_color=True, highlight=False, force_jupyter=False)
    rows = [(label, [cell(run) or "-" for run in runs]) for label, cell in COMPARED]
    rows = [(label, cells) for label, cells in rows if any(value != "-" for value in cells)]
    label_width = max((len(label) for label, _ in rows), default=0)
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, show_edge=False)
    table.add_column("", no_wrap=True, min_width=label_width)
    suffix = "/train" if all(run.run.endswith("/train") for run in runs) else ""
    names = [run.run[: len(run.run) - len(suffix)] for run in runs]
    column = max(12, (width - label_width - 2 * (len(runs) + 1)) // max(1, len(runs)))  # 2: the padding after each
    short = shorten_unique(names, column)  # cut in the middle: seeds and suffixes stay visible
    for name in names:
        table.add_column(Text(short[name]), min_width=len(short[name]), max_width=column)  # names are not markup
    for label, cells in rows:
        table.add_row(label, *(Text(value) for value in cells))  # names are not markup
    console.print(table)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"
