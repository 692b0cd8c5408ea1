"""The replay from start to end: grid -> runs -> report -> comparison and claims tables.

This is what ``relu-doctor replay`` calls; library users can call it too.

Example:

```python
summary = run_replay("logs/replay", ReplayOptions(preset="quick", only="relu-*-d1"), jobs=2)
[(claim.claim, claim.verdict) for claim in summary.claims]
```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from keras_relu_doctor.replay.backends import resolve_backend
from keras_relu_doctor.replay.grid import ReplayOptions, RunSpec
from keras_relu_doctor.replay.results import RunResult
from keras_relu_doctor.replay.runner import run_grid
from keras_relu_doctor.replay.train import save_result
from keras_relu_doctor.replay.experiments import experiment_named
from keras_relu_doctor.replay.summary import ReplaySummary, write_summary


def run_replay(
    logdir: str | os.PathLike[str],
    options: ReplayOptions = ReplayOptions(),
    *,
    jobs: int | None = None,
    on_start: Callable[[Sequence[RunSpec]], None] | None = None,
    on_done: Callable[[RunResult, bool], None] | None = None,
) -> ReplaySummary | Any:
    """Train the grid into ``logdir``, read it back with the report, write the summaries.

    ``jobs`` worker processes (default: one per core). ``on_start(grid)`` (once the
    logdir is checked) and ``on_done(result, reused)`` let a caller show progress.
    The runs train on ``options.backend`` (None: ``KERAS_BACKEND``, else tensorflow).
    """
    backend = resolve_backend(options.backend)
    options = replace(options, backend=backend)
    grid = options.grid()
    experiment = experiment_named(options.experiment)
    recorded = {**asdict(options), "runs": len(grid)}
    if "target" not in experiment.options:
        recorded.pop("target")
    results = run_grid(grid, logdir, jobs=jobs, options=recorded, experiment=experiment, backend=backend,
                       on_start=on_start, on_done=on_done)  # fmt: skip
    attached = experiment.attach_report(results, Path(logdir))
    for before, result in zip(results, attached):  # each run's result.json gets the report's reading too
        if result != before:  # a reused run already has it: its file is left as it was
            save_result(result, Path(logdir) / result.spec.name)
    summary = experiment.build_summary(attached, recorded)
    write_summary(summary, logdir)
    return summary
