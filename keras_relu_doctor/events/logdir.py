"""Find the runs of a logdir and read them.

Every folder that holds ``events.out.tfevents.*`` files is a run, as in
TensorBoard: with Keras' callbacks that is ``<log_dir>/train`` and
``<log_dir>/validation``.

>>> import tempfile
>>> read_logdir(tempfile.mkdtemp())
Traceback (most recent call last):
...
keras_relu_doctor.errors.NoEventFiles: no events.out.tfevents.* file under ...
"""

from __future__ import annotations

import dataclasses
import os
import re
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterator

from keras_relu_doctor.errors import BadOption, LogdirNotFound, NoEventFiles, UnreadableEventFile, one_line
from keras_relu_doctor.events.run import read_run
from keras_relu_doctor.events.series import Logdir, Run
from keras_relu_doctor.events.storage import Storage, storage_for

EVENT_FILE_MARKER = "tfevents"
RUNS_LISTED = 8  # run names an error message shows before "and N more"
_TIMESTAMP = re.compile(r"tfevents\.(\d+)")


def _file_order(name: str) -> tuple[int, str]:
    # TensorBoard reads a run's files in timestamp order, then by name.
    match = _TIMESTAMP.search(name)
    return (int(match.group(1)) if match else 0, name)


def find_runs(logdir: str | os.PathLike) -> list[tuple[str, list[str]]]:
    """``(run path relative to logdir, event file names in read order)``, sorted by run path.

    ``logdir`` is a local path or an fsspec URL (``s3://bucket/logs``).
    Raises ``LogdirNotFound`` for a missing path or a file, and ``NoEventFiles``
    when no folder below it holds an event file.
    """
    storage, root = storage_for(logdir)
    return _find(storage, root, os.fspath(logdir))[0]


def _find(storage: Storage, root: str, shown: str) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """:func:`find_runs`, and the folders that could not be listed."""
    try:
        exists, isdir = storage.exists(root), storage.isdir(root)
    except Exception as error:  # noqa: BLE001 -- a remote store's credentials or network, in its own words
        raise LogdirNotFound(f"cannot list logdir {shown!r}: {one_line(error)}") from None
    if not exists and not isdir:
        raise LogdirNotFound(f"logdir {shown!r} does not exist: pass the log_dir given to ReluDoctor or TensorBoard")
    if not isdir:
        raise LogdirNotFound(f"logdir {shown!r} is a file, not a folder: pass the folder that holds the event files")
    runs, unreadable = _walk(storage, root)
    if not runs:
        skipped = f" ({len(unreadable)} folder(s) could not be read, e.g. {unreadable[0][0]!r}: {unreadable[0][1]})" if unreadable else ""
        raise NoEventFiles(
            f"no events.out.tfevents.* file under {shown!r}{skipped}: train with ReluDoctor(log_dir=...) first,"
            " or pass the folder it wrote to"
        )
    return runs, unreadable


def _walk(storage: Storage, root: str) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """The runs under ``root``, sorted, and the folders that could not be listed, with the reason."""
    runs, unreadable = [], []

    def skipped(error: OSError) -> None:
        where = storage.relpath(error.filename, root) if error.filename else "."
        unreadable.append((where, error.strerror or type(error).__name__))

    for folder, subfolders, names in storage.walk(root, onerror=skipped):
        subfolders.sort()
        # TensorBoard's own test: the name contains "tfevents".
        events = sorted((name for name in names if EVENT_FILE_MARKER in name), key=_file_order)
        if events:
            runs.append((storage.relpath(folder, root), events))
    return sorted(runs), unreadable


def iter_runs(logdir: str | os.PathLike, run_glob: str | None = None, jobs: int | None = None) -> Iterator[Run]:
    """Read the runs of ``logdir`` in path order, yielding each as it is read.

    ``run_glob`` (e.g. ``"*/train"``) keeps the runs whose relative path matches.
    ``jobs`` worker processes read runs side by side, or a large run in pieces
    (default: every core; 1 reads in this process). Raises
    ``UnreadableEventFile`` at the end if no file held a readable record.
    """
    return map_runs(logdir, run_glob, None, jobs)


def map_runs(
    logdir: str | os.PathLike,
    run_glob: str | None = None,
    apply: Callable[[Run], Any] | None = None,
    jobs: int | None = None,
) -> Iterator[Any]:
    """Like :func:`iter_runs`, yielding ``apply(run)``, run in the worker that read the run."""
    from keras_relu_doctor.events.parallel import read_runs

    shown = os.fspath(logdir)
    storage, root = storage_for(shown)
    runs, unreadable = _find(storage, root, shown)
    if run_glob is not None:
        found = [path for path, _ in runs]
        runs = [(path, files) for path, files in runs if fnmatchcase(path, run_glob)]
        if not runs:
            shown_runs = ", ".join(found[:RUNS_LISTED]) + (f" and {len(found) - RUNS_LISTED} more" if len(found) > RUNS_LISTED else "")
            raise BadOption(f"--run {run_glob!r} matches no run; runs found: {shown_runs}")
    readable, torn = 0, 0
    for read in read_runs(storage, root, runs, apply, jobs):
        readable += read.records
        torn += read.truncated
        yield read.value
    for path, reason in unreadable:
        if run_glob is None or fnmatchcase(path, run_glob):
            # Shown as a run without data, so every format says which folder and why.
            empty = read_run(storage.join(root, path), [], path, storage)
            empty = dataclasses.replace(empty, warnings=(f"folder {path!r} could not be read ({reason}); skipped it",))
            yield apply(empty) if apply else empty
    if not readable:
        infos = [storage.info(storage.join(root, path, name)) for path, files in runs for name in files]
        first = os.path.normpath(os.path.join(runs[0][0], runs[0][1][0]))
        if not any(info.size for info in infos if info.regular):
            raise NoEventFiles(f"the event files under {shown!r} are all empty: training has not written any yet")
        if torn:
            raise NoEventFiles(
                f"the event files under {shown!r} hold no complete record yet (e.g. {first!r} ends inside its"
                " first): training is still writing, or stopped mid-write; run the report again once it has logged"
            )
        raise UnreadableEventFile(
            f"no readable record in the event files under {shown!r} (e.g. {first!r}):"
            " they are not TensorBoard event files, or are damaged throughout"
        )


def read_logdir(logdir: str | os.PathLike, run_glob: str | None = None) -> Logdir:
    """Read every run of ``logdir``.

    >>> logdir = read_logdir("runs/experiment")  # doctest: +SKIP
    >>> logdir.run("train").units["dense"].max_abs_output.shape  # doctest: +SKIP
    (5, 16)
    """
    return Logdir(path=os.fspath(logdir), runs=tuple(iter_runs(logdir, run_glob)))
