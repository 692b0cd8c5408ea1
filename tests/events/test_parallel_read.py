"""Reading with every core gives exactly what one process reads: runs side by side, and one run cut into pieces."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest

from keras_relu_doctor import tags
from keras_relu_doctor.events import parallel
from keras_relu_doctor.events.logdir import iter_runs
from keras_relu_doctor.events.storage import LOCAL
from keras_relu_doctor.events.writer import EventWriter, summary_metadata
from keras_relu_doctor.report import build_report, report_to_dict

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)


def _same(a, b, where: str = "run") -> None:
    """Two reads agree field by field, arrays bit for bit."""
    if dataclasses.is_dataclass(a):
        for item in dataclasses.fields(a):
            _same(getattr(a, item.name), getattr(b, item.name), f"{where}.{item.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True), where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), (where, a, b)
        for index, (left, right) in enumerate(zip(a, b)):
            _same(left, right, f"{where}[{index}]")
    else:
        assert a == b, (where, a, b)


@pytest.fixture
def small_pieces(monkeypatch):
    """Cut runs of a few hundred KB into pieces of 16 KB, so real test logdirs are read in many pieces."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 64 << 10)
    monkeypatch.setattr(parallel, "SPLIT_MIN", 64 << 10)
    monkeypatch.setattr(parallel, "PIECE_MIN", 16 << 10)
    monkeypatch.setattr(parallel, "PRIME_BYTES", 4 << 10)


def _write(folder, steps: int = 300, layers: int = 6) -> str:
    rng = np.random.default_rng(0)
    with EventWriter(folder) as writer:
        for step in range(steps):
            values = []
            for index in range(layers):
                active = (rng.random(16) > 0.3).astype(np.float32)
                values.append((f"dense_{index}/units", summary_metadata(tags.PLUGIN_NAME, METADATA.to_bytes()),
                               np.stack([active, rng.random(16).astype(np.float32)])))
                buckets = np.stack([np.arange(10.0), np.arange(1.0, 11.0), rng.random(10)], axis=-1)
                values.append((f"dense_{index}/activations", summary_metadata(tags.HISTOGRAMS_PLUGIN), buckets))
                values.append((f"dense_{index}/grad_norm", summary_metadata(tags.SCALARS_PLUGIN),
                               np.array(rng.random(), np.float32)))
            writer.summaries(step, values)
            if step == steps // 2:
                # A tag first met half-way: its metadata comes with its first value, in a later piece.
                writer.scalar("late/grad_norm", 1.0, step)
    return writer.path


def _in_pieces(folder, path: str):
    """The run read in pieces by two workers, which must not fall back to one piece."""
    with parallel.pool(2) as workers_pool:
        run = parallel.read_run_split(workers_pool, 2, LOCAL, str(folder), [os.path.basename(path)], "train")
    assert run is not None, "the pieces disagreed and the run was read in one piece"
    return run


def test_one_run_read_in_pieces_equals_one_process(tmp_path, small_pieces):
    path = _write(tmp_path / "train")
    assert os.path.getsize(path) > 8 * parallel.PIECE_MIN
    one = list(iter_runs(tmp_path, jobs=1))
    _same(_in_pieces(tmp_path / "train", path), one[0])
    _same(list(iter_runs(tmp_path, jobs=2)), one)


def test_damage_across_the_cuts_reads_as_in_one_process(tmp_path, small_pieces):
    path = _write(tmp_path / "train")
    data = bytearray(open(path, "rb").read())
    size = len(data)
    for start in (size // 4 - 40, size // 2 - 3, 3 * size // 4):  # garbage over a cut, a flipped byte, a flipped length
        data[start : start + 60] = bytes(60) if start == size // 4 - 40 else bytes(b ^ 0xFF for b in data[start : start + 1]) + data[start + 1 : start + 60]
    open(path, "wb").write(bytes(data[: size - 100]))  # and a torn last record
    one = list(iter_runs(tmp_path, jobs=1))
    assert len(one[0].warnings) == 4 and one[0].truncated_files
    _same(_in_pieces(tmp_path / "train", path), one[0])
    _same(list(iter_runs(tmp_path, jobs=2)), one)


@pytest.mark.slow
def test_a_real_keras_applications_logdir_reads_the_same_in_pieces(mobilenet_logdir, small_pieces):
    _same(list(iter_runs(mobilenet_logdir, jobs=2)), list(iter_runs(mobilenet_logdir, jobs=1)))


def test_many_runs_are_read_and_diagnosed_side_by_side(tmp_path):
    _write(tmp_path / "run_00" / "train", steps=20, layers=3)
    source = tmp_path / "run_00" / "train"
    for index in range(1, 24):
        shutil.copytree(source, tmp_path / f"run_{index:02d}" / "train")
    (tmp_path / "run_07" / "notes.txt").write_text("not a run")
    one, many = build_report(tmp_path, jobs=1), build_report(tmp_path, jobs=2)
    assert len(many.runs) == 24 and [run.run for run in many.runs] == sorted(run.run for run in many.runs)
    assert report_to_dict(many) == report_to_dict(one)
