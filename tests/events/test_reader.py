"""The event reader on files written by tf.summary, tensorboardX and by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2

from keras_relu_doctor import tags
from keras_relu_doctor.errors import BadOption, LogdirNotFound, NoEventFiles, UnreadableEventFile
from keras_relu_doctor.events import find_runs, read_logdir
from keras_relu_doctor.events.writer import EventWriter

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", layer_class="Dense", rows=tags.REQUIRED_UNIT_ROWS)


@pytest.fixture(scope="module")
def tf_logdir(tmp_path_factory):
    """A run written by tf.summary with our tags: 8 units, units 0-2 dead from step 2."""
    tf = pytest.importorskip("tensorflow")
    from tensorboard.compat.proto import summary_pb2 as pb

    logdir = tmp_path_factory.mktemp("tf_summary")
    metadata = pb.SummaryMetadata(
        plugin_data=pb.SummaryMetadata.PluginData(plugin_name=tags.PLUGIN_NAME, content=METADATA.to_bytes())
    )
    rng = np.random.default_rng(0)
    writer = tf.summary.create_file_writer(str(logdir / tags.TRAIN_SUBDIR))
    with writer.as_default():
        for step in range(4):
            activations = np.maximum(rng.normal(size=(32, 8)), 0.0).astype(np.float32)
            if step >= 2:
                activations[:, :3] = 0.0
            record = np.stack([(activations > 0).mean(0), np.abs(activations).max(0)]).astype(np.float32)
            tf.summary.histogram(tags.tag("dense", tags.ACTIVATIONS), activations, step=step)
            tf.summary.write(tags.tag("dense", tags.UNITS), record, step=step, metadata=metadata)
            tf.summary.scalar(tags.tag("dense", tags.GRAD_NORM), 0.5 * (step + 1), step=step)
            tf.summary.scalar(tags.tag("dense_1", tags.GRAD_NORM), 0.25, step=step)
            tf.summary.scalar(tags.KERAS_EPOCH_LOSS, 1.0 / (step + 1), step=step)
    writer.close()
    return logdir


def test_tf_summary_run_is_read_with_units_scalars_and_histograms(tf_logdir):
    run = read_logdir(tf_logdir).run("train")
    units = run.units["dense"]
    assert units.units == 8
    assert units.metadata == METADATA
    assert run.step_unit == "epoch"
    np.testing.assert_array_equal(units.steps, [0, 1, 2, 3])
    np.testing.assert_array_equal(units.max_abs_output[2:, :3], 0.0)
    assert (units.max_abs_output[:2, :3] > 0).all()
    assert run.layers == ("dense", "dense_1")
    np.testing.assert_allclose(run.scalars["dense/grad_norm"].values, [0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(run.scalars["epoch_loss"].values, [1, 0.5, 1 / 3, 0.25], rtol=1e-6)
    histogram = run.histograms["dense/activations"]
    np.testing.assert_array_equal(histogram.count, [256, 256, 256, 256])
    # Dead units add 3/8 of exact zeros on top of ReLU's half; the estimate is an upper bound.
    assert histogram.zero_fraction[3] > histogram.zero_fraction[0] + 0.2
    assert run.warnings == () and run.truncated_files == ()


def test_tensorboardx_legacy_histograms_are_read(tmp_path):
    tensorboardx = pytest.importorskip("tensorboardX")
    values = np.concatenate([np.zeros(600), np.linspace(0.1, 2.0, 400)])
    with tensorboardx.SummaryWriter(str(tmp_path / "pytorch_run")) as writer:
        for step in range(3):
            writer.add_histogram("features/activations", values, step)
            writer.add_scalar("loss", 2.0 - step, step)
    run = read_logdir(tmp_path).run("pytorch_run")
    histogram = run.histograms["features/activations"]
    np.testing.assert_array_equal(histogram.count, [1000, 1000, 1000])
    np.testing.assert_allclose(histogram.zero_fraction, 0.6)
    np.testing.assert_allclose(histogram.mean, values.mean())
    np.testing.assert_allclose(histogram.max, 2.0)
    np.testing.assert_allclose(run.scalars["loss"].values, [2.0, 1.0, 0.0])


def _write_legacy(folder, tag, histo: summary_pb2.HistogramProto, steps=(0,)):
    with EventWriter(folder) as writer:
        for step in steps:
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=histo)])
            writer.write_event(event_pb2.Event(step=step, summary=summary))


def test_hand_built_histogram_proto_with_zero_bucket(tmp_path):
    histo = summary_pb2.HistogramProto(
        min=-0.5, max=3.0, num=10, sum=6.0, sum_squares=12.0,
        bucket_limit=[-1e-12, 0.0, 1.0, 3.0], bucket=[1, 5, 2, 2],
    )  # fmt: skip
    _write_legacy(tmp_path / "tf1", "conv/activations", histo, steps=(0, 1))
    histogram = read_logdir(tmp_path).run("tf1").histograms["conv/activations"]
    np.testing.assert_allclose(histogram.zero_fraction, [0.5, 0.5])
    np.testing.assert_allclose(histogram.mean, [0.6, 0.6])
    np.testing.assert_allclose(histogram.min, [-0.5, -0.5])
    np.testing.assert_allclose(histogram.sum_squares, [12.0, 12.0])


def test_runs_found_recursively_and_filtered(tmp_path):
    for run in ("a/train", "a/validation", "b/train"):
        with EventWriter(tmp_path / run) as writer:
            writer.scalar("epoch_loss", 1.0, step=0)
    assert [path for path, _ in find_runs(tmp_path)] == ["a/train", "a/validation", "b/train"]
    assert [run.path for run in read_logdir(tmp_path, run_glob="*/train").runs] == ["a/train", "b/train"]
    with pytest.raises(BadOption, match="matches no run"):
        read_logdir(tmp_path, run_glob="c/*")


def test_files_of_a_run_are_read_in_order_and_later_steps_win(tmp_path):
    first = EventWriter(tmp_path, suffix=".1")
    first.scalar("epoch_loss", 3.0, step=0)
    first.scalar("epoch_loss", 2.0, step=1)
    first.close()
    os.rename(first.path, tmp_path / "events.out.tfevents.100.host.1")
    with EventWriter(tmp_path) as second:
        second.scalar("epoch_loss", 1.5, step=1)
        second.scalar("epoch_loss", 1.0, step=2)
    os.rename(second.path, tmp_path / "events.out.tfevents.200.host.1")
    series = read_logdir(tmp_path).run(".").scalars["epoch_loss"]
    np.testing.assert_array_equal(series.steps, [0, 1, 2])
    np.testing.assert_array_equal(series.values, [3.0, 1.5, 1.0])


def _three_records(folder) -> str:
    with EventWriter(folder) as writer:
        for step in range(3):
            writer.scalar("epoch_loss", float(step), step=step)
    return writer.path


def test_truncated_last_record_is_read_up_to_it(tmp_path):
    path = _three_records(tmp_path / "train")
    size = os.path.getsize(path)
    with open(path, "r+b") as stream:
        stream.truncate(size - 7)
    run = read_logdir(tmp_path).run("train")
    np.testing.assert_array_equal(run.scalars["epoch_loss"].values, [0.0, 1.0])
    assert run.truncated_files == ("train/" + os.path.basename(path),)
    assert "ends early at offset" in run.warnings[0]


def test_bad_data_crc_skips_one_record_with_its_offset(tmp_path):
    path = _three_records(tmp_path)
    data = bytearray(open(path, "rb").read())
    offset = 0
    for _ in range(2):  # skip the file-version record and the first scalar
        offset += 12 + int.from_bytes(data[offset : offset + 8], "little") + 4
    data[offset + 14] ^= 0xFF
    open(path, "wb").write(bytes(data))
    run = read_logdir(tmp_path).run(".")
    np.testing.assert_array_equal(run.scalars["epoch_loss"].steps, [0, 2])
    assert any(f"bad data checksum in the record at offset {offset}" in warning for warning in run.warnings)


def test_bad_length_crc_resumes_at_next_record(tmp_path):
    path = _three_records(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[3] ^= 0x01  # the file-version record's length
    open(path, "wb").write(bytes(data))
    run = read_logdir(tmp_path).run(".")
    np.testing.assert_array_equal(run.scalars["epoch_loss"].steps, [0, 1, 2])
    assert "bad length checksum at offset 0; resumed at offset" in run.warnings[0]


def test_missing_empty_and_unreadable_logdirs(tmp_path):
    with pytest.raises(LogdirNotFound, match="does not exist"):
        read_logdir(tmp_path / "missing")
    with pytest.raises(NoEventFiles, match="no events.out.tfevents"):
        read_logdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LogdirNotFound, match="is a file"):
        read_logdir(tmp_path / "notes.txt")
    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"")
    with pytest.raises(NoEventFiles, match="all empty"):
        read_logdir(tmp_path)
    (tmp_path / "events.out.tfevents.1.host").write_text("this is not an event file, just text" * 5)
    with pytest.raises(UnreadableEventFile, match="not TensorBoard event files"):
        read_logdir(tmp_path)


def test_reader_never_imports_tensorflow(tmp_path):
    _three_records(tmp_path)
    code = (
        "import sys; from keras_relu_doctor.events import read_logdir; "
        f"read_logdir({str(tmp_path)!r}); "
        "assert not {'tensorflow', 'keras'} & {m.split('.')[0] for m in sys.modules}"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    # The top-level API resolves lazily, so it stays TensorFlow-free too.
    top_level = (
        "import sys, keras_relu_doctor as k; "
        f"k.build_report({str(tmp_path)!r}); k.read_logdir({str(tmp_path)!r}); "
        "assert not {'tensorflow', 'keras'} & {m.split('.')[0] for m in sys.modules}"
    )
    subprocess.run([sys.executable, "-c", top_level], check=True)
