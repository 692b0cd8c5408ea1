"""Reading with every core: many runs side by side, or one large run cut into pieces.

A logdir of many runs is read (and diagnosed) one run per worker process. A
large run is cut into byte ranges of its files, one per worker:

* each worker starts at its range's first record header whose length CRC
  holds, and reads the records that start inside its range;
* the range before it must end exactly where it starts (its first record
  after the range), which proves the cut fell on a record boundary;
* every worker first files the tags of the run's first megabyte as a reader
  of the whole file would (their first value carries the plugin metadata);
  a tag first met later must be filed alike in every piece that meets it.

When any of these fails, or the pieces disagree (a layer's unit count, its
record layout), the run is read again in one piece, so the result always
equals :func:`keras_relu_doctor.events.run.read_run` exactly (a test checks
it series by series). Workers are forked, so they start in milliseconds;
where ``fork`` is not available (macOS, Windows) reading stays in one process.

>>> workers(1)
1
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from keras_relu_doctor.events.run import _RunReader, ends_early, read_run
from keras_relu_doctor.events.series import Run
from keras_relu_doctor.events.storage import LOCAL, Storage

SPLIT_MIN = 16 << 20  # a run smaller than this is read in one piece: the fork would cost more than it saves
PARALLEL_MIN = 8 << 20  # a logdir smaller than this (and of few runs) is read in this process
PARALLEL_RUNS = 16  # ... unless it holds at least this many runs, each diagnosed too
PIECE_MIN = 4 << 20  # no piece smaller than this
PRIME_BYTES = 1 << 20  # the start of a run read first, to file its tags as a whole read would


def workers(jobs: int | None = None) -> int:
    """Worker processes to use: ``jobs``, or the cores this process may run on that other work leaves idle.

    Idle cores are the cores less the 1-minute load average beyond this
    process's own: on a machine whose cores are busy, more workers would only
    queue behind the other work and pay their start-up for nothing.
    """
    if jobs is not None:
        return max(1, int(jobs))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        busy = max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, cores - int(busy)))


@contextmanager
def pool(jobs: int | None) -> Iterator[Any]:
    """A pool of forked workers, or None with one worker or no ``fork``."""
    count = workers(jobs)
    if count < 2 or not sys.platform.startswith("linux"):
        yield None
        return
    with multiprocessing.get_context("fork").Pool(count) as workers_pool:
        yield workers_pool


# ----------------------------------------------------------------- many runs
@dataclass(frozen=True)
class RunRead:
    """What reading one run gave: ``value`` (the run, or what ``apply`` made of it) and its counts."""

    value: Any
    records: int
    truncated: int


def _read_whole(task: tuple[Storage, str, list[str], str, Callable[[Run], Any] | None]) -> RunRead:
    storage, folder, files, path, apply = task
    run = read_run(folder, files, path, storage)
    return RunRead(apply(run) if apply else run, run.records, len(run.truncated_files))


def read_runs(
    storage: Storage,
    root: str,
    runs: list[tuple[str, list[str]]],
    apply: Callable[[Run], Any] | None = None,
    jobs: int | None = None,
) -> Iterator[RunRead]:
    """Read ``runs`` (``(path, files)`` under ``root``) in order, with every core when it pays.

    ``apply`` (picklable, e.g. a ``functools.partial``) is run on each run in
    the worker that read it, so a diagnosis is spread over the cores too.
    Only local logdirs are read in parallel.
    """
    sizes = [_run_size(storage, storage.join(root, path), files) for path, files in runs] if storage is LOCAL else []
    worth_it = sum(sizes) >= PARALLEL_MIN or len(sizes) >= PARALLEL_RUNS
    count = workers(jobs) if worth_it else 1
    with pool(count) as workers_pool:
        if workers_pool is not None and (len(runs) >= 2 * count or max(sizes, default=0) < SPLIT_MIN):
            tasks = [(storage, storage.join(root, path), files, path, apply) for path, files in runs]
            chunk = max(1, min(16, len(tasks) // (4 * count)))
            yield from workers_pool.imap(_read_whole, tasks, chunksize=chunk)
            return
        for (path, files), size in zip(runs, sizes or [0] * len(runs)):
            folder = storage.join(root, path)
            run = None
            if workers_pool is not None and size >= SPLIT_MIN:
                run = read_run_split(workers_pool, count, storage, folder, files, path)
            if run is None:
                run = read_run(folder, files, path, storage)
            yield RunRead(apply(run) if apply else run, run.records, len(run.truncated_files))


def _run_size(storage: Storage, folder: str, files: list[str]) -> int:
    infos = [storage.info(storage.join(folder, name)) for name in files]
    return sum(info.size for info in infos if info.regular)


# ------------------------------------------------------------- one run, cut
@dataclass
class _Piece:
    file: int
    first: int | None  # the first record boundary found (the range's start for a file's first piece)
    end: int
    truncated_at: int | None
    read: int
    stores: dict[str, dict[str, Any]]
    facts: list[tuple[int, dict]]
    layers: list[str]
    formats: set[str]
    decisions: dict[str, tuple[str, str, bytes]]
    parse_warnings: list[str]
    framing_notes: list[str]


def _read_piece(task: tuple[Storage, str, str, int, int, int, dict[str, bytes]]) -> _Piece:
    storage, path, shown, index, start, stop, primer = task
    reader = _RunReader()
    reader.prime(primer)
    notes: list[Any] = []
    truncated_at, read, end = reader.read_file(path, shown, storage, start, stop=stop, notes_out=notes)
    for histograms in reader.histograms.values():
        if histograms.pending:
            histograms._reduce()  # ship statistics, not buckets
    for scalars in reader.scalars.values():
        scalars._decode()
    framing = notes[0] if notes else None
    return _Piece(
        file=index,
        first=start if start == 0 else (framing.first if framing else None),
        end=end,
        truncated_at=truncated_at,
        read=read,
        stores={"scalars": reader.scalars, "histograms": reader.histograms, "units": reader.units},
        facts=reader.facts.records,
        layers=list(reader.layers),
        formats=reader.formats,
        decisions=reader.decisions,
        parse_warnings=reader.warnings,
        framing_notes=framing.skipped if framing else [],
    )


def read_run_split(
    workers_pool: Any, count: int, storage: Storage, folder: str, files: list[str], path: str
) -> Run | None:
    """Read one run in byte ranges across ``workers_pool``; None when it must be read in one piece."""
    paths = [storage.join(folder, name) for name in files]
    infos = [storage.info(file) for file in paths]
    if any(info.problem or not info.regular for info in infos):
        return None  # the one-piece read says which file and why
    shown = [os.path.normpath(os.path.join(path, name)) for name in files]
    primer_reader = _RunReader()
    primer_reader.keep_deciders()
    primer_reader.read_file(paths[0], shown[0], storage, 0, infos[0], stop=min(PRIME_BYTES, infos[0].size), notes_out=[])
    primer = primer_reader.deciders or {}
    piece = max(PIECE_MIN, math.ceil(sum(info.size for info in infos) / count))
    tasks = []
    for index, (file, info) in enumerate(zip(paths, infos)):
        cuts = list(range(0, info.size, piece)) or [0]
        for start, stop in zip(cuts, [*cuts[1:], max(info.size, 1)]):
            stop = stop if stop < info.size else (1 << 62)  # the last piece reads to the file's end, grown or not
            tasks.append((storage, file, shown[index], index, start, stop, primer))
    return _merge(workers_pool.map(_read_piece, tasks), files, shown, path)


def _merge(pieces: list[_Piece], files: list[str], shown: list[str], path: str) -> Run | None:
    """One reader holding every piece's values in file order, finished; None when the pieces disagree."""
    from keras_relu_doctor.events.run import _Histograms, _Scalars

    merged = _RunReader()
    truncated: list[str] = []
    for index in range(len(files)):
        own = [piece for piece in pieces if piece.file == index]
        for before, after in zip(own, own[1:]):
            if after.first is None or after.first != before.end or before.truncated_at is not None:
                return None
        for piece in own:
            for tag, decision in piece.decisions.items():
                if merged.decisions.setdefault(tag, decision) != decision:
                    return None
            for name, accumulator in piece.stores["scalars"].items():
                target = merged.scalars.setdefault(name, _Scalars())
                target.steps.extend(accumulator.steps)
                target.values.extend(accumulator.values)
            for name, accumulator in piece.stores["histograms"].items():
                target = merged.histograms.setdefault(name, _Histograms())
                target.steps.extend(accumulator.steps)
                target.reduced.extend(accumulator.reduced)
            for layer, accumulator in piece.stores["units"].items():
                target = merged.units.setdefault(layer, accumulator)
                if target is accumulator:
                    continue
                if target.metadata != accumulator.metadata or None not in (target.units, accumulator.units) and (
                    target.units != accumulator.units
                ):
                    return None
                target.steps.extend(accumulator.steps)
                target.records.extend(accumulator.records)
                target.units = target.units or accumulator.units
            merged.facts.records.extend(piece.facts)
            for layer in piece.layers:
                merged.layers.setdefault(layer, None)
            merged.formats |= piece.formats
            merged.records += piece.read
        merged.warnings.extend(warning for piece in own for warning in piece.parse_warnings)
        merged.warnings.extend(note for piece in own for note in piece.framing_notes)
        if own[-1].truncated_at is not None:
            truncated.append(shown[index])
            merged.warnings.append(ends_early(shown[index], own[-1].truncated_at, sum(piece.read for piece in own)))
    return merged.finish(path, tuple(files), tuple(truncated))
