"""``relu-doctor replay``: the article's experiment as a seeded grid, judged claim by claim.

Imports nothing heavy at module level: ``relu-doctor --help`` stays instant, and
Keras and its backend are imported only by the processes that train.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from keras_relu_doctor.replay.grid import ReplayOptions, RunSpec
    from keras_relu_doctor.replay.results import RunResult

EXIT_BAD_INPUT = 2


def print_tables(console: Console, summary: Any, logdir: str) -> None:
    """Each of the summary's tables, fitted to the console's width (``render.fit_table``): the columns that
    do not fit are left out in the table's drop order and named under it; ``summary.md`` keeps them all."""
    from rich.table import Table
    from rich.text import Text

    from keras_relu_doctor.render.fit_table import fit_table, left_out_note
    from keras_relu_doctor.replay.summary import SUMMARY_MD

    for table in summary.tables():
        fitted = fit_table(table.columns, table.rows, console.width, table.drop_order)
        wrapped = any("\n" in cell for row in fitted.rows for cell in row)
        shown = Table(title=Text(table.title), title_justify="left", show_lines=wrapped)
        for header, width in zip(fitted.headers, fitted.widths):
            # Cells come broken into lines already (between words): rich only lays them out.
            shown.add_column(Text(header), width=width, no_wrap=True, overflow="fold")
        for row in fitted.rows:
            shown.add_row(*map(Text, row))
        console.print(shown)
        if fitted.dropped:
            console.print(left_out_note(fitted.dropped, console.width, f"{logdir}/{SUMMARY_MD}"), highlight=False)


@click.command("replay")
@click.argument("logdir", type=click.Path(file_okay=False, path_type=str), required=False)
@click.option("--experiment", type=click.Choice(["dying", "deep-stack", "spikes"]), default="dying",
              show_default=True,
              help="dying: the synthetic (-1, 0) experiment of 'Is ReLU Dead?'; deep-stack: stacked conv blocks "
                   "(vanishing and exploding gradients, BatchNorm, shortcuts, clipping); spikes: loss spikes that "
                   "leave dead units (max against average pooling, and the remedies).")
@click.option("--preset", metavar="[quick|full]", default="quick", show_default=True,
              help="quick (dying: 136 runs, ~3 min on 2 cores; deep-stack: 42 runs, ~6 min; spikes: 14 runs, ~1 min) or full (hours).")
@click.option("--only", "only", default=None, metavar="PATTERN", help="Settings to run: a glob (relu-he_*-d1) or a substring (selu).")
@click.option("--seeds", type=int, default=None, help="Seeds per setting (default: the preset's).")
@click.option("--epochs", type=int, default=None, help="Epochs per run (default: the preset's).")
@click.option("--samples", type=int, default=None, help="Samples before the 70/30 split (default: the preset's).")
@click.option(
    "--target",
    type=click.Choice(["linear", "random-labels"]),
    default="linear",
    show_default=True,
    help="dying only. linear: a fixed learnable function of x; random-labels: 0/1 labels independent of x.",
)
@click.option("--backend", metavar="[tensorflow|jax|torch]", default=None,
              help="Keras backend the runs train on (default: KERAS_BACKEND, else tensorflow).")
@click.option("--jobs", type=int, default=None, help="Parallel training processes (default: the number of cores).")
@click.option("--list", "list_only", is_flag=True, help="Print the setting names of the grid and exit.")
def replay(
    logdir: str | None,
    experiment: str,
    preset: str,
    only: str | None,
    seeds: int | None,
    epochs: int | None,
    samples: int | None,
    target: str,
    backend: str | None,
    jobs: int | None,
    list_only: bool,
) -> None:
    """Replay an article's experiment into LOGDIR and test its claims.

    --experiment dying (the default) replays the synthetic (-1, 0) experiment of
    "Is ReLU Dead?"; deep-stack, the LeNet experiments on vanishing and exploding
    gradients; spikes, loss spikes that leave dead units behind. Each run trains with ReluDoctor and Keras' TensorBoard callback
    into LOGDIR/<run>/ (model.keras, run.json, events); the comparison and
    claims tables are printed and written to LOGDIR/summary.md and summary.json.

    --backend picks Keras' backend (each worker sets KERAS_BACKEND before
    importing Keras); a LOGDIR holds the runs of one backend.

    Example: relu-doctor replay logs/replay --preset quick --jobs 2 --backend jax
    """
    from rich.console import Console

    from keras_relu_doctor.errors import ReluDoctorError
    from keras_relu_doctor.replay.grid import ReplayOptions

    from keras_relu_doctor.cli.report import text_width

    # COLUMNS, else the terminal's when stdout is one, else 100 (capped at 160): rich alone would take
    # the width of whichever of stdin, stdout and stderr is a terminal, or 80, even into a file.
    console = Console(width=text_width(None))
    errors = Console(stderr=True)
    try:
        if list_only:
            for spec in ReplayOptions(preset, only, seeds=1, target=target, experiment=experiment).grid():
                console.print(spec.setting, highlight=False)
            return
        if logdir is None:
            raise click.UsageError("missing LOGDIR: the folder the runs are written to")
        options = ReplayOptions(preset, only, seeds, epochs, samples, target, experiment, backend)
        summary = _replay_with_progress(errors, logdir, options, jobs)
    except ReluDoctorError as error:
        click.echo(f"relu-doctor replay: {error}", err=True)
        sys.exit(getattr(error, "exit_code", EXIT_BAD_INPUT))
    print_tables(console, summary, logdir)
    console.print(f"Trained on Keras backend {summary.options.get('backend', 'tensorflow')}.", highlight=False)
    console.print(f"Tables written to {logdir}/summary.md and summary.json.", highlight=False)
    console.print(f"Browse the runs: tensorboard --logdir {logdir}", highlight=False)


def _replay_with_progress(errors: Console, logdir: str, options: ReplayOptions, jobs: int | None) -> Any:
    """``run_replay`` under a rich progress bar (on stderr, so stdout holds the tables)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from keras_relu_doctor.replay.experiment import run_replay

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=errors,
    )
    task = progress.add_task("replay", total=None, last="")

    def on_start(grid: Sequence[RunSpec]) -> None:
        # Shown only once the options and the logdir passed their checks.
        progress.update(task, total=len(grid))
        progress.start()

    def on_done(result: RunResult, reused: bool) -> None:
        name = result.spec.name
        progress.update(task, advance=1, last=f"{name} (reused)" if reused else name)

    try:
        return run_replay(logdir, options, jobs=jobs, on_start=on_start, on_done=on_done)
    finally:
        if progress.live.is_started:
            progress.stop()
