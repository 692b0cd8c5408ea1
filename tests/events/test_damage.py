"""Damage that used to stop the reader, hang it or slow it to a crawl."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_relu_doctor.errors import NoEventFiles
from keras_relu_doctor.events import read_logdir
from keras_relu_doctor.events.framing import frame
from keras_relu_doctor.events.writer import EventWriter


def _records(folder, steps: range, tag: str = "loss") -> list[bytes]:
    """Whole records (one scalar each) as written by our writer, one per step."""
    with EventWriter(folder) as writer:
        for step in steps:
            writer.scalar(tag, float(step), step=step)
    data = open(writer.path, "rb").read()
    os.remove(writer.path)
    records, position = [], 0
    while position < len(data):
        length = int.from_bytes(data[position : position + 8], "little")
        records.append(data[position : position + 12 + length + 4])
        position += 12 + length + 4
    return records


def _read(folder, data: bytes):
    with open(os.path.join(folder, "events.out.tfevents.1.damaged"), "wb") as stream:
        stream.write(data)
    return read_logdir(folder).runs[0]


def test_megabytes_of_zeros_are_crossed_and_reading_resumes(tmp_path):
    records = _records(tmp_path, range(1, 6))
    zeros = b"\0" * (20 << 20)  # a region lost to a crash, as a file system may leave it
    data = b"".join(records[:3]) + zeros + b"".join(records[3:])
    run = _read(tmp_path, data)
    np.testing.assert_array_equal(run.scalars["loss"].steps, [1, 2, 3, 4, 5])
    resumed_at = len(b"".join(records[:3])) + len(zeros)
    assert any(f"resumed at offset {resumed_at}" in warning for warning in run.warnings)


def test_records_appended_after_a_torn_one_are_read(tmp_path):
    """A writer killed mid-record, then restarted on the same file: its length runs past the end."""
    records = _records(tmp_path, range(1, 4))
    torn = frame(b"\x08" * 5000)[:100]  # says 5,000 bytes; 88 follow its header
    appended = _records(tmp_path, range(4, 6))
    run = _read(tmp_path, b"".join(records) + torn + b"".join(appended))
    np.testing.assert_array_equal(run.scalars["loss"].steps, [1, 2, 3, 4, 5])
    offset = len(b"".join(records))
    assert any(f"offset {offset} runs past the end of the file; resumed at offset {offset + 100}" in w for w in run.warnings)
    assert not run.truncated_files


def test_a_bad_payload_checksum_does_not_trust_its_length(tmp_path):
    records = _records(tmp_path, range(1, 6))
    damaged = bytearray(records[2])
    damaged[:8] = (len(damaged) * 50).to_bytes(8, "little")  # a length that swallows what follows...
    damaged[8:12] = frame(b"x" * (len(damaged) * 50))[8:12]  # ...with a valid length checksum
    run = _read(tmp_path, b"".join(records[:2]) + bytes(damaged) + b"".join(records[3:]) + records[0] * 40)
    assert {3, 4, 5} <= set(run.scalars["loss"].steps.tolist())


def test_a_file_cut_inside_its_first_record_is_still_being_written(tmp_path):
    records = _records(tmp_path, range(1, 3))
    with open(tmp_path / "events.out.tfevents.1.new", "wb") as stream:
        stream.write(records[0][:20])
    with pytest.raises(NoEventFiles, match="no complete record yet"):
        read_logdir(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_devices_and_link_loops_are_skipped_not_waited_on(tmp_path):
    run_folder = tmp_path / "train"
    run_folder.mkdir()
    with EventWriter(run_folder) as writer:
        writer.scalar("loss", 1.0, step=1)
    os.mkfifo(run_folder / "events.out.tfevents.2.fifo")
    os.symlink("/dev/zero", run_folder / "events.out.tfevents.3.zero")
    os.symlink("events.out.tfevents.4.loop", run_folder / "events.out.tfevents.4.loop")
    done = subprocess.run(
        [sys.executable, "-m", "keras_relu_doctor.cli.main", "report", str(tmp_path), "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "not a regular file" in done.stdout and "cannot be followed" in done.stdout


def test_a_folder_that_cannot_be_listed_is_reported_not_skipped_silently(tmp_path):
    """A path longer than the system allows (ENAMETOOLONG) is a real listing error, even for root."""
    with EventWriter(tmp_path / "train") as writer:
        writer.scalar("loss", 1.0, step=1)
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        for _ in range(24):  # 24 x 201 characters: past PATH_MAX (4096) as one path
            os.mkdir("d" * 200)
            os.chdir("d" * 200)
    finally:
        os.chdir(here)
    runs = {run.path: run for run in read_logdir(tmp_path).runs}
    assert runs["train"].records > 0
    unreadable = [run for path, run in runs.items() if path != "train"]
    assert len(unreadable) == 1 and unreadable[0].records == 0
    assert "could not be read (File name too long); skipped it" in unreadable[0].warnings[0]


def test_a_bad_value_is_named_and_the_record_s_other_values_are_kept(tmp_path):
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    from keras_relu_doctor import tags
    from keras_relu_doctor.events.writer import summary_metadata

    empty_units = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in (2, 0)]),
    )
    with EventWriter(tmp_path) as writer:
        writer.write_event(event_pb2.Event(step=1, summary=summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag="dense/units", metadata=summary_metadata(tags.PLUGIN_NAME, b"[1, 2]"),
                                      tensor=empty_units),
            summary_pb2.Summary.Value(tag="good", simple_value=0.5),
        ])))  # fmt: skip
    run = read_logdir(tmp_path).runs[0]
    np.testing.assert_array_equal(run.scalars["good"].steps, [1])
    assert any("'dense/units'" in w and "kept the record's other values" in w for w in run.warnings), run.warnings


def test_the_hand_made_cases_of_odd_content_give_a_report_in_every_format(tmp_path):
    """A 2-element scalar, a legacy histogram with 2 limits and 3 counts, a [0, 3] histogram, a [2, 0] unit record."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
    from tensorboard.compat.proto import tensor_shape_pb2 as shapes

    from keras_relu_doctor import tags
    from keras_relu_doctor.events.writer import summary_metadata
    from keras_relu_doctor.render import RENDERERS
    from keras_relu_doctor.report import build_report

    def tensor(dtype, *sizes, **values):
        shape = shapes.TensorShapeProto(dim=[shapes.TensorShapeProto.Dim(size=size) for size in sizes])
        return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)

    units_meta = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu").to_bytes()
    with EventWriter(tmp_path) as writer:
        for step in range(2):
            writer.write_event(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag="a/grad_norm", metadata=summary_metadata(tags.SCALARS_PLUGIN),
                                          tensor=tensor(types_pb2.DT_FLOAT, 2, float_val=[1.0, 2.0])),
                summary_pb2.Summary.Value(tag="h/activations", histo=summary_pb2.HistogramProto(
                    min=0, max=1, num=3, bucket_limit=[0, 1], bucket=[1, 1, 1])),
                summary_pb2.Summary.Value(tag="g/activations", metadata=summary_metadata(tags.HISTOGRAMS_PLUGIN),
                                          tensor=tensor(types_pb2.DT_DOUBLE, 0, 3)),
                summary_pb2.Summary.Value(tag="u/units", metadata=summary_metadata(tags.PLUGIN_NAME, units_meta),
                                          tensor=tensor(types_pb2.DT_FLOAT, 2, 0)),
                summary_pb2.Summary.Value(tag="loss", simple_value=1.0 / (step + 1)),
            ])))  # fmt: skip
    report = build_report(read_logdir(tmp_path))
    for render in RENDERERS.values():
        assert render(report)
    run = report.runs[0]
    assert any("left it out" in warning for warning in run.warnings)
