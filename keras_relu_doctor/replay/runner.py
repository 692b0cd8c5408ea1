"""Run the grid: check the logdir, train the runs in worker processes, show progress.

No TensorFlow in this process unless ``jobs == 1`` (then runs train in-process).
Workers are started with ``spawn`` (TensorFlow is not fork-safe once imported),
each pinned to one TensorFlow thread by :func:`~keras_relu_doctor.replay.train.configure_worker`.

Runs that already finished in the logdir with the same settings are reused, so
the same command run twice trains once and prints the same tables.

Example:

```python
results = run_grid(build_grid("quick", only="selu"), "logs/replay", jobs=2)
```
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

from keras_relu_doctor.errors import BadOption
from keras_relu_doctor.replay.grid import RunSpec
from keras_relu_doctor.replay.results import RunResult
from keras_relu_doctor.replay.train import RUN_FILE, load_result

# Written at the top of a replay's logdir: marks it as ours, so a second replay may reuse it.
MARKER_FILE = "replay.json"


def default_jobs() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def prepare_logdir(logdir: Path, grid: Sequence[RunSpec], options: dict[str, object]) -> dict[str, RunResult]:
    """Check ``logdir`` can take this grid; return the runs already finished there.

    Never deletes anything: a folder that is not a replay, a run made with other
    settings, or a run left half-written is an error that says what to do.
    """
    if logdir.exists() and not logdir.is_dir():
        raise BadOption(f"LOGDIR {str(logdir)!r} is a file: pass a folder (new or empty, or a previous replay)")
    if logdir.is_dir() and any(logdir.iterdir()) and not (logdir / MARKER_FILE).is_file():
        raise BadOption(
            f"LOGDIR {str(logdir)!r} is not empty and holds no replay ({MARKER_FILE} missing): "
            "pass a new or empty folder"
        )
    finished: dict[str, RunResult] = {}
    for spec in grid:
        run_dir = logdir / spec.name
        if not run_dir.exists():
            continue
        written = run_dir / RUN_FILE
        if written.is_file():
            saved = {key: value for key, value in json.loads(written.read_text()).items() if key != "schema"}
            if saved != asdict(spec):
                raise BadOption(
                    f"run {spec.name!r} in {str(logdir)!r} was trained with other settings: "
                    "pass a new LOGDIR (or the options used then)"
                )
        result = load_result(run_dir)
        if result is None:
            raise BadOption(
                f"run folder {str(run_dir)!r} is incomplete (interrupted run?): remove it and run again, "
                "or pass a new LOGDIR"
            )
        finished[spec.name] = result
    logdir.mkdir(parents=True, exist_ok=True)
    (logdir / MARKER_FILE).write_text(json.dumps({"schema": 1, **options}, indent=2, default=str) + "\n")
    return finished


def _train_in_worker(spec: RunSpec, logdir: str) -> RunResult:
    from keras_relu_doctor.replay.train import train_run

    return train_run(spec, logdir)


def _init_worker() -> None:
    from keras_relu_doctor.replay.train import configure_worker

    configure_worker()


def run_grid(
    grid: Sequence[RunSpec],
    logdir: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    options: dict[str, object] | None = None,
    on_start: Callable[[Sequence[RunSpec]], None] | None = None,
    on_done: Callable[[RunResult, bool], None] | None = None,
) -> tuple[RunResult, ...]:
    """Train every run of ``grid`` not already finished in ``logdir``; results in grid order.

    ``on_start(grid)`` is called once the logdir is checked, ``on_done(result, reused)``
    once per run as it finishes (the CLI's progress bar).
    """
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise BadOption(f"--jobs must be at least 1, got {jobs}")
    logdir = Path(logdir)
    finished = prepare_logdir(logdir, grid, options or {})
    if on_start:
        on_start(grid)
    for result in finished.values():
        if on_done:
            on_done(result, True)
    todo = [spec for spec in grid if spec.name not in finished]
    if todo and jobs == 1:
        _init_worker()
        for spec in todo:
            finished[spec.name] = _train_in_worker(spec, str(logdir))
            if on_done:
                on_done(finished[spec.name], False)
    elif todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context, initializer=_init_worker) as pool:
            pending: set[Future[RunResult]] = {pool.submit(_train_in_worker, spec, str(logdir)) for spec in todo}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        result = future.result()  # a failed run stops the replay with its traceback
                        finished[result.spec.name] = result
                        if on_done:
                            on_done(result, False)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return tuple(finished[spec.name] for spec in grid)
