"""Run the grid: check the logdir, train the runs in worker processes, show progress.

No Keras in this process unless ``jobs == 1`` (then runs train in-process, when
this process's Keras, if already imported, runs on the replay's backend).
Workers are started with ``spawn`` (TensorFlow is not fork-safe once imported),
each set to the replay's Keras backend and one thread by
:func:`~keras_relu_doctor.replay.backends.configure_worker`.

Runs that already finished in the logdir with the same settings are reused, so
the same command run twice trains once and prints the same tables; a logdir holds
the runs of one backend only (another backend is refused: its numbers differ); a run cut
short (Ctrl-C, a killed process) is trained again. A lock file keeps a second
replay out of a logdir while one writes to it. Ctrl-C stops the workers at
once; workers whose parent dies stop within a second.

Example:

```python
results = run_grid(build_grid("quick", only="selu"), "logs/replay", jobs=2)
```
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path

from keras_relu_doctor.errors import BadOption, Interrupted
from keras_relu_doctor.replay.backends import DEFAULT_BACKEND, configure_worker, keras_backend_in_process
from keras_relu_doctor.replay.experiments import DEFAULT_EXPERIMENT, EXPERIMENTS, Experiment
from keras_relu_doctor.replay.grid import HEAD_LINEAR, RunSpec
from keras_relu_doctor.replay.results import RunResult
from keras_relu_doctor.replay.train import RUN_FILE, load_result

# Written at the top of a replay's logdir: marks it as ours, so a second replay may reuse it.
MARKER_FILE = "replay.json"
# Held (flock) by the replay writing to a logdir; holds its PID for the message to a second one.
LOCK_FILE = "replay.lock"
DYING = EXPERIMENTS[DEFAULT_EXPERIMENT]
WATCHDOG_SECONDS = 1.0  # how often a worker checks that its parent is alive


def default_jobs() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def prepare_logdir(
    logdir: Path, grid: Sequence[RunSpec], options: dict[str, object], experiment: Experiment = DYING
) -> dict[str, RunResult]:
    """Check ``logdir`` can take this grid; return the runs already finished there.

    A run cut short by an interrupt (no readable result, and settings that are
    this grid's or unreadable) is cleared to be trained again. Nothing else is
    ever deleted: a folder that is not a replay, or a run made with other
    settings, is an error that says what to do.
    """
    check_logdir(logdir)
    marked = _read_json(logdir / MARKER_FILE)
    if marked is not None and marked.get("experiment", DYING.name) != experiment.name:
        raise BadOption(
            f"LOGDIR {str(logdir)!r} holds the {marked.get('experiment', DYING.name)!r} replay, not"
            f" {experiment.name!r}: pass another LOGDIR"
        )
    backend = str(options.get("backend", DEFAULT_BACKEND))
    # Replays written before the backend was an option ran on TensorFlow.
    if marked is not None and marked.get("backend", DEFAULT_BACKEND) != backend:
        raise BadOption(
            f"LOGDIR {str(logdir)!r} holds runs trained on {marked.get('backend', DEFAULT_BACKEND)}, not {backend}:"
            f" pass another LOGDIR (or --backend {marked.get('backend', DEFAULT_BACKEND)} to resume it)"
        )
    finished: dict[str, RunResult] = {}
    for spec in grid:
        run_dir = logdir / spec.name
        if not run_dir.exists():
            continue
        saved = _read_json(run_dir / RUN_FILE)
        if saved is not None and isinstance(spec, RunSpec):
            saved.setdefault("head", HEAD_LINEAR)  # runs written before the head was a setting
        if saved is not None and {key: value for key, value in saved.items() if key not in ("schema", "backend")} != asdict(spec):
            raise BadOption(
                f"run {spec.name!r} in {str(logdir)!r} was trained with other settings: "
                "pass a new LOGDIR (or the options used then)"
            )
        result = _load_finished(run_dir, experiment.result_type)
        if result is None:
            shutil.rmtree(run_dir)  # cut short: trained again below
            continue
        finished[spec.name] = result
    _write(logdir / MARKER_FILE, json.dumps({"schema": 1, **options}, indent=2, default=str) + "\n")
    return finished


def check_logdir(logdir: Path) -> None:
    """A replay writes into a new or empty folder, or into a previous replay's."""
    if logdir.exists() and not logdir.is_dir():
        raise BadOption(f"LOGDIR {str(logdir)!r} is a file: pass a folder (new or empty, or a previous replay)")
    if logdir.is_dir() and not (logdir / MARKER_FILE).is_file() and any(
        entry.name != LOCK_FILE for entry in logdir.iterdir()
    ):
        raise BadOption(
            f"LOGDIR {str(logdir)!r} is not empty and holds no replay ({MARKER_FILE} missing): "
            "pass a new or empty folder"
        )


def _read_json(path: Path) -> dict | None:
    """A JSON object from ``path``; None when missing, empty, cut short or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _load_finished(run_dir: Path, result_type: type) -> RunResult | None:
    try:
        return load_result(run_dir, result_type)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a result file cut short: the run did not finish


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as error:
        raise BadOption(f"cannot write {str(path)!r} ({error.strerror}): pass a writable LOGDIR") from None


@contextlib.contextmanager
def locked(logdir: Path) -> Iterator[None]:
    """Hold ``logdir``'s lock (created with the folder) for the block; one line if another replay holds it."""
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        handle = open(logdir / LOCK_FILE, "a+")
    except OSError as error:
        raise BadOption(f"LOGDIR {str(logdir)!r}: cannot write ({error.strerror}); pass a writable folder") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise BadOption(
                f"another replay (PID {holder}) is writing to {str(logdir)!r}: wait for it to end, or pass another LOGDIR"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_in_worker(spec: RunSpec, logdir: str, experiment: str = DYING.name) -> RunResult:
    return EXPERIMENTS[experiment].train(spec, logdir)


def _init_worker(backend: str = DEFAULT_BACKEND) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the workers, which stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    configure_worker(backend)


def _watch_parent(parent: int) -> None:
    """End this worker when its parent is gone (killed with SIGKILL, it cannot stop us itself)."""
    while True:
        time.sleep(WATCHDOG_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def run_grid(
    grid: Sequence[RunSpec],
    logdir: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    options: dict[str, object] | None = None,
    experiment: Experiment = DYING,
    backend: str = DEFAULT_BACKEND,
    on_start: Callable[[Sequence[RunSpec]], None] | None = None,
    on_done: Callable[[RunResult, bool], None] | None = None,
) -> tuple[RunResult, ...]:
    """Train every run of ``grid`` not already finished in ``logdir`` on Keras' ``backend``; results in grid order.

    ``on_start(grid)`` is called once the logdir is checked, ``on_done(result, reused)``
    once per run as it finishes (the CLI's progress bar).
    """
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise BadOption(f"--jobs must be at least 1, got {jobs}")
    logdir = Path(logdir)
    check_logdir(logdir)  # before the lock file is created in it
    with locked(logdir):
        recorded = {**(options or {}), "experiment": experiment.name, "backend": backend}
        finished = prepare_logdir(logdir, grid, recorded, experiment)
        if on_start:
            on_start(grid)
        for result in finished.values():
            if on_done:
                on_done(result, True)
        todo = [spec for spec in grid if spec.name not in finished]
        try:
            _train(todo, logdir, jobs, finished, on_done, experiment.name, backend)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted: {len(finished)} of {len(grid)} runs are finished and kept in {str(logdir)!r};"
                " run the same command again to train the others (runs cut short are redone)"
            ) from None
        except BrokenProcessPool:
            raise BadOption(
                f"a worker process died (killed, or out of memory?): {len(finished)} of {len(grid)} runs are"
                " finished and kept; run the same command again to train the others, or pass --jobs 1"
            ) from None
    return tuple(finished[spec.name] for spec in grid)


def _train(
    todo: list[RunSpec],
    logdir: Path,
    jobs: int,
    finished: dict[str, RunResult],
    on_done: Callable[[RunResult, bool], None] | None,
    experiment: str = DYING.name,
    backend: str = DEFAULT_BACKEND,
) -> None:
    """Train ``todo`` into ``logdir``, adding each result to ``finished`` as it comes.

    With ``jobs == 1`` in this process, unless its Keras already runs on another
    backend (Keras' backend is fixed at import): then in one worker process.
    """
    if todo and jobs == 1 and keras_backend_in_process() in (None, backend):
        configure_worker(backend)
        for spec in todo:
            finished[spec.name] = _train_in_worker(spec, str(logdir), experiment)
            if on_done:
                on_done(finished[spec.name], False)
        return
    if not todo:
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context, initializer=_init_worker,
                               initargs=(backend,))  # fmt: skip
    try:
        pending: set[Future[RunResult]] = {pool.submit(_train_in_worker, spec, str(logdir), experiment) for spec in todo}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)  # each result as it comes
            for future in done:
                result = future.result()  # a failed run stops the replay with its traceback
                finished[result.spec.name] = result
                if on_done:
                    on_done(result, False)
    except BaseException:
        # Stop now, not after the runs in progress: their folders are redone next time.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
