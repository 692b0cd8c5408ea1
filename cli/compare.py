"""``relu-doctor compare LOGDIR RUN RUN...``: runs side by side, in a few lines.

Made for a run that dies next to the setting that fixes it (``make demo`` ends
with one). No TensorFlow.
"""

from __future__ import annotations

import sys

import click

EXIT_BAD_INPUT = 2


@click.command("compare")
@click.argument("logdir", type=click.Path(path_type=str))
@click.argument("runs", nargs=-1, required=True)
def compare(logdir: str, runs: tuple[str, ...]) -> None:
    """Show RUNS (paths under LOGDIR, e.g. relu-negative-d3-s0/train; '/train' may be left out) side by side:
    verdict, dead units, first death, gradient norms and the best fix.

    Example: relu-doctor compare demo_logs relu-negative-d3-s0 leaky_relu-negative-d3-s0
    """
    from keras_relu_doctor.errors import ReluDoctorError
    from keras_relu_doctor.render.common import PrintableStream
    from keras_relu_doctor.render.compare import render_comparison

    from keras_relu_doctor.cli.report import text_width

    try:
        report = _read(logdir, runs)
    except ReluDoctorError as error:
        click.echo(f"relu-doctor compare: error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    paths = [run.run for run in report.runs]  # in the order asked
    PrintableStream(click.get_text_stream("stdout")).write(render_comparison(report, paths, width=text_width(None)))


def _read(logdir: str, wanted: tuple[str, ...]):  # -> Report
    """The report of just the runs asked for, in the order asked; a run not found is a one-line error."""
    from glob import escape

    from keras_relu_doctor.errors import BadOption
    from keras_relu_doctor.events.logdir import RUNS_LISTED, find_runs
    from keras_relu_doctor.report import Report, build_report

    known = [path for path, _ in find_runs(logdir)]
    found = []
    for name in wanted:
        name = name.strip("/")
        path = next((path for path in (name, f"{name}/train") if path in known), None)
        if path is None:
            shown = ", ".join(known[:RUNS_LISTED]) + (f" and {len(known) - RUNS_LISTED} more" if len(known) > RUNS_LISTED else "")
            raise BadOption(f"no run {name!r} (nor {name + '/train'!r}) under {logdir!r}; runs: {shown}")
        found.append(build_report(logdir, run_glob=escape(path)).runs[0])
    return Report(logdir=logdir, runs=tuple(found))
