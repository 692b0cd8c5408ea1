"""Damaged event files: the reader raises only its own errors, and always ends."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_relu_doctor import tags
from keras_relu_doctor.errors import ReluDoctorError
from keras_relu_doctor.events import read_logdir
from keras_relu_doctor.events.writer import EventWriter
from keras_relu_doctor.diagnose import VERDICTS
from keras_relu_doctor.report import build_report

METADATA = tags.UnitsMetadata(tolerance=1e-6, step_unit="epoch", activation="relu", rows=tags.REQUIRED_UNIT_ROWS)


def _real_event_file() -> bytes:
    folder = tempfile.mkdtemp()
    rng = np.random.default_rng(1)
    with EventWriter(folder) as writer:
        for step in range(3):
            writer.histogram("dense/activations", np.maximum(rng.normal(size=64), 0), step=step)
            writer.units("dense/units", rng.uniform(size=(2, 4)), step=step, metadata=METADATA)
            writer.scalar("dense/grad_norm", 0.1 * step, step=step)
    data = open(writer.path, "rb").read()
    shutil.rmtree(folder)
    return data


ORIGINAL = _real_event_file()


@st.composite
def damaged(draw) -> bytes:
    data = bytearray(ORIGINAL)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["cut", "flip", "splice", "insert"]))
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        if action == "cut":
            data = data[:position]
        elif action == "flip":
            data[position] ^= draw(st.integers(1, 255))
        elif action == "splice":
            start = draw(st.integers(0, len(ORIGINAL) - 1))
            piece = ORIGINAL[start : start + draw(st.integers(1, 200))]
            data[position:position] = piece
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=24))
    return bytes(data)


@pytest.fixture(scope="module")
def scratch():
    folder = tempfile.mkdtemp()
    yield folder
    shutil.rmtree(folder)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=damaged())
def test_damaged_files_raise_only_our_errors(scratch, data):
    path = os.path.join(scratch, "events.out.tfevents.1.fuzz")
    with open(path, "wb") as stream:
        stream.write(data)
    try:
        logdir = read_logdir(scratch)
        report = build_report(logdir)
    except ReluDoctorError:
        return
    run = logdir.runs[0]
    assert run.records > 0
    for series in run.units.values():
        assert series.max_abs_output.shape[0] == series.steps.shape[0]
    assert report.runs[0].verdict in VERDICTS
