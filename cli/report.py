"""``relu-doctor report LOGDIR``: read a logdir, diagnose it, print or write the report.

Everything here is option parsing and error mapping; the work is one call to
``keras_relu_doctor.report.build_report`` and one renderer. No TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from typing import Any, Callable, TextIO

import click

FORMATS = ("text", "json", "markdown", "html")
EXIT_PROBLEMS = 1
EXIT_BAD_INPUT = 2


def _share(value: float) -> float:
    """--dead-threshold as a share; 50 (a percentage) is refused with the share it meant."""
    from keras_relu_doctor.errors import BadOption

    if not 0 < value <= 1:
        hint = f" (for {value:g}% pass {value / 100:g})" if 1 < value <= 100 else ""
        raise BadOption(f"--dead-threshold must be a share of units in (0, 1], got {value:g}{hint}")
    return value


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
              help="A layer with more than this share of its units dead is a problem (0 < X <= 1).")
@click.option("--fail-on", metavar="KINDS",
              help="Comma-separated problem kinds (or 'any') that make the exit code 1, for CI.")
@click.option("--run", "run_glob", metavar="GLOB", help="Only runs whose path matches GLOB, e.g. '*/train'.")
@click.option("--all-layers", is_flag=True,
              help="Text: list every layer, not only those with something to say.")
@click.option("--write-tensorboard", is_flag=True,
              help="Also write the report into each run as a text summary (TensorBoard's Text tab).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), metavar="N",
              help="Worker processes that read runs side by side, or a large run in pieces"
                   " [default: the cores other work leaves idle].")
@click.option("--watch", is_flag=True,
              help="Follow LOGDIR while training writes it: a line per finding that appears, changes or clears"
                   " (with --fail-on, stop at the first of those kinds). Ctrl-C to stop.")
@click.option("--interval", type=float, default=5.0, show_default=True, metavar="SECONDS",
              help="With --watch: seconds between polls of LOGDIR.")
def report(
    logdir: str,
    output_format: str,
    output: str | None,
    dead_threshold: float,
    fail_on: str | None,
    run_glob: str | None,
    all_layers: bool,
    write_tensorboard: bool,
    jobs: int | None,
    watch: bool,
    interval: float,
) -> None:
    """Diagnose the runs under LOGDIR: dead units, gradients, saturation, loss.

    LOGDIR is a folder or an fsspec URL (s3://bucket/logs, gs://...).
    Exit codes: 0 done; 1 a --fail-on kind was found; 2 bad input.
    """
    from keras_relu_doctor.errors import BadOption, ReluDoctorError

    _quiet_storage_logs()
    try:
        kinds = _fail_on_kinds(fail_on)
        _share(dead_threshold)
        if watch:
            if output is not None or output_format != "text" or write_tensorboard:
                raise BadOption("--watch prints to the terminal: leave out --output, --format and --write-tensorboard")
            sys.exit(_watch(logdir, dead_threshold, run_glob, interval, kinds))
        found = _report(logdir, output_format, output, dead_threshold, run_glob, write_tensorboard, all_layers, jobs)
    except ReluDoctorError as error:
        click.echo(f"relu-doctor report: error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if kinds & found:
        click.echo(f"relu-doctor report: found {', '.join(sorted(kinds & found))}", err=True)
        sys.exit(EXIT_PROBLEMS)


def _quiet_storage_logs() -> None:
    """Object-storage libraries log their retries with tracebacks; the report says what failed in one line."""
    import logging

    for name in ("fsspec", "s3fs", "gcsfs", "adlfs", "aiobotocore", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _watch(logdir: str, dead_threshold: float, run_glob: str | None, interval: float, kinds: frozenset[str]) -> int:
    from keras_relu_doctor.cli.watch import watch
    from keras_relu_doctor.diagnose import Thresholds
    from keras_relu_doctor.errors import BadOption

    if not interval > 0:
        raise BadOption(f"--interval must be a number of seconds above 0, got {interval:g}")
    return watch(
        logdir,
        run_glob=run_glob,
        thresholds=Thresholds.from_options(dead_threshold=dead_threshold),
        interval=interval,
        fail_kinds=kinds,
        stream=click.get_text_stream("stdout"),
        live_view=_stdout_is_tty(),
        width=text_width(None),
    )


def _report(
    logdir: str,
    output_format: str,
    output: str | None,
    dead_threshold: float,
    run_glob: str | None,
    write_tensorboard: bool,
    all_layers: bool = False,
    jobs: int | None = None,
) -> set[str]:
    from keras_relu_doctor.render import RENDERERS, write_json, write_tensorboard_text
    from keras_relu_doctor.render.common import PrintableStream
    from keras_relu_doctor.report import build_report

    # The text and Markdown reports draw no heatmap; --write-tensorboard writes Markdown.
    heatmaps = output_format in ("json", "html")
    result = build_report(logdir, dead_threshold=dead_threshold, run_glob=run_glob, jobs=jobs, heatmaps=heatmaps)
    if write_tensorboard:
        _check_writable(result)  # before anything is written
    color = output is None and output_format == "text" and _stdout_is_tty() and "NO_COLOR" not in os.environ

    def render(stream: TextIO) -> None:
        if output_format == "json":
            write_json(result, stream)  # streamed, names made printable by write_json itself
        else:
            options = {"color": color, "width": text_width(output), "all_layers": all_layers} if output_format == "text" else {}
            PrintableStream(stream).write(RENDERERS[output_format](result, **options))

    if output is None:
        _to_stdout(render)
    else:
        _to_file(output, render)
    if write_tensorboard:
        from keras_relu_doctor.errors import BadOption

        try:
            written = write_tensorboard_text(result)
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise BadOption(f"--write-tensorboard: cannot write into {logdir!r} ({reason}); leave out --write-tensorboard") from None
        click.echo(f"wrote the report as a TensorBoard text summary to {len(written)} run(s)", err=True)
    return result.problems()


WIDTH_WHEN_PIPED = 100  # a file or a pipe has no width; this one keeps a real model's table on one line per layer
WIDTH_MAX = 160  # past this, lines get too long to read in one glance


def text_width(output: str | None) -> int:
    """The text report's width: ``COLUMNS`` when set, else the terminal's, else ``WIDTH_WHEN_PIPED``."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    elif output is None and _stdout_is_tty():
        width = shutil.get_terminal_size((WIDTH_WHEN_PIPED, 24)).columns
    else:
        width = WIDTH_WHEN_PIPED
    return max(40, min(width, WIDTH_MAX))


def _stdout_is_tty() -> bool:
    return sys.stdout is not None and not sys.stdout.closed and sys.stdout.isatty()


def _to_stdout(render: Callable[[TextIO], None]) -> None:
    """Render to standard output; a closed or full stdout is one line on stderr, not a traceback."""
    from keras_relu_doctor.errors import BadOption

    try:
        if sys.stdout is None or sys.stdout.closed:
            raise ValueError("standard output is closed")
        stream = click.get_text_stream("stdout")
        render(stream)
        stream.flush()
    except BrokenPipeError:
        _silence_stdout()  # the reader (e.g. `| head`) has what it wanted
    except (OSError, ValueError) as error:
        _silence_stdout()
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise BadOption(f"cannot write the report to standard output ({reason}); pass -o FILE") from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _to_file(output: str, render: Callable[[TextIO], None]) -> None:
    """Write the report to ``output`` whole or not at all.

    A regular file (or a new one) is written to a temporary file in the same
    folder and renamed over it on success, so a failure leaves the old report
    as it was. Anything else (``/dev/stdout``, a FIFO) is written in place.
    """
    from keras_relu_doctor.errors import BadOption

    def fail(error: OSError) -> BadOption:
        reason = error.strerror or str(error)
        return BadOption(f"--output {output!r}: cannot write ({reason}); choose a writable path")

    try:
        in_place = os.path.exists(output) and not stat.S_ISREG(os.stat(output).st_mode)
    except OSError as error:
        raise fail(error) from None
    if in_place:
        try:
            with open(output, "w", encoding="utf-8") as stream:
                render(stream)
        except OSError as error:
            raise fail(error) from None
        return
    folder = os.path.dirname(os.path.abspath(output))
    try:
        handle, temporary = tempfile.mkstemp(prefix=".relu-doctor-", suffix=".tmp", dir=folder)
    except OSError as error:
        raise fail(error) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            render(stream)
        if os.path.exists(output):
            shutil.copymode(output, temporary)
        else:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, output)
    except OSError as error:
        raise fail(error) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_writable(result: Any) -> None:
    """--write-tensorboard adds a file to every run folder: fail before the first if any is read-only."""
    from keras_relu_doctor.errors import BadOption
    from keras_relu_doctor.events.storage import is_url

    if is_url(result.logdir):
        return  # an object store says no only when written to (see _report)
    for run in result.runs:
        folder = os.path.join(result.logdir, run.run)
        if not os.access(folder, os.W_OK):
            raise BadOption(
                f"--write-tensorboard: run folder {folder!r} is not writable; nothing was written"
                " (make it writable, or leave out --write-tensorboard)"
            )
