"""``relu-doctor report LOGDIR``: read a logdir, diagnose it, print or write the report.

Everything here is option parsing and error mapping; the work is one call to
``keras_relu_doctor.report.build_report`` and one renderer. No TensorFlow.
"""

from __future__ import annotations

import os
import sys

import click

FORMATS = ("text", "json", "markdown", "html")
EXIT_PROBLEMS = 1
EXIT_BAD_INPUT = 2


def _fail_on_kinds(value: str | None) -> frozenset[str]:
    from keras_relu_doctor.diagnose.findings import KINDS
    from keras_relu_doctor.errors import BadOption

    if not value:
        return frozenset()
    kinds = {kind.strip() for kind in value.split(",") if kind.strip()}
    if "any" in kinds:
        return frozenset(KINDS)
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise BadOption(f"--fail-on: unknown kind(s) {', '.join(unknown)}; choose from any, {', '.join(KINDS)}")
    return frozenset(kinds)


@click.command("report")
@click.argument("logdir", type=click.Path(path_type=str))
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Report format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=str),
              help="Write the report to FILE instead of stdout.")
@click.option("--dead-threshold", type=float, default=0.5, show_default=True,
              help="Share of dead units that flags a layer (0 < X <= 1).")
@click.option("--fail-on", metavar="KINDS",
              help="Comma-separated problem kinds (or 'any') that make the exit code 1, for CI.")
@click.option("--run", "run_glob", metavar="GLOB", help="Only runs whose path matches GLOB, e.g. '*/train'.")
@click.option("--write-tensorboard", is_flag=True,
              help="Also write the report into each run as a text summary (TensorBoard's Text tab).")
def report(
    logdir: str,
    output_format: str,
    output: str | None,
    dead_threshold: float,
    fail_on: str | None,
    run_glob: str | None,
    write_tensorboard: bool,
) -> None:
    """Diagnose the runs under LOGDIR: dead units, gradients, saturation, loss.

    Exit codes: 0 done; 1 a --fail-on kind was found; 2 bad input.
    """
    from keras_relu_doctor.errors import ReluDoctorError

    try:
        kinds = _fail_on_kinds(fail_on)
        found = _report(logdir, output_format, output, dead_threshold, run_glob, write_tensorboard)
    except ReluDoctorError as error:
        click.echo(f"relu-doctor report: error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if kinds & found:
        click.echo(f"relu-doctor report: found {', '.join(sorted(kinds & found))}", err=True)
        sys.exit(EXIT_PROBLEMS)


def _report(
    logdir: str,
    output_format: str,
    output: str | None,
    dead_threshold: float,
    run_glob: str | None,
    write_tensorboard: bool,
) -> set[str]:
    from keras_relu_doctor.errors import BadOption
    from keras_relu_doctor.render import RENDERERS, write_json, write_tensorboard_text
    from keras_relu_doctor.report import build_report

    result = build_report(logdir, dead_threshold=dead_threshold, run_glob=run_glob)
    color = output is None and output_format == "text" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    try:
        stream = open(output, "w", encoding="utf-8") if output is not None else click.get_text_stream("stdout")
    except OSError as error:
        raise BadOption(f"--output {output!r}: cannot write ({error.strerror}); choose a writable path") from None
    try:
        if output_format == "json":
            write_json(result, stream)  # streamed: a report of many runs stays small in memory
        else:
            options = {"color": color} if output_format == "text" else {}
            stream.write(RENDERERS[output_format](result, **options))
    finally:
        if output is not None:
            stream.close()
    if write_tensorboard:
        written = write_tensorboard_text(result)
        click.echo(f"wrote the report as a TensorBoard text summary to {len(written)} run(s)", err=True)
    return result.problems()
