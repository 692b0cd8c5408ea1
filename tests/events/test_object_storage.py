"""Logdirs in object storage: the report reads ``s3://`` through fsspec, the callback writes there.

Everything runs against a real S3 API on loopback (moto's server, the ``s3``
fixture), never a mocked client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from keras_relu_doctor.events import read_logdir
from keras_relu_doctor.events.framing import BLOCK_SIZE
from keras_relu_doctor.events.writer import EventWriter
from keras_relu_doctor.report import build_report, report_to_dict


def _same_report(local: str, remote: str) -> None:
    """The JSON reports of two copies of a logdir agree on everything but where they were read from."""
    expected, got = report_to_dict(build_report(local)), report_to_dict(build_report(remote))
    expected.pop("logdir"), got.pop("logdir")
    assert json.dumps(got, sort_keys=True, default=str) == json.dumps(expected, sort_keys=True, default=str)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keras_relu_doctor.cli.main", "report", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "100"},
    )


@pytest.mark.slow
def test_a_real_logdir_reads_the_same_from_s3(s3, mobilenet_logdir):
    s3.put(str(mobilenet_logdir), "logs/mobilenet", recursive=True)
    _same_report(str(mobilenet_logdir), "s3://logs/mobilenet")
    local, remote = _cli(str(mobilenet_logdir)), _cli("s3://logs/mobilenet")
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert remote.stdout.replace("s3://logs/mobilenet", "LOGDIR") == local.stdout.replace(str(mobilenet_logdir), "LOGDIR")


def test_a_large_file_streams_in_blocks(s3, tmp_path):
    """Memory grows with the series kept, not with the bytes read: a 4x longer file costs far less than 4x."""
    peaks, sizes = [], []
    for steps in (250, 1000):
        path = _histogram_file(tmp_path / f"steps_{steps}" / "train", steps)
        sizes.append(os.path.getsize(path))
        s3.put(str(tmp_path / f"steps_{steps}"), f"logs/steps_{steps}", recursive=True)
        tracemalloc.start()
        try:
            run = read_logdir(f"s3://logs/steps_{steps}").runs[0]
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert run.records == steps + 1 and len(run.histograms) == 40
    assert sizes[1] > 6 * BLOCK_SIZE
    megabytes = [f"{value / 2**20:.1f} MB" for value in (*sizes, *peaks)]
    assert peaks[1] - peaks[0] < (sizes[1] - sizes[0]) / 2, "files of {} and {}: peaks {} and {}".format(*megabytes)


def _histogram_file(folder, steps: int) -> str:
    """An event file of 40 histogram tags x ``steps`` (30 KB a step)."""
    rng = np.random.default_rng(0)
    buckets = np.stack([np.linspace(-1, 1, 31)[:-1], np.linspace(-1, 1, 31)[1:], rng.random(30)], axis=-1)
    with EventWriter(folder) as writer:
        for step in range(steps):
            writer.summaries(step, [(f"layer_{index}/activations", _histograms(), buckets) for index in range(40)])
    return writer.path


def _histograms():
    from keras_relu_doctor.events.writer import summary_metadata
    from keras_relu_doctor.tags import HISTOGRAMS_PLUGIN

    return summary_metadata(HISTOGRAMS_PLUGIN)


def test_a_run_folder_as_the_logdir_reads_as_locally(s3, tmp_path):
    _histogram_file(tmp_path / "logs" / "train", 20)
    s3.put(str(tmp_path / "logs"), "logs/run_folder", recursive=True)
    _same_report(str(tmp_path / "logs" / "train"), "s3://logs/run_folder/train")


def test_the_callback_writer_says_in_one_line_when_a_url_takes_no_writes(s3):
    import glob
    import tempfile

    from keras_relu_doctor.errors import LogdirNotFound

    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "relu_doctor_events_*")))
    with pytest.raises(LogdirNotFound, match=r"cannot write events to 's3://no-such-bucket/run/train/events.*bucket"):
        EventWriter("s3://no-such-bucket/run/train")
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "relu_doctor_events_*"))) == before  # no staging left


def test_bad_urls_are_one_line_errors(s3):
    s3.pipe("logs/afile/events.out.tfevents.1.host", b"")
    cases = {
        "s3://logs/nothing-here": "does not exist",
        "s3://logs/afile/events.out.tfevents.1.host": "is a file, not a folder",
        "s3://logs/afile": "are all empty",
        "nosuchscheme://bucket/logs": "nosuchscheme",
    }
    for url, fragment in cases.items():
        done = _cli(url)
        assert done.returncode == 2, (url, done.stderr)
        assert done.stderr.count("\n") == 1 and fragment in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
def test_the_callback_writes_to_s3_as_it_trains(s3, tmp_path, regression_data):
    import keras

    from keras_relu_doctor import ReluDoctor

    x, y = regression_data
    seen: list[int] = []

    class ListBucket(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            s3.invalidate_cache()
            seen.append(sum(s3.du(path) for path in s3.find("logs/live")))

    def train(log_dir: str, extra: list) -> None:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(16, activation="relu", name="hidden"), keras.layers.Dense(1, name="out")]
        )
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        model.fit(x, y, epochs=3, batch_size=64, verbose=0,
                  callbacks=[ReluDoctor(log_dir, probe_data=(x[:64], y[:64])), *extra])

    train("s3://logs/live", [ListBucket()])
    train(str(tmp_path / "local"), [])
    # The events of each epoch are in the bucket by the end of that epoch.
    assert len(seen) == 3 and 0 < seen[0] < seen[1] < seen[2]
    _same_report(str(tmp_path / "local"), "s3://logs/live")


def test_any_fsspec_url_reads_as_the_local_copy(tmp_path):
    """fsspec's in-memory file system stands for the schemes without a server here (gs://, az://, ...)."""
    import fsspec

    _histogram_file(tmp_path / "local" / "train", 30)
    memory = fsspec.filesystem("memory")
    memory.put(str(tmp_path / "local"), "/relu-doctor-test/logs", recursive=True)
    try:
        _same_report(str(tmp_path / "local"), "memory://relu-doctor-test/logs")
    finally:
        memory.rm("/relu-doctor-test", recursive=True)
